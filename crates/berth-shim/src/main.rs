//! `berth-shim`: one per container. It is the container's parent (child subreaper), calls the OCI
//! runtime, keeps the container's stdio open, writes its exit status to disk and serves requests
//! on its own socket, so the container outlives every layer above it.
//!
//! `berth-shim start --id ID --task-dir DIR --runtime PATH --runtime-root RROOT [--stdin P]
//! [--stdout P] [--stderr P] [--terminal]` checks its input, then re-executes itself as the
//! hidden `serve` command in a new session (`setsid`); `start` returns once the container is
//! created and the socket listens, printing `{"socket","shim_pid","pid"}`, so the long-lived
//! shim is never the caller's child. On failure `start` exits 1 with the runtime's error and
//! leaves no shim, socket or runtime state behind.
//!
//! The task directory is the OCI bundle itself (`DIR/config.json`, `DIR/rootfs`). The shim adds:
//! `shim.sock` (its socket, see the `berth-shim-protocol` crate), `init.pid`, `runtime.log` (the runtime's JSON
//! log), `shim.log` (the shim's own stderr), `exit.json` (`{"status","exited_at"}` of the init,
//! written atomically once it exits) and `exec-<exec_id>.exit.json` for execs.
//!
//! Once the container is created the shim watches its memory cgroup for OOM kills (see `oom`),
//! counted in `state` and awaited with `oom_wait`.
//!
//! No async runtime and no threads: one poll loop (see `server`) keeps the shim near 1 MB RSS.

#![forbid(unsafe_code)]

mod exit_file;
mod oom;
mod runtime;
mod server;
mod stdio;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, bail};

use crate::oom::OomWatch;
use crate::runtime::Runtime;
use crate::server::{Proc, Shim, path_str, read_pid};
use crate::stdio::StdioPaths;
use berth_shim_protocol::StartReport;

const USAGE: &str = "\
Parent and stdio keeper of one container

Usage: berth-shim start --id ID --task-dir DIR --runtime-root RROOT [OPTIONS]

Commands:
  start  Create the container under a new detached shim; print its socket and pids as JSON

Options of start:
      --id ID              Container id
      --task-dir DIR       Task directory: the OCI bundle (config.json, rootfs); the socket and
                           exit status go here
      --runtime PATH       OCI runtime to call: a path, or a name looked up next to this binary,
                           then on PATH [default: berth-runc]
      --runtime-root DIR   The runtime's state root (--root)
      --stdin P            Stdin: a FIFO or file; empty for /dev/null
      --stdout P           Stdout: a FIFO or file; empty for /dev/null
      --stderr P           Stderr: a FIFO or file; empty for /dev/null (unused with --terminal)
      --terminal           Give the container a pty (its master is copied to --stdout, --stdin to it)
      --runtime-sealed P   A sealed in-memory copy of the runtime to run instead of PATH (a
                           /proc/<pid>/fd/<n> of berth-containerd's); ignored unless sealed
  -h, --help               Print help
  -V, --version            Print version
";

/// `start`'s (and the hidden `serve`'s) arguments. Parsed by hand: the shim lives as long as
/// its container, and an argument parser's pages would be most of its resident code.
#[derive(Debug, Clone)]
struct StartArgs {
    id: String,
    task_dir: PathBuf,
    runtime: PathBuf,
    runtime_root: PathBuf,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    runtime_sealed: Option<PathBuf>,
}

enum Command {
    Start(StartArgs),
    Serve(StartArgs),
    Help,
    Version,
}

fn parse(args: &[String]) -> anyhow::Result<Command> {
    let Some(cmd) = args.first() else {
        bail!("a command is required\n\n{USAGE}");
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        "start" | "serve" => {}
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
    let mut a = StartArgs {
        id: String::new(),
        task_dir: PathBuf::new(),
        runtime: PathBuf::from("berth-runc"),
        runtime_root: PathBuf::new(),
        stdin: String::new(),
        stdout: String::new(),
        stderr: String::new(),
        terminal: false,
        runtime_sealed: None,
    };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag.as_str(), None),
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--terminal" => {
                a.terminal = true;
                continue;
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match name {
            "--id" => a.id = value()?,
            "--task-dir" => a.task_dir = value()?.into(),
            "--runtime" => a.runtime = value()?.into(),
            "--runtime-root" => a.runtime_root = value()?.into(),
            "--stdin" => a.stdin = value()?,
            "--stdout" => a.stdout = value()?,
            "--stderr" => a.stderr = value()?,
            "--runtime-sealed" => a.runtime_sealed = Some(value()?.into()),
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    for (flag, missing) in [
        ("--id", a.id.is_empty()),
        ("--task-dir", a.task_dir.as_os_str().is_empty()),
        ("--runtime-root", a.runtime_root.as_os_str().is_empty()),
    ] {
        if missing {
            bail!("{flag} is required\n\n{USAGE}");
        }
    }
    Ok(if cmd == "start" {
        Command::Start(a)
    } else {
        Command::Serve(a)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|c| match c {
        Command::Start(a) => start(a),
        Command::Serve(a) => serve(a),
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("berth-shim {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Resolves a runtime name: next to this binary first, then PATH (left to exec).
fn resolve_runtime(rt: &Path) -> PathBuf {
    if rt.components().count() == 1 {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            let beside = dir.join(rt);
            if beside.is_file() {
                return beside;
            }
        }
        return rt.to_path_buf();
    }
    std::path::absolute(rt).unwrap_or_else(|_| rt.to_path_buf())
}

fn start(mut a: StartArgs) -> anyhow::Result<()> {
    if !valid_id(&a.id) {
        bail!(
            "invalid container id {:?}: use 1-128 of [A-Za-z0-9_.-]",
            a.id
        );
    }
    a.task_dir = std::path::absolute(&a.task_dir).context("resolving --task-dir")?;
    a.runtime_root = std::path::absolute(&a.runtime_root).context("resolving --runtime-root")?;
    a.runtime = resolve_runtime(&a.runtime);
    if !a.task_dir.join("config.json").is_file() {
        bail!("{} holds no config.json", a.task_dir.display());
    }
    let socket = a.task_dir.join("shim.sock");
    let (reach, _dir) = stdio::socket_path(&a.task_dir, "shim.sock")?;
    if UnixStream::connect(&reach).is_ok() {
        bail!("a shim already serves {}", socket.display());
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.task_dir.join("shim.log"))
        .context("opening shim.log")?;
    let me = std::env::current_exe().context("finding the shim binary")?;
    #[allow(clippy::disallowed_methods)] // re-executing ourselves as the detached shim
    let mut cmd = std::process::Command::new(me);
    cmd.arg("serve")
        .arg("--id")
        .arg(&a.id)
        .arg("--task-dir")
        .arg(&a.task_dir)
        .arg("--runtime")
        .arg(&a.runtime)
        .arg("--runtime-root")
        .arg(&a.runtime_root)
        .arg("--stdin")
        .arg(&a.stdin)
        .arg("--stdout")
        .arg(&a.stdout)
        .arg("--stderr")
        .arg(&a.stderr)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if a.terminal {
        cmd.arg("--terminal");
    }
    if let Some(p) = &a.runtime_sealed {
        cmd.arg("--runtime-sealed").arg(p);
    }
    let mut child = cmd.spawn().context("starting the shim")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading the shim's report")?;
    }
    if let Ok(report) = serde_json::from_str::<StartReport>(&line) {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    // The shim failed and cleaned up; wait for it so nothing is left when we return.
    let _ = child.wait();
    let msg = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "the shim exited without reporting (see shim.log)".to_string());
    bail!("{msg}")
}

/// The detached shim: create the container, report to `start`, then serve.
fn serve(a: StartArgs) -> anyhow::Result<()> {
    rustix::process::setsid().context("starting a new session")?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("becoming a child subreaper")?;
    let dir = a.task_dir.clone();
    let socket = dir.join("shim.sock");
    let console = dir.join("console.sock");
    let runtime = Runtime::new(
        a.runtime.clone(),
        a.runtime_root.clone(),
        dir.join("runtime.log"),
        a.runtime_sealed.as_deref(),
    );
    let mut report = std::io::stdout();
    let mut created = false;
    let result = setup(&a, &runtime, &socket, &console, &mut created);
    let _ = std::fs::remove_file(&console);
    let (listener, init) = match result {
        Ok(v) => v,
        Err(e) => {
            if created {
                let _ = runtime.run(&["delete", "--force", &a.id]);
            }
            let _ = std::fs::remove_file(&socket);
            let _ = std::fs::remove_file(dir.join("init.pid"));
            let line = serde_json::json!({ "error": format!("{e:#}") });
            let _ = writeln!(report, "{line}");
            return Err(e);
        }
    };
    berth_failpoint::point("shim.after-create");
    // Watch before reporting, so no OOM kill after `start` returns goes unseen.
    let oom = OomWatch::start(init.pid);
    let rep = StartReport {
        socket: path_str(&socket)?,
        shim_pid: std::process::id(),
        pid: init.pid.as_raw_nonzero().get() as u32,
    };
    writeln!(report, "{}", serde_json::to_string(&rep)?)?;
    report.flush()?;
    // Let go of `start`'s pipe: from here on the shim answers only on its socket.
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null).context("detaching stdout")?;
    let shim = Shim::new(a.id.clone(), dir, runtime, init, listener, socket, oom)?;
    shim.run()
}

fn setup(
    a: &StartArgs,
    runtime: &Runtime,
    socket: &Path,
    console: &Path,
    created: &mut bool,
) -> anyhow::Result<(UnixListener, Proc)> {
    let paths = StdioPaths {
        stdin: Some(a.stdin.clone()),
        stdout: Some(a.stdout.clone()),
        stderr: Some(a.stderr.clone()),
        terminal: a.terminal,
    };
    let (mut held, io) = stdio::open(&paths)?;
    let _ = std::fs::remove_file(socket);
    let (bind_path, _dir) = stdio::socket_path(&a.task_dir, "shim.sock")?;
    let listener =
        UnixListener::bind(&bind_path).with_context(|| format!("binding {}", socket.display()))?;
    let pid_file = a.task_dir.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut args = vec![
        "create".to_string(),
        "--bundle".into(),
        path_str(&a.task_dir)?,
        "--pid-file".into(),
        path_str(&pid_file)?,
    ];
    let (console_listener, _dir) = if a.terminal {
        let dir = console.parent().unwrap_or(std::path::Path::new("/"));
        let name = console
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("console.sock");
        let (l, path, held) = stdio::console_socket(dir, name)?;
        args.extend(["--console-socket".into(), path]);
        (Some(l), held)
    } else {
        (None, None)
    };
    args.push(a.id.clone());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let offset = runtime.log_len();
    let mut cmd = runtime.command(&argv);
    cmd.stdin(io.stdin).stdout(io.stdout).stderr(io.stderr);
    let mut child = cmd.spawn().context("running the runtime's create")?;
    *created = true;
    let master = console_listener
        .as_ref()
        .map(|l| stdio::receive_master(l, &mut child));
    let out = child
        .wait_with_output()
        .context("waiting for the runtime")?;
    runtime.check(&out, offset)?;
    if let Some(m) = master {
        held.master = Some(m?);
    }
    let pid = read_pid(&pid_file)?;
    let init = Proc::new(pid, held, a.task_dir.join("exit.json"))?;
    Ok((listener, init))
}
