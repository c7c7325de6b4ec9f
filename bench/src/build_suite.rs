//! Suite `build`: image build as a user meets it, the docker CLI 20.10 driving each daemon —
//! berthd's builder (`DOCKER_BUILDKIT=0`, the classic API) vs dockerd 20.10's classic builder
//! vs dockerd 20.10's BuildKit (`DOCKER_BUILDKIT=1`): a small Dockerfile (FROM, ENV, WORKDIR,
//! COPY, 2 RUN, CMD) cold (`--no-cache`), the same unchanged (warm), after a one-file change in
//! the context, and a 3-stage build whose first two stages are independent (cold). All builds
//! run with `--network none`.

use std::path::Path;

use crate::engines::Engines;
use crate::measure::{RUN, output};
use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

pub const ABOUT: &str = "`docker build` (CLI 20.10) against berthd vs dockerd 20.10's classic \
builder vs dockerd 20.10's BuildKit (and `berth build` against berthd, the client's share): a small Dockerfile cold (`--no-cache`), warm (unchanged), \
after a one-file change, and a 3-stage build with two independent stages (cold; each of those \
stages sleeps 0.5 s, so running them at once shows). Targets (issue 20): cold ≤ 0.5 × BuildKit, \
warm ≤ 0.25 × BuildKit, the 3-stage build faster than the sum of its stages";

fn write(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<()> {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
        std::fs::write(p, body)?;
    }
    Ok(())
}

/// The contexts: a small one, a copy of it that changes each round, and a 3-stage one.
fn contexts(ctx: &Ctx, image: &str) -> anyhow::Result<[String; 3]> {
    let small = format!(
        "FROM {image}\nENV APP=/app\nWORKDIR /app\nCOPY app.txt ./\nRUN echo one > one.txt\n\
         RUN cat app.txt one.txt > both.txt\nCMD [\"cat\", \"both.txt\"]\n"
    );
    let staged = format!(
        "FROM {image} AS left\nRUN sleep 0.5 && echo left > /left\n\
         FROM {image} AS right\nRUN sleep 0.5 && echo right > /right\n\
         FROM {image}\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n\
         CMD [\"cat\", \"/left\", \"/right\"]\n"
    );
    let dirs = ["build-small", "build-change", "build-staged"].map(|d| ctx.work.join(d));
    write(
        &dirs[0],
        &[("Dockerfile", small.clone()), ("app.txt", "app\n".into())],
    )?;
    write(
        &dirs[1],
        &[("Dockerfile", small), ("app.txt", "app\n".into())],
    )?;
    write(&dirs[2], &[("Dockerfile", staged)])?;
    Ok(dirs.map(|d| path_str(&d)))
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let e = Engines::start(ctx)?;
    let [small, change, staged] = contexts(ctx, &e.image)?;
    let (b, d) = (e.berthd.host(), e.dockerd.host());
    // (name, daemon, DOCKER_BUILDKIT)
    let mut who = vec![
        ("berthd", b.clone(), "0"),
        ("berth client + berthd", b.clone(), "berth"),
        ("dockerd 20.10 classic", d.clone(), "0"),
        ("dockerd 20.10 BuildKit", d.clone(), "1"),
    ];
    if let Some(base) = &e.baseline {
        who.push(("berthd (baseline)", base.host(), "0"));
    }
    let berth = path_str(&ctx.bin_dir.join("berth"));
    // `kit` "berth": the berth client instead of the docker CLI.
    let build = |host: &str, kit: &str, extra: &[&str], dir: &str| {
        let buildkit = format!("DOCKER_BUILDKIT={kit}");
        let mut v = argv(&["env", &buildkit]);
        match kit {
            "berth" => v.extend(argv(&[
                &berth,
                "-H",
                host,
                "build",
                "-q",
                "--network",
                "none",
            ])),
            _ => v.extend(e.docker(host, &["build", "-q", "--network", "none"])),
        }
        v.extend(argv(extra));
        v.push(dir.to_string());
        v
    };
    // Every daemon has each context's cache before the warm and change groups.
    for (_, host, kit) in &who {
        for dir in [&small, &change] {
            output(&build(host, kit, &[], dir))?;
        }
    }
    let group = |title: &str, steps: &dyn Fn(&str, &str) -> Vec<Vec<String>>| Group {
        title: title.into(),
        contenders: who
            .iter()
            .map(|(name, host, kit)| Contender::new(name, *name == "berthd", steps(host, kit)))
            .collect(),
        differences: vec![],
    };
    let app = format!("{change}/app.txt");
    // Each contender's change is its own, so two sharing a daemon never find the other's.
    let touch = |kit: &str| argv(&["sh", "-c", &format!("echo changed {RUN} {kit} > {app}")]);
    Ok(Plan {
        groups: vec![
            group("small Dockerfile, cold (`--no-cache`)", &|h, k| {
                vec![build(h, k, &["--no-cache"], &small)]
            }),
            group("small Dockerfile, warm (unchanged)", &|h, k| {
                vec![build(h, k, &[], &small)]
            }),
            group("small Dockerfile after a one-file change", &|h, k| {
                vec![touch(k), build(h, k, &[], &change)]
            }),
            group("3 stages, 2 independent (0.5 s each), cold", &|h, k| {
                vec![build(h, k, &["--no-cache"], &staged)]
            }),
        ],
        extra: Some(Box::new(move || {
            drop(e);
            Ok(String::new())
        })),
    })
}
