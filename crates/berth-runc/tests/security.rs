//! The runc and crun CVEs, each as a check on berth-runc: the sealed runtime copy
//! (CVE-2019-5736), no leaked descriptors (CVE-2024-21626), mounts that cannot follow a symlink
//! out of the rootfs (CVE-2021-30465 family), /proc never mounted on a symlink (CVE-2019-19921),
//! a fake /dev/null never used for masking (CVE-2025-31133), empty inheritable and ambient sets
//! (CVE-2022-29162), a non-dumpable init (CVE-2016-9962), a container without a mount
//! namespace that never mounts in the caller's, and seccomp loaded right before execve.

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

/// The host's mount table, without the mounts other tests make under /tmp meanwhile.
fn host_mount_table() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| !l.split(' ').nth(4).unwrap_or("").starts_with("/tmp/"))
        .map(str::to_string)
        .collect()
}

/// A config without a mount namespace inherits the caller's, as the spec says: the init
/// chroots into the rootfs (no pivot_root, no propagation change, no mount in the host's
/// table), exec enters the same root, and what would need a mount is refused.
#[test]
fn without_a_mount_namespace_the_container_chroots_and_never_mounts() {
    let r = Runc::new();
    let shared_ns = |v: &mut serde_json::Value| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount");
        v["mounts"] = serde_json::json!([]);
        v["linux"]["maskedPaths"] = serde_json::json!([]);
        v["linux"]["readonlyPaths"] = serde_json::json!([]);
        v["root"]["readonly"] = false.into();
    };
    let b = bundle("cat /etc/berth-marker; ls /; sleep 100", shared_ns);
    std::fs::write(b.rootfs().join("etc/berth-marker"), "in the rootfs\n").unwrap();
    let before = host_mount_table();
    let id = r.id("nomntns");
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = r
        .cmd(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(out.reopen().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let pid = r.state(&id)["pid"].as_i64().unwrap();
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_eq!(
        ns(&pid.to_string()),
        ns("self"),
        "the caller's mount namespace"
    );
    r.ok(&["start", &id]);
    common::wait_for(std::time::Duration::from_secs(10), "the output", || {
        std::fs::read_to_string(out.path()).unwrap().contains("bin")
    })
    .unwrap();
    let text = std::fs::read_to_string(out.path()).unwrap();
    assert!(text.starts_with("in the rootfs\n"), "{text}");
    assert!(!text.contains("work"), "the host's / listed: {text}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        b.rootfs().canonicalize().unwrap()
    );
    let seen = r.ok(&["exec", &id, "sh", "-c", "cat /etc/berth-marker; ls /"]);
    assert!(seen.starts_with("in the rootfs\n"), "exec: {seen}");
    assert!(!seen.contains("work"), "exec ran in the host's /: {seen}");
    r.ok(&["delete", "--force", &id]);
    assert_eq!(host_mount_table(), before, "the host's mount table changed");

    // Anything that needs a mount is refused before anything is made.
    type Edit = fn(&mut serde_json::Value);
    let refused: [(Edit, &str); 4] = [
        (
            |v| v["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]),
            "private MNT namespace",
        ),
        (
            |v| {
                v["mounts"] =
                    serde_json::json!([{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])
            },
            "private MNT namespace",
        ),
        (
            |v| v["root"]["readonly"] = true.into(),
            "private MNT namespace",
        ),
        (|v| v["root"]["path"] = "/".into(), "private MNT namespace"),
    ];
    for (edit, want) in refused {
        let b = bundle("true", |v| {
            shared_ns(v);
            edit(v);
        });
        let o = r.out(&[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            &r.id("nomnt-bad"),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err}");
        assert_eq!(
            std::fs::read_dir(r.root()).unwrap().count(),
            0,
            "state left"
        );
    }
    assert_eq!(host_mount_table(), before, "the host's mount table changed");
}

/// With noNewPrivileges the seccomp filter is the very last step before execve: a profile that
/// allows nothing but execve and what the program itself does still runs it, and the runtime's
/// own work (signal dispositions reset to default) is done before the filter, not denied by it.
#[test]
fn with_no_new_privileges_seccomp_is_loaded_right_before_execve() {
    let r = Runc::new();
    let b = bundle("", |v| {
        v["process"]["args"] = serde_json::json!(["grep", "SigIgn", "/proc/self/status"]);
        v["process"]["noNewPrivileges"] = true.into();
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{
                // execve, the static busybox's startup (brk, arch_prctl, mprotect) and grep's
                // own work, found by trial: rt_sigaction, rt_sigprocmask and the rest are denied.
                "names": ["execve", "brk", "arch_prctl", "openat", "read", "write", "exit_group", "mprotect"],
                "action": "SCMP_ACT_ALLOW",
            }],
        });
    });
    // The first run compiles the profile, the second loads the cached program.
    for round in ["compiled", "cached"] {
        let (code, out, err) = r.run(&b, &r.id(&format!("late-seccomp-{round}")));
        assert_eq!(code, 0, "{round}: {err}");
        let ignored = out
            .strip_prefix("SigIgn:\t")
            .map(|m| u64::from_str_radix(m.trim(), 16));
        // Nothing ignored: SIGPIPE (which the runtime ignores) and glibc's reserved 32 and 33
        // (which a caller may have ignored) are back to their defaults.
        assert!(
            matches!(ignored, Some(Ok(0))),
            "{round}: signals still ignored (the runtime's reset was denied or incomplete): {out}"
        );
    }
}
