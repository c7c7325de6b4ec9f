//! Watching the container's memory cgroup for OOM kills, so `state` reports them and `oom_wait`
//! wakes on them.
//!
//! Discovery reads `/proc/<init pid>/cgroup` and `/proc/self/mountinfo`: on cgroup v1 (hybrid
//! hosts included) the `memory` controller's line and the mount of the memory hierarchy; on v2 the
//! `0::` line and the cgroup2 mount, used only when the cgroup has `memory.events` (a hybrid host's
//! controller-less cgroup2 tree has none). Then one fd joins the shim's poll loop:
//!
//! - **v1**: an eventfd registered through `cgroup.event_control` for `memory.oom_control`. It
//!   turns readable on each OOM; its 8-byte counter is the number of OOMs since the last read.
//! - **v2**: inotify on `memory.events` (`IN_MODIFY`); each change re-reads `oom_kill` and counts
//!   the increase since the watch began.
//!
//! The watch is best effort: when the cgroup cannot be found or watched the shim logs one line
//! and runs the container without it; when the cgroup is removed the watch ends and the count
//! stays. Nothing here is logged per OOM, since a container can cause any number of them.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use rustix::event::{EventfdFlags, eventfd};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;
use rustix::process::Pid;

/// A directory in which a process's memory cgroup may be watched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Candidate {
    /// A cgroup of the v1 memory hierarchy.
    V1(PathBuf),
    /// A cgroup of the v2 tree; watchable only if it has `memory.events`.
    V2(PathBuf),
}

/// The cgroup paths of one process that matter here, from `/proc/PID/cgroup`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ProcCgroups {
    /// The path on the v1 line whose controllers include `memory`.
    v1_memory: Option<String>,
    /// The path on the v2 line (`0::PATH`).
    unified: Option<String>,
}

/// The fields of one `/proc/PID/mountinfo` line that discovery needs.
#[derive(Debug, PartialEq, Eq)]
struct MountInfo {
    /// The directory of the filesystem mounted here (for cgroupfs, a cgroup path).
    root: String,
    mount_point: String,
    fs_type: String,
    super_options: String,
}

fn parse_proc_cgroup(text: &str) -> ProcCgroups {
    let mut found = ProcCgroups::default();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            found.unified = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            found.v1_memory = Some(path.to_string());
        }
    }
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(field: &str) -> Option<String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).ok()?);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE
/// SUPER_OPTIONS`.
fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (before, after) = line.split_once(" - ")?;
    let before: Vec<&str> = before.split(' ').collect();
    let mut after = after.split(' ');
    let fs_type = after.next()?.to_string();
    let _source = after.next()?;
    Some(MountInfo {
        root: unescape(before.get(3)?)?,
        mount_point: unescape(before.get(4)?)?,
        fs_type,
        super_options: after.next().unwrap_or_default().to_string(),
    })
}

/// Where `cgroup_path` lies under mount `m`, if the mount shows it. Paths that climb (`/..`, as
/// for a process outside our cgroup namespace) are never joined.
fn under_mount(m: &MountInfo, cgroup_path: &str) -> Option<PathBuf> {
    let rel = if m.root == "/" {
        cgroup_path
    } else {
        cgroup_path
            .strip_prefix(m.root.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))?
    };
    let rel = Path::new(rel.trim_start_matches('/'));
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(Path::new(&m.mount_point).join(rel))
}

/// The directories to try, v1 first: on hybrid hosts memory is a v1 controller.
fn candidates(proc_cgroup: &str, mountinfo: &str) -> Vec<Candidate> {
    let paths = parse_proc_cgroup(proc_cgroup);
    let mounts: Vec<MountInfo> = mountinfo.lines().filter_map(parse_mountinfo_line).collect();
    let mut found = Vec::new();
    if let Some(path) = &paths.v1_memory {
        let dir = mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup" && m.super_options.split(',').any(|o| o == "memory"))
            .find_map(|m| under_mount(m, path));
        found.extend(dir.map(Candidate::V1));
    }
    if let Some(path) = &paths.unified {
        let dir = mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup2")
            .find_map(|m| under_mount(m, path));
        found.extend(dir.map(Candidate::V2));
    }
    found
}

/// The `oom_kill` count of a v2 `memory.events` file.
fn parse_oom_kills(memory_events: &str) -> Option<u64> {
    memory_events.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        if key == "oom_kill" {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// The kernel object the watch reads.
enum Source {
    V1 {
        eventfd: OwnedFd,
        /// Held open for as long as the registration lives, as runc does.
        _oom_control: File,
        /// Gone once the cgroup is removed (which signals the eventfd one last time).
        event_control: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        events: PathBuf,
        /// `oom_kill` at the last read.
        last: u64,
    },
}

/// What one read of a source found.
enum Reading {
    /// This many OOM kills since the last read.
    Kills(u64),
    /// The cgroup is gone; no more will come.
    Gone,
}

impl Source {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::V1 { eventfd, .. } => eventfd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// Takes in what the kernel reported; never blocks.
    fn read(&mut self) -> anyhow::Result<Reading> {
        match self {
            Source::V1 {
                eventfd,
                event_control,
                ..
            } => {
                let mut counter = [0u8; 8];
                let n = loop {
                    match rustix::io::read(&*eventfd, &mut counter) {
                        Err(Errno::INTR) => {}
                        Err(Errno::AGAIN) => return Ok(Reading::Kills(0)),
                        other => break other.context("reading the OOM eventfd")?,
                    }
                };
                if n != counter.len() {
                    bail!("short read ({n} bytes) from the OOM eventfd");
                }
                // Removing the cgroup signals the eventfd too; like runc, count nothing then.
                if !event_control.exists() {
                    return Ok(Reading::Gone);
                }
                Ok(Reading::Kills(u64::from_ne_bytes(counter)))
            }
            Source::V2 {
                inotify,
                events,
                last,
            } => {
                // Drain the notifications; the file itself is the truth (and is read even
                // without one, since the kernel may delay them).
                let mut buf = [0u8; 1024];
                loop {
                    match rustix::io::read(&*inotify, &mut buf) {
                        Ok(0) | Err(Errno::AGAIN) => break,
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(e) => return Err(e).context("reading the inotify fd"),
                    }
                }
                let text = match std::fs::read_to_string(&*events) {
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Reading::Gone),
                    // ENODEV: the cgroup was removed while the file was open.
                    Err(e) if e.raw_os_error() == Some(Errno::NODEV.raw_os_error()) => {
                        return Ok(Reading::Gone);
                    }
                    other => other.with_context(|| format!("reading {}", events.display()))?,
                };
                let now = parse_oom_kills(&text).unwrap_or(*last);
                let kills = now.saturating_sub(*last);
                *last = now;
                Ok(Reading::Kills(kills))
            }
        }
    }
}

fn watch_v1(dir: &Path) -> anyhow::Result<Source> {
    let control = dir.join("memory.oom_control");
    let oom_control =
        File::open(&control).with_context(|| format!("opening {}", control.display()))?;
    let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .context("creating an eventfd")?;
    let event_control = dir.join("cgroup.event_control");
    let line = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&event_control)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("registering an eventfd in {}", event_control.display()))?;
    Ok(Source::V1 {
        eventfd,
        _oom_control: oom_control,
        event_control,
    })
}

fn watch_v2(dir: &Path) -> anyhow::Result<Source> {
    let events = dir.join("memory.events");
    if !events.exists() {
        bail!(
            "{} has no memory.events (no memory controller)",
            dir.display()
        );
    }
    let inotify = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
        .context("creating an inotify fd")?;
    inotify::add_watch(&inotify, &events, WatchFlags::MODIFY)
        .with_context(|| format!("watching {}", events.display()))?;
    // Read only once the watch is in place, so no change falls between the two.
    let text = std::fs::read_to_string(&events)
        .with_context(|| format!("reading {}", events.display()))?;
    let last = parse_oom_kills(&text)
        .with_context(|| format!("{} has no oom_kill count", events.display()))?;
    Ok(Source::V2 {
        inotify,
        events,
        last,
    })
}

/// Finds the memory cgroup of `pid` and watches it.
fn open(pid: Pid) -> anyhow::Result<Source> {
    let cgroup_file = format!("/proc/{}/cgroup", pid.as_raw_nonzero());
    let proc_cgroup =
        std::fs::read_to_string(&cgroup_file).with_context(|| format!("reading {cgroup_file}"))?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    watch_first(&candidates(&proc_cgroup, &mountinfo))
        .with_context(|| format!("watching the memory cgroup of {cgroup_file}"))
}

/// Watches the first candidate that can be watched; else fails as the first one did.
fn watch_first(candidates: &[Candidate]) -> anyhow::Result<Source> {
    let mut first_error = None;
    for candidate in candidates {
        let watched = match candidate {
            Candidate::V1(dir) => watch_v1(dir),
            Candidate::V2(dir) => watch_v2(dir),
        };
        match watched {
            Ok(source) => return Ok(source),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => bail!("no memory cgroup is mounted"),
    }
}

/// The OOM kills of one container: a count, and while the cgroup is watched, an fd to poll.
pub struct OomWatch {
    source: Option<Source>,
    count: u64,
}

impl OomWatch {
    /// Watches the memory cgroup of `pid` (the container's init). When that cannot be done, says
    /// so in one line on stderr (shim.log) and returns a watch that stays at zero.
    pub fn start(pid: Pid) -> Self {
        let source = match open(pid) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("berth-shim: not watching for OOM kills: {e:#}");
                None
            }
        };
        OomWatch { source, count: 0 }
    }

    /// OOM kills seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The fd to poll for readability, while the cgroup is watched.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.source.as_ref().map(Source::fd)
    }

    /// Takes in what the kernel reported since the last call, without blocking; ends the watch
    /// when the cgroup is gone or can no longer be read.
    pub fn refresh(&mut self) {
        let Some(source) = &mut self.source else {
            return;
        };
        match source.read() {
            Ok(Reading::Kills(n)) => self.count = self.count.saturating_add(n),
            Ok(Reading::Gone) => self.source = None,
            Err(e) => {
                eprintln!("berth-shim: no longer watching for OOM kills: {e:#}");
                self.source = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "\
12:pids:/ctr
9:name=systemd:/ctr
4:memory:/ctr
3:cpu,cpuacct:/ctr
0::/ctr
";

    const HYBRID_MOUNTINFO: &str = "\
23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn proc_cgroup_finds_the_memory_line_and_the_unified_line() {
        assert_eq!(
            parse_proc_cgroup(HYBRID_CGROUP),
            ProcCgroups {
                v1_memory: Some("/ctr".into()),
                unified: Some("/ctr".into()),
            }
        );
        // Co-mounted controllers, a path with a colon, garbage lines.
        let text = "7:cpu,memory:/a:b\nnonsense\n\n5:name=memory:/no\n";
        assert_eq!(
            parse_proc_cgroup(text),
            ProcCgroups {
                v1_memory: Some("/a:b".into()),
                unified: None,
            }
        );
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/x.scope\n"),
            ProcCgroups {
                v1_memory: None,
                unified: Some("/system.slice/x.scope".into()),
            }
        );
    }

    #[test]
    fn mountinfo_lines_with_and_without_optional_fields() {
        let m = parse_mountinfo_line(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:13 master:2 - cgroup cgroup rw,memory",
        )
        .unwrap();
        assert_eq!(
            m,
            MountInfo {
                root: "/".into(),
                mount_point: "/sys/fs/cgroup/memory".into(),
                fs_type: "cgroup".into(),
                super_options: "rw,memory".into(),
            }
        );
        let m =
            parse_mountinfo_line(r"50 1 0:40 /a\040b /mnt/my\134dir rw - cgroup2 none rw").unwrap();
        assert_eq!(
            (m.root.as_str(), m.mount_point.as_str()),
            ("/a b", r"/mnt/my\dir")
        );
        assert_eq!(parse_mountinfo_line("too short"), None);
        assert_eq!(parse_mountinfo_line("1 2 3 - cgroup"), None);
    }

    #[test]
    fn hybrid_host_tries_v1_memory_then_the_unified_tree() {
        assert_eq!(
            candidates(HYBRID_CGROUP, HYBRID_MOUNTINFO),
            vec![
                Candidate::V1("/sys/fs/cgroup/memory/ctr".into()),
                Candidate::V2("/sys/fs/cgroup/unified/ctr".into()),
            ]
        );
    }

    #[test]
    fn pure_v2_host_uses_the_cgroup2_mount() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            candidates("0::/berth/abc\n", mountinfo),
            vec![Candidate::V2("/sys/fs/cgroup/berth/abc".into())]
        );
        assert_eq!(
            candidates("0::/\n", mountinfo),
            vec![Candidate::V2("/sys/fs/cgroup".into())]
        );
    }

    #[test]
    fn mount_roots_are_stripped_and_unreachable_paths_skipped() {
        // The hierarchy mounted from a subdirectory (as inside a container).
        let mountinfo = "\
60 50 0:32 /outer /cg/memory rw - cgroup cgroup rw,memory
61 50 0:38 /outer /cg/unified rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            candidates("4:memory:/outer/ctr\n0::/outer\n", mountinfo),
            vec![
                Candidate::V1("/cg/memory/ctr".into()),
                Candidate::V2("/cg/unified".into()),
            ]
        );
        // Outside the mounted subtree, a sibling with a common prefix, or above our namespace.
        assert_eq!(
            candidates("4:memory:/elsewhere\n0::/outerx\n", mountinfo),
            vec![]
        );
        let root_mounts = "35 31 0:32 / /m rw - cgroup cgroup rw,memory\n";
        assert_eq!(candidates("4:memory:/../../host\n", root_mounts), vec![]);
    }

    #[test]
    fn no_memory_controller_gives_no_v1_candidate() {
        let mountinfo = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(candidates("3:cpu:/ctr\n", mountinfo), vec![]);
        // A memory line but the hierarchy is not mounted here.
        assert_eq!(candidates("4:memory:/ctr\n", mountinfo), vec![]);
    }

    /// Whether the watch's fd is readable right now.
    fn readable(w: &OomWatch) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::from_borrowed_fd(w.fd().unwrap(), PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&now)).unwrap() == 1
    }

    #[test]
    fn v2_watch_counts_oom_kill_increases_and_ends_with_the_file() {
        // A stand-in memory.events: inotify reports writes to it as the kernel's notifications.
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        let source = watch_first(&[Candidate::V2(dir.path().into())]).unwrap();
        let mut w = OomWatch {
            source: Some(source),
            count: 0,
        };
        assert!(!readable(&w));
        w.refresh();
        assert_eq!(w.count(), 0, "kills before the watch began are not counted");
        std::fs::write(&events, "oom 3\noom_kill 3\n").unwrap();
        assert!(readable(&w));
        w.refresh();
        assert_eq!(w.count(), 2);
        assert!(!readable(&w), "notifications drained");
        std::fs::remove_file(&events).unwrap();
        w.refresh();
        assert!(w.fd().is_none(), "the watch ends with the cgroup");
        assert_eq!(w.count(), 2);
        w.refresh();
        assert_eq!(w.count(), 2);
    }

    #[test]
    fn unwatchable_cgroups_fail_with_the_first_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = watch_first(&[
            Candidate::V1(dir.path().join("gone")),
            Candidate::V2(dir.path().into()),
        ])
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("memory.oom_control"), "{err:#}");
        let err = watch_first(&[Candidate::V2(dir.path().into())])
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("no memory controller"),
            "{err:#}"
        );
        let err = watch_first(&[]).err().unwrap();
        assert!(format!("{err:#}").contains("no memory cgroup"), "{err:#}");
    }

    #[test]
    fn memory_events_oom_kill() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(text), Some(2));
        assert_eq!(parse_oom_kills("low 0\nmax 1\noom 1\n"), None);
        assert_eq!(parse_oom_kills("oom_kill x\n"), None);
        assert_eq!(parse_oom_kills(""), None);
    }
}
