//! The container process's identity, shared by the init and by `exec`: rlimits, personality,
//! no_new_privs, user and groups, the five capability sets, seccomp, umask, cwd, and finally
//! the lookup and execve of the program. No host descriptor survives into the program.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::{LinuxSeccomp, PosixRlimitType, Process};
use rustix::process::{Resource, Rlimit};

use crate::caps::CapSets;
use crate::sys;

pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` from the process's env, for finding args[0].
    path_env: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapSets,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub no_new_privs: bool,
    pub seccomp: Option<crate::seccomp_cache::Seccomp>,
    /// The AppArmor profile the program runs under (checked: the host has AppArmor).
    pub apparmor: Option<String>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub preserve_fds: u32,
}

fn resource(t: PosixRlimitType) -> Option<Resource> {
    Some(match t {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn cstrings<'a>(
    items: impl IntoIterator<Item = &'a String>,
    what: &str,
) -> anyhow::Result<Vec<CString>> {
    items
        .into_iter()
        .map(|s| {
            CString::new(s.as_bytes()).with_context(|| format!("{what} {s:?} contains a NUL byte"))
        })
        .collect()
}

impl ProcessPlan {
    /// Builds the plan from an OCI process; seccomp is compiled here, in the runtime, so a bad
    /// profile fails before anything is created (or read compiled from the runtime `root`'s
    /// cache, see [`crate::seccomp_cache`]).
    pub fn new(
        p: &Process,
        caps: CapSets,
        seccomp: Option<&LinuxSeccomp>,
        root: &Path,
        preserve_fds: u32,
    ) -> anyhow::Result<Self> {
        let args = p
            .args()
            .as_ref()
            .filter(|a| !a.is_empty())
            .context("process.args must not be empty")?;
        let env_list = p.env().clone().unwrap_or_default();
        let path_env = env_list
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        let mut rlimits = Vec::new();
        let mut seen = Vec::new();
        for r in p.rlimits().iter().flatten() {
            // The spec: a type listed twice is an error.
            anyhow::ensure!(
                !seen.contains(&r.typ()),
                "duplicate rlimit type {:?}",
                r.typ().to_string()
            );
            seen.push(r.typ());
            let res =
                resource(r.typ()).with_context(|| format!("unsupported rlimit {:?}", r.typ()))?;
            rlimits.push((res, r.soft(), r.hard()));
        }
        let seccomp = match seccomp {
            Some(profile) => Some(crate::seccomp_cache::prepare(profile, root)?),
            None => None,
        };
        let apparmor = p.apparmor_profile().clone().filter(|a| !a.is_empty());
        if let Some(profile) = &apparmor {
            anyhow::ensure!(
                apparmor_enabled(),
                "apparmor profile {profile:?} is set, but AppArmor is not enabled on this host"
            );
            anyhow::ensure!(
                !profile.contains(['\n', '\0']),
                "apparmor profile {profile:?}: invalid name"
            );
        }
        let user = p.user();
        Ok(ProcessPlan {
            args: cstrings(args, "argument")?,
            env: cstrings(&env_list, "environment variable")?,
            path_env,
            cwd: p.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            caps,
            rlimits,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            seccomp,
            apparmor,
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16)),
            preserve_fds,
        })
    }

    /// Applies rlimits (before the user switch: raising a limit needs privilege). A soft or
    /// hard limit above this host's hard limit fails with the limit named.
    pub fn set_rlimits(&self) -> anyhow::Result<()> {
        for &(res, soft, hard) in &self.rlimits {
            let lim = Rlimit {
                current: (soft != u64::MAX).then_some(soft),
                maximum: (hard != u64::MAX).then_some(hard),
            };
            rustix::process::setrlimit(res, lim)
                .with_context(|| format!("setting rlimit {res:?} to {soft}/{hard}"))?;
        }
        Ok(())
    }

    /// From here on the process becomes the container's program: seccomp (early when it needs
    /// privilege), descriptors marked close-on-exec, capabilities, user, cwd. Returns the
    /// program to execute, looked up as the target user.
    pub fn become_process(&self) -> anyhow::Result<CString> {
        // Before any filter: a profile written before close_range existed (2020) denies it.
        sys::cloexec_from(3 + self.preserve_fds).context("marking descriptors close-on-exec")?;
        if let Some(profile) = &self.apparmor {
            apparmor_on_exec(profile)?;
        }
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true).context("setting no_new_privs")?;
        } else if let Some(f) = &self.seccomp {
            // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the drop.
            f.load()?;
        }
        self.caps.apply_bounding()?;
        if self.uid != 0 || self.gid != 0 || !self.groups.is_empty() {
            rustix::thread::set_keep_capabilities(true).context("setting keep-caps")?;
        }
        match sys::set_groups(&self.groups) {
            Ok(()) => {}
            // setgroups is denied in user namespaces mapped without it; only fatal if asked.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && self.groups.is_empty() => {}
            Err(e) => return Err(e).context("setting supplementary groups"),
        }
        sys::set_ids(self.uid, self.gid)
            .with_context(|| format!("switching to uid {} gid {}", self.uid, self.gid))?;
        rustix::thread::set_keep_capabilities(false).context("clearing keep-caps")?;
        self.caps.apply_process_sets()?;
        if let Some(mask) = self.umask {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
        }
        let cwd = if self.cwd.as_os_str().is_empty() {
            Path::new("/")
        } else {
            self.cwd.as_path()
        };
        rustix::process::chdir(cwd)
            .with_context(|| format!("chdir to cwd ({:?}) set in config.json", cwd))?;
        // A cwd reached through a leaked host descriptor is outside the root (CVE-2024-21626).
        let here = rustix::process::getcwd(Vec::new()).context("reading the cwd")?;
        anyhow::ensure!(
            here.to_bytes().starts_with(b"/"),
            "current working directory is outside of container mount namespace root"
        );
        self.lookup()
    }

    /// Finds args[0] like exec.LookPath with the process's own PATH.
    fn lookup(&self) -> anyhow::Result<CString> {
        let name = self.args[0].to_bytes();
        let name_str = String::from_utf8_lossy(name);
        if name.contains(&b'/') {
            let p = Path::new(std::ffi::OsStr::from_bytes(name));
            executable(p).map_err(|e| anyhow::anyhow!("exec: {name_str:?}: {e}"))?;
            return Ok(self.args[0].clone());
        }
        for dir in self.path_env.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let cand = Path::new(dir).join(std::ffi::OsStr::from_bytes(name));
            if executable(&cand).is_ok() {
                return Ok(CString::new(cand.as_os_str().as_bytes())?);
            }
        }
        anyhow::bail!("exec: {name_str:?}: executable file not found in $PATH")
    }

    /// Replaces this process with the program. Returns only the error. With no_new_privs the
    /// seccomp filter is loaded here, unprivileged, as the very last step before execve: the
    /// profile then only has to allow execve itself and what the program does.
    pub fn exec(&self, exe: &CString) -> anyhow::Error {
        // The runtime ignores SIGPIPE (Rust's default); the program must start with defaults.
        sys::reset_signals();
        if self.no_new_privs {
            if let Some(f) = &self.seccomp {
                if let Err(e) = f.load() {
                    return e;
                }
            }
        }
        let e = sys::execve(exe, &self.args, &self.env);
        anyhow::anyhow!("exec {}: {e}", exe.to_string_lossy())
    }
}

/// Whether the host runs AppArmor (its module loaded and enabled).
fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

/// Asks AppArmor to confine this process with `profile` from its next execve (as runc does:
/// the thread's `attr/apparmor/exec`, or the older `attr/exec`).
fn apparmor_on_exec(profile: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let line = format!("exec {profile}");
    let mut last = None;
    for attr in [
        "/proc/thread-self/attr/apparmor/exec",
        "/proc/self/attr/exec",
    ] {
        match std::fs::OpenOptions::new()
            .write(true)
            .open(attr)
            .and_then(|mut f| f.write_all(line.as_bytes()))
        {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "applying apparmor profile {profile:?}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

fn executable(p: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory".to_string()
        } else {
            e.to_string()
        }
    })?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    rustix::fs::access(p, rustix::fs::Access::EXEC_OK).map_err(|_| "permission denied".to_string())
}
