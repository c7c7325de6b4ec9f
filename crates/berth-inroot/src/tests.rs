//! The resolution rules and the walk, against real directories: `..`, absolute and relative
//! symlinks, magic links, and a file swapped with a link to the host while a copy runs.

use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn dir_fd(p: &Path) -> OwnedFd {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

fn read(root: &OwnedFd, path: &str) -> io::Result<String> {
    let fd = open(root.as_fd(), Path::new(path), OFlags::RDONLY)?;
    io::read_to_string(std::fs::File::from(fd))
}

/// A root with `etc/passwd` ("inside"), beside a host directory with its own `etc/passwd`
/// ("HOST"), and links that would lead out of the root if followed on the host.
fn sandbox() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "inside").unwrap();
    std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
    std::fs::write(tmp.path().join("etc/passwd"), "HOST").unwrap();
    let host_etc = tmp.path().join("etc");
    std::os::unix::fs::symlink(&host_etc, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../..", root.join("rel")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etclink")).unwrap();
    (tmp, root)
}

#[test]
fn dotdot_and_symlinks_stay_inside_the_root() {
    let (_tmp, root) = sandbox();
    let fd = dir_fd(&root);
    assert_eq!(read(&fd, "/etc/passwd").unwrap(), "inside");
    assert_eq!(read(&fd, "../../../etc/passwd").unwrap(), "inside");
    assert_eq!(read(&fd, "rel/etc/passwd").unwrap(), "inside");
    assert_eq!(read(&fd, "etclink/passwd").unwrap(), "inside");
    // An absolute link to a host path names that path inside the root, where it is absent.
    assert!(read(&fd, "abs/passwd").is_err());
    let (parent, last) = open_parent(fd.as_fd(), "/rel/../etclink").unwrap();
    assert_eq!(last.as_deref(), Some(OsStr::new("etclink")));
    assert_eq!(
        read_link(parent.as_fd(), OsStr::new("etclink")).unwrap(),
        Path::new("/etc")
    );
    let (_, last) = open_parent(fd.as_fd(), "/etclink/").unwrap();
    assert_eq!(last, None, "a trailing slash names the directory itself");
}

#[test]
fn magic_links_are_refused() {
    let slash = dir_fd(Path::new("/"));
    let err = open(
        slash.as_fd(),
        Path::new("/proc/self/root/etc"),
        OFlags::PATH,
    )
    .unwrap_err();
    assert_eq!(err, Errno::LOOP);
}

#[test]
fn clean_is_gos_filepath_clean_for_absolute_targets() {
    assert_eq!(clean("/../../../../etc/x"), "/etc/x");
    assert_eq!(clean("/a/./b//c/"), "/a/b/c");
    assert_eq!(clean("/a/../.."), "/");
    assert_eq!(clean("rel/x"), "/rel/x");
}

#[test]
fn copy_tree_keeps_links_as_links_and_metadata() {
    let (tmp, root) = sandbox();
    let src = root.join("etc");
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/tool"), "bin").unwrap();
    std::fs::set_permissions(src.join("sub/tool"), PermissionsExt::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", src.join("shadow")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    copy_tree(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dst.join("passwd")).unwrap(),
        "inside"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("sub/tool")).unwrap(),
        "bin"
    );
    assert_eq!(
        std::fs::metadata(dst.join("sub/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::read_link(dst.join("shadow")).unwrap(),
        Path::new("/etc/shadow")
    );
    let fifo = std::fs::symlink_metadata(dst.join("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!(fifo.mode() & 0o777, 0o640);
}

/// The container's side of a cp-out race: `f` (its own file) and `l` (a link to the host's
/// secret) are exchanged with `renameat2(RENAME_EXCHANGE)` as fast as possible while the copy
/// runs. Whatever the copy meets, a file or a link, it never copies the host's file.
#[test]
fn a_swap_during_the_walk_never_reads_outside() {
    let (tmp, root) = sandbox();
    let src = root.join("race");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "inside").unwrap();
    let secret = tmp.path().join("etc/passwd");
    std::os::unix::fs::symlink(&secret, src.join("l")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir) = (stop.clone(), dir_fd(&src));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = rustix::fs::renameat_with(
                    &dir,
                    "f",
                    &dir,
                    "l",
                    rustix::fs::RenameFlags::EXCHANGE,
                );
            }
        })
    };
    let mut copies = 0;
    for i in 0..300 {
        let dst = tmp.path().join(format!("out{i}"));
        std::fs::create_dir(&dst).unwrap();
        copy_tree(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap();
        for name in ["f", "l"] {
            // A copied link stays a link (to the host's path, harmless in the container);
            // a copied file must hold the container's own bytes.
            // (An entry that changed kind between its stat and its open is left out.)
            let Ok(meta) = std::fs::symlink_metadata(dst.join(name)) else {
                continue;
            };
            if meta.is_file() {
                let text = std::fs::read_to_string(dst.join(name)).unwrap();
                assert_eq!(
                    text, "inside",
                    "copy {i} read the host's file through {name}"
                );
                copies += 1;
            } else {
                assert!(meta.file_type().is_symlink());
            }
        }
        std::fs::remove_dir_all(&dst).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(copies > 0, "the file itself was copied at times");
}

#[test]
fn pseudo_file_systems_are_recognized() {
    assert!(is_pseudo_fs(dir_fd(Path::new("/proc")).as_fd()));
    let tmp = tempfile::tempdir().unwrap();
    assert!(!is_pseudo_fs(dir_fd(tmp.path()).as_fd()));
}
