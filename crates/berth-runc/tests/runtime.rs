//! berth-runc against the real kernel: what a container gets (isolation, root, identity,
//! capabilities, limits, hooks, terminal) and the lifecycle commands (create, start, state,
//! exec, pause, resume, kill, delete), each checked the way a user would check it.

mod common;

use std::time::Duration;

use common::{Runc, bundle, wait_for};

#[test]
fn run_prints_output_and_returns_exit_code() {
    let r = Runc::new();
    let (code, out, err) = r.run(&bundle("echo hello; exit 7", |_| {}), &r.id("exit"));
    assert_eq!(code, 7, "stderr: {err}");
    assert_eq!(out, "hello\n");
    assert_eq!(
        std::fs::read_dir(r.root()).unwrap().count(),
        0,
        "run must delete its state"
    );
}

#[test]
fn container_is_isolated() {
    let r = Runc::new();
    let b = bundle(
        "hostname; echo pid=$$; cat /proc/net/dev | tail -n +3 | cut -d: -f1; cut -d' ' -f5 /proc/self/mountinfo",
        |_| {},
    );
    let (code, out, err) = r.run(&b, &r.id("iso"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "berth-test");
    assert_eq!(lines[1], "pid=1");
    assert_eq!(lines[2], "lo", "a new network namespace has only lo: {out}");
    // Its own mount table: the container's mounts and none of the host's other mounts.
    let mounts = &lines[3..];
    for want in ["/", "/proc", "/dev", "/dev/pts", "/sys"] {
        assert!(
            mounts.contains(&want),
            "{want} not mounted in the container: {mounts:?}"
        );
    }
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_only = host
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| {
            ["/mnt", "/tmp", "/work", "/run"]
                .iter()
                .any(|p| m.starts_with(p))
        });
    for m in host_only {
        assert!(
            !mounts.contains(&m),
            "host mount {m} leaked into the container"
        );
    }
}

#[test]
fn readonly_root_refuses_writes_and_rw_root_accepts_them() {
    let r = Runc::new();
    let ro = bundle("touch /newfile && echo wrote", |v| {
        v["root"]["readonly"] = true.into()
    });
    let (code, out, err) = r.run(&ro, &r.id("ro"));
    assert_ne!(code, 0);
    assert!(
        out.is_empty() && err.contains("Read-only file system"),
        "{out} {err}"
    );
    let rw = bundle("touch /newfile && echo wrote", |v| {
        v["root"]["readonly"] = false.into()
    });
    let (code, out, _) = r.run(&rw, &r.id("rw"));
    assert_eq!((code, out.as_str()), (0, "wrote\n"));
    assert!(rw.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths_are_unreadable_and_readonly_paths_unwritable() {
    let r = Runc::new();
    let b = bundle(
        "cat /proc/keys /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname || echo ro-ok",
        |_| {},
    );
    let (code, out, err) = r.run(&b, &r.id("mask"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines[0], "0",
        "/proc/keys and /proc/timer_list must read empty"
    );
    assert_eq!(lines[1], "0", "/sys/firmware must be empty");
    assert_eq!(lines[2], "ro-ok", "/proc/sys must be read-only");
}

#[test]
fn capabilities_match_the_spec_and_inheritable_ambient_stay_empty() {
    let r = Runc::new();
    let b = bundle(
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
        |v| {
            let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL"]);
            v["process"]["capabilities"] = serde_json::json!({
                "bounding": caps, "effective": caps, "permitted": caps,
            });
        },
    );
    let (code, out, err) = r.run(&b, &r.id("caps"));
    assert_eq!(code, 0, "{err}");
    let get = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(get("CapEff"), "0000000000000021");
    assert_eq!(get("CapPrm"), "0000000000000021");
    assert_eq!(get("CapBnd"), "0000000000000021");
    assert_eq!(get("CapInh"), "0000000000000000");
    assert_eq!(get("CapAmb"), "0000000000000000");
}

#[test]
fn ambient_capabilities_are_raised_when_inheritable_and_skipped_otherwise() {
    let r = Runc::new();
    // CAP_KILL is inheritable, so it can be ambient; CAP_CHOWN is not (crun's default spec asks
    // for that), and crun, like us, starts the container without it.
    let b = bundle("grep -E '^Cap(Inh|Amb)' /proc/self/status", |v| {
        let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL"]);
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": ["CAP_KILL"], "ambient": caps,
        });
    });
    let (code, out, err) = r.run(&b, &r.id("ambient"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");
}

/// A profile written before close_range existed (Kubernetes' older RuntimeDefault, profiles
/// from before 2020) denies it: with noNewPrivileges false the filter is loaded early, and the
/// runtime used close_range after it, so every container failed ("marking descriptors
/// close-on-exec: Operation not permitted"). The descriptors are marked before any filter now.
#[test]
fn a_profile_that_denies_close_range_still_runs_the_container() {
    let r = Runc::new();
    for nnp in [false, true] {
        let b = bundle("echo ran", |v| {
            v["process"]["noNewPrivileges"] = serde_json::json!(nnp);
            v["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{ "names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }],
            });
        });
        let (code, out, err) = r.run(&b, &r.id(&format!("closerange-{nnp}")));
        assert_eq!(
            (code, out.as_str()),
            (0, "ran\n"),
            "noNewPrivileges {nnp}: {err}"
        );
    }
}

/// A capability name the kernel has no number for fails the create with a clear error and
/// leaves nothing (it used to be warned about and dropped).
#[test]
fn an_unknown_capability_fails_the_create() {
    let r = Runc::new();
    let b = bundle("true", |v| {
        v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_KILL", "CAP_FOO"]);
    });
    let id = r.id("unknowncap");
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown capability \"CAP_FOO\""),
        "{o:?}"
    );
    assert!(!r.root().join(&id).exists());
}

#[test]
fn seccomp_denied_syscall_returns_the_specs_errno() {
    let r = Runc::new();
    let b = bundle("mkdir /tmp/x; echo rc=$?", |v| {
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38 }],
        });
    });
    // The first run compiles the profile and keeps its BPF program in the root; the second
    // loads that program: both must deny alike.
    for round in ["compiled", "cached"] {
        let (code, out, err) = r.run(&b, &r.id(&format!("sec-{round}")));
        assert_eq!(code, 0, "{round}: {err}");
        assert!(
            err.contains("Function not implemented"),
            "{round}: ENOSYS (38) expected: {err}"
        );
        assert!(out.contains("rc=1"), "{round}: {out}");
        let cached: Vec<_> = std::fs::read_dir(r.root().join("@seccomp"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(cached.len(), 1, "{round}: one program kept: {cached:?}");
    }
    // A damaged cache file is ignored: the profile is compiled again and still denies.
    let dir = r.root().join("@seccomp");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        std::fs::write(e.path(), b"BSECCMP1garbage").unwrap();
    }
    let (code, _, err) = r.run(&b, &r.id("sec-damaged"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Function not implemented"), "{err}");
}

#[test]
fn rlimits_and_identity_apply() {
    let r = Runc::new();
    let b = bundle("ulimit -n; id", |v| {
        v["process"]["rlimits"] =
            serde_json::json!([{ "type": "RLIMIT_NOFILE", "soft": 512, "hard": 512 }]);
        v["process"]["user"] =
            serde_json::json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20] });
    });
    let (code, out, err) = r.run(&b, &r.id("ids"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "512");
    assert!(lines[1].starts_with("uid=1000 gid=1001"), "{}", lines[1]);
    assert!(lines[1].contains("groups=10,20"), "{}", lines[1]);
}

#[test]
fn memory_limit_is_enforced() {
    let r = Runc::new();
    let b = bundle(
        "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived",
        |v| {
            // No room in swap either (a host with active swap would take the buffer there):
            // memory+swap where the host accounts swap, else swappiness 0.
            let limit = 16 * 1024 * 1024;
            v["linux"]["resources"] = if berth_cgroups::Features::detect_host().swap_limit {
                serde_json::json!({ "memory": { "limit": limit, "swap": limit } })
            } else {
                serde_json::json!({ "memory": { "limit": limit, "swappiness": 0 } })
            };
        },
    );
    let (code, out, _) = r.run(&b, &r.id("mem"));
    assert!(
        !out.contains("survived"),
        "a 64 MiB buffer must not fit in 16 MiB"
    );
    assert_eq!(code, 137, "the OOM killer ends the container with SIGKILL");
}

/// runc's behaviour on a host that cannot honour a setting (an I/O weight where the disks use
/// mq-deadline or none, so neither CFQ's nor BFQ's weight file exists): the create fails and
/// says which file is missing, and leaves no state or cgroup behind. Where the host has the
/// feature, the value is applied and read back from inside the container's cgroup.
#[test]
fn a_setting_the_host_cannot_apply_fails_the_create_and_leaves_nothing() {
    let features = berth_cgroups::Features::detect_host();
    let r = Runc::new();
    let b = bundle("true", |v| {
        v["linux"]["resources"] = serde_json::json!({ "blockIO": { "weight": 300 } });
    });
    let id = r.id("blkioweight");
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    if features.blkio_weight {
        assert!(o.status.success(), "{o:?}");
        let v1 = |f: &str| format!("/sys/fs/cgroup/blkio/{id}/{f}");
        let weight = [
            v1("blkio.weight"),
            v1("blkio.bfq.weight"),
            format!("/sys/fs/cgroup/{id}/io.bfq.weight"),
            format!("/sys/fs/cgroup/{id}/io.weight"),
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
        let o2 = r.out(&["delete", "--force", &id]);
        assert!(o2.status.success(), "{o2:?}");
        let weight = weight.expect("an I/O weight file in the container's cgroup");
        let io_weight = berth_cgroups::blkio_weight_to_io_weight(300).to_string();
        assert!(
            weight.trim().ends_with("300") || weight.trim().ends_with(&io_weight),
            "{weight}"
        );
    } else {
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(err.contains("weight does not exist"), "{err}");
        assert!(!r.root().join(&id).exists(), "no state left behind");
        for dir in [
            "/sys/fs/cgroup/blkio",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup",
        ] {
            assert!(
                !std::path::Path::new(dir).join(&id).exists(),
                "no cgroup left in {dir}"
            );
        }
    }
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let r = Runc::new();
    let b = bundle(
        "for i in $(seq 1 30); do sleep 3 & done 2>&1; echo done",
        |v| {
            v["linux"]["resources"] = serde_json::json!({ "pids": { "limit": 10 } });
        },
    );
    let (_, out, err) = r.run(&b, &r.id("pids"));
    assert!(
        format!("{out}{err}").contains("can't fork"),
        "fork must fail at the limit: {out} {err}"
    );
}

#[test]
fn hooks_run_with_the_state_on_stdin() {
    let r = Runc::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let hook = |name: &str| serde_json::json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}.json")] });
    let b = bundle("true", |v| {
        v["hooks"] = serde_json::json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    let id = r.id("hooks");
    let (code, _, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(state["id"], id.as_str(), "{name}");
        assert_eq!(state["bundle"], b.path().to_str().unwrap(), "{name}");
    }
    let post: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("poststop.json")).unwrap())
            .unwrap();
    assert_eq!(post["status"], "stopped");
}

#[test]
fn lifecycle_create_start_pause_resume_kill_delete() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |v| {
        v["annotations"] = serde_json::json!({ "org.example/owner": "tests" });
    });
    let id = r.id("life");
    r.create(&b, &id);
    let st = r.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["annotations"]["org.example/owner"], "tests");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    r.ok(&["start", &id]);
    assert_eq!(r.status(&id), "running");
    let ps: Vec<i64> = serde_json::from_str(&r.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![pid]);

    r.ok(&["pause", &id]);
    assert_eq!(r.status(&id), "paused");
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer")
        .join(&id)
        .join("freezer.state");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    r.ok(&["resume", &id]);
    assert_eq!(r.status(&id), "running");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");

    let o = r.out(&["delete", &id]);
    assert!(
        !o.status.success(),
        "deleting a running container needs --force"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not stopped"));

    r.ok(&["kill", &id, "KILL"]);
    r.wait_status(&id, "stopped");
    assert_eq!(r.state(&id)["pid"], 0);
    let cgroup_dirs: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(&id))
        .collect();
    assert_eq!(
        cgroup_dirs.len(),
        1,
        "the container's cgroup exists until delete"
    );
    r.ok(&["delete", &id]);
    assert!(!r.root().join(&id).exists(), "delete removes the state");
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids")
            .join(&id)
            .exists(),
        "delete removes the cgroup"
    );
    let o = r.out(&["state", &id]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}

#[test]
fn kill_delivers_the_signal() {
    let r = Runc::new();
    let b = bundle(
        "trap 'echo got-term > /tmp/got; exit 3' TERM; touch /tmp/ready; while true; do sleep 0.05; done",
        |v| {
            v["root"]["readonly"] = false.into();
        },
    );
    let id = r.id("kill");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    // PID 1 ignores signals it has no handler for: wait until the trap is installed.
    let ready = b.rootfs().join("tmp/ready");
    wait_for(Duration::from_secs(10), "the trap to be set", || {
        ready.exists()
    })
    .unwrap();
    r.ok(&["kill", &id, "TERM"]);
    r.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/got")).unwrap(),
        "got-term\n"
    );
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |_| {});
    let id = r.id("exec");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let out = r.ok(&[
        "exec", &id, "sh", "-c",
        "hostname; [ \"$(readlink /proc/self/ns/net)\" = \"$(readlink /proc/1/ns/net)\" ] && echo same-net; \
         [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroup; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..3],
        &["berth-test", "same-net", "same-cgroup"],
        "{out}"
    );
    assert_ne!(lines[3], "1");
    let o = r.out(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "exec returns the process's exit code"
    );
    let o = r.out(&["exec", &id, "no-such-binary"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("executable file not found"),
        "{o:?}"
    );
}

#[test]
fn terminal_via_console_socket() {
    use std::os::unix::net::UnixListener;
    let r = Runc::new();
    let b = bundle("tty; echo term-ok", |v| {
        v["process"]["terminal"] = true.into()
    });
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let id = r.id("tty");
    let receiver = std::thread::spawn(move || common::receive_pty(&listener));
    r.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock_path.to_str().unwrap(),
        &id,
    ]);
    let master = receiver.join().unwrap();
    r.ok(&["start", &id]);
    let mut seen = String::new();
    wait_for(Duration::from_secs(10), "output on the pty", || {
        let mut buf = [0u8; 256];
        if let Ok(n) = rustix::io::read(&master, &mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.contains("term-ok")
    })
    .unwrap();
    assert!(
        seen.contains("/dev/pts/0"),
        "the process's tty is the container's pty: {seen:?}"
    );
}

#[test]
fn json_log_records_errors_for_callers() {
    let r = Runc::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let o = r.out(&[
        "--log",
        log.path().to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let line = std::fs::read_to_string(log.path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("does not exist"), "{v}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_writes_a_default_that_runs_and_is_not_overwritten() {
    let r = Runc::new();
    let b = bundle("true", |_| {});
    std::fs::remove_file(b.config_path()).unwrap();
    let o = r
        .cmd(&["spec", "--bundle", b.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    b.edit_spec_json(|v| {
        assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
        assert!(v["process"]["capabilities"].get("inheritable").is_none());
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(["echo", "from-spec"]);
    })
    .unwrap();
    let (code, out, err) = r.run(&b, &r.id("spec"));
    assert_eq!((code, out.as_str()), (0, "from-spec\n"), "{err}");
    let o = r
        .cmd(&["spec", "--bundle", b.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "an existing config.json is kept");
}

#[test]
fn features_reports_the_oci_features_document() {
    let r = Runc::new();
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["features"])).unwrap();
    assert_eq!(v["ociVersionMax"], "1.2.0");
    assert!(
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "user")
    );
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert!(
        v["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN")
    );
}

#[test]
fn a_tight_memory_limit_still_starts() {
    // The init's own pages count against the container's limit until it execs: they must be few.
    let r = Runc::new();
    let b = bundle("echo started", |v| {
        v["linux"]["resources"] = serde_json::json!({ "memory": { "limit": 1024 * 1024 } });
    });
    let (code, out, err) = r.run(&b, &r.id("tight"));
    assert_eq!((code, out.as_str()), (0, "started\n"), "{err}");
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_id() {
    let r = Runc::new();
    let b = bundle("id -u; cat /proc/self/uid_map; sleep 100", |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "type": "user" }));
        v["linux"]["uidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    });
    let id = r.id("userns");
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let status = r
        .cmd(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(err.path()).unwrap()
    );
    let pid = r.state(&id)["pid"].as_i64().unwrap();
    r.ok(&["start", &id]);
    wait_for(Duration::from_secs(10), "the container's output", || {
        std::fs::read_to_string(out.path()).unwrap().lines().count() >= 2
    })
    .unwrap();
    let text = std::fs::read_to_string(out.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside the container");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(1),
        Some("200000"),
        "an unprivileged id on the host: {uid}"
    );
}

#[test]
fn namespaces_are_joined_by_path() {
    let r = Runc::new();
    let a = bundle("sleep 100", |_| {});
    let a_id = r.id("ns-a");
    r.create(&a, &a_id);
    let a_pid = r.state(&a_id)["pid"].as_i64().unwrap();
    let b = bundle("sleep 100", |v| {
        for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" || ns["type"] == "ipc" {
                let name = if ns["type"] == "network" {
                    "net"
                } else {
                    "ipc"
                };
                ns["path"] = format!("/proc/{a_pid}/ns/{name}").into();
            }
        }
    });
    let b_id = r.id("ns-b");
    r.create(&b, &b_id);
    let b_pid = r.state(&b_id)["pid"].as_i64().unwrap();
    let ns = |pid: i64, name: &str| std::fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap();
    assert_eq!(
        ns(a_pid, "net"),
        ns(b_pid, "net"),
        "joined the network namespace"
    );
    assert_eq!(
        ns(a_pid, "ipc"),
        ns(b_pid, "ipc"),
        "joined the ipc namespace"
    );
    assert_ne!(
        ns(a_pid, "uts"),
        ns(b_pid, "uts"),
        "other namespaces stay its own"
    );
    assert_ne!(ns(b_pid, "net"), ns(std::process::id() as i64, "net"));
}

/// A UTS namespace joined by path gets the config's hostname and domainname set in it, as runc
/// does (pod sandboxes): the create used to be refused.
#[test]
fn hostname_is_set_in_a_uts_namespace_joined_by_path() {
    let r = Runc::new();
    let a = bundle("sleep 100", |_| {});
    let a_id = r.id("uts-a");
    r.create(&a, &a_id);
    let a_pid = r.state(&a_id)["pid"].as_i64().unwrap();
    let b = bundle("sleep 100", |v| {
        v["hostname"] = "joined-host".into();
        v["domainname"] = "joined-dom".into();
        for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "uts" {
                ns["path"] = format!("/proc/{a_pid}/ns/uts").into();
            }
        }
    });
    let b_id = r.id("uts-b");
    r.create(&b, &b_id);
    let out = r.ok(&[
        "exec",
        &a_id,
        "sh",
        "-c",
        "hostname; cat /proc/sys/kernel/domainname",
    ]);
    assert_eq!(out, "joined-host\njoined-dom\n", "set in A's namespace");
}

/// A mount owned by the test (a directory bound onto itself and made shared on the host, or a
/// tmpfs), detached when dropped.
struct TestMount(std::path::PathBuf);

impl TestMount {
    fn shared_bind(dir: &std::path::Path) -> Self {
        rustix::mount::mount_bind(dir, dir).unwrap();
        let m = TestMount(dir.to_path_buf());
        rustix::mount::mount_change(dir, rustix::mount::MountPropagationFlags::SHARED).unwrap();
        m
    }

    fn tmpfs(dir: &std::path::Path) -> Self {
        let flags = rustix::mount::MountFlags::empty();
        rustix::mount::mount("tmpfs", dir, "tmpfs", flags, None).unwrap();
        TestMount(dir.to_path_buf())
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The host's mount table lines that mention `dir`.
fn host_mounts_under(dir: &std::path::Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines()
        .filter(|l| l.contains(dir))
        .map(str::to_string)
        .collect()
}

/// Each rootfsPropagation reaches the container's own `/`, with the bundle on a shared mount
/// (pivot_root refuses a shared parent, and a shared new root used to fail it with EINVAL), and
/// nothing the container mounts shows up on the host.
#[test]
fn rootfs_propagation_is_applied_to_the_containers_root() {
    let r = Runc::new();
    let cases = [
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("slave", "master:"),
        ("private", ""),
        ("unbindable", "unbindable"),
    ];
    for (prop, want) in cases {
        let b = bundle(r#"awk '$5 == "/"' /proc/self/mountinfo"#, |v| {
            v["linux"]["rootfsPropagation"] = prop.into();
        });
        let _bind = TestMount::shared_bind(b.path());
        let before = host_mounts_under(b.path());
        let (code, out, err) = r.run(&b, &r.id(&format!("prop-{prop}")));
        assert_eq!(code, 0, "{prop}: {err}");
        let tags: Vec<&str> = out
            .split_whitespace()
            .skip(6)
            .take_while(|f| *f != "-")
            .collect();
        if want.is_empty() {
            assert!(tags.is_empty(), "{prop}: / is not private: {out}");
        } else {
            assert!(tags.iter().any(|t| t.starts_with(want)), "{prop}: {out}");
        }
        assert_eq!(
            host_mounts_under(b.path()),
            before,
            "{prop}: leaked to the host"
        );
    }
}

/// With rootfsPropagation slave, a mount made on the host under the rootfs after create
/// propagates into the container.
#[test]
fn a_slave_root_receives_mounts_made_on_the_host() {
    let r = Runc::new();
    let b = bundle("sleep 100", |v| {
        v["linux"]["rootfsPropagation"] = "slave".into()
    });
    let _bind = TestMount::shared_bind(b.path());
    let id = r.id("prop-recv");
    r.create(&b, &id);
    let dir = b.rootfs().join("mnt/from-host");
    std::fs::create_dir_all(&dir).unwrap();
    let _tmpfs = TestMount::tmpfs(&dir);
    std::fs::write(dir.join("marker"), "propagated").unwrap();
    let out = r.ok(&["exec", &id, "cat", "/mnt/from-host/marker"]);
    assert_eq!(out, "propagated");
}

#[test]
fn run_relays_a_terminal_without_a_console_socket() {
    // `runc spec` defaults to a terminal; `run` in the foreground relays the pty itself.
    let r = Runc::new();
    let b = bundle("tty; echo exit-code-next; exit 4", |v| {
        v["process"]["terminal"] = true.into()
    });
    let (code, out, err) = r.run(&b, &r.id("runtty"));
    assert_eq!(code, 4, "{err}");
    assert!(
        out.contains("/dev/pts/0\r\n"),
        "the process writes to a pty: {out:?}"
    );
    assert!(out.contains("exit-code-next"), "{out:?}");
    assert!(
        !r.root().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".sock"))
    );
}

#[test]
fn a_hook_that_times_out_fails_create_and_leaves_nothing() {
    let r = Runc::new();
    let b = bundle("true", |v| {
        v["hooks"] = serde_json::json!({
            "createRuntime": [{ "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1 }],
        });
    });
    let id = r.id("hooktimeout");
    let started = std::time::Instant::now();
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout must stop the hook"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("timed out"),
        "{o:?}"
    );
    assert!(!r.root().join(&id).exists(), "no state left behind");
}

#[test]
fn kill_all_signals_every_process_of_the_container() {
    let r = Runc::new();
    let b = bundle("sleep 1000 & sleep 1000 & wait", |v| {
        // Without a pid namespace the init's death would not end the others by itself.
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let id = r.id("killall");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    wait_for(Duration::from_secs(10), "three processes", || {
        serde_json::from_str::<Vec<i64>>(&r.ok(&["ps", "--format", "json", &id]))
            .unwrap()
            .len()
            == 3
    })
    .unwrap();
    r.ok(&["kill", "--all", &id, "KILL"]);
    wait_for(Duration::from_secs(10), "no process left", || {
        serde_json::from_str::<Vec<i64>>(&r.ok(&["ps", "--format", "json", &id]))
            .unwrap()
            .is_empty()
    })
    .unwrap();
    r.wait_status(&id, "stopped");
}

#[test]
fn exec_with_a_terminal_through_the_console_socket() {
    use std::os::unix::net::UnixListener;
    let r = Runc::new();
    let b = bundle("sleep 1000", |_| {});
    let id = r.id("exectty");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("exec.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || common::receive_pty(&listener));
    let o = r.out(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock_path.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo exec-tty-ok",
    ]);
    assert!(o.status.success(), "{o:?}");
    let master = receiver.join().unwrap();
    let mut seen = String::new();
    wait_for(Duration::from_secs(10), "output on the exec pty", || {
        let mut buf = [0u8; 256];
        if let Ok(n) = rustix::io::read(&master, &mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.contains("exec-tty-ok")
    })
    .unwrap();
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
}

#[test]
fn init_and_exec_processes_are_in_every_hierarchy_of_their_cgroup() {
    let r = Runc::new();
    let parent = format!("berth-test-cg-{}", std::process::id());
    let id = r.id("cgjoin");
    let path = format!("/{parent}/{id}");
    let b = bundle("sleep 1000", |v| {
        v["linux"]["cgroupsPath"] = path.clone().into();
    });
    r.create(&b, &id);
    // Seen from the host: every hierarchy (v1 controllers, name=systemd, the cgroup2 tree)
    // lists the container's cgroup, whoever moved the process there.
    let check = |pid: &str| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for line in text.lines() {
            assert!(line.ends_with(&format!(":{path}")), "{pid}: {line}\n{text}");
        }
    };
    check(&r.state(&id)["pid"].to_string());
    r.ok(&["start", &id]);
    let pid_file = b.path().join("exec.pid");
    // Detached, the process keeps whatever stdout it got: not a pipe we would wait on.
    let status = r
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    check(std::fs::read_to_string(&pid_file).unwrap().trim());
    r.ok(&["delete", "--force", &id]);
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hierarchy.path().join(&parent);
        assert!(!dir.join(&id).exists(), "{} left", dir.display());
        let _ = std::fs::remove_dir(dir);
    }
}
