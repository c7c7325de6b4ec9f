//! `docker save` / `docker load` against berthd: an archive of a pulled and an imported image
//! (Docker 25's layout: OCI blobs + manifest.json) loads into a second berthd and into the
//! real dockerd 20.10, and runs there; an archive written by dockerd loads into berthd; a
//! hostile or broken archive is refused and changes nothing.

mod common;

use berth_testkit::{BusyboxImage, Dockerd, Registry};
use common::Berthd;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn save_then_load_into_berthd_and_dockerd_and_back() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let pulled = format!("{}/bb:latest", reg.host());
    d.docker_ok(&["pull", "-q", &pulled]);
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs.tar");
    std::fs::write(&rootfs, berth_testkit::busybox::layer_tar().unwrap()).unwrap();
    d.docker_ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        &rootfs.display().to_string(),
        "imported:v1",
    ]);
    let archive = dir.path().join("images.tar");
    let a = archive.display().to_string();
    d.docker_ok(&["save", "-o", &a, &pulled, "imported:v1"]);
    let ids = |daemon: &dyn Fn(&[&str]) -> String| {
        let mut v: Vec<String> = daemon(&["images", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let before = ids(&|args| d.docker_ok(args));

    // Into a fresh berthd: same image ids, and they run.
    let other = Berthd::start();
    let out = other.docker_ok(&["load", "-i", &a]);
    assert!(out.contains("Loaded image: imported:v1"), "{out}");
    assert!(out.contains(&format!("Loaded image: {pulled}")), "{out}");
    assert_eq!(ids(&|args| other.docker_ok(args)), before);
    for img in [pulled.as_str(), "imported:v1"] {
        assert_eq!(
            other.docker_ok(&["run", "--rm", img, "echo", "loaded"]),
            "loaded\n"
        );
    }

    // Into the real dockerd 20.10, which runs them too; and dockerd's own save loads back.
    let dockerd = Dockerd::start(&[]).unwrap();
    let out = dockerd.docker(&["load", "-i", &a]);
    assert!(
        out.status.success(),
        "dockerd refused our archive: {}",
        stderr(&out)
    );
    let run = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "imported:v1",
        "echo",
        "in docker",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "in docker\n",
        "{}",
        stderr(&run)
    );
    let theirs = dir.path().join("from-docker.tar");
    let out = dockerd.docker(&["save", "-o", &theirs.display().to_string(), "imported:v1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    other.docker_ok(&["rmi", "imported:v1"]);
    let out = other.docker_ok(&["load", "-i", &theirs.display().to_string()]);
    assert!(out.contains("Loaded image: imported:v1"), "{out}");
    assert_eq!(
        other.docker_ok(&["run", "--rm", "imported:v1", "echo", "round trip"]),
        "round trip\n"
    );
}

#[test]
fn broken_and_hostile_archives_are_refused_and_change_nothing() {
    let d = Berthd::start();
    let dir = tempfile::tempdir().unwrap();
    let count = |d: &Berthd| d.docker_ok(&["images", "-q"]).lines().count();
    // Not a tar at all.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar").unwrap();
    let out = d.docker(&["load", "-i", &junk.display().to_string()]);
    assert!(!out.status.success());
    // dockerd answers 200 and puts the error in the stream; clients read it there.
    let (status, _, body) = d.raw("POST", "/images/load", b"this is not a tar");
    assert_eq!(status, 200, "{body}");
    // The body is chunked: its JSON line is the one that starts with a brace.
    let json_line = body
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert!(
        line["errorDetail"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty() && line["error"] == m),
        "{body}"
    );
    assert_eq!(count(&d), 0);
    // A tar with a traversal name and no manifest: nothing is written outside, refused.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let escape = dir.path().join("escaped");
    let name = format!("../../../../../..{}", escape.display());
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, &b"evil"[..]).unwrap();
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(&hostile, b.into_inner().unwrap()).unwrap();
    let out = d.docker(&["load", "-i", &hostile.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("neither manifest.json nor index.json"),
        "{}",
        stderr(&out)
    );
    assert!(!escape.exists(), "the archive wrote outside");
    // A manifest naming a layer whose content does not match the config.
    let img = BusyboxImage::build().unwrap();
    let good = dir.path().join("good.tar");
    img.write_docker_archive(&good, "bb:latest").unwrap();
    let mut forged = tar::Builder::new(Vec::new());
    let mut src = tar::Archive::new(std::fs::File::open(&good).unwrap());
    for e in src.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let mut h = e.header().clone();
        if e.path().unwrap().to_string_lossy().ends_with("layer.tar") || data.len() > 100_000 {
            data = {
                let mut t = tar::Builder::new(Vec::new());
                let mut hh = tar::Header::new_gnu();
                hh.set_size(3);
                hh.set_mode(0o644);
                hh.set_entry_type(tar::EntryType::Regular);
                t.append_data(&mut hh, "forged", &b"bad"[..]).unwrap();
                t.into_inner().unwrap()
            };
            h.set_size(data.len() as u64);
            h.set_cksum();
        }
        forged.append(&h, &data[..]).unwrap();
    }
    let forged_path = dir.path().join("forged.tar");
    std::fs::write(&forged_path, forged.into_inner().unwrap()).unwrap();
    let out = d.docker(&["load", "-i", &forged_path.display().to_string()]);
    assert!(!out.status.success(), "a forged layer loaded");
    assert_eq!(count(&d), 0);
    let layers = d.roots.data_root().join("layers");
    let left = std::fs::read_dir(&layers).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "a failed load left layers behind");
    // The good archive loads.
    let out = d.docker_ok(&["load", "-i", &good.display().to_string()]);
    assert!(out.contains("Loaded image: bb:latest"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "bb:latest", "echo", "ok"]),
        "ok\n"
    );
}
