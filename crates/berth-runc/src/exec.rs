//! `exec`: a new process in a running container. The runtime joins the container's pid
//! namespace for its children, clones a child that joins the container's cgroup and every other
//! namespace (user first, mount last), chroots into the init's root when the container shares
//! the caller's mount namespace, sets up the process like the init and execs it; the
//! runtime then waits for it, or returns at once with `--detach`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::Context;
use oci_spec::runtime::Process;

use crate::caps::{self, CapSets};
use crate::channel::{Channel, Msg};
use crate::cli::ExecArgs;
use crate::lifecycle::{self, Container};
use crate::process::ProcessPlan;
use crate::state::{self, Status};
use crate::{console, sys};

/// Namespaces joined by an exec, in joining order (user first, mount last).
const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

fn same_ns(pid: i32, name: &str) -> bool {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    match (theirs, ours) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.ino() == b.ino() && a.dev() == b.dev()
        }
        _ => true,
    }
}

/// The process to run: `--process FILE`, or the container's own process with the flags applied.
fn build_process(
    args: &ExecArgs,
    defaults: &Process,
    default_caps: CapSets,
) -> anyhow::Result<(Process, CapSets)> {
    if let Some(path) = &args.process {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        let sets = caps::parse_known(&mut v)?;
        let p: Process =
            serde_json::from_value(v).with_context(|| format!("parsing {}", path.display()))?;
        return Ok((p, sets));
    }
    anyhow::ensure!(
        !args.command.is_empty(),
        "exec failed: args must not be empty"
    );
    let mut p = defaults.clone();
    let mut sets = default_caps;
    p.set_args(Some(args.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.into());
    }
    p.set_terminal(Some(args.tty));
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    let mut user = p.user().clone();
    if let Some(u) = &args.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u.as_str(), "0"));
        user.set_uid(
            uid.parse()
                .with_context(|| format!("invalid uid {uid:?}"))?,
        );
        user.set_gid(
            gid.parse()
                .with_context(|| format!("invalid gid {gid:?}"))?,
        );
    }
    if !args.additional_gids.is_empty() {
        user.set_additional_gids(Some(args.additional_gids.clone()));
    }
    p.set_user(user);
    for name in &args.cap {
        let n = caps::number(name).with_context(|| format!("unknown capability {name:?}"))?;
        let bit = 1u64 << n;
        sets.bounding |= bit;
        sets.effective |= bit;
        sets.permitted |= bit;
        sets.inheritable |= bit;
        sets.ambient |= bit;
    }
    Ok((p, sets))
}

/// Whether `c` takes an exec: running or created, paused only with `--ignore-paused`.
fn check_state(c: &Container, root: &Path, args: &ExecArgs) -> anyhow::Result<()> {
    match c.status(root) {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => {
            anyhow::bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => anyhow::bail!("cannot exec in a stopped container"),
    }
    anyhow::ensure!(
        args.process_label.is_none(),
        "exec --process-label: berth-runc does not support SELinux"
    );
    Ok(())
}

/// What an exec inherits from the container's own process.
fn exec_defaults(c: &Container) -> anyhow::Result<crate::state::ExecDefaults> {
    if let Some(d) = &c.saved.exec_defaults {
        return Ok(d.clone());
    }
    // A state written before the defaults were recorded: the bundle is all there is.
    let bundle = crate::spec::load(&c.saved.bundle)?;
    Ok(crate::state::ExecDefaults {
        process: bundle
            .spec
            .process()
            .clone()
            .context("the container's config.json has no process")?,
        caps: bundle.caps,
        seccomp: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone()),
    })
}

/// The container's namespaces that differ from ours, opened for the child to join, but for
/// the pid namespace, joined here so the child is born in it.
#[allow(clippy::type_complexity)]
fn container_namespaces(
    pid: i32,
) -> anyhow::Result<(Vec<(libc::c_int, OwnedFd)>, Option<sys::PidNsForChildren>)> {
    let mut join = Vec::new();
    let mut pid_ns = None;
    for (name, flag) in NAMESPACES {
        if same_ns(pid, name) {
            continue;
        }
        let fd = rustix::fs::open(
            format!("/proc/{pid}/ns/{name}"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("opening the container's {name} namespace"))?;
        if flag == libc::CLONE_NEWPID {
            pid_ns = Some(
                sys::PidNsForChildren::join(fd.as_fd())
                    .context("joining the container's pid namespace")?,
            );
        } else {
            join.push((flag, fd));
        }
    }
    Ok((join, pid_ns))
}

/// Runs `args.command` (or `--process`) in container `args.id`; returns the exit code.
pub fn exec(root: &Path, args: &ExecArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.cgroup.is_empty(),
        "exec --cgroup (joining a sub-cgroup) is not supported by berth-runc"
    );
    let c = Container::load(root, &args.id)?;
    check_state(&c, root, args)?;
    let defaults = exec_defaults(&c)?;
    let (mut process, caps) = build_process(args, &defaults.process, defaults.caps)?;
    if let Some(profile) = &args.apparmor {
        process.set_apparmor_profile(Some(profile.clone()));
    }
    let seccomp = defaults.seccomp;
    // As runc: the process's own value, else the container's.
    let oom_score_adj = process.oom_score_adj().or(defaults.process.oom_score_adj());
    let plan = ProcessPlan::new(&process, caps, seccomp.as_ref(), root, args.preserve_fds)?;
    anyhow::ensure!(
        !plan.terminal || args.console_socket.is_some(),
        "cannot allocate tty if runc will detach without setting console socket"
    );
    let console_socket = match &args.console_socket {
        Some(p) => Some(std::path::absolute(p)?),
        None => None,
    };

    let pid = c.saved.pid;
    let (join, mut pid_ns) = container_namespaces(pid)?;
    // A container sharing the caller's mount namespace has a chroot for its root, which no
    // setns gives: the child enters it through the init's /proc root.
    let chroot = match c.saved.chroot {
        true => Some(
            rustix::fs::open(
                format!("/proc/{pid}/root"),
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .context("opening the container's root")?,
        ),
        false => None,
    };

    // Born in the container's cgroup2 cgroup, moving itself into the v1 ones before it joins
    // any namespace: nobody migrates it (see create).
    let birth = c
        .cgroup
        .prepare_birth(true)
        .context("opening the container's cgroup")?;
    let (parent_end, child_end) = Channel::pair()?;
    let cloned = sys::clone_process_into(0, birth.clone_into.as_ref().map(|f| f.as_fd()));
    let (child, born) = match cloned.context("cloning the exec process")? {
        (None, _) => {
            drop(parent_end);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child_main(
                    &plan,
                    &join,
                    chroot.as_ref(),
                    &birth.tasks,
                    console_socket.as_deref(),
                    &child_end,
                )
            }));
            let msg = match r {
                Ok(Err(e)) => format!("{e:#}"),
                _ => "exec child panicked".into(),
            };
            let _ = child_end.send(&Msg::Error(msg));
            sys::exit_now(1)
        }
        (Some(pid), born) => (pid, born),
    };
    drop(child_end);
    // Only the exec'd process belongs in the container's pid namespace.
    let restored = pid_ns.take().map(|ns| ns.restore());
    let result = (|| {
        if let Some(r) = restored {
            r.context("returning to the runtime's pid namespace")?;
        }
        c.cgroup
            .add_pid_after_birth(child, born, !birth.tasks.is_empty())
            .context("moving the process into the container's cgroup")?;
        // Written before the child runs anything, as create does for the init.
        if let Some(adj) = oom_score_adj {
            std::fs::write(format!("/proc/{child}/oom_score_adj"), adj.to_string())
                .context("setting oom_score_adj")?;
        }
        parent_end.send(&Msg::Go)?;
        parent_end.expect(Msg::Ready)
    })();
    if let Err(e) = result {
        let _ = sys::kill(child, libc::SIGKILL);
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(child),
            rustix::process::WaitOptions::empty(),
        );
        return Err(e);
    }
    if let Some(pid_file) = &args.pid_file {
        state::write_atomic(
            &std::path::absolute(pid_file)?,
            child.to_string().as_bytes(),
        )
        .context("writing the pid file")?;
    }
    if args.detach {
        return Ok(0);
    }
    lifecycle::wait_foreground(child)
}

fn child_main(
    plan: &ProcessPlan,
    join: &[(libc::c_int, OwnedFd)],
    chroot: Option<&OwnedFd>,
    cgroup_tasks: &[std::fs::File],
    console_socket: Option<&Path>,
    chan: &Channel,
) -> anyhow::Result<std::convert::Infallible> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the exec process non-dumpable")?;
    berth_cgroups::join_self(cgroup_tasks).context("joining the container's cgroup")?;
    chan.expect(Msg::Go)?;
    let console = match console_socket {
        Some(p) if plan.terminal => Some(console::connect(p)?),
        _ => None,
    };
    for (flag, fd) in join {
        sys::setns(fd.as_fd(), *flag).with_context(|| format!("joining namespace {flag:#x}"))?;
    }
    if let Some(root) = chroot {
        rustix::process::fchdir(root).context("entering the container's root")?;
        rustix::process::chroot(".").context("chroot into the container's root")?;
    }
    rustix::process::chdir("/").context("chdir to the container's root")?;
    if let Some(sock) = &console {
        console::setup(sock, plan.console_size, false)?;
    }
    drop(console);
    plan.set_rlimits()?;
    let exe = plan.become_process()?;
    chan.send(&Msg::Ready)?;
    Err(plan.exec(&exe))
}
