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
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_api::config::ContainerConfig;
use berth_api::host_config::{HostConfig, Mount as ApiMount};
use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, Mount, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Process, Root, Spec, User,
};
use serde::de::DeserializeOwned;

/// Everything the spec depends on besides the request.
pub struct SpecInput<'a> {
    /// The 64-hex container id.
    pub id: &'a str,
    /// The request's container config.
    pub config: &'a ContainerConfig,
    /// The request's `HostConfig`, its volumes already turned into binds.
    pub host: &'a HostConfig,
    /// The image config's `config`.
    pub image_config: &'a ContainerConfig,
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
    #[error(transparent)]
    User(#[from] berth_oci::users::UserError),
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
    /// An OCI spec value out of its type's range.
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
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

use berth_oci::caps::{ALL as ALL_CAPS, DEFAULT as DEFAULT_CAPS};
use berth_oci::defaults::{
    MASKED_PATHS, MOUNTS as DEFAULT_MOUNTS, PATH as DEFAULT_PATH, READONLY_PATHS,
};
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

use berth_oci::caps::words;

/// The container's seccomp profile: Berth's default (also `seccomp=builtin`), none
/// (`seccomp=unconfined`, privileged)
/// or the one given (`seccomp=<JSON>`, as the docker CLI sends a profile file's content).
fn seccomp(opts: &[String], caps: &[String], privileged: bool) -> Result<Option<LinuxSeccomp>> {
    let given = opts.iter().find_map(|o| {
        o.strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
    });
    match given {
        _ if privileged => Ok(None),
        Some("unconfined") => Ok(None),
        Some("builtin") | None => Ok(Some(berth_oci::seccomp::default_profile(caps)?)),
        Some(text) => berth_oci::seccomp::from_docker(text, caps)
            .map(Some)
            .map_err(SpecError::Seccomp),
    }
}

/// Where `--init`'s binary appears inside the container, as with Docker.
const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

/// One of oci-spec's enums by its name in the spec (`CAP_CHOWN`, `RLIMIT_NOFILE`...).
pub fn named<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Builds the OCI runtime spec for one container.
pub fn build(input: &SpecInput) -> Result<Spec> {
    let (config, hc, image) = (input.config, input.host, input.image_config);
    let mut args = command(config, image)?;
    let init = hc.init.unwrap_or(false);
    if init {
        input.init_path.ok_or(SpecError::NoInit)?;
        args.splice(0..0, [INIT_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let privileged = hc.privileged;
    let short_id = input.id.get(..12).unwrap_or(input.id);
    let hostname = or(&config.hostname, short_id);
    let user = or(&config.user, &image.user);
    let cwd = or(&config.working_dir, &image.working_dir);
    if !cwd.is_empty() && !cwd.starts_with('/') {
        return Err(SpecError::WorkingDir(cwd.into()));
    }
    let group_add = hc.group_add.clone().unwrap_or_default();
    let (uid, gid, gids) = berth_oci::users::resolve(Path::new(input.user_root), user, &group_add)?;
    let caps = capabilities(hc, privileged)?;
    // As execve does for a non-root user, Docker gives one only the bounding set.
    let held: Capabilities = match uid {
        0 => caps.iter().filter_map(|c| named(c)).collect(),
        _ => Capabilities::new(),
    };
    let (net, ipc) = (hc.network_mode.as_str(), hc.ipc_mode.as_str());
    let (namespaces, uts_host) = namespaces(hc, net, ipc, input.netns_path)?;
    let mut mounts = mounts(input, hc, privileged, ipc)?;
    let (devices, rules) = devices(hc, privileged)?;
    let masked = hc.masked_paths.clone();
    let readonly = hc.readonly_paths.clone();
    let opts = hc.security_opt.clone().unwrap_or_default();
    let oom = hc.oom_score_adj;
    if !(-1000..=1000).contains(&oom) {
        return Err(SpecError::OomScoreAdj(oom));
    }
    let parent = or(&hc.resources.cgroup_parent, input.cgroup_parent);
    let seccomp = seccomp(&opts, &caps, privileged)?;
    if let (true, Some(path)) = (init, input.init_path) {
        mounts.push(mount(INIT_IN_CONTAINER, "bind", path, &["bind", "ro"]));
    }
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.iter().filter_map(|c| named(c)).collect()))
        .set_effective(Some(held.clone()))
        .set_permitted(Some(held))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    let mut process_user = User::default();
    process_user
        .set_uid(uid)
        .set_gid(gid)
        .set_additional_gids(Some(gids));
    let mut process = Process::default();
    process
        .set_terminal(Some(config.tty))
        .set_user(process_user)
        .set_args(Some(args))
        .set_env(Some(env(config, image, hostname)))
        .set_cwd(clean(cwd).into())
        .set_capabilities(Some(capabilities))
        .set_rlimits(Some(rlimits(hc, input.hard_nofile)?))
        .set_no_new_privileges(Some(opts.iter().any(|o| has_word(NO_NEW_PRIVILEGES, o))))
        .set_oom_score_adj(Some(oom as i32));
    let mut root = Root::default();
    root.set_path(input.rootfs.into())
        .set_readonly(Some(hc.readonly_rootfs));
    let sysctl = sysctls(hc, net);
    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(match masked {
            _ if privileged => Vec::new(),
            Some(m) => m,
            None => words(MASKED_PATHS, ""),
        }))
        .set_readonly_paths(Some(match readonly {
            _ if privileged => Vec::new(),
            Some(r) => r,
            None => words(READONLY_PATHS, ""),
        }))
        .set_devices(Some(devices))
        .set_resources(Some(super::resources::resources(&hc.resources, rules)?))
        .set_cgroups_path(Some(clean(&format!("/{parent}/{}", input.id)).into()))
        .set_sysctl((!sysctl.is_empty()).then_some(sysctl))
        .set_seccomp(seccomp);
    let mut spec = Spec::default();
    spec.set_version("1.2.0".into())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname((!uts_host).then(|| hostname.to_string()))
        .set_domainname(Some(config.domainname.clone()).filter(|d| !d.is_empty()))
        .set_mounts(Some(mounts))
        .set_annotations(None)
        .set_linux(Some(linux));
    Ok(spec)
}

/// The command line, resolved as dockerd does: a request `Entrypoint` replaces the image's and
/// drops the image `Cmd`; a request `Cmd` replaces the image's; `Entrypoint: [""]` clears it.
pub fn command(config: &ContainerConfig, image: &ContainerConfig) -> Result<Vec<String>> {
    let mut entrypoint = config.entrypoint.clone();
    let mut cmd = config.cmd.clone().unwrap_or_default();
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.is_empty() {
            cmd = image.cmd.clone().unwrap_or_default();
        }
        if entrypoint.is_none() {
            entrypoint.clone_from(&image.entrypoint);
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
pub fn env(config: &ContainerConfig, image: &ContainerConfig, hostname: &str) -> Vec<String> {
    fn key(e: &str) -> &str {
        e.split_once('=').map_or(e, |(k, _)| k)
    }
    let mut merged = config.env.clone().unwrap_or_default();
    for e in image.env.iter().flatten() {
        if !merged.iter().any(|u| key(u) == key(e)) {
            merged.push(e.clone());
        }
    }
    let mut out = vec![format!("PATH={DEFAULT_PATH}")];
    out.push(format!("HOSTNAME={hostname}"));
    out.extend(config.tty.then(|| "TERM=xterm".to_string()));
    for e in merged {
        match (e.contains('='), out.iter().position(|o| key(o) == key(&e))) {
            (true, Some(i)) => out[i] = e,
            (true, None) => out.push(e),
            (false, Some(i)) => drop(out.remove(i)),
            (false, None) => {}
        }
    }
    out
}

/// A mount with its options.
fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into())
        .set_typ(Some(kind.into()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
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

/// Docker's default set after `CapAdd`/`CapDrop` (`CAP_` optional, any case, `ALL`).
fn capabilities(hc: &HostConfig, privileged: bool) -> Result<Vec<String>> {
    let normalize = |field, list: &Option<Vec<String>>| -> Result<Vec<String>> {
        let mut out = Vec::new();
        for c in list.iter().flatten() {
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
    let (add, drop) = (
        normalize("CapAdd", &hc.cap_add)?,
        normalize("CapDrop", &hc.cap_drop)?,
    );
    let all = |l: &[String]| l.iter().any(|c| c == "ALL");
    let kept = |base: Vec<String>| base.into_iter().filter(|c| !drop.contains(c));
    let mut caps: Vec<String> = match () {
        _ if privileged => berth_oci::caps::host(),
        _ if all(&drop) => add,
        _ if all(&add) => kept(berth_oci::caps::host()).collect(),
        _ => kept(words(DEFAULT_CAPS, "CAP_")).chain(add).collect(),
    };
    let mut seen = HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// `HostConfig.Ulimits`, passed through (`-1` is unlimited); no defaults are added. An unlimited
/// `nofile` becomes the host's hard limit, as the kernel never accepts `RLIM_INFINITY` there.
fn rlimits(hc: &HostConfig, hard_nofile: Option<u64>) -> Result<Vec<PosixRlimit>> {
    // Docker's ulimit names (go-units); anything else is no resource of the kernel's.
    const NAMES: &str = "as core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack";
    let ulimit = |u: &berth_api::host_config::Ulimit| {
        let name = u.name.as_str();
        let kind = NAMES
            .split(' ')
            .any(|n| n == name)
            .then(|| named::<PosixRlimitType>(&format!("RLIMIT_{}", name.to_uppercase())))
            .flatten()
            .ok_or_else(|| SpecError::UlimitType(name.to_string()))?;
        let value = |v: i64| match (v, hard_nofile) {
            (-1, Some(hard)) if name == "nofile" => hard,
            (v, _) => v as u64,
        };
        Ok(PosixRlimitBuilder::default()
            .typ(kind)
            .soft(value(u.soft))
            .hard(value(u.hard))
            .build()?)
    };
    hc.resources.ulimits.iter().flatten().map(ulimit).collect()
}

/// Docker's namespaces, and whether the UTS namespace is the host's.
fn namespaces(
    hc: &HostConfig,
    net: &str,
    ipc: &str,
    netns: Option<&str>,
) -> Result<(Vec<LinuxNamespace>, bool)> {
    let (uts, pid) = (hc.uts_mode.as_str(), hc.pid_mode.as_str());
    // dockerd's default cgroup namespace is private on a pure cgroup v2 host, else the host's.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cgroup = or(&hc.cgroupns_mode, if v2 { "private" } else { "host" });
    // Any other network mode (none, bridge, a network's name, another container's) is
    // private: new, or `netns`, which berthd pins (or finds) when the container starts.
    let net = if net == "host" { "host" } else { "" };
    use LinuxNamespaceType as T;
    let modes = [
        (T::Network, net, "network", ""),
        (T::Uts, uts, "UTS", ""),
        (T::Pid, pid, "PID", ""),
        (T::Ipc, ipc, "IPC", "private shareable none"),
        (T::Cgroup, cgroup, "cgroup namespace", "private"),
        (T::User, or(&hc.userns_mode, "host"), "user namespace", ""),
    ];
    let namespace = |kind, path: Option<&str>| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(kind).set_path(path.map(Into::into));
        ns
    };
    let mut ns = vec![namespace(T::Mount, None)];
    for (kind, mode, what, private) in modes {
        match mode {
            "host" => {}
            m if m.starts_with("container:") => return Err(SpecError::JoinContainer(what)),
            m if m.is_empty() || has_word(private, m) => {
                ns.push(namespace(kind, netns.filter(|_| kind == T::Network)));
            }
            m => return Err(SpecError::Mode(what, m.into())),
        }
    }
    Ok((ns, uts == "host"))
}

/// Docker's defaults for a private network namespace, then `HostConfig.Sysctls`.
fn sysctls(hc: &HostConfig, net: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    if net != "host" && !net.starts_with("container:") {
        out.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
        out.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
    }
    out.extend(hc.sysctls.clone().unwrap_or_default());
    out
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
fn bind(source: &str, dest: &str, options: [&str; 3]) -> Mount {
    let options: Vec<&str> = options
        .into_iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
        .collect();
    mount(dest, "bind", &clean(source), &options)
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
fn parse_bind(raw: &str) -> Result<Mount> {
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
fn parse_mount(m: &ApiMount) -> Result<Mount> {
    let kind = m.kind.as_str();
    let problem = |p| SpecError::MountConfig(kind.into(), p);
    let dest = check_target(&m.target).map_err(problem)?;
    let (source, read_only) = (m.source.as_str(), m.read_only);
    let fault = match kind {
        "bind" => {
            let b = m.bind_options.clone().unwrap_or_default();
            let prop = or(&b.propagation, "rprivate");
            let exists = b.create_mountpoint || fs::metadata(source).is_ok();
            let recursive = ["rbind", "bind"][usize::from(b.non_recursive)];
            let (top_only, force) = (b.read_only_non_recursive, b.read_only_force_recursive);
            let ro = match () {
                _ if !read_only => ReadOnly::No,
                _ if force => ReadOnly::Force,
                _ if top_only || b.non_recursive => ReadOnly::TopOnly,
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
        "tmpfs" if m.bind_options.is_some() => MountProblem::ExtraField("BindOptions"),
        "tmpfs" if !source.is_empty() => MountProblem::ExtraField("Source"),
        "tmpfs" => {
            let t = m.tmpfs_options.clone().unwrap_or_default();
            let (mode, size) = (t.mode, t.size_bytes);
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
fn tmpfs(dest: &str, data: &str) -> Result<Mount> {
    let mut options = vec!["noexec", "nosuid", "nodev", "rprivate"];
    let wanted = |o: &&str| !o.is_empty() && *o != "defaults";
    for opt in data.split(',').filter(wanted) {
        let key = opt.split_once('=').map_or("", |(k, _)| k);
        if !has_word(TMPFS_FLAGS, opt) && !has_word(TMPFS_DATA, key) {
            return Err(SpecError::TmpfsOption(opt.into()));
        }
        options.push(opt);
    }
    Ok(mount(dest, "tmpfs", "tmpfs", &options))
}

fn destination(m: &Mount) -> String {
    m.destination().display().to_string()
}

/// Docker's default mounts less those replaced, then the user's and the network files.
fn mounts(input: &SpecInput, hc: &HostConfig, privileged: bool, ipc: &str) -> Result<Vec<Mount>> {
    let mut user: Vec<Mount> = hc
        .binds()
        .iter()
        .map(|b| parse_bind(b))
        .collect::<Result<_>>()?;
    for m in hc.mounts() {
        user.push(parse_mount(m)?);
    }
    for (dest, data) in hc.tmpfs.iter().flatten() {
        let problem = |p| SpecError::MountConfig("tmpfs".into(), p);
        let dest = check_target(dest).map_err(problem)?;
        user.push(tmpfs(&dest, data)?);
    }
    if !hc.volumes_from().is_empty() {
        return Err(SpecError::Volume("--volumes-from".into()));
    }
    let mut dests = HashSet::new();
    if let Some(dup) = user
        .iter()
        .map(destination)
        .find(|d| !dests.insert(d.clone()))
    {
        return Err(SpecError::DuplicateMount(dup));
    }
    let readonly = hc.readonly_rootfs;
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
    user.sort_by_key(|m| destination(m).matches('/').count());
    let dests: HashSet<String> = user.iter().map(destination).collect();
    let shm = Some(hc.shm_size).filter(|s| *s != 0);
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
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        out.push(mount(target, kind, source, &options));
    }
    out.extend(user);
    Ok(out)
}

/// A device cgroup rule.
fn device_rule(
    allow: bool,
    kind: Option<LinuxDeviceType>,
    numbers: Option<(i64, i64)>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(kind)
        .set_major(numbers.map(|n| n.0))
        .set_minor(numbers.map(|n| n.1))
        .set_access(Some(access.to_string()));
    rule
}

/// `linux.devices` from `HostConfig.Devices`, each stat-ed on the host (symlinks followed), and
/// the device cgroup rules: deny all, allow Docker's defaults and those devices; or allow
/// everything for `--privileged`.
fn devices(
    hc: &HostConfig,
    privileged: bool,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut rules = vec![device_rule(privileged, None, None, "rwm")];
    // Allow zero, null, urandom, random, tty and console; deny fuse.
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1), (10, 229)] {
        let rule = device_rule(
            major != 10,
            Some(LinuxDeviceType::C),
            Some((major, minor)),
            "rwm",
        );
        rules.extend((!privileged).then_some(rule));
    }
    let mut nodes = Vec::new();
    for d in hc.resources.devices.iter().flatten() {
        let (host, inside) = (d.path_on_host.as_str(), d.path_in_container.as_str());
        let perms = or(&d.cgroup_permissions, "rwm");
        let repeated = "rwm".chars().any(|c| perms.matches(c).count() > 1);
        if repeated || perms.chars().any(|c| !"rwm".contains(c)) {
            return Err(SpecError::DeviceMode(perms.into()));
        }
        let m = fs::metadata(host).map_err(|e| SpecError::DeviceStat(host.into(), e))?;
        let kind = match m.file_type() {
            t if t.is_char_device() => LinuxDeviceType::C,
            t if t.is_block_device() => LinuxDeviceType::B,
            _ => return Err(SpecError::NotADevice(host.into())),
        };
        let (major, minor) = dev_numbers(m.rdev());
        let (major, minor) = (major as i64, minor as i64);
        let mut node = LinuxDevice::default();
        node.set_path(or(inside, host).into())
            .set_typ(kind)
            .set_major(major)
            .set_minor(minor)
            .set_file_mode(Some(m.mode() & 0o7777))
            .set_uid(Some(m.uid()))
            .set_gid(Some(m.gid()));
        let rule = device_rule(true, Some(kind), Some((major, minor)), perms);
        rules.extend((!privileged).then_some(rule));
        nodes.push(node);
    }
    Ok((nodes, rules))
}

/// glibc's major() and minor() of a dev_t.
pub(super) fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    (major, minor)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
