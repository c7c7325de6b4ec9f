//! `berth`: the Docker-style command-line client. It speaks only the Docker Engine API, so it
//! works against berthd and dockerd alike, and never touches a daemon's disk state.
#![forbid(unsafe_code)]

mod api;
mod build_view;
mod cli;
mod commands;
mod completion;
mod dockerignore;
mod format;
mod http;
mod progress;
mod status;
mod stream;
mod template;
mod term;
mod tls;
mod units;

use std::process::ExitCode;

use clap::Parser;

use crate::api::Client;
use crate::cli::{Cli, Command};

/// Default daemon address, the same one berthd listens on.
const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Picks the daemon address the way the docker CLI does: flag, then environment, then default.
fn resolve_host(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// `berth ps | head -1`: a closed stdout ends the program quietly, as SIGPIPE ends the docker
/// CLI, instead of the panic `print!` raises (Rust ignores SIGPIPE, and resetting it needs
/// `unsafe`).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The client for `host`, with TLS when `--tls`, `--tlsverify` or `DOCKER_TLS_VERIFY` ask for
/// it; certificates default to `$DOCKER_CERT_PATH` (else the config directory), as the docker
/// CLI's do.
fn client(cli: &Cli, host: &str) -> anyhow::Result<Client> {
    let verify =
        cli.tlsverify || std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    if !(cli.tls || verify) {
        return Client::new(host);
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(commands::auth::config_dir);
    let pick = |flag: &Option<String>, name: &str| {
        flag.as_ref()
            .map_or_else(|| dir.join(name), std::path::PathBuf::from)
    };
    let options = tls::TlsOptions {
        verify,
        ca: pick(&cli.tlscacert, "ca.pem"),
        cert: pick(&cli.tlscert, "cert.pem"),
        key: pick(&cli.tlskey, "key.pem"),
    };
    Ok(Client {
        host: http::Host::parse_tls(host, options)?,
        host_str: host.to_string(),
    })
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Docker exits 125 on a usage error, 0 for --help/--version.
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let host = resolve_host(cli.host.clone());
    // `run` and `create` fail the docker CLI's way: status 125 and a pointer to their help.
    let run_like = match cli.command {
        Command::Run(_) => Some("run"),
        Command::Create(_) => Some("create"),
        _ => None,
    };
    if let Some(dir) = &cli.config {
        commands::auth::set_config_dir(dir);
    }
    let result = client(&cli, &host).and_then(|client| commands::dispatch(&client, cli.command));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => ExitCode::from(u8::try_from(status::report(&e, &host, run_like)).unwrap_or(1)),
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

    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
