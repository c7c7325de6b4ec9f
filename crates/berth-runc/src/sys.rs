//! Thin wrappers over the few system calls rustix does not cover (clone3, execve, prctl on
//! capabilities, personality, close_range). Every `unsafe` block of the runtime lives here.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Result of a fork-like clone: in the parent the child's pid, in the child `None`.
pub type Forked = Option<i32>;

/// `clone3` with `flags` (namespace flags) and `SIGCHLD` as the exit signal, without a new
/// stack: the child continues from here like after `fork()`. With `cgroup` (a cgroup2
/// directory), the child is born in that cgroup (`CLONE_INTO_CGROUP`): no migration afterwards.
///
/// The caller must be single-threaded: the child gets a copy of this thread only.
pub fn clone_process(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with a null stack duplicates the calling thread like fork(2); `args` is a
    // valid, fully initialised clone_args of the size passed. The runtime is single-threaded
    // when it calls this (no locks can be held by other threads), and the child only runs the
    // container's init path before exec or _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as i32)),
    }
}

/// [`clone_process`] into `cgroup` when one is given, and without it when the kernel refuses
/// (e.g. the no-internal-process rule): returns the fork and whether the child was born in
/// `cgroup` (if not, the caller moves it the usual way).
pub fn clone_process_into(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<(Forked, bool)> {
    match clone_process(flags, cgroup) {
        Err(_) if cgroup.is_some() => clone_process(flags, None).map(|f| (f, false)),
        r => r.map(|f| (f, cgroup.is_some())),
    }
}

/// Ends the calling process at once, without running exit handlers or destructors (for
/// children of `clone_process`, which must never return into the parent's code).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Replaces the process image. Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `path`, every argv and envp entry are NUL-terminated C strings that outlive the
    // call, and both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Executes the file open at `fd` (used for the sealed copy of this binary).
pub fn execve_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `fd` is an open file descriptor, the empty path with AT_EMPTY_PATH names it, and
    // argv/envp are NULL-terminated arrays of C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl options used here (capability bounding/ambient sets) take integer
    // arguments only and touch no memory of ours.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops capability number `cap` from the bounding set.
pub fn drop_bounding_cap(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0)
}

/// Raises capability number `cap` in the ambient set.
pub fn raise_ambient_cap(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        cap as libc::c_ulong,
    )
}

/// Sets the execution domain (`personality(2)`).
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes an integer and touches no memory.
    let r = unsafe { libc::personality(persona) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Marks every descriptor from `first` up close-on-exec, so none reaches the container.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The `CLONE_NEW*` type of the namespace an open namespace file refers to (`NS_GET_NSTYPE`,
/// Linux 4.11); an error for a file that is not a namespace.
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an int; the descriptor is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `setns(2)` on an open namespace file.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns takes a descriptor and a flag; the caller is single-threaded where the
    // namespace type requires it (user, mount).
    let r = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The children of the caller born in a joined pid namespace: `setns(CLONE_NEWPID)` only moves
/// the caller's future children, so the caller keeps the pid namespace it had to return to
/// once the one child that belongs to the container is cloned. Hooks and any other process
/// the runtime spawns afterwards are then born in the runtime's own pid namespace again.
pub struct PidNsForChildren {
    /// The caller's own pid namespace (`/proc/self/ns/pid`, not `pid_for_children`).
    orig: Option<std::os::fd::OwnedFd>,
}

impl PidNsForChildren {
    /// Makes the caller's next children be born in the pid namespace `fd`.
    pub fn join(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let orig = rustix::fs::open(
            "/proc/self/ns/pid",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        setns(fd, libc::CLONE_NEWPID)?;
        Ok(PidNsForChildren { orig: Some(orig) })
    }

    /// Puts the caller's next children back in its own pid namespace.
    pub fn restore(mut self) -> io::Result<()> {
        use std::os::fd::AsFd;
        match self.orig.take() {
            Some(fd) => setns(fd.as_fd(), libc::CLONE_NEWPID),
            None => Ok(()),
        }
    }
}

impl Drop for PidNsForChildren {
    fn drop(&mut self) {
        use std::os::fd::AsFd;
        if let Some(fd) = self.orig.take() {
            let _ = setns(fd.as_fd(), libc::CLONE_NEWPID);
        }
    }
}

/// Sets the calling process's real, effective and saved ids (all threads: there is one).
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer-only system calls.
    let r = unsafe { libc::setresgid(gid, gid, gid) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let r = unsafe { libc::setresuid(uid, uid, uid) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets the supplementary groups.
pub fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid slice of gid_t of the given length.
    let r = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends a signal to a process.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer-only system call.
    let r = unsafe { libc::kill(pid, sig) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Installs `handler` for `sig` (used only by the foreground `run`/`exec` to forward signals).
pub fn set_signal_handler(sig: i32, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: `sa` is zero-initialised then filled; the handler is an `extern "C"` function that
    // only performs async-signal-safe work (an atomic store).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        // No SA_RESTART: the waiting loop must see EINTR to forward the signal.
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Restores the default disposition of every catchable signal and unblocks all of them, so the
/// container's process starts with a clean signal state.
pub fn reset_signals() {
    // The kernel's own call: glibc's `signal` refuses the two signals it reserves (32 and 33),
    // which then stayed ignored when the caller had them ignored. A zeroed kernel sigaction is
    // SIG_DFL with no flags and an empty mask.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid kernel sigaction (handler SIG_DFL) that outlives the call;
        // the old action is not requested; the size is the kernel's sigset (8 bytes).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    // SAFETY: an empty, initialised mask is passed; the old mask is not requested.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `MOUNT_ATTR_*` of `<linux/mount.h>`.
pub mod mount_attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x20_0000;
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr)`: `attr` on the mount `fd` is
/// the root of and on every mount below it.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: a valid descriptor, a NUL-terminated empty path, and a pointer to a live
    // `struct mount_attr` whose size is passed along.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            std::ptr::from_ref(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)` with raw flags, for translating OCI mount options one to one.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null (allowed for source, fstype and data) or a
    // NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Flags (`f_flag`) of the mount holding `path`, for re-applying locked flags on remount.
pub fn mount_flags_of(path: &CStr) -> io::Result<libc::c_ulong> {
    // SAFETY: `st` is a plain C struct that statvfs fills; `path` is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.f_flag)
    }
}

/// `unshare(2)`; the caller is single-threaded.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes a flag word; the runtime's children are single-threaded, which the
    // user and mount namespace flags require.
    let r = unsafe { libc::unshare(flags) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives the process a new, anonymous session keyring, so the container never shares the
/// host's (runc does the same unless `--no-new-keyring`).
pub fn join_new_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for a new anonymous keyring; no memory of ours is touched.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// CLONE_INTO_CGROUP puts the child straight into a cgroup2 directory. This host's cgroup2
    /// tree (hybrid: /sys/fs/cgroup/unified; pure v2: /sys/fs/cgroup) takes it either way.
    #[test]
    fn clone_into_a_cgroup2_directory() {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists())
            .expect("a cgroup2 mount");
        let name = format!("berth-clone-test-{}", std::process::id());
        let dir = root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        let fd = std::fs::File::open(&dir).unwrap();
        let want = format!("0::/{name}\n");
        let path = c"/proc/self/cgroup";
        match clone_process(0, Some(fd.as_fd())).unwrap() {
            None => {
                // Raw syscalls only: this child of a multi-threaded test must not allocate.
                let mut buf = [0u8; 4096];
                // SAFETY: a NUL-terminated path and a stack buffer of the given length.
                let n = unsafe {
                    let f = libc::open(path.as_ptr(), libc::O_RDONLY);
                    libc::read(f, buf.as_mut_ptr().cast(), buf.len())
                };
                let text = &buf[..n.max(0) as usize];
                let found = text.windows(want.len()).any(|w| w == want.as_bytes());
                exit_now(if found { 0 } else { 1 })
            }
            Some(pid) => {
                let (_, status) = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(pid),
                    rustix::process::WaitOptions::empty(),
                )
                .unwrap()
                .unwrap();
                std::fs::remove_dir(&dir).unwrap();
                assert_eq!(
                    status.exit_status(),
                    Some(0),
                    "the child was not born in {name}"
                );
            }
        }
    }
}
