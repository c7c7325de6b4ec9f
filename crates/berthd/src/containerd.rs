//! berthd's berth-containerd: the one given with `--containerd unix://PATH` (left running on
//! shutdown), or one berthd starts under its exec root and stops on shutdown, as dockerd does
//! with containerd. A containerd left running by a berthd that was killed is reused, so its
//! containers carry on. Containers outlive both: their shims are detached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;

use crate::model::Error;

/// The gRPC namespace berthd's containers live in.
pub const NAMESPACE: &str = "berth";

pub struct Containerd {
    pub socket: PathBuf,
    pub channel: Channel,
    /// Set when berthd started it (and so stops it).
    child: std::sync::Mutex<Option<std::process::Child>>,
    /// A containerd an earlier berthd of this exec root started and left running: ours to stop.
    adopted: std::sync::Mutex<Option<rustix::process::Pid>>,
    /// How to start it again, when it is ours (not one given with `--containerd`).
    launch: Option<Launch>,
    /// Set by [`Containerd::stop`]: its exit is then wanted, not restarted.
    stopping: std::sync::atomic::AtomicBool,
    /// Counts the restarts after a death: reconciliation runs again at each (what the dead
    /// one was doing may have been left half done).
    pub restarts: tokio::sync::watch::Sender<u64>,
}

/// What starting our own berth-containerd takes.
#[derive(Clone)]
struct Launch {
    data_root: PathBuf,
    exec_root: PathBuf,
}

impl Launch {
    /// Spawns berth-containerd and records its pid in `<exec>/containerd.pid`.
    fn spawn(&self, socket: &Path) -> anyhow::Result<std::process::Child> {
        let bin = find_binary("berth-containerd");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.exec_root.join("containerd.log"))
            .context("opening containerd.log")?;
        #[allow(clippy::disallowed_methods)] // berth-containerd is berthd's lower layer
        let child = std::process::Command::new(&bin)
            .arg("--root")
            .arg(self.data_root.join("containerd"))
            .arg("--state")
            .arg(&self.exec_root)
            .arg("--address")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let _ = std::fs::write(
            self.exec_root.join("containerd.pid"),
            child.id().to_string(),
        );
        Ok(child)
    }
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
    /// Removes whatever berth-containerd has of container `id`: its task (its processes killed
    /// first) and its container record.
    pub async fn drop_container(&self, id: &str) {
        let req = |m| berth_proto::with_namespace(NAMESPACE, m);
        let mut tasks = self.tasks();
        let _ = tasks
            .kill(req(berth_proto::v1::KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal: 9,
                all: true,
            }))
            .await;
        // The task can be deleted once its init has exited (a moment after SIGKILL).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let deleted = tasks
                .delete(berth_proto::with_namespace(
                    NAMESPACE,
                    berth_proto::v1::DeleteTaskRequest {
                        container_id: id.to_string(),
                    },
                ))
                .await;
            match deleted {
                Ok(_) => break,
                Err(e) if e.code() == tonic::Code::NotFound => break,
                Err(e) if std::time::Instant::now() >= deadline => {
                    tracing::warn!(id, error = e.message(), "deleting a leftover task");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let _ = self
            .containers()
            .delete(berth_proto::with_namespace(
                NAMESPACE,
                berth_proto::v1::DeleteContainerRequest { id: id.to_string() },
            ))
            .await;
    }

    /// A client of berth-containerd's Tasks service (on the one shared channel).
    pub fn tasks(&self) -> berth_proto::v1::tasks_client::TasksClient<Channel> {
        berth_proto::v1::tasks_client::TasksClient::new(self.channel.clone())
    }

    /// A client of berth-containerd's Containers service.
    pub fn containers(&self) -> berth_proto::v1::containers_client::ContainersClient<Channel> {
        berth_proto::v1::containers_client::ContainersClient::new(self.channel.clone())
    }

    /// A client of berth-containerd's Events service.
    pub fn events(&self) -> berth_proto::v1::events_client::EventsClient<Channel> {
        berth_proto::v1::events_client::EventsClient::new(self.channel.clone())
    }

    /// Connects to `address` (`unix://PATH`), or starts (or reuses) our own.
    pub async fn start(
        address: Option<&str>,
        data_root: &Path,
        exec_root: &Path,
    ) -> anyhow::Result<Containerd> {
        let plain = |socket, channel, adopted, launch| Containerd {
            socket,
            channel,
            child: Default::default(),
            adopted: std::sync::Mutex::new(adopted),
            launch,
            stopping: Default::default(),
            restarts: tokio::sync::watch::Sender::new(0),
        };
        if let Some(a) = address {
            let socket = PathBuf::from(a.strip_prefix("unix://").unwrap_or(a));
            let channel = connect(&socket).await?;
            return Ok(plain(socket, channel, None, None));
        }
        let launch = Launch {
            data_root: data_root.to_path_buf(),
            exec_root: exec_root.to_path_buf(),
        };
        let socket = exec_root.join("containerd.sock");
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            tracing::info!(socket = %socket.display(), "reusing the running berth-containerd");
            let channel = connect(&socket).await?;
            let adopted = adopted_pid(exec_root);
            return Ok(plain(socket, channel, adopted, Some(launch)));
        }
        let child = launch.spawn(&socket)?;
        let child = wait_up(child, &socket, exec_root).await?;
        let channel = connect(&socket).await?;
        let c = plain(socket, channel, None, Some(launch));
        *c.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(c)
    }

    /// Watches the berth-containerd berthd started (or adopted) and starts it again within a
    /// second when it dies: the gRPC channel reconnects by itself, event and wait streams are
    /// taken up again by their callers, and the new containerd re-attaches to the running
    /// shims. A containerd given with `--containerd` is not ours to restart.
    pub async fn supervise(self: std::sync::Arc<Self>) {
        let Some(launch) = self.launch.clone() else {
            return;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            if self.alive(&launch.exec_root) {
                continue;
            }
            tracing::warn!("berth-containerd died; starting it again");
            let started = match launch.spawn(&self.socket) {
                Ok(child) => wait_up(child, &self.socket, &launch.exec_root).await,
                Err(e) => Err(e),
            };
            match started {
                Ok(child) => {
                    *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
                    tracing::info!("berth-containerd is back");
                    self.restarts.send_modify(|n| *n += 1);
                }
                Err(e) => tracing::error!(error = format!("{e:#}"), "restarting berth-containerd"),
            }
        }
    }

    /// Whether our containerd process still runs (reaping it if it exited): the child we
    /// started, or the one an earlier berthd left (its pid still a berth-containerd's).
    fn alive(&self, exec_root: &Path) -> bool {
        if let Some(child) = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            return matches!(child.try_wait(), Ok(None));
        }
        let adopted = *self.adopted.lock().unwrap_or_else(|p| p.into_inner());
        adopted.is_some_and(|pid| adopted_pid(exec_root) == Some(pid))
    }

    /// Stops the containerd berthd started (containers keep running under their shims).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let adopted = *self.adopted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = adopted {
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

/// Waits (5 s at most) until `child` answers on `socket`; it is killed if it does not.
async fn wait_up(
    mut child: std::process::Child,
    socket: &Path,
    exec_root: &Path,
) -> anyhow::Result<std::process::Child> {
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(child);
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

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Containerd {
    /// Waits until the task's process (the init when `exec_id` is empty) exits; its exit code, or
    /// 255 when containerd no longer knows it. Transient errors are retried.
    pub async fn wait_exit(&self, container: &str, exec_id: &str) -> i64 {
        let mut tasks = self.tasks();
        loop {
            let w = tasks
                .wait(req(berth_proto::v1::WaitRequest {
                    container_id: container.to_string(),
                    exec_id: exec_id.to_string(),
                }))
                .await;
            match w {
                Ok(w) => return i64::from(w.into_inner().exit_status),
                Err(e) if e.code() == tonic::Code::NotFound => return 255,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The engine error of a berth-containerd answer, by its gRPC code (never by its text).
pub fn grpc(e: tonic::Status) -> Error {
    match e.code() {
        tonic::Code::NotFound => Error::not_found(e.message().to_string()),
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => {
            Error::conflict(e.message().to_string())
        }
        tonic::Code::InvalidArgument => Error::invalid(e.message().to_string()),
        tonic::Code::Unavailable => Error::unavailable(e.message().to_string()),
        tonic::Code::PermissionDenied => Error::forbidden(e.message().to_string()),
        _ => Error::internal(e.message().to_string()),
    }
}

/// A request in berthd's containerd namespace.
pub fn req<T>(m: T) -> tonic::Request<T> {
    berth_proto::with_namespace(NAMESPACE, m)
}
