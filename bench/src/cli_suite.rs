//! Suite `cli`: the `berth` client against the docker CLI 20.10, both talking to the same
//! private berthd started for the run: `ps`, `version` and `run --rm IMAGE true` (create,
//! attach, wait, start, exit code) each by a fresh client process. The daemon's share is the
//! same for both, so the difference is the client's own start-up and protocol work.

use anyhow::Context;
use berth_testkit::BusyboxImage;

use crate::daemons::Berthd;
use crate::measure::output;
use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

pub const ABOUT: &str = "`berth` vs the docker CLI 20.10 against the same private berthd, a fresh \
client process per iteration: `ps` (one container listed), `version`, and `run --rm IMAGE true`. \
Target (issue 7): berth ≤ 0.5 × docker CLI";

/// The image both clients run.
const IMAGE: &str = "bench/busybox:latest";

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let berth = path_str(&ctx.bin_dir.join("berth"));
    let docker = berth_testkit::dockerd::DOCKER_BIN;
    let berthd = Berthd::start(ctx)?;
    let host = berthd.host();
    let config = ctx.work.join("docker-config");
    std::fs::create_dir_all(&config)?;
    let tar = ctx.work.join("busybox.tar");
    std::fs::write(
        &tar,
        berth_testkit::busybox::layer_tar().context("building the busybox layer")?,
    )?;
    // Keep the image builder's own checks in the loop: the layer must be a valid image layer.
    BusyboxImage::from_layer_tar(&std::fs::read(&tar)?, None)?;
    output(&argv(&[
        &berth,
        "-H",
        &host,
        "import",
        "-c",
        "CMD [\"sh\"]",
        &path_str(&tar),
        IMAGE,
    ]))
    .context("importing the busybox image with berth")?;
    // One container in the list, so `ps` formats a row.
    output(&argv(&[
        &berth, "-H", &host, "run", "-d", "--name", "listed", IMAGE, "sleep", "100000",
    ]))
    .context("starting the listed container")?;
    let docker_cfg = path_str(&config);
    // `--baseline-bin-dir`: an earlier build's client against the same daemon, one more contender.
    let baseline = ctx
        .baseline_bin_dir
        .as_ref()
        .map(|d| path_str(&d.join("berth")));
    let group = |title: &str, args: &[&str]| {
        let with = |client: &str| {
            let mut c = vec![client, "-H", host.as_str()];
            c.extend_from_slice(args);
            argv(&c)
        };
        let mut d = vec![docker, "--config", docker_cfg.as_str(), "-H", host.as_str()];
        d.extend_from_slice(args);
        let mut contenders = vec![
            Contender::new("berth", true, vec![with(&berth)]),
            Contender::new("docker CLI 20.10", false, vec![argv(&d)]),
        ];
        if let Some(b) = &baseline {
            contenders.push(Contender::new("berth (baseline)", false, vec![with(b)]));
        }
        Group {
            title: title.into(),
            contenders,
            differences: vec![],
        }
    };
    let groups = vec![
        group("`ps`", &["ps"]),
        group("`version`", &["version"]),
        group("`run --rm IMAGE true`", &["run", "--rm", IMAGE, "true"]),
    ];
    let cleanup = argv(&[&berth, "-H", &host, "rm", "-f", "listed"]);
    Ok(Plan {
        groups,
        extra: Some(Box::new(move || {
            let _ = output(&cleanup);
            drop(berthd);
            Ok(String::new())
        })),
    })
}
