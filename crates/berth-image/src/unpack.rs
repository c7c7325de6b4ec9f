//! Unpacks one layer tar (gzip, zstd or plain, detected by magic bytes) into a directory in
//! overlayfs form, safely: every path is resolved inside the layer root (`openat2` with
//! `RESOLVE_IN_ROOT`), entries with `..` or absolute names are refused, files are created with
//! `O_EXCL|O_NOFOLLOW`, hard links may only name files inside the layer. Whiteouts become
//! overlayfs whiteouts: `.wh.NAME` a 0/0 character device `NAME`, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory. The uncompressed stream is hashed on the
//! way through: its digest is the layer's diff id.
//!
//! Owners, modes (setuid bits included), xattrs, device nodes and times are kept as the image
//! says; device nodes are created only when running as root.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::content_index::{ContentIndex, Meta};
use crate::digest::{Digest, HashingReader};

/// Longest name of one path component and of a whole path.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {path:?}: {why}")]
    Entry { path: String, why: String },
    #[error("reading the layer: {0}")]
    Read(#[source] std::io::Error),
    #[error("layer unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn entry_err(path: &str, why: impl std::fmt::Display) -> UnpackError {
    UnpackError::Entry {
        path: path.to_string(),
        why: why.to_string(),
    }
}

/// Limits on what one layer may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of file content.
    pub max_bytes: u64,
    /// Number of entries.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Digest of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of file content written.
    pub size: u64,
}

/// Compression of a layer stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Wraps `r` in the decompressor its magic bytes call for.
pub fn decompress<'a>(r: impl Read + 'a) -> std::io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok((
            Compression::Zstd,
            Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        ))
    } else {
        Ok((Compression::None, Box::new(br)))
    }
}

/// Splits an entry name into checked components; `.` parts are dropped.
fn components(raw: &str) -> Result<Vec<String>, UnpackError> {
    if raw.len() > PATH_MAX {
        return Err(entry_err(&raw[..64], "name longer than 4096 bytes"));
    }
    let mut out = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => {
                let n = n
                    .to_str()
                    .ok_or_else(|| entry_err(raw, "name is not UTF-8"))?;
                if n.len() > NAME_MAX {
                    return Err(entry_err(raw, "a name component is longer than 255 bytes"));
                }
                out.push(n.to_string());
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(entry_err(raw, "path contains \"..\"")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(entry_err(raw, "absolute path"));
            }
        }
    }
    Ok(out)
}

/// Opens the directory `comps` inside `root`, creating missing ones (0755).
fn open_dir(root: BorrowedFd<'_>, comps: &[String], raw: &str) -> Result<OwnedFd, UnpackError> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    if comps.is_empty() {
        return berth_inroot::open_same_fs(root, Path::new("."), flags)
            .map_err(|e| entry_err(raw, format!("opening the layer root: {e}")));
    }
    let path = comps.join("/");
    match berth_inroot::open_same_fs(root, Path::new(&path), flags) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => {
            let parent = open_dir(root, &comps[..comps.len() - 1], raw)?;
            let name = &comps[comps.len() - 1];
            match rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(entry_err(raw, format!("creating directory {path}: {e}"))),
            }
            berth_inroot::open_same_fs(root, Path::new(&path), flags)
                .map_err(|e| entry_err(raw, format!("opening directory {path}: {e}")))
        }
        Err(Errno::NOTDIR) => Err(entry_err(raw, format!("{path} is not a directory"))),
        Err(e) => Err(entry_err(raw, format!("opening directory {path}: {e}"))),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory, without following symlinks.
fn remove_all_at(dir: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    berth_inroot::remove_all_at(dir, std::ffi::OsStr::new(name))
}

/// Makes room for a new entry `name`: anything there goes, except a directory that a new
/// directory entry merely updates.
fn clear_for(dir: BorrowedFd<'_>, name: &str, keep_dir: bool) -> Result<(), Errno> {
    if keep_dir {
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Ok(());
            }
        }
    }
    remove_all_at(dir, name)
}

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    limits: Limits,
    is_root: bool,
    written: u64,
    entries: u64,
    /// Directories whose times are set last (later entries inside them change them).
    dir_times: Vec<(Vec<String>, Timestamps)>,
    /// Opaque directories seen, so a later `.wh..wh..opq` for one is idempotent.
    opaque: HashSet<Vec<String>>,
    /// What each path holds, when asked for ([`unpack_indexed`]).
    index: Option<ContentIndex>,
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Maps an errno of `action` on the entry `raw` to the unpack error.
fn io(action: &'static str, raw: &str) -> impl FnOnce(Errno) -> UnpackError {
    let path = raw.to_string();
    move |e: Errno| UnpackError::Io {
        action,
        path,
        source: e.into(),
    }
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(entry_err(&raw, "too many entries in one layer"));
        }
        let comps = components(&raw)?;
        let Some((name, parent)) = comps.split_last() else {
            return Ok(()); // the root itself ("./")
        };
        let dir = open_dir(self.root, parent, &raw)?;
        if self.whiteout(dir.as_fd(), name, parent, &raw)? {
            return Ok(());
        }

        let h = e.header().clone();
        let mode = Mode::from_raw_mode(h.mode().map_err(|err| entry_err(&raw, err))? & 0o7777);
        let is_dir = kind.is_dir();
        clear_for(dir.as_fd(), name, is_dir).map_err(io("replacing", &raw))?;
        let mut content = None;
        match kind {
            tar::EntryType::Directory => match rustix::fs::mkdirat(&dir, name.as_str(), mode) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(err) => return Err(io("creating directory", &raw)(err)),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                content = self.write_file(&mut e, dir.as_fd(), name, &raw)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&raw, "symlink without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                rustix::fs::symlinkat(target.as_str(), &dir, name.as_str())
                    .map_err(io("creating symlink", &raw))?;
            }
            tar::EntryType::Link => {
                // A link shares its target's metadata: nothing more to set.
                let target = self.hard_link(&e, dir.as_fd(), name, &raw)?;
                if let Some(i) = &mut self.index {
                    i.record_link(&comps.join("/"), &target.join("/"));
                }
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.is_root {
                    return Ok(()); // only root may make device nodes; skip like rootless Docker
                }
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                rustix::fs::mknodat(&dir, name.as_str(), ft, mode, dev)
                    .map_err(io("creating device node", &raw))?;
            }
            other => {
                return Err(entry_err(&raw, format!("unsupported entry type {other:?}")));
            }
        }
        set_metadata(&mut e, dir.as_fd(), name, mode, &raw)?;
        if let Some(i) = &mut self.index {
            let meta = Meta {
                kind: kind.as_byte(),
                mode: mode.as_raw_mode(),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                link: &h.link_name_bytes().unwrap_or_default(),
            };
            i.record(&comps.join("/"), &meta, content.as_ref());
        }
        let times = timestamps(h.mtime().unwrap_or(0));
        if is_dir {
            self.dir_times.push((comps.clone(), times));
        } else {
            rustix::fs::utimensat(&dir, name.as_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io("setting the times of", &raw))?;
        }
        Ok(())
    }

    /// Applies a whiteout entry (an opaque directory or a deleted name) in `dir`; false if
    /// `name` is not one.
    fn whiteout(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &str,
        parent: &[String],
        raw: &str,
    ) -> Result<bool, UnpackError> {
        if name == OPAQUE {
            rustix::fs::fsetxattr(
                dir,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(io("marking opaque", raw))?;
            if let Some(i) = &mut self.index {
                i.remove_under(&parent.join("/"), false);
            }
            self.opaque.insert(parent.to_vec());
            return Ok(true);
        }
        let Some(hidden) = name.strip_prefix(WHITEOUT) else {
            return Ok(false);
        };
        if hidden.starts_with(WHITEOUT) || hidden.is_empty() {
            return Ok(true); // aufs metadata (.wh..wh.plnk etc.): meaningless here
        }
        clear_for(dir, hidden, false).map_err(io("replacing", raw))?;
        if let Some(i) = &mut self.index {
            let mut path = parent.to_vec();
            path.push(hidden.to_string());
            i.remove_under(&path.join("/"), true);
        }
        rustix::fs::mknodat(dir, hidden, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(io("creating the whiteout for", raw))?;
        Ok(true)
    }

    /// Writes a regular file's content, within the layer's byte budget; the file must be as
    /// long as its header says. The content's digest when indexing.
    fn write_file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &str,
        raw: &str,
    ) -> Result<Option<Digest>, UnpackError> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io("creating", raw))?;
        let mut f = std::fs::File::from(fd);
        let want = e.header().size().map_err(|err| entry_err(raw, err))?;
        let budget = self.limits.max_bytes.saturating_sub(self.written);
        let mut body = e.take(budget.saturating_add(1));
        // Hashed only when indexing: a pulled layer's files need no digest of their own.
        let (n, digest) = match self.index.is_some() {
            true => {
                let mut hashed = HashingReader::new(body);
                let n = std::io::copy(&mut hashed, &mut f);
                (n, Some(hashed.finish().0))
            }
            false => (std::io::copy(&mut body, &mut f), None),
        };
        let n = n.map_err(|err| match err.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                entry_err(raw, "the layer ends inside this file (truncated?)")
            }
            _ => UnpackError::Read(err),
        })?;
        self.written += n;
        if self.written > self.limits.max_bytes {
            return Err(UnpackError::TooLarge(self.limits.max_bytes));
        }
        if n != want {
            return Err(entry_err(
                raw,
                "the layer ends inside this file (truncated?)",
            ));
        }
        Ok(digest)
    }

    /// Makes `name` a hard link to an earlier entry of the layer (resolved inside the root);
    /// the target's components.
    fn hard_link<R: Read>(
        &self,
        e: &tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &str,
        raw: &str,
    ) -> Result<Vec<String>, UnpackError> {
        let target = e
            .link_name_bytes()
            .ok_or_else(|| entry_err(raw, "hard link without a target"))?;
        let target = String::from_utf8_lossy(&target).into_owned();
        let tcomps = components(&target)
            .map_err(|_| entry_err(raw, format!("hard link to {target:?} outside the layer")))?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(entry_err(raw, "hard link to the layer root"));
        };
        let tdir = open_dir(self.root, tparent, raw)?;
        rustix::fs::linkat(&tdir, tname.as_str(), dir, name, AtFlags::empty()).map_err(|err| {
            entry_err(
                raw,
                format!("hard link to {target:?} (not in this layer?): {err}"),
            )
        })?;
        Ok(tcomps)
    }
}

/// Sets an entry's owner first (chown clears setuid bits), then, but for a symlink, its mode
/// and extended attributes.
fn set_metadata<R: Read>(
    e: &mut tar::Entry<'_, R>,
    dir: BorrowedFd<'_>,
    name: &str,
    mode: Mode,
    raw: &str,
) -> Result<(), UnpackError> {
    let h = e.header();
    let uid = h.uid().ok().map(|u| rustix::fs::Uid::from_raw(u as u32));
    let gid = h.gid().ok().map(|g| rustix::fs::Gid::from_raw(g as u32));
    rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io("setting the owner of", raw))?;
    if h.entry_type() == tar::EntryType::Symlink {
        return Ok(());
    }
    rustix::fs::chmodat(dir, name, mode, AtFlags::empty())
        .map_err(io("setting the mode of", raw))?;
    let Ok(Some(exts)) = e.pax_extensions() else {
        return Ok(());
    };
    let mut xattrs = Vec::new();
    for ext in exts.flatten() {
        if let (Ok(k), v) = (ext.key(), ext.value_bytes()) {
            if let Some(attr) = k.strip_prefix("SCHILY.xattr.") {
                xattrs.push((attr.to_string(), v.to_vec()));
            }
        }
    }
    if xattrs.is_empty() {
        return Ok(());
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(io("opening", raw))?;
    for (k, v) in xattrs {
        rustix::fs::fsetxattr(&fd, k.as_str(), &v, rustix::fs::XattrFlags::empty())
            .map_err(io("setting an xattr on", raw))?;
    }
    Ok(())
}

/// Unpacks the (possibly compressed) layer stream `r` into the empty directory `dest`.
pub fn unpack(dest: &Path, r: impl Read, limits: Limits) -> Result<Unpacked, UnpackError> {
    let (_, plain) = decompress(r).map_err(UnpackError::Read)?;
    unpack_plain(dest, plain, limits)
}

/// Unpacks the (possibly compressed) tar `r` into the empty directory `dest` as [`unpack`]
/// does, recording what each path holds as its content streams through.
pub fn unpack_indexed(
    dest: &Path,
    r: impl Read,
    limits: Limits,
) -> Result<(Unpacked, ContentIndex), UnpackError> {
    let (_, plain) = decompress(r).map_err(UnpackError::Read)?;
    let (u, index) = unpack_with(dest, plain, limits, Some(ContentIndex::default()))?;
    Ok((u, index.unwrap_or_default()))
}

/// Unpacks an uncompressed layer tar.
pub fn unpack_plain(dest: &Path, r: impl Read, limits: Limits) -> Result<Unpacked, UnpackError> {
    unpack_with(dest, r, limits, None).map(|(u, _)| u)
}

fn unpack_with(
    dest: &Path,
    r: impl Read,
    limits: Limits,
    index: Option<ContentIndex>,
) -> Result<(Unpacked, Option<ContentIndex>), UnpackError> {
    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        action: "opening",
        path: dest.display().to_string(),
        source: e.into(),
    })?;
    let mut u = Unpacker {
        root: root.as_fd(),
        limits,
        is_root: rustix::process::geteuid().is_root(),
        written: 0,
        entries: 0,
        dir_times: Vec::new(),
        opaque: HashSet::new(),
        index,
    };
    let mut archive = tar::Archive::new(HashingReader::new(r));
    for e in archive.entries().map_err(UnpackError::Read)? {
        let e = e.map_err(|err| match err.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                UnpackError::Read(std::io::Error::other("the layer is truncated"))
            }
            _ => UnpackError::Read(err),
        })?;
        u.entry(e)?;
    }
    // Hash the rest of the stream too (end-of-archive blocks, padding): the diff id covers it.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(UnpackError::Read)?;
    let (diff_id, _, _) = rest.finish();
    for (comps, times) in u.dir_times.iter().rev() {
        let path = comps.join("/");
        if let Ok(fd) = berth_inroot::open_same_fs(
            root.as_fd(),
            Path::new(&path),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW,
        ) {
            let _ = rustix::fs::futimens(&fd, times);
        }
    }
    let unpacked = Unpacked {
        diff_id,
        size: u.written,
    };
    Ok((unpacked, u.index))
}
