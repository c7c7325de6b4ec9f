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

#[test]
fn config_volumes_and_volumes_from() {
    let (_reg, d, image) = common::daemon_with_image();
    // `-v /path` (the request's Config.Volumes) is an anonymous volume too, labelled as
    // Docker labels one, kept by a plain rm and removed by rm -v.
    d.docker_ok(&[
        "run", "--name", "av", "-v", "/cfg", &image, "touch", "/cfg/x",
    ]);
    let name = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
        "av",
    ]);
    let (kind, rest) = name.trim().split_once(' ').unwrap();
    let (vol, dest) = rest.split_once(' ').unwrap();
    assert_eq!((kind, dest), ("volume", "/cfg"), "{name}");
    let labels = d.docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", vol]);
    assert_eq!(labels.trim(), r#"{"com.docker.volume.anonymous":""}"#);
    d.docker_ok(&["rm", "-v", "av"]);
    assert!(d.docker_ok(&["volume", "ls", "-q"]).trim().is_empty());

    // --volumes-from: the other container's volumes and binds at the same places, read-only
    // with :ro; the volume counts as used by both.
    d.docker_ok(&["volume", "create", "shared"]);
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("h"), "bound\n").unwrap();
    let bind = format!("{}:/b", host_dir.path().display());
    d.docker_ok(&[
        "create",
        "--name",
        "src",
        "-v",
        "shared:/s",
        "-v",
        &bind,
        &image,
        "true",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        &image,
        "sh",
        "-c",
        "echo w > /s/f && cat /b/h",
    ]);
    assert_eq!(out, "bound\n");
    let ro = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        &image,
        "touch",
        "/s/g",
    ]);
    assert!(!ro.status.success(), "a :ro volumes-from was written");
    let kept = d.docker_ok(&["run", "--rm", "-v", "shared:/x", &image, "cat", "/x/f"]);
    assert_eq!(kept, "w\n");
    d.docker_ok(&[
        "create",
        "--name",
        "user2",
        "--volumes-from",
        "src",
        &image,
        "true",
    ]);
    d.docker_ok(&["rm", "src"]);
    let busy = d.docker(&["volume", "rm", "shared"]);
    assert!(
        !busy.status.success(),
        "a volume in use through volumes-from was removed"
    );
    d.docker_ok(&["rm", "user2"]);
    let missing = d.docker(&["create", "--volumes-from", "nosuch", &image, "true"]);
    assert!(!missing.status.success());
    d.docker_ok(&["volume", "rm", "shared"]);

    assert!(common::mounts_under(&d.roots.data_root()).is_empty());
}

/// The busybox rootfs plus `/data/seed.txt`, as a layer tar.
fn rootfs_with_seed() -> Vec<u8> {
    berth_testkit::busybox::layer_tar_plus(|out| {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        out.append_data(&mut dir, "data/", std::io::empty())?;
        let mut f = tar::Header::new_gnu();
        f.set_mode(0o640);
        f.set_size(7);
        f.set_uid(1000);
        out.append_data(&mut f, "data/seed.txt", &b"seeded\n"[..])
    })
    .unwrap()
}

#[test]
fn image_volumes_are_seeded_from_the_image_and_shown_in_mounts() {
    let d = Berthd::start();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, rootfs_with_seed()).unwrap();
    d.docker_ok(&[
        "import",
        "-c",
        "VOLUME /data",
        "-c",
        "CMD [\"sh\"]",
        &tar.display().to_string(),
        "withvol:1",
    ]);
    // An anonymous volume per run, filled from the image (content, mode, owner).
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "withvol:1",
        "sh",
        "-c",
        "cat /data/seed.txt; stat -c '%a %u' /data/seed.txt; mount | grep -c ' /data '",
    ]);
    assert_eq!(out, "seeded\n640 1000\n1\n");
    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q"]).trim(),
        "",
        "--rm left its anonymous volume"
    );
    // A fresh named volume is seeded too; inspect's Mounts names it.
    let host_dir = tempfile::tempdir().unwrap();
    let bind = format!("{}:/hostdir:ro", host_dir.path().display());
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "-v",
        "named:/data",
        "-v",
        &bind,
        "withvol:1",
        "sleep",
        "300",
    ]);
    assert_eq!(
        d.docker_ok(&["exec", "keeper", "cat", "/data/seed.txt"]),
        "seeded\n"
    );
    let mounts = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}|{{end}}",
        "keeper",
    ]);
    assert!(mounts.contains("volume named /data true|"), "{mounts}");
    assert!(mounts.contains("bind  /hostdir false|"), "{mounts}");
    // Without -v, the image's volume is anonymous and listed.
    d.docker_ok(&["run", "-d", "--name", "anon", "withvol:1", "sleep", "300"]);
    let name = d.docker_ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"]);
    assert_eq!(name.trim().len(), 64, "{name}");
    assert!(d.docker_ok(&["volume", "ls", "-q"]).contains(name.trim()));
    d.docker_ok(&["rm", "-f", "-v", "keeper", "anon"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "named");
    d.docker_ok(&["volume", "rm", "named"]);
}

/// A create that fails leaves nothing behind: not the anonymous volume it would have made for
/// `-v /data`, nor its directory. A name in use fails it before anything is made; a spec it
/// cannot build (an unknown ulimit) fails it after its volume was made, which is undone.
#[test]
fn a_failed_create_leaves_no_volume_or_directory() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb", reg.host());
    d.docker_ok(&["pull", "-q", &image]);
    d.docker_ok(&["create", "--name", "taken", &image, "true"]);
    let volumes_before = d.docker_ok(&["volume", "ls", "-q"]);

    let out = d.docker(&["create", "--name", "taken", "-v", "/data", &image, "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is already in use"), "{err}");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), volumes_before);

    // The docker CLI checks ulimit names itself: the request goes raw.
    let body = format!(
        r#"{{"Image": "{image}", "Cmd": ["true"], "HostConfig": {{"Mounts": [{{"Type": "volume", "Target": "/data"}}], "Ulimits": [{{"Name": "lofile", "Soft": 1, "Hard": 1}}]}}}}"#
    );
    let (status, _, err) = d.raw("POST", "/containers/create", body.as_bytes());
    assert_eq!(status, 400, "{err}");
    assert!(err.contains("invalid ulimit type"), "{err}");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), volumes_before);

    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 1);
    let containers = d.roots.data_root().join("containers");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 1);
    let (status, _, leftovers) = d.raw("POST", "/system/check", b"");
    assert_eq!((status, leftovers.trim()), (200, "[]"));
    d.docker_ok(&["rm", "taken"]);
}

#[test]
fn a_volume_subpath_mounts_that_directory_and_never_a_link_out_of_the_volume() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/v",
        &image,
        "sh",
        "-c",
        "mkdir /v/sub && echo inside > /v/sub/file && ln -s /etc /v/evil && ln -s ../../.. /v/up",
    ]);
    let create = |name: &str, subpath: &str| {
        let body = format!(
            r#"{{"Image": "{image}", "Cmd": ["sh", "-c", "ls /s; cat /s/file /s/passwd 2>&1"],
                "HostConfig": {{"Mounts": [{{"Type": "volume", "Source": "data", "Target": "/s",
                "VolumeOptions": {{"Subpath": "{subpath}"}}}}]}}}}"#
        );
        d.raw(
            "POST",
            &format!("/containers/create?name={name}"),
            body.as_bytes(),
        )
    };
    let (status, _, body) = create("good", "sub");
    assert_eq!(status, 201, "{body}");
    d.docker_ok(&["start", "good"]);
    d.docker_ok(&["wait", "good"]);
    let logs = d.docker_ok(&["logs", "good"]);
    assert!(logs.starts_with("file\ninside\n"), "{logs}");
    // A link in the volume resolves inside it: `evil` is the volume's /etc, which it lacks.
    for (name, link) in [("evil", "evil"), ("up", "up/etc")] {
        let (status, _, body) = create(name, link);
        assert_eq!(status, 201, "{body}");
        let out = d.docker(&["start", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{link} started: {err}");
        assert!(err.contains("cannot access path"), "{err}");
        d.docker_ok(&["rm", name]);
    }
    let (status, _, body) = create("dots", "../x");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("subpath must be a relative path within the volume"),
        "{body}"
    );
    // Removing the container leaves the volume's content where it was.
    d.docker_ok(&["rm", "good"]);
    let left = d.docker_ok(&["run", "--rm", "-v", "data:/v", &image, "cat", "/v/sub/file"]);
    assert_eq!(left, "inside\n");
}
