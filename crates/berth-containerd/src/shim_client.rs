//! berth-containerd's side of the shim: starting one (`berth-shim serve`, reporting once the
//! container is created) and the shim's socket protocol (one JSON request line, one JSON answer
//! line per connection, typed by the `berth-shim-protocol` crate the shim uses too). Binaries are found next to this one
//! first, then on PATH.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_shim_protocol::{ErrorKind, Request as ShimRequest};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest unix socket path the kernel accepts (sun_path less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Connects to the unix socket at `path`, through this process's descriptor of its directory
/// (`/proc/self/fd/<n>/<name>`) when `path` is too long for a socket address: a task directory
/// may lie deep under a long `--state`.
pub async fn connect(path: &Path) -> std::io::Result<UnixStream> {
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return UnixStream::connect(path).await;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixStream::connect(path).await;
    };
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&fd).to_string())
        .join(name);
    let stream = UnixStream::connect(&short).await;
    drop(fd);
    stream
}

/// Why a shim call failed.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim is gone (its socket refuses connections or closed without answering).
    #[error("the shim of container {id} is not running")]
    Gone { id: String },
    /// The shim (or the runtime behind it) answered with an error of this kind.
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String },
}

impl ShimError {
    /// A failure of the call itself (not an answer of the shim's).
    pub fn failed(message: impl Into<String>) -> ShimError {
        ShimError::Failed {
            kind: ErrorKind::FailedPrecondition,
            message: message.into(),
        }
    }
}

/// What `berth-shim start` prints once the container exists.
#[derive(Debug, Deserialize)]
pub struct StartReport {
    pub shim_pid: u32,
    pub pid: u32,
}

/// How a process ended, as the shim reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at_unix_nanos: i64,
}

impl Exit {
    /// Reads `{"status","exited_at"}` (the shim's answer and its `exit.json`).
    pub fn from_json(v: &Value) -> Option<Exit> {
        let status = v.get("status")?.as_i64()?;
        let at = v.get("exited_at")?.as_str()?;
        Some(Exit {
            status: u32::try_from(status).unwrap_or(255),
            at_unix_nanos: berth_clock::parse_rfc3339(at).unwrap_or(0),
        })
    }

    /// The exit recorded on disk by a shim (`exit.json` in the task dir), if any.
    pub fn read_file(path: &Path) -> Option<Exit> {
        let bytes = std::fs::read(path).ok()?;
        Exit::from_json(&serde_json::from_slice(&bytes).ok()?)
    }
}

/// Finds a helper binary: next to this executable first, then by name on PATH.
pub fn find_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The seals berth-runc looks for on its own executable before it skips making a copy.
const SEALS: rustix::fs::SealFlags = rustix::fs::SealFlags::SEAL
    .union(rustix::fs::SealFlags::SHRINK)
    .union(rustix::fs::SealFlags::GROW)
    .union(rustix::fs::SealFlags::WRITE);

/// One sealed in-memory copy of berth-runc per runtime path, made at the first container that
/// uses it and shared by every shim (each opens its own handle through /proc): berth-runc then
/// runs from it and skips copying its 4 MB self into a new memfd at every create and exec.
fn sealed_runtime(runtime: &Path) -> Option<PathBuf> {
    static COPIES: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, std::os::fd::OwnedFd>>,
    > = std::sync::OnceLock::new();
    let is_berth = runtime
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("berth-runc"));
    if !is_berth {
        return None;
    }
    let mut copies = COPIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if !copies.contains_key(runtime) {
        let fd = seal_copy(runtime)?;
        copies.insert(runtime.to_path_buf(), fd);
    }
    let fd = copies.get(runtime)?;
    Some(PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(fd)
    )))
}

fn seal_copy(bin: &Path) -> Option<std::os::fd::OwnedFd> {
    let mut src = std::fs::File::open(bin).ok()?;
    let memfd = rustix::fs::memfd_create(
        "berth-runc",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .ok()?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).ok()?;
    for _ in 0..50 {
        match rustix::fs::fcntl_add_seals(&dst, SEALS) {
            // Pages still held by the splice pipe for a moment.
            Err(rustix::io::Errno::BUSY) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Ok(()) => return Some(dst.into()),
            Err(_) => return None,
        }
    }
    None
}

/// Everything `berth-shim start` needs.
pub struct Launch<'a> {
    pub id: &'a str,
    pub task_dir: &'a Path,
    pub runtime: &'a str,
    pub runtime_root: &'a Path,
    pub stdin: &'a str,
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub terminal: bool,
}

/// Runs `berth-shim serve` (what `berth-shim start` would run, without its extra process):
/// returns once the shim has created the container and reported its socket; on failure the
/// error is the shim's message (the runtime's own text when the runtime failed) and the shim has
/// left nothing behind. The shim, in a session of its own, outlives this daemon; while both
/// live it is reaped here when it exits.
pub async fn launch(l: &Launch<'_>) -> Result<StartReport, ShimError> {
    let failed = |what: &str, e: std::io::Error| ShimError::failed(format!("{what}: {e}"));
    let runtime = find_binary(l.runtime);
    let task_dir =
        std::path::absolute(l.task_dir).map_err(|e| failed("resolving the task dir", e))?;
    let runtime_root =
        std::path::absolute(l.runtime_root).map_err(|e| failed("resolving the runtime root", e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(task_dir.join("shim.log"))
        .map_err(|e| failed("opening shim.log", e))?;
    #[allow(clippy::disallowed_methods)] // berth-shim's command line is its start contract
    let mut cmd = std::process::Command::new(find_binary("berth-shim"));
    cmd.arg("serve")
        .arg("--id")
        .arg(l.id)
        .arg("--task-dir")
        .arg(&task_dir)
        .arg("--runtime")
        .arg(&runtime)
        .arg("--runtime-root")
        .arg(&runtime_root)
        .arg("--stdin")
        .arg(l.stdin)
        .arg("--stdout")
        .arg(l.stdout)
        .arg("--stderr")
        .arg(l.stderr)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if l.terminal {
        cmd.arg("--terminal");
    }
    if let Some(sealed) = sealed_runtime(&runtime) {
        cmd.arg("--runtime-sealed").arg(sealed);
    }
    // The report comes once the runtime has created the container: keep it off the reactor. A
    // shim that does not report is reaped right there.
    let reported = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = cmd.spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        match serde_json::from_str::<StartReport>(&line) {
            Ok(report) => Ok::<_, std::io::Error>(Ok((child, report))),
            Err(_) => {
                let _ = child.wait();
                Ok(Err(line))
            }
        }
    })
    .await
    .map_err(|e| ShimError::failed(format!("starting the shim: {e}")))?
    .map_err(|e| failed("starting berth-shim", e))?;
    let line = match reported {
        Ok((child, report)) => {
            reap_when_gone(child);
            return Ok(report);
        }
        Err(line) => line,
    };
    // The shim failed and cleaned up: its own words, else the end of its log (the task dir and
    // the log with it are removed after this).
    let said = serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| berth_shim_protocol::error_of(&v))
        .map(|(_, message)| message);
    Err(ShimError::failed(said.unwrap_or_else(|| {
        let log = std::fs::read_to_string(task_dir.join("shim.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        match tail.len() {
            0 => "the shim exited without reporting".to_string(),
            n => format!(
                "the shim exited without reporting: {}",
                tail[n.saturating_sub(3)..].join(" / ")
            ),
        }
    })))
}

/// Reaps a running shim once it exits, without a thread waiting for it: its pidfd turns
/// readable at the exit. Where pidfds are missing (Linux < 5.3) a blocking wait does it.
fn reap_when_gone(mut child: std::process::Child) {
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()
    });
    // `AsyncFd::new` is deprecated because any `AsRawFd` may close its descriptor behind the
    // reactor's back; an `OwnedFd` moved into it cannot, which is what its unsafe successor
    // `register` asks the caller to promise (and unsafe code is not allowed here).
    #[allow(deprecated)]
    let pidfd = pidfd.and_then(|fd| tokio::io::unix::AsyncFd::new(fd).ok());
    match pidfd {
        Some(fd) => {
            tokio::spawn(async move {
                let _ = fd.readable().await;
                let _ = child.wait();
            });
        }
        None => {
            tokio::task::spawn_blocking(move || child.wait());
        }
    }
}

/// A handle on one shim's socket.
#[derive(Debug, Clone)]
pub struct Shim {
    pub id: String,
    pub socket: PathBuf,
}

impl Shim {
    /// Sends one request and returns the answer; `{"error":...}` answers become [`ShimError::Failed`].
    pub async fn call(&self, req: &ShimRequest) -> Result<Value, ShimError> {
        self.exchange(req, false).await
    }

    /// [`Shim::call`] for a request that ends the shim (`delete` of the init, `shutdown`): also
    /// waits (a few seconds at most) for the connection to close, which the shim leaves to the
    /// kernel at its exit, so on return the shim process is gone, not just about to go.
    pub async fn call_final(&self, req: &ShimRequest) -> Result<Value, ShimError> {
        self.exchange(req, true).await
    }

    async fn exchange(&self, req: &ShimRequest, to_the_end: bool) -> Result<Value, ShimError> {
        let gone = || ShimError::Gone {
            id: self.id.clone(),
        };
        let mut stream = connect(&self.socket).await.map_err(|_| gone())?;
        let mut line = serde_json::to_vec(req).unwrap_or_default();
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|_| gone())?;
        let mut answer = String::new();
        let mut reader = BufReader::new(stream);
        reader.read_line(&mut answer).await.map_err(|_| gone())?;
        if answer.is_empty() {
            return Err(gone());
        }
        if to_the_end {
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                reader.read_to_end(&mut rest),
            )
            .await;
        }
        let v: Value = serde_json::from_str(&answer)
            .map_err(|e| ShimError::failed(format!("the shim answered garbage: {e}")))?;
        match berth_shim_protocol::error_of(&v) {
            Some((kind, message)) => Err(ShimError::Failed { kind, message }),
            None => Ok(v),
        }
    }

    /// Blocks until the process (the init when `exec_id` is None) has exited.
    pub async fn wait(&self, exec_id: Option<&str>) -> Result<Exit, ShimError> {
        let v = self
            .call(&ShimRequest::Wait {
                exec_id: exec_id.map(str::to_string),
            })
            .await?;
        Exit::from_json(&v).ok_or_else(|| ShimError::failed(format!("bad wait answer {v}")))
    }
}
