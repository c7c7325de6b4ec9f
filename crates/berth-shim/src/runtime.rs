//! The OCI runtime's command line (runc's), the one contract through which the shim acts on the
//! container. Every runtime call is synchronous; errors carry the runtime's own message, taken
//! from the last `"level":"error"` line of its JSON log (as containerd does) or from its stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context;

/// One runtime binary with its state root and log file.
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    /// Our own handle on berth-containerd's sealed copy of the runtime, if it gave one: runs
    /// of it skip berth-runc's copy of itself (CVE-2019-5736), and the handle outlives a
    /// restart of berth-containerd.
    sealed: Option<std::os::fd::OwnedFd>,
}

/// The seals berth-runc looks for on its own executable before it skips making a copy.
const SEALS: rustix::fs::SealFlags = rustix::fs::SealFlags::SEAL
    .union(rustix::fs::SealFlags::SHRINK)
    .union(rustix::fs::SealFlags::GROW)
    .union(rustix::fs::SealFlags::WRITE);

/// Opens `path` (a sealed memfd through /proc) if it really is sealed.
fn open_sealed(path: &Path) -> Option<std::os::fd::OwnedFd> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    rustix::fs::fcntl_get_seals(&fd)
        .is_ok_and(|s| s.contains(SEALS))
        .then_some(fd)
}

impl Runtime {
    pub fn new(bin: PathBuf, root: PathBuf, log: PathBuf, sealed: Option<&Path>) -> Runtime {
        Runtime {
            bin,
            root,
            log,
            sealed: sealed.and_then(open_sealed),
        }
    }

    /// A runtime command with the global flags set and stdio detached from the shim's; from
    /// the sealed copy when there is one.
    pub fn command(&self, args: &[&str]) -> Command {
        match &self.sealed {
            Some(fd) => {
                let via = PathBuf::from(format!(
                    "/proc/{}/fd/{}",
                    std::process::id(),
                    std::os::fd::AsRawFd::as_raw_fd(fd)
                ));
                self.command_from(&via, args)
            }
            None => self.command_from(&self.bin, args),
        }
    }

    fn command_from(&self, bin: &Path, args: &[&str]) -> Command {
        #[allow(clippy::disallowed_methods)] // the OCI runtime CLI is the shim's contract
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `args`, returning stdout, or the runtime's error text when it fails.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        self.run_with_input(args, None)
    }

    /// Runs `args` with `input` on stdin (for `update -r -`).
    pub fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
        let offset = self.log_len();
        let mut cmd = self.command(args);
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).context("writing to the runtime")?;
        }
        let out = child
            .wait_with_output()
            .context("waiting for the runtime")?;
        self.check(&out, offset)?;
        Ok(out.stdout)
    }

    /// Turns a failed run into the runtime's own error message.
    pub fn check(&self, out: &Output, log_offset: u64) -> anyhow::Result<()> {
        if out.status.success() {
            return Ok(());
        }
        Err(RuntimeError::new(self.error_text(&out.stderr, log_offset)).into())
    }

    /// The log's current length: errors are looked for only in what a command appends after it.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The last error the runtime logged, else its stderr, else a generic text.
    pub fn error_text(&self, stderr: &[u8], log_offset: u64) -> String {
        if let Some(msg) = last_logged_error(&self.log, log_offset) {
            return msg;
        }
        let text = String::from_utf8_lossy(stderr).trim().to_string();
        if text.is_empty() {
            "the OCI runtime failed without a message".to_string()
        } else {
            text
        }
    }
}

/// The `msg` of the last `"level":"error"` line of a runtime's JSON log.
pub fn last_logged_error(log: &Path, offset: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(bytes.get(usize::try_from(offset).ok()?..)?);
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? == "error" {
            v.get("msg")?.as_str().map(str::to_string)
        } else {
            None
        }
    })
}

/// A runtime's failure in its own words. Whether it says the container (or process) does not
/// exist is read here, once, from those words: runc and its kin report it in no other way.
#[derive(Debug)]
pub struct RuntimeError {
    pub message: String,
    pub not_found: bool,
}

impl RuntimeError {
    fn new(message: String) -> RuntimeError {
        let lower = message.to_lowercase();
        let not_found = ["no such", "not found", "does not exist"]
            .iter()
            .any(|w| lower.contains(w));
        RuntimeError { message, not_found }
    }
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuntimeError {}

#[cfg(test)]
mod tests {
    use super::RuntimeError;

    #[test]
    fn a_runtime_saying_the_container_is_gone_is_not_found() {
        assert!(RuntimeError::new("container abc does not exist".into()).not_found);
        assert!(RuntimeError::new("open /x: no such file or directory".into()).not_found);
        assert!(!RuntimeError::new("container not running".into()).not_found);
    }
}
