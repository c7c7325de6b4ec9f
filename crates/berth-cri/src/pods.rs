//! Pod sandboxes: a pinned network namespace (joined to the CNI network, hostPorts through
//! portmap) unless the pod uses the host's, pinned IPC and UTS namespaces (the UTS one named
//! by the pod's hostname), and, when the pod's containers share a PID namespace, a pause
//! container from `--sandbox-image` to hold it: no process otherwise. The pod's `hostname`,
//! `hosts` and `resolv.conf` (its DNS config, else the host's) are files its containers bind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tonic::Status;

use crate::runtime::Runtime;
use crate::store::{Pod, State, new_id, now_nanos};
use crate::v1;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Pins new IPC and UTS namespaces at `ipc` and `uts` (the UTS one named `hostname`), from a
/// short-lived thread that made them.
fn pin(ipc: Option<&Path>, uts: Option<(&Path, &str)>) -> std::io::Result<()> {
    use rustix::thread::UnshareFlags;
    let mut flags = UnshareFlags::empty();
    for (on, f, path) in [
        (ipc, UnshareFlags::NEWIPC, ipc),
        (uts.map(|u| u.0), UnshareFlags::NEWUTS, uts.map(|u| u.0)),
    ] {
        if on.is_some() {
            flags |= f;
            if let Some(p) = path {
                std::fs::File::create(p)?;
            }
        }
    }
    if flags.is_empty() {
        return Ok(());
    }
    std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<()> {
            let ctx = |what: &'static str| {
                move |e: rustix::io::Errno| std::io::Error::new(e.kind(), format!("{what}: {e}"))
            };
            // SAFETY: the IPC and UTS namespaces move only this short-lived thread, which
            // shares nothing that depends on them and exits right after this closure.
            unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(ctx("unshare"))?;
            if let Some((path, name)) = uts {
                if !name.is_empty() {
                    rustix::system::sethostname(name.as_bytes()).map_err(ctx("sethostname"))?;
                }
                rustix::mount::mount_bind("/proc/thread-self/ns/uts", path)
                    .map_err(ctx("pinning the UTS namespace"))?;
            }
            if let Some(path) = ipc {
                rustix::mount::mount_bind("/proc/thread-self/ns/ipc", path)
                    .map_err(ctx("pinning the IPC namespace"))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::ErrorKind::Other.into()))
    })
}

/// The namespace modes a pod asks for: (network, pid, ipc), each `POD` unless set.
fn modes(config: &v1::PodSandboxConfig) -> (i32, i32, i32) {
    let n = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    (n.network, n.pid, n.ipc)
}

const NODE: i32 = v1::NamespaceMode::Node as i32;
const POD: i32 = v1::NamespaceMode::Pod as i32;

/// The pod's `resolv.conf`: its DNS config where it has one, else the host's.
fn resolv_conf(dns: Option<&v1::DnsConfig>) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let Some(d) =
        dns.filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    else {
        return host;
    };
    let settings = berth_oci::rootfs::DnsSettings {
        servers: d.servers.clone(),
        search: d.searches.clone(),
        options: d.options.clone(),
    };
    berth_oci::rootfs::resolv_conf(&host, &settings, None)
}

impl Runtime {
    /// Where a pod's files and pinned namespaces live.
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.state.join("pods").join(id)
    }

    /// RunPodSandbox: everything made or nothing left.
    pub async fn run_pod(self: &Arc<Self>, config: v1::PodSandboxConfig) -> Result<String, Status> {
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("the sandbox config needs metadata"))?;
        let id = new_id();
        let dir = self.pod_dir(&id);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let (net, pid, ipc) = modes(&config);
        let host_net = net == NODE;
        let mut pod = Pod {
            id: id.clone(),
            config: prost::Message::encode_to_vec(&config),
            created: now_nanos(),
            ready: false,
            netns: (!host_net).then(|| dir.join("net")),
            ipc: (ipc != NODE).then(|| dir.join("ipc")),
            uts: (!host_net).then(|| dir.join("uts")),
            pause: None,
            pause_pid: 0,
            ips: Vec::new(),
            cni: None,
        };
        self.store.put_pod(&pod).map_err(internal)?;
        let made = self.make_pod(&mut pod, &config, &meta, pid == POD).await;
        if let Err(e) = made {
            let _ = self.remove_pod_all(&id).await;
            return Err(e);
        }
        pod.ready = true;
        self.store.put_pod(&pod).map_err(internal)?;
        Ok(id)
    }

    async fn make_pod(
        self: &Arc<Self>,
        pod: &mut Pod,
        config: &v1::PodSandboxConfig,
        meta: &v1::PodSandboxMetadata,
        shared_pid: bool,
    ) -> Result<(), Status> {
        let dir = self.pod_dir(&pod.id);
        // The host's name unless the pod gives one (kubelet always does), as containerd.
        let hostname = match (&pod.uts, config.hostname.as_str()) {
            (Some(_), h) if !h.is_empty() => h.to_string(),
            _ => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        if let Some(ns) = pod.netns.clone() {
            tokio::task::spawn_blocking(move || berth_net::netns::create(&ns))
                .await
                .map_err(internal)?
                .map_err(|e| internal(format!("creating the network namespace: {e}")))?;
        }
        let (ipc, uts, name) = (pod.ipc.clone(), pod.uts.clone(), hostname.clone());
        tokio::task::spawn_blocking(move || {
            pin(ipc.as_deref(), uts.as_deref().map(|u| (u, name.as_str())))
        })
        .await
        .map_err(internal)?
        .map_err(|e| internal(format!("making the pod's namespaces: {e}")))?;
        // The network and the pause process need nothing of each other: made at once.
        let snapshot = pod.clone();
        let network = async {
            match snapshot.netns.clone() {
                Some(ns) => self.cni_add(&snapshot, config, meta, &ns).await.map(Some),
                None => Ok(None),
            }
        };
        let pause = async {
            match shared_pid {
                true => self.start_pause(&snapshot).await.map(Some),
                false => Ok(None),
            }
        };
        let (network, pause) = tokio::join!(network, pause);
        if let Some((id, pid)) = pause? {
            (pod.pause, pod.pause_pid) = (Some(id), pid);
        }
        if let Some(result) = network? {
            pod.ips = crate::cni::ips(&result);
            pod.cni = Some(result.to_string());
        }
        self.store.put_pod(pod).map_err(internal)?;
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for ip in &pod.ips {
            hosts.push_str(&format!("{ip}\t{hostname}\n"));
        }
        if pod.netns.is_none() {
            hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
        }
        for (name, text) in [
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts),
            ("resolv.conf", resolv_conf(config.dns_config.as_ref())),
        ] {
            std::fs::write(dir.join(name), text).map_err(internal)?;
        }
        Ok(())
    }

    /// Adds the pod to the CNI network, with its hostPort mappings.
    async fn cni_add(
        &self,
        pod: &Pod,
        config: &v1::PodSandboxConfig,
        meta: &v1::PodSandboxMetadata,
        ns: &Path,
    ) -> Result<serde_json::Value, Status> {
        let ports: Vec<serde_json::Value> = config
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                let proto = match v1::Protocol::try_from(p.protocol) {
                    Ok(v1::Protocol::Udp) => "udp",
                    Ok(v1::Protocol::Sctp) => "sctp",
                    _ => "tcp",
                };
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": proto, "hostIP": p.host_ip})
            })
            .collect();
        let (cni, id, ns) = (self.cni.clone(), pod.id.clone(), ns.to_path_buf());
        let (namespace, name) = (meta.namespace.clone(), meta.name.clone());
        tokio::task::spawn_blocking(move || {
            let call = crate::cni::Call {
                sandbox: &id,
                netns: &ns,
                pod: (&namespace, &name),
                ports: json!(ports),
            };
            cni.add(&call)
        })
        .await
        .map_err(internal)?
        .map_err(|e| Status::internal(format!("setting up the pod's network: {e}")))
    }

    /// Takes the pod off the CNI network (fine when it never was on it).
    async fn cni_del(&self, pod: &Pod) {
        let (Some(ns), Some(result)) = (pod.netns.clone(), pod.cni.clone()) else {
            return;
        };
        let config = pod.config();
        let meta = config.metadata.clone().unwrap_or_default();
        let ports: Vec<serde_json::Value> = config
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                            "protocol": "tcp", "hostIP": p.host_ip})
            })
            .collect();
        let (cni, id) = (self.cni.clone(), pod.id.clone());
        let done = tokio::task::spawn_blocking(move || {
            let call = crate::cni::Call {
                sandbox: &id,
                netns: &ns,
                pod: (&meta.namespace, &meta.name),
                ports: json!(ports),
            };
            let prev: serde_json::Value = serde_json::from_str(&result).unwrap_or_default();
            cni.del(&call, Some(&prev))
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(pod = pod.id, error = e, "removing the pod from its network");
        }
    }

    /// The pause container that holds the pod's PID namespace: its container id and pid.
    async fn start_pause(self: &Arc<Self>, pod: &Pod) -> Result<(String, u32), Status> {
        let image = self.sandbox_image.clone();
        if self.images.store.images.resolve(&image).is_err() {
            self.images.pull(&image, None).await?;
        }
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: "POD".into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image,
                ..Default::default()
            }),
            linux: Some(v1::LinuxContainerConfig {
                resources: Some(v1::LinuxContainerResources {
                    oom_score_adj: -998,
                    ..Default::default()
                }),
                security_context: Some(v1::LinuxContainerSecurityContext {
                    namespace_options: Some(v1::NamespaceOption {
                        pid: v1::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let c = self.make_container(pod, config, true).await?;
        self.start_container_task(&c.id).await?;
        let pid = self.store.container(&c.id).map_or(0, |c| c.pid);
        Ok((c.id, pid))
    }

    /// StopPodSandbox: its containers stopped, its network taken down; idempotent.
    pub async fn stop_pod(&self, id: &str) -> Result<(), Status> {
        let Some(mut pod) = self.store.find_pod(id) else {
            return Ok(()); // already gone, as the CRI allows
        };
        for c in self
            .store
            .containers()
            .into_iter()
            .filter(|c| c.pod == pod.id)
        {
            self.stop_task(&c.id, 0).await?;
        }
        self.cni_del(&pod).await;
        pod.cni = None;
        pod.ready = false;
        self.store.put_pod(&pod).map_err(internal)?;
        Ok(())
    }

    /// RemovePodSandbox: everything of the pod gone, its containers too; idempotent.
    pub async fn remove_pod_all(&self, id: &str) -> Result<(), Status> {
        let Some(pod) = self.store.find_pod(id) else {
            return Ok(());
        };
        for c in self
            .store
            .containers()
            .into_iter()
            .filter(|c| c.pod == pod.id)
        {
            self.destroy_container(&c.id).await?;
        }
        self.cni_del(&pod).await;
        let dir = self.pod_dir(&pod.id);
        for ns in [&pod.netns, &pod.ipc, &pod.uts].into_iter().flatten() {
            let _ = berth_net::netns::remove(ns);
        }
        let _ = std::fs::remove_dir_all(&dir);
        self.store.drop_pod(&pod.id);
        Ok(())
    }

    /// The CRI's view of a pod.
    pub fn pod_view(&self, p: &Pod) -> v1::PodSandbox {
        let config = p.config();
        v1::PodSandbox {
            id: p.id.clone(),
            metadata: config.metadata.clone(),
            state: pod_state(p) as i32,
            created_at: p.created,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: String::new(),
        }
    }

    /// `PodSandboxStatus` of a pod.
    pub fn pod_status_view(&self, p: &Pod) -> v1::PodSandboxStatus {
        let config = p.config();
        let (net, pid, ipc) = modes(&config);
        let mut ips = p.ips.iter();
        v1::PodSandboxStatus {
            id: p.id.clone(),
            metadata: config.metadata.clone(),
            state: pod_state(p) as i32,
            created_at: p.created,
            network: Some(v1::PodSandboxNetworkStatus {
                ip: ips.next().cloned().unwrap_or_default(),
                additional_ips: ips.map(|ip| v1::PodIp { ip: ip.clone() }).collect(),
            }),
            linux: Some(v1::LinuxPodSandboxStatus {
                namespaces: Some(v1::Namespace {
                    options: Some(v1::NamespaceOption {
                        network: net,
                        pid,
                        ipc,
                        ..Default::default()
                    }),
                }),
            }),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: String::new(),
        }
    }

    /// Whether a container of the pod is running.
    pub fn pod_running(&self, id: &str) -> bool {
        self.store
            .containers()
            .iter()
            .any(|c| c.pod == id && c.state == State::Running)
    }
}

fn pod_state(p: &Pod) -> v1::PodSandboxState {
    match p.ready {
        true => v1::PodSandboxState::SandboxReady,
        false => v1::PodSandboxState::SandboxNotready,
    }
}
