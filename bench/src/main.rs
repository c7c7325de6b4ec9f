//! `berth-bench`: runs a named suite that compares Berth with its peers (runc, crun, containerd,
//! dockerd, podman) in one run, interleaved round by round after warm-up, and prints a table of
//! medians and Berth/peer ratios, also written to `bench/results/<suite>.md`. The hidden
//! `grpc-run` subcommand is a contender of the `lifecycle` suite, not for people.

mod cli_suite;
mod daemons;
mod engines;
mod grpc_client;
mod lifecycle_suite;
mod measure;
mod network_suite;
mod peers;
mod proc_mem;
mod pull_suite;
mod run_suite;
mod runtime_suite;
mod stats;
mod suites;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth-bench",
    version,
    about = "Compare Berth with its peers",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    client: Option<Client>,
    /// Suite to run (see --list).
    suite: Option<String>,
    /// List the suites and exit.
    #[arg(long)]
    list: bool,
    /// Install the peers from Debian first (runc, crun, containerd, docker.io, podman) and
    /// prepare the host.
    #[arg(long)]
    install_peers: bool,
    /// Measured rounds (each contender runs once per round).
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Warm-up rounds, not measured.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Directory of the Berth binaries (default: next to this harness).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where to write `<suite>.md` (default: bench/results of this checkout).
    #[arg(long)]
    results_dir: Option<PathBuf>,
}

/// Clients the harness runs as contenders (a fresh process per iteration).
#[derive(Subcommand, Debug)]
enum Client {
    /// Create, start, wait for and delete one container through berth-containerd's API.
    #[command(hide = true)]
    GrpcRun(grpc_client::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.client {
        Some(Client::GrpcRun(args)) => grpc_client::grpc_run(args),
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.list {
        for s in suites::all() {
            println!("{:<12} {}", s.name, s.about);
        }
        return Ok(());
    }
    if cli.install_peers {
        peers::install()?;
    }
    let Some(name) = cli.suite else {
        anyhow::bail!("name a suite (see --list)");
    };
    let suite = suites::all()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| anyhow::anyhow!("no suite named {name:?} (see --list)"))?;
    let bin_dir = match cli.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("cannot locate the harness directory"))?,
    };
    let results_dir = cli
        .results_dir
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"));
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/tmp")?;
    let ctx = suites::Ctx {
        bin_dir,
        work: work.path().to_path_buf(),
    };
    let report = suites::run_suite(&suite, &ctx, cli.warmup, cli.runs)?;
    print!("{report}");
    std::fs::create_dir_all(&results_dir)?;
    let path = results_dir.join(format!("{}.md", suite.name));
    std::fs::write(&path, &report)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
