//! Protection of the runtime binary (CVE-2019-5736): before a command that puts a process into
//! a container, the runtime re-executes itself from a file nothing can write through, so
//! /proc/PID/exe of anything in the container never opens the host binary for writing. First
//! choice (runc 1.1 and crun do the same): a read-only bind mount of the binary, opened and then
//! detached from every mount table, costing three mount calls; where mounting is not allowed, a
//! sealed memfd copy of the whole binary.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags, StatVfsMountFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::sys;

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether this process already runs from a file that cannot be written: a sealed copy, or a
/// binary on a read-only mount (our detached bind, or a read-only /usr).
fn running_protected() -> bool {
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    rustix::fs::fstatvfs(&exe).is_ok_and(|v| v.f_flag.contains(StatVfsMountFlags::RDONLY))
        || rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS))
}

/// Re-executes from a protected view of this binary unless already running from one. Returns
/// only if the process already runs protected.
pub fn ensure_sealed() -> anyhow::Result<()> {
    if running_protected() {
        return Ok(());
    }
    let exe = match read_only_view() {
        Some(fd) => fd,
        None => sealed_copy()?,
    };
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
    let err = sys::execve_fd(exe.as_fd(), &argv, &envp);
    Err(err).context("re-executing the protected runtime")
}

/// The binary seen through a read-only bind mount that is detached as soon as it is opened: the
/// descriptor keeps the mount alive and nameless, so nothing can remount it writable. None when
/// mounting fails (no privilege, no writable temp dir); the mount point never outlives this call.
fn read_only_view() -> Option<OwnedFd> {
    let dir = std::env::temp_dir();
    let point = dir.join(format!(".berth-runc-exe.{}", std::process::id()));
    let placeholder = rustix::fs::open(
        &point,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ok()?;
    drop(placeholder);
    let view = (|| {
        rustix::mount::mount_bind("/proc/self/exe", &point).ok()?;
        let fd = rustix::mount::mount_remount(&point, MountFlags::BIND | MountFlags::RDONLY, "")
            .ok()
            .and_then(|()| {
                rustix::fs::open(&point, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()
            });
        let _ = rustix::mount::unmount(&point, UnmountFlags::DETACH);
        fd
    })();
    let _ = rustix::fs::unlink(&point);
    // Only a view that really is read-only will do.
    view.filter(|fd| {
        rustix::fs::fstatvfs(fd).is_ok_and(|v| v.f_flag.contains(StatVfsMountFlags::RDONLY))
    })
}

/// A sealed memfd copy of the binary.
fn sealed_copy() -> anyhow::Result<OwnedFd> {
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
    Ok(dst.into())
}
