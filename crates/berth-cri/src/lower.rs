//! berth-cri's berth-containerd: the one given with `--containerd unix://PATH`, or one it starts
//! under `--state` (its data under `--root`) and stops on shutdown. CRI containers live in the
//! `k8s.io` namespace of it, apart from berthd's, as containerd's CRI plugin keeps them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::tasks_client::TasksClient;
use tonic::transport::Channel;

/// The tenant namespace of CRI containers.
pub const NAMESPACE: &str = "k8s.io";

/// A request to berth-containerd in the CRI's namespace.
pub fn req<T>(msg: T) -> tonic::Request<T> {
    berth_proto::with_namespace(NAMESPACE, msg)
}

/// The connection to berth-containerd, and the process when it is ours.
pub struct Lower {
    pub channel: Channel,
    child: std::sync::Mutex<Option<std::process::Child>>,
}

impl Lower {
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    /// Connects to `address`, or starts our own berth-containerd (one left running by an
    /// earlier berth-cri of the same `--state` is reused: its containers carry on).
    pub async fn start(address: Option<&str>, root: &Path, state: &Path) -> anyhow::Result<Lower> {
        let own = |channel, child| Lower {
            channel,
            child: std::sync::Mutex::new(child),
        };
        if let Some(a) = address {
            let socket = PathBuf::from(a.strip_prefix("unix://").unwrap_or(a));
            return Ok(own(connect(&socket).await?, None));
        }
        let socket = state.join("containerd.sock");
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(own(connect(&socket).await?, None));
        }
        let bin = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("berth-containerd")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("berth-containerd"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join("containerd.log"))
            .context("opening containerd.log")?;
        #[allow(clippy::disallowed_methods)] // berth-containerd is the CRI server's lower layer
        let mut child = std::process::Command::new(&bin)
            .arg("--root")
            .arg(root.join("containerd"))
            .arg("--state")
            .arg(state)
            .arg("--address")
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        for _ in 0..200 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(own(connect(&socket).await?, Some(child)));
            }
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("berth-containerd exited at start ({status}); see containerd.log");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("berth-containerd did not answer on {}", socket.display())
    }

    /// Stops our berth-containerd (the containers' shims carry on without it): SIGTERM, and
    /// SIGKILL if it has not ended within 2 s (its shutdown waits for connections that this
    /// process' clients may still hold).
    pub async fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut c) = child else { return };
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        for _ in 0..40 {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

async fn connect(socket: &Path) -> anyhow::Result<Channel> {
    berth_proto::connect_unix(socket)
        .await
        .with_context(|| format!("connecting to berth-containerd at {}", socket.display()))
}
