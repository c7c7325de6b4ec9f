//! `create` (and the first half of `run`), on the runtime's side: validate the bundle, make the
//! state dir, cgroup and exec fifo, clone the init into its namespaces, map its ids, put it in
//! its cgroup, run the create-time hooks, and record the state. Any failure undoes all of it.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use crate::channel::{Channel, Msg};
use crate::cli::CreateArgs;
use crate::init::{self, InitContext};
use crate::process::ProcessPlan;
use crate::rootfs::RootfsPlan;
use crate::state::{self, EXEC_FIFO, Saved};
use crate::{hooks, log, spec, sys, validate};

/// A created container: its init is blocked on the exec fifo.
pub struct Created {
    pub saved: Saved,
    pub cgroup: berth_cgroups::Cgroup,
}

/// Undoes a half-made container unless disarmed.
struct Undo {
    dir: PathBuf,
    cgroup: Option<berth_cgroups::Cgroup>,
    child: Option<i32>,
    /// The poststop hooks and the `stopped` state they get: once the init exists, a failed
    /// create ends like a deleted container, with its poststop hooks run.
    poststop: Option<(Vec<oci_spec::runtime::Hook>, serde_json::Value)>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(pid),
                rustix::process::WaitOptions::empty(),
            );
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                log::warn(&format!("removing the cgroup of a failed create: {e}"));
            }
        }
        if let Some((h, st)) = &self.poststop {
            hooks::run_all_warn("poststop", Some(h), st);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

fn id_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The namespaces the init gets: new ones are clone flags; paths are opened now and joined by
/// the child, except pid, which is joined here so the child is born in it.
struct Namespaces {
    clone_flags: u64,
    /// Restores the runtime's own pid namespace once the init is born.
    pid_ns: Option<sys::PidNsForChildren>,
    /// Opened paths, the user namespace first (it owns the others).
    join: Vec<(libc::c_int, OwnedFd)>,
    /// As recorded in the state ("Network", "Network=/proc/1/ns/net").
    kinds: Vec<String>,
    new_user: bool,
    join_user: bool,
    new_cgroupns: bool,
    /// Any UTS namespace of the container's own, new or joined: the hostname is set in it.
    has_uts: bool,
}

impl Namespaces {
    fn of(linux: &oci_spec::runtime::Linux) -> anyhow::Result<Namespaces> {
        let mut n = Namespaces {
            clone_flags: 0,
            pid_ns: None,
            join: Vec::new(),
            kinds: Vec::new(),
            new_user: false,
            join_user: false,
            new_cgroupns: false,
            has_uts: false,
        };
        for ns in linux.namespaces().iter().flatten() {
            let flag = ns_flag(ns.typ());
            n.has_uts |= flag == libc::CLONE_NEWUTS;
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    let fd = open_namespace(path, ns.typ(), flag)?;
                    if flag == libc::CLONE_NEWPID {
                        n.pid_ns = Some(
                            sys::PidNsForChildren::join(fd.as_fd())
                                .context("joining the pid namespace")?,
                        );
                    } else {
                        n.join.push((flag, fd));
                    }
                    n.kinds.push(format!("{:?}={}", ns.typ(), path.display()));
                }
                _ => {
                    n.new_user |= flag == libc::CLONE_NEWUSER;
                    if flag == libc::CLONE_NEWCGROUP {
                        n.new_cgroupns = true;
                    } else {
                        n.clone_flags |= flag as u32 as u64;
                    }
                    n.kinds.push(format!("{:?}", ns.typ()));
                }
            }
        }
        n.join
            .sort_by_key(|(flag, _)| if *flag == libc::CLONE_NEWUSER { 0 } else { 1 });
        n.join_user = n.join.iter().any(|(f, _)| *f == libc::CLONE_NEWUSER);
        Ok(n)
    }

    /// Whether the init runs in a user namespace, new or joined.
    fn in_userns(&self) -> bool {
        self.new_user || self.join_user
    }
}

/// Opens the namespace at `path` and checks that it is one of the kind config.json says.
fn open_namespace(
    path: &Path,
    typ: LinuxNamespaceType,
    flag: libc::c_int,
) -> anyhow::Result<OwnedFd> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening namespace path {}", path.display()))?;
    // The name as written in config.json ("network", where Debug says "Network").
    let name = serde_json::to_value(typ).unwrap_or_default();
    let actual = sys::ns_type(fd.as_fd()).with_context(|| {
        format!(
            "namespace path {} for {name} is not a namespace",
            path.display()
        )
    })?;
    anyhow::ensure!(
        actual == flag,
        "namespace path {} is not a {name} namespace",
        path.display()
    );
    Ok(fd)
}

/// Makes the state root (if new) and the container's state dir (which must be new). Others may
/// pass through (the init of a user-namespaced container, an unprivileged host id, opens its
/// exec fifo here) but list nothing; the files are root's alone.
fn make_state_dir(root: &Path, id: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .with_context(|| format!("creating the state root {}", root.display()))?;
    let dir = state::dir(root, id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!("container with id exists: {id}")
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Makes the exec fifo the init blocks on until `start`; in a new user namespace it belongs to
/// the namespace's root, as whom the init opens it.
fn make_exec_fifo(
    dir: &Path,
    linux: &oci_spec::runtime::Linux,
    new_user: bool,
) -> anyhow::Result<PathBuf> {
    let fifo = dir.join(EXEC_FIFO);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o622),
        0,
    )
    .context("creating the exec fifo")?;
    if new_user {
        let host_id = |maps: &Option<Vec<LinuxIdMapping>>| {
            maps.iter()
                .flatten()
                .find(|m| m.container_id() == 0)
                .map(|m| m.host_id())
        };
        let (uid, gid) = (host_id(linux.uid_mappings()), host_id(linux.gid_mappings()));
        rustix::fs::chown(
            &fifo,
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
        )
        .context("handing the exec fifo to the container's root")?;
    }
    Ok(fifo)
}

/// Whether the spec has hooks to run while the container is being created.
fn has_create_hooks(hooks: &Option<oci_spec::runtime::Hooks>) -> bool {
    hooks.as_ref().is_some_and(|h| {
        #[allow(deprecated)]
        let prestart = h.prestart().as_ref().is_some_and(|v| !v.is_empty());
        prestart
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_container().as_ref().is_some_and(|v| !v.is_empty())
    })
}

/// The state recorded for the container (its pid is filled in once the init exists).
fn initial_state(
    args: &CreateArgs,
    bundle: &spec::Bundle,
    cgroups_path: String,
    kinds: Vec<String>,
    new_mount: bool,
) -> anyhow::Result<Saved> {
    let spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    Ok(Saved {
        id: args.id.clone(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: 0,
        pid_start: 0,
        created: log::rfc3339_now(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        cgroups_path,
        hooks: spec.hooks().clone(),
        namespaces: kinds,
        chroot: !new_mount,
        exec_defaults: Some(state::ExecDefaults {
            process: process.clone(),
            caps: bundle.caps,
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        }),
    })
}

/// From outside the new init: its id maps (a new user namespace) and its OOM score.
fn set_up_from_outside(
    pid: i32,
    linux: &oci_spec::runtime::Linux,
    process: &oci_spec::runtime::Process,
    new_user: bool,
) -> anyhow::Result<()> {
    if new_user {
        let uid = id_map(linux.uid_mappings().as_deref().unwrap_or(&[]));
        let gid = id_map(linux.gid_mappings().as_deref().unwrap_or(&[]));
        std::fs::write(format!("/proc/{pid}/uid_map"), uid).context("writing uid_map")?;
        if !rustix::process::geteuid().is_root() {
            // Unprivileged: gid_map is only allowed once setgroups is denied (CVE-2014-8989).
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .context("denying setgroups")?;
        }
        std::fs::write(format!("/proc/{pid}/gid_map"), gid).context("writing gid_map")?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .context("setting oom_score_adj")?;
    }
    Ok(())
}

/// Serves the init's requests (the create-time hooks) until it reports itself ready.
fn await_ready(
    chan: &Channel,
    spec: &oci_spec::runtime::Spec,
    saved: &Saved,
) -> anyhow::Result<()> {
    loop {
        match chan.recv()? {
            Some(Msg::RunCreateHooks) => {
                let st = saved.oci_state(state::Status::Creating);
                let h = spec.hooks().as_ref();
                #[allow(deprecated)]
                hooks::run_all("prestart", h.and_then(|h| h.prestart().as_ref()), &st)?;
                hooks::run_all(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &st,
                )?;
                chan.send(&Msg::HooksDone)?;
            }
            Some(Msg::Ready) => return Ok(()),
            Some(Msg::Error(e)) => anyhow::bail!("{e}"),
            Some(other) => anyhow::bail!("unexpected message from the container init: {other:?}"),
            None => anyhow::bail!("the container init exited during setup"),
        }
    }
}

/// Makes the container's cgroup (which `undo` then removes on failure) with its limits; with
/// the host's layout and the cgroups path as config.json gave it.
fn make_cgroup(
    linux: &oci_spec::runtime::Linux,
    id: &str,
    undo: &mut Undo,
) -> anyhow::Result<(berth_cgroups::Layout, String, berth_cgroups::Cgroup)> {
    let layout = berth_cgroups::Layout::detect().context("detecting the cgroup layout")?;
    let cgroups_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = berth_cgroups::Cgroup::new(&layout, &cgroups_path, id)
        .with_context(|| format!("resolving cgroupsPath {cgroups_path:?}"))?;
    cgroup.create().context("creating the cgroup")?;
    undo.cgroup = Some(cgroup.clone());
    if let Some(res) = linux.resources() {
        cgroup
            .apply(&runc_resources(res))
            .context("applying resource limits")?;
    }
    Ok((layout, cgroups_path, cgroup))
}

/// Creates the container `args.id` from `args.bundle`: checks the bundle, makes the state dir,
/// namespaces, cgroup and exec fifo, clones the init, sets it up from outside, serves its
/// create-time hooks and records the state; `undo` takes back every step of a failure.
pub fn create(root: &Path, args: &CreateArgs) -> anyhow::Result<Created> {
    spec::validate_id(&args.id)?;
    let bundle = spec::load(&args.bundle)?;
    let spec = &bundle.spec;
    validate::check(spec, args.no_pivot)?;
    let new_mount = validate::new_mount_ns(spec);
    // Devices are made directly in the rootfs then: never in the host's own /dev.
    anyhow::ensure!(
        new_mount || bundle.rootfs != Path::new("/"),
        "the host's / as the rootfs needs a private MNT namespace"
    );
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let linux = spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;

    let dir = make_state_dir(root, &args.id)?;
    let mut undo = Undo {
        dir: dir.clone(),
        cgroup: None,
        child: None,
        poststop: None,
        armed: true,
    };
    // Declared after `undo`, so dropped before it: the poststop hooks of a failed create are
    // born in the runtime's pid namespace too.
    let mut ns = Namespaces::of(linux)?;

    let (layout, cgroups_path, cgroup) = make_cgroup(linux, &args.id, &mut undo)?;

    let plan = ProcessPlan::new(
        process,
        bundle.caps,
        linux.seccomp().as_ref(),
        root,
        args.preserve_fds,
    )?;
    let fifo = make_exec_fifo(&dir, linux, ns.new_user)?;
    let mut saved = initial_state(
        args,
        &bundle,
        cgroups_path,
        std::mem::take(&mut ns.kinds),
        new_mount,
    )?;
    let console_socket = match &args.console_socket {
        Some(p) => Some(std::path::absolute(p)?),
        None => None,
    };
    // The init is born in its cgroup2 cgroup and, on v1, moves itself into the v1 ones (not from
    // inside a user namespace, where it may not write the host's cgroup files): no migration
    // by another process, whose global lock costs an RCU grace period.
    let birth = cgroup
        .prepare_birth(!ns.in_userns())
        .context("opening the cgroup for the init")?;
    let ctx = InitContext {
        cgroup_tasks: &birth.tasks,
        spec,
        plan,
        rootfs: RootfsPlan {
            spec,
            rootfs: &bundle.rootfs,
            cgroup_dirs: cgroup.paths(),
            cgroup_v2: matches!(layout.version(), berth_cgroups::Version::V2),
            bind_devices: ns.in_userns(),
            new_mount_ns: new_mount,
        },
        join: std::mem::take(&mut ns.join),
        new_cgroupns: ns.new_cgroupns,
        has_utsns: ns.has_uts,
        console_socket,
        fifo,
        no_pivot: args.no_pivot,
        new_keyring: !args.no_new_keyring,
        in_userns: ns.in_userns(),
        has_create_hooks: has_create_hooks(spec.hooks()),
        hook_state: saved.oci_state(state::Status::Created),
        setup_before_go: matches!(cgroup.version(), berth_cgroups::Version::V1)
            && !ns.in_userns()
            && !ns.new_cgroupns,
    };

    let (parent_end, child_end) = Channel::pair()?;
    let cloned =
        sys::clone_process_into(ns.clone_flags, birth.clone_into.as_ref().map(|f| f.as_fd()));
    let (pid, born_in_cgroup) = match cloned.context("cloning the container init")? {
        (None, _) => {
            drop(parent_end);
            init::run(&ctx, &child_end)
        }
        (Some(pid), joined) => (pid, joined),
    };
    drop(child_end);
    undo.child = Some(pid);
    // Only the init belongs in a joined pid namespace; the hooks run in the runtime's.
    if let Some(pid_ns) = ns.pid_ns.take() {
        pid_ns
            .restore()
            .context("returning to the runtime's pid namespace")?;
    }
    if let Some(h) = saved.hooks.as_ref().and_then(|h| h.poststop().clone()) {
        undo.poststop = Some((h, saved.oci_state(state::Status::Stopped)));
    }

    set_up_from_outside(pid, linux, process, ns.new_user)?;
    // The init may already be building its rootfs (and may have failed doing so): its own
    // error says more than ours about a process that went away.
    let child_error = |e: anyhow::Error| match parent_end.recv() {
        Ok(Some(Msg::Error(m))) => anyhow::anyhow!("{m}"),
        _ => e,
    };
    cgroup
        .add_pid_after_birth(pid, born_in_cgroup, !birth.tasks.is_empty())
        .context("moving the init into its cgroup")
        .map_err(child_error)?;
    drop(birth);
    parent_end.send(&Msg::Go).map_err(child_error)?;

    saved.pid = pid;
    saved.pid_start = state::proc_start_time(pid).map(|(s, _)| s).unwrap_or(0);
    await_ready(&parent_end, spec, &saved)?;
    saved.save(root)?;
    if let Some(pid_file) = &args.pid_file {
        state::write_atomic(&std::path::absolute(pid_file)?, pid.to_string().as_bytes())
            .context("writing the pid file")?;
    }
    undo.armed = false;
    Ok(Created { saved, cgroup })
}

/// The resources as runc applies them: runc's always-allowed devices follow the spec's device rules
/// (dockerd's rules deny all but a few devices, yet the container still gets /dev/full,
/// /dev/tty, ptys and mknod).
fn runc_resources(res: &oci_spec::runtime::LinuxResources) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::LinuxDeviceType::{B, C};
    const ALWAYS_ALLOWED: [(
        oci_spec::runtime::LinuxDeviceType,
        Option<i64>,
        Option<i64>,
        &str,
    ); 12] = [
        (C, None, None, "m"),
        (B, None, None, "m"),
        (C, Some(1), Some(3), "rwm"),    // null
        (C, Some(1), Some(8), "rwm"),    // random
        (C, Some(1), Some(7), "rwm"),    // full
        (C, Some(5), Some(0), "rwm"),    // tty
        (C, Some(1), Some(5), "rwm"),    // zero
        (C, Some(1), Some(9), "rwm"),    // urandom
        (C, Some(5), Some(1), "rwm"),    // console
        (C, Some(136), None, "rwm"),     // pts
        (C, Some(5), Some(2), "rwm"),    // ptmx
        (C, Some(10), Some(200), "rwm"), // net/tun
    ];
    let mut res = res.clone();
    if let Some(rules) = res.devices_mut().as_mut().filter(|r| !r.is_empty()) {
        for (typ, major, minor, access) in ALWAYS_ALLOWED {
            // dockerd's rules already allow most of them: when that very allow comes after
            // every deny touching the device, writing it again changes nothing.
            let exact = |r: &&oci_spec::runtime::LinuxDeviceCgroup| {
                r.allow()
                    && r.typ() == Some(typ)
                    && r.major() == major
                    && r.minor() == minor
                    && r.access().as_deref() == Some(access)
            };
            let denies = |r: &&oci_spec::runtime::LinuxDeviceCgroup| {
                !r.allow()
                    && (matches!(r.typ(), None | Some(oci_spec::runtime::LinuxDeviceType::A))
                        || r.typ() == Some(typ)
                            && (r.major().is_none() || r.major() == major)
                            && (r.minor().is_none() || r.minor() == minor))
            };
            let same = rules
                .iter()
                .rev()
                .find(|r| exact(r) || denies(r))
                .is_some_and(|r| r.allow());
            if same {
                continue;
            }
            let mut rule = oci_spec::runtime::LinuxDeviceCgroup::default();
            rule.set_allow(true);
            rule.set_typ(Some(typ));
            rule.set_major(major);
            rule.set_minor(minor);
            rule.set_access(Some(access.to_string()));
            rules.push(rule);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some("rwm".into()));
        r
    }

    fn count(res: &LinuxResources, major: i64, minor: i64, allow: bool) -> usize {
        let rules = res.devices().clone().unwrap_or_default();
        rules
            .iter()
            .filter(|r| r.major() == Some(major) && r.minor() == Some(minor) && r.allow() == allow)
            .count()
    }

    #[test]
    fn always_allowed_devices_are_written_once_and_never_override_a_later_deny() {
        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![
            rule(false, LinuxDeviceType::A, None, None),
            rule(true, LinuxDeviceType::C, Some(1), Some(3)),
        ]));
        let out = runc_resources(&res);
        assert_eq!(count(&out, 1, 3, true), 1, "/dev/null allowed once");
        assert_eq!(count(&out, 1, 5, true), 1, "/dev/zero added");

        // A deny after the allow: the always-allowed rule comes last again, as before.
        res.set_devices(Some(vec![
            rule(true, LinuxDeviceType::C, Some(1), Some(3)),
            rule(false, LinuxDeviceType::C, Some(1), Some(3)),
        ]));
        let out = runc_resources(&res);
        let last = out.devices().clone().unwrap_or_default();
        let last = last
            .iter()
            .rev()
            .find(|r| r.major() == Some(1) && r.minor() == Some(3))
            .unwrap();
        assert!(last.allow());
    }
}
