//! Images through the real docker CLI against berthd and a real registry on loopback: pull
//! (anonymous and with `docker login`), images, inspect, history, tag, rmi, prune; and pulls of
//! broken or hostile images that must fail cleanly and leave the store as it was.

mod common;

use berth_testkit::{BusyboxImage, Registry};
use common::Berthd;

fn count_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

/// The stores hold nothing: no layers, no blobs, no image records.
fn assert_store_empty(d: &Berthd) {
    let data = d.roots.data_root();
    let layers: Vec<_> = std::fs::read_dir(data.join("layers"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(layers.is_empty(), "layers left: {layers:?}");
    assert_eq!(
        count_entries(&data.join("content/blobs/sha256")),
        0,
        "blobs left"
    );
    assert_eq!(
        count_entries(&data.join("content/ingest")),
        0,
        "ingests left"
    );
    assert_eq!(
        count_entries(&data.join("meta/images")),
        0,
        "image records left"
    );
}

#[test]
fn pull_list_inspect_tag_and_remove_with_the_docker_cli() {
    let reg = Registry::start().unwrap();
    let img = BusyboxImage::build().unwrap();
    reg.push_image(&img, "bb", "latest").unwrap();
    let d = Berthd::start();
    let name = format!("{}/bb:latest", reg.host());

    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let again = d.docker_ok(&["pull", &name]);
    assert!(again.contains("Image is up to date"), "{again}");

    let listed = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let short = &img.config.digest[7..19];
    assert_eq!(listed.trim(), format!("{}/bb:latest {short}", reg.host()));

    let inspect = d.docker_ok(&["image", "inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Id"], img.config.digest.as_str());
    assert_eq!(v[0]["RootFS"]["Layers"][0], img.diff_id.as_str());
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(v[0]["Os"], "linux");
    // The layer is unpacked where GraphDriver says, ready for overlayfs.
    let lower = v[0]["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert!(std::path::Path::new(lower).join("bin/busybox").is_file());
    let hist = d.docker_ok(&["history", "--format", "{{.CreatedBy}}", &name]);
    assert!(hist.contains("berth-testkit"), "{hist}");

    d.docker_ok(&["tag", &name, "mine:v1"]);
    let by_id = d.docker_ok(&["images", "-q"]);
    assert_eq!(by_id.lines().count(), 2, "one image, two tags: {by_id}");
    let out = d.docker_ok(&["rmi", "mine:v1"]);
    assert_eq!(out.trim(), "Untagged: mine:v1");
    let out = d.docker_ok(&["rmi", &name]);
    assert!(out.contains(&format!("Untagged: {name}")), "{out}");
    assert!(
        out.contains(&format!("Deleted: {}", img.config.digest)),
        "{out}"
    );
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    assert_store_empty(&d);

    let out = d.docker(&["image", "inspect", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nope"));
}

#[test]
fn login_then_pull_from_a_registry_with_basic_auth() {
    let reg = Registry::start_with_auth("berth", "s3cret").unwrap();
    let img = BusyboxImage::build().unwrap();
    reg.push_image(&img, "private/bb", "v1").unwrap();
    let d = Berthd::start();
    let name = format!("{}/private/bb:v1", reg.host());

    let out = d.docker(&["pull", &name]);
    assert!(!out.status.success(), "pulled without credentials");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pull access denied") || err.contains("unauthorized"),
        "{err}"
    );

    let bad = d.docker(&["login", "-u", "berth", "-p", "wrong", &reg.host()]);
    assert!(!bad.status.success());
    let ok = d.docker_ok(&["login", "-u", "berth", "-p", "s3cret", &reg.host()]);
    assert!(ok.contains("Login Succeeded"), "{ok}");
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn broken_and_hostile_images_fail_and_leave_the_store_as_it_was() {
    let reg = Registry::start().unwrap();
    let d = Berthd::start();

    // Unknown tag: a clear error, nothing stored.
    let out = d.docker(&["pull", &format!("{}/nothing:here", reg.host())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");

    // A config that lies about its layer's content.
    let tar = berth_testkit::busybox::layer_tar().unwrap();
    let liar = BusyboxImage::from_layer_tar(
        &tar,
        Some("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
    )
    .unwrap();
    reg.push_image(&liar, "liar", "latest").unwrap();
    let out = d.docker(&["pull", &format!("{}/liar", reg.host())]);
    assert!(!out.status.success(), "a lying image was pulled");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("does not match"), "{text}");

    // A layer that climbs out with "..".
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..14].copy_from_slice(b"../../../pwned");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let evil = BusyboxImage::from_layer_tar(&b.into_inner().unwrap(), None).unwrap();
    reg.push_image(&evil, "evil", "latest").unwrap();
    let out = d.docker(&["pull", &format!("{}/evil", reg.host())]);
    assert!(!out.status.success(), "a hostile layer was pulled");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"..\""), "{text}");
    assert!(!d.roots.data_root().join("pwned").exists());
    assert!(!d.roots.path().join("pwned").exists());

    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    assert_store_empty(&d);
}

#[test]
fn the_api_answers_like_docker_on_the_wire() {
    let d = Berthd::start();
    let (status, head, body) = d.raw("GET", "/_ping", b"");
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(head.contains("Api-Version: 1.45"), "{head}");
    assert!(head.to_lowercase().contains("ostype: linux"), "{head}");
    let (status, _, body) = d.raw("GET", "/v1.41/version", b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ApiVersion"], "1.45");
    assert_eq!(v["MinAPIVersion"], "1.24");
    let (status, _, body) = d.raw("GET", "/v9.99/version", b"");
    assert_eq!(status, 400);
    assert!(body.contains("too new"), "{body}");
    let (status, _, body) = d.raw("GET", "/nowhere", b"");
    assert_eq!((status, body.trim()), (404, "404 page not found"));
    let (status, head, body) = d.raw("GET", "/images/nope/json", b"");
    assert_eq!(status, 404);
    assert!(
        head.contains("Content-Type: application/json\r\n")
            || head.ends_with("Content-Type: application/json"),
        "{head}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"],
        "No such image: nope"
    );
    let (status, _, body) = d.raw("POST", "/images/create?fromImage=Bad%20Name", b"");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = d.raw("POST", "/auth", b"{not json");
    assert_eq!(status, 400);
    let (status, _, body) = d.raw("GET", "/images/json?filters=%7Bbad", b"");
    assert_eq!(status, 400, "{body}");

    let info = d.docker_ok(&[
        "info",
        "--format",
        "{{.ServerVersion}} {{.Driver}} {{.OSType}}",
    ]);
    assert_eq!(
        info.trim(),
        format!("{} overlay2 linux", env!("CARGO_PKG_VERSION"))
    );
    let ver = d.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(ver.trim(), "1.45");
}

#[test]
fn docker_import_makes_a_runnable_image_and_refuses_hostile_tars() {
    let d = Berthd::start();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::layer_tar().unwrap()).unwrap();
    let out = d.docker_ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV GREETING=hi",
        &tar.display().to_string(),
        "imported:v1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let cmd = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.Config.Cmd}} {{.Config.Env}}",
        "imported:v1",
    ]);
    assert_eq!(cmd.trim(), "[sh] [GREETING=hi]");
    let run = d.docker_ok(&[
        "run",
        "--rm",
        "imported:v1",
        "sh",
        "-c",
        "echo $GREETING from import",
    ]);
    assert_eq!(run, "hi from import\n");
    d.docker_ok(&["rmi", "imported:v1"]);
    assert_store_empty(&d);

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let evil = dir.path().join("evil.tar");
    std::fs::write(&evil, b.into_inner().unwrap()).unwrap();
    let out = d.docker(&["import", &evil.display().to_string(), "evil:v1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"..\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.roots.data_root().join("escape").exists());
    assert_store_empty(&d);
}

/// Serves `body` to every GET of `/rootfs.tar` on a loopback port (404 for anything else),
/// one connection at a time, until the test ends.
fn serve_rootfs(body: Vec<u8>) -> u16 {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let found = first.starts_with("GET /rootfs.tar ");
            let (status, data): (&str, &[u8]) = if found {
                ("200 OK", &body)
            } else {
                ("404 Not Found", b"no such file")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(data);
        }
    });
    port
}

#[test]
fn docker_import_from_a_url() {
    let d = Berthd::start();
    let port = serve_rootfs(berth_testkit::busybox::layer_tar().unwrap());
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    let out = d.docker_ok(&["import", "-c", "CMD [\"sh\"]", &url, "fromurl:v1"]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let run = d.docker_ok(&["run", "--rm", "fromurl:v1", "echo", "downloaded"]);
    assert_eq!(run, "downloaded\n");

    // A missing file, an https URL: clear errors, nothing stored.
    let missing = d.docker(&[
        "import",
        &format!("http://127.0.0.1:{port}/nope.tar"),
        "nope:v1",
    ]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert!(err.contains("404"), "{err}");
    let https = d.docker(&[
        "import",
        &format!("https://127.0.0.1:{port}/rootfs.tar"),
        "tls:v1",
    ]);
    assert!(String::from_utf8_lossy(&https.stderr).contains("https is not supported"));
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images, "fromurl:v1\n");
}

#[test]
fn a_zstd_layer_pulls_and_runs() {
    let reg = Registry::start().unwrap();
    let tar = berth_testkit::busybox::layer_tar().unwrap();
    let compressed = zstd::stream::encode_all(&tar[..], 3).unwrap();
    let image = BusyboxImage::with_layer(
        berth_testkit::Blob::new("application/vnd.oci.image.layer.v1.tar+zstd", compressed),
        berth_testkit::busybox::sha256_digest(&tar),
    )
    .unwrap();
    reg.push_image(&image, "zstd/bb", "latest").unwrap();
    let d = Berthd::start();
    let name = format!("{}/zstd/bb", reg.host());
    d.docker_ok(&["pull", "-q", &name]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "echo", "zstd"]),
        "zstd\n"
    );
}

/// Unmounts the small data root when the test ends, whatever happens (after the daemon is gone).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Test roots whose data root is a 48 MiB tmpfs.
fn small_data_root() -> (berth_testkit::TestRoots, Unmount) {
    let roots = berth_testkit::TestRoots::new().unwrap();
    let data = roots.data_root();
    rustix::mount::mount(
        "tmpfs",
        &data,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(c"size=48m,mode=0710"),
    )
    .unwrap();
    (roots, Unmount(data))
}

/// A layer tar of one file of `mib` MiB of incompressible content.
fn noise_layer(mib: usize) -> Vec<u8> {
    let mut noise = vec![0u8; mib << 20];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut noise).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(noise.len() as u64);
    b.append_data(&mut h, "noise", &noise[..]).unwrap();
    b.into_inner().unwrap()
}

/// A data root that fills up: a pull too big for it fails with a clear error and leaves the
/// stores as they were; a container filling its rootfs gets ENOSPC while the daemon goes on;
/// once space is free again, the next pull and run work. (The data root is a 48 MiB tmpfs.)
#[test]
fn a_full_data_root_fails_operations_cleanly_and_recovers() {
    let (roots, _unmount) = small_data_root();
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    // 64 MiB of incompressible content: more than the data root holds.
    let big = BusyboxImage::from_layer_tar(&noise_layer(64), None).unwrap();
    reg.push_image(&big, "big", "latest").unwrap();

    let d = Berthd::start_with(roots);
    let out = d.docker(&["pull", &format!("{}/big", reg.host())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("no space left on device"), "{err}");
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    assert_store_empty(&d);

    let image = format!("{}/bb", reg.host());
    d.docker_ok(&["pull", "-q", &image]);
    let fill = d.docker(&[
        "run",
        "--name",
        "filler",
        &image,
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=100",
    ]);
    // The attached client gets the error (the container's log, on the full disk too, may not).
    assert!(!fill.status.success(), "{fill:?}");
    let said = String::from_utf8_lossy(&fill.stderr).to_lowercase();
    assert!(said.contains("no space left"), "{said}");
    assert_eq!(d.raw("GET", "/_ping", b"").0, 200, "the daemon goes on");
    d.docker_ok(&["rm", "filler"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", &image, "echo", "room"]),
        "room\n"
    );
}

/// A full data root during `docker load` and while a container writes its log: the load fails
/// with a clear error and leaves the image store as it was, the container keeps running (the
/// lines that find no room are dropped, never blocking it), and once space is free the next
/// load works and new lines reach the log. (The data root is a 48 MiB tmpfs.)
#[test]
fn load_and_container_logs_on_a_full_data_root() {
    let (roots, _unmount) = small_data_root();
    let data = roots.data_root();
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    // An image of 10 MiB of incompressible content, as a `docker save` archive outside the data
    // root (a load stores it three times: upload, blob, layer): it fits once the filler is gone,
    // not before.
    let archive = roots.path().join("noisy.tar");
    BusyboxImage::from_layer_tar(&noise_layer(10), None)
        .unwrap()
        .write_docker_archive(&archive, "noisy:latest")
        .unwrap();
    let archive = archive.display().to_string();

    let d = Berthd::start_with(roots);
    let image = format!("{}/bb", reg.host());
    d.docker_ok(&["pull", "-q", &image]);
    let logger = d
        .docker_ok(&[
            "run",
            "-d",
            &image,
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo line $i; echo $i > /dev/shm/n; sleep 0.01; done",
        ])
        .trim()
        .to_string();
    // Fill what is left of the data root.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
    }
    let images_before = d.docker_ok(&["images", "-q", "--no-trunc"]);
    let out = d.docker(&["load", "-i", &archive]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("no space left on device"), "{err}");
    assert_eq!(d.docker_ok(&["images", "-q", "--no-trunc"]), images_before);

    // The logger writes on: a full disk costs it lines, not progress (its counter is kept in
    // /dev/shm, off the data root).
    let count = |d: &Berthd| -> u64 {
        d.docker_ok(&["exec", &logger, "cat", "/dev/shm/n"])
            .trim()
            .parse()
            .unwrap()
    };
    let before = count(&d);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        d.docker_ok(&["inspect", "--format", "{{.State.Running}}", &logger])
            .trim(),
        "true"
    );
    assert!(count(&d) > before, "the container stopped making progress");
    assert_eq!(d.raw("GET", "/_ping", b"").0, 200, "the daemon goes on");

    std::fs::remove_file(&filler).unwrap();
    // New lines reach the log again.
    let last_line = |d: &Berthd| -> u64 {
        d.docker_ok(&["logs", "--tail", "1", &logger])
            .trim()
            .trim_start_matches("line ")
            .parse()
            .unwrap_or(0)
    };
    let first = last_line(&d);
    berth_testkit::wait_for(std::time::Duration::from_secs(10), "new log lines", || {
        last_line(&d) > first
    })
    .unwrap();
    d.docker_ok(&["load", "-i", &archive]);
    d.docker_ok(&["image", "inspect", "noisy:latest"]);
    d.docker_ok(&["rm", "-f", &logger]);
    let (status, _, leftovers) = d.raw("POST", "/system/check", b"");
    assert_eq!((status, leftovers.trim()), (200, "[]"));
}
