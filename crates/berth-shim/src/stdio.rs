//! A process's stdio as the shim keeps it.
//!
//! Callers give paths: FIFOs they made, regular files, or nothing (`/dev/null`). The shim opens
//! stdout/stderr FIFOs read-write, so it always holds a read end: a departed reader never makes
//! the container's writes fail with EPIPE, and a reader may reopen the FIFO and go on reading.
//! Stdin from a FIFO goes through a pipe the shim owns, so `close_stdin` (or the writer's EOF)
//! can close the container's stdin. With a terminal, the runtime sends the pty master over a
//! console socket; the poll loop then copies master → stdout and stdin → master.

use std::fs::{File, OpenOptions};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// The stdio paths of one process, as given by the caller.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub terminal: bool,
}

/// What the shim holds for one process's stdio while it lives.
#[derive(Default)]
pub struct Held {
    /// The stdin FIFO the shim reads from (non-blocking), when stdin is pumped.
    pub stdin_src: Option<File>,
    /// Where pumped stdin goes: the pipe to the container, or the pty master.
    pub stdin_pipe: Option<OwnedFd>,
    /// The stdout (and, without a terminal, stderr) the shim keeps open.
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// The pty master, with a terminal.
    pub master: Option<OwnedFd>,
}

/// The three fds handed to the runtime for the process.
pub struct ForRuntime {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

fn given(p: &Option<String>) -> Option<&str> {
    p.as_deref().filter(|s| !s.is_empty())
}

fn is_fifo(path: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens an output path: a FIFO read-write (the shim's read end), a file for appending.
fn open_output(path: &str, nonblocking: bool) -> anyhow::Result<File> {
    let mut o = OpenOptions::new();
    if is_fifo(path) {
        o.read(true).write(true);
        if nonblocking {
            o.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
    } else {
        o.append(true).create(true);
    }
    o.open(path).with_context(|| format!("opening {path}"))
}

/// Opens a stdin FIFO without waiting for a writer; reads are non-blocking.
fn open_stdin_fifo(path: &str) -> anyhow::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("opening {path}"))
}

/// Opens the stdio of a process and splits it into what the shim keeps and what the runtime gets.
pub fn open(paths: &StdioPaths) -> anyhow::Result<(Held, ForRuntime)> {
    let mut held = Held::default();
    if paths.terminal {
        if let Some(p) = given(&paths.stdin) {
            held.stdin_src = Some(if is_fifo(p) {
                open_stdin_fifo(p)?
            } else {
                File::open(p).with_context(|| format!("opening {p}"))?
            });
        }
        if let Some(p) = given(&paths.stdout) {
            held.stdout = Some(open_output(p, true)?);
        }
        let io = ForRuntime {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        };
        return Ok((held, io));
    }
    let stdin = match given(&paths.stdin) {
        None => Stdio::null(),
        Some(p) if is_fifo(p) => {
            held.stdin_src = Some(open_stdin_fifo(p)?);
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .context("making the stdin pipe")?;
            rustix::fs::fcntl_setfl(&w, rustix::fs::OFlags::NONBLOCK)?;
            held.stdin_pipe = Some(w);
            Stdio::from(r)
        }
        Some(p) => Stdio::from(File::open(p).with_context(|| format!("opening {p}"))?),
    };
    let output = |p: &Option<String>| -> anyhow::Result<(Option<File>, Stdio)> {
        Ok(match given(p) {
            None => (None, Stdio::null()),
            Some(p) => {
                let f = open_output(p, false)?;
                let dup = f.try_clone()?;
                (Some(f), Stdio::from(dup))
            }
        })
    };
    let (out, stdout) = output(&paths.stdout)?;
    let (err, stderr) = output(&paths.stderr)?;
    held.stdout = out;
    held.stderr = err;
    Ok((
        held,
        ForRuntime {
            stdin,
            stdout,
            stderr,
        },
    ))
}

/// The longest unix socket path (`sun_path` holds 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A path to the socket `name` in `dir` that fits a unix socket address whatever the length of
/// `dir` (a task directory deep under a long exec root): `dir/name` itself when short enough,
/// else through this process's descriptor of the directory (`/proc/<pid>/fd/<n>/<name>`), which
/// another process of root in the same mount namespace resolves to the same place too. The
/// descriptor returned must stay open while the path is used.
pub fn socket_path(
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<(std::path::PathBuf, Option<OwnedFd>)> {
    let direct = dir.join(name);
    if direct.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((direct, None));
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let short = format!(
        "/proc/{}/fd/{}/{name}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    );
    Ok((std::path::PathBuf::from(short), Some(fd)))
}

/// A console socket for the runtime: the listener, the path to pass with `--console-socket`,
/// and what must stay open until the runtime has connected (see [`socket_path`]).
pub fn console_socket(
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<(UnixListener, String, Option<OwnedFd>)> {
    let _ = std::fs::remove_file(dir.join(name));
    let (path, held) = socket_path(dir, name)?;
    let listener = UnixListener::bind(&path).context("binding the console socket")?;
    let path = path
        .to_str()
        .context("the console socket's path is not UTF-8")?
        .to_string();
    Ok((listener, path, held))
}

/// Waits for the runtime to send the pty master on `listener`, giving up when `child` (the
/// runtime) has exited without sending one.
pub fn receive_master(listener: &UnixListener, child: &mut Child) -> anyhow::Result<OwnedFd> {
    let timeout = rustix::event::Timespec::try_from(Duration::from_millis(100))?;
    let zero = rustix::event::Timespec::try_from(Duration::ZERO)?;
    loop {
        let exited = child.try_wait()?.is_some();
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let ready = rustix::event::poll(&mut fds, Some(if exited { &zero } else { &timeout }));
        let ready = match ready {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("waiting for the console socket"),
        };
        if ready > 0 && fds[0].revents().contains(PollFlags::IN) {
            let (conn, _) = listener
                .accept()
                .context("accepting the console connection")?;
            return recv_fd(&conn);
        }
        if exited {
            bail!("the runtime exited without sending a pty master");
        }
    }
}

fn recv_fd(conn: &impl AsFd) -> anyhow::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(conn, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .context("receiving the pty master")?;
    let fd = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    fd.context("the console connection carried no file descriptor")
}
