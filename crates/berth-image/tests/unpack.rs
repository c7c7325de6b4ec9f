//! Layer unpacking on the real filesystem: a well-formed layer keeps what the image says
//! (whiteouts in overlayfs form, links, modes, xattrs, devices), the three compressions agree on
//! the diff id, and hostile layers are refused without writing anything outside the layer dir.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::Digest;
use berth_image::unpack::{Limits, UnpackError, unpack};
use tar::EntryType;

/// A tar stream built header by header, names written raw (so hostile ones stay hostile).
#[derive(Default)]
struct Layer(Vec<u8>);

impl Layer {
    fn add(
        &mut self,
        name: &str,
        kind: EntryType,
        data: &[u8],
        link: &str,
        mode: u32,
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            assert!(name.len() <= 100 && link.len() <= 100);
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.add(name, EntryType::Directory, b"", "", 0o755)
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add(name, EntryType::Regular, data, "", 0o644)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, EntryType::Symlink, b"", target, 0o777)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, EntryType::Link, b"", target, 0o644)
    }
    /// Raw header bytes (for sizes that lie).
    fn raw_header(&mut self, name: &str, size: u64) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// A layer dir inside a sandbox that also holds an `outside` dir hostile layers aim at.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/keep"), b"precious").unwrap();
        Sandbox { dir }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.dir.path().join("layer")
    }
    fn unpack(&self, tar: &[u8]) -> Result<berth_image::unpack::Unpacked, UnpackError> {
        unpack(&self.layer(), tar, Limits::default())
    }
    /// The sandbox outside the layer is exactly as it was made.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["layer", "outside"]);
        let inside: Vec<_> = std::fs::read_dir(self.dir.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(inside, ["keep"]);
        assert_eq!(
            std::fs::read(self.dir.path().join("outside/keep")).unwrap(),
            b"precious"
        );
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(path, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

#[test]
fn a_good_layer_keeps_what_the_image_says_in_overlayfs_form() {
    let mut l = Layer::default();
    l.dir("./")
        .dir("bin/")
        .file("bin/tool", b"#!/bin/sh\necho hi\n")
        .add("bin/suid", EntryType::Regular, b"x", "", 0o4755)
        .symlink("bin/sh", "/bin/tool")
        .hardlink("bin/tool2", "bin/tool")
        .dir("etc/")
        .file("etc/.wh.gone", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .add("run.fifo", EntryType::Fifo, b"", "", 0o600)
        .file("deep/auto/parent", b"made");
    let plain = l.finish();
    // A PAX xattr on one file.
    let mut with_xattr = tar::Builder::new(Vec::new());
    with_xattr
        .append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    with_xattr.append_data(&mut h, "tagged", &b"t"[..]).unwrap();
    let xattr_tar = with_xattr.into_inner().unwrap();

    let sb = Sandbox::new();
    let u = sb.unpack(&plain).unwrap();
    assert_eq!(u.diff_id, Digest::of(&plain));
    let root = sb.layer();
    assert_eq!(
        std::fs::read(root.join("bin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    let suid = std::fs::metadata(root.join("bin/suid")).unwrap();
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/tool2")).unwrap().ino(),
        std::fs::metadata(root.join("bin/tool")).unwrap().ino()
    );
    let wh = std::fs::symlink_metadata(root.join("etc/gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout"
    );
    assert!(!root.join("etc/.wh.gone").exists());
    assert_eq!(
        xattr(&root.join("var"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(!root.join("var/.wh..wh..opq").exists());
    assert!(
        std::fs::symlink_metadata(root.join("run.fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::read(root.join("deep/auto/parent")).unwrap(),
        b"made"
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/tool")).unwrap().mtime(),
        1_700_000_000
    );
    sb.assert_outside_untouched();

    let sb = Sandbox::new();
    sb.unpack(&xattr_tar).unwrap();
    assert_eq!(
        xattr(&sb.layer().join("tagged"), "user.berth"),
        Some(b"yes".to_vec())
    );

    // gzip and zstd of the same tar: same files, same diff id.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 1).unwrap();
    for compressed in [gz, zst] {
        let sb = Sandbox::new();
        let u = sb.unpack(&compressed).unwrap();
        assert_eq!(u.diff_id, Digest::of(&plain));
        assert!(sb.layer().join("bin/tool").is_file());
    }
}

#[test]
fn device_nodes_are_made_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: device nodes are skipped by design, nothing to check");
        return;
    }
    let mut l = Layer::default();
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"null");
    h.set_entry_type(EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    l.0.extend_from_slice(h.as_bytes());
    let sb = Sandbox::new();
    sb.unpack(&l.finish()).unwrap();
    let m = std::fs::symlink_metadata(sb.layer().join("null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
}

fn refused(tar: &[u8], why: &str) {
    let sb = Sandbox::new();
    let e = sb.unpack(tar).expect_err(why);
    let msg = e.to_string();
    println!("{why}: {msg}");
    sb.assert_outside_untouched();
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    let e = Sandbox::new()
        .unpack(&Layer::default().file("../outside/pwned", b"x").finish())
        .unwrap_err();
    assert!(e.to_string().contains("\"..\""), "{e}");
    refused(
        &Layer::default()
            .file("a/../../outside/pwned", b"x")
            .finish(),
        "nested ..",
    );
    let e = Sandbox::new()
        .unpack(&Layer::default().file("/tmp/pwned", b"x").finish())
        .unwrap_err();
    assert!(e.to_string().contains("absolute"), "{e}");
}

#[test]
fn a_symlink_cannot_carry_writes_outside() {
    let sb = Sandbox::new();
    let outside = sb.dir.path().join("outside");
    for target in [
        outside.to_str().unwrap().to_string(),
        "../outside".to_string(),
        "../../../../../../outside".to_string(),
    ] {
        let sb = Sandbox::new();
        let tar = Layer::default()
            .symlink("evil", &target)
            .file("evil/pwned", b"x")
            .finish();
        let r = sb.unpack(&tar);
        // Either refused, or written inside the layer where the link resolves in-root.
        if r.is_ok() {
            assert!(!sb.dir.path().join("outside/pwned").exists());
        }
        sb.assert_outside_untouched();
    }
    // A file entry over an existing symlink replaces the link, never writes through it.
    let sb = Sandbox::new();
    let tar = Layer::default()
        .symlink("keep", sb.dir.path().join("outside/keep").to_str().unwrap())
        .file("keep", b"overwritten?")
        .finish();
    sb.unpack(&tar).unwrap();
    assert_eq!(
        std::fs::read(sb.layer().join("keep")).unwrap(),
        b"overwritten?"
    );
    sb.assert_outside_untouched();
}

#[test]
fn hard_links_only_reach_inside_the_layer() {
    refused(
        &Layer::default().hardlink("l", "../outside/keep").finish(),
        "hard link with ..",
    );
    refused(
        &Layer::default().hardlink("l", "/etc/passwd").finish(),
        "hard link to an absolute path",
    );
    let sb = Sandbox::new();
    let tar = Layer::default()
        .symlink("s", sb.dir.path().join("outside").to_str().unwrap())
        .hardlink("l", "s/keep")
        .finish();
    let e = sb.unpack(&tar).unwrap_err();
    println!("hard link through a symlink: {e}");
    sb.assert_outside_untouched();
    assert_eq!(
        std::fs::metadata(sb.dir.path().join("outside/keep"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn whiteouts_cannot_delete_outside() {
    refused(
        &Layer::default().file("../outside/.wh.keep", b"").finish(),
        "whiteout with ..",
    );
    let sb = Sandbox::new();
    let tar = Layer::default()
        .symlink("s", sb.dir.path().join("outside").to_str().unwrap())
        .file("s/.wh.keep", b"")
        .finish();
    let _ = sb.unpack(&tar);
    sb.assert_outside_untouched();
}

#[test]
fn lying_sizes_long_names_and_broken_streams_are_refused() {
    let huge = Layer::default().raw_header("big", 1 << 40).finish();
    let e = Sandbox::new().unpack(&huge).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");

    let mut b = tar::Builder::new(Vec::new());
    let long = format!("d/{}", "n".repeat(300));
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, &long, &b"x"[..]).unwrap();
    let e = Sandbox::new().unpack(&b.into_inner().unwrap()).unwrap_err();
    assert!(e.to_string().contains("longer than 255"), "{e}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&Layer::default().file("f", &[7u8; 100_000]).finish())
        .unwrap();
    let gz = gz.finish().unwrap();
    refused(&gz[..gz.len() / 2], "truncated gzip");

    let limits = Limits {
        max_bytes: 10,
        max_entries: 100,
    };
    let sb = Sandbox::new();
    let e = unpack(
        &sb.layer(),
        &Layer::default().file("f", &[1u8; 100]).finish()[..],
        limits,
    );
    assert!(matches!(e, Err(UnpackError::TooLarge(10))), "{e:?}");
}
