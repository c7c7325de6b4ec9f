//! A container's persisted state under `--root` (`<root>/<id>/state.json`, written atomically)
//! and its live status, derived from the init process, the exec fifo and the freezer.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// OCI runtime spec version reported in `state`.
pub const OCI_VERSION: &str = "1.2.0";

/// Name of the fifo the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// What the runtime remembers about a container between commands.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Saved {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell a reused pid apart.
    pub pid_start: u64,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// `linux.cgroupsPath` as given (resolved again on each command).
    pub cgroups_path: String,
    /// The spec's hooks, run again by `start` (poststart) and `delete` (poststop).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Namespaces the container was created with (`type` → path if it joined one).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The container shares the caller's mount namespace and its init chrooted into the
    /// rootfs: `exec` chroots into the init's root too.
    #[serde(default)]
    pub chroot: bool,
    /// What `exec` takes from config.json, as it was at create: later edits of the bundle
    /// must not change the container. `None` in states written before it was recorded.
    #[serde(default)]
    pub exec_defaults: Option<ExecDefaults>,
}

/// The parts of the spec every `exec` starts from.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ExecDefaults {
    /// `process`: env, cwd, user, rlimits, noNewPrivileges... (args are replaced by exec's).
    pub process: oci_spec::runtime::Process,
    /// `process.capabilities` as bit masks.
    pub caps: crate::caps::CapSets,
    /// `linux.seccomp`.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// Live status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Directory of a container's state.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Saved {
    /// Loads a container's state; "container does not exist" if there is none.
    pub fn load(root: &Path, id: &str) -> anyhow::Result<Saved> {
        crate::spec::validate_id(id)?;
        let path = dir(root, id).join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("container does not exist: {id}")
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the state atomically (temp file, rename).
    pub fn save(&self, root: &Path) -> anyhow::Result<()> {
        let d = dir(root, &self.id);
        write_atomic(&d.join("state.json"), &serde_json::to_vec(self)?)
    }

    /// Whether the recorded init is still alive (same pid, same start time, not a zombie).
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && proc_start_time(self.pid).is_some_and(|(start, state)| {
                start == self.pid_start && state != 'Z' && state != 'X'
            })
    }

    /// Derives the live status.
    pub fn status(&self, root: &Path, cgroup: Option<&berth_cgroups::Cgroup>) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir(root, &self.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if cgroup.is_some_and(|c| c.is_frozen().unwrap_or(false)) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state JSON (`runc state` output).
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }
}

/// Start time (clock ticks since boot) and state letter of a process, from /proc/PID/stat.
pub fn proc_start_time(pid: i32) -> Option<(u64, char)> {
    use std::io::Read;
    // Sized up front: a /proc file reports no length (see berth_cgroups::Layout::detect).
    let mut stat = String::with_capacity(1024);
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read_to_string(&mut stat))
        .ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after the state (field 3).
    Some((fields.get(19)?.parse().ok()?, state))
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename, so a reader
/// sees the old state or the new one, never half. No fsync: the state of a container is as
/// lasting as the container (the root is normally on tmpfs); a sync on a disk-backed root cost
/// several ms per command, and the journal commit it forced slowed the next unlink (like runc,
/// crun writes its state without one).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().context("path has no parent")?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    // Root's alone: the state may hold the container's environment.
    let mut f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(&tmp)
    .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let (start, state) = proc_start_time(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(state == 'R' || state == 'S');
    }
}
