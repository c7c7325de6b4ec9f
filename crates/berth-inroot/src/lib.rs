//! Paths that come from untrusted places (an image, a container's processes, a tar stream, a
//! request) resolved inside their root by descriptors, and trees walked the same way: the one
//! helper the whole project uses instead of joining strings.
//!
//! - [`open`] resolves a path with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..`
//!   stops at the root, symlinks (absolute or relative) are followed as if the root were `/`,
//!   `/proc/self/...`-style magic links are refused. The kernel does the walk, so a rename or a
//!   symlink swapped in during it cannot take it out of the root.
//! - [`open_parent`] gives the directory holding a path's last component, for `*at()` calls on
//!   the name itself (never followed).
//! - A walk ([`read_dir`], [`open_child_dir`], [`open_child_file`], [`read_link`]) goes from a
//!   directory descriptor to its children with `O_NOFOLLOW`, and takes the metadata of what it
//!   opened from the descriptor: a container that swaps a file and a symlink while the walk
//!   runs can make it see either, never the file the link points to.
//! - [`copy_tree`] copies a directory tree between two descriptors that way.
//!
//! Architecture invariant: no function here takes a path that it then uses with a path-based
//! system call; every name is relative to a descriptor.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::{Errno, Result};

/// How every path is resolved: inside the root, no magic links.
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` inside `root` with `flags` (`O_CLOEXEC` added). Absolute and relative paths are
/// both taken from the root.
pub fn open(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd> {
    openat2_retrying(root, path, flags, RESOLVE)
}

/// Like [`open`], refusing to cross onto another file system on the way (`RESOLVE_NO_XDEV`):
/// for trees that must not reach into a mount.
pub fn open_same_fs(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd> {
    openat2_retrying(root, path, flags, RESOLVE | ResolveFlags::NO_XDEV)
}

/// `openat2`, again when it answers `EAGAIN`: with `RESOLVE_IN_ROOT` the kernel gives up a walk
/// through `..` whenever any rename or mount happened on the system meanwhile (it cannot then
/// prove the walk stayed inside), which a busy host does all the time.
fn openat2_retrying(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            result => return result,
        }
    }
}

/// A readable directory inside `root`.
pub fn open_dir(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd> {
    open(root, path, OFlags::RDONLY | OFlags::DIRECTORY)
}

/// The directory holding `path`'s last component (opened inside `root`) and that component;
/// `None` when `path` names a directory itself: the root, or a path ending in `/`, `/.` or
/// `..` (which name the directory they lead to, followed if it is a link).
pub fn open_parent(root: BorrowedFd<'_>, path: &str) -> Result<(OwnedFd, Option<OsString>)> {
    let follow = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let parts: Vec<&OsStr> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(OsStr::new)
        .collect();
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let join = |parts: &[&OsStr]| parts.iter().collect::<PathBuf>();
    match parts.split_last() {
        Some((last, init)) if !follow && *last != OsStr::new("..") => Ok((
            open(root, &join(init), dir_flags)?,
            Some(last.to_os_string()),
        )),
        _ => Ok((open(root, &join(&parts), dir_flags)?, None)),
    }
}

/// `path` made lexically clean the way Go's `filepath.Clean` makes Docker's mount targets:
/// absolute, no `.`, no `..` above the root, no repeated or trailing slashes.
pub fn clean(path: &str) -> String {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut s = String::from("/");
    s.push_str(
        &out.iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

/// One name in a directory, with its metadata as `fstatat(AT_SYMLINK_NOFOLLOW)` saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub stat: Stat,
}

impl Entry {
    pub fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }
}

/// The entries of the directory `dir` (without `.` and `..`), sorted by name. A name that is
/// gone by the time it is looked at is left out (the directory changed under the walk).
pub fn read_dir(dir: BorrowedFd<'_>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    // A fresh descriptor: reading a directory moves its offset.
    let own = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for e in rustix::fs::Dir::read_from(&own)? {
        let e = e?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => out.push(Entry {
                name: name.to_os_string(),
                stat,
            }),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens the directory `name` in `dir`, never through a symlink (`ELOOP`/`ENOTDIR` if `name`
/// is no longer a directory), and its metadata from the opened descriptor.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(OwnedFd, Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, stat))
}

/// Opens the regular file `name` in `dir` for reading, never through a symlink; the metadata
/// comes from the opened descriptor. What is not a regular file by then is refused (`EINVAL`)
/// without ever being opened for reading: opening a device node can act on the device (arm a
/// watchdog, rewind a tape), a FIFO can block.
pub fn open_child_file(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(std::fs::File, Stat)> {
    let path = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    reopen_regular(path)
}

/// Opens `path` inside `root` for reading when it is a regular file (links inside the root
/// followed), with the same care as [`open_child_file`].
pub fn open_regular(root: BorrowedFd<'_>, path: &Path) -> Result<(std::fs::File, Stat)> {
    reopen_regular(open(root, path, OFlags::PATH)?)
}

/// An `O_PATH` descriptor reopened for reading through `/proc/self/fd/N` (the very inode it
/// holds, whatever its name names now) once `fstat` showed a regular file.
fn reopen_regular(path: OwnedFd) -> Result<(std::fs::File, Stat)> {
    let stat = rustix::fs::fstat(&path)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    let fd = rustix::fs::open(
        proc_fd(path.as_fd()),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((std::fs::File::from(fd), stat))
}

/// `/proc/self/fd/N` of an open descriptor.
fn proc_fd(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// An error of an open or read during a walk that only says the entry changed (went away, or
/// became something else) since it was listed: the walk goes on without it (`None`). Any other
/// error (`EMFILE`, `EIO`, `EACCES`...) is a failure of the walk.
pub fn skip_changed<T>(r: Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::INVAL | Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How deep a walk goes before it refuses (`ELOOP`-like "too deep"): every level holds a
/// descriptor and a stack frame, and a container can make a chain of directories as deep as
/// it likes.
pub const MAX_DEPTH: usize = 256;

/// The error a walk gives past [`MAX_DEPTH`].
pub fn too_deep() -> io::Error {
    io::Error::other(format!("directory tree deeper than {MAX_DEPTH} levels"))
}

/// The target of the symlink `name` in `dir` (`EINVAL` if it is no longer a link).
pub fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// Whether the directory `fd` is on one of the kernel's pseudo file systems (procfs, sysfs,
/// cgroupfs, devpts, mqueue, ...), which a copy of a container's files leaves out as Docker's
/// does: their content is the kernel's, not the container's.
pub fn is_pseudo_fs(fd: BorrowedFd<'_>) -> bool {
    const PSEUDO: &[i64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x7363_6673, // securityfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
        0x6e73_6673, // nsfs
        0x4249_4e4d, // binfmt_misc
        0x6165_676c, // pstore
        0x0187,      // autofs
        0x6573_5546, // fuse control
    ];
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(fd).is_ok_and(|s| PSEUDO.contains(&(s.f_type as i64)))
}

/// Removes `name` in `dir`, recursively if it is a directory, without following symlinks.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    remove_below(dir, name, 0)
}

fn remove_below(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    if depth >= MAX_DEPTH {
        return Err(Errno::LOOP);
    }
    let (sub, _) = open_child_dir(dir, name)?;
    for e in read_dir(sub.as_fd())? {
        remove_below(sub.as_fd(), &e.name, depth + 1)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Copies what is below the directory `src` into the directory `dst`, both descriptors:
/// directories, regular files, symlinks (as links, never followed), FIFOs and device nodes,
/// with modes, owners and times; the top's mode and owner go to `dst` too. What `dst` already
/// has at a name is replaced. Overlayfs whiteouts (0:0 character devices) are not copied.
pub fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let top = rustix::fs::fstat(src)?;
    copy_meta(dst, None, &top)?;
    copy_children(src, dst, 0)
}

fn copy_children(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Err(too_deep());
    }
    for e in read_dir(src)? {
        let name = e.name.as_os_str();
        match e.kind() {
            FileType::Directory => {
                let Some((from, stat)) = skip_changed(open_child_dir(src, name))? else {
                    continue;
                };
                clear(dst, name, true)?;
                match rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let (to, _) = open_child_dir(dst, name)?;
                copy_children(from.as_fd(), to.as_fd(), depth + 1)?;
                copy_meta(to.as_fd(), None, &stat)?;
            }
            FileType::RegularFile => {
                let Some((mut from, stat)) = skip_changed(open_child_file(src, name))? else {
                    continue;
                };
                clear(dst, name, false)?;
                let fd = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut to = std::fs::File::from(fd);
                io::copy(&mut from, &mut to)?;
                copy_meta(to.as_fd(), None, &stat)?;
            }
            FileType::Symlink => {
                let Some(target) = skip_changed(read_link(src, name))? else {
                    continue;
                };
                clear(dst, name, false)?;
                rustix::fs::symlinkat(&target, dst, name)?;
                copy_meta(dst, Some(name), &e.stat)?;
            }
            FileType::CharacterDevice if e.stat.st_rdev == 0 => {}
            kind @ (FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice) => {
                clear(dst, name, false)?;
                rustix::fs::mknodat(dst, name, kind, Mode::from_raw_mode(0o600), e.stat.st_rdev)?;
                copy_meta(dst, Some(name), &e.stat)?;
            }
            _ => {} // sockets and the unknown are not content
        }
    }
    Ok(())
}

/// Makes room for `name` in `dir`: whatever is there goes, except a directory when a directory
/// is coming (its content merges).
fn clear(dir: BorrowedFd<'_>, name: &OsStr, keep_dir: bool) -> io::Result<()> {
    if keep_dir {
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Ok(());
            }
        }
    }
    Ok(remove_all_at(dir, name)?)
}

/// Owner, mode and times of `stat` on `dir`/`name` (`name` `None`: on `dir` itself), never
/// through a link; a link's own mode cannot be set. Named entries other than links are nodes
/// this copy just made in a destination nobody else writes to.
fn copy_meta(dir: BorrowedFd<'_>, name: Option<&OsStr>, stat: &Stat) -> io::Result<()> {
    let uid = Some(rustix::fs::Uid::from_raw(stat.st_uid));
    let gid = Some(rustix::fs::Gid::from_raw(stat.st_gid));
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: stat.st_atime,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: stat.st_mtime,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    };
    let Some(name) = name else {
        // Owner first: a chown clears the set-id bits the mode then sets.
        rustix::fs::fchown(dir, uid, gid)?;
        rustix::fs::fchmod(dir, mode)?;
        return Ok(rustix::fs::futimens(dir, &times)?);
    };
    rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::Symlink {
        // By the inode just made, never by a name someone may have turned into a link.
        let node = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if FileType::from_raw_mode(rustix::fs::fstat(&node)?.st_mode) != kind {
            return Err(Errno::INVAL.into());
        }
        rustix::fs::chmod(proc_fd(node.as_fd()), mode)?;
    }
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

#[cfg(test)]
mod tests;
