//! `berth-bench`: runs a named suite that compares Berth with its peers (runc, crun, containerd,
//! dockerd, podman) in one run, interleaved round by round after warm-up, and prints a table of
//! medians and Berth/peer ratios, also written to `bench/results/<suite>.md`. The hidden
//! `grpc-run` subcommand is a contender of the `lifecycle` suite, not for people.

mod build_suite;
mod cli_suite;
mod cri_suite;
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

use suites::CgroupView;

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
    /// Berth binaries of an earlier build, run as one more contender ("berthd (baseline)") by
    /// the suites that support it (`run`): a before/after comparison in one interleaved run.
    #[arg(long)]
    baseline_bin_dir: Option<PathBuf>,
    /// Where to write `<suite>.md` (default: bench/results of this checkout).
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Run in a private mount namespace with the host's cgroup2 tree mounted on /sys/fs/cgroup,
    /// so every runtime sees a pure cgroup v2 host (crun 1.8 refuses this host's hybrid layout).
    /// Results go to `<suite>-cgroup2.md`.
    #[arg(long, conflicts_with = "cgroup1_view")]
    cgroup2_view: bool,
    /// Run in a private mount namespace where a hybrid host's cgroup2 mount
    /// (/sys/fs/cgroup/unified) is unmounted, so every runtime sees a pure cgroup v1 host with
    /// its controllers (crun 1.8 runs there, memory limits apply). Results go to
    /// `<suite>-cgroup1.md`.
    #[arg(long)]
    cgroup1_view: bool,
}

/// Set in the re-executed harness once it runs in its own mount namespace.
const VIEW_ENV: &str = "BERTH_BENCH_CGROUP_VIEW";

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
    let view = match (cli.cgroup2_view, cli.cgroup1_view) {
        (true, _) => CgroupView::V2,
        (_, true) => CgroupView::V1,
        _ => CgroupView::Host,
    };
    if view != CgroupView::Host && std::env::var_os(VIEW_ENV).is_none() {
        return in_cgroup_view(view);
    }
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
    // Runtime state lives on tmpfs, as at runc's and crun's defaults (/run/runc, /run/crun) on
    // a usual host.
    let state = tempfile::Builder::new()
        .prefix("bs-")
        .tempdir_in(suites::TMPFS)?;
    let ctx = suites::Ctx {
        bin_dir,
        baseline_bin_dir: cli.baseline_bin_dir,
        work: work.path().to_path_buf(),
        state: state.path().to_path_buf(),
        view,
    };
    let report = suites::run_suite(&suite, &ctx, cli.warmup, cli.runs)?;
    print!("{report}");
    std::fs::create_dir_all(&results_dir)?;
    let file = match view {
        CgroupView::Host => format!("{}.md", suite.name),
        CgroupView::V2 => format!("{}-cgroup2.md", suite.name),
        CgroupView::V1 => format!("{}-cgroup1.md", suite.name),
    };
    let path = results_dir.join(file);
    std::fs::write(&path, &report)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// Runs this harness again, with the same arguments, in a private mount namespace with the
/// cgroup layout of `view`: for v2 the cgroup2 hierarchy (on a hybrid host otherwise at
/// /sys/fs/cgroup/unified, without controllers) mounted on /sys/fs/cgroup; for v1 that
/// unified mount taken away. The namespace, and its mounts with it, end with the harness.
fn in_cgroup_view(view: CgroupView) -> anyhow::Result<()> {
    use anyhow::Context;
    let exe = std::env::current_exe()?;
    let prepare = match view {
        CgroupView::V1 => "umount /sys/fs/cgroup/unified",
        _ => "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
    };
    let script = format!("{prepare} && exec \"$0\" \"$@\"");
    #[allow(clippy::disallowed_methods)] // util-linux's unshare runs the harness in its namespace
    let status = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(VIEW_ENV, "1")
        .status()
        .context("running unshare (util-linux)")?;
    anyhow::ensure!(
        status.success(),
        "the harness in its cgroup {view:?} view failed ({status})"
    );
    Ok(())
}
