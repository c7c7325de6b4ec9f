//! `berth-runc`: the OCI runtime, a drop-in for runc. It knows nothing of images, gRPC or HTTP:
//! it takes an OCI bundle and runc's command line, and exits once the container is created or
//! started.

use std::process::ExitCode;

/// Version of the OCI runtime specification this runtime implements.
const OCI_SPEC_VERSION: &str = "1.2.0";

fn print_version() {
    // Same shape as `runc --version`, whose first line and `spec:` line callers parse.
    println!("berth-runc version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {OCI_SPEC_VERSION}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--version" | "-v" | "version") => {
            print_version();
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") | None => {
            println!("berth-runc: an OCI runtime, drop-in for runc");
            println!("Usage: berth-runc [global options] command [command options] [arguments...]");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("berth-runc: command {other:?} is not built yet (issue #3)");
            ExitCode::FAILURE
        }
    }
}
