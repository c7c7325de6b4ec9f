//! A stored layer back to a layer tar (the inverse of `unpack.rs`): a `diff/` directory walked in
//! sorted order, with overlayfs whiteouts (0:0 character devices) written as `.wh.<name>` files
//! and opaque directories (`trusted.overlay.opaque=y`) as `.wh..wh..opq` entries, hard links as
//! link entries, and modes, owners and mtimes kept, so the same directory always gives the same
//! bytes (and the same digests). Used to push and save images whose layers came from no blob,
//! and by berthd for `docker export` (a merged rootfs) and `docker cp` (one path of it).

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Writes the tar of the layer directory `dir` to `out`.
pub fn write_layer(dir: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(&mut b, dir, Path::new(""), &mut links)?;
    b.into_inner()?.flush()
}

/// Writes `path` itself under the name `name`: a directory with everything beneath it, or one
/// file, link or device (the tar of `docker cp` out of a container). Links are not followed.
pub fn write_tree(path: &Path, name: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut h = header(&meta, tar::EntryType::Directory);
        put(&mut b, &mut h, name, None, io::empty())?;
        walk(&mut b, path, name, &mut links)?;
    } else {
        append(&mut b, path, name, &meta, &mut links)?;
    }
    b.into_inner()?.flush()
}

fn header(meta: &Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime().max(0) as u64);
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

fn opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    if !rel.as_os_str().is_empty() && opaque(dir) {
        let meta = std::fs::symlink_metadata(dir)?;
        let mut h = header(&meta, tar::EntryType::Regular);
        h.set_mode(0o644);
        put(b, &mut h, &rel.join(".wh..wh..opq"), None, io::empty())?;
    }
    for e in entries {
        let path = e.path();
        let name = rel.join(e.file_name());
        let meta = std::fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let wh = rel.join(format!(".wh.{}", e.file_name().to_string_lossy()));
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_mode(0o644);
            put(b, &mut h, &wh, None, io::empty())?;
        } else if ft.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory);
            put(b, &mut h, &name, None, io::empty())?;
            walk(b, &path, &name, links)?;
        } else {
            append(b, &path, &name, &meta, links)?;
        }
    }
    Ok(())
}

/// Appends one entry that is not a directory (sockets are skipped: they are not content).
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    meta: &Metadata,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        let mut h = header(meta, tar::EntryType::Symlink);
        put(b, &mut h, name, Some(&target), io::empty())?;
    } else if ft.is_file() {
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                let mut h = header(meta, tar::EntryType::Link);
                return put(b, &mut h, name, Some(first), io::empty());
            }
            links.insert(key, name.to_path_buf());
        }
        let mut h = header(meta, tar::EntryType::Regular);
        h.set_size(meta.len());
        put(b, &mut h, name, None, std::fs::File::open(path)?)?;
    } else {
        let kind = if ft.is_fifo() {
            tar::EntryType::Fifo
        } else if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            return Ok(());
        };
        let mut h = header(meta, kind);
        let dev = meta.rdev();
        h.set_device_major(rustix::fs::major(dev))?;
        h.set_device_minor(rustix::fs::minor(dev))?;
        put(b, &mut h, name, None, io::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        write_tree(&src.path().join("d/."), Path::new("."), &mut tar).unwrap();
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
