//! The suites: each names its contenders (Berth first, then its peers) and how to run one
//! iteration. Contenders run interleaved, round by round, so drift on a noisy machine hits all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::stats::{Summary, ms, summarize};

/// One command line measured in a suite.
pub struct Contender {
    pub name: String,
    /// Berth's own contender: the others are compared with it.
    pub is_berth: bool,
    pub argv: Vec<String>,
}

pub struct Suite {
    pub name: &'static str,
    pub about: &'static str,
    contenders: fn(&Path) -> Vec<Contender>,
}

pub fn all() -> Vec<Suite> {
    vec![Suite {
        name: "version",
        about: "`berth-runc --version` vs `runc --version` and `crun --version` (harness check)",
        contenders: |bin| {
            vec![
                contender(
                    "berth-runc",
                    true,
                    &[
                        bin.join("berth-runc").to_string_lossy().as_ref(),
                        "--version",
                    ],
                ),
                contender("runc", false, &["runc", "--version"]),
                contender("crun", false, &["crun", "--version"]),
            ]
        },
    }]
}

fn contender(name: &str, is_berth: bool, argv: &[&str]) -> Contender {
    Contender {
        name: name.into(),
        is_berth,
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

/// Finds `prog` as a path or on PATH.
fn locate(prog: &str) -> Option<PathBuf> {
    let p = Path::new(prog);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.is_file())
}

#[allow(clippy::disallowed_methods)] // running the contenders' command lines is what a benchmark does
fn time_once(argv: &[String]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    let took = start.elapsed();
    anyhow::ensure!(status.success(), "{} exited with {status}", argv.join(" "));
    Ok(took)
}

/// Runs `suite` and returns its report as Markdown.
pub fn run_suite(
    suite: &Suite,
    bin_dir: &Path,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<String> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for mut c in (suite.contenders)(bin_dir) {
        match locate(&c.argv[0]) {
            Some(path) => {
                c.argv[0] = path.to_string_lossy().into_owned();
                present.push(c);
            }
            None if c.is_berth => anyhow::bail!(
                "{} not found: build with `cargo build --release`",
                c.argv[0]
            ),
            None => missing.push(c.name),
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); present.len()];
    for round in 0..warmup + runs {
        // Rotate the order each round so no contender always runs first after a pause.
        for k in 0..present.len() {
            let i = (round + k) % present.len();
            let took = time_once(&present[i].argv)?;
            if round >= warmup {
                samples[i].push(took);
            }
        }
    }
    let summaries: Vec<Summary> = samples.iter().filter_map(|s| summarize(s)).collect();
    let berth = present
        .iter()
        .zip(&summaries)
        .find(|(c, _)| c.is_berth)
        .map(|(_, s)| s.median);
    let mut out = String::new();
    writeln!(out, "# bench suite `{}`\n", suite.name)?;
    writeln!(out, "{}\n", suite.about)?;
    writeln!(
        out,
        "{}; {warmup} warm-up + {runs} measured rounds, interleaved.\n",
        machine()
    )?;
    writeln!(
        out,
        "| contender | median ms | p10 ms | p90 ms | runs | Berth / this |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for (c, s) in present.iter().zip(&summaries) {
        let ratio = match berth {
            Some(b) if !c.is_berth => format!("{:.2}", b.as_secs_f64() / s.median.as_secs_f64()),
            _ => "—".into(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {ratio} |",
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
            "| {m} | not installed (run with --install-peers) | | | | |"
        )?;
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
