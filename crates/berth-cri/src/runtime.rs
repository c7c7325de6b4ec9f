//! CRI's RuntimeService: pods (`pods.rs`) and containers (`containers.rs`) over
//! berth-containerd, their status, lists and filters, `ExecSync`, stats from the tasks'
//! metrics (a pod's the sum of its containers'), log reopening, and the URLs of Exec, Attach
//! and PortForward on the streaming server. Not built yet, and answered `UNIMPLEMENTED` so a
//! kubelet or crictl sees plainly what is missing: events, checkpoints and metric descriptors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tonic::{Request, Response, Status};

use crate::cni::Cni;
use crate::images::Images;
use crate::logs::Log;
use crate::lower::{Lower, req};
use crate::store::{State, Store};
use crate::v1;
use crate::v1::runtime_service_server::RuntimeService;

/// The runtime's name and version, as `crictl version` shows them.
pub const RUNTIME_NAME: &str = "berth";

/// Everything the runtime service works with.
pub struct Runtime {
    pub store: Store,
    pub lower: Lower,
    pub images: Images,
    pub cni: Cni,
    /// `--root` and `--state`.
    pub root: PathBuf,
    pub state: PathBuf,
    pub sandbox_image: String,
    /// Where containers' cgroups go when their pod names no parent.
    pub cgroup_parent: String,
    /// The logs of running containers, for `ReopenContainerLog`.
    pub logs: Mutex<HashMap<String, Log>>,
    /// Woken at every recorded exit.
    pub exited: tokio::sync::Notify,
    /// The streaming server's URLs (Exec, Attach, PortForward).
    pub streaming: crate::streaming::Streaming,
    /// Running containers' output, for attached clients.
    pub outputs: Mutex<HashMap<String, crate::attach::Output>>,
    /// The write end of running containers' stdin (those whose config asks for one).
    pub stdins: Mutex<HashMap<String, std::fs::File>>,
}

impl Runtime {
    /// Takes up again what an earlier berth-cri left running: each running container's output
    /// and exit; one whose task is gone is recorded as exited.
    pub async fn recover(self: &Arc<Self>) {
        for mut c in self.store.containers() {
            if c.state != State::Running {
                continue;
            }
            let alive = self
                .lower
                .tasks()
                .get(req(berth_proto::v1::GetRequest {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                }))
                .await
                .is_ok_and(|t| t.into_inner().process.is_some_and(|p| p.status == 2));
            if alive {
                let fifos = self.fifo_dir(&c.id);
                let tty = c.config().tty;
                let err = fifos.join("stderr");
                let _ =
                    self.pump_output(&c, &fifos.join("stdout"), (!tty).then_some(err.as_path()));
                self.watch(&c.id);
            } else {
                c.state = State::Exited;
                c.exit_code = 255;
                c.finished = crate::store::now_nanos();
                c.reason = "Unknown".into();
                let _ = self.store.put_container(&c);
            }
        }
    }
}

/// The service tonic serves.
#[derive(Clone)]
pub struct Service(pub Arc<Runtime>);

/// Methods not built yet: each answers `UNIMPLEMENTED` with its name. Written in the form
/// `async_trait` gives the trait's methods (it does not see into a macro's output).
macro_rules! not_yet {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _req: Request<v1::$req>,
            ) -> Pin<Box<dyn std::future::Future<Output = Result<Response<v1::$resp>, Status>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    Err(Status::unimplemented(concat!(
                        stringify!($name),
                        " is not implemented by berth-cri yet"
                    )))
                })
            }
        )*
    };
}

type Events =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::ContainerEventResponse, Status>> + Send>>;

fn labels_match(want: &HashMap<String, String>, have: &HashMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl Service {
    fn ready_pod(&self, id: &str) -> Result<crate::store::Pod, Status> {
        self.0
            .store
            .find_pod(id)
            .filter(|p| p.ready)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {id:?} is not ready")))
    }

    fn container(&self, id: &str) -> Result<crate::store::Container, Status> {
        self.0
            .store
            .find_container(id)
            .filter(|c| !c.sandbox)
            .ok_or_else(|| Status::not_found(format!("container {id:?} not found")))
    }
}

fn ok<T>(t: T) -> Result<Response<T>, Status> {
    Ok(Response::new(t))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(
        &self,
        _req: Request<v1::VersionRequest>,
    ) -> Result<Response<v1::VersionResponse>, Status> {
        ok(v1::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(
        &self,
        _req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let condition =
            |kind: &str, ready: bool, reason: &str, message: &str| v1::RuntimeCondition {
                r#type: kind.into(),
                status: ready,
                reason: reason.into(),
                message: message.into(),
            };
        let net = match self.0.cni.ready() {
            Ok(()) => condition("NetworkReady", true, "", ""),
            Err(e) => condition("NetworkReady", false, "NetworkPluginNotReady", &e),
        };
        ok(v1::StatusResponse {
            status: Some(v1::RuntimeStatus {
                conditions: vec![condition("RuntimeReady", true, "", ""), net],
            }),
            info: Default::default(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<v1::RunPodSandboxRequest>,
    ) -> Result<Response<v1::RunPodSandboxResponse>, Status> {
        let config = req.into_inner().config.unwrap_or_default();
        let id = self.0.run_pod(config).await?;
        ok(v1::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<v1::StopPodSandboxRequest>,
    ) -> Result<Response<v1::StopPodSandboxResponse>, Status> {
        self.0.stop_pod(&req.into_inner().pod_sandbox_id).await?;
        ok(v1::StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<v1::RemovePodSandboxRequest>,
    ) -> Result<Response<v1::RemovePodSandboxResponse>, Status> {
        self.0
            .remove_pod_all(&req.into_inner().pod_sandbox_id)
            .await?;
        ok(v1::RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<v1::PodSandboxStatusRequest>,
    ) -> Result<Response<v1::PodSandboxStatusResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let pod = self
            .0
            .store
            .find_pod(&id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {id:?} not found")))?;
        ok(v1::PodSandboxStatusResponse {
            status: Some(self.0.pod_status_view(&pod)),
            ..Default::default()
        })
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<v1::ListPodSandboxRequest>,
    ) -> Result<Response<v1::ListPodSandboxResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let items = self
            .0
            .store
            .pods()
            .iter()
            .map(|p| self.0.pod_view(p))
            .filter(|p| f.id.is_empty() || p.id.starts_with(&f.id))
            .filter(|p| f.state.as_ref().is_none_or(|s| s.state == p.state))
            .filter(|p| labels_match(&f.label_selector, &p.labels))
            .collect();
        ok(v1::ListPodSandboxResponse { items })
    }

    async fn create_container(
        &self,
        req: Request<v1::CreateContainerRequest>,
    ) -> Result<Response<v1::CreateContainerResponse>, Status> {
        let r = req.into_inner();
        let pod = self.ready_pod(&r.pod_sandbox_id)?;
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("no container config"))?;
        if config.metadata.is_none() {
            return Err(Status::invalid_argument(
                "the container config needs metadata",
            ));
        }
        let c = self.0.make_container(&pod, config, false).await?;
        ok(v1::CreateContainerResponse { container_id: c.id })
    }

    async fn start_container(
        &self,
        req: Request<v1::StartContainerRequest>,
    ) -> Result<Response<v1::StartContainerResponse>, Status> {
        let c = self.container(&req.into_inner().container_id)?;
        self.0.start_container_task(&c.id).await?;
        ok(v1::StartContainerResponse {})
    }

    async fn stop_container(
        &self,
        req: Request<v1::StopContainerRequest>,
    ) -> Result<Response<v1::StopContainerResponse>, Status> {
        let r = req.into_inner();
        let c = self.container(&r.container_id)?;
        self.0.stop_task(&c.id, r.timeout).await?;
        ok(v1::StopContainerResponse {})
    }

    async fn remove_container(
        &self,
        req: Request<v1::RemoveContainerRequest>,
    ) -> Result<Response<v1::RemoveContainerResponse>, Status> {
        // Removing a container that is not here succeeds, as the CRI asks.
        if let Ok(c) = self.container(&req.into_inner().container_id) {
            self.0.destroy_container(&c.id).await?;
        }
        ok(v1::RemoveContainerResponse {})
    }

    async fn list_containers(
        &self,
        req: Request<v1::ListContainersRequest>,
    ) -> Result<Response<v1::ListContainersResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let containers = self
            .0
            .store
            .containers()
            .iter()
            .filter(|c| !c.sandbox)
            .map(|c| self.0.container_view(c))
            .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
            .filter(|c| {
                f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id)
            })
            .filter(|c| f.state.as_ref().is_none_or(|s| s.state == c.state))
            .filter(|c| labels_match(&f.label_selector, &c.labels))
            .collect();
        ok(v1::ListContainersResponse { containers })
    }

    async fn container_status(
        &self,
        req: Request<v1::ContainerStatusRequest>,
    ) -> Result<Response<v1::ContainerStatusResponse>, Status> {
        let c = self.container(&req.into_inner().container_id)?;
        ok(v1::ContainerStatusResponse {
            status: Some(self.0.container_status_view(&c)),
            info: Default::default(),
        })
    }

    async fn update_container_resources(
        &self,
        request: Request<v1::UpdateContainerResourcesRequest>,
    ) -> Result<Response<v1::UpdateContainerResourcesResponse>, Status> {
        let r = request.into_inner();
        let c = self.container(&r.container_id)?;
        if c.state == State::Running {
            let res = crate::spec::resources(r.linux.as_ref());
            let resources =
                serde_json::to_vec(&res).map_err(|e| Status::internal(e.to_string()))?;
            self.0
                .lower
                .tasks()
                .update(req(berth_proto::v1::UpdateTaskRequest {
                    container_id: c.id.clone(),
                    resources,
                }))
                .await?;
        }
        ok(v1::UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(
        &self,
        req: Request<v1::ReopenContainerLogRequest>,
    ) -> Result<Response<v1::ReopenContainerLogResponse>, Status> {
        let c = self.container(&req.into_inner().container_id)?;
        if c.state != State::Running {
            return Err(Status::failed_precondition("the container is not running"));
        }
        let log = self
            .0
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&c.id)
            .cloned();
        if let Some(l) = log {
            l.reopen()
                .map_err(|e| Status::internal(format!("reopening the log: {e}")))?;
        }
        ok(v1::ReopenContainerLogResponse {})
    }

    async fn exec_sync(
        &self,
        req: Request<v1::ExecSyncRequest>,
    ) -> Result<Response<v1::ExecSyncResponse>, Status> {
        let r = req.into_inner();
        let c = self.container(&r.container_id)?;
        ok(self.0.exec_sync_in(&c.id, r.cmd, r.timeout).await?)
    }

    async fn container_stats(
        &self,
        req: Request<v1::ContainerStatsRequest>,
    ) -> Result<Response<v1::ContainerStatsResponse>, Status> {
        let c = self.container(&req.into_inner().container_id)?;
        let stats = self.0.stats(&[c]).await.pop();
        ok(v1::ContainerStatsResponse { stats })
    }

    async fn list_container_stats(
        &self,
        req: Request<v1::ListContainerStatsRequest>,
    ) -> Result<Response<v1::ListContainerStatsResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let chosen: Vec<_> = self
            .0
            .store
            .containers()
            .into_iter()
            .filter(|c| !c.sandbox)
            .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.pod.starts_with(&f.pod_sandbox_id))
            .filter(|c| labels_match(&f.label_selector, &c.config().labels))
            .collect();
        ok(v1::ListContainerStatsResponse {
            stats: self.0.stats(&chosen).await,
        })
    }

    async fn update_runtime_config(
        &self,
        _req: Request<v1::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<v1::UpdateRuntimeConfigResponse>, Status> {
        // The pod CIDR kubelet hands down is the CNI config's business here.
        ok(v1::UpdateRuntimeConfigResponse {})
    }

    type GetContainerEventsStream = Events;

    async fn get_container_events(
        &self,
        _req: Request<v1::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        Err(Status::unimplemented(
            "get_container_events is not implemented by berth-cri yet",
        ))
    }

    async fn exec(
        &self,
        req: Request<v1::ExecRequest>,
    ) -> Result<Response<v1::ExecResponse>, Status> {
        let r = req.into_inner();
        let c = self.container(&r.container_id)?;
        if c.state != State::Running {
            return Err(Status::failed_precondition("the container is not running"));
        }
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("no command given"));
        }
        if !(r.stdin || r.stdout || r.stderr) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout, or stderr must be set",
            ));
        }
        let r = v1::ExecRequest {
            container_id: c.id,
            ..r
        };
        let url = self
            .0
            .streaming
            .url("exec", crate::streaming::Call::Exec(r));
        ok(v1::ExecResponse { url })
    }

    async fn port_forward(
        &self,
        req: Request<v1::PortForwardRequest>,
    ) -> Result<Response<v1::PortForwardResponse>, Status> {
        let r = req.into_inner();
        let pod = self.ready_pod(&r.pod_sandbox_id)?;
        let r = v1::PortForwardRequest {
            pod_sandbox_id: pod.id,
            ..r
        };
        let url = self
            .0
            .streaming
            .url("portforward", crate::streaming::Call::PortForward(r));
        ok(v1::PortForwardResponse { url })
    }

    async fn attach(
        &self,
        req: Request<v1::AttachRequest>,
    ) -> Result<Response<v1::AttachResponse>, Status> {
        let r = req.into_inner();
        let c = self.container(&r.container_id)?;
        if c.state != State::Running {
            return Err(Status::failed_precondition("the container is not running"));
        }
        if !(r.stdin || r.stdout || r.stderr) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout, or stderr must be set",
            ));
        }
        let r = v1::AttachRequest {
            container_id: c.id,
            ..r
        };
        let url = self
            .0
            .streaming
            .url("attach", crate::streaming::Call::Attach(r));
        ok(v1::AttachResponse { url })
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<v1::PodSandboxStatsRequest>,
    ) -> Result<Response<v1::PodSandboxStatsResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let pod = self
            .0
            .store
            .find_pod(&id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {id:?} not found")))?;
        ok(v1::PodSandboxStatsResponse {
            stats: Some(self.0.pod_stats(&pod).await),
        })
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<v1::ListPodSandboxStatsRequest>,
    ) -> Result<Response<v1::ListPodSandboxStatsResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let mut stats = Vec::new();
        for p in self.0.store.pods() {
            let config = p.config();
            if (f.id.is_empty() || p.id.starts_with(&f.id))
                && labels_match(&f.label_selector, &config.labels)
            {
                stats.push(self.0.pod_stats(&p).await);
            }
        }
        ok(v1::ListPodSandboxStatsResponse { stats })
    }

    not_yet! {
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse;
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse;
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse;
    }
}

impl Runtime {
    /// The stats of `containers`: CPU and memory from their tasks' metrics (zero for one that
    /// is not running), the writable layer's use.
    pub async fn stats(&self, containers: &[crate::store::Container]) -> Vec<v1::ContainerStats> {
        let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
        let metrics = self
            .lower
            .tasks()
            .metrics(req(berth_proto::v1::MetricsRequest { container_ids: ids }))
            .await
            .map(|m| m.into_inner().metrics)
            .unwrap_or_default();
        let now = crate::store::now_nanos();
        containers
            .iter()
            .map(|c| {
                let m = metrics.iter().find(|m| m.id == c.id);
                let config = c.config();
                let upper = self.container_dir(&c.id).join("upper");
                v1::ContainerStats {
                    attributes: Some(v1::ContainerAttributes {
                        id: c.id.clone(),
                        metadata: config.metadata.clone(),
                        labels: config.labels.clone(),
                        annotations: config.annotations.clone(),
                    }),
                    cpu: Some(v1::CpuUsage {
                        timestamp: now,
                        usage_core_nano_seconds: Some(v1::UInt64Value {
                            value: m.map_or(0, |m| m.cpu_usage_nanos),
                        }),
                        usage_nano_cores: None,
                    }),
                    memory: Some(v1::MemoryUsage {
                        timestamp: now,
                        working_set_bytes: Some(v1::UInt64Value {
                            value: m.map_or(0, |m| {
                                m.memory_usage_bytes
                                    .saturating_sub(m.memory_inactive_file_bytes)
                            }),
                        }),
                        usage_bytes: Some(v1::UInt64Value {
                            value: m.map_or(0, |m| m.memory_usage_bytes),
                        }),
                        ..Default::default()
                    }),
                    writable_layer: Some(v1::FilesystemUsage {
                        timestamp: now,
                        fs_id: Some(v1::FilesystemIdentifier {
                            mountpoint: upper.display().to_string(),
                        }),
                        used_bytes: Some(v1::UInt64Value {
                            value: dir_size(&upper),
                        }),
                        inodes_used: None,
                    }),
                }
            })
            .collect()
    }
}

impl Runtime {
    /// A pod's stats: its containers' (the pause process left out), and their sums.
    pub async fn pod_stats(&self, pod: &crate::store::Pod) -> v1::PodSandboxStats {
        let config = pod.config();
        let mine: Vec<_> = self
            .store
            .containers()
            .into_iter()
            .filter(|c| c.pod == pod.id && !c.sandbox)
            .collect();
        let containers = self.stats(&mine).await;
        let now = crate::store::now_nanos();
        let sum = |f: &dyn Fn(&v1::ContainerStats) -> Option<u64>| -> u64 {
            containers.iter().filter_map(f).sum()
        };
        let cpu = sum(&|c| Some(c.cpu.as_ref()?.usage_core_nano_seconds.as_ref()?.value));
        let working = sum(&|c| Some(c.memory.as_ref()?.working_set_bytes.as_ref()?.value));
        let usage = sum(&|c| Some(c.memory.as_ref()?.usage_bytes.as_ref()?.value));
        v1::PodSandboxStats {
            attributes: Some(v1::PodSandboxAttributes {
                id: pod.id.clone(),
                metadata: config.metadata.clone(),
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
            }),
            linux: Some(v1::LinuxPodSandboxStats {
                cpu: Some(v1::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: Some(v1::UInt64Value { value: cpu }),
                    usage_nano_cores: None,
                }),
                memory: Some(v1::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: Some(v1::UInt64Value { value: working }),
                    usage_bytes: Some(v1::UInt64Value { value: usage }),
                    ..Default::default()
                }),
                network: None,
                process: None,
                containers,
            }),
            windows: None,
        }
    }
}

/// Bytes of the regular files under `dir` (not following links).
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}
