//! Bad input gets a clear error, exit code 1, and leaves no state behind: malformed config.json,
//! a missing rootfs, a duplicate id, unknown ids, an invalid id.

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
