//! A private Docker daemon for tests that need Docker's reference behaviour: Debian's docker.io
//! `dockerd` with its own data root, exec root, pidfile and socket under one short `/tmp`
//! directory, its own managed containerd (whose root, state and socket dockerd puts under those
//! roots), no bridge and no iptables rules, and any extra OCI runtimes the caller registers
//! (`--add-runtime NAME=PATH`). Stopped, unmounted and removed on drop.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::wait_for;

/// Where Debian's docker.io installs the daemon.
pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
/// Where Debian's docker.io installs the CLI (used instead of any other `docker` on PATH, so the
/// client matches the daemon).
pub const DOCKER_BIN: &str = "/usr/bin/docker";

/// How long dockerd gets to answer `docker version` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd gets to shut down on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private dockerd. Everything it writes, except what the kernel keeps (cgroups) and
/// containerd's shim sockets under `/run/containerd/s/`, lives under [`Dockerd::path`].
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    /// The exec root, when it lives elsewhere than under `dir` (see [`Dockerd::start_on_bridge`]).
    exec: Option<tempfile::TempDir>,
}

impl Dockerd {
    /// Starts dockerd with the extra runtimes `(name, path)` and waits until it answers.
    /// Fails with an install hint if docker.io is missing.
    pub fn start(runtimes: &[(&str, &Path)]) -> anyhow::Result<Self> {
        Self::start_inner(runtimes, None, &[], None)
    }

    /// Starts dockerd whose default network uses the existing bridge `bridge` (which must
    /// carry an address: dockerd takes its subnet from it). Still no iptables rules. With
    /// `exec_parent`, its exec root (containerd's state, runc's state) is made there instead,
    /// e.g. on a tmpfs like the /run of a usual host.
    pub fn start_on_bridge(bridge: &str, exec_parent: Option<&Path>) -> anyhow::Result<Self> {
        Self::start_inner(&[], Some(bridge), &[], exec_parent)
    }

    /// Starts dockerd with extra daemon flags (e.g. a TLS listener on loopback), besides its
    /// unix socket.
    pub fn start_with_flags(flags: &[String]) -> anyhow::Result<Self> {
        Self::start_inner(&[], None, flags, None)
    }

    fn start_inner(
        runtimes: &[(&str, &Path)],
        bridge: Option<&str>,
        flags: &[String],
        exec_parent: Option<&Path>,
    ) -> anyhow::Result<Self> {
        for bin in [DOCKERD_BIN, DOCKER_BIN] {
            anyhow::ensure!(
                Path::new(bin).exists(),
                "{bin} not found: Debian's docker.io is not installed (run scripts/deps.sh, or \
                 apt-get install docker.io)"
            );
        }
        let dir = tempfile::Builder::new().prefix("bd-").tempdir_in("/tmp")?;
        for sub in ["data", "exec", "cli"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        let exec = match exec_parent {
            Some(parent) => Some(tempfile::Builder::new().prefix("bd-").tempdir_in(parent)?),
            None => None,
        };
        let exec_root = match &exec {
            Some(e) => e.path().to_path_buf(),
            None => dir.path().join("exec"),
        };
        let log = std::fs::File::create(dir.path().join("dockerd.log"))?;
        // Its own (empty) configuration: never the host's /etc/docker/daemon.json, whose
        // settings could clash with these flags or change the daemon under test.
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, "{}")?;
        #[allow(clippy::disallowed_methods)] // the reference daemon is the point of the fixture
        let mut cmd = std::process::Command::new(DOCKERD_BIN);
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .arg(format!("--bridge={}", bridge.unwrap_or("none")))
            .args(["--iptables=false", "--ip6tables=false"])
            .args(["--storage-driver", "overlay2", "--log-level", "warn"]);
        cmd.args(flags);
        for (name, path) in runtimes {
            cmd.arg("--add-runtime")
                .arg(format!("{name}={}", path.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {DOCKERD_BIN}"))?;
        let mut d = Self { child, dir, exec };
        let up = wait_for(START_TIMEOUT, "dockerd to answer `docker version`", || {
            matches!(d.child.try_wait(), Ok(Some(_)))
                || d.docker(&["version", "--format", "{{.Server.Version}}"])
                    .status
                    .success()
        });
        if let Ok(Some(status)) = d.child.try_wait() {
            anyhow::bail!("dockerd exited with {status}:\n{}", d.log());
        }
        up.with_context(|| format!("dockerd log:\n{}", d.log()))?;
        Ok(d)
    }

    /// The temporary directory holding everything of this daemon.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `--data-root`.
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `--exec-root` (containerd's state and socket are under `containerd/`, each runtime's state
    /// root is `runtime-<name>/`).
    pub fn exec_root(&self) -> PathBuf {
        match &self.exec {
            Some(e) => e.path().to_path_buf(),
            None => self.dir.path().join("exec"),
        }
    }

    /// The `-H` value for a client: `unix://<dir>/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Runs `docker -H <this daemon> ARGS...` (Debian's CLI, with its own config directory) and
    /// returns its output. A CLI that cannot be started reads as exit status 127 with the reason
    /// on stderr.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_env(&[], args)
    }

    /// The docker CLI against this daemon with extra environment (e.g. `DOCKER_BUILDKIT=0`).
    pub fn docker_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        #[allow(clippy::disallowed_methods)] // the reference client talks to the reference daemon
        let out = std::process::Command::new(DOCKER_BIN)
            .envs(env.iter().copied())
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output();
        out.unwrap_or_else(|e| Output {
            status: std::process::ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("running {DOCKER_BIN}: {e}").into_bytes(),
        })
    }

    /// Stops the daemon: removes its containers, SIGTERM, then SIGKILL after [`STOP_TIMEOUT`];
    /// then kills any process still running from under this daemon's directory (its containerd
    /// and shims, if dockerd died without stopping them).
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let ids = self.docker(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(&ids);
                self.docker(&args);
            }
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let exited = wait_for(STOP_TIMEOUT, "dockerd to exit on SIGTERM", || {
                !matches!(self.child.try_wait(), Ok(None))
            });
            if let Err(e) = exited {
                eprintln!("dockerd: {e:#}; killing it");
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let mut leftovers = processes_mentioning(self.dir.path());
        if let Some(e) = &self.exec {
            leftovers.extend(processes_mentioning(e.path()));
        }
        for pid in leftovers {
            eprintln!("dockerd: killing leftover process {pid}");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dockerd log ({}) ---\n{}", self.host(), self.log());
        }
        self.stop();
        let exec = self.exec.as_ref().map(|e| e.path());
        for dir in std::iter::once(self.dir.path()).chain(exec) {
            if let Err(e) = unmount_under(dir) {
                eprintln!("dockerd: unmounting under {}: {e:#}", dir.display());
            }
        }
    }
}

/// Processes whose command line mentions `dir` (dockerd's containerd and shims carry its paths).
fn processes_mentioning(dir: &Path) -> Vec<rustix::process::Pid> {
    let needle = dir.as_os_str().as_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .filter_map(rustix::process::Pid::from_raw)
        .collect()
}

/// Mount points at or under `dir` in `mountinfo` text, deepest first.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(p))))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Lazily unmounts everything mounted at or under `dir`, deepest first, until nothing is left
/// (a mount point may hold stacked mounts).
fn unmount_under(dir: &Path) -> anyhow::Result<()> {
    for _ in 0..8 {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        let mounts = mounts_under(&info, dir);
        if mounts.is_empty() {
            return Ok(());
        }
        for m in mounts {
            rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH)
                .with_context(|| format!("unmounting {}", m.display()))?;
        }
    }
    anyhow::bail!("mounts keep reappearing under {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_finds_escaped_paths_deepest_first() {
        let info = "\
52 27 254:0 /tmp/bd-x/data /tmp/bd-x/data rw shared:1 - ext4 /dev/vda rw
60 52 0:50 / /tmp/bd-x/data/overlay2/abc/merged rw - overlay overlay rw
61 27 0:4 net:[1] /tmp/bd-x/exec/netns/a\\040b rw - nsfs nsfs rw
62 27 0:5 / /tmp/bd-xy rw - tmpfs tmpfs rw
";
        let found = mounts_under(info, Path::new("/tmp/bd-x"));
        assert_eq!(
            found,
            vec![
                PathBuf::from("/tmp/bd-x/data/overlay2/abc/merged"),
                PathBuf::from("/tmp/bd-x/exec/netns/a b"),
                PathBuf::from("/tmp/bd-x/data"),
            ]
        );
    }
}
