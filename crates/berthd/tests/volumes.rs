//! Volumes through the docker CLI: named volumes that outlive containers, anonymous ones that
//! go with `--rm`, bind mounts of host directories, in-use protection, and bad names.

mod common;

use berth_testkit::{BusyboxImage, Registry};
use common::Berthd;

#[test]
fn named_anonymous_and_bind_volumes() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb", reg.host());
    d.docker_ok(&["pull", "-q", &image]);

    assert_eq!(d.docker_ok(&["volume", "create", "data"]).trim(), "data");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "data");
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert!(
        mp.trim()
            .starts_with(&d.roots.data_root().display().to_string()),
        "{mp}"
    );
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        &image,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        &image,
        "cat",
        "/data/f",
    ]);
    assert_eq!(out, "kept\n");
    let ro = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        &image,
        "touch",
        "/data/g",
    ]);
    assert!(!ro.status.success(), "a read-only volume was written");

    d.docker_ok(&["create", "--name", "user", "-v", "data:/d", &image, "true"]);
    let busy = d.docker(&["volume", "rm", "data"]);
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("volume is in use"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "data"]);

    // An anonymous volume goes with its --rm container.
    d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,dst=/anon",
        &image,
        "touch",
        "/anon/x",
    ]);
    assert!(d.docker_ok(&["volume", "ls", "-q"]).trim().is_empty());

    // A host directory.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from the host\n").unwrap();
    let bind = format!("{}:/h", host.path().display());
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", &bind, &image, "cat", "/h/hello"]),
        "from the host\n"
    );

    let bad = d.docker(&["volume", "create", "bad/name"]);
    assert!(!bad.status.success());
    let missing = d.docker(&["volume", "inspect", "nope"]);
    let err = String::from_utf8_lossy(&missing.stderr).to_lowercase();
    assert!(err.contains("no such volume"), "{err}");
    d.docker_ok(&["volume", "create", "spare"]);
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Images 1"), "{df}");
    assert!(df.contains("Local Volumes 1"), "{df}");
    let pruned = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert!(common::mounts_under(&d.roots.data_root()).is_empty());
}
