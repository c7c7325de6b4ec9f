//! Suite `runtime`: berth-runc vs runc vs crun on the same busybox bundle (`/bin/true`, the
//! `runc spec` defaults): `run`, create+start+delete, and exec into a running container.

use crate::suites::{CgroupView, Contender, Ctx, Group, Plan, argv, path_str};

/// The three timed groups, then what each runtime costs the container's memory budget (not in
/// the cgroup2 view, where this host's cgroup2 tree has no memory controller).
pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let groups = groups(ctx)?;
    let ctx = ctx.clone();
    let extra: Option<crate::suites::Extra> = match ctx.view {
        CgroupView::V2 => None,
        _ => Some(Box::new(move || {
            Ok(format!("{}{}", memory_peak(&ctx)?, memory_floor(&ctx)?))
        })),
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
    let v2 = ctx.view == CgroupView::V2;
    if let (true, Some(resources)) = (v2, spec["linux"]["resources"].as_object_mut()) {
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
        let root = path_str(&ctx.state.join(format!("state-{name}")));
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

/// Rounds of the memory-peak measurement.
const PEAK_ROUNDS: usize = 20;

/// The v1 memory controller's directory for cgroupsPath `/path`, where the host has one.
fn v1_memory_dir(path: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup/memory");
    root.join("memory.max_usage_in_bytes")
        .exists()
        .then(|| root.join(path.trim_start_matches('/')))
}

/// The peak memory charged to the container's cgroup while each runtime creates and starts
/// /bin/true, medians of [`PEAK_ROUNDS`]: v1 `memory.max_usage_in_bytes` (the runtime's pages
/// and kernel objects in the container's cgroup plus the process's; the kernel charges it in
/// batches of 64 pages per CPU, so it moves in steps of 256 KiB) and
/// `memory.kmem.max_usage_in_bytes` (kernel memory alone, counted exactly: namespaces, mounts,
/// page tables, the init's task), and the user pages ever charged (`pgpgin` of memory.stat, an
/// exact count and a bound on their peak).
fn memory_peak(ctx: &Ctx) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::from(
        "## Peak memory charged to the container's cgroup (create + start of `/bin/true`)\n\n\
         The timing tables' peak RSS (wait4) cannot go below this harness's own RSS: Linux \
         carries a process's high-water mark from before its exec (here the forked harness) \
         into its rusage, so that column only tells apart runtimes bigger than the harness \
         (runc). What a runtime costs the container's memory budget is measured here instead.\n\n",
    );
    if v1_memory_dir("/").is_none() {
        out.push_str("No v1 memory controller on this host: not measured.\n\n");
        return Ok(out);
    }
    out.push_str(
        "| runtime | max_usage KiB (median) | min | max | kmem max_usage KiB (median) | min | max \
         | user pages charged KiB (median) | min | max | rounds |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, prog) in runtimes(ctx) {
        if crate::measure::locate(&prog).is_none() {
            writeln!(out, "| {name} | not installed | | | | | | | | | |")?;
            continue;
        }
        let cg = format!("/berth-bench-peak-{name}");
        let dir = ctx.work.join(format!("peak-{name}"));
        write_bundle(ctx, &dir, &["/bin/true"])?;
        let cfg = dir.join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg)?)?;
        v["linux"]["cgroupsPath"] = cg.clone().into();
        std::fs::write(&cfg, serde_json::to_vec(&v)?)?;
        let root = path_str(&ctx.state.join(format!("state-peak-{name}")));
        let (mut all, mut kmem, mut user) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..PEAK_ROUNDS {
            let id = format!("peak-{name}-{round}");
            let (bundle, memdir) = (path_str(&dir), v1_memory_dir(&cg));
            let measured = (|| -> anyhow::Result<(u64, u64, u64)> {
                crate::measure::run_steps(&[
                    argv(&[&prog, "--root", &root, "create", "--bundle", &bundle, &id]),
                    argv(&[&prog, "--root", &root, "start", &id]),
                ])?;
                let memdir = memdir.ok_or_else(|| anyhow::anyhow!("no memory cgroup"))?;
                // Wait for /bin/true to be gone, then read the high-water marks.
                let procs = memdir.join("cgroup.procs");
                for _ in 0..200 {
                    if std::fs::read_to_string(&procs).is_ok_and(|p| p.trim().is_empty()) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let kib = |file: &str| -> anyhow::Result<u64> {
                    Ok(std::fs::read_to_string(memdir.join(file))?
                        .trim()
                        .parse::<u64>()?
                        / 1024)
                };
                let stat = std::fs::read_to_string(memdir.join("memory.stat"))?;
                let pgpgin = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("pgpgin "))
                    .ok_or_else(|| anyhow::anyhow!("no pgpgin in memory.stat"))?
                    .trim()
                    .parse::<u64>()?;
                Ok((
                    kib("memory.max_usage_in_bytes")?,
                    kib("memory.kmem.max_usage_in_bytes")?,
                    pgpgin * 4,
                ))
            })();
            let _ = crate::measure::run_steps(&[argv(&[
                &prog, "--root", &root, "delete", "--force", &id,
            ])]);
            match measured {
                Ok((a, k, u)) => {
                    all.push(a);
                    kmem.push(k);
                    user.push(u);
                }
                Err(e) => {
                    writeln!(out, "| {name} | failed: {e:#} | | | | | | | | | |")?;
                    break;
                }
            }
        }
        if all.len() == PEAK_ROUNDS {
            let spread = |v: &mut Vec<u64>| {
                v.sort_unstable();
                format!("{} | {} | {}", v[v.len() / 2], v[0], v[v.len() - 1])
            };
            writeln!(
                out,
                "| {name} | {} | {} | {} | {PEAK_ROUNDS} |",
                spread(&mut all),
                spread(&mut kmem),
                spread(&mut user)
            )?;
        }
    }
    out.push('\n');
    Ok(out)
}

/// The smallest `linux.resources.memory.limit` under which each runtime still starts /bin/true
/// (the runtime's own pages in the container's cgroup count against it).
fn memory_floor(ctx: &Ctx) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    const LIMITS_KIB: [u64; 9] = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
    let mut out = String::from(
        "## Smallest memory limit that still starts `/bin/true`\n\n| runtime | smallest limit (KiB) |\n|---|---:|\n",
    );
    for (name, prog) in runtimes(ctx) {
        if crate::measure::locate(&prog).is_none() {
            writeln!(out, "| {name} | not installed |")?;
            continue;
        }
        let root = path_str(&ctx.state.join(format!("state-mem-{name}")));
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
