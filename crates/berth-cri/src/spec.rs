//! A CRI container's OCI runtime spec: the image's defaults under the container config
//! (command, environment, working directory, user), the pod's namespaces (its pinned network,
//! IPC and UTS namespaces, its pause process's PID namespace, or the host's), the pod's
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, the config's mounts, and the
//! security context (user and groups, capabilities, privileged, read-only root,
//! no-new-privileges, seccomp, masked and read-only paths) and resources.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, LinuxSeccomp, Mount, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use tonic::Status;

use crate::v1;

/// What an image says about running it.
#[derive(Debug, Default, Clone)]
pub struct ImageDefaults {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: String,
    pub user: String,
}

impl ImageDefaults {
    /// From an image config's JSON.
    pub fn of(raw: &serde_json::Value) -> ImageDefaults {
        let c = &raw["config"];
        let list = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        ImageDefaults {
            env: list(&c["Env"]),
            entrypoint: list(&c["Entrypoint"]),
            cmd: list(&c["Cmd"]),
            workdir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
            user: c["User"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// Where the pod's namespaces are: a path to join, or None for the host's.
#[derive(Debug, Default, Clone)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod's shared PID namespace (its pause process's).
    pub pid: Option<PathBuf>,
    pub host_pid: bool,
}

/// Everything a container's spec is made from.
pub struct Input<'a> {
    pub id: &'a str,
    pub config: &'a v1::ContainerConfig,
    pub pod: &'a v1::PodSandboxConfig,
    pub image: &'a ImageDefaults,
    pub rootfs: &'a Path,
    /// The pod's `hosts`, `resolv.conf` and `hostname` files.
    pub etc: &'a Path,
    pub ns: PodNamespaces,
    /// The cgroup parent of containers whose pod names none (`--cgroup-parent`).
    pub cgroup_parent: &'a str,
}

fn invalid(m: impl std::fmt::Display) -> Status {
    Status::invalid_argument(m.to_string())
}

/// The process' arguments, as kubelet's rules have it: the command replaces the entrypoint
/// (and then the image's cmd is not used), the args replace the cmd.
pub fn arguments(config: &v1::ContainerConfig, image: &ImageDefaults) -> Vec<String> {
    let mut out = match config.command.is_empty() {
        true => image.entrypoint.clone(),
        false => config.command.clone(),
    };
    match (config.args.is_empty(), config.command.is_empty()) {
        (false, _) => out.extend(config.args.iter().cloned()),
        (true, true) => out.extend(image.cmd.iter().cloned()),
        (true, false) => {}
    }
    out
}

/// The environment: the image's, then the config's (a later name replaces an earlier one).
fn environment(config: &v1::ContainerConfig, image: &ImageDefaults, hostname: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        out.retain(|e| e.split('=').next() != Some(key.as_str()));
        out.push(kv);
    };
    set(format!("PATH={}", berth_oci::defaults::PATH));
    for e in &image.env {
        set(e.clone());
    }
    if !hostname.is_empty() {
        set(format!("HOSTNAME={hostname}"));
    }
    for kv in &config.envs {
        set(format!("{}={}", kv.key, kv.value));
    }
    out
}

/// The capabilities of a non-privileged container: Docker's defaults, the config's added
/// (`ALL`: every one this runtime holds) and dropped (`ALL`: none but the added).
fn capabilities(c: Option<&v1::Capability>) -> Result<Vec<String>, Status> {
    let name = |n: &String| {
        let n = n.to_uppercase();
        let bare = n.strip_prefix("CAP_").unwrap_or(&n).to_string();
        match bare.as_str() {
            "ALL" => Ok(bare),
            _ if berth_oci::caps::known(&bare) => Ok(format!("CAP_{bare}")),
            _ => Err(invalid(format!("unknown capability {n}"))),
        }
    };
    let list = |l: Option<&Vec<String>>| -> Result<Vec<String>, Status> {
        l.into_iter().flatten().map(name).collect()
    };
    let add = list(c.map(|c| &c.add_capabilities))?;
    let drop = list(c.map(|c| &c.drop_capabilities))?;
    let all = |l: &[String]| l.iter().any(|x| x == "ALL");
    let base = match () {
        _ if all(&add) => berth_oci::caps::host(),
        _ if all(&drop) => Vec::new(),
        _ => berth_oci::caps::words(berth_oci::caps::DEFAULT, "CAP_"),
    };
    let mut out: Vec<String> = base
        .into_iter()
        .filter(|c| !drop.contains(c))
        .chain(add.into_iter().filter(|c| c != "ALL"))
        .collect();
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    Ok(out)
}

fn cap_set(caps: &[String]) -> Result<LinuxCapabilities, Status> {
    let set: std::collections::HashSet<oci_spec::runtime::Capability> = caps
        .iter()
        .map(|c| {
            serde_json::from_value(serde_json::Value::String(c.clone()))
                .map_err(|_| invalid(format!("unknown capability {c}")))
        })
        .collect::<Result<_, _>>()?;
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(None)
        .set_ambient(None);
    Ok(lc)
}

/// The seccomp profile: none when privileged or unconfined (the CRI's default), Berth's
/// default for `RuntimeDefault` (`runtime/default`, `docker/default`), a Docker-format file for
/// `Localhost` (`localhost/<path>`).
fn seccomp(
    sc: Option<&v1::LinuxContainerSecurityContext>,
    caps: &[String],
) -> Result<Option<LinuxSeccomp>, Status> {
    use v1::security_profile::ProfileType;
    let Some(sc) = sc else { return Ok(None) };
    if sc.privileged {
        return Ok(None);
    }
    let (kind, local) = match &sc.seccomp {
        Some(p) => match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => ("default", String::new()),
            Ok(ProfileType::Unconfined) => ("", String::new()),
            Ok(ProfileType::Localhost) => ("localhost", p.localhost_ref.clone()),
            Err(_) => return Err(invalid("unknown seccomp profile type")),
        },
        // The deprecated field, which kubelets before 1.25 and critest 1.26 still send.
        #[allow(deprecated)]
        None => match sc.seccomp_profile_path.as_str() {
            "" | "unconfined" => ("", String::new()),
            "runtime/default" | "docker/default" => ("default", String::new()),
            p => match p.strip_prefix("localhost/") {
                Some(path) => ("localhost", path.to_string()),
                None => return Err(invalid(format!("unknown seccomp profile option: {p:?}"))),
            },
        },
    };
    match kind {
        "default" => berth_oci::seccomp::default_profile(caps)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string())),
        "localhost" => {
            let text = std::fs::read_to_string(&local)
                .map_err(|e| invalid(format!("reading seccomp profile {local}: {e}")))?;
            berth_oci::seccomp::from_docker(&text, caps)
                .map(Some)
                .map_err(|e| invalid(format!("seccomp profile {local}: {e}")))
        }
        _ => Ok(None),
    }
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into())
        .set_typ(Some(kind.into()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// The default mounts, the pod's files, then the config's binds (shallowest first).
fn mounts(i: &Input<'_>, privileged: bool, host_ipc: bool) -> Result<Vec<Mount>, Status> {
    use v1::MountPropagation;
    let mut user = Vec::new();
    for m in &i.config.mounts {
        if !Path::new(&m.container_path).is_absolute() {
            return Err(invalid(format!(
                "mount path {:?} is not absolute",
                m.container_path
            )));
        }
        let host = std::fs::canonicalize(&m.host_path)
            .map_err(|e| invalid(format!("mount source {}: {e}", m.host_path)))?;
        let prop = match MountPropagation::try_from(m.propagation) {
            Ok(MountPropagation::PropagationBidirectional) => "rshared",
            Ok(MountPropagation::PropagationHostToContainer) => "rslave",
            _ => "rprivate",
        };
        let rw = if m.readonly { "ro" } else { "rw" };
        let host = host.display().to_string();
        user.push(mount(
            &m.container_path,
            "bind",
            &host,
            &["rbind", prop, rw],
        ));
    }
    let dests: std::collections::HashSet<String> = user
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    let mut out = Vec::new();
    for line in berth_oci::defaults::MOUNTS
        .lines()
        .map(str::split_whitespace)
    {
        let [target, kind, source, options] = line.collect::<Vec<_>>()[..] else {
            continue;
        };
        if dests.contains(target) || (target == "/dev/shm" && host_ipc) {
            continue;
        }
        let mut options: Vec<&str> = options.split(',').collect();
        if privileged && (target == "/sys" || kind == "cgroup") {
            options.retain(|o| *o != "ro");
        }
        if target == "/dev/shm" {
            options.push("size=65536k");
        }
        out.push(mount(target, kind, source, &options));
    }
    if host_ipc {
        out.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "rprivate", "rw"],
        ));
    }
    for name in ["hosts", "resolv.conf", "hostname"] {
        let dest = format!("/etc/{name}");
        let src = i.etc.join(name);
        if !dests.contains(&dest) && src.exists() {
            let src = src.display().to_string();
            out.push(mount(&dest, "bind", &src, &["rbind", "rprivate", "rw"]));
        }
    }
    user.sort_by_key(|m| m.destination().components().count());
    out.extend(user);
    Ok(out)
}

fn namespace(kind: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(kind).set_path(path.map(Path::to_path_buf));
    n
}

/// The container's user: the security context's uid (and gid), or its user name, or the
/// image's user; its groups from the image's `/etc/group` and the supplemental groups.
fn user(
    i: &Input<'_>,
    sc: Option<&v1::LinuxContainerSecurityContext>,
) -> Result<oci_spec::runtime::User, Status> {
    let uid = sc.and_then(|s| s.run_as_user.as_ref()).map(|u| u.value);
    let gid = sc.and_then(|s| s.run_as_group.as_ref()).map(|g| g.value);
    let name = sc.map(|s| s.run_as_username.clone()).unwrap_or_default();
    if gid.is_some() && uid.is_none() && name.is_empty() {
        return Err(invalid("user group is specified without user"));
    }
    let who = match (uid, name.is_empty()) {
        (Some(u), _) => u.to_string(),
        (None, false) => name,
        (None, true) => i.image.user.clone(),
    };
    let who = match gid {
        Some(g) => format!("{}:{g}", who.split(':').next().unwrap_or_default()),
        None if uid.is_some() => who,
        None => who,
    };
    let extra: Vec<String> = sc
        .map(|s| {
            s.supplemental_groups
                .iter()
                .map(|g| g.to_string())
                .collect()
        })
        .unwrap_or_default();
    let (uid, gid, gids) =
        berth_oci::users::resolve(i.rootfs, &who, &extra).map_err(|e| invalid(e.to_string()))?;
    UserBuilder::default()
        .uid(uid)
        .gid(gid)
        .additional_gids(gids)
        .build()
        .map_err(|e| Status::internal(e.to_string()))
}

/// This process' own `oom_score_adj`: without CAP_SYS_RESOURCE a container cannot go below it.
fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether this process may lower `oom_score_adj` (holds CAP_SYS_RESOURCE).
fn can_lower_oom() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:"));
    u64::from_str_radix(eff.unwrap_or_default().trim(), 16).is_ok_and(|c| c & (1 << 24) != 0)
}

/// The `oom_score_adj` to ask for: the config's, clamped to what this host allows.
pub fn oom_score_adj(asked: i64) -> i32 {
    let floor = if can_lower_oom() {
        -1000
    } else {
        own_oom_score_adj()
    };
    asked.clamp(floor, 1000) as i32
}

/// The cgroup limits of a container's resources.
pub fn resources(r: Option<&v1::LinuxContainerResources>) -> LinuxResources {
    let mut res = LinuxResources::default();
    let Some(r) = r else { return res };
    let mut cpu = LinuxCpu::default();
    cpu.set_shares((r.cpu_shares > 0).then_some(r.cpu_shares as u64))
        .set_quota((r.cpu_quota > 0).then_some(r.cpu_quota))
        .set_period((r.cpu_period > 0).then_some(r.cpu_period as u64))
        .set_cpus(Some(r.cpuset_cpus.clone()).filter(|s| !s.is_empty()))
        .set_mems(Some(r.cpuset_mems.clone()).filter(|s| !s.is_empty()));
    let mut mem = LinuxMemory::default();
    mem.set_limit((r.memory_limit_in_bytes > 0).then_some(r.memory_limit_in_bytes))
        .set_swap((r.memory_swap_limit_in_bytes > 0).then_some(r.memory_swap_limit_in_bytes));
    res.set_cpu(Some(cpu)).set_memory(Some(mem));
    res
}

/// The root's propagation a container's binds need, as containerd sets it: `rshared` for a
/// bidirectional bind (so its mounts reach the host), `rslave` for a host-to-container one.
fn rootfs_propagation(config: &v1::ContainerConfig) -> Option<String> {
    use v1::MountPropagation as P;
    let has = |p: P| config.mounts.iter().any(|m| m.propagation == p as i32);
    match () {
        _ if has(P::PropagationBidirectional) => Some("rshared".into()),
        _ if has(P::PropagationHostToContainer) => Some("rslave".into()),
        _ => None,
    }
}

/// The pod's cgroup parent (`ours` when it gives none) and sysctls.
fn pod_linux(pod: &v1::PodSandboxConfig, ours: &str) -> (String, HashMap<String, String>) {
    let linux = pod.linux.as_ref();
    let parent = linux
        .map(|l| l.cgroup_parent.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ours.to_string());
    let sysctls = linux
        .map(|l| l.sysctls.clone().into_iter().collect())
        .unwrap_or_default();
    (parent, sysctls)
}

/// The spec of a container.
pub fn build(i: &Input<'_>) -> Result<Spec, Status> {
    let linux_cfg = i.config.linux.as_ref();
    let sc = linux_cfg.and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|s| s.privileged);
    let pod_privileged = i
        .pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    if privileged && !pod_privileged {
        return Err(invalid(
            "no privileged container allowed in a non-privileged sandbox",
        ));
    }
    let caps = match privileged {
        true => berth_oci::caps::host(),
        false => capabilities(sc.and_then(|s| s.capabilities.as_ref()))?,
    };
    let hostname = i.pod.hostname.clone();
    let args = arguments(i.config, i.image);
    if args.is_empty() {
        return Err(invalid("no command specified"));
    }
    let cwd = match (i.config.working_dir.as_str(), i.image.workdir.as_str()) {
        ("", "") => "/".to_string(),
        ("", w) | (w, _) => w.to_string(),
    };
    let oom = oom_score_adj(
        linux_cfg
            .and_then(|l| l.resources.as_ref())
            .map_or(0, |r| r.oom_score_adj),
    );
    let process = ProcessBuilder::default()
        .terminal(i.config.tty)
        .args(args)
        .env(environment(i.config, i.image, &hostname))
        .cwd(cwd)
        .user(user(i, sc)?)
        .capabilities(cap_set(&caps)?)
        .no_new_privileges(sc.is_some_and(|s| s.no_new_privs))
        .oom_score_adj(oom)
        .build()
        .map_err(|e| Status::internal(e.to_string()))?;
    let root = RootBuilder::default()
        .path(i.rootfs.to_path_buf())
        .readonly(sc.is_some_and(|s| s.readonly_rootfs))
        .build()
        .map_err(|e| Status::internal(e.to_string()))?;
    use LinuxNamespaceType as T;
    let mut namespaces = vec![namespace(T::Mount, None)];
    namespaces.extend(i.ns.net.as_deref().map(|p| namespace(T::Network, Some(p))));
    namespaces.extend(i.ns.ipc.as_deref().map(|p| namespace(T::Ipc, Some(p))));
    namespaces.extend(i.ns.uts.as_deref().map(|p| namespace(T::Uts, Some(p))));
    let pid_mode = sc
        .and_then(|s| s.namespace_options.as_ref())
        .map_or(v1::NamespaceMode::Pod as i32, |n| n.pid);
    match v1::NamespaceMode::try_from(pid_mode) {
        Ok(v1::NamespaceMode::Node) => {}
        Ok(v1::NamespaceMode::Pod) if i.ns.pid.is_some() => {
            namespaces.push(namespace(T::Pid, i.ns.pid.as_deref()));
        }
        _ => namespaces.push(namespace(T::Pid, None)),
    }
    let host_ipc = i.ns.ipc.is_none();
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let given = |l: Option<&Vec<String>>, default: &str| match l {
        Some(l) if !l.is_empty() => l.clone(),
        _ => words(default),
    };
    let (masked, readonly) = match privileged {
        true => (Vec::new(), Vec::new()),
        false => (
            given(
                sc.map(|s| &s.masked_paths),
                berth_oci::defaults::MASKED_PATHS,
            ),
            given(
                sc.map(|s| &s.readonly_paths),
                berth_oci::defaults::READONLY_PATHS,
            ),
        ),
    };
    let (parent, sysctls) = pod_linux(i.pod, i.cgroup_parent);
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .resources(resources(linux_cfg.and_then(|l| l.resources.as_ref())))
        .cgroups_path(PathBuf::from(format!(
            "{}/{}",
            parent.trim_end_matches('/'),
            i.id
        )))
        .sysctl(sysctls)
        .build()
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut linux = linux;
    linux
        .set_seccomp(seccomp(sc, &caps)?)
        .set_rootfs_propagation(rootfs_propagation(i.config));
    let mut spec = Spec::default();
    spec.set_version("1.2.0".into())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(i.ns.uts.is_some().then_some(hostname))
        .set_mounts(Some(mounts(i, privileged, host_ipc)?))
        .set_linux(Some(linux))
        .set_annotations(None);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubelets_rules() {
        let mut c = v1::ContainerConfig::default();
        assert_eq!(arguments(&c, &image()), ["/ep", "c1"]);
        c.args = vec!["a".into()];
        assert_eq!(arguments(&c, &image()), ["/ep", "a"]);
        c.command = vec!["/bin/x".into()];
        assert_eq!(arguments(&c, &image()), ["/bin/x", "a"]);
        c.args.clear();
        assert_eq!(arguments(&c, &image()), ["/bin/x"]);
    }

    #[test]
    fn capabilities_add_drop_and_all() {
        let cap = |add: &[&str], drop: &[&str]| v1::Capability {
            add_capabilities: add.iter().map(|s| s.to_string()).collect(),
            drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let got = capabilities(Some(&cap(&["SYS_ADMIN"], &["CHOWN"]))).unwrap();
        assert!(got.contains(&"CAP_SYS_ADMIN".into()) && !got.contains(&"CAP_CHOWN".into()));
        assert_eq!(
            capabilities(Some(&cap(&["NET_ADMIN"], &["ALL"]))).unwrap(),
            ["CAP_NET_ADMIN"]
        );
        assert!(capabilities(Some(&cap(&["NOPE"], &[]))).is_err());
    }

    #[test]
    fn the_environment_lets_the_config_replace_the_image() {
        let c = v1::ContainerConfig {
            envs: vec![v1::KeyValue {
                key: "A".into(),
                value: "2".into(),
            }],
            ..Default::default()
        };
        let img = ImageDefaults {
            env: vec!["A=1".into(), "B=1".into()],
            ..Default::default()
        };
        let env = environment(&c, &img, "h");
        assert!(env.contains(&"A=2".to_string()) && env.contains(&"B=1".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        assert!(env.contains(&"HOSTNAME=h".to_string()));
    }
}
