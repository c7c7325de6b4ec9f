//! `docker cp`: `HEAD`/`GET`/`PUT /containers/{id}/archive`. A running container's files are
//! reached through `/proc/<pid>/root`, so a copy sees (and writes into) its volumes and tmpfs
//! mounts like the container does; a stopped one's rootfs is mounted for the copy, under the
//! container's lock so that no start races it. Every path is resolved inside the container's
//! root (`openat2` with `RESOLVE_IN_ROOT`): `..` and symlinks, absolute or not, never leave it.
//! An upload is checked whole before anything is written (bad paths, links that escape,
//! a directory that a file would replace): bad input changes nothing.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::api::http::{ApiResult, Query, empty_body};
use crate::engine::Daemon;
use crate::model::Error;

/// What the copy works on: a live container's root, or a stopped one's rootfs mounted for it.
pub struct Root {
    pub fd: OwnedFd,
    /// Held while a stopped container's rootfs is mounted for us: unmounted on drop.
    mounted: Option<(
        PathBuf,
        tokio::sync::OwnedMutexGuard<crate::engine::store::Record>,
    )>,
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some((cdir, _guard)) = &self.mounted {
            crate::oci::rootfs::unmount(cdir);
        }
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// Opens the container's root: `/proc/<pid>/root` while it runs (with `live`), else its
/// merged rootfs, mounted for the caller when it is not (the container stays locked until the
/// returned `Root` is dropped).
pub async fn open_root(
    d: &Arc<Daemon>,
    name: &str,
    live: bool,
) -> Result<(Root, crate::engine::store::Record), Error> {
    let h = d.containers.find(name)?;
    let guard = h.lock_owned().await;
    let rec = guard.clone();
    let cdir = d.containers.dir(&rec.id);
    let merged = crate::oci::rootfs::merged(&cdir);
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if rec.running() && rec.state.pid > 0 && live {
        let fd = rustix::fs::open(
            format!("/proc/{}/root", rec.state.pid),
            dir_flags,
            Mode::empty(),
        )
        .map_err(|e| io_err("opening the container's root", e))?;
        // The recorded pid may have exited unrecorded and been reused by another process:
        // its root must be the container's rootfs, or the copy goes to the rootfs itself.
        let same = |a: &rustix::fs::Stat, b: &rustix::fs::Stat| {
            (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        };
        let ours = rustix::fs::fstat(&fd)
            .ok()
            .zip(rustix::fs::stat(&merged).ok())
            .is_some_and(|(a, b)| same(&a, &b));
        if ours {
            return Ok((Root { fd, mounted: None }, rec));
        }
    }
    if crate::oci::rootfs::is_mounted(&merged) {
        let fd = rustix::fs::open(&merged, dir_flags, Mode::empty())
            .map_err(|e| io_err("opening the rootfs", e))?;
        return Ok((Root { fd, mounted: None }, rec));
    }
    let image = d.image_of(&rec)?;
    crate::oci::rootfs::mount(&cdir, &d.images.layer_dirs(&image), false)?;
    let root = Root {
        fd: rustix::fs::open(&merged, dir_flags, Mode::empty())
            .map_err(|e| io_err("opening the rootfs", e))?,
        mounted: Some((cdir, guard)),
    };
    Ok((root, rec))
}

fn join(parts: &[&OsStr]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in parts {
        p.push(c);
    }
    p
}

/// Docker's `PathStat` (Go's `os.FileMode` bits for the mode).
#[derive(serde::Serialize)]
struct PathStat {
    name: String,
    size: i64,
    mode: u32,
    mtime: String,
    #[serde(rename = "linkTarget")]
    link_target: String,
}

fn go_mode(st: &rustix::fs::Stat) -> u32 {
    let m = st.st_mode;
    let mut out = m & 0o777;
    for (bit, go) in [(0o4000, 1 << 23), (0o2000, 1 << 22), (0o1000, 1 << 20)] {
        if m & bit != 0 {
            out |= go;
        }
    }
    out | match rustix::fs::FileType::from_raw_mode(m) {
        rustix::fs::FileType::Directory => 1 << 31,
        rustix::fs::FileType::Symlink => 1 << 27,
        rustix::fs::FileType::BlockDevice => 1 << 26,
        rustix::fs::FileType::CharacterDevice => (1 << 26) | (1 << 21),
        rustix::fs::FileType::Fifo => 1 << 25,
        rustix::fs::FileType::Socket => 1 << 24,
        _ => 0,
    }
}

/// What one container path is: the stat header and where a tar of it starts.
struct Found {
    stat: PathStat,
    /// The directory holding it (kept open: the tar's walk starts from there).
    dir: OwnedFd,
    entry: Option<std::ffi::OsString>,
}

fn find(root: BorrowedFd<'_>, path: &str, ctr: &str) -> Result<Found, Error> {
    let missing = || Error::not_found(format!("Could not find the file {path} in container {ctr}"));
    let (dir, entry) = berth_inroot::open_parent(root, path).map_err(|_| missing())?;
    let st = match &entry {
        Some(e) => rustix::fs::statat(&dir, e.as_os_str(), AtFlags::SYMLINK_NOFOLLOW),
        None => rustix::fs::fstat(&dir),
    }
    .map_err(|_| missing())?;
    let name = match &entry {
        Some(e) => e.to_string_lossy().into_owned(),
        // `DIR/.` names the contents: the docker CLI unpacks a top named `.` into the target.
        None if path.ends_with("/.") => ".".to_string(),
        None => Path::new(path)
            .file_name()
            .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned()),
    };
    let mut link_target = String::new();
    if let Some(e) = &entry
        && rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
    {
        let target = rustix::fs::readlinkat(&dir, e.as_os_str(), Vec::new())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = Path::new(path).parent().unwrap_or(Path::new("/"));
        let joined = base.join(&target).display().to_string();
        link_target = crate::engine::unpack_into::rel(joined.as_bytes())
            .map_or_else(|| "/".into(), |p| join(&p).display().to_string());
    }
    Ok(Found {
        stat: PathStat {
            name,
            size: st.st_size,
            mode: go_mode(&st),
            mtime: berth_clock::rfc3339(st.st_mtime, st.st_mtime_nsec as u32),
            link_target,
        },
        dir,
        entry,
    })
}

fn required_path(q: &Query) -> Result<String, Error> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }),
        _ => Err(Error::invalid("bad parameter: path cannot be empty")),
    }
}

fn stat_header(stat: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(stat).unwrap_or_default();
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat, in a header.
pub async fn head(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let path = required_path(&q)?;
    let (root, _rec) = open_root(d, name, true).await?;
    let ctr = name.to_string();
    let stat = tokio::task::spawn_blocking(move || {
        let found = find(root.fd.as_fd(), &path, &ctr);
        drop(root);
        found.map(|f| f.stat)
    })
    .await
    .map_err(|e| io_err("worker", e))??;
    let mut r = Response::new(empty_body());
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

/// `GET /containers/{id}/archive?path=`: a tar of the path (named by its base name), with the
/// stat header.
pub async fn get(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let path = required_path(&q)?;
    let (root, _rec) = open_root(d, name, true).await?;
    let ctr = name.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (mut stream, mut resp) = crate::api::http::ByteStream::new("application/x-tar");
    tokio::task::spawn_blocking(move || {
        let found = match find(root.fd.as_fd(), &path, &ctr) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = tx.send(Ok(stat_header(&found.stat)));
        let top = PathBuf::from(&found.stat.name);
        let opts = berth_image::layer_tar::TreeOptions {
            skip_pseudo_fs: true,
        };
        let entry = found.entry.as_deref();
        let sent = berth_image::layer_tar::write_tree_at(
            found.dir.as_fd(),
            entry,
            &top,
            &mut stream,
            opts,
        )
        .and_then(|()| std::io::Write::flush(&mut stream));
        if let Err(e) = sent {
            tracing::warn!(path, error = %e, "copy out of a container cut short");
            stream.fail(e);
        }
        drop(root);
    });
    let header = rx.await.map_err(|_| Error::internal("the copy failed"))??;
    resp.headers_mut()
        .insert("X-Docker-Container-Path-Stat", header);
    Ok(resp)
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: unpacks a tar
/// (plain or gzip) into the directory `path`.
pub async fn put(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let path = required_path(&q)?;
    let opts = crate::engine::unpack_into::Options {
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: q.bool("copyUIDGID"),
    };
    let tmp = crate::api::images::body_to_temp_file(d, req).await?;
    let (root, rec) = open_root(d, name, true).await?;
    if rec.host_config.readonly_rootfs {
        return Err(Error::forbidden("container rootfs is marked read-only"));
    }
    let ctr = name.to_string();
    tokio::task::spawn_blocking(move || {
        let r = crate::engine::unpack_into::unpack(root.fd.as_fd(), &path, tmp.path(), &opts);
        drop(root);
        r.map_err(|e| match e {
            crate::engine::unpack_into::Error::NotFound => {
                Error::not_found(format!("Could not find the file {path} in container {ctr}"))
            }
            crate::engine::unpack_into::Error::NotADirectory => {
                Error::invalid("extraction point is not a directory")
            }
            crate::engine::unpack_into::Error::Bad(m) => Error::invalid(m),
            crate::engine::unpack_into::Error::Io(m) => Error::internal(m),
        })
    })
    .await
    .map_err(|e| io_err("worker", e))??;
    let mut r = Response::new(empty_body());
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}
