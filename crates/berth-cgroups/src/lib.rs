//! Control groups v1 and v2 behind one interface: create, apply OCI resources, freeze, stats, remove.
//!
//! [`Layout::detect`] reads the host's cgroup mounts; [`Cgroup::new`] resolves an OCI
//! `linux.cgroupsPath` in them; the methods of [`Cgroup`] do the same thing on either version:
//!
//! - **v1** (also "hybrid" hosts whose cgroup2 mount has no controllers): one directory per mounted
//!   hierarchy (co-mounted controllers such as `cpu,cpuacct` share one), plus `name=systemd` and, on
//!   hybrid hosts, the cgroup2 tree, which processes are moved into too (as runc does).
//! - **v2**: one directory; controllers are delegated through the parents' `cgroup.subtree_control`;
//!   device rules become an eBPF program attached to the directory.
//!
//! Architecture invariant: this crate only reads and writes cgroup files (and calls bpf(2)); it
//! knows nothing of containers, namespaces or the runtime's state, and never spawns processes.

mod devices;
mod error;
mod features;
mod files;
mod layout;
mod stats;
mod v1;
mod v2;
mod v2_devices;

use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;
pub use features::Features;
pub use layout::{Layout, Mount, Version};
pub use stats::{CpuStats, IoDeviceStats, IoStats, MemoryStats, PidsStats, Stats};
pub use v2::{blkio_weight_to_io_weight, shares_to_weight};
pub use v2_devices::attached_device_programs;

use v1::V1Cgroup;
use v2::V2Cgroup;

/// What a new process needs to join a cgroup at birth; see [`Cgroup::prepare_birth`].
#[derive(Debug, Default)]
pub struct Birth {
    /// The cgroup2 directory for `clone3(CLONE_INTO_CGROUP)`.
    pub clone_into: Option<std::fs::File>,
    /// v1 `tasks` files, for [`join_self`] in the new process.
    pub tasks: Vec<std::fs::File>,
}

/// Moves the calling thread into the v1 cgroup of each `tasks` file by writing `0` to it. For a
/// single-threaded process (a container init before it execs) that moves the whole process,
/// and a thread moving itself takes no global lock, so no RCU grace period is waited for.
pub fn join_self(tasks: &[std::fs::File]) -> std::io::Result<()> {
    use std::io::Write;
    for mut f in tasks {
        f.write_all(b"0")?;
    }
    Ok(())
}

/// How long freeze/thaw wait for the kernel to report the new state.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// One control group, resolved in every hierarchy of a [`Layout`]. Creating the object touches
/// nothing; [`Cgroup::create`] makes the directories.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The cgroup path inside each hierarchy, e.g. `/berth/abc`.
    path: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    V1(V1Cgroup),
    V2(V2Cgroup),
}

impl Cgroup {
    /// Resolves OCI `linux.cgroupsPath`: an absolute path (`/berth/abc`) is taken from the root of
    /// each hierarchy; a relative one is joined to the root too; an empty one means
    /// `/<container_id>`. The systemd form `slice:prefix:name` gives [`Error::SystemdUnsupported`].
    pub fn new(layout: &Layout, cgroups_path: &str, container_id: &str) -> Result<Cgroup, Error> {
        let path = resolve_path(cgroups_path, container_id)?;
        let inner = match layout.version() {
            Version::V1 => Inner::V1(V1Cgroup::new(layout, &path)),
            Version::V2 => match V2Cgroup::new(layout, &path) {
                Some(v2) => Inner::V2(v2),
                None => return Err(Error::NoCgroupMounts),
            },
        };
        Ok(Cgroup { path, inner })
    }

    /// The cgroup path inside each hierarchy (`/berth/abc`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The version used for this cgroup's resources.
    pub fn version(&self) -> Version {
        match self.inner {
            Inner::V1(_) => Version::V1,
            Inner::V2(_) => Version::V2,
        }
    }

    /// Creates the directories (`mkdir -p`). v1: every new cpuset level gets its parent's
    /// `cpuset.cpus`/`cpuset.mems` (an empty cpuset takes no tasks). v2: every level above the
    /// cgroup delegates the controllers it has to its children.
    pub fn create(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.create(),
            Inner::V2(c) => c.create(),
        }
    }

    /// Prepares a new process's joining of this cgroup without a migration by another process
    /// (each such migration takes the kernel's global threadgroup lock for writing, and the
    /// first after a quiet spell waits out an RCU grace period, ~5-10 ms): the cgroup2 directory
    /// to clone it into (v2, or a hybrid host's controller-less tree), and, with `self_join`,
    /// the v1 `tasks` files it writes `0` to itself ([`join_self`]).
    pub fn prepare_birth(&self, self_join: bool) -> Result<Birth, Error> {
        // A directory opened read-only (close-on-exec, as std opens everything).
        let open_dir = |dir: &std::path::Path| std::fs::File::open(dir).ok();
        match &self.inner {
            Inner::V2(c) => Ok(Birth {
                clone_into: open_dir(c.dir()),
                tasks: Vec::new(),
            }),
            Inner::V1(c) => Ok(Birth {
                clone_into: c.unified_dir().and_then(open_dir),
                tasks: match self_join {
                    true => c.open_tasks_files()?,
                    false => Vec::new(),
                },
            }),
        }
    }

    /// After the clone that [`Cgroup::prepare_birth`] prepared: moves `pid` into whatever it has
    /// not joined by birth (`born`: cloned into `clone_into`) or by itself (`self_joined`).
    pub fn add_pid_after_birth(
        &self,
        pid: i32,
        born: bool,
        self_joined: bool,
    ) -> Result<(), Error> {
        match &self.inner {
            Inner::V2(c) if !born => c.add_pid(pid),
            Inner::V2(_) => Ok(()),
            Inner::V1(c) => c.add_pid_where(pid, !self_joined, !born),
        }
    }

    /// Moves process `pid` into the cgroup (`cgroup.procs` of every hierarchy).
    pub fn add_pid(&self, pid: i32) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.add_pid(pid),
            Inner::V2(c) => c.add_pid(pid),
        }
    }

    /// Applies OCI `linux.resources`. Every value is validated before it is written; fields left
    /// out are not touched, so this also serves `update`.
    pub fn apply(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.apply(r),
            Inner::V2(c) => c.apply(r),
        }
    }

    /// Freezes every process and waits until the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.freeze(),
            Inner::V2(c) => c.freeze(),
        }
    }

    /// Thaws the cgroup and waits until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.thaw(),
            Inner::V2(c) => c.thaw(),
        }
    }

    /// Whether the kernel reports the cgroup frozen (false while still freezing).
    pub fn is_frozen(&self) -> Result<bool, Error> {
        match &self.inner {
            Inner::V1(c) => c.is_frozen(),
            Inner::V2(c) => c.is_frozen(),
        }
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        match &self.inner {
            Inner::V1(c) => c.pids(),
            Inner::V2(c) => c.pids(),
        }
    }

    /// Sends `signal` to every process of the cgroup (frozen meanwhile, so none escapes by forking;
    /// v2 SIGKILL uses `cgroup.kill`). Processes that exit meanwhile are not an error.
    pub fn kill_all(&self, signal: i32) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.kill_all(signal),
            Inner::V2(c) => c.kill_all(signal),
        }
    }

    /// How many processes the OOM killer has killed in the cgroup (v1 `memory.oom_control`,
    /// v2 `memory.events`); 0 when the memory controller is absent.
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        match &self.inner {
            Inner::V1(c) => c.oom_kill_count(),
            Inner::V2(c) => c.oom_kill_count(),
        }
    }

    /// Usage counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        match &self.inner {
            Inner::V1(c) => c.stats(),
            Inner::V2(c) => c.stats(),
        }
    }

    /// Removes the cgroup (and any sub-cgroups) from every hierarchy. Missing directories are
    /// fine; a directory still busy with exiting processes is retried for about a second.
    pub fn destroy(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(c) => c.destroy(),
            Inner::V2(c) => c.destroy(),
        }
    }

    /// Hierarchy name → directory: v1 controllers (and `name=systemd`); `""` is the cgroup2
    /// directory (the only entry on v2, the controller-less tree on hybrid hosts).
    pub fn paths(&self) -> Vec<(String, PathBuf)> {
        match &self.inner {
            Inner::V1(c) => c.paths(),
            Inner::V2(c) => vec![(String::new(), c.dir().to_path_buf())],
        }
    }
}

/// Turns `linux.cgroupsPath` into a clean absolute path inside a hierarchy.
fn resolve_path(cgroups_path: &str, container_id: &str) -> Result<String, Error> {
    let bad = |reason| Error::InvalidCgroupPath {
        path: cgroups_path.to_string(),
        reason,
    };
    let raw = if cgroups_path.is_empty() {
        if container_id.is_empty() || container_id.contains('/') {
            return Err(Error::InvalidCgroupPath {
                path: container_id.to_string(),
                reason: "no cgroups path and the container id cannot name one",
            });
        }
        container_id
    } else {
        cgroups_path
    };
    if !raw.starts_with('/') && raw.split(':').count() == 3 {
        return Err(Error::SystemdUnsupported {
            path: raw.to_string(),
        });
    }
    if raw.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    let mut clean = String::new();
    for part in raw.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(bad("contains '..'"));
        }
        clean.push('/');
        clean.push_str(part);
    }
    if clean.is_empty() {
        return Err(bad("names the root cgroup"));
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_forms() {
        assert_eq!(resolve_path("/berth/abc", "x").unwrap(), "/berth/abc");
        assert_eq!(resolve_path("berth//abc/", "x").unwrap(), "/berth/abc");
        assert_eq!(resolve_path("", "abc").unwrap(), "/abc");
        assert!(matches!(
            resolve_path("system.slice:berth:abc", "x"),
            Err(Error::SystemdUnsupported { .. })
        ));
        assert!(matches!(
            resolve_path("/a/../b", "x"),
            Err(Error::InvalidCgroupPath { .. })
        ));
        assert!(matches!(
            resolve_path("/", "x"),
            Err(Error::InvalidCgroupPath { .. })
        ));
        assert!(matches!(
            resolve_path("/a\nb", "x"),
            Err(Error::InvalidCgroupPath { .. })
        ));
        assert!(matches!(
            resolve_path("", "a/b"),
            Err(Error::InvalidCgroupPath { .. })
        ));
    }

    #[test]
    fn v2_paths_and_errors_print_once() {
        let layout = Layout::v2_at(PathBuf::from("/tmp/cg"));
        let cg = Cgroup::new(&layout, "/berth/abc", "abc").unwrap();
        assert_eq!(
            cg.paths(),
            vec![(String::new(), PathBuf::from("/tmp/cg/berth/abc"))]
        );
        let err = Error::SystemdUnsupported {
            path: "a:b:c".into(),
        };
        assert!(err.to_string().contains("a:b:c"));
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }
}
