//! berth-runc against clauses of the OCI runtime spec that the other suites do not cover:
//! mount options and relative mount paths, kill of a stopped container, the state handed to
//! hooks, poststop after a failed create, exec after config.json changed, sysctl checks,
//! hooks with a joined pid namespace, devices outside /dev or over a host /dev, the recursive
//! access-time options, `ps`, oomScoreAdj (of the init and of exec), the /dev symlinks, a second
//! start, and mounts applied in the listed order.

mod common;

use common::{Runc, bundle};

#[test]
fn tmpfs_accepts_defaults_and_nosymfollow() {
    let r = Runc::new();
    let b = bundle(
        "ln -s /etc/hostname /mnt/t/link && if cat /mnt/t/link; then echo FOLLOWED; fi; \
         grep ' /mnt/t ' /proc/self/mounts",
        |v| {
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                "options": ["defaults", "nosymfollow"],
            }));
        },
    );
    let id = r.id("mntopts");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("FOLLOWED"), "a symlink was followed: {out}");
    assert!(out.contains("nosymfollow"), "{out}");
}

#[test]
fn relative_mount_paths_are_relative_to_root_and_bundle() {
    let r = Runc::new();
    let b = bundle("cat /rel/dst/f /abs/f", |_| {});
    let src = b.path().join("hostdir");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "from-bundle\n").unwrap();
    let src_abs = src.to_str().unwrap().to_string();
    b.edit_spec_json(|v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        // A relative destination with an absolute source...
        mounts.push(serde_json::json!({
            "destination": "rel/dst", "type": "bind", "source": src_abs, "options": ["rbind"],
        }));
        // ...and an absolute destination with a source relative to the bundle.
        mounts.push(serde_json::json!({
            "destination": "/abs", "type": "bind", "source": "hostdir", "options": ["rbind"],
        }));
    })
    .unwrap();
    let id = r.id("relmnt");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "from-bundle\nfrom-bundle\n");
}

#[test]
fn kill_of_a_stopped_container_fails_with_or_without_all() {
    let r = Runc::new();
    let b = bundle("true", |_| {});
    let id = r.id("killstopped");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    r.wait_status(&id, "stopped");
    for args in [
        vec!["kill", &id, "KILL"],
        vec!["kill", "--all", &id, "KILL"],
    ] {
        let o = r.out(&args);
        assert!(
            !o.status.success(),
            "{args:?} succeeded on a stopped container"
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not running"),
            "{o:?}"
        );
    }
    assert_eq!(r.status(&id), "stopped");
}

/// A hook that saves its stdin (the state JSON) as `<dir>/<name>.json`.
fn save_state_hook(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let d = dir.display();
    serde_json::json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}.json")] })
}

fn read_state(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn container_hooks_get_the_in_container_pid_and_their_status() {
    let r = Runc::new();
    // The hooks run inside the container: the directory they write to is bound in.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let b = bundle("true", |v| {
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": d, "type": "bind", "source": d, "options": ["rbind"],
        }));
        v["hooks"] = serde_json::json!({
            "createContainer": [save_state_hook(dir.path(), "createContainer")],
            "startContainer": [save_state_hook(dir.path(), "startContainer")],
        });
    });
    let id = r.id("hookstate");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    for (name, status) in [
        ("createContainer", "creating"),
        ("startContainer", "created"),
    ] {
        let st = read_state(dir.path(), name);
        assert_eq!(st["status"], status, "{name}: {st}");
        // The init is pid 1 in the container's new pid namespace.
        assert_eq!(st["pid"], 1, "{name}: {st}");
        assert_eq!(st["id"], id.as_str(), "{name}");
    }
}

#[test]
fn a_failing_poststart_or_poststop_hook_does_not_skip_the_others() {
    let r = Runc::new();
    let dir = tempfile::tempdir().unwrap();
    let fail = serde_json::json!({ "path": "/bin/false" });
    let b = bundle("true", |v| {
        v["hooks"] = serde_json::json!({
            "poststart": [fail.clone(), save_state_hook(dir.path(), "poststart")],
            "poststop": [fail, save_state_hook(dir.path(), "poststop")],
        });
    });
    let id = r.id("hookfail");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    r.wait_status(&id, "stopped");
    r.ok(&["delete", &id]);
    assert_eq!(read_state(dir.path(), "poststart")["id"], id.as_str());
    assert_eq!(read_state(dir.path(), "poststop")["status"], "stopped");
    assert!(!r.root().join(&id).exists(), "no state left behind");
}

#[test]
fn poststop_hooks_run_when_create_fails_after_the_init_exists() {
    let r = Runc::new();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle("true", |v| {
        v["hooks"] = serde_json::json!({
            "createRuntime": [{ "path": "/bin/false" }],
            "poststop": [save_state_hook(dir.path(), "poststop")],
        });
    });
    let id = r.id("poststopfail");
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success(), "create succeeded: {o:?}");
    let st = read_state(dir.path(), "poststop");
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert!(!r.root().join(&id).exists(), "no state left behind");
}

#[test]
fn exec_ignores_config_json_edits_made_after_create() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |v| {
        v["root"]["readonly"] = false.into();
        v["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push("BERTH_MARK=at-create".into());
    });
    let id = r.id("execcfg");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    b.edit_spec_json(|v| {
        v["process"]["env"] = serde_json::json!(["PATH=/bin", "BERTH_MARK=edited"]);
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }],
        });
    })
    .unwrap();
    let out = r.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $BERTH_MARK; mkdir /tmp/made && echo made",
    ]);
    assert_eq!(out, "at-create\nmade\n");
}

#[test]
fn a_sysctl_of_a_namespace_the_container_does_not_own_is_refused_before_create() {
    let r = Runc::new();
    for (key, drop_ns) in [
        ("net.ipv4.ip_forward", Some("network")),
        ("kernel.shmmax", Some("ipc")),
        ("kernel.panic", None),
    ] {
        let b = bundle("true", |v| {
            if let Some(t) = drop_ns {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != t);
            }
            v["linux"]["sysctl"] = serde_json::json!({ key: "1" });
        });
        let id = r.id(&format!("sysctl-{}", drop_ns.unwrap_or("none")));
        let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        assert!(!o.status.success(), "{key} accepted: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(key) && err.contains("sysctl"), "{key}: {err}");
        assert!(!r.root().join(&id).exists(), "no state left for {key}");
    }
}

#[test]
fn hooks_run_in_the_runtime_pid_namespace_when_the_pid_namespace_is_joined() {
    let r = Runc::new();
    let a = bundle("sleep 100", |_| {});
    let a_id = r.id("pidns-a");
    r.create(&a, &a_id);
    let a_pid = r.state(&a_id)["pid"].as_i64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ns_hook = |name: &str| {
        let out = dir.path().join(name);
        serde_json::json!({ "path": "/bin/sh",
            "args": ["sh", "-c", format!("readlink /proc/self/ns/pid > {}", out.display())] })
    };
    let b = bundle("sleep 100", |v| {
        for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = format!("/proc/{a_pid}/ns/pid").into();
            }
        }
        v["hooks"] = serde_json::json!({
            "createRuntime": [ns_hook("createRuntime")],
            "prestart": [ns_hook("prestart")],
            "poststart": [ns_hook("poststart")],
        });
    });
    let b_id = r.id("pidns-b");
    r.create(&b, &b_id);
    r.ok(&["start", &b_id]);
    let b_pid = r.state(&b_id)["pid"].as_i64().unwrap();
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_eq!(ns(&b_pid.to_string()), ns(&a_pid.to_string()), "joined");
    let host = ns("self");
    for name in ["createRuntime", "prestart", "poststart"] {
        let got = std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
        assert_eq!(
            got.trim(),
            host.to_str().unwrap(),
            "{name} hook's pid namespace"
        );
    }
    // exec joins the same way and still works; its process is in the container's namespace.
    let out = r.ok(&["exec", &b_id, "readlink", "/proc/self/ns/pid"]);
    assert_eq!(out.trim(), ns(&a_pid.to_string()).to_str().unwrap());
}

/// A `linux.devices` entry of the null device (c 1:3) at `path`.
fn null_device_at(path: &str) -> serde_json::Value {
    serde_json::json!({ "path": path, "type": "c", "major": 1, "minor": 3, "fileMode": 438 })
}

#[test]
fn a_device_may_be_outside_dev() {
    let r = Runc::new();
    let b = bundle("echo gone > /opt/sub/null && ls -l /opt/sub/null", |v| {
        v["linux"]["devices"] = serde_json::json!([null_device_at("/opt/sub/null")]);
    });
    let id = r.id("devopt");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("crw-rw-rw-"), "{out}");
    assert!(out.contains("1,   3"), "{out}");
}

#[test]
fn a_different_file_at_a_device_path_fails_the_create() {
    let r = Runc::new();
    let b = bundle("true", |v| {
        v["linux"]["devices"] = serde_json::json!([null_device_at("/opt/null")]);
    });
    let file = b.path().join("rootfs/opt/null");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "image data\n").unwrap();
    let id = r.id("devclash");
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success(), "create succeeded: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/opt/null"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "image data\n");
    assert!(!r.root().join(&id).exists(), "no state left behind");
    // The same device already there is fine: it is kept.
    std::fs::remove_file(&file).unwrap();
    let b2 = bundle("ls -l /opt/null", |v| {
        v["linux"]["devices"] = serde_json::json!([null_device_at("/opt/null")]);
    });
    let made = b2.path().join("rootfs/opt/null");
    std::fs::create_dir_all(made.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &made,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let (code, out, err) = r.run(&b2, &r.id("devsame"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("crw-rw-rw-"), "mode applied: {out}");
}

#[test]
fn a_dev_bind_mount_is_never_touched() {
    let r = Runc::new();
    let host_dev = tempfile::tempdir().unwrap();
    std::fs::write(host_dev.path().join("null"), "host file\n").unwrap();
    let src = host_dev.path().to_str().unwrap().to_string();
    let b = bundle("ls /dev", |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        mounts.push(serde_json::json!({
            "destination": "/dev", "type": "bind", "source": src, "options": ["rbind"],
        }));
        // Masking binds /dev/null, which this /dev does not have as a device.
        v["linux"]["maskedPaths"] = serde_json::json!([]);
        v["linux"]["devices"] = serde_json::json!([null_device_at("/dev/null")]);
    });
    let id = r.id("devbind");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "null\n");
    let names: Vec<_> = std::fs::read_dir(host_dev.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["null"], "the host directory got new entries");
    let null = host_dev.path().join("null");
    assert!(std::fs::symlink_metadata(&null).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&null).unwrap(), "host file\n");
}

#[test]
fn recursive_access_time_negations_are_mount_attributes() {
    let r = Runc::new();
    let b = bundle("grep ' /mnt/' /proc/self/mounts", |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        for (dest, opts) in [
            ("/mnt/a", serde_json::json!(["rnoatime", "ratime"])),
            ("/mnt/b", serde_json::json!(["rnorelatime"])),
            ("/mnt/c", serde_json::json!(["rnoatime", "rnostrictatime"])),
        ] {
            mounts.push(serde_json::json!({
                "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts,
            }));
        }
    });
    let id = r.id("ratime");
    let (code, out, err) = r.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    let line = |m: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {m} ")))
            .unwrap_or_else(|| panic!("{m} not mounted: {out}"))
            .to_string()
    };
    assert!(line("/mnt/a").contains("relatime"), "{out}");
    assert!(!line("/mnt/a").contains("noatime"), "{out}");
    let b_line = line("/mnt/b");
    assert!(
        !b_line.contains("relatime") && !b_line.contains("noatime"),
        "strictatime: {out}"
    );
    assert!(line("/mnt/c").contains("relatime"), "{out}");
}

#[test]
fn ps_runs_the_hosts_ps_and_keeps_only_the_containers_lines() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |_| {});
    let id = r.id("ps");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let pid = r.state(&id)["pid"].as_i64().unwrap();
    // Default options: `ps -ef`.
    let out = r.ok(&["ps", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[..3], ["UID", "PID", "PPID"], "{out}");
    assert_eq!(
        lines[1].split_whitespace().nth(1),
        Some(pid.to_string().as_str())
    );
    assert!(lines[1].contains("sleep 1000"), "{out}");
    // Options of the caller's choosing, PID column anywhere.
    let out = r.ok(&["ps", &id, "-o", "comm,pid"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let pid_text = pid.to_string();
    assert_eq!(
        lines,
        [vec!["COMMAND", "PID"], vec!["sleep", pid_text.as_str()]],
        "{out}"
    );
    // Without a PID column there is nothing to filter on.
    let o = r.out(&["ps", &id, "-o", "comm"]);
    assert!(!o.status.success(), "{o:?}");
    // The JSON form is still the list of pids.
    let pids: Vec<i64> = serde_json::from_str(&r.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, [pid]);
}

#[test]
fn oom_score_adj_dev_symlinks_and_a_second_start() {
    let r = Runc::new();
    let b = bundle(
        "cat /proc/self/oom_score_adj; for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done",
        |v| v["process"]["oomScoreAdj"] = 123.into(),
    );
    let (code, out, err) = r.run(&b, &r.id("devlinks"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "123\npts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n"
    );
    // start of a container that is no longer `created` fails.
    let b = bundle("sleep 1000", |_| {});
    let id = r.id("start2");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let o = r.out(&["start", &id]);
    assert!(!o.status.success(), "second start succeeded: {o:?}");
    assert_eq!(r.status(&id), "running");
}

/// An exec'd process gets its own `oomScoreAdj` (`exec --process`), else the container's, as
/// the init does: set from the parent before it runs.
#[test]
fn exec_applies_oom_score_adj() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |v| v["process"]["oomScoreAdj"] = 123.into());
    let id = r.id("execoom");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let out = r.ok(&["exec", &id, "cat", "/proc/self/oom_score_adj"]);
    assert_eq!(out, "123\n", "the container's value");
    let dir = tempfile::tempdir().unwrap();
    let process = dir.path().join("process.json");
    let write = |extra: serde_json::Value| {
        let mut p = serde_json::json!({
            "args": ["cat", "/proc/self/oom_score_adj"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        });
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        std::fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
    };
    write(serde_json::json!({"oomScoreAdj": 456}));
    let out = r.ok(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(out, "456\n", "the process's own value");
    write(serde_json::json!({}));
    let out = r.ok(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(out, "123\n", "none given: the container's value");
}

/// Mounts are made in the listed order: a tmpfs at /a, then a tmpfs at /a/b and a bind at
/// /a/c, which are made inside the first (their mount points created in it) and stay visible.
#[test]
fn mounts_are_applied_in_the_listed_order() {
    let r = Runc::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("marker"), "bound\n").unwrap();
    let source = host.path().to_str().unwrap().to_string();
    let b = bundle(
        "cat /a/c/marker; touch /a/b/f && echo wrote; \
         grep -E ' /a(/b|/c)? ' /proc/self/mounts | cut -d' ' -f2",
        |v| {
            let mounts = v["mounts"].as_array_mut().unwrap();
            mounts.push(serde_json::json!({
                "destination": "/a", "type": "tmpfs", "source": "tmpfs",
            }));
            mounts.push(serde_json::json!({
                "destination": "/a/b", "type": "tmpfs", "source": "tmpfs",
            }));
            mounts.push(serde_json::json!({
                "destination": "/a/c", "type": "bind", "source": source,
                "options": ["rbind", "ro"],
            }));
        },
    );
    let (code, out, err) = r.run(&b, &r.id("mntorder"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "bound\nwrote\n/a\n/a/b\n/a/c\n", "{err}");
}

/// `update` with `checkBeforeUpdate`: a memory limit below what the container uses now is
/// refused and the old limit stays; one above it applies.
#[test]
fn check_before_update_refuses_a_limit_below_the_usage() {
    let r = Runc::new();
    let b = bundle("sleep 1000", |_| {});
    let id = r.id("checkupd");
    r.create(&b, &id);
    r.ok(&["start", &id]);
    let limit_file = [
        format!("/sys/fs/cgroup/memory/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/{id}/memory.max"),
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("the container's memory cgroup");
    let before = std::fs::read_to_string(&limit_file).unwrap();
    let update = |limit: u64| {
        let file = tempfile::NamedTempFile::new().unwrap();
        let json = serde_json::json!({"memory": {"limit": limit, "checkBeforeUpdate": true}});
        std::fs::write(file.path(), json.to_string()).unwrap();
        r.out(&["update", "-r", file.path().to_str().unwrap(), &id])
    };
    let refused = update(4096);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("checkBeforeUpdate"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&limit_file).unwrap(), before);
    let applied = update(512 << 20);
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (512u64 << 20).to_string()
    );
}
