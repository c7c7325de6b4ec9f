//! The rest of Docker's container flags shared by `create` and `run`: resources, security,
//! healthcheck, logging, namespaces, devices, mounts and networking details, each turned into
//! the Engine API field the docker CLI sends for it.

use anyhow::Context;
use berth_api::config::HealthConfig;
use berth_api::host_config::{
    BindOptions, CreateRequest, DeviceMapping, LogConfig, Mount, StringMap, TmpfsOptions, Ulimit,
    VolumeDriver, VolumeOptions,
};
use berth_api::models::EndpointIpamConfig;
use clap::Args;

use crate::units::{parse_go_duration, ram_in_bytes};

#[derive(Args, Debug, Clone, Default)]
pub struct ContainerFlags {
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=…,target=…)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a host device to the container (host[:container[:permissions]])
    #[arg(long)]
    pub device: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Sysctl options (name=value)
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<String>,
}

/// `name=value` pairs as a map (a pair without `=` is refused as Docker does).
fn pairs(items: &[String], what: &str) -> anyhow::Result<StringMap> {
    let mut m = StringMap::new();
    for i in items {
        let (k, v) = i
            .split_once('=')
            .with_context(|| format!("invalid {what} {i:?}: expected name=value"))?;
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// A Go duration flag in nanoseconds.
fn nanos(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| {
            parse_go_duration(s)
                .map(|secs| (secs * 1e9) as i64)
                .with_context(|| format!("invalid argument {s:?} for \"--{flag}\" flag"))
        })
        .transpose()
}

/// `--ulimit nofile=1024[:2048]`.
pub fn parse_ulimit(u: &str) -> anyhow::Result<Ulimit> {
    let bad = || format!("invalid ulimit argument: {u}");
    let (name, limits) = u.split_once('=').with_context(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().ok().with_context(bad)?;
    let hard: i64 = hard.parse().ok().with_context(bad)?;
    anyhow::ensure!(
        soft <= hard || hard == -1,
        "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
    );
    Ok(Ulimit {
        name: name.into(),
        soft,
        hard,
    })
}

/// `--device /dev/fuse[:/dev/fuse[:rwm]]`.
pub fn parse_device(d: &str) -> anyhow::Result<DeviceMapping> {
    let parts: Vec<&str> = d.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|ch| "rwm".contains(ch)) && !c.is_empty() => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => anyhow::bail!("invalid device specification: {d}"),
    };
    anyhow::ensure!(
        !host.is_empty() && !perms.is_empty() && perms.chars().all(|c| "rwm".contains(c)),
        "invalid device specification: {d}"
    );
    Ok(DeviceMapping {
        path_on_host: host.into(),
        path_in_container: ctr.into(),
        cgroup_permissions: perms.into(),
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly` as an API `Mounts` entry.
pub fn parse_mount(spec: &str) -> anyhow::Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Default::default()
    };
    let mut bind: Option<BindOptions> = None;
    let mut volume: Option<VolumeOptions> = None;
    let mut tmpfs: Option<TmpfsOptions> = None;
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let flag = |v: Option<&str>| -> anyhow::Result<bool> {
            match v.unwrap_or("true") {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                o => anyhow::bail!("invalid value for {k}: {o}"),
            }
        };
        let value =
            || v.with_context(|| format!("invalid field '{field}' must be a key=value pair"));
        match k.as_str() {
            "type" => m.kind = value()?.into(),
            "source" | "src" => m.source = value()?.into(),
            "target" | "destination" | "dst" => m.target = value()?.into(),
            "readonly" | "ro" => m.read_only = flag(v)?,
            "consistency" => {}
            "bind-propagation" => bind.get_or_insert_default().propagation = value()?.into(),
            "bind-nonrecursive" => bind.get_or_insert_default().non_recursive = flag(v)?,
            "volume-nocopy" => volume.get_or_insert_default().no_copy = flag(v)?,
            "volume-driver" => {
                volume.get_or_insert_default().driver_config = Some(VolumeDriver {
                    name: value()?.into(),
                    options: None,
                });
            }
            "volume-label" => {
                let (lk, lv) = value()?.split_once('=').unwrap_or((value()?, ""));
                let labels = volume
                    .get_or_insert_default()
                    .labels
                    .get_or_insert_default();
                labels.insert(lk.into(), lv.into());
            }
            "tmpfs-size" => tmpfs.get_or_insert_default().size_bytes = ram_in_bytes(value()?)?,
            "tmpfs-mode" => {
                let mode = u64::from_str_radix(value()?, 8)
                    .ok()
                    .with_context(|| format!("invalid value for tmpfs-mode: {field}"))?;
                tmpfs.get_or_insert_default().mode = mode;
            }
            _ => anyhow::bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    anyhow::ensure!(
        !m.target.is_empty(),
        "invalid argument \"{spec}\" for \"--mount\" flag: target is required"
    );
    let typ = m.kind.clone();
    anyhow::ensure!(
        matches!(typ.as_str(), "bind" | "volume" | "tmpfs"),
        "invalid argument \"{spec}\" for \"--mount\" flag: mount type unknown: {typ:?}"
    );
    for (given, for_type) in [
        (bind.is_some(), "bind"),
        (volume.is_some(), "volume"),
        (tmpfs.is_some(), "tmpfs"),
    ] {
        anyhow::ensure!(
            !given || typ == for_type,
            "invalid argument \"{spec}\" for \"--mount\" flag: cannot mix '{for_type}' options with type '{typ}'"
        );
    }
    (m.bind_options, m.volume_options, m.tmpfs_options) = (bind, volume, tmpfs);
    Ok(m)
}

/// `--security-opt seccomp=FILE`: the docker CLI sends the profile itself, not its path.
fn security_opt(o: &str) -> anyhow::Result<String> {
    match o.split_once(['=', ':']) {
        Some(("seccomp", file)) if file != "unconfined" && file != "builtin" => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("opening seccomp profile ({file}) failed"))?;
            let profile: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing seccomp profile ({file})"))?;
            Ok(format!("seccomp={profile}"))
        }
        _ => Ok(o.to_string()),
    }
}

/// Each item of a repeatable flag parsed into one entry of an API list (`None` when absent).
fn each<T>(
    items: &[String],
    parse: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Vec<T>>> {
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .map(|i| parse(i))
        .collect::<anyhow::Result<_>>()
        .map(Some)
}

/// A list flag as the API's list (`None` when absent).
fn list(items: &[String]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.to_vec())
}

impl ContainerFlags {
    /// Adds these flags' fields to a create request built from the common flags.
    pub fn apply(&self, req: &mut CreateRequest) -> anyhow::Result<()> {
        let hc = &mut req.host_config;
        let size = |s: &Option<String>| s.as_deref().map(ram_in_bytes).transpose();
        hc.publish_all_ports |= self.publish_all;
        if let Some(m) = each(&self.mount, parse_mount)? {
            hc.mounts = Some(m);
        }
        hc.security_opt = each(&self.security_opt, security_opt)?.or(hc.security_opt.take());
        let r = &mut hc.resources;
        r.ulimits = each(&self.ulimit, parse_ulimit)?.or(r.ulimits.take());
        r.devices = each(&self.device, parse_device)?.or(r.devices.take());
        hc.volumes_from = list(&self.volumes_from).or(hc.volumes_from.take());
        hc.dns_search = list(&self.dns_search).or(hc.dns_search.take());
        hc.dns_options = list(&self.dns_option).or(hc.dns_options.take());
        hc.group_add = list(&self.group_add).or(hc.group_add.take());
        if !self.sysctl.is_empty() {
            hc.sysctls = Some(pairs(&self.sysctl, "sysctl")?);
        }
        let r = &mut hc.resources;
        r.pids_limit = self.pids_limit.or(r.pids_limit);
        let numbers = [
            (&mut r.cpu_shares, self.cpu_shares),
            (&mut r.cpu_period, self.cpu_period),
            (&mut r.cpu_quota, self.cpu_quota),
            (&mut r.memory_reservation, size(&self.memory_reservation)?),
        ];
        for (field, n) in numbers {
            if let Some(n) = n {
                *field = n;
            }
        }
        r.blkio_weight = self.blkio_weight.unwrap_or(r.blkio_weight);
        if let Some(s) = &self.memory_swap {
            r.memory_swap = if s == "-1" { -1 } else { ram_in_bytes(s)? };
        }
        if self.oom_kill_disable {
            r.oom_kill_disable = Some(true);
        }
        let strings = [
            (&mut r.cpuset_cpus, &self.cpuset_cpus),
            (&mut r.cpuset_mems, &self.cpuset_mems),
        ];
        for (field, s) in strings {
            if let Some(s) = s {
                field.clone_from(s);
            }
        }
        hc.oom_score_adj = self.oom_score_adj.unwrap_or(hc.oom_score_adj);
        hc.shm_size = size(&self.shm_size)?.unwrap_or(hc.shm_size);
        let strings = [
            (&mut hc.pid_mode, &self.pid),
            (&mut hc.ipc_mode, &self.ipc),
            (&mut hc.uts_mode, &self.uts),
            (&mut hc.userns_mode, &self.userns),
            (&mut hc.cgroupns_mode, &self.cgroupns),
            (&mut hc.runtime, &self.runtime),
        ];
        for (field, s) in strings {
            if let Some(s) = s {
                field.clone_from(s);
            }
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            hc.log_config = LogConfig {
                kind: self.log_driver.clone().unwrap_or_default(),
                config: Some(pairs(&self.log_opt, "log-opt")?),
            };
        }
        self.apply_config(req)
    }

    /// The fields of the container config proper (not HostConfig).
    fn apply_config(&self, req: &mut CreateRequest) -> anyhow::Result<()> {
        let c = &mut req.config;
        if let Some(m) = &self.mac_address {
            c.mac_address.clone_from(m);
        }
        if let Some(d) = &self.domainname {
            c.domainname.clone_from(d);
        }
        for f in &self.label_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading label file {f}"))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = line.split_once('=').unwrap_or((line, ""));
                // Labels given with --label win over the file's, as in Docker.
                let labels = c.labels.get_or_insert_default();
                labels.entry(k.into()).or_insert_with(|| v.into());
            }
        }
        if self.no_healthcheck {
            c.healthcheck = Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            });
        } else if self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
        {
            c.healthcheck = Some(HealthConfig {
                test: self
                    .health_cmd
                    .as_ref()
                    .map(|cmd| vec!["CMD-SHELL".into(), cmd.clone()]),
                interval: nanos("health-interval", &self.health_interval)?.unwrap_or(0),
                timeout: nanos("health-timeout", &self.health_timeout)?.unwrap_or(0),
                start_period: nanos("health-start-period", &self.health_start_period)?.unwrap_or(0),
                retries: self.health_retries.unwrap_or(0),
            });
        }
        if self.ip.is_some() || self.ip6.is_some() || !self.link_local_ip.is_empty() {
            let net = req.host_config.network_mode.clone();
            anyhow::ensure!(
                !matches!(net.as_str(), "" | "default" | "bridge" | "none" | "host")
                    || (self.ip.is_none() && self.ip6.is_none()),
                "user specified IP address is supported on user defined networks only"
            );
            let endpoints = req
                .networking_config
                .get_or_insert_default()
                .endpoints_config
                .get_or_insert_default();
            let ep = endpoints.entry(net).or_default();
            ep.ipam_config = Some(endpoint_ipam(
                self.ip.as_ref(),
                self.ip6.as_ref(),
                &self.link_local_ip,
            ));
        }
        Ok(())
    }
}

/// An endpoint's `IPAMConfig` from `--ip`, `--ip6` and `--link-local-ip`.
pub fn endpoint_ipam(
    ip: Option<&String>,
    ip6: Option<&String>,
    link_local: &[String],
) -> EndpointIpamConfig {
    EndpointIpamConfig {
        ipv4_address: ip.cloned(),
        ipv6_address: ip6.cloned(),
        link_local_ips: (!link_local.is_empty()).then(|| link_local.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value<T: serde::Serialize>(t: T) -> serde_json::Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn mounts_parse_like_dockers() {
        assert_eq!(
            value(parse_mount("type=bind,source=/a,target=/b,readonly").unwrap()),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            value(parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap()),
            json!({"Type": "tmpfs", "Target": "/t",
                   "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 0o1770}})
        );
        assert_eq!(
            value(parse_mount("src=data,target=/data").unwrap()),
            json!({"Type": "volume", "Source": "data", "Target": "/data"})
        );
        assert!(parse_mount("type=bind,source=/a").is_err(), "no target");
        assert!(parse_mount("type=nfs,target=/a").is_err(), "unknown type");
        assert!(
            parse_mount("type=bind,target=/a,tmpfs-size=1m").is_err(),
            "mixed options"
        );
        assert!(
            parse_mount("type=bind,target=/a,color=red").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn ulimits_and_devices_parse_like_dockers() {
        assert_eq!(
            value(parse_ulimit("nofile=1024:2048").unwrap()),
            json!({"Name": "nofile", "Soft": 1024, "Hard": 2048})
        );
        assert_eq!(
            value(parse_ulimit("nproc=512").unwrap()),
            json!({"Name": "nproc", "Soft": 512, "Hard": 512})
        );
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(
            value(parse_device("/dev/fuse").unwrap()),
            json!({"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"})
        );
        assert_eq!(
            value(parse_device("/dev/sda:/dev/xvda:r").unwrap()),
            json!({"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"})
        );
        assert_eq!(
            parse_device("/dev/null:rw").unwrap().path_in_container,
            "/dev/null"
        );
    }

    #[test]
    fn fields_land_where_the_api_wants_them() {
        let f = ContainerFlags {
            pids_limit: Some(64),
            security_opt: vec!["no-new-privileges".into()],
            health_cmd: Some("true".into()),
            health_interval: Some("1s".into()),
            sysctl: vec!["net.ipv4.ip_forward=1".into()],
            memory_swap: Some("-1".into()),
            ..Default::default()
        };
        let mut req = CreateRequest::default();
        req.host_config.network_mode = "default".into();
        f.apply(&mut req).unwrap();
        let body = value(&req);
        assert_eq!(body["HostConfig"]["PidsLimit"], json!(64));
        assert_eq!(
            body["HostConfig"]["SecurityOpt"],
            json!(["no-new-privileges"])
        );
        assert_eq!(body["HostConfig"]["MemorySwap"], json!(-1));
        assert_eq!(
            body["HostConfig"]["Sysctls"],
            json!({"net.ipv4.ip_forward": "1"})
        );
        assert_eq!(body["Healthcheck"]["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(body["Healthcheck"]["Interval"], json!(1_000_000_000i64));
        let ip = ContainerFlags {
            ip: Some("10.1.2.3".into()),
            ..Default::default()
        };
        assert!(
            ip.apply(&mut req.clone()).is_err(),
            "--ip on the default network"
        );
    }
}
