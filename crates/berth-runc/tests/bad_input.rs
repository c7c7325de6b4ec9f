//! Bad input gets a clear error, exit code 1, and leaves no state behind: malformed config.json,
//! a missing rootfs, a duplicate id, unknown ids, an invalid id, duplicated namespaces or
//! rlimits, a hook timeout that is not positive, a namespace path of the wrong type, and
//! properties berth-runc does not implement.

mod common;

use common::{Runc, bundle};

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_state(r: &Runc) {
    let left: Vec<_> = std::fs::read_dir(r.root())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left behind: {left:?}");
}

#[test]
fn malformed_config_json_is_refused_cleanly() {
    let r = Runc::new();
    let b = bundle("true", |_| {});
    std::fs::write(
        b.config_path(),
        b"{\"ociVersion\": \"1.2.0\", \"process\": [",
    )
    .unwrap();
    let o = r.out(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &r.id("badjson"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("config.json"), "{}", stderr_of(&o));
    assert_no_state(&r);
}

#[test]
fn missing_config_and_missing_rootfs_are_named() {
    let r = Runc::new();
    let empty = tempfile::tempdir().unwrap();
    let o = r.out(&[
        "create",
        "--bundle",
        empty.path().to_str().unwrap(),
        &r.id("nocfg"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("config.json not found"),
        "{}",
        stderr_of(&o)
    );

    let b = bundle("true", |v| v["root"]["path"] = "no-such-rootfs".into());
    let o = r.out(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &r.id("noroot"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("rootfs"), "{}", stderr_of(&o));
    assert_no_state(&r);
}

#[test]
fn duplicate_id_fails_and_keeps_the_first_container() {
    let r = Runc::new();
    let b = bundle("sleep 100", |_| {});
    let id = r.id("dup");
    r.create(&b, &id);
    let o = r
        .cmd(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("container with id exists"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(r.status(&id), "created", "the first container is untouched");
}

#[test]
fn unknown_ids_get_container_does_not_exist() {
    let r = Runc::new();
    for args in [
        &["state", "ghost"][..],
        &["start", "ghost"],
        &["kill", "ghost", "KILL"],
        &["delete", "ghost"],
        &["pause", "ghost"],
        &["exec", "ghost", "true"],
    ] {
        let o = r.out(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr_of(&o).contains("does not exist"),
            "{args:?}: {}",
            stderr_of(&o)
        );
    }
    // runc's contract: delete --force of an unknown container succeeds.
    assert!(r.out(&["delete", "--force", "ghost"]).status.success());
}

#[test]
fn invalid_ids_are_refused() {
    let r = Runc::new();
    let b = bundle("true", |_| {});
    for id in ["../escape", "a/b", "..", "with space"] {
        let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), id]);
        assert_eq!(o.status.code(), Some(1), "{id}");
        assert!(
            stderr_of(&o).contains("invalid container id"),
            "{id}: {}",
            stderr_of(&o)
        );
    }
    assert_no_state(&r);
}

#[test]
fn a_failing_init_cleans_up_its_cgroup_and_state() {
    let r = Runc::new();
    let b = bundle("true", |v| {
        v["process"]["args"] = serde_json::json!(["/no/such/program"])
    });
    let id = r.id("noexec");
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("no such file or directory"),
        "{}",
        stderr_of(&o)
    );
    assert_no_state(&r);
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids")
            .join(&id)
            .exists(),
        "cgroup left behind"
    );
}

/// `create` of a bundle edited by `edit` fails with exit 1, an error containing `want`, and
/// leaves neither state nor a cgroup.
fn assert_create_refused(
    r: &Runc,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
    want: &str,
) {
    let b = bundle("true", edit);
    let id = r.id(name);
    let o = r.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr_of(&o));
    assert!(stderr_of(&o).contains(want), "{name}: {}", stderr_of(&o));
    assert_no_state(r);
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids")
            .join(&id)
            .exists(),
        "{name}: cgroup left behind"
    );
}

#[test]
fn duplicated_namespaces_and_rlimits_are_refused() {
    let r = Runc::new();
    assert_create_refused(
        &r,
        "dupns",
        |v| {
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            // The default spec has one already.
            ns.push(serde_json::json!({"type": "network"}));
        },
        "duplicated ns \"network\"",
    );
    assert_create_refused(
        &r,
        "duprlimit",
        |v| {
            v["process"]["rlimits"] = serde_json::json!([
                {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200},
            ])
        },
        "duplicate rlimit type \"RLIMIT_NOFILE\"",
    );
}

/// A property the runtime cannot apply fails the create (it used to be silently ignored).
#[test]
fn unsupported_properties_fail_the_create() {
    let r = Runc::new();
    let notify = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }],
    });
    let cases: [(&str, &str, serde_json::Value); 11] = [
        (
            "process",
            "selinuxLabel",
            "system_u:system_r:container_t:s0".into(),
        ),
        (
            "linux",
            "mountLabel",
            "system_u:object_r:container_file_t:s0".into(),
        ),
        (
            "process",
            "scheduler",
            serde_json::json!({"policy": "SCHED_FIFO", "priority": 1}),
        ),
        (
            "process",
            "ioPriority",
            serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
        ),
        (
            "process",
            "execCPUAffinity",
            serde_json::json!({"initial": "0"}),
        ),
        (
            "linux",
            "timeOffsets",
            serde_json::json!({"monotonic": {"secs": 10}}),
        ),
        ("linux", "intelRdt", serde_json::json!({"closID": "berth"})),
        (
            "linux",
            "memoryPolicy",
            serde_json::json!({"mode": "MPOL_BIND", "nodes": "0"}),
        ),
        (
            "linux",
            "personality",
            serde_json::json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}),
        ),
        ("linux", "seccomp", notify),
        (
            "mounts",
            "uidMappings",
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
        ),
    ];
    for (section, field, value) in cases {
        let name = format!("unsup-{}", field.to_lowercase());
        assert_create_refused(
            &r,
            &name,
            |v| {
                if section == "mounts" {
                    let m = &mut v["mounts"][0];
                    m["uidMappings"] = value.clone();
                    m["gidMappings"] = value;
                } else {
                    v[section][field] = value;
                }
            },
            field,
        );
    }
}

/// An AppArmor profile is applied where the host has AppArmor; a profile that cannot be (no
/// AppArmor here, or no such profile loaded) fails the create and leaves nothing.
#[test]
fn an_apparmor_profile_that_cannot_be_applied_fails_the_create() {
    let r = Runc::new();
    assert_create_refused(
        &r,
        "apparmor-missing",
        |v| v["process"]["apparmorProfile"] = "berth-no-such-profile".into(),
        "apparmor profile",
    );
}

/// `exec --cgroup` (a sub-cgroup to join) is refused rather than ignored.
#[test]
fn exec_into_a_sub_cgroup_is_refused() {
    let r = Runc::new();
    let o = r.out(&["exec", "--cgroup", "sub", "ghost", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("--cgroup"), "{}", stderr_of(&o));
}

/// A hook `timeout` must be greater than zero: 0 or less fails the create (it used to be
/// raised to one second), before any hook runs.
#[test]
fn a_hook_timeout_that_is_not_positive_fails_the_create() {
    let r = Runc::new();
    for (name, kind, timeout) in [("hook0", "createRuntime", 0), ("hookneg", "poststart", -1)] {
        assert_create_refused(
            &r,
            name,
            |v| {
                v["hooks"] = serde_json::json!({
                    kind: [{"path": "/bin/true", "timeout": timeout}],
                })
            },
            &format!("{kind} hook /bin/true: timeout {timeout} must be greater than zero"),
        );
    }
}

/// A namespace `path` whose namespace is of another type than the entry's fails the create
/// with an error naming both, and leaves nothing.
#[test]
fn a_namespace_path_of_the_wrong_type_fails_the_create() {
    let r = Runc::new();
    // The config's `kind` namespace joined by `path` instead of made.
    let join = |kind: &'static str, path: &'static str| {
        move |v: &mut serde_json::Value| {
            for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == kind {
                    ns["path"] = path.into();
                }
            }
        }
    };
    assert_create_refused(
        &r,
        "nswrongtype",
        join("network", "/proc/self/ns/uts"),
        "namespace path /proc/self/ns/uts is not a \"network\" namespace",
    );
    assert_create_refused(
        &r,
        "nsnotns",
        join("ipc", "/etc/hostname"),
        "namespace path /etc/hostname for \"ipc\" is not a namespace",
    );
}
