//! Docker "create" → OCI runtime spec: turns a `POST /containers/create` body plus the image
//! config into a runtime-spec 1.2 `config.json` value with dockerd's defaults (moby's
//! `oci/defaults.go`, `daemon/oci_linux.go`, its volume parser, and runc's user lookup).
//!
//! Decisions come from the request and the image config, plus read-only looks at the host: the
//! rootfs' `/etc/passwd` and `/etc/group` (resolved inside the rootfs), device nodes named in
//! `HostConfig.Devices`, `/dev` and the daemon's capability bounding set for `--privileged`.
//! Nothing is written. Deliberately absent: volumes (named, anonymous, image `VOLUME`s),
//! `--init`, seccomp (the caller adds Docker's profile), AppArmor/SELinux, user namespaces and
//! joining another container's namespaces.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};

/// Everything the spec depends on besides the request.
pub struct SpecInput<'a> {
    /// The 64-hex container id.
    pub id: &'a str,
    /// The create body as the docker CLI sends it (Config at top level, plus `HostConfig`).
    pub create: &'a Value,
    /// The image config's `config` object; may be `Null`.
    pub image_config: &'a Value,
    /// Absolute path of the mounted rootfs.
    pub rootfs: &'a str,
    /// Directory holding the `hostname`, `hosts` and `resolv.conf` files to bind-mount.
    pub container_dir: &'a str,
    /// The host's hard `RLIMIT_NOFILE`. The spec adds no default rlimits (containers inherit
    /// the shim's, as Docker's inherit containerd's), so nothing can exceed it by default.
    pub hard_nofile: Option<u64>,
    /// Parent cgroup, e.g. `/berth` → `cgroupsPath` `/berth/<id>`.
    pub cgroup_parent: &'a str,
    /// Network namespace to join; `None` makes a private one. Host network has no entry.
    pub netns_path: Option<&'a str>,
}

/// Why a create request cannot become a spec; messages are dockerd's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid value for {field}: expected {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("No command specified")]
    NoCommand,
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    WorkingDir(String),
    #[error("conflicting options: hostname and the UTS mode")]
    UtsHostname,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    #[error("Unable to find group {0}: no matching entries in group file")]
    GroupAddNotFound(String),
    #[error("uids and gids must be in range 0-2147483647")]
    IdRange,
    #[error("reading {} in the container's rootfs", path.display())]
    ReadRootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {field}: unknown capability: {name:?}")]
    Capability { field: &'static str, name: String },
    #[error("invalid --security-opt {stage}: {opt:?}")]
    SecurityOpt { stage: u8, opt: String },
    #[error("invalid {what} mode: {mode}")]
    Mode { what: &'static str, mode: String },
    #[error("joining another container's {0} namespace is not supported yet")]
    JoinContainer(&'static str),
    #[error("sysctl {0:?} not allowed in host network namespace")]
    HostNetSysctl(String),
    #[error("invalid volume specification: '{0}'")]
    VolumeSpec(String),
    #[error("invalid mode: {0}")]
    VolumeMode(String),
    #[error(
        "invalid volume specification: '{spec}': invalid mount config for type \"bind\": {problem}"
    )]
    BindSpec { spec: String, problem: MountProblem },
    #[error("invalid mount config for type {kind:?}: {problem}")]
    MountConfig { kind: String, problem: MountProblem },
    #[error("{0}")]
    TmpfsTarget(MountProblem),
    #[error("invalid tmpfs option {0:?}")]
    TmpfsOption(String),
    #[error("named volumes are not supported yet: {0}")]
    Volume(String),
    #[error("volumes-from is not supported yet")]
    VolumesFrom,
    #[error("Duplicate mount point: {0}")]
    DuplicateMount(String),
    #[error("SHM size can not be less than 0")]
    ShmSize,
    #[error(
        "error gathering device information while adding custom device {0:?}: not a device node"
    )]
    NotADevice(String),
    #[error("error gathering device information while adding custom device {path:?}")]
    DeviceStat {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid device specification: {0}")]
    DeviceSpec(String),
    #[error("invalid device mode: {0}")]
    DeviceMode(String),
    #[error("invalid device cgroup rule format: '{0}'")]
    DeviceCgroupRule(String),
    #[error("invalid block device {path:?}")]
    BlkioDevice {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Minimum memory limit allowed is 6MB")]
    MemoryTooLow,
    #[error("Minimum memory reservation allowed is 6MB")]
    ReservationTooLow,
    #[error("Minimum memory limit can not be less than memory reservation limit, see usage")]
    ReservationAboveLimit,
    #[error("You should always set the Memory limit when using Memoryswap limit, see usage")]
    SwapWithoutMemory,
    #[error("Minimum memoryswap limit should be larger than memory limit, see usage")]
    SwapBelowMemory,
    #[error("Invalid value: {0}, valid memory swappiness range is 0-100")]
    Swappiness(i64),
    #[error("Conflicting options: Nano CPUs and CPU {0} cannot both be set")]
    NanoCpusConflict(&'static str),
    #[error("Range of CPUs is from 0.01 to {0}.00, as there are only {0} CPUs available")]
    NanoCpusRange(usize),
    #[error("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")]
    CpuPeriod,
    #[error("CPU cfs quota can not be less than 1ms (i.e. 1000)")]
    CpuQuota,
    #[error("shares: invalid argument")]
    CpuShares,
    #[error("Range of blkio weight is from 10 to 1000")]
    BlkioWeight,
    #[error("Invalid value {0}, range for oom score adj is [-1000, 1000]")]
    OomScoreAdj(i64),
    #[error("invalid ulimit type: {0}")]
    UlimitName(String),
    #[error("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")]
    UlimitOrder { soft: i64, hard: i64 },
}

/// What is wrong with one mount (dockerd's wording; wrapped by [`SpecError`]).
#[derive(Debug, thiserror::Error)]
pub enum MountProblem {
    #[error("field {0} must not be empty")]
    MissingField(&'static str),
    #[error("field {0} must not be specified")]
    ExtraField(&'static str),
    #[error("invalid mount path: '{0}' mount path must be absolute")]
    NotAbsolute(String),
    #[error("invalid specification: destination can't be '/'")]
    TargetIsRoot,
    #[error("bind source path does not exist: {0}")]
    SourceMissing(String),
    #[error("invalid propagation mode: {0}")]
    Propagation(String),
    #[error("invalid option: {0}")]
    TmpfsOption(String),
    #[error("mount type unknown")]
    UnknownType,
}

const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_SHM_SIZE: i64 = 64 << 20;
const MAX_ID: i64 = i32::MAX as i64;
const MAX_ETC_FILE: u64 = 4 << 20;
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
/// Every capability, indexed by its number.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
type DefaultMount = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);
const DEFAULT_MOUNTS: &[DefaultMount] = &[
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    ),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
    (
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["ro", "nosuid", "noexec", "nodev"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777"],
    ),
];
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];
const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

/// Builds the OCI runtime spec for one container.
pub fn build(input: &SpecInput) -> Result<Value, SpecError> {
    let (create, hc) = (input.create, &input.create["HostConfig"]);
    let privileged = flag(hc, "Privileged")?;
    let sec = security(hc)?;
    let args = command(create, input.image_config)?;
    let hostname = hostname(create, input.id)?;
    let env = env(create, input.image_config, &hostname)?;
    let cwd = working_dir(create, input.image_config)?;
    let user = match string(create, "User")? {
        "" => string(input.image_config, "User")?,
        u => u,
    };
    let group_add = strs(hc, "GroupAdd")?.unwrap_or_default();
    let (uid, gid, gids) = resolve_user(Path::new(input.rootfs), user, &group_add)?;
    let caps = capabilities(hc, privileged)?;
    let none: [&str; 0] = [];
    let (effective, permitted) = if uid == 0 {
        (&caps[..], &caps[..])
    } else {
        (&[][..], &[][..])
    };
    let oom = int(hc, "OomScoreAdj")?;
    if !(-1000..=1000).contains(&oom) {
        return Err(SpecError::OomScoreAdj(oom));
    }
    let mut process = json!({
        "terminal": flag(create, "Tty")?,
        "user": {"uid": uid, "gid": gid, "additionalGids": gids},
        "args": args, "env": env, "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": effective, "permitted": permitted,
            "inheritable": none, "ambient": none},
        "noNewPrivileges": sec.no_new_privileges,
        "oomScoreAdj": oom,
    });
    let rlimits = rlimits(hc)?;
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }
    if let [Some(h), Some(w)] = console_size(hc)? {
        if flag(create, "Tty")? && h > 0 && w > 0 {
            process["consoleSize"] = json!({"height": h, "width": w});
        }
    }

    let net = string(hc, "NetworkMode")?;
    let ipc = string(hc, "IpcMode")?;
    let (namespaces, uts_host) = namespaces(hc, net, ipc, input.netns_path)?;
    let (mounts, propagation) = mounts(input, hc, privileged, ipc, sec.writable_cgroups)?;
    let (devices, device_rules) = devices(hc, privileged)?;
    let (masked, readonly) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let masked = strs(hc, "MaskedPaths")?.unwrap_or_else(|| owned(MASKED_PATHS));
        (
            masked,
            strs(hc, "ReadonlyPaths")?.unwrap_or_else(|| owned(READONLY_PATHS)),
        )
    };
    let parent = match string(hc, "CgroupParent")? {
        "" => input.cgroup_parent,
        p => p,
    };
    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
        "resources": resources(hc, device_rules)?,
        "cgroupsPath": clean(&format!("/{parent}/{}", input.id)),
        "sysctl": sysctls(hc, net)?,
    });
    if !devices.is_empty() {
        linux["devices"] = Value::Array(devices);
    }
    if let Some(p) = propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": input.rootfs, "readonly": flag(hc, "ReadonlyRootfs")?},
        "mounts": mounts,
        "linux": linux,
    });
    if !uts_host {
        spec["hostname"] = json!(hostname);
    }
    match string(create, "Domainname")? {
        "" => {}
        d => spec["domainname"] = json!(d),
    }
    Ok(spec)
}

/// The command line the container runs, resolved as dockerd does: a request `Entrypoint`
/// replaces the image's and drops the image `Cmd`; a request `Cmd` replaces the image's;
/// `Entrypoint: [""]` clears the entrypoint.
pub fn command(create: &Value, image_config: &Value) -> Result<Vec<String>, SpecError> {
    let mut entrypoint = strs(create, "Entrypoint")?;
    let mut cmd = strs(create, "Cmd")?.unwrap_or_default();
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.is_empty() {
            cmd = strs(image_config, "Cmd")?.unwrap_or_default();
        }
        if entrypoint.is_none() {
            entrypoint = strs(image_config, "Entrypoint")?;
        }
    }
    let mut argv = entrypoint.unwrap_or_default();
    if argv.len() == 1 && argv[0].is_empty() {
        argv.clear();
    }
    argv.extend(cmd);
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// The process environment: Docker's `PATH`, `HOSTNAME` and (with a TTY) `TERM=xterm`, then
/// the request's `Env` and the image's (request wins by key); a bare `KEY` unsets `KEY`.
pub fn env(create: &Value, image_config: &Value, hostname: &str) -> Result<Vec<String>, SpecError> {
    fn key(e: &str) -> &str {
        e.split_once('=').map_or(e, |(k, _)| k)
    }
    let mut merged = strs(create, "Env")?.unwrap_or_default();
    for e in strs(image_config, "Env")?.unwrap_or_default() {
        if !merged.iter().any(|u| key(u) == key(&e)) {
            merged.push(e);
        }
    }
    let mut out = vec![
        format!("PATH={DEFAULT_PATH_ENV}"),
        format!("HOSTNAME={hostname}"),
    ];
    if flag(create, "Tty")? {
        out.push("TERM=xterm".into());
    }
    for e in merged {
        match (e.contains('='), out.iter().position(|o| key(o) == key(&e))) {
            (false, Some(i)) => {
                out.remove(i);
            }
            (false, None) => {}
            (true, Some(i)) => out[i] = e,
            (true, None) => out.push(e),
        }
    }
    Ok(out)
}

/// The container's hostname: `Hostname`, else the host's with host networking or UTS, else the
/// first 12 characters of the id.
pub fn hostname(create: &Value, id: &str) -> Result<String, SpecError> {
    let hc = &create["HostConfig"];
    let (name, uts_host) = (
        string(create, "Hostname")?,
        string(hc, "UTSMode")? == "host",
    );
    if uts_host && !name.is_empty() {
        return Err(SpecError::UtsHostname);
    }
    if !name.is_empty() {
        return Ok(name.to_string());
    }
    if uts_host || string(hc, "NetworkMode")? == "host" {
        if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname") {
            return Ok(h.trim().to_string());
        }
    }
    Ok(id.get(..12).unwrap_or(id).to_string())
}

fn working_dir(create: &Value, image_config: &Value) -> Result<String, SpecError> {
    let wd = match string(create, "WorkingDir")? {
        "" => string(image_config, "WorkingDir")?,
        w => w,
    };
    match wd {
        "" => Ok("/".into()),
        w if w.starts_with('/') => Ok(clean(w)),
        w => Err(SpecError::WorkingDir(w.into())),
    }
}

// ---- request field access (absent and null read as the zero value) ----

fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn bad_type(field: &'static str, expected: &'static str) -> SpecError {
    SpecError::FieldType { field, expected }
}

fn string<'v>(v: &'v Value, key: &'static str) -> Result<&'v str, SpecError> {
    get(v, key).map_or(Ok(""), |x| {
        x.as_str().ok_or_else(|| bad_type(key, "a string"))
    })
}

fn opt_int(v: &Value, key: &'static str) -> Result<Option<i64>, SpecError> {
    get(v, key)
        .map(|x| x.as_i64().ok_or_else(|| bad_type(key, "an integer")))
        .transpose()
}

fn int(v: &Value, key: &'static str) -> Result<i64, SpecError> {
    Ok(opt_int(v, key)?.unwrap_or(0))
}

fn flag(v: &Value, key: &'static str) -> Result<bool, SpecError> {
    get(v, key).map_or(Ok(false), |x| {
        x.as_bool().ok_or_else(|| bad_type(key, "a boolean"))
    })
}

fn list<'v>(v: &'v Value, key: &'static str) -> Result<&'v [Value], SpecError> {
    get(v, key).map_or(Ok(&[][..]), |x| {
        x.as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| bad_type(key, "an array"))
    })
}

/// Docker's `StrSlice`: null → `None`, a string → one element, else an array of strings.
fn strs(v: &Value, key: &'static str) -> Result<Option<Vec<String>>, SpecError> {
    match get(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_type(key, "an array of strings")),
        Some(_) => Err(bad_type(key, "an array of strings")),
    }
}

fn string_map<'v>(v: &'v Value, key: &'static str) -> Result<Vec<(&'v str, &'v str)>, SpecError> {
    let Some(x) = get(v, key) else {
        return Ok(Vec::new());
    };
    let bad = || bad_type(key, "an object of strings");
    let obj = x.as_object().ok_or_else(bad)?;
    obj.iter()
        .map(|(k, v)| Ok((k.as_str(), v.as_str().ok_or_else(bad)?)))
        .collect()
}

fn console_size(hc: &Value) -> Result<[Option<u64>; 2], SpecError> {
    let size = list(hc, "ConsoleSize")?;
    Ok([
        size.first().and_then(Value::as_u64),
        size.get(1).and_then(Value::as_u64),
    ])
}

/// Go's `path.Clean`.
fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            ".." if abs => {}
            c => out.push(c),
        }
    }
    match (abs, out.join("/")) {
        (true, body) => format!("/{body}"),
        (false, body) if body.is_empty() => ".".into(),
        (false, body) => body,
    }
}

// ---- security options, capabilities, user ----

struct Security {
    no_new_privileges: bool,
    writable_cgroups: bool,
}

fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn security(hc: &Value) -> Result<Security, SpecError> {
    let mut sec = Security {
        no_new_privileges: false,
        writable_cgroups: false,
    };
    for opt in strs(hc, "SecurityOpt")?.unwrap_or_default() {
        if opt == "no-new-privileges" || opt == "disable" {
            sec.no_new_privileges |= opt == "no-new-privileges";
            continue;
        }
        let bad = |stage| SpecError::SecurityOpt {
            stage,
            opt: opt.clone(),
        };
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(|| bad(1))?;
        match k {
            "label" | "apparmor" | "seccomp" => {}
            "no-new-privileges" => sec.no_new_privileges = go_bool(v).ok_or_else(|| bad(2))?,
            "writable-cgroups" => sec.writable_cgroups = go_bool(v).ok_or_else(|| bad(2))?,
            _ => return Err(bad(2)),
        }
    }
    Ok(sec)
}

/// Known capabilities that are also in this daemon's bounding set: a container cannot be given
/// more than its runtime holds (containerd's `WithAllCurrentCapabilities`).
fn host_caps() -> Vec<String> {
    let bounding = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let hex = s.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
        u64::from_str_radix(hex.trim(), 16).ok()
    });
    let held = |i: usize| bounding.is_none_or(|b| (b >> i) & 1 == 1);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| held(*i))
        .map(|(_, c)| c.to_string())
        .collect()
}

fn normalize_caps(hc: &Value, field: &'static str) -> Result<Vec<String>, SpecError> {
    let names = strs(hc, field)?.unwrap_or_default();
    names
        .iter()
        .map(|c| {
            let c = c.to_uppercase();
            if c == "ALL" {
                return Ok(c);
            }
            let c = if c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            };
            match ALL_CAPS.contains(&c.as_str()) {
                true => Ok(c),
                false => Err(SpecError::Capability { field, name: c }),
            }
        })
        .collect()
}

fn capabilities(hc: &Value, privileged: bool) -> Result<Vec<String>, SpecError> {
    let add = normalize_caps(hc, "CapAdd")?;
    let drop = normalize_caps(hc, "CapDrop")?;
    let has = |l: &[String], c: &str| l.iter().any(|x| x == c);
    let caps: Vec<String> = if privileged {
        host_caps()
    } else if has(&add, "ALL") {
        host_caps().into_iter().filter(|c| !has(&drop, c)).collect()
    } else if has(&drop, "ALL") {
        add
    } else {
        let kept = DEFAULT_CAPS
            .iter()
            .filter(|c| !has(&drop, c))
            .map(|c| c.to_string());
        kept.chain(add).collect()
    };
    let mut seen = HashSet::new();
    Ok(caps
        .into_iter()
        .filter(|c| seen.insert(c.clone()))
        .collect())
}

fn in_range(id: i64) -> Result<u32, SpecError> {
    u32::try_from(id)
        .ok()
        .filter(|i| i64::from(*i) <= MAX_ID)
        .ok_or(SpecError::IdRange)
}

/// Resolves `path` as if `root` were `/`: symlinks, absolute or relative, never leave `root`.
fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    fn parts(p: &Path) -> impl Iterator<Item = OsString> + '_ {
        p.components().rev().filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
    }
    let (mut done, mut todo, mut links) = (
        PathBuf::new(),
        parts(Path::new(path)).collect::<Vec<_>>(),
        0,
    );
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here = root.join(&done).join(&part);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                let target = fs::read_link(&here).ok().filter(|_| links <= 40)?;
                if target.has_root() {
                    done = PathBuf::new();
                }
                todo.extend(parts(&target));
            }
            _ => done.push(part),
        }
    }
    Some(root.join(done))
}

/// A small `/etc/passwd` or `/etc/group` from the rootfs; `None` when there is none.
fn read_etc(rootfs: &Path, name: &str) -> Result<Option<String>, SpecError> {
    let Some(path) = resolve_in_root(rootfs, name) else {
        return Ok(None);
    };
    let read = |path: &Path| -> std::io::Result<Option<String>> {
        if !fs::symlink_metadata(path)?.is_file() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        fs::File::open(path)?
            .take(MAX_ETC_FILE)
            .read_to_end(&mut buf)?;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    };
    match read(&path) {
        Ok(text) => Ok(text),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(SpecError::ReadRootfs { path, source }),
    }
}

/// `(name, id, gid-or-members)` entries of a passwd (`uid`, `gid`) or group (`gid`, members) file.
fn parse_etc(text: &str) -> Vec<(&str, i64, &str)> {
    let entry = |l: &str| {
        let f: Vec<&str> = l.trim().split(':').collect();
        Some((
            *f.first()?,
            f.get(2)?.parse().ok()?,
            *f.get(3).unwrap_or(&""),
        ))
    };
    text.lines().filter_map(entry).collect()
}

/// runc's `GetExecUser` for `user[:group]`, then Docker's additional gids: the primary gid,
/// the user's supplementary groups (implicit form only) and `GroupAdd`.
fn resolve_user(
    rootfs: &Path,
    spec: &str,
    group_add: &[String],
) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let (uid_num, gid_num) = (user_arg.parse::<i64>().ok(), group_arg.parse::<i64>().ok());
    let passwd = read_etc(rootfs, "/etc/passwd")?.unwrap_or_default();
    let found = parse_etc(&passwd)
        .into_iter()
        .find(|(name, uid, _)| match uid_num {
            _ if user_arg.is_empty() => *uid == 0,
            Some(n) => *uid == n,
            None => *name == user_arg,
        });
    let (uid, mut gid, name) = match (found, uid_num) {
        (Some((name, uid, gid)), _) => (uid, gid.parse::<i64>().unwrap_or(0), name),
        (None, _) if user_arg.is_empty() => (0, 0, ""),
        (None, Some(n)) => (n, 0, ""),
        (None, None) => return Err(SpecError::UserNotFound(user_arg.into())),
    };
    let need_groups = !group_arg.is_empty() || !name.is_empty() || !group_add.is_empty();
    let group_text = if need_groups {
        read_etc(rootfs, "/etc/group")?
    } else {
        None
    };
    let groups = group_text.as_deref().map(parse_etc).unwrap_or_default();
    let mut sgids = Vec::new();
    if !group_arg.is_empty() {
        let matched = groups
            .iter()
            .find(|(n, g, _)| gid_num.map_or(*n == group_arg, |x| *g == x));
        gid = match (matched, gid_num) {
            (Some((_, g, _)), _) => *g,
            (None, Some(n)) => n,
            (None, None) => return Err(SpecError::GroupNotFound(group_arg.into())),
        };
    } else if !name.is_empty() {
        let member = |m: &str| m.split(',').any(|u| u == name);
        sgids = groups
            .iter()
            .filter(|(_, _, m)| member(m))
            .map(|(_, g, _)| *g)
            .collect();
    }
    let mut gids = vec![in_range(gid)?];
    for g in sgids {
        gids.push(in_range(g)?);
    }
    let mut added = Vec::new();
    for ag in group_add {
        let g = match groups
            .iter()
            .find(|(n, g, _)| n == ag || g.to_string() == *ag)
        {
            Some((_, g, _)) => *g,
            None => ag
                .parse()
                .map_err(|_| SpecError::GroupAddNotFound(ag.clone()))?,
        };
        if !added.contains(&g) {
            added.push(g);
        }
    }
    for g in added {
        gids.push(in_range(g)?);
    }
    Ok((in_range(uid)?, in_range(gid)?, gids))
}

fn rlimits(hc: &Value) -> Result<Vec<Value>, SpecError> {
    let ulimit = |u: &Value| {
        let name = string(u, "Name")?;
        if !ULIMITS.contains(&name) {
            return Err(SpecError::UlimitName(name.into()));
        }
        let (soft, hard) = (int(u, "Soft")?, int(u, "Hard")?);
        // -1 is "unlimited" (RLIM_INFINITY), which is what the u64 cast makes of it.
        if soft as u64 > hard as u64 {
            return Err(SpecError::UlimitOrder { soft, hard });
        }
        let kind = format!("RLIMIT_{}", name.to_uppercase());
        Ok(json!({"type": kind, "soft": soft as u64, "hard": hard as u64}))
    };
    list(hc, "Ulimits")?.iter().map(ulimit).collect()
}

// ---- namespaces and sysctls ----

/// Docker's namespaces; returns them and whether the UTS namespace is the host's.
fn namespaces(
    hc: &Value,
    net: &str,
    ipc: &str,
    netns_path: Option<&str>,
) -> Result<(Vec<Value>, bool), SpecError> {
    let mode = |what, mode: &str| SpecError::Mode {
        what,
        mode: mode.into(),
    };
    let mut ns = vec![json!({"type": "mount"})];
    match (net, netns_path) {
        ("host", _) => {}
        (n, None) if n.starts_with("container:") => {
            return Err(SpecError::JoinContainer("network"));
        }
        (_, Some(path)) => ns.push(json!({"type": "network", "path": path})),
        (_, None) => ns.push(json!({"type": "network"})),
    }
    let uts = string(hc, "UTSMode")?;
    match uts {
        "" => ns.push(json!({"type": "uts"})),
        "host" => {}
        m => return Err(mode("UTS", m)),
    }
    match string(hc, "PidMode")? {
        "" => ns.push(json!({"type": "pid"})),
        "host" => {}
        m if m.starts_with("container:") => return Err(SpecError::JoinContainer("PID")),
        m => return Err(mode("PID", m)),
    }
    match ipc {
        "" | "private" | "shareable" | "none" => ns.push(json!({"type": "ipc"})),
        "host" => {}
        m if m.starts_with("container:") => return Err(SpecError::JoinContainer("IPC")),
        m => return Err(mode("IPC", m)),
    }
    match string(hc, "CgroupnsMode")? {
        "" | "private" => ns.push(json!({"type": "cgroup"})),
        "host" => {}
        m => return Err(mode("cgroup namespace", m)),
    }
    match string(hc, "UsernsMode")? {
        "" | "host" => {}
        m => return Err(mode("user namespace", m)),
    }
    Ok((ns, uts == "host"))
}

/// Docker's defaults for a private network namespace, then `HostConfig.Sysctls`.
fn sysctls(hc: &Value, net: &str) -> Result<Map<String, Value>, SpecError> {
    let mut out = Map::new();
    if net != "host" && !net.starts_with("container:") {
        out.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
        out.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
    }
    for (k, v) in string_map(hc, "Sysctls")? {
        if net == "host" && k.starts_with("net.") {
            return Err(SpecError::HostNetSysctl(k.into()));
        }
        out.insert(k.into(), json!(v));
    }
    Ok(out)
}

// ---- mounts ----

struct UserMount {
    dest: String,
    propagation: String,
    json: Value,
}

fn check_target(t: &str) -> Result<String, MountProblem> {
    match t {
        "" => Err(MountProblem::MissingField("Target")),
        t if clean(t) == "/" => Err(MountProblem::TargetIsRoot),
        t if !t.starts_with('/') => Err(MountProblem::NotAbsolute(t.into())),
        t => Ok(clean(t)),
    }
}

fn bind(
    source: &str,
    dest: &str,
    recursive: bool,
    ro: Option<&str>,
    propagation: &str,
) -> UserMount {
    let mut options = vec![if recursive { "rbind" } else { "bind" }];
    options.extend(ro);
    options.push(propagation);
    let json = json!({"destination": dest, "type": "bind", "source": source, "options": options});
    UserMount {
        dest: dest.into(),
        propagation: propagation.into(),
        json,
    }
}

/// Docker's `linuxValidMountMode`: at most one option of each kind.
fn valid_mode(mode: &str) -> bool {
    let kinds: &[&[&str]] = &[
        &["rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"],
        &["z", "Z"],
        PROPAGATIONS,
        &["nocopy"],
        &["consistent", "cached", "delegated"],
    ];
    let opts: Vec<&str> = mode.split(',').collect();
    mode.is_empty()
        || (opts.iter().all(|o| kinds.iter().any(|k| k.contains(o)))
            && kinds
                .iter()
                .all(|k| opts.iter().filter(|o| k.contains(o)).count() <= 1))
}

/// One `HostConfig.Binds` entry, `src:dst[:mode]`.
fn parse_bind(raw: &str) -> Result<UserMount, SpecError> {
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    let invalid = || SpecError::VolumeSpec(raw.into());
    let (src, dst, mode) = match parts[..] {
        [""] | ["", ..] => return Err(invalid()),
        [_] => return Err(SpecError::Volume(raw.into())),
        [_, m] if valid_mode(m) => return Err(invalid()),
        [s, d] => (s, d, ""),
        [s, d, m] => (s, d, m),
        _ => return Err(invalid()),
    };
    if !valid_mode(mode) {
        return Err(SpecError::VolumeMode(mode.into()));
    }
    if !src.starts_with('/') {
        return Err(SpecError::Volume(raw.into()));
    }
    let problem = |problem| SpecError::BindSpec {
        spec: raw.into(),
        problem,
    };
    let dest = check_target(dst).map_err(problem)?;
    let opts: Vec<&str> = mode.split(',').collect();
    if opts.contains(&"nocopy") {
        return Err(problem(MountProblem::ExtraField("VolumeOptions")));
    }
    let propagation = opts
        .iter()
        .find(|o| PROPAGATIONS.contains(o))
        .copied()
        .unwrap_or("rprivate");
    let ro = if opts
        .iter()
        .any(|o| *o == "rro" || *o == "ro-force-recursive")
    {
        Some("rro")
    } else if opts.iter().any(|o| *o == "ro" || *o == "ro-non-recursive") {
        Some("ro")
    } else {
        None
    };
    Ok(bind(&clean(src), &dest, true, ro, propagation))
}

/// One `HostConfig.Mounts` entry (API mount object).
fn parse_mount(m: &Value) -> Result<UserMount, SpecError> {
    let kind = string(m, "Type")?;
    let problem = |problem| SpecError::MountConfig {
        kind: kind.into(),
        problem,
    };
    let dest = check_target(string(m, "Target")?).map_err(problem)?;
    let (source, read_only) = (string(m, "Source")?, flag(m, "ReadOnly")?);
    let bind_opts = get(m, "BindOptions");
    match kind {
        "bind" => {
            let b = bind_opts.unwrap_or(&Value::Null);
            let propagation = match string(b, "Propagation")? {
                "" => "rprivate",
                p if PROPAGATIONS.contains(&p) => p,
                p => return Err(problem(MountProblem::Propagation(p.into()))),
            };
            if source.is_empty() {
                return Err(problem(MountProblem::MissingField("Source")));
            } else if get(m, "VolumeOptions").is_some() {
                return Err(problem(MountProblem::ExtraField("VolumeOptions")));
            } else if !source.starts_with('/') {
                return Err(problem(MountProblem::NotAbsolute(source.into())));
            } else if !flag(b, "CreateMountpoint")? && fs::metadata(source).is_err() {
                return Err(problem(MountProblem::SourceMissing(source.into())));
            }
            let ro = match (read_only, flag(b, "ReadOnlyForceRecursive")?) {
                (false, _) => None,
                (true, force) => Some(if force { "rro" } else { "ro" }),
            };
            let recursive = !flag(b, "NonRecursive")?;
            Ok(bind(&clean(source), &dest, recursive, ro, propagation))
        }
        "tmpfs" => {
            if bind_opts.is_some() {
                return Err(problem(MountProblem::ExtraField("BindOptions")));
            } else if !source.is_empty() {
                return Err(problem(MountProblem::ExtraField("Source")));
            }
            let t = get(m, "TmpfsOptions").unwrap_or(&Value::Null);
            let mut data: Vec<String> = Vec::new();
            if read_only {
                data.push("ro".into());
            }
            match int(t, "Mode")? {
                0 => {}
                mode => data.push(format!("mode={mode:o}")),
            }
            match int(t, "SizeBytes")? {
                0 => {}
                size => data.push(size_option(size)),
            }
            for opt in list(t, "Options")? {
                let words: Vec<&str> = opt
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match words[..] {
                    [o @ ("exec" | "noexec")] => data.push(o.into()),
                    [o @ ("exec" | "noexec"), v] => data.push(format!("{o}={v}")),
                    [o, ..] => return Err(problem(MountProblem::TmpfsOption(o.into()))),
                    [] => {
                        return Err(problem(MountProblem::TmpfsOption(
                            "invalid option array length".into(),
                        )));
                    }
                }
            }
            tmpfs(&dest, &data.join(","))
        }
        "volume" => Err(SpecError::Volume(format!("{source}:{dest}"))),
        _ => Err(problem(MountProblem::UnknownType)),
    }
}

/// `size=` with the largest unit that divides it evenly, as Docker writes it.
fn size_option(size: i64) -> String {
    for (suffix, unit) in [("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size % unit == 0 {
            return format!("size={}{suffix}", size / unit);
        }
    }
    format!("size={size}")
}

/// A tmpfs mount with Docker's defaults (`noexec,nosuid,nodev,rprivate`) merged with `data`:
/// the last option of each kind wins (moby/sys `MergeTmpfsOptions`).
fn tmpfs(dest: &str, data: &str) -> Result<UserMount, SpecError> {
    fn kind(opt: &str) -> Option<&str> {
        Some(match opt {
            "ro" | "rw" => "ro",
            "exec" | "noexec" => "exec",
            "suid" | "nosuid" => "suid",
            "dev" | "nodev" => "dev",
            "sync" | "async" => "sync",
            "atime" | "noatime" => "atime",
            "diratime" | "nodiratime" => "diratime",
            "relatime" | "norelatime" => "relatime",
            "strictatime" | "nostrictatime" => "strictatime",
            "mand" | "nomand" => "mand",
            "dirsync" | "remount" | "bind" | "rbind" => opt,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => "propagation",
            _ => return None,
        })
    }
    const DATA: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    let all = ["noexec", "nosuid", "nodev", "rprivate"]
        .into_iter()
        .chain(data.split(','));
    let (mut seen, mut options) = (HashSet::new(), Vec::new());
    for opt in all
        .filter(|o| !o.is_empty() && *o != "defaults")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let key = match kind(opt) {
            Some(k) => k,
            None => match opt.split_once('=') {
                Some((k, _)) if DATA.contains(&k) => k,
                _ => return Err(SpecError::TmpfsOption(opt.into())),
            },
        };
        if seen.insert(key) {
            options.insert(0, opt);
        }
    }
    let json = json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options});
    Ok(UserMount {
        dest: dest.into(),
        propagation: "rprivate".into(),
        json,
    })
}

/// Docker's default mounts, minus those a user mount replaces, then the network files, binds,
/// mounts and tmpfs sorted parents first. Also returns the rootfs propagation binds need.
fn mounts(
    input: &SpecInput,
    hc: &Value,
    privileged: bool,
    ipc: &str,
    writable_cgroups: bool,
) -> Result<(Vec<Value>, Option<&'static str>), SpecError> {
    if !list(hc, "VolumesFrom")?.is_empty() {
        return Err(SpecError::VolumesFrom);
    }
    let mut user = Vec::new();
    for b in strs(hc, "Binds")?.unwrap_or_default() {
        user.push(parse_bind(&b)?);
    }
    for m in list(hc, "Mounts")? {
        user.push(parse_mount(m)?);
    }
    for (dest, data) in string_map(hc, "Tmpfs")? {
        user.push(tmpfs(
            &check_target(dest).map_err(SpecError::TmpfsTarget)?,
            data,
        )?);
    }
    let mut dests = HashSet::new();
    if let Some(dup) = user.iter().find(|m| !dests.insert(m.dest.clone())) {
        return Err(SpecError::DuplicateMount(dup.dest.clone()));
    }
    let readonly = flag(hc, "ReadonlyRootfs")?;
    let ro = if readonly { Some("ro") } else { None };
    let dir = input.container_dir.trim_end_matches('/');
    for (file, dest) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        if !dests.contains(dest) {
            user.push(bind(&format!("{dir}/{file}"), dest, true, ro, "rprivate"));
        }
    }
    if ipc == "host" && !dests.contains("/dev/shm") {
        user.push(bind("/dev/shm", "/dev/shm", true, None, "rprivate"));
    }
    user.sort_by_key(|m| m.dest.matches('/').count());
    let dests: HashSet<&str> = user.iter().map(|m| m.dest.as_str()).collect();
    let shm = match int(hc, "ShmSize")? {
        0 => DEFAULT_SHM_SIZE,
        s if s < 0 => return Err(SpecError::ShmSize),
        s => s,
    };
    let mut out = Vec::new();
    for &(dest, kind, source, options) in DEFAULT_MOUNTS {
        let replaced =
            dests.contains(dest) || (dests.contains("/dev") && dest.starts_with("/dev/"));
        if replaced || (dest == "/dev/shm" && ipc == "none") {
            continue;
        }
        let mut options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        if dest == "/dev/shm" {
            options.push(format!("size={shm}"));
        }
        let exempt = matches!(
            dest,
            "/proc" | "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev"
        );
        if readonly && !exempt && !options.iter().any(|o| o == "ro") {
            options.push("ro".into());
        }
        if (dest == "/sys" && privileged) || (kind == "cgroup" && (privileged || writable_cgroups))
        {
            options.retain(|o| o != "ro");
        }
        out.push(json!({"destination": dest, "type": kind, "source": source, "options": options}));
    }
    let has = |p: &[&str]| user.iter().any(|m| p.contains(&m.propagation.as_str()));
    let propagation = if has(&["shared", "rshared"]) {
        Some("shared")
    } else if has(&["slave", "rslave"]) {
        Some("rslave")
    } else {
        None
    };
    out.extend(user.into_iter().map(|m| m.json));
    Ok((out, propagation))
}

// ---- devices and resources ----

struct HostDevice {
    kind: &'static str,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl HostDevice {
    /// The node at `path` (not following a final symlink); `None` if it is not a device.
    fn at(path: &Path) -> std::io::Result<Option<HostDevice>> {
        let m = fs::symlink_metadata(path)?;
        let kind = match m.file_type() {
            t if t.is_char_device() => "c",
            t if t.is_block_device() => "b",
            _ => return Ok(None),
        };
        let (major, minor) = dev_numbers(m.rdev());
        Ok(Some(HostDevice {
            kind,
            major,
            minor,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        }))
    }

    fn node(&self, path: &str) -> Value {
        json!({"path": path, "type": self.kind, "major": self.major, "minor": self.minor,
            "fileMode": self.mode, "uid": self.uid, "gid": self.gid})
    }

    fn rule(&self, access: &str) -> Value {
        json!({"allow": true, "type": self.kind, "major": self.major, "minor": self.minor, "access": access})
    }
}

/// glibc's `major()`/`minor()` of a `dev_t`.
fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    (major, minor)
}

/// Device nodes under `dir`, sorted, skipping `skip` directory names (as runc's `HostDevices`).
fn walk_devices(dir: &Path, skip: &[&str], depth: u32, out: &mut Vec<(PathBuf, HostDevice)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let (path, name) = (e.path(), e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() && depth < 8 && !skip.iter().any(|s| name == *s) => {
                walk_devices(&path, skip, depth + 1, out);
            }
            Ok(_) => {
                if let Ok(Some(d)) = HostDevice::at(&path) {
                    out.push((path, d));
                }
            }
            Err(_) => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
}

/// `PathOnHost` as a device, or every device under it if it is a directory (Docker's
/// `DevicesFromPath`), each with its path in the container.
fn devices_from_path(host: &str, inside: &str) -> Result<Vec<(String, HostDevice)>, SpecError> {
    let resolved = fs::canonicalize(host).unwrap_or_else(|_| PathBuf::from(host));
    match HostDevice::at(&resolved) {
        Ok(Some(d)) => return Ok(vec![(inside.into(), d)]),
        Ok(None) => {}
        Err(source) => {
            return Err(SpecError::DeviceStat {
                path: host.into(),
                source,
            });
        }
    }
    let mut found = Vec::new();
    if resolved.is_dir() {
        walk_devices(&resolved, &[], 0, &mut found);
    }
    if found.is_empty() {
        return Err(SpecError::NotADevice(host.into()));
    }
    let inside = inside.trim_end_matches('/');
    let rel = |p: &Path| {
        p.strip_prefix(&resolved)
            .map(|r| r.display().to_string())
            .unwrap_or_default()
    };
    Ok(found
        .into_iter()
        .map(|(p, d)| (format!("{inside}/{}", rel(&p)), d))
        .collect())
}

/// One `HostConfig.Devices` entry: the API object or the CLI's `host[:container][:perms]`.
fn device_request(d: &Value) -> Result<(String, String, String), SpecError> {
    let valid = |m: &str| !m.is_empty() && m.len() <= 3 && m.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match d {
        Value::String(s) => match s.split(':').collect::<Vec<_>>()[..] {
            [h] => (h, h, "rwm"),
            [h, p] if valid(p) => (h, h, p),
            [h, c] => (h, c, "rwm"),
            [h, c, p] => (h, c, p),
            _ => return Err(SpecError::DeviceSpec(s.clone())),
        },
        d => (
            string(d, "PathOnHost")?,
            string(d, "PathInContainer")?,
            string(d, "CgroupPermissions")?,
        ),
    };
    let perms = if perms.is_empty() { "rwm" } else { perms };
    if !valid(perms) || perms.chars().collect::<HashSet<_>>().len() != perms.len() {
        return Err(SpecError::DeviceMode(perms.into()));
    }
    let inside = if inside.is_empty() { host } else { inside };
    Ok((host.into(), inside.into(), perms.into()))
}

/// `HostConfig.DeviceCgroupRules` entry, e.g. `c 1:3 rwm` or `a *:* m`.
fn cgroup_rule(rule: &str) -> Result<Value, SpecError> {
    let bad = || SpecError::DeviceCgroupRule(rule.into());
    let (kind, numbers, access) = match rule.split(' ').collect::<Vec<_>>()[..] {
        [k @ ("a" | "b" | "c"), n, a]
            if !a.is_empty() && a.len() <= 3 && a.chars().all(|c| "rwm".contains(c)) =>
        {
            (k, n, a)
        }
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let mut out = json!({"allow": true, "type": kind, "access": access});
    for (key, n) in [("major", major), ("minor", minor)] {
        if n != "*" {
            let n: i64 = n
                .parse()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(bad)?;
            out[key] = json!(n);
        }
    }
    Ok(out)
}

/// `linux.devices` and the device cgroup rules.
fn devices(hc: &Value, privileged: bool) -> Result<(Vec<Value>, Vec<Value>), SpecError> {
    let (mut nodes, mut rules) = (Vec::new(), Vec::new());
    if privileged {
        let mut host = Vec::new();
        let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
        walk_devices(Path::new("/dev"), &skip, 0, &mut host);
        for (path, d) in host.iter().filter(|(p, _)| p != Path::new("/dev/console")) {
            nodes.push(d.node(&path.display().to_string()));
        }
        rules.push(json!({"allow": true, "access": "rwm"}));
    } else {
        rules.push(json!({"allow": false, "access": "rwm"}));
        for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
            rules.push(json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}));
        }
        rules
            .push(json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    }
    for d in list(hc, "Devices")? {
        let (host, inside, perms) = device_request(d)?;
        if privileged && host == inside {
            continue;
        }
        for (path, dev) in devices_from_path(&host, &inside)? {
            nodes.push(dev.node(&path));
            if !privileged {
                rules.push(dev.rule(&perms));
            }
        }
    }
    if !privileged {
        for r in strs(hc, "DeviceCgroupRules")?.unwrap_or_default() {
            rules.push(cgroup_rule(&r)?);
        }
    }
    Ok((nodes, rules))
}

/// `{major, minor, <field>}` for each `{Path, <key>}` in a blkio device list.
fn blkio_devices(
    hc: &Value,
    key: &'static str,
    field: &str,
    value: &'static str,
) -> Result<Vec<Value>, SpecError> {
    let entry = |e: &Value| {
        let path = string(e, "Path")?;
        let m = fs::metadata(path).map_err(|source| SpecError::BlkioDevice {
            path: path.into(),
            source,
        })?;
        let (major, minor) = dev_numbers(m.rdev());
        Ok(json!({"major": major, "minor": minor, field: int(e, value)?}))
    };
    list(hc, key)?.iter().map(entry).collect()
}

/// `linux.resources` from HostConfig, validated as dockerd does.
fn resources(hc: &Value, device_rules: Vec<Value>) -> Result<Value, SpecError> {
    const MIN_MEMORY: i64 = 6 << 20;
    let (limit, reservation, mut swap) = (
        int(hc, "Memory")?,
        int(hc, "MemoryReservation")?,
        int(hc, "MemorySwap")?,
    );
    let swappiness = opt_int(hc, "MemorySwappiness")?.filter(|s| *s != -1);
    match () {
        _ if limit != 0 && limit < MIN_MEMORY => return Err(SpecError::MemoryTooLow),
        _ if limit > 0 && swap > 0 && swap < limit => return Err(SpecError::SwapBelowMemory),
        _ if limit == 0 && swap > 0 => return Err(SpecError::SwapWithoutMemory),
        _ if reservation != 0 && reservation < MIN_MEMORY => {
            return Err(SpecError::ReservationTooLow);
        }
        _ if limit > 0 && reservation > limit => return Err(SpecError::ReservationAboveLimit),
        _ => {}
    }
    if let Some(s) = swappiness.filter(|s| !(0..=100).contains(s)) {
        return Err(SpecError::Swappiness(s));
    }
    if limit > 0 && swap == 0 {
        swap = limit.saturating_mul(2);
    }
    let mut memory = Map::new();
    let mut put = |m: &mut Map<String, Value>, k: &str, v: Value| m.insert(k.into(), v);
    if limit > 0 {
        put(&mut memory, "limit", json!(limit));
    }
    if reservation > 0 {
        put(&mut memory, "reservation", json!(reservation));
    }
    if swap != 0 {
        put(&mut memory, "swap", json!(swap));
    }
    if let Some(s) = swappiness {
        put(&mut memory, "swappiness", json!(s));
    }
    if flag(hc, "OomKillDisable")? {
        put(&mut memory, "disableOOMKiller", json!(true));
    }

    let (nano, period, quota, shares) = (
        int(hc, "NanoCpus")?,
        int(hc, "CpuPeriod")?,
        int(hc, "CpuQuota")?,
        int(hc, "CpuShares")?,
    );
    let ncpu = std::thread::available_parallelism().map_or(1, usize::from);
    match () {
        _ if nano > 0 && period > 0 => return Err(SpecError::NanoCpusConflict("Period")),
        _ if nano > 0 && quota > 0 => return Err(SpecError::NanoCpusConflict("Quota")),
        _ if nano < 0 || i128::from(nano) > ncpu as i128 * 1_000_000_000 => {
            return Err(SpecError::NanoCpusRange(ncpu));
        }
        _ if period != 0 && !(1000..=1_000_000).contains(&period) => {
            return Err(SpecError::CpuPeriod);
        }
        _ if quota > 0 && quota < 1000 => return Err(SpecError::CpuQuota),
        _ if shares < 0 => return Err(SpecError::CpuShares),
        _ => {}
    }
    let mut cpu = Map::new();
    if shares > 0 {
        put(&mut cpu, "shares", json!(shares));
    }
    if nano > 0 {
        put(&mut cpu, "period", json!(100_000));
        put(&mut cpu, "quota", json!(nano / 10_000));
    }
    if period != 0 {
        put(&mut cpu, "period", json!(period));
    }
    if quota != 0 {
        put(&mut cpu, "quota", json!(quota));
    }
    for (key, field) in [("CpusetCpus", "cpus"), ("CpusetMems", "mems")] {
        if let s @ [_, ..] = string(hc, key)?.as_bytes() {
            put(&mut cpu, field, json!(String::from_utf8_lossy(s)));
        }
    }
    for (key, field) in [
        ("CpuRealtimePeriod", "realtimePeriod"),
        ("CpuRealtimeRuntime", "realtimeRuntime"),
    ] {
        if let n @ 1.. = int(hc, key)? {
            put(&mut cpu, field, json!(n));
        }
    }

    let weight = int(hc, "BlkioWeight")?;
    if weight != 0 && !(10..=1000).contains(&weight) {
        return Err(SpecError::BlkioWeight);
    }
    let mut blkio = Map::new();
    if weight > 0 {
        put(&mut blkio, "weight", json!(weight));
    }
    let lists = [
        ("BlkioWeightDevice", "weightDevice", "weight", "Weight"),
        (
            "BlkioDeviceReadBps",
            "throttleReadBpsDevice",
            "rate",
            "Rate",
        ),
        (
            "BlkioDeviceWriteBps",
            "throttleWriteBpsDevice",
            "rate",
            "Rate",
        ),
        (
            "BlkioDeviceReadIOps",
            "throttleReadIOPSDevice",
            "rate",
            "Rate",
        ),
        (
            "BlkioDeviceWriteIOps",
            "throttleWriteIOPSDevice",
            "rate",
            "Rate",
        ),
    ];
    for (key, out, field, value) in lists {
        let devs = blkio_devices(hc, key, field, value)?;
        if !devs.is_empty() {
            put(&mut blkio, out, Value::Array(devs));
        }
    }

    let mut res = json!({"devices": device_rules});
    for (key, section) in [("memory", memory), ("cpu", cpu), ("blockIO", blkio)] {
        if !section.is_empty() {
            res[key] = Value::Object(section);
        }
    }
    if let Some(n @ 1..) = opt_int(hc, "PidsLimit")? {
        res["pids"] = json!({"limit": n});
    }
    Ok(res)
}
