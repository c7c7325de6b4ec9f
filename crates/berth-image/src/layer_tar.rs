//! A stored layer back to a layer tar (the inverse of `unpack.rs`): a `diff/` directory walked in
//! sorted order, with overlayfs whiteouts (0:0 character devices) written as `.wh.<name>` files
//! and opaque directories (`trusted.overlay.opaque=y`) as `.wh..wh..opq` entries, hard links as
//! link entries, and modes, owners and mtimes kept, so the same directory always gives the same
//! bytes (and the same digests). Used to push and save images whose layers came from no blob,
//! and by berthd for `docker export` (a merged rootfs) and `docker cp` (one path of it).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_inroot::Entry;
use rustix::fs::{FileType, OFlags, Stat};

/// How a tree is walked when its content comes from a container.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Write the mount points of the kernel's pseudo file systems (`/proc`, `/sys`, ...) as
    /// empty directories, as Docker's copy leaves their content out.
    pub skip_pseudo_fs: bool,
}

type Links = HashMap<(u64, u64), PathBuf>;

/// Writes the tar of the layer directory `dir` to `out`.
pub fn write_layer(dir: &Path, out: impl Write) -> io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    write_layer_at(fd.as_fd(), out, TreeOptions::default())
}

/// Writes the tar of the directory `dir` (a descriptor: a merged rootfs for `docker export`).
/// The walk goes by descriptors and never follows a link, so a container changing its files
/// meanwhile can make it see either version of an entry, never a file outside `dir`.
pub fn write_layer_at(dir: BorrowedFd<'_>, out: impl Write, opts: TreeOptions) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(&mut b, dir, Path::new(""), &mut links, opts)?;
    b.into_inner()?.flush()
}

/// Writes the entry `entry` of the directory `parent` (or `parent` itself when `None`) under
/// the name `name`: a directory with everything beneath it, or one file, link or device (the
/// tar of `docker cp` out of a container). Links are not followed.
pub fn write_tree_at(
    parent: BorrowedFd<'_>,
    entry: Option<&OsStr>,
    name: &Path,
    out: impl Write,
    opts: TreeOptions,
) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    let (dir, stat) = match entry {
        None => {
            let (fd, stat) = berth_inroot::open_child_dir(parent, OsStr::new("."))?;
            (Some(fd), stat)
        }
        Some(e) => {
            let stat = rustix::fs::statat(parent, e, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                let (fd, stat) = berth_inroot::open_child_dir(parent, e)?;
                (Some(fd), stat)
            } else {
                (None, stat)
            }
        }
    };
    match (dir, entry) {
        (Some(dir), _) => {
            let mut h = header(&stat, tar::EntryType::Directory);
            put(&mut b, &mut h, name, None, io::empty())?;
            walk(&mut b, dir.as_fd(), name, &mut links, opts)?;
        }
        (None, Some(e)) => {
            let entry = Entry {
                name: e.to_os_string(),
                stat,
            };
            append(&mut b, parent, &entry, name, &mut links)?;
        }
        (None, None) => {}
    }
    b.into_inner()?.flush()
}

fn header(stat: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(stat.st_mode & 0o7777);
    h.set_uid(u64::from(stat.st_uid));
    h.set_gid(u64::from(stat.st_gid));
    h.set_mtime(stat.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Appends an entry named exactly `name`, byte for byte (a leading `./` included: the docker
/// CLI renames a `docker cp CTR:DIR/.` copy by it), with GNU long-name entries for names and
/// link targets over 100 bytes.
fn put<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &Path,
    link: Option<&Path>,
    data: impl Read,
) -> io::Result<()> {
    let name = name.as_os_str().as_bytes();
    if name.len() > 100 {
        long_name(b, tar::EntryType::GNULongName, name)?;
    }
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    if let Some(link) = link {
        let link = link.as_os_str().as_bytes();
        if link.len() > 100 {
            long_name(b, tar::EntryType::GNULongLink, link)?;
        }
        let field = &mut h.as_old_mut().linkname;
        field.fill(0);
        field[..link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    }
    h.set_cksum();
    b.append(h, data)
}

fn long_name<W: Write>(
    b: &mut tar::Builder<W>,
    kind: tar::EntryType,
    bytes: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(bytes.len() as u64 + 1);
    h.set_cksum();
    b.append(&h, bytes.chain(&[0u8][..]))
}

fn opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    rel: &Path,
    links: &mut Links,
    opts: TreeOptions,
) -> io::Result<()> {
    if rel.components().count() >= berth_inroot::MAX_DEPTH {
        return Err(berth_inroot::too_deep());
    }
    if opts.skip_pseudo_fs && berth_inroot::is_pseudo_fs(dir) {
        return Ok(());
    }
    if !rel.as_os_str().is_empty() && opaque(dir) {
        let mut h = header(&rustix::fs::fstat(dir)?, tar::EntryType::Regular);
        h.set_mode(0o644);
        put(b, &mut h, &rel.join(".wh..wh..opq"), None, io::empty())?;
    }
    for e in berth_inroot::read_dir(dir)? {
        let name = rel.join(&e.name);
        if e.kind() == FileType::CharacterDevice && e.stat.st_rdev == 0 {
            let wh = rel.join(format!(".wh.{}", e.name.to_string_lossy()));
            let mut h = header(&e.stat, tar::EntryType::Regular);
            h.set_mode(0o644);
            put(b, &mut h, &wh, None, io::empty())?;
        } else if e.kind() == FileType::Directory {
            // Gone or no longer a directory: the tree changed under the walk.
            let Some((sub, stat)) =
                berth_inroot::skip_changed(berth_inroot::open_child_dir(dir, &e.name))?
            else {
                continue;
            };
            let mut h = header(&stat, tar::EntryType::Directory);
            put(b, &mut h, &name, None, io::empty())?;
            walk(b, sub.as_fd(), &name, links, opts)?;
        } else {
            append(b, dir, &e, &name, links)?;
        }
    }
    Ok(())
}

/// Exactly `size` bytes of `r`: a file that grew is cut, one that shrank is padded with zeros,
/// so the entry always matches its header (the tar stays well formed while a container writes).
struct Exactly<R> {
    r: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends the entry `e` of `dir`, which is not a directory (sockets are skipped: they are not
/// content), opened or read by descriptor without following a link.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    e: &Entry,
    name: &Path,
    links: &mut Links,
) -> io::Result<()> {
    match e.kind() {
        FileType::Symlink => {
            let Some(target) = berth_inroot::skip_changed(berth_inroot::read_link(dir, &e.name))?
            else {
                return Ok(());
            };
            let mut h = header(&e.stat, tar::EntryType::Symlink);
            put(b, &mut h, name, Some(&target), io::empty())
        }
        FileType::RegularFile => {
            let Some((file, stat)) =
                berth_inroot::skip_changed(berth_inroot::open_child_file(dir, &e.name))?
            else {
                return Ok(());
            };
            let key = (stat.st_dev, stat.st_ino);
            if stat.st_nlink > 1 {
                if let Some(first) = links.get(&key) {
                    let mut h = header(&stat, tar::EntryType::Link);
                    return put(b, &mut h, name, Some(first), io::empty());
                }
                links.insert(key, name.to_path_buf());
            }
            let mut h = header(&stat, tar::EntryType::Regular);
            let size = u64::try_from(stat.st_size).unwrap_or(0);
            h.set_size(size);
            put(
                b,
                &mut h,
                name,
                None,
                Exactly {
                    r: file,
                    left: size,
                },
            )
        }
        kind => {
            let kind = match kind {
                FileType::Fifo => tar::EntryType::Fifo,
                FileType::CharacterDevice => tar::EntryType::Char,
                FileType::BlockDevice => tar::EntryType::Block,
                _ => return Ok(()),
            };
            let mut h = header(&e.stat, kind);
            let dev = e.stat.st_rdev;
            h.set_device_major(rustix::fs::major(dev))?;
            h.set_device_minor(rustix::fs::minor(dev))?;
            put(b, &mut h, name, None, io::empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    #[test]
    fn layer_round_trips_through_unpack_with_whiteouts_and_links() {
        let src = tempfile::tempdir().unwrap();
        let d = src.path();
        std::fs::create_dir_all(d.join("etc/conf.d")).unwrap();
        std::fs::write(d.join("etc/conf.d/a"), b"alpha").unwrap();
        std::fs::hard_link(d.join("etc/conf.d/a"), d.join("etc/a-link")).unwrap();
        std::os::unix::fs::symlink("conf.d/a", d.join("etc/sym")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("etc/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let mut tar = Vec::new();
        write_layer(d, &mut tar).unwrap();
        let mut again = Vec::new();
        write_layer(d, &mut again).unwrap();
        assert_eq!(tar, again, "the same directory gives the same bytes");
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/a-link",
                "etc/conf.d",
                "etc/conf.d/a",
                "etc/.wh.gone",
                "etc/sym"
            ]
        );
        let out = tempfile::tempdir().unwrap();
        crate::unpack::unpack(out.path(), &tar[..], crate::unpack::Limits::default()).unwrap();
        assert_eq!(
            std::fs::read(out.path().join("etc/conf.d/a")).unwrap(),
            b"alpha"
        );
        assert_eq!(
            std::fs::read_link(out.path().join("etc/sym")).unwrap(),
            Path::new("conf.d/a")
        );
        let gone = std::fs::symlink_metadata(out.path().join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        let (a, l) = (
            std::fs::metadata(out.path().join("etc/conf.d/a")).unwrap(),
            std::fs::metadata(out.path().join("etc/a-link")).unwrap(),
        );
        assert_eq!(a.ino(), l.ino(), "the hard link stays a hard link");
    }

    #[test]
    fn a_tree_keeps_its_dot_name_and_long_names_and_targets() {
        let src = tempfile::tempdir().unwrap();
        let long = "n".repeat(150);
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d").join(&long), b"x").unwrap();
        std::os::unix::fs::symlink(&long, src.path().join("d/l")).unwrap();
        let mut tar = Vec::new();
        let d = rustix::fs::open(
            src.path().join("d"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        write_tree_at(
            d.as_fd(),
            None,
            Path::new("."),
            &mut tar,
            TreeOptions::default(),
        )
        .unwrap();
        let entries: Vec<(String, Option<String>)> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap());
                (name, link)
            })
            .collect();
        assert_eq!(
            entries,
            [
                (".".to_string(), None),
                ("./l".to_string(), Some(long.clone())),
                (format!("./{long}"), None),
            ]
        );
    }
}
