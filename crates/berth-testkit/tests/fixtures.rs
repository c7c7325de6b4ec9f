//! The test kit's promises, checked against the real pieces: the busybox image and bundle are
//! valid, the image goes into a real docker-registry and its manifest comes back by digest, and
//! basic auth is enforced when asked for; Docker's own `docker load` takes the `docker save`
//! archive into a private dockerd, which runs it.

use berth_testkit::busybox::sha256_digest;
use berth_testkit::{Bundle, BusyboxImage, Dockerd, Registry};

#[test]
fn busybox_image_pushes_and_pulls_back_by_digest() {
    let image = BusyboxImage::build().unwrap();
    let registry = Registry::start().unwrap();
    let digest = registry
        .push_image(&image, "test/busybox", "latest")
        .unwrap();
    assert_eq!(digest, image.manifest.digest);

    let (media_type, body) = registry.get_manifest("test/busybox", &digest).unwrap();
    assert_eq!(media_type, berth_testkit::busybox::OCI_MANIFEST);
    assert_eq!(
        sha256_digest(&body),
        digest,
        "manifest bytes must match their digest"
    );
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], image.layer.digest.as_str());
    assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
}

#[test]
fn registry_with_auth_refuses_anonymous_and_accepts_credentials() {
    let registry = Registry::start_with_auth("berth", "s3cret").unwrap();
    assert_eq!(registry.get_status_anonymous("/v2/").unwrap(), 401);
    let image = BusyboxImage::build().unwrap();
    let digest = registry
        .push_image(&image, "private/busybox", "v1")
        .unwrap();
    let (_, body) = registry.get_manifest("private/busybox", "v1").unwrap();
    assert_eq!(sha256_digest(&body), digest);
}

#[test]
fn image_layer_holds_busybox_and_its_applets() {
    let image = BusyboxImage::build().unwrap();
    let tar_bytes = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&image.layer.bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    assert_eq!(sha256_digest(&tar_bytes), image.diff_id);
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["bin/busybox", "bin/sh", "etc/passwd", "tmp/"] {
        assert!(names.iter().any(|n| n == want), "layer lacks {want}");
    }
}

#[test]
fn image_writes_a_valid_oci_layout() {
    let image = BusyboxImage::build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    image.write_oci_layout(dir.path(), "latest").unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = std::fs::read(dir.path().join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(sha256_digest(&blob), digest);
}

#[test]
fn bundle_rootfs_runs_busybox_and_spec_parses() {
    let bundle = Bundle::new(&["echo", "hi"]).unwrap();
    let spec = bundle.spec().unwrap();
    let args = spec.process().as_ref().unwrap().args().clone().unwrap();
    assert_eq!(args, vec!["echo", "hi"]);
    #[allow(clippy::disallowed_methods)]
    let out = std::process::Command::new(bundle.rootfs().join("bin/sh"))
        .args(["-c", "echo from-bundle"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-bundle\n");
}

#[test]
fn image_writes_a_docker_save_archive() {
    let image = BusyboxImage::build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busybox.tar");
    image
        .write_docker_archive(&path, "berth-test/busybox:latest")
        .unwrap();
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "berth-test/busybox:latest");
    let config = &files[manifest[0]["Config"].as_str().unwrap()];
    assert_eq!(sha256_digest(config), image.config.digest);
    let layer = &files[manifest[0]["Layers"][0].as_str().unwrap()];
    assert_eq!(
        sha256_digest(layer),
        image.diff_id,
        "layers are uncompressed"
    );
}

/// The archive and the private dockerd against the reference: Docker's own `docker load`, and a
/// container run by dockerd's default runtime (runc).
#[test]
fn dockerd_loads_the_busybox_archive_and_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    BusyboxImage::build()
        .unwrap()
        .write_docker_archive(&archive, "berth-test/busybox:latest")
        .unwrap();
    let dockerd = Dockerd::start(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    let out = dockerd.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "docker load: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Loaded image: berth-test/busybox:latest"),
        "{out:?}"
    );
    let out = dockerd.docker(&["run", "--rm", "berth-test/busybox", "echo", "hi"]);
    assert!(out.status.success(), "docker run: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}
