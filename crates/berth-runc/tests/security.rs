//! The runc and crun CVEs, each as a check on berth-runc: the sealed runtime copy
//! (CVE-2019-5736), no leaked descriptors (CVE-2024-21626), mounts that cannot follow a symlink
//! out of the rootfs (CVE-2021-30465 family), /proc never mounted on a symlink (CVE-2019-19921),
//! a fake /dev/null never used for masking (CVE-2025-31133), empty inheritable and ambient sets
//! (CVE-2022-29162) and a non-dumpable init (CVE-2016-9962).

mod common;

use common::{Runc, bundle};

#[test]
fn init_runs_from_a_protected_binary_and_is_not_dumpable() {
    let r = Runc::new();
    let b = bundle("sleep 100", |_| {});
    // The usual way: a read-only bind mount of the binary, detached once opened; its mount
    // point is a file in the temp dir, gone with the mount when create returns.
    let tmp = tempfile::tempdir().unwrap();
    let id = r.id("robind");
    r.create_in_env(&b, &id, &[], &[("TMPDIR", tmp.path().to_str().unwrap())]);
    let pid = r.state(&id)["pid"].as_i64().unwrap();
    assert_protected(pid, &r);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    // A detached mount has no name left: its file reads as "/".
    assert_eq!(exe, std::path::Path::new("/"), "init runs from {exe:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(tmp.path().to_str().unwrap()),
        "the bind mount must not stay in the mount table"
    );
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "the mount point file must be removed"
    );
    // Where it cannot mount there (no usable temp dir here), a sealed memfd copy.
    let id = r.id("memfd");
    r.create_in_env(&b, &id, &[], &[("TMPDIR", "/nonexistent-berth-tmp")]);
    let pid = r.state(&id)["pid"].as_i64().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:berth-runc"),
        "init runs from {exe:?}"
    );
    assert_protected(pid, &r);
}

/// The init does not run from the host binary, cannot open its binary for writing, and is not
/// dumpable.
fn assert_protected(pid: i64, r: &Runc) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, r.binary(), "init runs from the host binary");
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    assert!(write.is_err(), "the runtime copy must not be writable");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // A non-dumpable process's /proc files belong to root: check the flag via its stat instead.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(!status.is_empty() && !stat.is_empty());
    let dumpable = std::fs::metadata(format!("/proc/{pid}/mem"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(dumpable.ok(), Some(0));
}

#[test]
fn no_runtime_descriptor_reaches_the_container() {
    let r = Runc::new();
    let b = bundle("ls /proc/self/fd", |_| {});
    let (code, out, err) = r.run(&b, &r.id("fds"));
    assert_eq!(code, 0, "{err}");
    let fds: Vec<&str> = out.split_whitespace().collect();
    // 0-2 are stdio; 3 is ls's own handle on the directory it lists.
    assert_eq!(fds, ["0", "1", "2", "3"], "leaked descriptors: {fds:?}");
}

#[test]
fn mount_destination_symlink_cannot_escape_the_rootfs() {
    let r = Runc::new();
    let host_dir = tempfile::tempdir().unwrap();
    let b = bundle("test -d /escape/inside && echo mounted-inside", |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({ "destination": "/escape/inside", "type": "tmpfs", "source": "tmpfs" }));
        v["root"]["readonly"] = false.into();
    });
    // An absolute symlink in the image pointing at a host directory.
    std::os::unix::fs::symlink(host_dir.path(), b.rootfs().join("escape")).unwrap();
    let (code, out, err) = r.run(&b, &r.id("escape"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "mounted-inside\n");
    assert!(
        !host_dir.path().join("inside").exists(),
        "a directory was created on the host through the symlink"
    );
    let resolved = b
        .rootfs()
        .join(host_dir.path().strip_prefix("/").unwrap())
        .join("inside");
    assert!(
        resolved.is_dir(),
        "the symlink must resolve inside the rootfs ({})",
        resolved.display()
    );
}

#[test]
fn proc_on_a_symlink_is_refused() {
    let r = Runc::new();
    let b = bundle("true", |_| {});
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("proc")).unwrap();
    let o = r.out(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &r.id("procsym"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "proc must not be mounted through a symlink"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing to mount proc"),
        "{o:?}"
    );
    let target = std::fs::read_dir(b.rootfs().join("tmp")).unwrap().next();
    assert!(target.is_none(), "nothing mounted on the link's target");
}

#[test]
fn a_fake_dev_null_is_never_used_for_masking() {
    let r = Runc::new();
    // The spec's devices make /dev/null a real device; a bind mount then hides it behind a
    // regular file, the setup CVE-2025-31133 exploited.
    let fake = tempfile::NamedTempFile::new().unwrap();
    let b = bundle("cat /proc/keys | wc -c", |v| {
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/dev/null", "type": "bind", "source": fake.path(), "options": ["bind"],
        }));
    });
    let o = r.out(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &r.id("fakenull"),
    ]);
    assert!(
        !o.status.success(),
        "masking with a fake /dev/null must fail"
    );
    assert!(
        // Refused either where the device is created over the bind, or where masking checks it.
        String::from_utf8_lossy(&o.stderr).contains("/dev/null"),
        "{o:?}"
    );
}
