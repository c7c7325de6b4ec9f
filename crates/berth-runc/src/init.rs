//! The container's init, in the child the runtime cloned into the new namespaces: it waits for
//! the parent to map ids and join the cgroup (on cgroup v1 without user or cgroup namespaces it
//! builds the root filesystem meanwhile), builds the root filesystem, becomes the
//! container's process, reports ready, blocks on the exec fifo until `start`, and execs.
//! It never returns into the runtime's code: it execs or exits.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use anyhow::Context;
use oci_spec::runtime::Spec;

use crate::channel::{Channel, Msg};
use crate::process::ProcessPlan;
use crate::rootfs::{self, RootfsPlan};
use crate::{console, hooks, sys};

/// Everything the init needs, computed by the parent before the clone.
pub struct InitContext<'a> {
    /// v1 `tasks` files the init writes `0` to, joining its cgroups itself, first thing.
    pub cgroup_tasks: &'a [std::fs::File],
    pub spec: &'a Spec,
    pub plan: ProcessPlan,
    pub rootfs: RootfsPlan<'a>,
    /// Namespaces to join by path (already open), user first.
    pub join: Vec<(libc::c_int, OwnedFd)>,
    /// Whether to unshare a new cgroup namespace once in the cgroup.
    pub new_cgroupns: bool,
    /// Whether the container has a UTS namespace of its own (new, or joined by path), where
    /// `hostname` and `domainname` may be set.
    pub has_utsns: bool,
    pub console_socket: Option<PathBuf>,
    pub fifo: PathBuf,
    pub no_pivot: bool,
    pub new_keyring: bool,
    /// In a new or joined user namespace: become its root before touching the rootfs, since the
    /// host's root is not mapped there (files it creates would be refused with EOVERFLOW).
    pub in_userns: bool,
    /// Whether prestart/createRuntime/createContainer hooks exist (both sides agree on it).
    pub has_create_hooks: bool,
    /// The state JSON handed to createContainer/startContainer hooks.
    pub hook_state: serde_json::Value,
    /// Build the root filesystem while the parent moves us into the cgroup (cgroup v1, no user
    /// or cgroup namespace to wait for): the migration's RCU grace period then overlaps the
    /// mounts instead of preceding them.
    pub setup_before_go: bool,
}

/// Entry point of the cloned child.
pub fn run(ctx: &InitContext<'_>, chan: &Channel) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(ctx, chan)));
    let msg = match result {
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "container init panicked".to_string(),
    };
    let _ = chan.send(&Msg::Error(msg));
    sys::exit_now(1)
}

fn init(ctx: &InitContext<'_>, chan: &Channel) -> anyhow::Result<Infallible> {
    // Nobody may read our memory or open /proc/1/exe while we still run the runtime's code
    // (CVE-2016-9962).
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the init non-dumpable")?;
    berth_cgroups::join_self(ctx.cgroup_tasks).context("joining the container's cgroup")?;
    if !ctx.setup_before_go {
        chan.expect(Msg::Go)?;
    }
    for (nstype, fd) in &ctx.join {
        sys::setns(fd.as_fd(), *nstype)
            .with_context(|| format!("joining namespace {nstype:#x}"))?;
    }
    if ctx.in_userns {
        sys::set_ids(0, 0).context("becoming root in the user namespace (is uid/gid 0 mapped?)")?;
    }
    if ctx.new_keyring {
        match sys::join_new_session_keyring() {
            // Kernels without keyrings, or a seccomp profile that denies keyctl: nothing to share.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            r => r.context("creating a session keyring")?,
        }
    }
    if ctx.new_cgroupns {
        sys::unshare(libc::CLONE_NEWCGROUP).context("creating the cgroup namespace")?;
    }
    let spec = ctx.spec;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        anyhow::ensure!(
            ctx.has_utsns,
            "unable to set hostname without a private UTS namespace"
        );
        rustix::system::sethostname(h.as_bytes()).context("setting the hostname")?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        anyhow::ensure!(
            ctx.has_utsns,
            "unable to set domainname without a private UTS namespace"
        );
        rustix::system::setdomainname(d.as_bytes()).context("setting the domainname")?;
    }
    ctx.plan.set_rlimits()?;

    let root_fd = ctx.rootfs.prepare()?;
    ctx.rootfs.mount_all(root_fd.as_fd())?;
    ctx.rootfs.create_devices(root_fd.as_fd())?;
    if ctx.setup_before_go {
        // In the cgroup from here on: nothing more is charged outside it.
        chan.expect(Msg::Go)?;
    }
    let console = match &ctx.console_socket {
        Some(p) if ctx.plan.terminal => Some(console::connect(p)?),
        _ => None,
    };
    anyhow::ensure!(
        !ctx.plan.terminal || console.is_some(),
        "cannot allocate tty if runc will detach without setting console socket"
    );
    // Read-write so opening never blocks; `start` writes one byte to release us.
    let fifo = rustix::fs::open(
        &ctx.fifo,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("opening the exec fifo")?;
    if ctx.has_create_hooks {
        chan.send(&Msg::RunCreateHooks)?;
        chan.expect(Msg::HooksDone)?;
        let hooks = spec.hooks().as_ref();
        hooks::run_all(
            "createContainer",
            hooks.and_then(|h| h.create_container().as_ref()),
            &in_container_state(&ctx.hook_state, "creating"),
        )?;
    }
    ctx.rootfs.switch_root(root_fd.as_fd(), ctx.no_pivot)?;
    drop(root_fd);
    if let Some(sock) = &console {
        // No /dev/console bind in a mount namespace shared with the caller.
        console::setup(sock, ctx.plan.console_size, ctx.rootfs.new_mount_ns)?;
    }
    drop(console);
    if let Some(linux) = spec.linux() {
        if let Some(s) = linux.sysctl() {
            rootfs::write_sysctls(s)?;
        }
        rootfs::mask_paths(linux.masked_paths().as_deref().unwrap_or(&[]))?;
        rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or(&[]))?;
        if let Some(p) = linux.personality() {
            let persona = match p.domain() {
                oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
                _ => 0x0000,
            };
            sys::set_personality(persona).context("setting the personality")?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::readonly_root()?;
    }
    let exe = ctx.plan.become_process()?;
    chan.send(&Msg::Ready)?;
    wait_for_start(&fifo)?;
    drop(fifo);
    let hooks = spec.hooks().as_ref();
    hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &in_container_state(&ctx.hook_state, "created"),
    )?;
    Err(ctx.plan.exec(&exe))
}

/// The state for a hook run in the container's namespaces: this process's pid as the
/// container sees it, and `status`.
fn in_container_state(base: &serde_json::Value, status: &str) -> serde_json::Value {
    let mut st = base.clone();
    st["pid"] = rustix::process::getpid().as_raw_nonzero().get().into();
    st["status"] = status.into();
    st
}

/// Blocks until `start` writes to the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> anyhow::Result<()> {
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(fifo, &mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => anyhow::bail!("exec fifo closed before start"),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("reading the exec fifo"),
        }
    }
}
