//! `berth-runc`: the OCI runtime, a drop-in for runc. It knows nothing of images, gRPC or HTTP:
//! it takes an OCI bundle and runc's command line, and exits once the container is created or
//! started (or, for `run` and `exec` in the foreground, once its process exits).

mod caps;
mod channel;
mod cli;
mod config_cmds;
mod console;
mod create;
mod devices;
mod exec;
mod hooks;
mod init;
mod lifecycle;
mod log;
mod process;
mod query;
mod rootfs;
mod seccomp_cache;
mod selfclone;
mod spec;
mod state;
mod sys;
mod tty_proxy;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use lifecycle::Container;

fn print_version() {
    // Same shape as `runc --version`, whose first line and `spec:` line callers parse.
    println!("berth-runc version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", state::OCI_VERSION);
    if let Some(v) = berth_seccomp::library_version() {
        println!("libseccomp: {v}");
    }
}

fn main() -> ExitCode {
    // The commands that put a process into a container re-execute from a protected copy of
    // the binary: decide that before parsing the command line, which would be done twice
    // otherwise. An argument that merely looks like such a command (a container id "run")
    // costs one needless re-execution; `run` checks again only if the command got past this scan.
    let early = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")));
    let sealed = match early {
        true => selfclone::ensure_sealed(),
        false => Ok(()),
    };
    let cli = match Cli::try_parse_from(cli::normalize_args(std::env::args())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if cli.version || matches!(cli.command, Some(Command::Version)) {
        print_version();
        return ExitCode::SUCCESS;
    }
    if let Err(e) = log::init(
        cli.log.as_deref(),
        cli.log_format == LogFormat::Json,
        cli.debug,
    ) {
        eprintln!("opening log file: {e}");
        return ExitCode::from(1);
    }
    match sealed.and_then(|()| run(cli, early)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

/// `protected`: the process already runs from a protected copy (decided before parsing).
fn run(cli: Cli, protected: bool) -> anyhow::Result<i32> {
    anyhow::ensure!(
        !cli.systemd_cgroup,
        "the systemd cgroup driver is not supported: berth-runc manages cgroupfs directly"
    );
    let Some(command) = cli.command else {
        anyhow::bail!("no command given; see berth-runc --help");
    };
    if !protected
        && matches!(
            command,
            Command::Create(_) | Command::Run { .. } | Command::Exec(_)
        )
    {
        selfclone::ensure_sealed()?;
    }
    let root = cli.root.as_path();
    log::debug(&format!("berth-runc {command:?}"));
    match command {
        Command::Create(args) => {
            create::create(root, &args)?;
        }
        Command::Start { id } => lifecycle::start(root, &Container::load(root, &id)?)?,
        Command::Run {
            create: mut args,
            detach,
            keep,
        } => {
            // A terminal with nobody to hand the pty to: relay it here, as runc does.
            let console = if !detach
                && args.console_socket.is_none()
                && tty_proxy::wants_terminal(&args.bundle)
            {
                let l = tty_proxy::listen(root, &args.id)?;
                args.console_socket = Some(l.path.clone());
                Some(l)
            } else {
                None
            };
            let created = create::create(root, &args)?;
            let master = match &console {
                Some(l) => match tty_proxy::receive_master(l) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let _ = lifecycle::delete(root, &args.id, true);
                        return Err(e);
                    }
                },
                None => None,
            };
            drop(console);
            let c = Container {
                saved: created.saved,
                cgroup: created.cgroup,
            };
            if let Err(e) = lifecycle::start(root, &c) {
                let _ = lifecycle::delete(root, &args.id, true);
                return Err(e);
            }
            if detach {
                return Ok(0);
            }
            if let Some(master) = master {
                tty_proxy::relay(master, c.saved.pid)?;
            }
            let code = lifecycle::wait_foreground(c.saved.pid)?;
            if !keep {
                lifecycle::delete(root, &args.id, true)?;
            }
            return Ok(code);
        }
        Command::State { id } => query::state(root, &id)?,
        Command::Kill { all, id, signal } => {
            let sig = lifecycle::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            lifecycle::kill(root, &Container::load(root, &id)?, sig, all)?;
        }
        Command::Delete { force, id } => lifecycle::delete(root, &id, force)?,
        Command::Exec(args) => return exec::exec(root, &args),
        Command::Ps {
            format,
            id,
            ps_args,
        } => query::ps(root, &id, format, &ps_args)?,
        Command::List { format, quiet } => query::list(root, format, quiet)?,
        Command::Pause { id } => lifecycle::pause(root, &Container::load(root, &id)?)?,
        Command::Resume { id } => lifecycle::resume(root, &Container::load(root, &id)?)?,
        Command::Update(args) => config_cmds::update(root, &args)?,
        Command::Events { stats, id, .. } => {
            anyhow::ensure!(
                stats,
                "only `events --stats` is supported (one stats record)"
            );
            query::stats(root, &id)?;
        }
        Command::Features => query::features()?,
        Command::Spec { bundle, rootless } => config_cmds::spec(&bundle, rootless)?,
        Command::Version => print_version(),
        Command::Checkpoint { .. } | Command::Restore { .. } => {
            anyhow::bail!("checkpoint/restore is not supported (no CRIU)")
        }
    }
    Ok(0)
}
