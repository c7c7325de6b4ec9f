//! `berth`: the Docker-style command-line client. It speaks only the Docker Engine API, so it
//! works against berthd and dockerd alike, and never touches a daemon's disk state.
#![forbid(unsafe_code)]

use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default daemon address, the same one berthd listens on.
const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible client for berthd (and dockerd)"
)]
struct Cli {
    /// Daemon socket to connect to (also read from BERTH_HOST, then DOCKER_HOST).
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the client version and whether the daemon answers.
    Version,
}

/// Picks the daemon address the way the docker CLI does: flag, then environment, then default.
fn resolve_host(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BERTH_HOST").ok())
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let host = resolve_host(cli.host);
    match cli.command {
        None => {
            eprintln!("berth: no command given; see `berth --help`");
            ExitCode::from(125)
        }
        Some(Command::Version) => {
            println!("Client: Berth");
            println!(" Version:  {}", env!("CARGO_PKG_VERSION"));
            println!(
                " OS/Arch:  {}/{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            );
            let reachable = match host.strip_prefix("unix://") {
                Some(path) => UnixStream::connect(path).is_ok(),
                None => false,
            };
            if reachable {
                println!("\nServer: listening at {host} (the Engine API client is not built yet)");
                ExitCode::SUCCESS
            } else {
                eprintln!("\nCannot connect to berthd at {host}: is it running?");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_default() {
        assert_eq!(
            resolve_host(Some("unix:///tmp/x.sock".into())),
            "unix:///tmp/x.sock"
        );
    }
}
