//! `run` in the foreground of a terminal container without `--console-socket` (what
//! `runc spec && runc run ID` does): the runtime receives the pty master itself and relays it
//! to its own stdin and stdout, in raw mode when stdin is a terminal, until the container exits.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// A console socket for the init to send its pty master to; removed on drop.
pub struct ConsoleListener {
    pub path: PathBuf,
    listener: UnixListener,
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the bundle asks for a terminal (read before `create`, which parses it again).
pub fn wants_terminal(bundle: &Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["process"]["terminal"] == true)
}

pub fn listen(root: &Path, id: &str) -> anyhow::Result<ConsoleListener> {
    std::fs::create_dir_all(root)?;
    let path = root.join(format!(".{id}-{}.console.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    Ok(ConsoleListener { path, listener })
}

/// Accepts the init's connection (already queued once `create` returned) and takes the master.
pub fn receive_master(l: &ConsoleListener) -> anyhow::Result<OwnedFd> {
    let (conn, _) = l
        .listener
        .accept()
        .context("accepting the console connection")?;
    let mut buf = [0u8; 256];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(
        conn.as_fd(),
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("receiving the pty master")?;
    control
        .drain()
        .find_map(|m| match m {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .context("the init sent no pty master")
}

/// Restores the terminal's settings on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: rustix::termios::Termios,
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(self.fd, rustix::termios::OptionalActions::Now, &self.saved);
    }
}

fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match rustix::io::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Relays stdin → master and master → stdout until the init `pid` (our child) exits.
pub fn relay(master: OwnedFd, pid: i32) -> anyhow::Result<()> {
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let _raw = match rustix::termios::tcgetattr(stdin) {
        Ok(saved) => {
            if let Ok(ws) = rustix::termios::tcgetwinsize(stdin) {
                let _ = rustix::termios::tcsetwinsize(&master, ws);
            }
            let mut raw = saved.clone();
            raw.make_raw();
            rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw)
                .context("setting the terminal to raw mode")?;
            Some(RawMode { fd: stdin, saved })
        }
        Err(_) => None,
    };
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).context("invalid pid")?,
        rustix::process::PidfdFlags::empty(),
    )
    .context("watching the container init")?;
    let mut stdin_open = true;
    loop {
        let mut fds = vec![
            PollFd::new(&master, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("polling the terminal"),
        }
        let master_ready = !fds[0].revents().is_empty();
        let exited = !fds[1].revents().is_empty();
        let stdin_ready = stdin_open && !fds[2].revents().is_empty();
        drop(fds);
        if master_ready && !copy(master.as_fd(), stdout) && exited {
            break;
        }
        if stdin_ready && !copy(stdin, master.as_fd()) {
            stdin_open = false;
        }
        if exited && !master_ready {
            break;
        }
    }
    Ok(())
}
