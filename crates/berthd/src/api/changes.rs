//! `docker diff` (`GET /containers/{id}/changes`) and `docker export`
//! (`GET /containers/{id}/export`). The changes are read from the container's overlayfs upper
//! directory against its image's layers: a whiteout is a deletion, an entry the layers lack an
//! addition, one they have a modification. What the runtime itself puts there (the mount points
//! of /proc, /sys, /dev and the files berthd binds over /etc) is left out, as Docker's init
//! layer leaves it out, and so is a directory that was only copied up to hold such a file.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, OFlags, Stat};
use std::sync::Arc;

use hyper::StatusCode;

use crate::api::http::{ApiResult, json};
use crate::engine::Daemon;
use crate::model::Error;

/// Docker's change kinds.
const MODIFIED: u8 = 0;
const ADDED: u8 = 1;
const DELETED: u8 = 2;

/// Paths the runtime makes in every container (Docker keeps them in its init layer).
const RUNTIME_PATHS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/etc/mtab",
];

#[derive(serde::Serialize)]
struct Change {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

fn whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// The container path as the image's layers show it (top layer first; a whiteout hides it),
/// looked up inside each layer without following its last component.
fn in_layers(lowers: &[OwnedFd], path: &Path) -> Option<Stat> {
    for l in lowers {
        let found = berth_inroot::open(l.as_fd(), path, OFlags::PATH | OFlags::NOFOLLOW)
            .and_then(|fd| rustix::fs::fstat(&fd));
        if let Ok(st) = found {
            return (!whiteout(&st)).then_some(st);
        }
    }
    None
}

/// The names under a directory in any layer (for what an opaque directory hides).
fn layer_children(lowers: &[OwnedFd], path: &Path) -> std::collections::BTreeSet<OsString> {
    lowers
        .iter()
        .filter_map(|l| berth_inroot::open_dir(l.as_fd(), path).ok())
        .filter_map(|d| berth_inroot::read_dir(d.as_fd()).ok())
        .flatten()
        .map(|e| e.name)
        .filter(|n| in_layers(lowers, &path.join(n)).is_some())
        .collect()
}

/// Walks one upper directory (a descriptor: the container may change it meanwhile, and the
/// walk never follows a link of its); `fresh`: it is new (or opaque), so all below it is
/// added. Returns whether anything was reported below it.
fn walk(
    upper: BorrowedFd<'_>,
    at: &Path,
    lowers: &[OwnedFd],
    fresh: bool,
    out: &mut Vec<Change>,
) -> bool {
    // A container can nest directories without end: what lies deeper is not reported.
    if at.components().count() > berth_inroot::MAX_DEPTH {
        return false;
    }
    let Ok(entries) = berth_inroot::read_dir(upper) else {
        return false;
    };
    let start = out.len();
    for e in entries {
        let path = at.join(&e.name);
        if RUNTIME_PATHS.iter().any(|p| Path::new(p) == path) {
            continue;
        }
        let lower = if fresh {
            None
        } else {
            in_layers(lowers, &path)
        };
        let shown = path.display().to_string();
        if whiteout(&e.stat) {
            if lower.is_some() {
                out.push(Change {
                    path: shown,
                    kind: DELETED,
                });
            }
            continue;
        }
        let kind = if lower.is_some() { MODIFIED } else { ADDED };
        let sub = is_dir(&e.stat)
            .then(|| berth_inroot::open_child_dir(upper, &e.name).ok())
            .flatten();
        let Some((sub, stat)) = sub else {
            out.push(Change { path: shown, kind });
            continue;
        };
        let idx = out.len();
        out.push(Change { path: shown, kind });
        let replaced = lower.as_ref().is_some_and(is_dir) && opaque(sub.as_fd());
        if replaced {
            for gone in layer_children(lowers, &path) {
                let there = rustix::fs::statat(&sub, &gone, AtFlags::SYMLINK_NOFOLLOW).is_ok();
                if !there {
                    let p = path.join(&gone).display().to_string();
                    out.push(Change {
                        path: p,
                        kind: DELETED,
                    });
                }
            }
        }
        let below = walk(sub.as_fd(), &path, lowers, lower.is_none() || replaced, out);
        // A directory copied up only to hold what the runtime made is no change of the user's.
        let same = lower.as_ref().is_some_and(|l| {
            is_dir(l)
                && l.st_mode == stat.st_mode
                && l.st_uid == stat.st_uid
                && l.st_gid == stat.st_gid
        });
        if kind == MODIFIED && !below && !replaced && same {
            out.remove(idx);
        }
    }
    out.len() > start
}

/// `GET /containers/{id}/changes`.
pub async fn changes(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let h = d.containers.find(name)?;
    let rec = h.lock().await.clone();
    let image = d.image_of(&rec)?;
    let lowers = d.images.layer_dirs(&image);
    let upper = d.containers.dir(&rec.id).join("upper");
    let list = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let open = |p: &Path| {
            rustix::fs::open(
                p,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
        };
        let lowers: Vec<OwnedFd> = lowers.iter().filter_map(|l| open(l).ok()).collect();
        if let Ok(upper) = open(&upper) {
            walk(upper.as_fd(), Path::new("/"), &lowers, false, &mut out);
        }
        out
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    Ok(json(StatusCode::OK, &list))
}

/// `GET /containers/{id}/export`: a tar of the container's filesystem (its rootfs, without
/// volumes or other mounts), streamed.
pub async fn export(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let (root, _rec) = crate::api::archive::open_root(d, name, false).await?;
    let (mut stream, resp) = crate::api::http::ByteStream::new("application/x-tar");
    tokio::task::spawn_blocking(move || {
        let opts = berth_image::layer_tar::TreeOptions {
            skip_pseudo_fs: true,
        };
        let sent = berth_inroot::open_dir(root.fd.as_fd(), Path::new("/"))
            .map_err(std::io::Error::from)
            .and_then(|dir| berth_image::layer_tar::write_layer_at(dir.as_fd(), &mut stream, opts));
        let sent = sent.and_then(|()| std::io::Write::flush(&mut stream));
        if let Err(e) = sent {
            tracing::warn!(error = %e, "export cut short");
            stream.fail(e);
        }
        drop(root);
    });
    Ok(resp)
}
