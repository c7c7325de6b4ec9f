//! Suite `runtime`: berth-runc vs runc vs crun on the same busybox bundle (`/bin/true`, the
//! `runc spec` defaults): `run`, create+start+delete, and exec into a running container.

use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

/// The three timed groups, then the memory floor of each runtime (not in the cgroup2 view,
/// where this host's cgroup2 tree has no memory controller to limit anything).
pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let groups = groups(ctx)?;
    let ctx = ctx.clone();
    let extra: Option<crate::suites::Extra> = match ctx.cgroup2_view {
        true => None,
        false => Some(Box::new(move || memory_floor(&ctx))),
    };
    Ok(Plan { groups, extra })
}

/// The runtimes compared, Berth first: (name, program).
fn runtimes(ctx: &Ctx) -> Vec<(&'static str, String)> {
    vec![
        ("berth-runc", path_str(&ctx.bin_dir.join("berth-runc"))),
        ("runc", "runc".into()),
        ("crun", "crun".into()),
    ]
}

/// Writes a bundle running `args` with the busybox rootfs under `dir`. In the cgroup2 view the
/// bundle has no device rules: crun 1.8 raises RLIMIT_MEMLOCK to load its v2 device filter, which
/// this host (no CAP_SYS_RESOURCE) refuses.
fn write_bundle(ctx: &Ctx, dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("rootfs"))?;
    berth_testkit::busybox::write_rootfs(&dir.join("rootfs"))?;
    let mut spec = serde_json::to_value(oci_default())?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(args);
    spec["hostname"] = "bench".into();
    if let (true, Some(resources)) = (ctx.cgroup2_view, spec["linux"]["resources"].as_object_mut())
    {
        resources.remove("devices");
    }
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
    Ok(())
}

fn oci_default() -> serde_json::Value {
    // The same defaults `runc spec` writes (namespaces, mounts, masked paths, capabilities).
    let b = berth_testkit::Bundle::new(&["true"]).ok();
    b.and_then(|b| std::fs::read(b.config_path()).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn groups(ctx: &Ctx) -> anyhow::Result<Vec<Group>> {
    let true_bundle = ctx.work.join("true");
    write_bundle(ctx, &true_bundle, &["/bin/true"])?;
    let sleep_bundle = ctx.work.join("sleep");
    write_bundle(ctx, &sleep_bundle, &["/bin/sleep", "100000"])?;
    let tb = path_str(&true_bundle);
    let sb = path_str(&sleep_bundle);

    let mut run = Vec::new();
    let mut lifecycle = Vec::new();
    let mut exec = Vec::new();
    for (name, prog) in runtimes(ctx) {
        let root = path_str(&ctx.work.join(format!("state-{name}")));
        let is_berth = name == "berth-runc";
        let id = format!("bench-{name}");
        run.push(Contender::new(
            name,
            is_berth,
            vec![argv(&[&prog, "--root", &root, "run", "--bundle", &tb, &id])],
        ));
        let lid = format!("bench-lc-{name}");
        lifecycle.push(Contender::new(
            name,
            is_berth,
            vec![
                argv(&[&prog, "--root", &root, "create", "--bundle", &tb, &lid]),
                argv(&[&prog, "--root", &root, "start", &lid]),
                argv(&[&prog, "--root", &root, "delete", "--force", &lid]),
            ],
        ));
        let eid = format!("bench-ex-{name}");
        let mut c = Contender::new(
            name,
            is_berth,
            vec![argv(&[&prog, "--root", &root, "exec", &eid, "/bin/true"])],
        );
        c.setup = vec![
            argv(&[&prog, "--root", &root, "create", "--bundle", &sb, &eid]),
            argv(&[&prog, "--root", &root, "start", &eid]),
        ];
        c.teardown = vec![argv(&[&prog, "--root", &root, "delete", "--force", &eid])];
        exec.push(c);
    }
    Ok(vec![
        Group {
            title: "`run` of /bin/true (create, start, wait, delete)".into(),
            contenders: run,
            differences: vec![],
        },
        Group {
            title: "create + start + delete --force, as three commands".into(),
            contenders: lifecycle,
            differences: vec![],
        },
        Group {
            title: "`exec /bin/true` in a running container".into(),
            contenders: exec,
            differences: vec![],
        },
    ])
}

/// The smallest `linux.resources.memory.limit` under which each runtime still starts /bin/true
/// (the runtime's own pages in the container's cgroup count against it).
fn memory_floor(ctx: &Ctx) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    const LIMITS_KIB: [u64; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];
    let mut out = String::from(
        "## Smallest memory limit that still starts `/bin/true`\n\n| runtime | smallest limit (KiB) |\n|---|---:|\n",
    );
    for (name, prog) in runtimes(ctx) {
        if crate::measure::locate(&prog).is_none() {
            writeln!(out, "| {name} | not installed |")?;
            continue;
        }
        let root = path_str(&ctx.work.join(format!("state-mem-{name}")));
        let mut floor = None;
        for kib in LIMITS_KIB {
            let dir = ctx.work.join(format!("mem-{kib}"));
            if !dir.exists() {
                write_bundle(ctx, &dir, &["/bin/true"])?;
                let cfg = dir.join("config.json");
                let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg)?)?;
                v["linux"]["resources"]["memory"] = serde_json::json!({ "limit": kib * 1024 });
                std::fs::write(&cfg, serde_json::to_vec(&v)?)?;
            }
            let id = format!("mem-{name}-{kib}");
            let ok = crate::measure::run_steps(&[argv(&[
                &prog,
                "--root",
                &root,
                "run",
                "--bundle",
                &path_str(&dir),
                &id,
            ])])
            .is_ok();
            let _ = crate::measure::run_steps(&[argv(&[
                &prog, "--root", &root, "delete", "--force", &id,
            ])]);
            if ok {
                floor = Some(kib);
                break;
            }
        }
        match floor {
            Some(k) => writeln!(out, "| {name} | {k} |")?,
            None => writeln!(
                out,
                "| {name} | none up to {} |",
                LIMITS_KIB[LIMITS_KIB.len() - 1]
            )?,
        }
    }
    out.push('\n');
    Ok(out)
}
