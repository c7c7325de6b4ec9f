//! Fault injection: berthd, berth-containerd and a shim are killed (SIGKILL, by the failpoints
//! debug builds carry; see the `berth-failpoint` crate) at each step of create, start, exec,
//! stop, an exit, rm, pull, push, load, network connect and volume create. After the crash (and
//! berthd's restart when it was the one that died) every container fully exists or not at all,
//! running ones still run, exits are recorded with their code, the operation can be done again,
//! and neither `system check` nor an independent scan of the host finds anything left behind.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_testkit::{BusyboxImage, Registry};
use common::{Berthd, TestRoots};

/// A container that exits with code 3 on SIGTERM (a shell as pid 1 ignores it otherwise).
const TRAPS_TERM: &str = "trap 'exit 3' TERM; while true; do sleep 0.1; done";

/// One injected crash: the failpoint, what is set up before (on the armed daemon), the
/// operation the crash cuts short, and what must hold afterwards beyond the common checks.
struct Fault {
    point: &'static str,
    setup: fn(&Berthd, &str),
    op: fn(&Berthd, &str),
    check: fn(&Berthd, &str),
}

fn registry() -> Registry {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    reg
}

/// Runs each fault on a daemon of its own, in turn.
fn inject(reg: &Registry, faults: &[Fault]) {
    let image = format!("{}/bb", reg.host());
    for f in faults {
        eprintln!("failpoint {}", f.point);
        let roots = TestRoots::new().unwrap();
        let log = roots.path().join("failpoints.log");
        let mut d = Berthd::start_with_env(
            roots,
            &[
                ("BERTH_FAILPOINTS", f.point.as_ref()),
                ("BERTH_FAILPOINTS_LOG", log.as_os_str()),
            ],
        );
        (f.setup)(&d, &image);
        (f.op)(&d, &image);
        berth_testkit::wait_for(Duration::from_secs(30), f.point, || hit(&log, f.point)).unwrap();
        let berthd_died = !f.point.starts_with("containerd.") && !f.point.starts_with("shim.");
        if berthd_died {
            berth_testkit::wait_for(Duration::from_secs(10), "berthd's death", || d.exited())
                .unwrap();
            d = d.crash_and_restart();
        } else {
            assert!(!d.exited(), "{}: berthd died with its containerd", f.point);
        }
        assert_consistent(&d, f.point);
        (f.check)(&d, &image);
        // Everything it made goes with the containers, networks and volumes.
        remove_everything(&d);
        assert_consistent(&d, f.point);
        assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "{}", f.point);
    }
}

fn hit(log: &Path, point: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|s| s.lines().any(|l| l == point))
}

fn nothing(_: &Berthd, _: &str) {}

fn pull(d: &Berthd, image: &str) {
    d.docker_ok(&["pull", "-q", image]);
}

/// Runs the operation the failpoint cuts: its outcome is the crash's (an error, or a
/// connection closed), not asserted.
fn attempt(d: &Berthd, args: &[&str]) {
    let _ = d.docker(args);
}

fn state(d: &Berthd, name: &str) -> serde_json::Value {
    let out = d.docker_ok(&["inspect", "--format", "{{json .State}}", name]);
    serde_json::from_str(out.trim()).unwrap()
}

fn ids(d: &Berthd, all: bool) -> Vec<String> {
    let args: &[&str] = if all {
        &["ps", "-aq", "--no-trunc"]
    } else {
        &["ps", "-q", "--no-trunc"]
    };
    d.docker_ok(args).lines().map(str::to_string).collect()
}

/// Names of the entries of `dir`.
fn entries(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The daemon's cgroup directories (v1: the memory hierarchy; v2: the unified one).
fn cgroup_dirs(d: &Berthd) -> Vec<PathBuf> {
    let parent = common::cgroup_parent(&d.roots);
    let parent = parent.trim_start_matches('/');
    ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .map(|h| Path::new(h).join(parent))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Every container fully exists or not at all, with nothing of a container that does not run
/// left on the host: checked by `system check` and by looking at the host directly.
fn assert_consistent(d: &Berthd, point: &str) {
    let mut found = String::new();
    let clean = berth_testkit::wait_for(Duration::from_secs(30), "a clean system check", || {
        let (status, _, body) = d.raw("POST", "/system/check", b"");
        found = body.trim().to_string();
        status == 200 && found == "[]"
    });
    assert!(clean.is_ok(), "{point}: system check found {found}");
    let all = ids(d, true);
    let running: HashSet<String> = ids(d, false).into_iter().collect();
    for id in &all {
        let s = state(d, id);
        let pid = s["Pid"].as_u64().unwrap();
        if running.contains(id) {
            assert!(
                Path::new(&format!("/proc/{pid}")).exists(),
                "{point}: {id} runs as pid {pid}, which is gone"
            );
            d.docker_ok(&["exec", id, "true"]);
        } else {
            assert_eq!(pid, 0, "{point}: {id} does not run but has pid {pid}");
        }
    }
    assert_eq!(common::shims_of(d), running.len(), "{point}: shims");
    let containers = d.roots.data_root().join("containers");
    let merged: Vec<String> = common::mounts_under(&containers)
        .into_iter()
        .filter(|m| m.ends_with("/merged"))
        .collect();
    assert_eq!(
        merged.len(),
        running.len(),
        "{point}: rootfs mounts {merged:?}"
    );
    for m in &merged {
        assert!(
            running.iter().any(|id| m.contains(id.as_str())),
            "{point}: {m} mounted for a container that does not run"
        );
    }
    let netns = entries(&d.roots.exec_root().join("netns"));
    assert!(netns.is_subset(&running), "{point}: netns {netns:?}");
    for dir in cgroup_dirs(d) {
        let groups: HashSet<String> = entries(&dir)
            .into_iter()
            .filter(|n| n.len() == 64)
            .collect();
        assert!(groups.is_subset(&running), "{point}: cgroups {groups:?}");
    }
    let veths: Vec<String> = entries(&PathBuf::from(format!(
        "/sys/class/net/{}/brif",
        d.subnet.bridge_name()
    )))
    .into_iter()
    .collect();
    assert!(veths.len() <= running.len(), "{point}: veths {veths:?}");
    // Removed containers' directories go in the background: give them a moment.
    let want: HashSet<String> = all.iter().cloned().collect();
    let dirs = berth_testkit::wait_for(Duration::from_secs(10), "container directories", || {
        entries(&containers) == want
    });
    assert!(
        dirs.is_ok(),
        "{point}: container directories {:?}, containers {want:?}",
        entries(&containers)
    );
}

fn remove_everything(d: &Berthd) {
    for id in ids(d, true) {
        d.docker_ok(&["rm", "-f", &id]);
    }
    for n in d
        .docker_ok(&["network", "ls", "-q", "--filter", "type=custom"])
        .lines()
    {
        d.docker_ok(&["network", "rm", n]);
    }
    for v in d.docker_ok(&["volume", "ls", "-q"]).lines() {
        d.docker_ok(&["volume", "rm", v]);
    }
}

/// After a crashed create or start: the container can be started and runs.
fn starts_again(d: &Berthd, _: &str) {
    let all = ids(d, true);
    for id in &all {
        if !ids(d, false).contains(id) {
            d.docker_ok(&["start", id]);
        }
        assert_eq!(state(d, id)["Running"], true);
        d.docker_ok(&["exec", id, "true"]);
    }
}

#[test]
fn a_crash_during_create_or_start_leaves_whole_containers() {
    let reg = registry();
    let create =
        |d: &Berthd, image: &str| attempt(d, &["create", "--name", "ct", image, "sleep", "1000"]);
    let run = |d: &Berthd, image: &str| {
        attempt(d, &["run", "-d", "--name", "ct", image, "sleep", "1000"])
    };
    let start = |d: &Berthd, _: &str| attempt(d, &["start", "ct"]);
    let created = |d: &Berthd, image: &str| {
        pull(d, image);
        d.docker_ok(&["create", "--name", "ct", image, "sleep", "1000"]);
    };
    inject(
        &reg,
        &[
            Fault {
                point: "create.before-record",
                setup: pull,
                op: create,
                check: |d, _| assert_eq!(d.docker_ok(&["ps", "-aq"]), ""),
            },
            Fault {
                point: "create.after-record",
                setup: pull,
                op: create,
                check: |d, _| {
                    assert_eq!(state(d, "ct")["Status"], "created");
                    starts_again(d, "");
                },
            },
            Fault {
                point: "start.after-prepare",
                setup: created,
                op: start,
                check: starts_again,
            },
            Fault {
                point: "start.after-task-create",
                setup: created,
                op: start,
                check: starts_again,
            },
            Fault {
                point: "start.after-task-start",
                setup: created,
                op: start,
                check: starts_again,
            },
            Fault {
                point: "start.after-record",
                setup: created,
                op: start,
                check: |d, _| {
                    // The record said it runs before the crash: it still does.
                    assert_eq!(state(d, "ct")["Running"], true);
                },
            },
            Fault {
                point: "containerd.create.after-shim",
                setup: pull,
                op: run,
                check: starts_again,
            },
            Fault {
                point: "containerd.start.after-shim",
                setup: pull,
                op: run,
                check: starts_again,
            },
            Fault {
                point: "shim.after-create",
                setup: pull,
                op: run,
                check: starts_again,
            },
            Fault {
                point: "shim.after-start",
                setup: pull,
                op: run,
                check: starts_again,
            },
        ],
    );
}

/// A running container (`ct`) that exits with 3 on SIGTERM.
fn running(d: &Berthd, image: &str) {
    pull(d, image);
    d.docker_ok(&["run", "-d", "--name", "ct", image, "sh", "-c", TRAPS_TERM]);
}

/// After a crash during stop or an exit: the exit is recorded, with its code, and the
/// container starts again.
fn exited_with_3(d: &Berthd, _: &str) {
    let s = state(d, "ct");
    assert_eq!(
        (s["Running"].as_bool(), s["ExitCode"].as_i64()),
        (Some(false), Some(3)),
        "{s}"
    );
    d.docker_ok(&["start", "ct"]);
    assert_eq!(state(d, "ct")["Running"], true);
}

#[test]
fn a_crash_during_exec_stop_or_exit_keeps_the_truth() {
    let reg = registry();
    let exec = |d: &Berthd, _: &str| attempt(d, &["exec", "ct", "true"]);
    let stop = |d: &Berthd, _: &str| attempt(d, &["stop", "ct"]);
    let still_runs = |d: &Berthd, _: &str| {
        assert_eq!(state(d, "ct")["Running"], true);
        d.docker_ok(&["exec", "ct", "true"]);
    };
    inject(
        &reg,
        &[
            Fault {
                point: "exec.after-task-exec",
                setup: running,
                op: exec,
                check: still_runs,
            },
            Fault {
                point: "exec.after-start",
                setup: running,
                op: exec,
                check: still_runs,
            },
            Fault {
                point: "stop.after-signal",
                setup: running,
                op: stop,
                check: exited_with_3,
            },
            Fault {
                point: "exit.after-record",
                setup: running,
                op: stop,
                check: exited_with_3,
            },
            Fault {
                point: "containerd.delete.after-shim",
                setup: running,
                op: stop,
                check: exited_with_3,
            },
        ],
    );
}

#[test]
fn a_crash_during_rm_connect_or_volume_create_leaves_whole_objects() {
    let reg = registry();
    let rm = |d: &Berthd, _: &str| attempt(d, &["rm", "-f", "ct"]);
    let gone_or_removable = |d: &Berthd, _: &str| {
        let _ = d.docker(&["rm", "-f", "ct"]);
        assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    };
    inject(
        &reg,
        &[
            Fault {
                point: "rm.after-task-purge",
                setup: running,
                op: rm,
                check: gone_or_removable,
            },
            Fault {
                point: "rm.after-rename",
                setup: running,
                op: rm,
                check: |d, _| assert_eq!(d.docker_ok(&["ps", "-aq"]), ""),
            },
            Fault {
                point: "connect.before-record",
                setup: |d, image| {
                    running(d, image);
                    d.docker_ok(&["network", "create", "nt"]);
                },
                op: |d, _| attempt(d, &["network", "connect", "nt", "ct"]),
                check: |d, _| {
                    // Not recorded: connecting again works, and the container reaches it.
                    d.docker_ok(&["network", "connect", "nt", "ct"]);
                    let nets = d.docker_ok(&[
                        "inspect",
                        "--format",
                        "{{len .NetworkSettings.Networks}}",
                        "ct",
                    ]);
                    assert_eq!(nets.trim(), "2");
                    d.docker_ok(&["network", "disconnect", "nt", "ct"]);
                },
            },
            Fault {
                point: "volume.before-record",
                setup: nothing,
                op: |d, _| attempt(d, &["volume", "create", "vol"]),
                check: |d, _| {
                    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");
                    d.docker_ok(&["volume", "create", "vol"]);
                    d.docker_ok(&["volume", "inspect", "vol"]);
                },
            },
        ],
    );
}

/// After a crashed pull or load: the image is not there, or whole; pulling (loading) it
/// again works and it runs.
fn image_absent_then_works(d: &Berthd, image: &str) {
    assert_eq!(d.docker_ok(&["images", "-q"]), "");
    pull(d, image);
    d.docker_ok(&["run", "--rm", image, "true"]);
}

/// The name `image` is pushed as (same registry).
fn pushed(image: &str) -> String {
    image.replace("/bb", "/pushed")
}

/// Where the load faults' `docker save` tarball goes.
fn tarball(d: &Berthd) -> String {
    d.roots.path().join("image.tar").display().to_string()
}

#[test]
fn a_crash_during_pull_push_or_load_leaves_whole_images() {
    let reg = registry();
    let pull_op = |d: &Berthd, image: &str| attempt(d, &["pull", "-q", image]);
    let tagged = |d: &Berthd, image: &str| {
        pull(d, image);
        d.docker_ok(&["tag", image, &pushed(image)]);
    };
    let push = |d: &Berthd, image: &str| attempt(d, &["push", &pushed(image)]);
    let pushes_again = |d: &Berthd, image: &str| {
        d.docker_ok(&["run", "--rm", &pushed(image), "true"]);
        d.docker_ok(&["push", &pushed(image)]);
        d.docker_ok(&["rmi", &pushed(image), image]);
        pull(d, &pushed(image));
        d.docker_ok(&["run", "--rm", &pushed(image), "true"]);
    };
    let saved = |d: &Berthd, image: &str| {
        pull(d, image);
        d.docker_ok(&["save", "-o", &tarball(d), image]);
        d.docker_ok(&["rmi", image]);
    };
    let load = |d: &Berthd, _: &str| attempt(d, &["load", "-i", &tarball(d)]);
    let loads_again = |d: &Berthd, image: &str| {
        assert_eq!(d.docker_ok(&["images", "-q"]), "");
        d.docker_ok(&["load", "-i", &tarball(d)]);
        d.docker_ok(&["run", "--rm", image, "true"]);
    };
    inject(
        &reg,
        &[
            Fault {
                point: "pull.after-layer",
                setup: nothing,
                op: pull_op,
                check: image_absent_then_works,
            },
            Fault {
                point: "pull.before-record",
                setup: nothing,
                op: pull_op,
                check: image_absent_then_works,
            },
            Fault {
                point: "push.after-layer",
                setup: tagged,
                op: push,
                check: pushes_again,
            },
            Fault {
                point: "push.before-record",
                setup: tagged,
                op: push,
                check: pushes_again,
            },
            Fault {
                point: "load.after-layer",
                setup: saved,
                op: load,
                check: loads_again,
            },
            Fault {
                point: "load.before-record",
                setup: saved,
                op: load,
                check: loads_again,
            },
        ],
    );
}

/// `ps` and `inspect` answer while a start is held up in its middle (the start holds the
/// container's record): they show the record as last written and never wait for the start.
#[test]
fn list_and_inspect_do_not_wait_for_a_start_in_progress() {
    let reg = registry();
    let image = format!("{}/bb", reg.host());
    let d = Berthd::start_with_env(
        TestRoots::new().unwrap(),
        &[(
            "BERTH_FAILPOINTS",
            "start.after-prepare=delay:8000".as_ref(),
        )],
    );
    pull(&d, &image);
    d.docker_ok(&["create", "--name", "ct", &image, "sleep", "1000"]);
    let host = d.host();
    let starting = std::thread::spawn(move || {
        #[allow(clippy::disallowed_methods)] // the real client, in the background
        std::process::Command::new(common::DOCKER)
            .args(["-H", &host, "start", "ct"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    });
    // The start is under way once the rootfs is mounted (then it waits at the failpoint).
    let containers = d.roots.data_root().join("containers");
    berth_testkit::wait_for(Duration::from_secs(10), "the start under way", || {
        common::mounts_under(&containers)
            .iter()
            .any(|m| m.ends_with("/merged"))
    })
    .unwrap();
    let listed = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let status = d.docker_ok(&["inspect", "--format", "{{.State.Status}}", "ct"]);
    assert!(
        !starting.is_finished(),
        "the start ended before ps and inspect answered"
    );
    assert_eq!(listed.trim(), "ct");
    assert_eq!(status.trim(), "created");
    let started = starting.join().unwrap();
    assert!(started.status.success(), "{started:?}");
    assert_eq!(state(&d, "ct")["Running"], true);
    d.docker_ok(&["rm", "-f", "ct"]);
}
