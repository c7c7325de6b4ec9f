//! berthd's berth-containerd: the one given with `--containerd unix://PATH` (left running on
//! shutdown), or one berthd starts under its exec root and stops on shutdown, as dockerd does
//! with containerd. A containerd left running by a berthd that was killed is reused, so its
//! containers carry on. Containers outlive both: their shims are detached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;

/// The gRPC namespace berthd's containers live in.
pub const NAMESPACE: &str = "berth";

pub struct Containerd {
    pub socket: PathBuf,
    pub channel: Channel,
    /// Set when berthd started it (and so stops it).
    child: std::sync::Mutex<Option<std::process::Child>>,
    /// A containerd an earlier berthd of this exec root started and left running: ours to stop.
    adopted: Option<rustix::process::Pid>,
}

/// The pid in `<exec>/containerd.pid`, if that process is still a berth-containerd.
fn adopted_pid(exec_root: &Path) -> Option<rustix::process::Pid> {
    let raw: i32 = std::fs::read_to_string(exec_root.join("containerd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{raw}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmd)
        .contains("berth-containerd")
        .then(|| rustix::process::Pid::from_raw(raw))
        .flatten()
}

fn find_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

async fn connect(socket: &Path) -> anyhow::Result<Channel> {
    berth_proto::connect_unix(socket)
        .await
        .with_context(|| format!("connecting to berth-containerd at {}", socket.display()))
}

impl Containerd {
    /// Connects to `address` (`unix://PATH`), or starts (or reuses) our own.
    pub async fn start(
        address: Option<&str>,
        data_root: &Path,
        exec_root: &Path,
    ) -> anyhow::Result<Containerd> {
        if let Some(a) = address {
            let socket = PathBuf::from(a.strip_prefix("unix://").unwrap_or(a));
            let channel = connect(&socket).await?;
            return Ok(Containerd {
                socket,
                channel,
                child: Default::default(),
                adopted: None,
            });
        }
        let socket = exec_root.join("containerd.sock");
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            tracing::info!(socket = %socket.display(), "reusing the running berth-containerd");
            let channel = connect(&socket).await?;
            return Ok(Containerd {
                socket,
                channel,
                child: Default::default(),
                adopted: adopted_pid(exec_root),
            });
        }
        let bin = find_binary("berth-containerd");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(exec_root.join("containerd.log"))
            .context("opening containerd.log")?;
        #[allow(clippy::disallowed_methods)] // berth-containerd is berthd's lower layer
        let child = std::process::Command::new(&bin)
            .arg("--root")
            .arg(data_root.join("containerd"))
            .arg("--state")
            .arg(exec_root)
            .arg("--address")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut child = child;
        let _ = std::fs::write(exec_root.join("containerd.pid"), child.id().to_string());
        for _ in 0..500 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                let channel = connect(&socket).await?;
                return Ok(Containerd {
                    socket,
                    channel,
                    child: std::sync::Mutex::new(Some(child)),
                    adopted: None,
                });
            }
            if let Ok(Some(st)) = child.try_wait() {
                anyhow::bail!(
                    "berth-containerd exited ({st}); see {}",
                    exec_root.join("containerd.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("berth-containerd did not come up on {}", socket.display())
    }

    /// Stops the containerd berthd started (containers keep running under their shims).
    pub fn stop(&self) {
        if let Some(pid) = self.adopted {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            for _ in 0..200 {
                if !Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let taken = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = taken {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            for _ in 0..200 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}
