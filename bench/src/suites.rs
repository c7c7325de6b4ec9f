//! The suites: each names its contenders (Berth first, then its peers) and what one iteration
//! runs. Contenders run interleaved, round by round, so drift on a noisy machine hits all alike.
//! A suite that needs daemons starts them while preparing and hands them to its [`Plan`], which
//! stops them when the suite is done, failed or not.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::measure::{Sample, locate, numbered, run_steps};
use crate::stats::{ms, summarize};
use crate::{
    build_suite, cli_suite, lifecycle_suite, network_suite, pull_suite, run_suite, runtime_suite,
};

/// One contender: a sequence of command lines timed together, with untimed setup/teardown.
/// [`crate::measure::RUN`] in a timed command line becomes the round number.
pub struct Contender {
    pub name: String,
    /// Berth's own contender: the others are compared with it.
    pub is_berth: bool,
    pub steps: Vec<Vec<String>>,
    pub setup: Vec<Vec<String>>,
    pub teardown: Vec<Vec<String>>,
    /// Untimed, after each round's steps (e.g. `rmi` so every pull is cold).
    pub after_each: Vec<Vec<String>>,
}

impl Contender {
    pub fn new(name: &str, is_berth: bool, steps: Vec<Vec<String>>) -> Self {
        Contender {
            name: name.into(),
            is_berth,
            steps,
            setup: Vec::new(),
            teardown: Vec::new(),
            after_each: Vec::new(),
        }
    }
}

/// A table of a suite: one measured operation across contenders.
pub struct Group {
    pub title: String,
    pub contenders: Vec<Contender>,
    /// Differences of medians reported under the table: (label, minuend contender, subtrahend
    /// contender). The first one is Berth's; the others are compared with it.
    pub differences: Vec<(String, String, String)>,
}

/// A tmpfs for the contenders' run-time state, as /run is on a usual host (this one's /run is
/// on the disk, where an ext4 journal commit now and then stalls a state file by milliseconds).
pub const TMPFS: &str = "/dev/shm";

/// What a suite gets to prepare its contenders.
#[derive(Clone)]
pub struct Ctx {
    pub bin_dir: PathBuf,
    /// Berth binaries of an earlier build (`--baseline-bin-dir`): suites that support it add
    /// them as one more contender, for a before/after comparison in one interleaved run.
    pub baseline_bin_dir: Option<PathBuf>,
    /// Scratch directory removed after the run.
    pub work: PathBuf,
    /// Scratch directory on tmpfs for runtimes' state (`--root`), removed after the run.
    pub state: PathBuf,
    /// The cgroup layout the harness runs under (`--cgroup2-view`, `--cgroup1-view`).
    pub view: CgroupView,
}

/// Which cgroup layout the contenders see.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CgroupView {
    /// The host's own layout.
    Host,
    /// A private mount namespace with the host's cgroup2 tree on /sys/fs/cgroup.
    V2,
    /// A private mount namespace where the hybrid host's cgroup2 mount is gone: v1 only.
    V1,
}

impl CgroupView {
    /// What the report says of the view, or nothing for the host's own.
    fn describe(self) -> Option<&'static str> {
        match self {
            CgroupView::Host => None,
            CgroupView::V2 => Some(
                "cgroup2 view: a private mount namespace with the host's cgroup2 tree (no \
                 controllers enabled on this host) mounted on /sys/fs/cgroup, so every contender \
                 runs as on a pure v2 host.",
            ),
            CgroupView::V1 => Some(
                "cgroup1 view: a private mount namespace without the hybrid host's cgroup2 mount \
                 (/sys/fs/cgroup/unified), so every contender runs as on a pure v1 host, crun \
                 included (it refuses the hybrid layout).",
            ),
        }
    }
}

pub struct Suite {
    pub name: &'static str,
    pub about: &'static str,
    /// Writes what the contenders need, starts what they share (daemons) and names the groups.
    pub prepare: fn(&Ctx) -> anyhow::Result<Plan>,
}

/// Untimed measurements appended to the report after the groups, as Markdown.
pub type Extra = Box<dyn FnOnce() -> anyhow::Result<String>>;

/// A prepared suite.
pub struct Plan {
    pub groups: Vec<Group>,
    /// Runs after the groups (e.g. the smallest memory limit that starts). What it owns —
    /// daemons, bundles — lives until the report is done and is dropped even if a group fails.
    pub extra: Option<Extra>,
}

/// Turns string slices into an owned command line.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

pub fn all() -> Vec<Suite> {
    vec![
        Suite {
            name: "version",
            about: "`berth-runc --version` vs `runc --version` and `crun --version` (harness check)",
            prepare: |ctx| {
                let berth = ctx
                    .bin_dir
                    .join("berth-runc")
                    .to_string_lossy()
                    .into_owned();
                Ok(Plan {
                    groups: vec![Group {
                        title: "--version".into(),
                        contenders: vec![
                            Contender::new("berth-runc", true, vec![argv(&[&berth, "--version"])]),
                            Contender::new("runc", false, vec![argv(&["runc", "--version"])]),
                            Contender::new("crun", false, vec![argv(&["crun", "--version"])]),
                        ],
                        differences: vec![],
                    }],
                    extra: None,
                })
            },
        },
        Suite {
            name: "runtime",
            about: "OCI runtimes on the same busybox bundle: `run` of /bin/true, create+start+delete, exec",
            prepare: runtime_suite::plan,
        },
        Suite {
            name: "lifecycle",
            about: lifecycle_suite::ABOUT,
            prepare: lifecycle_suite::plan,
        },
        Suite {
            name: "cri",
            about: crate::cri_suite::ABOUT,
            prepare: crate::cri_suite::plan,
        },
        Suite {
            name: "pull",
            about: pull_suite::ABOUT,
            prepare: pull_suite::plan,
        },
        Suite {
            name: "cli",
            about: cli_suite::ABOUT,
            prepare: cli_suite::plan,
        },
        Suite {
            name: "run",
            about: run_suite::ABOUT,
            prepare: run_suite::plan,
        },
        Suite {
            name: "network",
            about: network_suite::ABOUT,
            prepare: network_suite::plan,
        },
        Suite {
            name: "build",
            about: build_suite::ABOUT,
            prepare: build_suite::plan,
        },
    ]
}

/// Runs `suite` and returns its report as Markdown.
pub fn run_suite(suite: &Suite, ctx: &Ctx, warmup: usize, runs: usize) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "# bench suite `{}`\n", suite.name)?;
    writeln!(out, "{}\n", suite.about)?;
    writeln!(
        out,
        "{}; {warmup} warm-up + {runs} measured rounds, interleaved.\n",
        machine()
    )?;
    if let Some(view) = ctx.view.describe() {
        writeln!(out, "{view}\n")?;
    }
    let Plan { groups, extra } = (suite.prepare)(ctx)?;
    for group in groups {
        out.push_str(&run_group(group, warmup, runs)?);
    }
    if let Some(extra) = extra {
        out.push_str(&extra()?);
    }
    Ok(out)
}

/// The contenders found on this host (their programs resolved to paths), and the names of the
/// peers that are not installed; Berth's own must be there.
fn locate_all(contenders: Vec<Contender>) -> anyhow::Result<(Vec<Contender>, Vec<String>)> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for mut c in contenders {
        match locate(&c.steps[0][0]) {
            Some(path) => {
                let prog = c.steps[0][0].clone();
                let path = path.to_string_lossy().into_owned();
                for step in c
                    .steps
                    .iter_mut()
                    .chain(c.setup.iter_mut())
                    .chain(c.teardown.iter_mut())
                    .chain(c.after_each.iter_mut())
                {
                    if step[0] == prog {
                        step[0] = path.clone();
                    }
                }
                present.push(c);
            }
            None if c.is_berth => anyhow::bail!(
                "{} not found: build with `cargo build --release`",
                c.steps[0][0]
            ),
            None => missing.push(c.name),
        }
    }
    Ok((present, missing))
}

/// The table of differences of medians (`pairs`: label, minuend, subtrahend), each compared
/// with the first, Berth's.
fn differences(
    pairs: &[(String, String, String)],
    median_of: impl Fn(&str) -> Option<f64>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let diffs: Vec<(String, Option<f64>)> = pairs
        .iter()
        .map(|(label, a, b)| {
            (
                label.clone(),
                median_of(a).zip(median_of(b)).map(|(a, b)| a - b),
            )
        })
        .collect();
    let first = diffs.first().and_then(|d| d.1);
    writeln!(out, "| difference of medians | ms | Berth / this |")?;
    writeln!(out, "|---|---:|---:|")?;
    for (i, (label, d)) in diffs.iter().enumerate() {
        let ratio = match (first, d) {
            (Some(b), Some(x)) if i > 0 => crate::stats::ratio_cell(b, *x),
            _ => "—".into(),
        };
        let ms = d
            .map(|x| format!("{x:+.1}"))
            .unwrap_or_else(|| "n/a".into());
        writeln!(out, "| {label} | {ms} | {ratio} |")?;
    }
    writeln!(out)?;
    Ok(out)
}

fn run_group(group: Group, warmup: usize, runs: usize) -> anyhow::Result<String> {
    let (present, missing) = locate_all(group.contenders)?;
    let mut failed: Vec<Option<String>> = vec![None; present.len()];
    for (i, c) in present.iter().enumerate() {
        if let Err(e) = run_steps(&c.setup) {
            failed[i] = Some(format!("setup failed: {e:#}"));
        }
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); present.len()];
    for round in 0..warmup + runs {
        // Rotate the order each round so no contender always runs first after a pause.
        for k in 0..present.len() {
            let i = (round + k) % present.len();
            if failed[i].is_some() {
                continue;
            }
            match run_steps(&numbered(&present[i].steps, round)) {
                Ok(s) if round >= warmup => samples[i].push(s),
                Ok(_) => {}
                Err(e) => failed[i] = Some(format!("{e:#}")),
            }
            if let Err(e) = run_steps(&numbered(&present[i].after_each, round)) {
                failed[i].get_or_insert(format!("after the round: {e:#}"));
            }
        }
    }
    for c in &present {
        let _ = run_steps(&c.teardown);
    }
    let medians: Vec<Option<Duration>> = samples
        .iter()
        .map(|s| summarize(&s.iter().map(|x| x.wall).collect::<Vec<_>>()).map(|x| x.median))
        .collect();
    let berth = present
        .iter()
        .zip(&medians)
        .find(|(c, _)| c.is_berth)
        .and_then(|(_, m)| *m);
    let mut out = String::new();
    writeln!(out, "## {}\n", group.title)?;
    writeln!(
        out,
        "| contender | median ms | p10 ms | p90 ms | runs | peak RSS KiB (median) | Berth / this |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (i, c) in present.iter().enumerate() {
        if let Some(e) = &failed[i] {
            let e = e.replace('\n', " ").replace('|', "/");
            writeln!(
                out,
                "| {} | failed: {} | | | | | |",
                c.name,
                e.chars().take(160).collect::<String>()
            )?;
            continue;
        }
        let Some(s) = summarize(&samples[i].iter().map(|x| x.wall).collect::<Vec<_>>()) else {
            continue;
        };
        let mut rss: Vec<u64> = samples[i].iter().map(|x| x.max_rss_kib).collect();
        rss.sort_unstable();
        let rss_med = rss.get(rss.len() / 2).copied().unwrap_or(0);
        let ratio = match berth {
            Some(b) if !c.is_berth => {
                crate::stats::ratio_cell(b.as_secs_f64(), s.median.as_secs_f64())
            }
            _ => "—".into(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {rss_med} | {ratio} |",
            c.name,
            ms(s.median),
            ms(s.p10),
            ms(s.p90),
            s.n
        )?;
    }
    for m in missing {
        writeln!(
            out,
            "| {m} | not installed (run with --install-peers) | | | | | |"
        )?;
    }
    writeln!(out)?;
    if !group.differences.is_empty() {
        let median_of = |name: &str| {
            present
                .iter()
                .position(|c| c.name == name)
                .filter(|&i| failed[i].is_none())
                .and_then(|i| medians[i])
                .map(|d| d.as_secs_f64() * 1000.0)
        };
        out.push_str(&differences(&group.differences, median_of)?);
    }
    Ok(out)
}

/// One line describing the machine, for the results file.
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!("Machine: {cpus} CPUs ({model}), Linux {}", kernel.trim())
}

/// Keeps `Path` in scope for suite modules that build paths from `Ctx`.
pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
