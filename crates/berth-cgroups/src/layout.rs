//! Where the cgroup hierarchies are mounted: parsing `/proc/self/mountinfo` into v1 / hybrid / v2 layouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// The cgroup version used for resource control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Legacy per-controller hierarchies (also chosen on "hybrid" hosts, where cgroup2 holds no controllers).
    V1,
    /// The unified hierarchy.
    V2,
}

impl Version {
    /// "cgroup v1" / "cgroup v2", for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// v1 controllers we know how to join; anything else in a cgroup mount's options is a mount flag.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The named (controller-less) v1 hierarchy that we join too, as runc does.
pub(crate) const SYSTEMD_HIERARCHY: &str = "name=systemd";

/// One mounted hierarchy: where it is mounted and which of its directories the mount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Mount point, e.g. `/sys/fs/cgroup/memory`.
    pub mountpoint: PathBuf,
    /// Root of the hierarchy shown at the mount point (the 4th mountinfo field), usually `/`.
    pub root: PathBuf,
}

impl Mount {
    /// Directory of the cgroup `path` (absolute within the hierarchy, already validated).
    ///
    /// When the mount shows only a subtree (`root` is not `/`, as inside a container without a cgroup
    /// namespace), a path under that subtree is taken relative to it; any other path is taken as
    /// relative to what the mount shows (what runc does).
    pub(crate) fn dir_of(&self, path: &str) -> PathBuf {
        let rel = Path::new(path);
        let rel = rel.strip_prefix(&self.root).unwrap_or(rel);
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        self.mountpoint.join(rel)
    }
}

/// The detected cgroup mounts of this host (or a test tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1 hierarchy name (controller or `name=systemd`) → mount; co-mounted controllers share one mount.
    v1: BTreeMap<String, Mount>,
    /// The cgroup2 mount, if any.
    v2: Option<Mount>,
}

impl Layout {
    /// Detects the mounts from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Layout, Error> {
        use std::io::Read;
        let path = PathBuf::from("/proc/self/mountinfo");
        // Sized up front: /proc files report no length, and reading one from a small buffer
        // doubling from 32 bytes takes a read call per doubling.
        let mut text = String::with_capacity(16 * 1024);
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|source| Error::ReadMountinfo { path, source })?;
        Layout::from_mountinfo(&text)
    }

    /// A pure v2 layout rooted at `root` (tests use a temporary directory mimicking a cgroup2 tree).
    pub fn v2_at(root: PathBuf) -> Layout {
        Layout {
            v1: BTreeMap::new(),
            v2: Some(Mount {
                mountpoint: root,
                root: PathBuf::from("/"),
            }),
        }
    }

    /// Parses the text of a `mountinfo` file. Mounts hidden under a later mount on the same
    /// place or above it (cgroup2 mounted over a hybrid host's `/sys/fs/cgroup` in a private mount
    /// namespace, as a test or benchmark may do) are ignored, as the kernel would.
    pub fn from_mountinfo(text: &str) -> Result<Layout, Error> {
        let mut v1: BTreeMap<String, Mount> = BTreeMap::new();
        let mut v2: Option<Mount> = None;
        let mut lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let malformed = || Error::MalformedMountinfo {
                line: index + 1,
                text: line.to_string(),
            };
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields
                .iter()
                .position(|f| *f == "-")
                .ok_or_else(malformed)?;
            if sep < 6 || fields.len() < sep + 4 {
                return Err(malformed());
            }
            lines.push(MountLine {
                id: fields[0],
                parent: fields[1],
                mountpoint: PathBuf::from(unescape(fields[4])),
                root: fields[3],
                fstype: fields[sep + 1],
                options: fields[sep + 3],
            });
        }
        for line in &lines {
            let fstype = line.fstype;
            if fstype != "cgroup" && fstype != "cgroup2" || is_shadowed(line, &lines) {
                continue;
            }
            let mount = Mount {
                mountpoint: line.mountpoint.clone(),
                root: PathBuf::from(unescape(line.root)),
            };
            if fstype == "cgroup2" {
                // Prefer the canonical place when cgroup2 is mounted more than once.
                let canonical = |m: &Mount| m.mountpoint == Path::new("/sys/fs/cgroup");
                if v2
                    .as_ref()
                    .is_none_or(|old| !canonical(old) && canonical(&mount))
                {
                    v2 = Some(mount);
                }
                continue;
            }
            for option in line.options.split(',') {
                if V1_CONTROLLERS.contains(&option) || option == SYSTEMD_HIERARCHY {
                    // First mount wins, unless a later one shows the whole hierarchy.
                    let replace = v1.get(option).is_none_or(|old| {
                        old.root != Path::new("/") && mount.root == Path::new("/")
                    });
                    if replace {
                        v1.insert(option.to_string(), mount.clone());
                    }
                }
            }
        }
        let has_v1_controller = v1.keys().any(|k| k != SYSTEMD_HIERARCHY);
        if !has_v1_controller && v2.is_none() {
            return Err(Error::NoCgroupMounts);
        }
        if !has_v1_controller {
            // Pure v2: a stray name=systemd mount alone does not make a v1 host.
            v1.clear();
        }
        Ok(Layout { v1, v2 })
    }

    /// The version used for resources: v1 whenever a v1 controller is mounted ("hybrid" included).
    pub fn version(&self) -> Version {
        if self.v1.is_empty() {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// True on a v1 host that also mounts cgroup2 (without controllers): we join that tree as well.
    pub fn is_hybrid(&self) -> bool {
        !self.v1.is_empty() && self.v2.is_some()
    }

    /// The v1 hierarchies: name (controller or `name=systemd`) → mount.
    pub fn v1_mounts(&self) -> &BTreeMap<String, Mount> {
        &self.v1
    }

    /// The cgroup2 mount (the resource tree on v2 hosts; the controller-less tree on hybrid hosts).
    pub fn v2_mount(&self) -> Option<&Mount> {
        self.v2.as_ref()
    }
}

/// The fields of one mountinfo line that matter here.
struct MountLine<'a> {
    id: &'a str,
    parent: &'a str,
    mountpoint: PathBuf,
    root: &'a str,
    fstype: &'a str,
    options: &'a str,
}

/// True when another mount covers `line`'s mount point (is on it or above it) without being one of
/// the mounts `line` sits on: that one was mounted later, over it, and hides it. A parent chain
/// that leaves the listed mounts before reaching `/` (a chroot's view) proves nothing: kept.
fn is_shadowed(line: &MountLine, all: &[MountLine]) -> bool {
    let under = |other: &MountLine| {
        let mut at = line.parent;
        let mut at_root = false;
        // A parent chain is short; the bound only guards against a malformed loop.
        for _ in 0..=all.len() {
            if at == other.id {
                return true;
            }
            match all.iter().find(|l| l.id == at) {
                Some(l) => {
                    at_root = l.mountpoint == Path::new("/");
                    at = l.parent;
                }
                None => return !at_root,
            }
        }
        true
    };
    all.iter().any(|other| {
        other.id != line.id && line.mountpoint.starts_with(&other.mountpoint) && !under(other)
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PURE_V2: &str = "\
25 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const COMBINED: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
37 30 0:33 /docker/abc /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_uses_v1_with_separate_cpu_and_cpuacct() {
        let layout = Layout::from_mountinfo(HYBRID).unwrap();
        assert_eq!(layout.version(), Version::V1);
        assert!(layout.is_hybrid());
        let v1 = layout.v1_mounts();
        assert_eq!(v1["cpu"].mountpoint, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(
            v1["cpuacct"].mountpoint,
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(
            v1[SYSTEMD_HIERARCHY].mountpoint,
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert_eq!(v1.len(), 9);
        assert_eq!(
            layout.v2_mount().unwrap().mountpoint,
            Path::new("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn cgroup2_mounted_over_a_hybrid_tree_hides_it() {
        let text = format!(
            "1 0 0:1 / / rw - ext4 /dev/root rw\n{HYBRID}\
             50 31 0:40 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n\
             51 50 0:41 / /sys/fs/cgroup/inner rw,relatime - tmpfs tmpfs rw\n"
        );
        let layout = Layout::from_mountinfo(&text).unwrap();
        assert_eq!(layout.version(), Version::V2);
        assert!(layout.v1_mounts().is_empty());
        assert_eq!(
            layout.v2_mount().unwrap().mountpoint,
            Path::new("/sys/fs/cgroup")
        );
        // Mounts on top of a hierarchy do not hide it, with or without the whole parent chain.
        assert!(Layout::from_mountinfo(HYBRID).unwrap().is_hybrid());
        let whole = format!("1 0 0:1 / / rw - ext4 /dev/root rw\n{HYBRID}");
        assert!(Layout::from_mountinfo(&whole).unwrap().is_hybrid());
    }

    #[test]
    fn pure_v2() {
        let layout = Layout::from_mountinfo(PURE_V2).unwrap();
        assert_eq!(layout.version(), Version::V2);
        assert!(!layout.is_hybrid());
        assert!(layout.v1_mounts().is_empty());
        let mount = layout.v2_mount().unwrap();
        assert_eq!(mount.mountpoint, Path::new("/sys/fs/cgroup"));
        assert_eq!(
            mount.dir_of("/berth/abc"),
            Path::new("/sys/fs/cgroup/berth/abc")
        );
    }

    #[test]
    fn combined_cpu_cpuacct_and_mount_root() {
        let layout = Layout::from_mountinfo(COMBINED).unwrap();
        let v1 = layout.v1_mounts();
        assert_eq!(v1["cpu"], v1["cpuacct"]);
        assert_eq!(
            v1["cpu"].mountpoint,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            v1["net_prio"].mountpoint,
            Path::new("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert!(!v1.contains_key("xattr"));
        let memory = &v1["memory"];
        assert_eq!(
            memory.dir_of("/docker/abc/inner"),
            Path::new("/sys/fs/cgroup/memory/inner")
        );
        assert_eq!(
            memory.dir_of("/other"),
            Path::new("/sys/fs/cgroup/memory/other")
        );
    }

    #[test]
    fn escapes_and_errors() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/x\\"), r"/x\\");
        let text = "1 2 0:1 / /sys/fs/cgroup/my\\040cg rw - cgroup cgroup rw,pids\n";
        let layout = Layout::from_mountinfo(text).unwrap();
        assert_eq!(
            layout.v1_mounts()["pids"].mountpoint,
            Path::new("/sys/fs/cgroup/my cg")
        );
        assert!(matches!(
            Layout::from_mountinfo("garbage line\n"),
            Err(Error::MalformedMountinfo { line: 1, .. })
        ));
        assert!(matches!(
            Layout::from_mountinfo("22 1 0:21 / /sys rw - sysfs sysfs rw\n"),
            Err(Error::NoCgroupMounts)
        ));
    }
}
