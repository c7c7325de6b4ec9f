//! Terminals: the pty is created inside the container (its own devpts), the master is sent to
//! the caller's `--console-socket` with SCM_RIGHTS, and the slave becomes the process's stdio
//! and /dev/console, bound from the pty's own descriptor (TIOCGPTPEER), never by path
//! (CVE-2025-52565).

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::Context;
use rustix::fs::OFlags;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::termios::Winsize;

use crate::rootfs::fd_path;
use crate::sys;

/// Connects to the console socket (done before pivot_root, while the host path is visible).
pub fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket)
        .with_context(|| format!("connecting to console socket {}", socket.display()))
}

/// Creates the pty, sends its master over `sock`, optionally binds the slave onto
/// /dev/console, and makes the slave the controlling terminal and stdio of this process.
pub fn setup(
    sock: &UnixStream,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> anyhow::Result<()> {
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .context("opening /dev/ptmx")?;
    rustix::pty::unlockpt(&master).context("unlocking the pty")?;
    if let Some((height, width)) = size {
        let ws = Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).context("setting the console size")?;
    }
    let slave: OwnedFd = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
    )
    .context("opening the pty peer")?;
    if bind_console {
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let dev = crate::rootfs::mkdir_all_in_root(root.as_fd(), Path::new("/dev"))?;
        match rustix::fs::openat(
            dev.as_fd(),
            "console",
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            rustix::fs::Mode::from_raw_mode(0o666),
        ) {
            Ok(_) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).context("creating /dev/console"),
        }
        let console = crate::rootfs::open_in_root(root.as_fd(), Path::new("/dev/console"))?;
        sys::mount(
            Some(&fd_path(slave.as_fd())),
            &fd_path(console.as_fd()),
            None,
            libc::MS_BIND,
            None,
        )
        .context("binding the pty onto /dev/console")?;
    }
    send_fd(sock, master.as_fd(), b"/dev/ptmx").context("sending the pty master")?;
    drop(master);
    rustix::process::setsid().context("setsid")?;
    rustix::process::ioctl_tiocsctty(&slave).context("setting the controlling terminal")?;
    for target in 0..3 {
        // SAFETY-free: dup2 onto 0, 1, 2 through rustix's stdio helpers.
        match target {
            0 => rustix::stdio::dup2_stdin(&slave)?,
            1 => rustix::stdio::dup2_stdout(&slave)?,
            _ => rustix::stdio::dup2_stderr(&slave)?,
        }
    }
    Ok(())
}

/// Sends one descriptor with a small payload over a unix socket.
pub fn send_fd(
    sock: &UnixStream,
    fd: std::os::fd::BorrowedFd<'_>,
    payload: &[u8],
) -> anyhow::Result<()> {
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    anyhow::ensure!(
        control.push(SendAncillaryMessage::ScmRights(&fds)),
        "control buffer too small"
    );
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(payload)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}
