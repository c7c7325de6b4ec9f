//! `docker diff` (`GET /containers/{id}/changes`) and `docker export`
//! (`GET /containers/{id}/export`). The changes are read from the container's overlayfs upper
//! directory against its image's layers: a whiteout is a deletion, an entry the layers lack an
//! addition, one they have a modification. What the runtime itself puts there (the mount points
//! of /proc, /sys, /dev and the files berthd binds over /etc) is left out, as Docker's init
//! layer leaves it out, and so is a directory that was only copied up to hold such a file.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::StatusCode;

use crate::Daemon;
use crate::http::{ApiError, ApiResult, json};

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

fn whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn opaque(p: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

/// The container path as the image's layers show it (top layer first; a whiteout hides it).
fn in_layers(lowers: &[PathBuf], path: &Path) -> Option<std::fs::Metadata> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    for l in lowers {
        if let Ok(m) = std::fs::symlink_metadata(l.join(rel)) {
            return (!whiteout(&m)).then_some(m);
        }
    }
    None
}

/// The names under a directory in any layer (for what an opaque directory hides).
fn layer_children(
    lowers: &[PathBuf],
    path: &Path,
) -> std::collections::BTreeSet<std::ffi::OsString> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    lowers
        .iter()
        .filter_map(|l| std::fs::read_dir(l.join(rel)).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.file_name()))
        .filter(|n| in_layers(lowers, &path.join(n)).is_some())
        .collect()
}

/// Walks one upper directory; `fresh`: it is new (or opaque), so all below it is added.
/// Returns whether anything was reported below it.
fn walk(upper: &Path, at: &Path, lowers: &[PathBuf], fresh: bool, out: &mut Vec<Change>) -> bool {
    let Ok(rd) = std::fs::read_dir(upper) else {
        return false;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let start = out.len();
    for e in entries {
        let path = at.join(e.file_name());
        if RUNTIME_PATHS.iter().any(|p| Path::new(p) == path) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let lower = if fresh {
            None
        } else {
            in_layers(lowers, &path)
        };
        let shown = path.display().to_string();
        if whiteout(&meta) {
            if lower.is_some() {
                out.push(Change {
                    path: shown,
                    kind: DELETED,
                });
            }
            continue;
        }
        let kind = if lower.is_some() { MODIFIED } else { ADDED };
        if !meta.is_dir() {
            out.push(Change { path: shown, kind });
            continue;
        }
        let idx = out.len();
        out.push(Change { path: shown, kind });
        let replaced = lower.as_ref().is_some_and(|l| l.is_dir()) && opaque(&e.path());
        if replaced {
            for gone in layer_children(lowers, &path) {
                if !e.path().join(&gone).exists() {
                    let p = path.join(&gone).display().to_string();
                    out.push(Change {
                        path: p,
                        kind: DELETED,
                    });
                }
            }
        }
        let below = walk(&e.path(), &path, lowers, lower.is_none() || replaced, out);
        // A directory copied up only to hold what the runtime made is no change of the user's.
        let same = lower.as_ref().is_some_and(|l| {
            l.is_dir() && l.mode() == meta.mode() && l.uid() == meta.uid() && l.gid() == meta.gid()
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
    let digest =
        berth_image::Digest::parse(&rec.image_id).map_err(|e| ApiError::internal(e.to_string()))?;
    let image = d
        .images
        .images
        .get(&digest)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {}", rec.image)))?;
    let lowers = d.images.layer_dirs(&image);
    let upper = d.containers.dir(&rec.id).join("upper");
    let list = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        walk(&upper, Path::new("/"), &lowers, false, &mut out);
        out
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?;
    Ok(json(StatusCode::OK, &list))
}

/// `GET /containers/{id}/export`: a tar of the container's filesystem (its rootfs, without
/// volumes or other mounts), streamed.
pub async fn export(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let (root, _rec) = crate::archive::open_root(d, name, false).await?;
    let (mut stream, resp) = crate::http::ByteStream::new("application/x-tar");
    tokio::task::spawn_blocking(move || {
        let dir = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&root.fd)
        ));
        let sent = berth_image::layer_tar::write_layer(&dir, &mut stream)
            .and_then(|()| std::io::Write::flush(&mut stream));
        if let Err(e) = sent {
            tracing::warn!(error = %e, "export cut short");
        }
        drop(root);
    });
    Ok(resp)
}
