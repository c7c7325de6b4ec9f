//! `docker cp` both ways (running and stopped containers, into a volume, to stdout), `docker
//! diff` and `docker export` through the docker CLI; hostile uploads through the raw API:
//! paths and links that climb out, a directory a file would replace, garbage — refused with
//! nothing written, and never a byte outside the container.

mod common;

use std::io::Read;
use std::path::Path;

use common::{Berthd, daemon_with_image};

/// Entries of a tar as (path, contents).
fn tar_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (p, data)
        })
        .collect()
}

fn container_id(d: &Berthd, name: &str) -> String {
    d.docker_ok(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn cp_both_ways_with_running_and_stopped_containers() {
    let (_reg, d, image) = daemon_with_image();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::write(h.join("hello.txt"), "hi\n").unwrap();
    std::fs::create_dir_all(h.join("tree/a")).unwrap();
    std::fs::write(h.join("tree/a/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("a/b.txt", h.join("tree/link")).unwrap();
    let p = |n: &str| h.join(n).display().to_string();

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live1",
        "-v",
        "vol:/data",
        &image,
        "sleep",
        "1000",
    ]);
    d.docker_ok(&["cp", &p("hello.txt"), "live1:/tmp/"]);
    assert_eq!(
        d.docker_ok(&["exec", "live1", "cat", "/tmp/hello.txt"]),
        "hi\n"
    );
    d.docker_ok(&["cp", &p("tree"), "live1:/tmp/tree"]);
    assert_eq!(
        d.docker_ok(&["exec", "live1", "cat", "/tmp/tree/a/b.txt"]),
        "deep\n"
    );
    assert_eq!(
        d.docker_ok(&["exec", "live1", "readlink", "/tmp/tree/link"]),
        "a/b.txt\n"
    );

    // Into a volume mounted in the running container: the copy lands in the volume.
    d.docker_ok(&["cp", &p("hello.txt"), "live1:/data/"]);
    let via_volume = d.docker_ok(&["run", "--rm", "-v", "vol:/v", &image, "cat", "/v/hello.txt"]);
    assert_eq!(via_volume, "hi\n");

    // Out of it: a file, a directory, and a tar on stdout.
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n).display().to_string();
    d.docker_ok(&["cp", "live1:/etc/passwd", &o("passwd")]);
    assert!(
        std::fs::read_to_string(o("passwd"))
            .unwrap()
            .starts_with("root:")
    );
    d.docker_ok(&["cp", "live1:/tmp/tree", &o("")]);
    assert_eq!(
        std::fs::read_to_string(o("tree/a/b.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(o("tree/link")).unwrap(),
        Path::new("a/b.txt")
    );
    d.docker_ok(&["cp", "live1:/tmp/tree/.", &o("contents")]);
    assert_eq!(
        std::fs::read_to_string(o("contents/a/b.txt")).unwrap(),
        "deep\n"
    );
    let raw = d.docker(&["cp", "live1:/tmp/hello.txt", "-"]);
    assert!(raw.status.success());
    assert_eq!(
        tar_entries(&raw.stdout),
        vec![("hello.txt".to_string(), b"hi\n".to_vec())]
    );
    let missing = d.docker(&["cp", "live1:/nope", &o("x")]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("No such container:path") || err.contains("Could not find the file /nope"),
        "{err}"
    );
    let onto_file = d.docker(&["cp", &p("tree"), "live1:/etc/passwd"]);
    assert!(!onto_file.status.success(), "a directory replaced a file");
    assert!(
        d.docker_ok(&["exec", "live1", "cat", "/etc/passwd"])
            .starts_with("root:")
    );

    // A stopped container: its rootfs is mounted for the copy and unmounted after.
    d.docker_ok(&["create", "--name", "stopped1", &image, "cat", "/hello.txt"]);
    d.docker_ok(&["cp", &p("hello.txt"), "stopped1:/"]);
    let sdir = d
        .roots
        .data_root()
        .join("containers")
        .join(container_id(&d, "stopped1"));
    assert!(
        common::mounts_under(&sdir).is_empty(),
        "the rootfs stayed mounted"
    );
    let back = d.docker(&["cp", "stopped1:/hello.txt", "-"]);
    assert_eq!(tar_entries(&back.stdout)[0].1, b"hi\n");
    assert_eq!(d.docker_ok(&["start", "-a", "stopped1"]), "hi\n");
    d.docker_ok(&["rm", "-f", "live1", "stopped1"]);
    d.docker_ok(&["volume", "rm", "vol"]);
}

#[test]
fn diff_and_export_show_what_the_container_changed() {
    let (_reg, d, image) = daemon_with_image();
    d.docker_ok(&[
        "run",
        "--name",
        "dx",
        &image,
        "sh",
        "-c",
        "echo new > /tmp/new.txt && echo extra >> /etc/passwd && rm /bin/ls && mkdir -p /made/here",
    ]);
    let diff = d.docker_ok(&["diff", "dx"]);
    let lines: Vec<&str> = diff.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "A /made",
            "A /made/here",
            "C /bin",
            "C /etc",
            "C /etc/passwd",
            "C /tmp",
            "A /tmp/new.txt",
            "D /bin/ls",
        ]
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
        "docker diff:\n{diff}"
    );
    // The runtime's own mount points (/proc, /dev, /etc/hostname, …) are not the user's changes.
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("dx.tar");
    d.docker_ok(&["export", "-o", &tar.display().to_string(), "dx"]);
    let entries = tar_entries(&std::fs::read(&tar).unwrap());
    let get = |p: &str| entries.iter().find(|(n, _)| n == p).map(|(_, c)| c.clone());
    assert_eq!(get("tmp/new.txt").unwrap(), b"new\n");
    assert!(
        String::from_utf8(get("etc/passwd").unwrap())
            .unwrap()
            .ends_with("extra\n")
    );
    assert!(get("bin/ls").is_none(), "a deleted file was exported");
    assert!(get("bin/busybox").is_some());
    assert!(
        entries
            .iter()
            .any(|(n, _)| n == "made/here" || n == "made/here/")
    );

    // A running container exports its live rootfs.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dy",
        &image,
        "sh",
        "-c",
        "echo live > /live && sleep 1000",
    ]);
    berth_testkit::wait_for(std::time::Duration::from_secs(10), "/live", || {
        d.docker(&["exec", "dy", "cat", "/live"]).status.success()
    })
    .unwrap();
    let live = d.docker(&["export", "dy"]);
    assert!(live.status.success());
    let entries = tar_entries(&live.stdout);
    assert!(entries.iter().any(|(n, c)| n == "live" && c == b"live\n"));
    d.docker_ok(&["rm", "-f", "dx", "dy"]);
    let unknown = d.docker(&["diff", "nosuch"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("No such container: nosuch"));
}

/// A tar with entries exactly as given (no path checks, unlike tar::Builder's).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn hostile_uploads_are_refused_and_nothing_leaves_the_container() {
    let (_reg, d, image) = daemon_with_image();
    d.docker_ok(&["run", "-d", "--name", "tt", &image, "sleep", "1000"]);
    let put = |path: &str, body: &[u8]| {
        d.raw(
            "PUT",
            &format!("/containers/tt/archive?path={path}&noOverwriteDirNonDir=true"),
            body,
        )
    };
    let exists = |p: &str| d.docker(&["exec", "tt", "test", "-e", p]).status.success();
    use tar::EntryType as T;

    let (code, _, body) = put(
        "/tmp",
        &raw_tar(&[
            ("first.txt", T::Regular, "", b"1"),
            ("../../../escape.txt", T::Regular, "", b"x"),
        ]),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("outside the target directory"), "{body}");
    assert!(
        !exists("/tmp/first.txt"),
        "a refused archive was partly written"
    );
    assert!(!exists("/escape.txt"));

    let (code, _, body) = put(
        "/tmp",
        &raw_tar(&[("shadow", T::Link, "../../etc/../../x", b"")]),
    );
    assert_eq!(code, 400, "{body}");

    let (code, _, body) = put(
        "/",
        &raw_tar(&[
            ("first.txt", T::Regular, "", b"1"),
            ("tmp", T::Regular, "", b"not a dir"),
        ]),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("cannot overwrite directory"), "{body}");
    assert!(!exists("/first.txt"));

    let (code, _, body) = put("/etc/passwd", &raw_tar(&[("f", T::Regular, "", b"1")]));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a directory"), "{body}");
    let (code, _, _) = put("/nonexistent", &raw_tar(&[("f", T::Regular, "", b"1")]));
    assert_eq!(code, 404);
    let (code, _, body) = put("/tmp", &[b'x'; 2048]);
    assert_eq!(code, 400, "{body}");
    let (code, _, _) = d.raw("PUT", "/containers/nosuch/archive?path=/tmp", &raw_tar(&[]));
    assert_eq!(code, 404);
    let (code, _, _) = d.raw("PUT", "/containers/tt/archive", &raw_tar(&[]));
    assert_eq!(code, 400);

    // A link to the host's root, then a file through it: resolved inside the container.
    let marker = format!("berth-escape-{}", std::process::id());
    let through = format!("evil/{marker}");
    let (code, _, body) = put(
        "/tmp",
        &raw_tar(&[
            ("evil", T::Symlink, "/", b""),
            (&through, T::Regular, "", b"inside"),
        ]),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        !Path::new("/").join(&marker).exists(),
        "a file escaped to the host"
    );
    assert_eq!(
        d.docker_ok(&["exec", "tt", "cat", &format!("/{marker}")]),
        "inside"
    );
    d.docker_ok(&["rm", "-f", "tt"]);
}
