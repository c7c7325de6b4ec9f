//! `start`, `state`, `kill`, `delete`, `pause`, `resume` and the foreground wait of `run`: the
//! commands that act on an existing container through its saved state.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::state::{self, EXEC_FIFO, Saved, Status};
use crate::{hooks, sys};

/// A loaded container: its state and cgroup.
pub struct Container {
    pub saved: Saved,
    pub cgroup: berth_cgroups::Cgroup,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> anyhow::Result<Container> {
        let saved = Saved::load(root, id)?;
        let layout = berth_cgroups::Layout::detect().context("detecting the cgroup layout")?;
        let cgroup = berth_cgroups::Cgroup::new(&layout, &saved.cgroups_path, &saved.id)
            .context("resolving the container's cgroup")?;
        Ok(Container { saved, cgroup })
    }

    pub fn status(&self, root: &Path) -> Status {
        self.saved.status(root, Some(&self.cgroup))
    }
}

/// Releases a created container's init by writing to its exec fifo, then runs poststart hooks.
pub fn start(root: &Path, c: &Container) -> anyhow::Result<()> {
    match c.status(root) {
        Status::Created => {}
        Status::Stopped => anyhow::bail!("cannot start a container that has stopped"),
        _ => anyhow::bail!("cannot start an already running container"),
    }
    let fifo_path = state::dir(root, &c.saved.id).join(EXEC_FIFO);
    let fifo = match rustix::fs::open(
        &fifo_path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(f) => f,
        Err(rustix::io::Errno::NXIO) => anyhow::bail!("cannot start a container that has stopped"),
        Err(e) => return Err(e).context("opening the exec fifo"),
    };
    std::fs::remove_file(&fifo_path).context("removing the exec fifo")?;
    rustix::io::write(&fifo, b"0").context("releasing the container init")?;
    drop(fifo);
    let st = c.saved.oci_state(Status::Running);
    let h = c.saved.hooks.as_ref().and_then(|h| h.poststart().as_ref());
    hooks::run_all_warn("poststart", h, &st);
    Ok(())
}

/// Parses a signal as runc does: a number, or a name with or without `SIG`.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        anyhow::ensure!((1..=64).contains(&n), "invalid signal: {s}");
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => anyhow::bail!("unknown signal {s:?}"),
    };
    Ok(n)
}

/// Sends `sig` to the init, or with `all` to every process of the container's cgroup.
pub fn kill(root: &Path, c: &Container, sig: i32, all: bool) -> anyhow::Result<()> {
    let status = c.status(root);
    // Only created, running or paused containers may be signalled, with or without --all.
    anyhow::ensure!(status != Status::Stopped, "container not running");
    if all {
        c.cgroup
            .kill_all(sig)
            .context("signalling the container's processes")?;
        if sig == libc::SIGKILL && status == Status::Paused {
            c.cgroup
                .thaw()
                .context("thawing so the killed processes can exit")?;
        }
        return Ok(());
    }
    sys::kill(c.saved.pid, sig).context("signalling the container init")?;
    Ok(())
}

/// Waits up to `timeout` for `pid` to go away (it is not our child: poll a pidfd).
fn wait_gone(saved: &Saved, timeout: Duration) -> bool {
    let Ok(pidfd) = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(saved.pid).unwrap_or(rustix::process::Pid::INIT),
        rustix::process::PidfdFlags::empty(),
    ) else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    while saved.init_alive() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: left.min(Duration::from_millis(50)).as_nanos() as i64,
        };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
    }
    let _ = pidfd.as_fd();
    true
}

/// Deletes a container: refuses a running one without `force`, kills a created one, removes
/// the cgroup, runs poststop hooks and removes the state.
pub fn delete(root: &Path, id: &str, force: bool) -> anyhow::Result<()> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(e) => {
            // A create that died before writing state may have left its directory.
            if crate::spec::validate_id(id).is_ok() {
                let dir = state::dir(root, id);
                if dir.is_dir() && !dir.join("state.json").exists() {
                    std::fs::remove_dir_all(&dir).ok();
                    return Ok(());
                }
            }
            if force {
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = c.status(root);
    match status {
        Status::Stopped => {}
        Status::Created => {
            sys::kill(c.saved.pid, libc::SIGKILL).ok();
        }
        Status::Running | Status::Paused | Status::Creating => {
            anyhow::ensure!(
                force,
                "cannot delete container {id} that is not stopped: {}",
                status.as_str()
            );
            c.cgroup.kill_all(libc::SIGKILL).ok();
            sys::kill(c.saved.pid, libc::SIGKILL).ok();
            if status == Status::Paused {
                c.cgroup.thaw().ok();
            }
        }
    }
    if !wait_gone(&c.saved, Duration::from_secs(10)) {
        anyhow::bail!("container {id} init (pid {}) did not exit", c.saved.pid);
    }
    // Without a pid namespace the init's death does not end its children: end them here.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.cgroup.pids().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < deadline {
        c.cgroup.kill_all(libc::SIGKILL).ok();
        std::thread::sleep(Duration::from_millis(5));
    }
    c.cgroup
        .destroy()
        .context("removing the container's cgroup")?;
    let st = c.saved.oci_state(Status::Stopped);
    let h = c.saved.hooks.as_ref().and_then(|h| h.poststop().as_ref());
    hooks::run_all_warn("poststop", h, &st);
    std::fs::remove_dir_all(state::dir(root, id)).context("removing the container's state")?;
    Ok(())
}

pub fn pause(root: &Path, c: &Container) -> anyhow::Result<()> {
    match c.status(root) {
        Status::Running | Status::Created => c.cgroup.freeze().context("freezing the container"),
        Status::Paused => anyhow::bail!("container {} is already paused", c.saved.id),
        s => anyhow::bail!("container not running: {}", s.as_str()),
    }
}

pub fn resume(root: &Path, c: &Container) -> anyhow::Result<()> {
    anyhow::ensure!(c.status(root) == Status::Paused, "container not paused");
    c.cgroup.thaw().context("thawing the container")
}

static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

/// Waits for our child `pid` (the init of a foreground `run`, or a foreground `exec`),
/// forwarding SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it. Returns the exit
/// code a shell would report (128+N for a signal).
pub fn wait_foreground(pid: i32) -> anyhow::Result<i32> {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        sys::set_signal_handler(sig, record_signal).context("installing signal forwarding")?;
    }
    let target = rustix::process::Pid::from_raw(pid).context("invalid pid")?;
    loop {
        match rustix::process::waitpid(Some(target), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {
                let sig = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
                if sig != 0 {
                    let _ = sys::kill(pid, sig);
                }
            }
            Err(e) => return Err(e).context("waiting for the container"),
        }
    }
}
