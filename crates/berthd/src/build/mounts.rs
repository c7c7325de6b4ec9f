//! BuildKit's `RUN --mount`: what a RUN container gets besides the image so far, none of it in
//! the layer the RUN makes.
//!
//! - `type=cache` (`id`, `target`, `sharing=shared|locked|private`, `mode`, `uid`, `gid`,
//!   `ro`): a directory under `<data>/build-mounts/` kept from build to build, keyed by its
//!   `id` (the target when none); `locked` and `private` ones are used by one RUN at a time.
//! - `type=bind` (`source`, `target`, `from=stage|image`, `rw`): a copy of the source, taken
//!   from the build context or an earlier stage or image, resolved inside that root by
//!   descriptors (a link in the context cannot name a host file); with `rw` the RUN's writes
//!   go to the copy and are discarded. Its content's digest is part of the step's cache key.
//! - `type=tmpfs` (`target`, `size`): an empty tmpfs.
//! - `type=secret` (`id`, `target`, default `/run/secrets/<id>`, `required`, `mode`, `uid`,
//!   `gid`): a file holding a secret the client sent with the build, read-only, never in the
//!   cache key.
//!
//! After the RUN, what the runtime created in the container's upper directory to mount on
//! (an empty file or directory at a target, and the empty directories above it) is removed,
//! so no mount point is left in the layer.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::host_config::{Mount, TmpfsOptions};
use berth_image::Digest;

use crate::engine::Daemon;
use crate::model::Error;

/// One `--mount` of a RUN, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub target: String,
    /// The flag as written (with its variables expanded): the cache key's part.
    pub text: String,
    opts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cache,
    Bind,
    Tmpfs,
    Secret,
}

/// The options a mount type takes, besides `type` and `target`.
fn known(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Cache => &[
            "id", "sharing", "mode", "uid", "gid", "ro", "readonly", "from", "source",
        ],
        Kind::Bind => &["source", "from", "rw", "readwrite", "ro", "readonly"],
        Kind::Tmpfs => &["size"],
        Kind::Secret => &["id", "required", "mode", "uid", "gid"],
    }
}

/// Parses `type=cache,target=/root/.cache,id=x` (BuildKit's names and synonyms).
pub fn parse(text: &str) -> Result<Spec, Error> {
    let bad = |why: String| Error::invalid(format!("RUN --mount={text}: {why}"));
    let mut opts = BTreeMap::new();
    for field in text.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        let k = match k.trim().to_ascii_lowercase().as_str() {
            "dst" | "destination" => "target".to_string(),
            "src" => "source".to_string(),
            k => k.to_string(),
        };
        opts.insert(k, v.trim().to_string());
    }
    let kind = match opts.remove("type").as_deref() {
        None | Some("bind") => Kind::Bind,
        Some("cache") => Kind::Cache,
        Some("tmpfs") => Kind::Tmpfs,
        Some("secret") => Kind::Secret,
        Some(other) => return Err(bad(format!("unsupported mount type {other:?}"))),
    };
    let target = match (opts.remove("target"), kind, opts.get("id")) {
        (Some(t), ..) => t,
        (None, Kind::Secret, Some(id)) => format!("/run/secrets/{id}"),
        (None, ..) => return Err(bad("a target is required".into())),
    };
    if !target.starts_with('/') {
        return Err(bad(format!("the target {target:?} must be absolute")));
    }
    if berth_inroot::clean(&target) == "/" {
        return Err(bad("the target cannot be /".into()));
    }
    if kind == Kind::Secret && !opts.contains_key("id") {
        return Err(bad("a secret needs an id".into()));
    }
    if let Some(k) = opts.keys().find(|k| !known(kind).contains(&k.as_str())) {
        return Err(bad(format!("unexpected option {k:?}")));
    }
    Ok(Spec {
        kind,
        target: berth_inroot::clean(&target),
        text: text.to_string(),
        opts,
    })
}

impl Spec {
    fn flag(&self, k: &str) -> bool {
        self.opts
            .get(k)
            .is_some_and(|v| matches!(v.as_str(), "true" | "1" | ""))
    }

    fn number(&self, k: &str, radix: u32, default: u32) -> Result<u32, Error> {
        match self.opts.get(k) {
            None => Ok(default),
            Some(v) => u32::from_str_radix(v, radix).map_err(|_| {
                Error::invalid(format!("RUN --mount={}: invalid {k} {v:?}", self.text))
            }),
        }
    }
}

/// What a RUN's mounts need while it runs: host directories and files, and the locks of
/// the cache mounts it uses alone. Temporary ones go when this is dropped.
#[derive(Default)]
pub struct Prepared {
    pub mounts: Vec<Mount>,
    /// The digests of the bind mounts' contents, for the cache key.
    pub digests: Vec<String>,
    temps: Vec<tempfile::TempDir>,
    _locks: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

/// Where things a mount takes come from.
pub struct Sources<'a> {
    pub context: BorrowedFd<'a>,
    pub done: &'a super::stages::Done,
    pub secrets: &'a BTreeMap<String, Vec<u8>>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::invalid(format!("{what}: {e}"))
}

fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        kind: "bind".into(),
        source: source.display().to_string(),
        target: target.into(),
        read_only,
        ..Default::default()
    }
}

/// The locks of `locked`/`private` cache mounts, by cache directory.
fn cache_lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: Mutex<Option<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = Mutex::new(None);
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    let map = locks.get_or_insert_with(HashMap::new);
    map.entry(dir.to_path_buf()).or_default().clone()
}

/// The directory of cache mounts.
pub fn cache_root(d: &Daemon) -> PathBuf {
    d.data_root.join("build-mounts")
}

/// Makes what `specs` need; fails (making nothing) on a missing required secret or a source
/// that is not in its root.
pub async fn prepare(
    d: &Arc<Daemon>,
    specs: &[Spec],
    src: &Sources<'_>,
) -> Result<Prepared, Error> {
    let mut out = Prepared::default();
    let tmp_root = d.data_root.join("tmp");
    std::fs::create_dir_all(&tmp_root).map_err(io("making the temp dir"))?;
    for s in specs {
        match s.kind {
            Kind::Tmpfs => {
                let size = s.opts.get("size").map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        Error::invalid(format!("RUN --mount={}: invalid size", s.text))
                    })
                });
                out.mounts.push(Mount {
                    kind: "tmpfs".into(),
                    target: s.target.clone(),
                    tmpfs_options: Some(TmpfsOptions {
                        size_bytes: size.transpose()?.unwrap_or(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            Kind::Cache => {
                let id = s
                    .opts
                    .get("id")
                    .cloned()
                    .unwrap_or_else(|| s.target.clone());
                let dir = cache_root(d).join(Digest::of(id.as_bytes()).hex());
                if !dir.exists() {
                    make_cache_dir(&dir, s)?;
                }
                if matches!(
                    s.opts.get("sharing").map(String::as_str),
                    Some("locked" | "private")
                ) {
                    out._locks.push(cache_lock(&dir).lock_owned().await);
                }
                let ro = s.flag("ro") || s.flag("readonly");
                out.mounts.push(bind(&dir, &s.target, ro));
            }
            Kind::Secret => {
                let id = s.opts.get("id").cloned().unwrap_or_default();
                let Some(value) = src.secrets.get(&id) else {
                    if s.flag("required") {
                        return Err(Error::invalid(format!("secret {id}: not found")));
                    }
                    continue;
                };
                let dir = tempfile::Builder::new()
                    .prefix("secret-")
                    .tempdir_in(&tmp_root)
                    .map_err(io("making the secret's dir"))?;
                let file = dir.path().join("secret");
                write_secret(&file, value, s)?;
                out.mounts.push(bind(&file, &s.target, true));
                out.temps.push(dir);
            }
            Kind::Bind => {
                let dir = tempfile::Builder::new()
                    .prefix("bind-")
                    .tempdir_in(&tmp_root)
                    .map_err(io("making the bind's copy"))?;
                let (path, digest) = copy_source(d, s, src, dir.path())?;
                out.digests.push(digest);
                let rw = s.flag("rw") || s.flag("readwrite");
                out.mounts.push(bind(&path, &s.target, !rw));
                out.temps.push(dir);
            }
        }
    }
    Ok(out)
}

fn make_cache_dir(dir: &Path, s: &Spec) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let (mode, uid, gid) = (
        s.number("mode", 8, 0o755)?,
        s.number("uid", 10, 0)?,
        s.number("gid", 10, 0)?,
    );
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(io("making the cache mounts' dir"))?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(parent)
        .map_err(io("making a cache mount"))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(io("setting a cache mount's mode"))?;
    std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid))
        .map_err(io("owning a cache mount"))?;
    let made = tmp.keep();
    if std::fs::rename(&made, dir).is_err() {
        // Another build made it meanwhile: use theirs.
        let _ = std::fs::remove_dir(&made);
    }
    Ok(())
}

fn write_secret(file: &Path, value: &[u8], s: &Spec) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let (mode, uid, gid) = (
        s.number("mode", 8, 0o400)?,
        s.number("uid", 10, 0)?,
        s.number("gid", 10, 0)?,
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io("writing a secret"))?;
    f.write_all(value).map_err(io("writing a secret"))?;
    std::os::unix::fs::chown(file, Some(uid), Some(gid)).map_err(io("owning a secret"))?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
        .map_err(io("setting a secret's mode"))?;
    Ok(())
}

/// Copies a bind mount's source (a directory's content, or one file) into `into`, resolved
/// inside the context or the `from` image; the host path to mount and the copy's digest.
fn copy_source(
    d: &Daemon,
    s: &Spec,
    src: &Sources<'_>,
    into: &Path,
) -> Result<(PathBuf, String), Error> {
    let source = s.opts.get("source").map_or("/", String::as_str).to_string();
    let copy = |root: BorrowedFd<'_>| -> Result<(PathBuf, String), Error> {
        let rel = berth_inroot::clean(&format!("/{source}"));
        let rel = Path::new(rel.trim_start_matches('/'));
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        let fd: OwnedFd = if rel.as_os_str().is_empty() {
            rustix::fs::openat(
                root,
                ".",
                flags | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| Error::invalid(format!("RUN --mount={}: {e}", s.text)))?
        } else {
            berth_inroot::open(root, rel, flags).map_err(|e| {
                Error::invalid(format!("RUN --mount={}: source {source:?}: {e}", s.text))
            })?
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::internal(e.to_string()))?;
        let tree = into.join("tree");
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if is_dir {
            std::fs::create_dir(&tree).map_err(io("copying a bind source"))?;
            let dst = berth_inroot::open_dir(
                rustix::fs::open(
                    into,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| Error::internal(e.to_string()))?
                .as_fd(),
                Path::new("tree"),
            )
            .map_err(|e| Error::internal(e.to_string()))?;
            berth_inroot::copy_tree(fd.as_fd(), dst.as_fd())
                .map_err(io("copying a bind source"))?;
        } else if rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::RegularFile
        {
            let mut from = std::fs::File::from(fd);
            let mut to = std::fs::File::create(&tree).map_err(io("copying a bind source"))?;
            std::io::copy(&mut from, &mut to).map_err(io("copying a bind source"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
                .map_err(io("copying a bind source"))?;
        } else {
            return Err(Error::invalid(format!(
                "RUN --mount={}: source {source:?} is not a file or directory",
                s.text
            )));
        }
        let digest = tree_digest(&tree).map_err(io("hashing a bind source"))?;
        Ok((tree, digest))
    };
    match s.opts.get("from") {
        None => copy(src.context),
        Some(from) => {
            let image = super::copy::source_image(d, from, src.done)?;
            let layers = d.images.layer_dirs(&image);
            super::image_root::with_root(&layers, &d.data_root.join("tmp"), copy)
        }
    }
}

/// A digest of a copied tree: every entry's relative path, kind, mode, and content or link
/// target, in name order.
fn tree_digest(top: &Path) -> std::io::Result<String> {
    fn walk(p: &Path, rel: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(p)?;
        out.extend_from_slice(format!("{rel}\0{:o}\0", m.mode()).as_bytes());
        if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(p)?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for n in names {
                walk(&p.join(&n), &format!("{rel}/{}", n.to_string_lossy()), out)?;
            }
        } else if m.file_type().is_symlink() {
            out.extend_from_slice(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
        } else if m.is_file() {
            out.extend_from_slice(Digest::of(&std::fs::read(p)?).as_str().as_bytes());
        }
        out.push(0);
        Ok(())
    }
    let mut bytes = Vec::new();
    walk(top, "", &mut bytes)?;
    Ok(Digest::of(&bytes).to_string())
}

/// Removes the mount points the runtime made for `specs` in a container's `upper` directory:
/// an empty file or directory at each target, then the empty directories above it.
pub fn remove_mount_points(upper: &Path, specs: &[Spec]) {
    let Ok(root) = rustix::fs::open(
        upper,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return;
    };
    for s in specs {
        let mut path = s.target.trim_start_matches('/').to_string();
        while !path.is_empty() {
            if !remove_if_empty(root.as_fd(), &path) {
                break;
            }
            path = match path.rsplit_once('/') {
                Some((parent, _)) => parent.to_string(),
                None => String::new(),
            };
        }
    }
}

/// Removes `path` (inside `root`) if it is an empty regular file or an empty directory.
fn remove_if_empty(root: BorrowedFd<'_>, path: &str) -> bool {
    use rustix::fs::{AtFlags, FileType};
    let Ok((parent, Some(name))) = berth_inroot::open_parent(root, path) else {
        return false;
    };
    let Ok(st) = rustix::fs::statat(&parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_size == 0 => {
            rustix::fs::unlinkat(&parent, name.as_os_str(), AtFlags::empty()).is_ok()
        }
        // Fails (and stops the climb) unless empty.
        FileType::Directory => {
            rustix::fs::unlinkat(&parent, name.as_os_str(), AtFlags::REMOVEDIR).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_buildkits_names() {
        let c = parse("type=cache,target=/root/.cache,id=go,sharing=locked").unwrap();
        assert_eq!((c.kind, c.target.as_str()), (Kind::Cache, "/root/.cache"));
        let s = parse("type=secret,id=tok").unwrap();
        assert_eq!(
            (s.kind, s.target.as_str()),
            (Kind::Secret, "/run/secrets/tok")
        );
        let b = parse("source=go.mod,dst=/src/go.mod").unwrap();
        assert_eq!((b.kind, b.target.as_str()), (Kind::Bind, "/src/go.mod"));
        for bad in [
            "type=cache",
            "type=nfs,target=/x",
            "type=tmpfs,target=rel",
            "type=secret,target=/x",
            "type=tmpfs,target=/x,color=red",
            "type=bind,target=/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_points_left_empty_are_removed_and_content_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path();
        std::fs::create_dir_all(up.join("run/secrets")).unwrap();
        std::fs::write(up.join("run/secrets/tok"), b"").unwrap();
        std::fs::create_dir_all(up.join("root/.cache")).unwrap();
        std::fs::write(up.join("root/kept"), b"x").unwrap();
        std::fs::create_dir_all(up.join("data")).unwrap();
        std::fs::write(up.join("data/file"), b"y").unwrap();
        let specs = [
            parse("type=secret,id=tok").unwrap(),
            parse("type=cache,target=/root/.cache").unwrap(),
            parse("type=tmpfs,target=/data").unwrap(),
        ];
        remove_mount_points(up, &specs);
        assert!(!up.join("run").exists(), "the secret's stub and its dirs");
        assert!(!up.join("root/.cache").exists() && up.join("root/kept").exists());
        assert!(up.join("data/file").exists(), "a target with content stays");
    }
}
