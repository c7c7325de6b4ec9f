//! The same `berth` binary against a private dockerd (Debian's docker.io, no bridge, so
//! `--network none`): import, run with output and exit codes, ps, images, pull from a loopback
//! registry and rm — proof that the client speaks the Engine API, not a private dialect.

mod common;

use berth_testkit::{BusyboxImage, Dockerd, Registry};
use common::{berth_at, ok, text};

#[test]
fn the_core_commands_work_against_dockerd() {
    let dockerd = Dockerd::start(&[]).unwrap();
    let config = tempfile::tempdir().unwrap();
    let host = dockerd.host();
    let berth = |args: &[&str]| berth_at(&host, config.path(), args, None);
    let berth_ok = |args: &[&str]| ok(berth(args), &format!("berth {args:?} against dockerd"));

    let v = berth_ok(&[
        "version",
        "--format",
        "{{.Server.Platform.Name}}|{{.Server.Version}}",
    ]);
    assert!(!v.trim().ends_with('|'), "{v}");

    let tar = berth_testkit::busybox::layer_tar().unwrap();
    let out = berth_at(
        &host,
        config.path(),
        &["import", "-c", "CMD [\"sh\"]", "-", "bb:v1"],
        Some(&tar),
    );
    assert!(ok(out, "berth import").trim().starts_with("sha256:"));
    assert_eq!(
        berth_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "bb:v1\n"
    );
    let table = berth_ok(&["images"]);
    assert!(
        table.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );

    let out = berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:v1",
        "echo",
        "hi",
        "from",
        "dockerd",
    ]);
    assert_eq!(
        text(&out.stdout),
        "hi from dockerd\n",
        "{}",
        text(&out.stderr)
    );
    let out = berth(&[
        "run",
        "--network",
        "none",
        "--name",
        "three",
        "bb:v1",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:v1",
        "no-such-command",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));

    let id = berth_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "sleeper",
        "bb:v1",
        "sleep",
        "1000",
    ]);
    assert_eq!(id.trim().len(), 64);
    let ps = berth_ok(&["ps"]);
    assert!(
        ps.starts_with("CONTAINER ID   IMAGE     COMMAND        CREATED"),
        "{ps}"
    );
    assert!(ps.lines().nth(1).unwrap().ends_with("sleeper"), "{ps}");
    assert_eq!(
        berth_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "sleeper\nthree\n"
    );
    assert_eq!(
        berth_ok(&["exec", "sleeper", "echo", "exec-ok"]),
        "exec-ok\n"
    );
    assert_eq!(
        berth_ok(&["inspect", "-f", "{{.State.Running}}", "sleeper"]),
        "true\n"
    );
    assert_eq!(
        berth_ok(&["rm", "-f", "sleeper", "three"]),
        "sleeper\nthree\n"
    );
    assert_eq!(berth_ok(&["ps", "-aq"]), "");
    let out = berth(&["rm", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: x\n"
    );

    pull_and_remove(&berth_ok);
    berth_ok(&["rmi", "bb:v1"]);
    assert_eq!(berth_ok(&["images", "-q"]), "");
}

/// Pulls from a loopback registry through dockerd, then removes the image by name.
fn pull_and_remove(berth_ok: &dyn Fn(&[&str]) -> String) {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let name = format!("{}/bb:latest", reg.host());
    let pulled = berth_ok(&["pull", &name]);
    assert!(
        pulled.contains("Pull complete") || pulled.contains("Already exists"),
        "{pulled}"
    );
    assert!(pulled.ends_with(&format!("{name}\n")), "{pulled}");
    let out = berth_ok(&["rmi", &name]);
    assert!(out.contains(&format!("Untagged: {name}")), "{out}");
}
