//! `berthd`: the daemon. It serves the Docker Engine API on a unix socket, owns images, networks,
//! volumes and container metadata, turns a Docker "create" into an OCI spec and drives
//! berth-containerd over gRPC. It never calls the OCI runtime itself.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "The Berth daemon: Docker Engine API server"
)]
struct Cli {
    /// Root of persistent state: images, layers, containers, volumes, metadata.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Root of runtime state: sockets, task bundles, runtime state.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Address to serve the Engine API on (unix://PATH, or tcp://ADDR with mutual TLS).
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// Use this berth-containerd instead of starting one under the exec root.
    #[arg(long)]
    containerd: Option<String>,
    /// Name of the default bridge.
    #[arg(long, default_value = "berth0")]
    bridge: String,
    /// Address and prefix of the default bridge.
    #[arg(long)]
    bip: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "berthd: the Engine API server is not built yet (issue #6); data root {}, exec root {}",
        cli.data_root.display(),
        cli.exec_root.display()
    );
    ExitCode::FAILURE
}
