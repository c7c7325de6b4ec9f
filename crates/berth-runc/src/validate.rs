//! Checks of a config before `create` makes anything: what the spec forbids (a namespace type
//! listed twice), what berth-runc cannot apply (refused with an error, never silently ignored),
//! and what cannot be done safely when the container shares the caller's mount namespace.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Whether the config asks for a new mount namespace (`mount` listed without a path).
pub fn new_mount_ns(spec: &Spec) -> bool {
    namespaces(spec).any(|ns| {
        ns.typ() == LinuxNamespaceType::Mount
            && ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
    })
}

fn namespaces(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
}

/// Every check; `no_pivot` is `create --no-pivot`.
pub fn check(spec: &Spec, no_pivot: bool) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for ns in namespaces(spec) {
        // The name as written in config.json ("network", where Display says "net").
        let name = serde_json::to_value(ns.typ()).unwrap_or_default();
        anyhow::ensure!(
            seen.insert(ns.typ()),
            "malformed spec file: duplicated ns {name}"
        );
        anyhow::ensure!(
            ns.typ() != LinuxNamespaceType::Mount
                || ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty()),
            "joining a mount namespace by path is not supported"
        );
    }
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .unwrap_or("");
    anyhow::ensure!(
        !(no_pivot && matches!(propagation, "private" | "rprivate")),
        "rootfsPropagation {propagation:?} cannot be used with --no-pivot"
    );
    unsupported(spec)?;
    if !new_mount_ns(spec) {
        shared_mount_ns(spec, no_pivot)?;
    }
    Ok(())
}

/// Properties berth-runc does not implement: the spec says a runtime that cannot apply a
/// property must fail, so each one set is an error.
fn unsupported(spec: &Spec) -> anyhow::Result<()> {
    let refuse = |what: &str| anyhow::anyhow!("{what} is set, but berth-runc does not support it");
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if let Some(p) = spec.process() {
        if set(p.selinux_label()) {
            return Err(refuse("process.selinuxLabel (SELinux)"));
        }
        if p.scheduler().is_some() {
            return Err(refuse("process.scheduler"));
        }
        if p.io_priority().is_some() {
            return Err(refuse("process.ioPriority"));
        }
        if p.exec_cpu_affinity().is_some() {
            return Err(refuse("process.execCPUAffinity"));
        }
    }
    if let Some(l) = spec.linux() {
        if set(l.mount_label()) {
            return Err(refuse("linux.mountLabel (SELinux)"));
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(refuse("linux.timeOffsets"));
        }
        if l.intel_rdt().is_some() {
            return Err(refuse("linux.intelRdt"));
        }
        if l.memory_policy().is_some() {
            return Err(refuse("linux.memoryPolicy"));
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(refuse("linux.netDevices"));
        }
        if let Some(sec) = l.seccomp() {
            use oci_spec::runtime::LinuxSeccompAction::ScmpActNotify;
            let notify = sec.default_action() == ScmpActNotify
                || sec
                    .syscalls()
                    .iter()
                    .flatten()
                    .any(|r| r.action() == ScmpActNotify);
            let listener = sec
                .listener_path()
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty());
            if notify || listener {
                return Err(refuse(
                    "linux.seccomp notify (SCMP_ACT_NOTIFY or listenerPath)",
                ));
            }
        }
        let flags = l.personality().as_ref().and_then(|p| p.flags().as_ref());
        if flags.is_some_and(|f| !f.is_empty()) {
            return Err(refuse("linux.personality.flags"));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(refuse(&format!(
                "mounts[].uidMappings/gidMappings (id-mapped mount on {})",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// Without a new mount namespace the container shares the caller's mount table: the init only
/// chroots into the rootfs, so anything that needs a mount (or a remount) is refused, as runc
/// refuses masked and read-only paths there.
fn shared_mount_ns(spec: &Spec, no_pivot: bool) -> anyhow::Result<()> {
    let linux = spec.linux().as_ref();
    let non_empty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    anyhow::ensure!(
        !non_empty(linux.and_then(|l| l.masked_paths().as_ref()))
            && !non_empty(linux.and_then(|l| l.readonly_paths().as_ref())),
        "unable to restrict sys entries without a private MNT namespace \
         (maskedPaths and readonlyPaths need a \"mount\" namespace)"
    );
    anyhow::ensure!(
        spec.mounts().as_ref().is_none_or(|m| m.is_empty()),
        "mounts need a private MNT namespace (add a \"mount\" namespace or remove the mounts)"
    );
    anyhow::ensure!(
        !spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        "a read-only root needs a private MNT namespace"
    );
    anyhow::ensure!(
        !no_pivot,
        "unable to use no-pivot without a private MNT namespace"
    );
    anyhow::ensure!(
        linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .is_none_or(str::is_empty),
        "rootfsPropagation needs a private MNT namespace"
    );
    anyhow::ensure!(
        !namespaces(spec).any(|ns| ns.typ() == LinuxNamespaceType::User),
        "a user namespace needs a private MNT namespace (its devices are bind-mounted)"
    );
    Ok(())
}
