//! Shared test kit: unique cgroup names, a guard that removes what a test made, gated child processes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_cgroups::{Cgroup, Layout, Version};
use oci_spec::runtime::LinuxResources;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `berth-cgtest-<pid>-<n>`: unique across the parallel test processes and threads.
pub fn unique_name() -> String {
    format!(
        "berth-cgtest-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The host layout when it is v1 (or hybrid) and we are root; otherwise the test is skipped.
pub fn v1_host() -> Option<Layout> {
    let layout = Layout::detect().unwrap();
    if layout.version() != Version::V1 || !is_root() {
        eprintln!("skipped: needs root on a cgroup v1 or hybrid host");
        return None;
    }
    Some(layout)
}

/// A cgroup2 tree we may create cgroups in: the controller-less `unified` mount of a hybrid host.
pub fn v2_unified_host() -> Option<Layout> {
    let layout = Layout::detect().unwrap();
    match layout.v2_mount() {
        Some(m) if layout.is_hybrid() && is_root() => Some(Layout::v2_at(m.mountpoint.clone())),
        _ => {
            eprintln!("skipped: needs root on a hybrid host (cgroup2 mounted beside v1)");
            None
        }
    }
}

/// Creating a cgroup in the hybrid host's `unified` tree enables its controllers (hugetlb here)
/// at the root; undo that, or a v1 hierarchy for them can no longer be mounted (crun needs one).
/// Best effort: while another test's cgroup still uses one, the kernel refuses and the last
/// test to finish succeeds.
fn restore_unified_root() {
    let layout = Layout::detect().unwrap();
    let Some(m) = layout.v2_mount().filter(|_| layout.is_hybrid()) else {
        return;
    };
    let file = m.mountpoint.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file).unwrap_or_default();
    for c in enabled.split_whitespace() {
        let _ = std::fs::write(&file, format!("-{c}"));
    }
}

pub fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// A test cgroup that is killed and removed when dropped, also when an assertion failed.
pub struct TestCgroup {
    pub cg: Cgroup,
    nested: bool,
}

impl TestCgroup {
    /// `/<unique>` or, nested, `/<unique>/inner`; created.
    pub fn create(layout: &Layout, nested: bool) -> TestCgroup {
        let name = unique_name();
        let path = if nested {
            format!("/{name}/inner")
        } else {
            format!("/{name}")
        };
        let cg = Cgroup::new(layout, &path, "unused").unwrap();
        let guard = TestCgroup { cg, nested };
        guard.cg.create().unwrap();
        guard
    }

    pub fn dir(&self, controller: &str) -> PathBuf {
        self.cg
            .paths()
            .into_iter()
            .find(|(c, _)| c == controller)
            .unwrap()
            .1
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        let _ = self.cg.kill_all(libc::SIGKILL);
        let _ = self.cg.destroy();
        restore_unified_root();
        if self.nested {
            for (_, dir) in self.cg.paths() {
                if let Some(parent) = dir.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
    }
}

/// A shell that waits for a line on stdin before running `script`, so the test can move it into a
/// cgroup first. Killed and reaped when dropped.
pub struct GatedChild {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl GatedChild {
    #[allow(clippy::disallowed_methods)] // a real process is what the cgroup tests are about
    pub fn spawn(script: &str) -> GatedChild {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _gate; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        GatedChild {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn release(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Waits for the exit; returns the signal that killed it, if any.
    pub fn wait_signal(&mut self) -> Option<i32> {
        self.child.wait().unwrap().signal()
    }
}

impl Drop for GatedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
