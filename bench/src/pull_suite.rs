//! Suite `pull`: a cold pull of a 4-layer image of ~180 MB of random data from a registry on
//! loopback (the real docker-registry), by berthd (driven by the docker CLI, since the `berth`
//! client is not built yet) and by a private dockerd 20.10, each followed by an untimed `rmi`
//! so every round is cold; and `skopeo copy` to a directory (download without unpacking), when
//! skopeo is installed.

use std::io::Write;

use anyhow::Context;
use berth_testkit::{Blob, Dockerd, Registry};

use crate::daemons::Berthd;
use crate::measure::RUN;
use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

pub const ABOUT: &str = "Cold pull of a 4-layer image (4 × 45 MiB of random data, gzip) from \
docker-registry on 127.0.0.1: berthd (via the docker CLI) vs dockerd 20.10 (same CLI), each \
round followed by an untimed rmi; `skopeo copy` to a directory (no unpack) where installed";

const LAYERS: usize = 4;
const LAYER_BYTES: usize = 45 << 20;

/// Pushes the image as `repo:latest`.
fn push_random_image(reg: &Registry, repo: &str) -> anyhow::Result<()> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    for i in 0..LAYERS {
        let mut data = vec![0u8; LAYER_BYTES];
        std::io::Read::read_exact(&mut urandom, &mut data)?;
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("data/layer-{i}.bin"), &data[..])?;
        let tar = b.into_inner()?;
        diff_ids.push(berth_testkit::busybox::sha256_digest(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar)?;
        let blob = Blob::new(berth_testkit::busybox::OCI_LAYER_GZIP, gz.finish()?);
        reg.push_blob(repo, &blob)?;
        layers.push(blob.descriptor());
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::new(
        berth_testkit::busybox::OCI_CONFIG,
        serde_json::to_vec(&config)?,
    );
    reg.push_blob(repo, &config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_testkit::busybox::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    });
    let manifest = Blob::new(
        berth_testkit::busybox::OCI_MANIFEST,
        serde_json::to_vec(&manifest)?,
    );
    reg.push_manifest(repo, "latest", &manifest)?;
    Ok(())
}

/// What the groups need alive until the report is written.
struct Lab {
    _berthd: Berthd,
    _dockerd: Dockerd,
    _registry: Registry,
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let registry = Registry::start().context("starting docker-registry")?;
    push_random_image(&registry, "bench/big").context("pushing the image")?;
    let image = format!("{}/bench/big:latest", registry.host());
    let berthd = Berthd::start(ctx)?;
    let dockerd = Dockerd::start(&[]).context("starting dockerd")?;
    let docker = berth_testkit::dockerd::DOCKER_BIN;
    let pull = |host: &str| argv(&[docker, "-H", host, "pull", "-q", &image]);
    let rmi = |host: &str| argv(&[docker, "-H", host, "rmi", &image]);
    let mut berth = Contender::new("berthd", true, vec![pull(&berthd.host())]);
    berth.after_each = vec![rmi(&berthd.host())];
    let mut docker_c = Contender::new("dockerd 20.10", false, vec![pull(&dockerd.host())]);
    docker_c.after_each = vec![rmi(&dockerd.host())];
    let dir = ctx.work.join(format!("skopeo-{RUN}"));
    let mut skopeo = Contender::new(
        "skopeo copy (no unpack)",
        false,
        vec![argv(&[
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("dir:{}", path_str(&dir)),
        ])],
    );
    skopeo.after_each = vec![argv(&["rm", "-rf", &path_str(&dir)])];
    let lab = Lab {
        _berthd: berthd,
        _dockerd: dockerd,
        _registry: registry,
    };
    Ok(Plan {
        groups: vec![Group {
            title: format!(
                "cold pull of {LAYERS} layers × {} MiB (random, gzip)",
                LAYER_BYTES >> 20
            ),
            contenders: vec![berth, docker_c, skopeo],
            differences: vec![],
        }],
        extra: Some(Box::new(move || {
            drop(lab);
            Ok(String::new())
        })),
    })
}
