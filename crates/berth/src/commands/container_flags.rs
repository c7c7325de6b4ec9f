//! The rest of Docker's container flags shared by `create` and `run`: resources, security,
//! healthcheck, logging, namespaces, devices, mounts and networking details, each turned into
//! the Engine API field the docker CLI sends for it.

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value, json};

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

/// Turns one value of a repeatable flag into one entry of the API's list.
type ParseItem = fn(&str) -> anyhow::Result<Value>;

/// `name=value` pairs as a JSON object (a pair without `=` is refused as Docker does).
fn pairs(items: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for i in items {
        let (k, v) = i
            .split_once('=')
            .with_context(|| format!("invalid {what} {i:?}: expected name=value"))?;
        m.insert(k.to_string(), Value::String(v.to_string()));
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
pub fn parse_ulimit(u: &str) -> anyhow::Result<Value> {
    let bad = || format!("invalid ulimit argument: {u}");
    let (name, limits) = u.split_once('=').with_context(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().ok().with_context(bad)?;
    let hard: i64 = hard.parse().ok().with_context(bad)?;
    anyhow::ensure!(
        soft <= hard || hard == -1,
        "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
    );
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--device /dev/fuse[:/dev/fuse[:rwm]]`.
pub fn parse_device(d: &str) -> anyhow::Result<Value> {
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
    Ok(json!({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}))
}

/// `--mount type=bind,source=/a,target=/b,readonly` as an API `Mounts` entry.
pub fn parse_mount(spec: &str) -> anyhow::Result<Value> {
    let mut m = json!({"Type": "volume"});
    let mut bind = Map::new();
    let mut volume = Map::new();
    let mut tmpfs = Map::new();
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
            "type" => m["Type"] = json!(value()?),
            "source" | "src" => m["Source"] = json!(value()?),
            "target" | "destination" | "dst" => m["Target"] = json!(value()?),
            "readonly" | "ro" => m["ReadOnly"] = json!(flag(v)?),
            "consistency" => {}
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(value()?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(flag(v)?));
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(flag(v)?));
            }
            "volume-driver" => {
                volume.insert("DriverConfig".into(), json!({"Name": value()?}));
            }
            "volume-label" => {
                let (lk, lv) = value()?.split_once('=').unwrap_or((value()?, ""));
                let labels = volume.entry("Labels").or_insert_with(|| json!({}));
                labels[lk] = json!(lv);
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(ram_in_bytes(value()?)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(value()?, 8)
                    .ok()
                    .with_context(|| format!("invalid value for tmpfs-mode: {field}"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => anyhow::bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    anyhow::ensure!(
        m.get("Target").is_some(),
        "invalid argument \"{spec}\" for \"--mount\" flag: target is required"
    );
    let typ = m["Type"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(
        matches!(typ.as_str(), "bind" | "volume" | "tmpfs"),
        "invalid argument \"{spec}\" for \"--mount\" flag: mount type unknown: {typ:?}"
    );
    for (name, opts, for_type) in [
        ("BindOptions", bind, "bind"),
        ("VolumeOptions", volume, "volume"),
        ("TmpfsOptions", tmpfs, "tmpfs"),
    ] {
        if !opts.is_empty() {
            anyhow::ensure!(
                typ == for_type,
                "invalid argument \"{spec}\" for \"--mount\" flag: cannot mix '{for_type}' options with type '{typ}'"
            );
            m[name] = Value::Object(opts);
        }
    }
    Ok(m)
}

/// `--security-opt seccomp=FILE`: the docker CLI sends the profile itself, not its path.
fn security_opt(o: &str) -> anyhow::Result<String> {
    match o.split_once(['=', ':']) {
        Some(("seccomp", file)) if file != "unconfined" && file != "builtin" => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("opening seccomp profile ({file}) failed"))?;
            let profile: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing seccomp profile ({file})"))?;
            Ok(format!("seccomp={profile}"))
        }
        _ => Ok(o.to_string()),
    }
}

impl ContainerFlags {
    /// Adds these flags' fields to a create body built from the common flags.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        let hc = &mut body["HostConfig"];
        let size = |s: &Option<String>| s.as_deref().map(ram_in_bytes).transpose();
        if self.publish_all {
            hc["PublishAllPorts"] = json!(true);
        }
        // Flags given once per item, each parsed into one entry of an API list.
        let parsed: [(&str, &Vec<String>, ParseItem); 4] = [
            ("Mounts", &self.mount, parse_mount),
            ("SecurityOpt", &self.security_opt, |o| {
                security_opt(o).map(Value::String)
            }),
            ("Ulimits", &self.ulimit, parse_ulimit),
            ("Devices", &self.device, parse_device),
        ];
        for (key, items, parse) in parsed {
            if !items.is_empty() {
                let v: Vec<Value> = items
                    .iter()
                    .map(|i| parse(i))
                    .collect::<anyhow::Result<_>>()?;
                hc[key] = Value::Array(v);
            }
        }
        let lists = [
            ("VolumesFrom", &self.volumes_from),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
            ("GroupAdd", &self.group_add),
        ];
        for (key, list) in lists {
            if !list.is_empty() {
                hc[key] = json!(list);
            }
        }
        if !self.sysctl.is_empty() {
            hc["Sysctls"] = Value::Object(pairs(&self.sysctl, "sysctl")?);
        }
        let numbers = [
            ("PidsLimit", self.pids_limit),
            ("CpuShares", self.cpu_shares),
            ("CpuPeriod", self.cpu_period),
            ("CpuQuota", self.cpu_quota),
            ("OomScoreAdj", self.oom_score_adj),
            ("BlkioWeight", self.blkio_weight.map(i64::from)),
            ("ShmSize", size(&self.shm_size)?),
            ("MemoryReservation", size(&self.memory_reservation)?),
        ];
        for (key, n) in numbers {
            if let Some(n) = n {
                hc[key] = json!(n);
            }
        }
        if let Some(s) = &self.memory_swap {
            hc["MemorySwap"] = json!(if s == "-1" { -1 } else { ram_in_bytes(s)? });
        }
        if self.oom_kill_disable {
            hc["OomKillDisable"] = json!(true);
        }
        let strings = [
            ("CpusetCpus", &self.cpuset_cpus),
            ("CpusetMems", &self.cpuset_mems),
            ("PidMode", &self.pid),
            ("IpcMode", &self.ipc),
            ("UTSMode", &self.uts),
            ("UsernsMode", &self.userns),
            ("CgroupnsMode", &self.cgroupns),
            ("Runtime", &self.runtime),
        ];
        for (key, s) in strings {
            if let Some(s) = s {
                hc[key] = json!(s);
            }
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            hc["LogConfig"] = json!({
                "Type": self.log_driver.clone().unwrap_or_default(),
                "Config": pairs(&self.log_opt, "log-opt")?,
            });
        }
        self.apply_config(body)
    }

    /// The fields of the container config proper (not HostConfig).
    fn apply_config(&self, body: &mut Value) -> anyhow::Result<()> {
        if let Some(m) = &self.mac_address {
            body["MacAddress"] = json!(m);
        }
        if let Some(d) = &self.domainname {
            body["Domainname"] = json!(d);
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
                if body["Labels"].get(k).is_none() {
                    body["Labels"][k] = json!(v);
                }
            }
        }
        if self.no_healthcheck {
            body["Healthcheck"] = json!({"Test": ["NONE"]});
        } else if self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
        {
            let mut h = json!({
                "Interval": nanos("health-interval", &self.health_interval)?.unwrap_or(0),
                "Timeout": nanos("health-timeout", &self.health_timeout)?.unwrap_or(0),
                "StartPeriod": nanos("health-start-period", &self.health_start_period)?.unwrap_or(0),
                "Retries": self.health_retries.unwrap_or(0),
            });
            if let Some(cmd) = &self.health_cmd {
                h["Test"] = json!(["CMD-SHELL", cmd]);
            }
            body["Healthcheck"] = h;
        }
        if let Some(ip) = &self.ip {
            let net = body["HostConfig"]["NetworkMode"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            anyhow::ensure!(
                !matches!(net.as_str(), "default" | "bridge" | "none" | "host"),
                "user specified IP address is supported on user defined networks only"
            );
            let ep = &mut body["NetworkingConfig"]["EndpointsConfig"][net.as_str()];
            ep["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_like_dockers() {
        assert_eq!(
            parse_mount("type=bind,source=/a,target=/b,readonly").unwrap(),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t",
                   "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 0o1770}})
        );
        assert_eq!(
            parse_mount("src=data,target=/data").unwrap(),
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
            parse_ulimit("nofile=1024:2048").unwrap(),
            json!({"Name": "nofile", "Soft": 1024, "Hard": 2048})
        );
        assert_eq!(
            parse_ulimit("nproc=512").unwrap(),
            json!({"Name": "nproc", "Soft": 512, "Hard": 512})
        );
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(
            parse_device("/dev/fuse").unwrap(),
            json!({"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"})
        );
        assert_eq!(
            parse_device("/dev/sda:/dev/xvda:r").unwrap(),
            json!({"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"})
        );
        assert_eq!(
            parse_device("/dev/null:rw").unwrap()["PathInContainer"],
            json!("/dev/null")
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
        let mut body = json!({"HostConfig": {"NetworkMode": "default"}, "Labels": {}});
        f.apply(&mut body).unwrap();
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
            ip.apply(&mut body.clone()).is_err(),
            "--ip on the default network"
        );
    }
}
