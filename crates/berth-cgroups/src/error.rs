//! The crate's error type: one variant per kind of failure site, each carrying the path or value involved.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing a control group.
///
/// The underlying cause (an `io::Error` from the kernel) is always the `#[source]`, never repeated in
/// the message, so `{:#}`-style printers show it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/self/mountinfo` could not be read.
    #[error("cannot read mount table {path}")]
    ReadMountinfo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of the mount table did not have the documented shape.
    #[error("malformed mount table line {line}: {text:?}")]
    MalformedMountinfo { line: usize, text: String },
    /// Neither a cgroup v1 controller nor a cgroup2 file system is mounted.
    #[error("no cgroup file system is mounted")]
    NoCgroupMounts,
    /// The systemd form `slice:prefix:name` of `linux.cgroupsPath` needs a systemd driver.
    #[error(
        "cgroups path {path:?} uses the systemd form slice:prefix:name, which needs the systemd cgroup driver (not supported)"
    )]
    SystemdUnsupported { path: String },
    /// `linux.cgroupsPath` (or the container id used in its place) is not acceptable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidCgroupPath { path: String, reason: &'static str },
    /// A resource asked for a v1 controller that is not mounted on this host.
    #[error("the {controller} cgroup controller is not mounted, but {what} was requested")]
    ControllerMissing {
        controller: &'static str,
        what: &'static str,
    },
    /// A swap limit was requested but the kernel has no swap accounting (the file is absent).
    #[error("a swap limit was requested but swap accounting is not enabled ({path} is missing)")]
    SwapAccountingDisabled { path: PathBuf },
    /// A resource value failed validation before anything was written.
    #[error("invalid value for {what}: {value:?} ({reason})")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The request is valid but this cgroup version or build cannot honour it.
    #[error("{what} is not supported on {version}")]
    Unsupported {
        what: &'static str,
        version: &'static str,
    },
    /// Creating a cgroup directory failed.
    #[error("cannot create cgroup directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("cannot remove cgroup directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Listing a cgroup directory failed.
    #[error("cannot list cgroup directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file a requested setting is written to does not exist: this kernel (or the way its
    /// controller is mounted) does not offer the feature. runc fails the same way.
    #[error(
        "cannot apply {value:?}: {path} does not exist (this kernel does not support the setting, or its controller is not enabled)"
    )]
    NotSupported { path: PathBuf, value: String },
    /// Writing a value to a cgroup file failed.
    #[error("cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something that could not be parsed.
    #[error("cannot parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    /// Moving a process into a cgroup failed.
    #[error("cannot move process {pid} into {path}")]
    AddPid {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("cannot send signal {signal} to process {pid}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: io::Error,
    },
    /// The freezer did not reach the wanted state in time.
    #[error("cgroup {path} did not become {wanted} in time")]
    FreezeTimeout { path: PathBuf, wanted: &'static str },
    /// Opening the cgroup directory (to attach a BPF program) failed.
    #[error("cannot open cgroup directory {path}")]
    OpenDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A bpf(2) command failed; `log` holds the verifier log for program loads.
    #[error("bpf({command}) failed for cgroup {path}{}", if log.is_empty() { String::new() } else { format!("; verifier log: {log}") })]
    Bpf {
        command: &'static str,
        path: PathBuf,
        log: String,
        #[source]
        source: io::Error,
    },
}
