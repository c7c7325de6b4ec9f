//! CRI containers on berth-containerd: create (the image's layers under an overlayfs root of
//! its own, the spec, containerd's record), start (FIFOs the shim writes, pumped into the CRI
//! log; the task created and started; a watcher that records the exit), stop (the stop signal,
//! then SIGKILL after the timeout), remove, status and list, `ExecSync`, resource updates and
//! log reopening. The pod's pause container is made the same way, marked as the sandbox's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1 as lower;
use tonic::Status;

use crate::lower::req;
use crate::runtime::Runtime;
use crate::spec::{self, ImageDefaults, PodNamespaces};
use crate::store::{Container, Pod, State, now_nanos};
use crate::v1;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Makes a FIFO (replacing what is at `p`), readable and writable by root alone.
pub(crate) fn mkfifo(p: &std::path::Path) -> Result<(), Status> {
    let _ = std::fs::remove_file(p);
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| internal(format!("creating {}: {e}", p.display())))
}

impl Runtime {
    /// Where a container's rootfs (upper, work, merged) lives.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Where a container's FIFOs and exec FIFOs live.
    pub fn fifo_dir(&self, id: &str) -> PathBuf {
        self.state.join("containers").join(id)
    }

    /// The pod's namespaces as a container joins them.
    pub fn pod_namespaces(&self, pod: &Pod) -> PodNamespaces {
        PodNamespaces {
            net: pod.netns.clone(),
            ipc: pod.ipc.clone(),
            uts: pod.uts.clone(),
            pid: (pod.pause_pid != 0)
                .then(|| PathBuf::from(format!("/proc/{}/ns/pid", pod.pause_pid))),
            host_pid: false,
        }
    }

    /// Makes a container of `pod` (not started): its rootfs, spec and containerd record.
    pub async fn make_container(
        &self,
        pod: &Pod,
        config: v1::ContainerConfig,
        sandbox: bool,
    ) -> Result<Container, Status> {
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let store = self.images.store.clone();
        let name = image_name.clone();
        let (image, defaults, lowers) = tokio::task::spawn_blocking(move || {
            let image = store
                .images
                .resolve(&name)
                .map_err(|_| Status::not_found(format!("image {name:?} not found")))?;
            let raw = store
                .content
                .read(&image.id, berth_image::manifest::MAX_CONFIG)
                .ok()
                .and_then(|b| berth_image::manifest::ImageConfig::parse(&b).ok())
                .map(|c| c.raw)
                .unwrap_or_default();
            let lowers = store.layer_dirs(&image);
            Ok::<_, Status>((image, ImageDefaults::of(&raw), lowers))
        })
        .await
        .map_err(internal)??;
        let id = crate::store::new_id();
        let dir = self.container_dir(&id);
        let pod_config = pod.config();
        let made = (|| {
            let rootfs = berth_oci::rootfs::mount(&dir, &lowers, false).map_err(internal)?;
            let input = spec::Input {
                id: &id,
                config: &config,
                pod: &pod_config,
                image: &defaults,
                rootfs: &rootfs,
                etc: &self.pod_dir(&pod.id),
                ns: self.pod_namespaces(pod),
                cgroup_parent: &self.cgroup_parent,
            };
            let spec = spec::build(&input)?;
            let json = serde_json::to_vec(&spec).map_err(internal)?;
            std::fs::write(dir.join("config.json"), &json).map_err(internal)?;
            Ok::<_, Status>(json)
        })();
        let spec = match made {
            Ok(s) => s,
            Err(e) => {
                berth_oci::rootfs::unmount(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let record = lower::Container {
            id: id.clone(),
            spec,
            ..Default::default()
        };
        let created = self
            .lower
            .containers()
            .create(req(lower::CreateContainerRequest {
                container: Some(record),
            }))
            .await;
        if let Err(e) = created {
            berth_oci::rootfs::unmount(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(internal(format!("creating the container: {}", e.message())));
        }
        let log_path = match (pod_config.log_directory.as_str(), config.log_path.as_str()) {
            (_, "") | ("", _) => String::new(),
            (d, p) => std::path::Path::new(d).join(p).display().to_string(),
        };
        let c = Container {
            id,
            pod: pod.id.clone(),
            config: prost::Message::encode_to_vec(&config),
            image_id: image.id.to_string(),
            image: image_name,
            created: now_nanos(),
            started: 0,
            finished: 0,
            exit_code: 0,
            state: State::Created,
            reason: String::new(),
            log_path,
            pid: 0,
            sandbox,
        };
        self.store.put_container(&c).map_err(internal)?;
        Ok(c)
    }

    /// Starts a created container: its output pumped into its log, its task created and
    /// started, its exit watched.
    pub async fn start_container_task(self: &Arc<Self>, id: &str) -> Result<(), Status> {
        let mut c = self
            .store
            .container(id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.state != State::Created {
            return Err(Status::failed_precondition(format!(
                "container {id} is not in created state"
            )));
        }
        let config = c.config();
        let fifos = self.fifo_dir(id);
        std::fs::create_dir_all(&fifos).map_err(internal)?;
        let (out, err) = (fifos.join("stdout"), fifos.join("stderr"));
        mkfifo(&out)?;
        mkfifo(&err)?;
        self.pump_output(&c, &out, (!config.tty).then_some(&err))?;
        let stdin = fifos.join("stdin");
        if config.stdin {
            self.hold_stdin(id, &stdin)?;
        }
        let rootfs = berth_oci::rootfs::merged(&self.container_dir(id));
        let task = lower::CreateTaskRequest {
            container_id: id.to_string(),
            rootfs: rootfs.display().to_string(),
            stdin: match config.stdin {
                true => stdin.display().to_string(),
                false => String::new(),
            },
            stdout: out.display().to_string(),
            stderr: if config.tty {
                String::new()
            } else {
                err.display().to_string()
            },
            terminal: config.tty,
        };
        let mut tasks = self.lower.tasks();
        let started = async {
            let t = tasks.create(req(task)).await?.into_inner();
            tasks
                .start(req(lower::StartRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                }))
                .await?;
            Ok::<u32, tonic::Status>(t.pid)
        }
        .await;
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                let _ = tasks
                    .delete(req(lower::DeleteTaskRequest {
                        container_id: id.to_string(),
                    }))
                    .await;
                crate::exec_stream::release(&out, true);
                crate::exec_stream::release(&err, true);
                c.state = State::Exited;
                c.finished = now_nanos();
                c.exit_code = 128;
                c.reason = "StartError".into();
                let _ = self.store.put_container(&c);
                return Err(internal(format!("starting the container: {}", e.message())));
            }
        };
        c.state = State::Running;
        c.started = now_nanos();
        c.pid = pid;
        self.store.put_container(&c).map_err(internal)?;
        self.watch(id);
        Ok(())
    }

    /// Copies the container's FIFOs into its log (if it has one), on threads of their own.
    pub(crate) fn pump_output(
        &self,
        c: &Container,
        out: &std::path::Path,
        err: Option<&std::path::Path>,
    ) -> Result<(), Status> {
        let log = match c.log_path.is_empty() {
            true => None,
            false => {
                Some(crate::logs::Log::open(std::path::Path::new(&c.log_path)).map_err(internal)?)
            }
        };
        if let Some(l) = &log {
            self.logs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.id.clone(), l.clone());
        }
        let tee = tokio::sync::broadcast::channel(256).0;
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id.clone(), tee.clone());
        for (stream, path) in [("stdout", Some(out)), ("stderr", err)] {
            let Some(path) = path.map(std::path::Path::to_path_buf) else {
                continue;
            };
            let log = log.clone();
            let tee = tee.clone();
            std::thread::spawn(move || {
                // Blocks until the shim opens the write end; ends at its close.
                let Ok(f) = std::fs::File::open(&path) else {
                    return;
                };
                // What is read goes to attached clients too.
                let f = crate::attach::Tee {
                    inner: f,
                    stream,
                    to: tee,
                };
                match log {
                    Some(l) => l.pump(stream, f),
                    None => {
                        let _ = std::io::copy(&mut { f }, &mut std::io::sink());
                    }
                }
            });
        }
        Ok(())
    }

    /// Records the container's exit when its task ends (and lets the task go).
    pub fn watch(self: &Arc<Self>, id: &str) {
        let (rt, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            let mut tasks = rt.lower.tasks();
            let waited = tasks
                .wait(req(lower::WaitRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                }))
                .await;
            let (code, at) = match waited {
                Ok(w) => {
                    let w = w.into_inner();
                    (w.exit_status as i32, w.exited_at_unix_nanos)
                }
                Err(e) if e.code() == tonic::Code::NotFound => (255, now_nanos()),
                // berth-containerd went away (this server stopping, say): the task runs on,
                // and the next start takes it up again.
                Err(_) => return,
            };
            let _ = tasks
                .delete(req(lower::DeleteTaskRequest {
                    container_id: id.clone(),
                }))
                .await;
            rt.outputs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            rt.stdins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(mut c) = rt.store.container(&id) {
                if c.state == State::Running {
                    c.state = State::Exited;
                    c.exit_code = code;
                    c.finished = if at > 0 { at } else { now_nanos() };
                    c.reason = if code == 0 { "Completed" } else { "Error" }.into();
                    let _ = rt.store.put_container(&c);
                }
            }
            rt.exited.notify_waiters();
        });
    }

    /// Stops a running container: its stop signal, then SIGKILL after `timeout` seconds;
    /// returns once its exit is recorded.
    pub async fn stop_task(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let Some(c) = self.store.container(id) else {
            return Err(Status::not_found(format!("container {id} not found")));
        };
        if c.state != State::Running {
            return Ok(());
        }
        let kill = |signal: u32| {
            let mut tasks = self.lower.tasks();
            let id = id.to_string();
            async move {
                let _ = tasks
                    .kill(req(lower::KillRequest {
                        container_id: id,
                        exec_id: String::new(),
                        signal,
                        all: false,
                    }))
                    .await;
            }
        };
        if timeout > 0 {
            kill(15).await;
            if self
                .wait_exit(id, Duration::from_secs(timeout as u64))
                .await
            {
                return Ok(());
            }
        }
        kill(9).await;
        if self.wait_exit(id, Duration::from_secs(30)).await {
            Ok(())
        } else {
            Err(Status::deadline_exceeded(format!(
                "container {id} did not stop"
            )))
        }
    }

    /// Waits up to `limit` for the container's exit to be recorded.
    async fn wait_exit(&self, id: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.exited.notified();
            if self
                .store
                .container(id)
                .is_none_or(|c| c.state != State::Running)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self
                    .store
                    .container(id)
                    .is_none_or(|c| c.state != State::Running);
            }
        }
    }

    /// Removes a container whatever its state: its task, containerd's record, its rootfs
    /// and FIFOs, its record.
    pub async fn destroy_container(&self, id: &str) -> Result<(), Status> {
        self.stop_task(id, 0).await?;
        let _ = self
            .lower
            .tasks()
            .delete(req(lower::DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await;
        let _ = self
            .lower
            .containers()
            .delete(req(lower::DeleteContainerRequest { id: id.to_string() }))
            .await;
        let dir = self.container_dir(id);
        berth_oci::rootfs::unmount(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(self.fifo_dir(id));
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.store.drop_container(id);
        Ok(())
    }

    /// Runs a command in a running container and collects its output (up to 16 MiB each)
    /// and exit code; past `timeout` seconds (if positive) it is killed.
    pub async fn exec_sync_in(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<v1::ExecSyncResponse, Status> {
        let collect = || {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            let all = tokio::spawn(async move {
                let mut all = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    if all.len() < 16 << 20 {
                        all.extend(chunk);
                    }
                }
                all
            });
            (tx, all)
        };
        let ((out_tx, out), (err_tx, err)) = (collect(), collect());
        let streams = crate::exec_stream::ExecStreams {
            stdout: Some(out_tx),
            stderr: Some(err_tx),
            timeout: (timeout > 0).then(|| Duration::from_secs(timeout as u64)),
            ..Default::default()
        };
        let code = self.exec_streaming(id, cmd, false, streams).await?;
        Ok(v1::ExecSyncResponse {
            stdout: out.await.unwrap_or_default(),
            stderr: err.await.unwrap_or_default(),
            exit_code: code as i32,
        })
    }

    /// The CRI's view of a container.
    pub fn container_view(&self, c: &Container) -> v1::Container {
        let config = c.config();
        v1::Container {
            id: c.id.clone(),
            pod_sandbox_id: c.pod.clone(),
            metadata: config.metadata.clone(),
            image: config.image.clone(),
            image_ref: c.image_id.clone(),
            state: state_of(c) as i32,
            created_at: c.created,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        }
    }

    /// `ContainerStatus` of a container.
    pub fn container_status_view(&self, c: &Container) -> v1::ContainerStatus {
        let config = c.config();
        v1::ContainerStatus {
            id: c.id.clone(),
            metadata: config.metadata.clone(),
            state: state_of(c) as i32,
            created_at: c.created,
            started_at: c.started,
            finished_at: c.finished,
            exit_code: c.exit_code,
            image: config.image.clone(),
            image_ref: c.image_id.clone(),
            reason: c.reason.clone(),
            message: String::new(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            mounts: config.mounts.clone(),
            log_path: c.log_path.clone(),
            resources: None,
        }
    }
}

fn state_of(c: &Container) -> v1::ContainerState {
    match c.state {
        State::Created => v1::ContainerState::ContainerCreated,
        State::Running => v1::ContainerState::ContainerRunning,
        State::Exited => v1::ContainerState::ContainerExited,
    }
}
