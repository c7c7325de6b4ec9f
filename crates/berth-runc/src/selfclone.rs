//! Protection of the runtime binary (CVE-2019-5736): before a command that puts a process into
//! a container, the runtime re-executes itself from a sealed memfd copy, so /proc/PID/exe of
//! anything in the container names an immutable in-memory file, never the host binary.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use rustix::fs::{MemfdFlags, OFlags, SealFlags};

use crate::sys;

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether this process already runs from a sealed copy.
fn running_sealed() -> bool {
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS))
}

/// Re-executes from a sealed memfd copy unless already running from one. Returns only if the
/// process already runs sealed.
pub fn ensure_sealed() -> anyhow::Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let mut src = std::fs::File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    let memfd = rustix::fs::memfd_create(
        "berth-runc",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .context("creating the memfd for the sealed runtime copy")?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).context("copying the runtime into the memfd")?;
    // std::io::copy splices; pages still referenced by the pipe for a moment make F_SEAL_WRITE
    // fail with EBUSY (seen under load): wait for them briefly.
    let mut tries = 0;
    loop {
        match rustix::fs::fcntl_add_seals(&dst, SEALS) {
            Err(rustix::io::Errno::BUSY) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            r => break r.context("sealing the runtime copy")?,
        }
    }
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("argument with a NUL byte")?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .context("environment variable with a NUL byte")?;
    let err = sys::execve_fd(dst.as_fd(), &argv, &envp);
    Err(err).context("re-executing the sealed runtime copy")
}
