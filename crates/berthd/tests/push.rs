//! `docker push` against berthd and a real registry on loopback: a pulled image re-tagged and
//! pushed keeps its manifest digest, layers the registry has are not sent again (nor those in
//! another repository of it: mounted), an imported
//! image (no blobs) is packed and pushed, everything pushed pulls back and runs on a second
//! daemon; pushing needs credentials where the registry asks for them; a missing image is
//! refused with Docker's words.

mod common;

use berth_testkit::{BusyboxImage, Registry};
use common::Berthd;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn push_pulled_and_imported_images_then_pull_them_back() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "src/bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let src = format!("{}/src/bb:latest", reg.host());
    d.docker_ok(&["pull", "-q", &src]);
    let original = d.docker_ok(&["inspect", "-f", "{{index .RepoDigests 0}}", &src]);
    let original_digest = original.trim().rsplit('@').next().unwrap().to_string();

    let copy = format!("{}/copy/bb:v1", reg.host());
    d.docker_ok(&["tag", &src, &copy]);
    let out = d.docker_ok(&["push", &copy]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/copy/bb]",
            reg.host()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("v1: digest: {original_digest} size: ")),
        "the manifest changed on push: {out}"
    );
    // Its layer came from src/bb on the same registry: mounted, not uploaded again.
    assert!(out.contains("Mounted from src/bb"), "{out}");
    assert!(!out.contains("Pushed"), "{out}");
    // Again: every layer is already there.
    let again = d.docker_ok(&["push", &copy]);
    assert!(again.contains("Layer already exists"), "{again}");

    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::layer_tar().unwrap()).unwrap();
    let imported = format!("{}/imported/bb:1", reg.host());
    d.docker_ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        &tar.display().to_string(),
        &imported,
    ]);
    let out = d.docker_ok(&["push", &imported]);
    assert!(
        out.contains("Pushed") && out.contains("1: digest: sha256:"),
        "{out}"
    );

    // A second daemon pulls both back and runs them.
    let other = Berthd::start();
    for name in [&copy, &imported] {
        other.docker_ok(&["pull", "-q", name]);
        let run = other.docker_ok(&["run", "--rm", name, "echo", "pushed and pulled"]);
        assert_eq!(run, "pushed and pulled\n");
    }
    let pulled = other.docker_ok(&["inspect", "-f", "{{index .RepoDigests 0}}", &copy]);
    assert!(pulled.trim().ends_with(&original_digest), "{pulled}");

    let missing = format!("{}/nope/bb:v9", reg.host());
    let out = d.docker(&["push", &missing]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("An image does not exist locally with the tag"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn push_to_a_registry_with_auth_needs_login() {
    let reg = Registry::start_with_auth("berth", "s3cret").unwrap();
    let d = Berthd::start();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::layer_tar().unwrap()).unwrap();
    let name = format!("{}/private/bb:v1", reg.host());
    d.docker_ok(&["import", &tar.display().to_string(), &name]);
    let out = d.docker(&["push", &name]);
    assert!(!out.status.success(), "pushed without credentials");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        text.contains("unauthorized") || text.contains("authentication"),
        "{text}"
    );
    d.docker_ok(&["login", "-u", "berth", "-p", "s3cret", &reg.host()]);
    let out = d.docker_ok(&["push", &name]);
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    d.docker_ok(&["rmi", &name]);
    d.docker_ok(&["pull", "-q", &name]);
}

#[test]
fn push_and_pull_through_a_tls_registry_trusted_by_certs_d() {
    let certs = tempfile::tempdir().unwrap();
    berth_testkit::certs::make(certs.path(), "registry CA").unwrap();
    let tls = Registry::start_tls(
        &certs.path().join("server-cert.pem"),
        &certs.path().join("server-key.pem"),
    )
    .unwrap();
    let plain = Registry::start().unwrap();
    plain
        .push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let src = format!("{}/bb", plain.host());
    d.docker_ok(&["pull", "-q", &src]);
    let target = format!("{}/secure/bb:1", tls.host());
    d.docker_ok(&["tag", &src, &target]);
    let trust = |d: &Berthd, ca: &std::path::Path| {
        let dir = d.roots.path().join("certs.d").join(tls.host());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    };

    // Listed with a CA that did not sign it: HTTPS, and the certificate is refused.
    let other = tempfile::tempdir().unwrap();
    berth_testkit::certs::make(other.path(), "another CA").unwrap();
    trust(&d, &other.path().join("ca.pem"));
    let refused = d.docker(&["push", &target]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("certificate"),
        "{}",
        stderr(&refused)
    );

    // Its own CA in certs.d: pushed over TLS, then pulled and run by another daemon.
    trust(&d, &certs.path().join("ca.pem"));
    let out = d.docker_ok(&["push", &target]);
    assert!(out.contains("1: digest: sha256:"), "{out}");
    let second = Berthd::start();
    trust(&second, &certs.path().join("ca.pem"));
    second.docker_ok(&["pull", "-q", &target]);
    assert_eq!(
        second.docker_ok(&["run", "--rm", &target, "echo", "over tls"]),
        "over tls\n"
    );

    // A registry that wants a client certificate: refused without one, served with
    // certs.d/<host>/client.cert + client.key (Docker's names).
    let mutual = Registry::start_mutual_tls(
        &certs.path().join("server-cert.pem"),
        &certs.path().join("server-key.pem"),
        &certs.path().join("ca.pem"),
    )
    .unwrap();
    let locked = format!("{}/locked/bb:1", mutual.host());
    d.docker_ok(&["tag", &src, &locked]);
    let dir = d.roots.path().join("certs.d").join(mutual.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(certs.path().join("ca.pem"), dir.join("ca.crt")).unwrap();
    let anonymous = d.docker(&["push", &locked]);
    assert!(
        !anonymous.status.success(),
        "pushed without a client certificate"
    );
    std::fs::copy(certs.path().join("cert.pem"), dir.join("client.cert")).unwrap();
    std::fs::copy(certs.path().join("key.pem"), dir.join("client.key")).unwrap();
    let out = d.docker_ok(&["push", &locked]);
    assert!(out.contains("1: digest: sha256:"), "{out}");
}
