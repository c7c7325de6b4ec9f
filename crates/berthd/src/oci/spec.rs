//! Docker "create" → OCI runtime spec: turns a `POST /containers/create` body plus the image
//! config into a runtime-spec 1.2 `config.json` value with dockerd's defaults (moby's
//! `oci/defaults.go`, `daemon/oci_linux.go`, its volume parser, runc's user lookup), rejecting
//! what dockerd rejects with dockerd's messages. It writes nothing and reads only the image's
//! `/etc/passwd` and `/etc/group` (never through a symlink out of their root), the devices
//! `HostConfig.Devices` names, and this process' capability bounding set.
//!
//! Volumes are the caller's: it rewrites named and anonymous ones to host paths first (so
//! `nocopy` and `VolumeOptions` on binds are accepted). It also adds `--init` (the static init
//! the caller found) and the seccomp profile (Berth's default, a given one, or none). The
//! image's `VOLUME`s and `--volumes-from` are the caller's too: it turns them into mounts
//! first (a `VolumesFrom` left in is refused). Not built: joining other containers' IPC/PID
//! namespaces (refused with an error), AppArmor/SELinux, user namespaces, host devices for
//! `--privileged`, `rootfsPropagation`, `DeviceCgroupRules`, tmpfs `Options`.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

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
    /// Where the image's `/etc/passwd` and `/etc/group` are (the rootfs is not mounted at create).
    pub user_root: &'a str,
    /// Directory holding the `hostname`, `hosts` and `resolv.conf` files to bind-mount.
    pub container_dir: &'a str,
    /// The host's hard `RLIMIT_NOFILE`. No default rlimits are added (containers inherit the
    /// shim's, as Docker's inherit containerd's); an unlimited `nofile` ulimit becomes this.
    pub hard_nofile: Option<u64>,
    /// Parent cgroup (`/berth` → `cgroupsPath` `/berth/<id>`); `HostConfig.CgroupParent` wins.
    pub cgroup_parent: &'a str,
    /// Network namespace to join; `None` makes a private one. Host networking has no entry.
    pub netns_path: Option<&'a str>,
    /// The static init `--init` runs as PID 1 (Docker's `docker-init`, i.e. tini), if found.
    pub init_path: Option<&'a str>,
}

/// Why a create request cannot become a spec; the messages are dockerd's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid value for {0}: expected {1}")]
    FieldType(&'static str, &'static str),
    #[error("No command specified")]
    NoCommand,
    #[error("invalid ulimit type: {0}")]
    UlimitType(String),
    #[error("--init: no docker-init (tini) binary found next to berthd or on PATH")]
    NoInit,
    #[error("Decoding seccomp profile failed: {0}")]
    Seccomp(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    WorkingDir(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    #[error("uids and gids must be in range 0-2147483647")]
    IdRange,
    #[error("reading the image's /etc/{0}")]
    ReadRootfs(&'static str, #[source] std::io::Error),
    #[error("invalid {0}: unknown capability: {1:?}")]
    Capability(&'static str, String),
    #[error("invalid {0} mode: {1}")]
    Mode(&'static str, String),
    #[error("joining another container's {0} namespace is not supported yet")]
    JoinContainer(&'static str),
    #[error("invalid volume specification: '{0}'")]
    VolumeSpec(String),
    #[error("invalid mode: {0}")]
    VolumeMode(String),
    #[error("invalid volume specification: '{0}': invalid mount config for type \"bind\": {1}")]
    BindSpec(String, MountProblem),
    #[error("invalid mount config for type {0:?}: {1}")]
    MountConfig(String, MountProblem),
    #[error("invalid tmpfs option {0:?}")]
    TmpfsOption(String),
    #[error("named volumes are not supported yet: {0}")]
    Volume(String),
    #[error("Duplicate mount point: {0}")]
    DuplicateMount(String),
    #[error(
        "error gathering device information while adding custom device {0:?}: not a device node"
    )]
    NotADevice(String),
    #[error("error gathering device information while adding custom device {0:?}")]
    DeviceStat(String, #[source] std::io::Error),
    #[error("stat {0}")]
    BlkioDevice(String, #[source] std::io::Error),
    #[error("{0} is not a block device")]
    NotABlockDevice(String),
    #[error("invalid device mode: {0}")]
    DeviceMode(String),
    #[error("Invalid value {0}, range for oom score adj is [-1000, 1000]")]
    OomScoreAdj(i64),
    /// A resource setting dockerd rejects (its message).
    #[error("{0}")]
    Resource(&'static str),
}

/// What is wrong with one mount (dockerd's wording), inside a [`SpecError`].
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
    #[error("mount type unknown")]
    UnknownType,
    /// Read-only options that contradict each other or what the host can do (moby's words).
    #[error("{0}")]
    ReadOnlyOption(&'static str),
}

type Result<T, E = SpecError> = std::result::Result<T, E>;
type Key = &'static str;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Docker's default capabilities, without their `CAP_` prefix.
const DEFAULT_CAPS: &str = "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID \
    SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE";
/// Every capability in number order, without its `CAP_` prefix.
const ALL_CAPS: &str = "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID \
    SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER \
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE \
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP \
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF \
    CHECKPOINT_RESTORE";
const MASKED_PATHS: &str = "/proc/asound /proc/acpi /proc/kcore /proc/keys \
    /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug /proc/scsi \
    /sys/firmware /sys/devices/virtual/powercap";
const READONLY_PATHS: &str = "/proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger";
/// Docker's default mounts: destination, type, source, options.
const DEFAULT_MOUNTS: &str = "/proc proc proc nosuid,noexec,nodev
    /dev tmpfs tmpfs nosuid,strictatime,mode=755,size=65536k
    /dev/pts devpts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5
    /sys sysfs sysfs nosuid,noexec,nodev,ro
    /sys/fs/cgroup cgroup cgroup ro,nosuid,noexec,nodev
    /dev/mqueue mqueue mqueue nosuid,noexec,nodev
    /dev/shm tmpfs shm nosuid,noexec,nodev,mode=1777";
const NO_NEW_PRIVILEGES: &str = "no-new-privileges no-new-privileges:true no-new-privileges=true";
const RW_MODES: &str = "rw ro ro-non-recursive ro-force-recursive rro";
const PROPAGATIONS: &str = "private rprivate slave rslave shared rshared";

/// The propagation a bind's mode names (`ro,rshared` → `rshared`), if any.
pub fn propagation_of(mode: &str) -> Option<&str> {
    mode.split(',').find(|o| has_word(PROPAGATIONS, o))
}
/// The mount flags and tmpfs parameters a tmpfs accepts (moby/sys `MergeTmpfsOptions`).
const TMPFS_FLAGS: &str = "ro rw exec noexec suid nosuid dev nodev sync async atime noatime \
    diratime nodiratime relatime norelatime strictatime nostrictatime mand nomand dirsync remount \
    bind rbind private rprivate shared rshared slave rslave unbindable runbindable";
const TMPFS_DATA: &str = "size mode uid gid nr_inodes nr_blocks mpol";

fn has_word(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

fn words(list: &str, prefix: &str) -> Vec<String> {
    let words = list.split_whitespace();
    words.map(|w| format!("{prefix}{w}")).collect()
}

/// The container's seccomp profile: Berth's default (also `seccomp=builtin`), none
/// (`seccomp=unconfined`, privileged)
/// or the one given (`seccomp=<JSON>`, as the docker CLI sends a profile file's content).
fn seccomp(opts: &[String], caps: &[String], privileged: bool) -> Result<Option<Value>> {
    let given = opts.iter().find_map(|o| {
        o.strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
    });
    match given {
        _ if privileged => Ok(None),
        Some("unconfined") => Ok(None),
        Some("builtin") | None => Ok(Some(super::seccomp_profile::default_profile(caps))),
        Some(text) => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| SpecError::Seccomp(e.to_string()))?;
            super::seccomp_profile::from_docker(&v, caps)
                .map(Some)
                .map_err(SpecError::Seccomp)
        }
    }
}

/// Where `--init`'s binary appears inside the container, as with Docker.
const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

/// Builds the OCI runtime spec for one container.
pub fn build(input: &SpecInput) -> Result<Value> {
    let (create, image) = (input.create, input.image_config);
    let hc = &create["HostConfig"];
    let mut args = command(create, image)?;
    let init = flag(hc, "Init")?;
    if init {
        input.init_path.ok_or(SpecError::NoInit)?;
        args.splice(0..0, [INIT_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let privileged = flag(hc, "Privileged")?;
    let short_id = input.id.get(..12).unwrap_or(input.id);
    let hostname = or(string(create, "Hostname")?, short_id);
    let user = or(string(create, "User")?, string(image, "User")?);
    let cwd = or(string(create, "WorkingDir")?, string(image, "WorkingDir")?);
    if !cwd.is_empty() && !cwd.starts_with('/') {
        return Err(SpecError::WorkingDir(cwd.into()));
    }
    let group_add = strs(hc, "GroupAdd")?.unwrap_or_default();
    let (uid, gid, gids) = resolve_user(Path::new(input.user_root), user, &group_add)?;
    let caps = capabilities(hc, privileged)?;
    // As execve does for a non-root user, Docker gives one only the bounding set.
    let held = if uid == 0 { caps.clone() } else { Vec::new() };
    let (net, ipc) = (string(hc, "NetworkMode")?, string(hc, "IpcMode")?);
    let (namespaces, uts_host) = namespaces(hc, net, ipc, input.netns_path)?;
    let mounts = mounts(input, hc, privileged, ipc)?;
    let (devices, rules) = devices(hc, privileged)?;
    let masked = strs(hc, "MaskedPaths")?.unwrap_or_else(|| words(MASKED_PATHS, ""));
    let readonly = strs(hc, "ReadonlyPaths")?.unwrap_or_else(|| words(READONLY_PATHS, ""));
    let opts = strs(hc, "SecurityOpt")?.unwrap_or_default();
    let oom = int(hc, "OomScoreAdj")?;
    if !(-1000..=1000).contains(&oom) {
        return Err(SpecError::OomScoreAdj(oom));
    }
    let parent = or(string(hc, "CgroupParent")?, input.cgroup_parent);
    let seccomp = seccomp(&opts, &caps, privileged)?;
    let mut mounts = mounts;
    if let (true, Some(path)) = (init, input.init_path) {
        mounts.push(
            json!({"destination": INIT_IN_CONTAINER, "type": "bind", "source": path,
            "options": ["bind", "ro"]}),
        );
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": flag(create, "Tty")?,
            "user": {"uid": uid, "gid": gid, "additionalGids": gids},
            "args": args,
            "env": env(create, image, hostname)?,
            "cwd": clean(cwd),
            "capabilities": {"bounding": caps, "effective": held, "permitted": held,
                "inheritable": [], "ambient": []},
            "rlimits": rlimits(hc, input.hard_nofile)?,
            "noNewPrivileges": opts.iter().any(|o| has_word(NO_NEW_PRIVILEGES, o)),
            "oomScoreAdj": oom,
        },
        "root": {"path": input.rootfs, "readonly": flag(hc, "ReadonlyRootfs")?},
        "hostname": if uts_host { None } else { Some(hostname) },
        "domainname": Some(string(create, "Domainname")?).filter(|d| !d.is_empty()),
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": if privileged { Vec::new() } else { masked },
            "readonlyPaths": if privileged { Vec::new() } else { readonly },
            "devices": devices,
            "resources": resources(hc, rules)?,
            "cgroupsPath": clean(&format!("/{parent}/{}", input.id)),
            "sysctl": sysctls(hc, net)?,
            "seccomp": seccomp,
        },
    });
    prune(&mut spec);
    Ok(spec)
}

/// Drops `null` members and the objects left empty, so absent settings stay absent.
fn prune(v: &mut Value) {
    if let Value::Array(items) = v {
        items.iter_mut().for_each(prune);
    } else if let Value::Object(map) = v {
        map.values_mut().for_each(prune);
        map.retain(|_, x| !x.is_null() && x.as_object().is_none_or(|o| !o.is_empty()));
    }
}

/// The command line, resolved as dockerd does: a request `Entrypoint` replaces the image's and
/// drops the image `Cmd`; a request `Cmd` replaces the image's; `Entrypoint: [""]` clears it.
pub fn command(create: &Value, image_config: &Value) -> Result<Vec<String>> {
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
    let mut argv = entrypoint.filter(|e| e != &[""]).unwrap_or_default();
    argv.extend(cmd);
    Some(argv)
        .filter(|a| !a.is_empty())
        .ok_or(SpecError::NoCommand)
}

/// The environment: Docker's `PATH`, `HOSTNAME` and (with a TTY) `TERM=xterm`, overridden or
/// extended by the request's `Env`, then the image's (the request wins by key); a bare `KEY`
/// unsets it.
pub fn env(create: &Value, image_config: &Value, hostname: &str) -> Result<Vec<String>> {
    fn key(e: &str) -> &str {
        e.split_once('=').map_or(e, |(k, _)| k)
    }
    let mut merged = strs(create, "Env")?.unwrap_or_default();
    for e in strs(image_config, "Env")?.unwrap_or_default() {
        if !merged.iter().any(|u| key(u) == key(&e)) {
            merged.push(e);
        }
    }
    let mut out = vec![format!("PATH={DEFAULT_PATH}")];
    out.push(format!("HOSTNAME={hostname}"));
    out.extend(flag(create, "Tty")?.then(|| "TERM=xterm".to_string()));
    for e in merged {
        match (e.contains('='), out.iter().position(|o| key(o) == key(&e))) {
            (true, Some(i)) => out[i] = e,
            (true, None) => out.push(e),
            (false, Some(i)) => drop(out.remove(i)),
            (false, None) => {}
        }
    }
    Ok(out)
}

// Request fields: absent and `null` read as the zero value; a wrong type is an error.

type Getter<'v, T> = fn(&'v Value) -> Option<T>;

fn typed<'v, T>(v: &'v Value, k: Key, what: Key, get: Getter<'v, T>) -> Result<Option<T>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => get(x).map(Some).ok_or(SpecError::FieldType(k, what)),
    }
}

fn string(v: &Value, k: Key) -> Result<&str> {
    Ok(typed(v, k, "a string", Value::as_str)?.unwrap_or_default())
}

fn opt_int(v: &Value, k: Key) -> Result<Option<i64>> {
    typed(v, k, "an integer", Value::as_i64)
}

fn int(v: &Value, k: Key) -> Result<i64> {
    Ok(opt_int(v, k)?.unwrap_or_default())
}

fn flag(v: &Value, k: Key) -> Result<bool> {
    Ok(typed(v, k, "a boolean", Value::as_bool)?.unwrap_or_default())
}

fn list(v: &Value, k: Key) -> Result<&[Value]> {
    Ok(typed(v, k, "an array", |x| Some(x.as_array()?.as_slice()))?.unwrap_or_default())
}

/// An object of strings, such as `Tmpfs` or `Sysctls`.
fn string_map(v: &Value, k: Key) -> Result<Map<String, Value>> {
    fn strings(o: &&Map<String, Value>) -> bool {
        o.values().all(Value::is_string)
    }
    let get = |x: &Value| x.as_object().filter(strings).cloned();
    Ok(typed(v, k, "an object of strings", get)?.unwrap_or_default())
}

/// Docker's `StrSlice`: `null` → `None`, a string → one element, else an array of strings.
fn strs(v: &Value, k: Key) -> Result<Option<Vec<String>>> {
    let items = |x: &Value| match x {
        Value::String(s) => Some(vec![s.clone()]),
        x => serde_json::from_value(x.clone()).ok(),
    };
    typed(v, k, "an array of strings", items)
}

/// Go's `path.Clean` of an absolute path.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        match c {
            ".." => out.truncate(out.len().saturating_sub(1)),
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// Known capabilities in this process' bounding set: a container cannot hold more than its
/// runtime does (containerd's `WithAllCurrentCapabilities`; this host lacks `SYS_RESOURCE`).
fn host_caps() -> Vec<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("CapBnd:"));
    let bounding = u64::from_str_radix(line.unwrap_or_default().trim(), 16);
    let held = |i: usize| (bounding.as_ref().unwrap_or(&u64::MAX) >> i) & 1 == 1;
    let caps = words(ALL_CAPS, "CAP_").into_iter().enumerate();
    caps.filter(|(i, _)| held(*i)).map(|(_, c)| c).collect()
}

/// Docker's default set after `CapAdd`/`CapDrop` (`CAP_` optional, any case, `ALL`).
fn capabilities(hc: &Value, privileged: bool) -> Result<Vec<String>> {
    let normalize = |field| -> Result<Vec<String>> {
        let mut out = Vec::new();
        for c in strs(hc, field)?.unwrap_or_default() {
            let c = c.to_uppercase();
            let name = format!("CAP_{}", c.strip_prefix("CAP_").unwrap_or(&c));
            match c.as_str() {
                "ALL" => out.push(c.clone()),
                _ if has_word(ALL_CAPS, &name[4..]) => out.push(name),
                _ => return Err(SpecError::Capability(field, name)),
            }
        }
        Ok(out)
    };
    let (add, drop) = (normalize("CapAdd")?, normalize("CapDrop")?);
    let all = |l: &[String]| l.iter().any(|c| c == "ALL");
    let kept = |base: Vec<String>| base.into_iter().filter(|c| !drop.contains(c));
    let mut caps: Vec<String> = match () {
        _ if privileged => host_caps(),
        _ if all(&drop) => add,
        _ if all(&add) => kept(host_caps()).collect(),
        _ => kept(words(DEFAULT_CAPS, "CAP_")).chain(add).collect(),
    };
    let mut seen = HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

fn in_range(id: i64) -> Result<u32> {
    let id = u32::try_from(id).ok().filter(|i| *i <= i32::MAX as u32);
    id.ok_or(SpecError::IdRange)
}

/// A rootfs' `/etc/passwd` or `/etc/group` (at most 4 MiB); empty when missing or when it
/// resolves outside the rootfs (a symlink is never followed onto the host).
fn read_etc(rootfs: &Path, name: &'static str) -> Result<String> {
    // Resolved inside the image's root: an absolute link there is the image's path.
    let read = || -> std::io::Result<String> {
        use rustix::fs::{Mode, OFlags};
        let mut buf = Vec::new();
        if !rootfs.is_absolute() {
            return Ok(String::new());
        }
        let root = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let path = Path::new("etc").join(name);
        // Only a regular file is ever opened for reading (never a device node of the image).
        match berth_inroot::open_regular(std::os::fd::AsFd::as_fd(&root), &path) {
            Ok((file, _)) => {
                file.take(4 << 20).read_to_end(&mut buf)?;
            }
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    use std::io::ErrorKind::{NotADirectory, NotFound};
    let looped =
        |e: &std::io::Error| e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    match read() {
        // Absent, or a link that leads nowhere inside the image: no entries.
        Err(e) if matches!(e.kind(), NotFound | NotADirectory) || looped(&e) => Ok(String::new()),
        result => result.map_err(|e| SpecError::ReadRootfs(name, e)),
    }
}

/// `(name, id, 4th field)` of each passwd (`uid`, gid) or group (`gid`, members) line.
fn parse_etc(text: &str) -> Vec<(&str, i64, &str)> {
    fn entry(l: &str) -> Option<(&str, i64, &str)> {
        let f: Vec<&str> = l.trim().split(':').collect();
        let fourth = f.get(3).copied().unwrap_or_default();
        Some((f[0], f.get(2)?.parse().ok()?, fourth))
    }
    text.lines().filter_map(entry).collect()
}

/// `user[:group]` (numbers or names in `root`'s `/etc/passwd` and `/etc/group`) as uid and gid.
pub fn user(spec: &str, root: &str) -> Result<(u32, u32)> {
    let (uid, gid, _) = resolve_user(Path::new(root), spec, &[])?;
    Ok((uid, gid))
}

/// runc's `GetExecUser` for `user[:group]`, then Docker's additional gids: the primary gid,
/// the user's supplementary groups (implicit group only) and `GroupAdd`.
fn resolve_user(rootfs: &Path, spec: &str, add: &[String]) -> Result<(u32, u32, Vec<u32>)> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let (uid_num, gid_num) = (user_arg.parse::<i64>().ok(), group_arg.parse::<i64>().ok());
    let (passwd, group) = (read_etc(rootfs, "passwd")?, read_etc(rootfs, "group")?);
    let (users, groups) = (parse_etc(&passwd), parse_etc(&group));
    let found = users.iter().find(|(name, uid, _)| match uid_num {
        _ if user_arg.is_empty() => *uid == 0,
        Some(n) => *uid == n,
        None => *name == user_arg,
    });
    let (uid, mut gid, name) = match (found, uid_num) {
        (Some(&(name, uid, gid)), _) => (uid, gid.parse().unwrap_or(0), name),
        (None, _) if user_arg.is_empty() => (0, 0, ""),
        (None, Some(n)) => (n, 0, ""),
        (None, None) => return Err(SpecError::UserNotFound(user_arg.into())),
    };
    let mut gids = Vec::new();
    if !group_arg.is_empty() {
        let matches = |g: &&(&str, i64, &str)| gid_num.map_or(g.0 == group_arg, |n| g.1 == n);
        let hit = groups.iter().find(matches);
        gid = match (hit, gid_num) {
            (Some(hit), _) => hit.1,
            (None, Some(n)) => n,
            (None, None) => return Err(SpecError::GroupNotFound(group_arg.into())),
        };
    } else if !name.is_empty() {
        let member = |g: &&(&str, i64, &str)| g.2.split(',').any(|u| u == name);
        gids.extend(groups.iter().filter(member).map(|g| g.1));
    }
    gids.insert(0, gid);
    for a in add {
        let named = groups.iter().find(|g| g.0 == a || g.1.to_string() == *a);
        let g = named.map(|g| g.1).or(a.parse().ok());
        gids.push(g.ok_or_else(|| SpecError::GroupNotFound(a.clone()))?);
    }
    let gids: Vec<u32> = gids.into_iter().map(in_range).collect::<Result<_>>()?;
    Ok((in_range(uid)?, in_range(gid)?, gids))
}

/// `HostConfig.Ulimits`, passed through (`-1` is unlimited); no defaults are added. An unlimited
/// `nofile` becomes the host's hard limit, as the kernel never accepts `RLIM_INFINITY` there.
fn rlimits(hc: &Value, hard_nofile: Option<u64>) -> Result<Vec<Value>> {
    // Docker's ulimit names (go-units); anything else is no resource of the kernel's.
    const NAMES: &str = "as core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack";
    let ulimit = |u: &Value| {
        let name = string(u, "Name")?;
        if !NAMES.split(' ').any(|n| n == name) {
            return Err(SpecError::UlimitType(name.to_string()));
        }
        let value = |k| -> Result<u64> {
            match (int(u, k)?, hard_nofile) {
                (-1, Some(hard)) if name == "nofile" => Ok(hard),
                (v, _) => Ok(v as u64),
            }
        };
        let kind = format!("RLIMIT_{}", name.to_uppercase());
        Ok(json!({"type": kind, "soft": value("Soft")?, "hard": value("Hard")?}))
    };
    list(hc, "Ulimits")?.iter().map(ulimit).collect()
}

/// Docker's namespaces, and whether the UTS namespace is the host's.
fn namespaces(hc: &Value, net: &str, ipc: &str, netns: Option<&str>) -> Result<(Vec<Value>, bool)> {
    let (uts, pid) = (string(hc, "UTSMode")?, string(hc, "PidMode")?);
    // dockerd's default cgroup namespace is private on a pure cgroup v2 host, else the host's.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cgroup = or(
        string(hc, "CgroupnsMode")?,
        if v2 { "private" } else { "host" },
    );
    let user = string(hc, "UsernsMode")?;
    // Any other network mode (none, bridge, a network's name, another container's) is
    // private: new, or `netns`, which berthd pins (or finds) when the container starts.
    let net = if net == "host" { "host" } else { "" };
    let modes = [
        ("network", net, "network", ""),
        ("uts", uts, "UTS", ""),
        ("pid", pid, "PID", ""),
        ("ipc", ipc, "IPC", "private shareable none"),
        ("cgroup", cgroup, "cgroup namespace", "private"),
        ("user", or(user, "host"), "user namespace", ""),
    ];
    let mut ns = vec![json!({"type": "mount"})];
    for (kind, mode, what, private) in modes {
        match mode {
            "host" => {}
            m if m.starts_with("container:") => return Err(SpecError::JoinContainer(what)),
            m if m.is_empty() || has_word(private, m) => {
                ns.push(json!({"type": kind, "path": netns.filter(|_| kind == "network")}));
            }
            m => return Err(SpecError::Mode(what, m.into())),
        }
    }
    Ok((ns, uts == "host"))
}

/// Docker's defaults for a private network namespace, then `HostConfig.Sysctls`.
fn sysctls(hc: &Value, net: &str) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    if net != "host" && !net.starts_with("container:") {
        out.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
        out.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
    }
    out.extend(string_map(hc, "Sysctls")?);
    Ok(out)
}

fn check_target(t: &str) -> Result<String, MountProblem> {
    match t {
        "" => Err(MountProblem::MissingField("Target")),
        t if !t.starts_with('/') => Err(MountProblem::NotAbsolute(t.into())),
        t if clean(t) == "/" => Err(MountProblem::TargetIsRoot),
        t => Ok(clean(t)),
    }
}

/// A bind mount with options `rbind` (or `bind`), the read-only ones, and the propagation.
fn bind(source: &str, dest: &str, options: [&str; 3]) -> Value {
    let options: Vec<&str> = options
        .into_iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
        .collect();
    json!({"destination": dest, "type": "bind", "source": clean(source), "options": options})
}

/// How read-only a bind is. Docker 25's rules: `ro` is read-only all the way down (every mount
/// below the source too) where the kernel can (`mount_setattr`, Linux 5.12), else only at the
/// top; `ro-non-recursive` only at the top; `ro-force-recursive` (`rro`) all the way or the
/// start fails.
enum ReadOnly {
    No,
    TopOnly,
    Recursive,
    Force,
}

impl ReadOnly {
    fn options(self) -> &'static str {
        match self {
            ReadOnly::No => "",
            ReadOnly::TopOnly => "ro",
            ReadOnly::Recursive if !recursive_attrs_supported() => "ro",
            ReadOnly::Recursive | ReadOnly::Force => "ro,rro",
        }
    }
}

/// Whether this kernel has `mount_setattr` (5.12 and later), which recursive mount options need.
fn recursive_attrs_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (5, 12)
    })
}

/// Docker's `linuxValidMountMode`: known options, at most one read-write and one propagation.
fn valid_mode(mode: &str) -> bool {
    const KNOWN: &str = "z Z nocopy consistent cached delegated";
    let opts: Vec<&str> = mode.split(',').collect();
    let count = |kind: &str| opts.iter().filter(|o| has_word(kind, o)).count();
    let (rw, prop) = (count(RW_MODES), count(PROPAGATIONS));
    mode.is_empty() || (rw <= 1 && prop <= 1 && rw + prop + count(KNOWN) == opts.len())
}

/// One `HostConfig.Binds` entry, `src:dst[:mode]` (a host path; a name is a volume).
fn parse_bind(raw: &str) -> Result<Value> {
    let invalid = || SpecError::VolumeSpec(raw.into());
    let (src, dst, mode) = match raw.splitn(4, ':').collect::<Vec<_>>()[..] {
        [""] | ["", ..] => return Err(invalid()),
        [_] => return Err(SpecError::Volume(raw.into())),
        [_, m] if valid_mode(m) => return Err(invalid()),
        [s, d] => (s, d, ""),
        [s, d, m] => (s, d, m),
        _ => return Err(invalid()),
    };
    if !valid_mode(mode) {
        return Err(SpecError::VolumeMode(mode.into()));
    } else if !src.starts_with('/') {
        return Err(SpecError::Volume(raw.into()));
    }
    let problem = |p| SpecError::BindSpec(raw.into(), p);
    let dest = check_target(dst).map_err(problem)?;
    let opts: Vec<&str> = mode.split(',').collect();
    let ro = match () {
        _ if opts.contains(&"rro") || opts.contains(&"ro-force-recursive") => ReadOnly::Force,
        _ if opts.contains(&"ro-non-recursive") => ReadOnly::TopOnly,
        _ if opts.contains(&"ro") => ReadOnly::Recursive,
        _ => ReadOnly::No,
    }
    .options();
    let prop = propagation_of(mode);
    Ok(bind(src, &dest, ["rbind", ro, prop.unwrap_or("rprivate")]))
}

/// One `HostConfig.Mounts` entry (the API's mount object).
fn parse_mount(m: &Value) -> Result<Value> {
    let kind = string(m, "Type")?;
    let problem = |p| SpecError::MountConfig(kind.into(), p);
    let dest = check_target(string(m, "Target")?).map_err(problem)?;
    let (source, read_only) = (string(m, "Source")?, flag(m, "ReadOnly")?);
    let (b, t) = (&m["BindOptions"], &m["TmpfsOptions"]);
    let fault = match kind {
        "bind" => {
            let prop = or(string(b, "Propagation")?, "rprivate");
            let exists = flag(b, "CreateMountpoint")? || fs::metadata(source).is_ok();
            let recursive = ["rbind", "bind"][usize::from(flag(b, "NonRecursive")?)];
            let (top_only, force) = (
                flag(b, "ReadOnlyNonRecursive")?,
                flag(b, "ReadOnlyForceRecursive")?,
            );
            let ro = match () {
                _ if !read_only => ReadOnly::No,
                _ if force => ReadOnly::Force,
                _ if top_only || flag(b, "NonRecursive")? => ReadOnly::TopOnly,
                _ => ReadOnly::Recursive,
            }
            .options();
            let conflict = match () {
                _ if top_only && !read_only => {
                    Some("option 'ReadOnlyNonRecursive' requires 'ReadOnly' to be set")
                }
                _ if force && !read_only => {
                    Some("option 'ReadOnlyForceRecursive' requires 'ReadOnly' to be set")
                }
                _ if force && top_only => {
                    Some("option 'ReadOnlyForceRecursive' conflicts with 'ReadOnlyNonRecursive'")
                }
                _ if force && !recursive_attrs_supported() => Some(
                    "option 'ReadOnlyForceRecursive' needs a kernel with mount_setattr (Linux 5.12 or later)",
                ),
                _ => None,
            };
            match () {
                _ if conflict.is_some() => MountProblem::ReadOnlyOption(conflict.unwrap_or("")),
                _ if !has_word(PROPAGATIONS, prop) => MountProblem::Propagation(prop.into()),
                _ if source.is_empty() => MountProblem::MissingField("Source"),
                _ if !source.starts_with('/') => MountProblem::NotAbsolute(source.into()),
                _ if !exists => MountProblem::SourceMissing(source.into()),
                _ => return Ok(bind(source, &dest, [recursive, ro, prop])),
            }
        }
        "tmpfs" if !b.is_null() => MountProblem::ExtraField("BindOptions"),
        "tmpfs" if !source.is_empty() => MountProblem::ExtraField("Source"),
        "tmpfs" => {
            let (mode, size) = (int(t, "Mode")?, int(t, "SizeBytes")?);
            let mut data = vec![read_only.then(|| "ro".to_string())];
            data.push((mode != 0).then(|| format!("mode={mode:o}")));
            data.push((size != 0).then(|| format!("size={size}")));
            let data: Vec<String> = data.into_iter().flatten().collect();
            return tmpfs(&dest, &data.join(","));
        }
        "volume" => return Err(SpecError::Volume(format!("{source}:{dest}"))),
        _ => MountProblem::UnknownType,
    };
    Err(problem(fault))
}

/// A tmpfs with Docker's `noexec,nosuid,nodev,rprivate`, then the options asked for (the last of
/// a kind wins when applied, as moby/sys `MergeTmpfsOptions` has it): mount flags or parameters.
fn tmpfs(dest: &str, data: &str) -> Result<Value> {
    let mut options = vec!["noexec", "nosuid", "nodev", "rprivate"];
    let wanted = |o: &&str| !o.is_empty() && *o != "defaults";
    for opt in data.split(',').filter(wanted) {
        let key = opt.split_once('=').map_or("", |(k, _)| k);
        if !has_word(TMPFS_FLAGS, opt) && !has_word(TMPFS_DATA, key) {
            return Err(SpecError::TmpfsOption(opt.into()));
        }
        options.push(opt);
    }
    Ok(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}))
}

/// Docker's default mounts less those replaced, then the user's and the network files.
fn mounts(input: &SpecInput, hc: &Value, privileged: bool, ipc: &str) -> Result<Vec<Value>> {
    let binds = strs(hc, "Binds")?.unwrap_or_default();
    let mut user: Vec<Value> = binds.iter().map(|b| parse_bind(b)).collect::<Result<_>>()?;
    for m in list(hc, "Mounts")? {
        user.push(parse_mount(m)?);
    }
    for (dest, data) in string_map(hc, "Tmpfs")? {
        let problem = |p| SpecError::MountConfig("tmpfs".into(), p);
        let dest = check_target(&dest).map_err(problem)?;
        user.push(tmpfs(&dest, data.as_str().unwrap_or_default())?);
    }
    if !list(hc, "VolumesFrom")?.is_empty() {
        return Err(SpecError::Volume("--volumes-from".into()));
    }
    let dest = |m: &Value| m["destination"].as_str().unwrap_or_default().to_string();
    let mut dests = HashSet::new();
    if let Some(dup) = user.iter().map(dest).find(|d| !dests.insert(d.clone())) {
        return Err(SpecError::DuplicateMount(dup));
    }
    let readonly = flag(hc, "ReadonlyRootfs")?;
    let dir = input.container_dir.trim_end_matches('/');
    let ro = if readonly { "ro" } else { "" };
    for file in ["hostname", "hosts", "resolv.conf"] {
        let (source, target) = (format!("{dir}/{file}"), format!("/etc/{file}"));
        if !dests.contains(&target) {
            user.push(bind(&source, &target, ["rbind", ro, "rprivate"]));
        }
    }
    if ipc == "host" && !dests.contains("/dev/shm") {
        user.push(bind("/dev/shm", "/dev/shm", ["rbind", "", "rprivate"]));
    }
    user.sort_by_key(|m| dest(m).matches('/').count());
    let dests: HashSet<String> = user.iter().map(dest).collect();
    let shm = Some(int(hc, "ShmSize")?).filter(|s| *s != 0);
    let mut out = Vec::new();
    for line in DEFAULT_MOUNTS.lines().map(str::split_whitespace) {
        let [target, kind, source, options] = line.collect::<Vec<_>>()[..] else {
            continue;
        };
        let under_dev = target.starts_with("/dev/") && dests.contains("/dev");
        if dests.contains(target) || under_dev || (target == "/dev/shm" && ipc == "none") {
            continue;
        }
        let mut options: Vec<String> = options.split(',').map(String::from).collect();
        if target == "/dev/shm" {
            options.push(format!("size={}", shm.unwrap_or(64 << 20)));
        }
        let exempt = has_word("/proc /dev/pts /dev/shm /dev/mqueue /dev", target);
        if readonly && !exempt && !options.iter().any(|o| o == "ro") {
            options.push("ro".into());
        }
        if privileged && (target == "/sys" || kind == "cgroup") {
            options.retain(|o| o != "ro");
        }
        let m = json!({"destination": target, "type": kind, "source": source, "options": options});
        out.push(m);
    }
    out.extend(user);
    Ok(out)
}

/// `linux.devices` from `HostConfig.Devices`, each stat-ed on the host (symlinks followed), and
/// the device cgroup rules: deny all, allow Docker's defaults and those devices; or allow
/// everything for `--privileged`.
fn devices(hc: &Value, privileged: bool) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rules = vec![json!({"allow": privileged, "access": "rwm"})];
    // Allow zero, null, urandom, random, tty and console; deny fuse.
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1), (10, 229)] {
        let rule = json!({"allow": major != 10, "type": "c", "major": major, "minor": minor,
            "access": "rwm"});
        rules.extend((!privileged).then_some(rule));
    }
    let mut nodes = Vec::new();
    for d in list(hc, "Devices")? {
        let (host, inside) = (string(d, "PathOnHost")?, string(d, "PathInContainer")?);
        let perms = or(string(d, "CgroupPermissions")?, "rwm");
        let repeated = "rwm".chars().any(|c| perms.matches(c).count() > 1);
        if repeated || perms.chars().any(|c| !"rwm".contains(c)) {
            return Err(SpecError::DeviceMode(perms.into()));
        }
        let m = fs::metadata(host).map_err(|e| SpecError::DeviceStat(host.into(), e))?;
        let kind = match m.file_type() {
            t if t.is_char_device() => "c",
            t if t.is_block_device() => "b",
            _ => return Err(SpecError::NotADevice(host.into())),
        };
        let (major, minor) = dev_numbers(m.rdev());
        let (path, mode, uid, gid) = (or(inside, host), m.mode() & 0o7777, m.uid(), m.gid());
        let node = json!({"path": path, "type": kind, "major": major, "minor": minor,
            "fileMode": mode, "uid": uid, "gid": gid});
        let rule = json!({"allow": true, "type": kind, "major": major, "minor": minor,
            "access": perms});
        rules.extend((!privileged).then_some(rule));
        nodes.push(node);
    }
    Ok((nodes, rules))
}

/// glibc's major() and minor() of a dev_t.
fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    (major, minor)
}

/// A HostConfig list of `{Path, <value_key>}` (`BlkioWeightDevice`, `BlkioDeviceReadBps`...) as
/// OCI per-device entries `{major, minor, <oci_key>}`, each path stat-ed on the host as dockerd
/// does (symlinks followed).
fn blkio_devices(hc: &Value, key: Key, value_key: Key, oci_key: &str) -> Result<Option<Value>> {
    let mut out = Vec::new();
    for d in list(hc, key)? {
        let path = string(d, "Path")?;
        let m = fs::metadata(path).map_err(|e| SpecError::BlkioDevice(path.into(), e))?;
        if !m.file_type().is_block_device() {
            return Err(SpecError::NotABlockDevice(path.into()));
        }
        let (major, minor) = dev_numbers(m.rdev());
        out.push(json!({"major": major, "minor": minor, oci_key: int(d, value_key)?}));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// `return Err(SpecError::Resource(message))` for the first condition that holds.
macro_rules! reject {
    ($($bad:expr => $message:literal,)*) => {
        $(if $bad { return Err(SpecError::Resource($message)); })*
    };
}

/// `linux.resources` for an updated HostConfig, keeping the device rules of `old`.
pub fn updated_resources(hc: &Value, old: &Value) -> Result<Value> {
    let devices = old["devices"].as_array().cloned().unwrap_or_default();
    let mut r = resources(hc, devices)?;
    prune(&mut r);
    Ok(r)
}

/// `linux.resources` from HostConfig, validated as dockerd does.
fn resources(hc: &Value, device_rules: Vec<Value>) -> Result<Value> {
    let (limit, reserve) = (int(hc, "Memory")?, int(hc, "MemoryReservation")?);
    let (swap, swappiness) = (int(hc, "MemorySwap")?, opt_int(hc, "MemorySwappiness")?);
    let (nano, shares) = (int(hc, "NanoCpus")?, int(hc, "CpuShares")?);
    let (period, quota) = (int(hc, "CpuPeriod")?, int(hc, "CpuQuota")?);
    let (weight, min) = (int(hc, "BlkioWeight")?, 6 << 20);
    let swappiness = swappiness.filter(|s| *s != -1);
    reject! {
        limit != 0 && limit < min => "Minimum memory limit allowed is 6MB",
        limit > 0 && swap > 0 && swap < limit => "Minimum memoryswap limit should be larger than memory limit, see usage",
        limit == 0 && swap > 0 => "You should always set the Memory limit when using Memoryswap limit, see usage",
        limit > 0 && reserve > limit => "Minimum memory limit can not be less than memory reservation limit, see usage",
        swappiness.is_some_and(|s| !(0..=100).contains(&s)) => "valid memory swappiness range is 0-100",
        nano > 0 && period > 0 => "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        nano > 0 && quota > 0 => "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        period != 0 && !(1000..=1_000_000).contains(&period) => "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        quota > 0 && quota < 1000 => "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        weight != 0 && !(10..=1000).contains(&weight) => "Range of blkio weight is from 10 to 1000",
    }
    for d in list(hc, "BlkioWeightDevice")? {
        let w = int(d, "Weight")?;
        reject! {
            w != 0 && !(10..=1000).contains(&w) => "Range of blkio weight is from 10 to 1000",
        }
    }
    let positive = |n: i64| (n > 0).then_some(n);
    let nonzero = |n: i64| (n != 0).then_some(n);
    let cpuset = |k| Ok::<_, SpecError>(Some(string(hc, k)?).filter(|s| !s.is_empty()));
    // Docker's default swap is twice the memory limit; -1 is unlimited.
    Ok(json!({
        "devices": device_rules,
        "memory": {"limit": positive(limit), "reservation": positive(reserve),
            "swap": nonzero(if limit > 0 && swap == 0 { limit.saturating_mul(2) } else { swap }),
            "swappiness": swappiness,
            "disableOOMKiller": flag(hc, "OomKillDisable")?.then_some(true)},
        "cpu": {"shares": positive(shares),
            "quota": nonzero(quota).or(positive(nano / 10_000)),
            "period": nonzero(period).or(positive(nano).map(|_| 100_000)),
            "cpus": cpuset("CpusetCpus")?, "mems": cpuset("CpusetMems")?,
            "realtimePeriod": positive(int(hc, "CpuRealtimePeriod")?),
            "realtimeRuntime": nonzero(int(hc, "CpuRealtimeRuntime")?)},
        "pids": {"limit": opt_int(hc, "PidsLimit")?.and_then(positive)},
        "blockIO": {"weight": positive(weight),
            "weightDevice": blkio_devices(hc, "BlkioWeightDevice", "Weight", "weight")?,
            "throttleReadBpsDevice": blkio_devices(hc, "BlkioDeviceReadBps", "Rate", "rate")?,
            "throttleWriteBpsDevice": blkio_devices(hc, "BlkioDeviceWriteBps", "Rate", "rate")?,
            "throttleReadIOPSDevice": blkio_devices(hc, "BlkioDeviceReadIOps", "Rate", "rate")?,
            "throttleWriteIOPSDevice": blkio_devices(hc, "BlkioDeviceWriteIOps", "Rate", "rate")?},
    }))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
