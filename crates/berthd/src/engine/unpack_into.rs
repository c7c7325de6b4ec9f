//! Unpacking a `docker cp` upload into a directory of a container's root, through file
//! descriptors only: every directory is opened with `openat2(RESOLVE_IN_ROOT)` from the
//! container's root, and every entry is made with `*at` calls that never follow a link in the
//! last component, so neither `..` nor a planted symlink can put a byte outside the container.
//! A first pass reads the whole archive and refuses it (writing nothing) for a path that climbs
//! out of the target, a hard link to outside it, an entry type Docker does not unpack, or a
//! directory that a file would replace (`noOverwriteDirNonDir`).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

pub struct Options {
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

#[derive(Debug)]
pub enum Error {
    /// The target directory does not exist.
    NotFound,
    NotADirectory,
    /// The archive is refused (the message says why); nothing was written.
    Bad(String),
    Io(String),
}

fn io(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

fn archive(file: &Path) -> Result<tar::Archive<Box<dyn Read>>, Error> {
    let mut f = std::fs::File::open(file).map_err(|e| io("reopening the upload", e))?;
    let mut magic = [0u8; 2];
    let gzip = f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let f = std::fs::File::open(file).map_err(|e| io("reopening the upload", e))?;
    let r: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(tar::Archive::new(r))
}

/// A path as components below its top (`None`: it climbs out).
pub fn rel(raw: &[u8]) -> Option<Vec<&OsStr>> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Some(out)
}

fn under(dst: &Path, parts: &[&OsStr]) -> PathBuf {
    let mut p = dst.to_path_buf();
    for c in parts {
        p.push(c);
    }
    p
}

fn open_in(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    berth_inroot::open(root, path, flags)
}

fn dir_in(root: BorrowedFd<'_>, path: &Path) -> rustix::io::Result<OwnedFd> {
    open_in(root, path, OFlags::PATH | OFlags::DIRECTORY)
}

/// What is at `path` now, if anything (its last component not followed).
fn existing(root: BorrowedFd<'_>, path: &Path) -> Option<FileType> {
    let parent = dir_in(root, path.parent()?).ok()?;
    let st = rustix::fs::statat(&parent, path.file_name()?, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some(FileType::from_raw_mode(st.st_mode))
}

/// Unpacks the tar in `file` into the container directory `dst`.
pub fn unpack(root: BorrowedFd<'_>, dst: &str, file: &Path, opts: &Options) -> Result<(), Error> {
    let dst = PathBuf::from(dst);
    match open_in(root, &dst, OFlags::PATH) {
        Err(_) => return Err(Error::NotFound),
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd).map_err(|e| io("stat", e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(Error::NotADirectory);
            }
        }
    }
    check(root, &dst, file, opts)?;
    let mut dirs = Vec::new();
    let mut ar = archive(file)?;
    for entry in ar.entries().map_err(|e| io("reading the archive", e))? {
        let mut entry = entry.map_err(|e| io("reading the archive", e))?;
        if let Some(d) = apply(root, &dst, &mut entry, opts)? {
            dirs.push(d);
        }
    }
    // Directory times last: filling a directory changes its mtime.
    for (fd, t) in dirs {
        let _ = rustix::fs::futimens(&fd, &t);
    }
    Ok(())
}

/// The first pass: the whole archive must be acceptable before anything is written.
fn check(root: BorrowedFd<'_>, dst: &Path, file: &Path, opts: &Options) -> Result<(), Error> {
    use tar::EntryType as T;
    let bad = |m: String| Error::Bad(m);
    let mut ar = archive(file)?;
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("Error processing tar file: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("Error processing tar file: {e}")))?;
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let parts = rel(&raw).ok_or_else(|| {
            bad(format!(
                "invalid archive path {shown:?}: it leads outside the target directory"
            ))
        })?;
        let kind = entry.header().entry_type();
        match kind {
            T::Regular
            | T::Continuous
            | T::Directory
            | T::Symlink
            | T::Char
            | T::Block
            | T::Fifo => {}
            T::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                if rel(&target).is_none_or(|t| t.is_empty()) {
                    return Err(bad(format!(
                        "invalid hard link {shown:?}: its target {:?} is outside the archive",
                        String::from_utf8_lossy(&target)
                    )));
                }
            }
            T::XGlobalHeader => continue,
            other => {
                return Err(bad(format!(
                    "unhandled tar header type {:?} for {shown:?}",
                    other.as_byte() as char
                )));
            }
        }
        if parts.is_empty() || !opts.no_overwrite_dir_non_dir {
            continue;
        }
        let target = under(dst, &parts);
        match (existing(root, &target), kind == T::Directory) {
            (Some(FileType::Directory), false) => {
                return Err(bad(format!(
                    "cannot overwrite directory {:?} with non-directory {shown:?}",
                    target.display().to_string()
                )));
            }
            (Some(t), true) if t != FileType::Directory => {
                return Err(bad(format!(
                    "cannot overwrite non-directory {:?} with directory {shown:?}",
                    target.display().to_string()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Opens the directory `dst/parts`, making the missing ones (0755, root's).
fn ensure_dirs(root: BorrowedFd<'_>, dst: &Path, parts: &[&OsStr]) -> Result<OwnedFd, Error> {
    let mut path = dst.to_path_buf();
    let mut fd = dir_in(root, &path).map_err(|e| io("opening the target", e))?;
    for c in parts {
        path.push(c);
        fd = match dir_in(root, &path) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                rustix::fs::mkdirat(&fd, *c, Mode::from_raw_mode(0o755))
                    .map_err(|e| io(&format!("making {}", path.display()), e))?;
                dir_in(root, &path).map_err(|e| io(&format!("opening {}", path.display()), e))?
            }
            Err(e) => return Err(io(&format!("opening {}", path.display()), e)),
        };
    }
    Ok(fd)
}

/// Makes room for a new non-directory `name` in `dir`: an old file or link goes, a directory
/// stays (and the create fails on it).
fn make_room(dir: &OwnedFd, name: &OsStr) {
    if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        && FileType::from_raw_mode(st.st_mode) != FileType::Directory
    {
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
}

fn owner(h: &tar::Header, opts: &Options) -> (rustix::fs::Uid, rustix::fs::Gid) {
    if opts.copy_uid_gid {
        let id = |v: std::io::Result<u64>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
        (
            rustix::fs::Uid::from_raw(id(h.uid())),
            rustix::fs::Gid::from_raw(id(h.gid())),
        )
    } else {
        (rustix::fs::Uid::ROOT, rustix::fs::Gid::ROOT)
    }
}

fn times(h: &tar::Header) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Writes one entry; a directory comes back with its times, set once everything is in.
fn apply(
    root: BorrowedFd<'_>,
    dst: &Path,
    entry: &mut tar::Entry<'_, Box<dyn Read>>,
    opts: &Options,
) -> Result<Option<(OwnedFd, Timestamps)>, Error> {
    use tar::EntryType as T;
    let raw = entry.path_bytes().into_owned();
    let Some(parts) = rel(&raw) else {
        return Ok(None); // refused by the check already
    };
    let Some((name, parents)) = parts.split_last() else {
        return Ok(None); // the target itself
    };
    let h = entry.header().clone();
    let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
    let (uid, gid) = owner(&h, opts);
    let ts = times(&h);
    let dir = ensure_dirs(root, dst, parents)?;
    let at = |what: &str, e: Errno| io(&format!("{what} {}", under(dst, &parts).display()), e);
    match h.entry_type() {
        T::Directory => {
            match rustix::fs::mkdirat(&dir, *name, mode) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(at("making", e)),
            }
            let fd = rustix::fs::openat(
                &dir,
                *name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| at("opening", e))?;
            rustix::fs::fchown(&fd, Some(uid), Some(gid)).map_err(|e| at("chown", e))?;
            rustix::fs::fchmod(&fd, mode).map_err(|e| at("chmod", e))?;
            return Ok(Some((fd, ts)));
        }
        T::Regular | T::Continuous => {
            make_room(&dir, name);
            let fd = rustix::fs::openat(
                &dir,
                *name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode,
            )
            .map_err(|e| at("creating", e))?;
            let mut f = std::fs::File::from(fd);
            std::io::copy(entry, &mut f).map_err(|e| io("writing", e))?;
            rustix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| at("chown", e))?;
            // After chown, which clears set-id bits.
            rustix::fs::fchmod(&f, mode).map_err(|e| at("chmod", e))?;
            let _ = rustix::fs::futimens(&f, &ts);
        }
        T::Symlink => {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            make_room(&dir, name);
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &dir, *name)
                .map_err(|e| at("linking", e))?;
            let _ =
                rustix::fs::chownat(&dir, *name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW);
            let _ = rustix::fs::utimensat(&dir, *name, &ts, AtFlags::SYMLINK_NOFOLLOW);
        }
        T::Link => {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let Some(tparts) = rel(&target) else {
                return Ok(None);
            };
            let Some((tname, tparents)) = tparts.split_last() else {
                return Ok(None);
            };
            let tdir = dir_in(root, &under(dst, tparents)).map_err(|e| at("linking", e))?;
            make_room(&dir, name);
            rustix::fs::linkat(&tdir, *tname, &dir, *name, AtFlags::empty())
                .map_err(|e| at("linking", e))?;
        }
        kind @ (T::Char | T::Block | T::Fifo) => {
            let ft = match kind {
                T::Char => FileType::CharacterDevice,
                T::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let dev = rustix::fs::makedev(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            );
            make_room(&dir, name);
            rustix::fs::mknodat(&dir, *name, ft, mode, dev).map_err(|e| at("making", e))?;
            let _ =
                rustix::fs::chownat(&dir, *name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW);
        }
        _ => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_below_the_target() {
        assert_eq!(
            rel(b"./a/b/").unwrap(),
            vec![OsStr::new("a"), OsStr::new("b")]
        );
        assert_eq!(rel(b"a/../b").unwrap(), vec![OsStr::new("b")]);
        assert!(rel(b"../etc/passwd").is_none());
        assert!(rel(b"a/../../x").is_none());
        assert!(rel(b"/").unwrap().is_empty());
    }
}
