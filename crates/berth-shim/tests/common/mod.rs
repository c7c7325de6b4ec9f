//! Shared setup of the berth-shim tests: a task (busybox bundle as task dir, private runtime
//! root) started through the real `berth-shim start` and the real berth-runc, a client for the
//! shim's socket, and cleanup (kill the shim, force-delete the container) that runs on failure too.
//!
//! `workspace_bin` finds berth-runc next to the test's target dir: build it first into the same
//! `CARGO_TARGET_DIR` (scripts/test.sh builds every binary before the tests).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use berth_testkit::{Bundle, wait_for};
use serde_json::Value;

pub const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

pub fn runc_bin() -> PathBuf {
    let p = berth_testkit::workspace_bin("berth-runc");
    assert!(
        p.is_file(),
        "{} missing: cargo build -p berth-runc into the same target dir first",
        p.display()
    );
    p
}

/// One container under one shim.
pub struct Task {
    pub bundle: Bundle,
    pub id: String,
    pub runtime_root: tempfile::TempDir,
    pub shim_pid: Option<u32>,
    pub init_pid: Option<u32>,
}

impl Task {
    pub fn new(name: &str, args: &[&str]) -> Self {
        Task {
            bundle: Bundle::new(args).unwrap(),
            id: format!("{name}-{}", std::process::id()),
            runtime_root: tempfile::Builder::new()
                .prefix("bsr-")
                .tempdir_in("/tmp")
                .unwrap(),
            shim_pid: None,
            init_pid: None,
        }
    }

    pub fn dir(&self) -> &Path {
        self.bundle.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("shim.sock")
    }

    /// A FIFO in the task dir, as a caller such as berth-containerd makes them.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        p
    }

    /// Runs `berth-shim start` with `extra` flags and returns its output; records the pids.
    pub fn start_shim(&mut self, extra: &[&str]) -> Output {
        #[allow(clippy::disallowed_methods)] // the binary under test
        let out = Command::new(SHIM)
            .arg("start")
            .arg("--id")
            .arg(&self.id)
            .arg("--task-dir")
            .arg(self.dir())
            .arg("--runtime")
            .arg(runc_bin())
            .arg("--runtime-root")
            .arg(self.runtime_root.path())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            self.shim_pid = v["shim_pid"].as_u64().map(|p| p as u32);
            self.init_pid = v["pid"].as_u64().map(|p| p as u32);
            assert_eq!(
                v["socket"].as_str().unwrap(),
                self.socket().to_str().unwrap()
            );
        }
        out
    }

    /// Starts the shim and expects success.
    pub fn start_ok(&mut self, extra: &[&str]) {
        let out = self.start_shim(extra);
        assert!(out.status.success(), "berth-shim start failed: {out:?}");
    }

    /// Sends one request and returns the response.
    pub fn req(&self, req: Value) -> Value {
        request(&self.socket(), &req)
    }

    /// The runtime's own view (`state ID`), None when it has no such container.
    pub fn runtime_state(&self) -> Option<Value> {
        #[allow(clippy::disallowed_methods)] // the runtime, to check what the shim left
        let out = Command::new(runc_bin())
            .arg("--root")
            .arg(self.runtime_root.path())
            .args(["state", &self.id])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(pid) = self.shim_pid.filter(|p| alive(*p)) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
        #[allow(clippy::disallowed_methods)] // the runtime, to clean up after a failed test
        let _ = Command::new(runc_bin())
            .arg("--root")
            .arg(self.runtime_root.path())
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// One request/response exchange on a shim socket.
pub fn request(socket: &Path, req: &Value) -> Value {
    let mut s = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    writeln!(s, "{req}").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad response {line:?}: {e}"))
}

/// Sends one request and leaves the connection open, for requests answered later (`wait`,
/// `oom_wait`); reads on it give up after `timeout`.
pub fn send_request(socket: &Path, req: &Value, timeout: std::time::Duration) -> UnixStream {
    let mut s = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    s.set_read_timeout(Some(timeout)).unwrap();
    writeln!(s, "{req}").unwrap();
    s
}

/// The answer on a connection from [`send_request`]; None if the shim closed it unanswered.
pub fn read_response(s: UnixStream) -> Option<Value> {
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no answer in time: {e}"));
    (!line.is_empty()).then(|| {
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad response {line:?}: {e}"))
    })
}

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|s| s != "Z" && s != "X")
}

/// Field `n` after the command name of /proc/PID/stat (0 = state, 1 = ppid, 3 = session).
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n).map(str::to_string)
}

/// Processes whose command line mentions `needle` (e.g. a task dir).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// VmRSS of `pid` in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
