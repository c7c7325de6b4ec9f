//! `berth-containerd`: container and task lifecycle over gRPC. It starts one berth-shim per
//! container and rebuilds its view from disk and from live shims when it starts. It owns no images.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berth-containerd",
    version,
    about = "Container and task lifecycle over gRPC"
)]
struct Cli {
    /// Persistent state directory.
    #[arg(long, default_value = "/var/lib/berth/containerd")]
    root: PathBuf,
    /// Runtime state directory (task bundles, shim sockets).
    #[arg(long, default_value = "/run/berth")]
    state: PathBuf,
    /// gRPC socket to listen on.
    #[arg(long, default_value = "/run/berth/containerd.sock")]
    address: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "berth-containerd: the gRPC services are not built yet (issue #4); would listen on {}",
        cli.address.display()
    );
    ExitCode::FAILURE
}
