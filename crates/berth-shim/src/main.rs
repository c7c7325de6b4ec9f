//! `berth-shim`: one per container. It is the container's parent (child subreaper), calls the OCI
//! runtime, keeps the container's stdio open, writes its exit status to disk and serves requests
//! on its own socket, so the container outlives every layer above it.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berth-shim",
    version,
    about = "Parent and stdio keeper of one container"
)]
struct Cli {
    /// Container id.
    #[arg(long)]
    id: Option<String>,
    /// Task directory holding the OCI bundle; the shim's socket and exit status go here too.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// OCI runtime to call: berth-runc (default), runc, crun, or a path.
    #[arg(long, default_value = "berth-runc")]
    runtime: String,
}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!("berth-shim: not built yet (issue #4)");
    ExitCode::FAILURE
}
