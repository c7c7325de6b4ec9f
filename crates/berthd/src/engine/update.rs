//! `docker update`: what a request body changes in a container, worked out before anything
//! changes (the caller applies it to the running task, then stores it).

use berth_api::host_config::{HostConfig, Resources, UpdateConfig};
use oci_spec::runtime::LinuxResources;

use crate::model::Error;
use crate::oci::sysinfo::SysInfo;

/// A container's settings after an update.
#[derive(Debug)]
pub struct Update {
    pub host_config: HostConfig,
    /// The OCI `linux.resources` to apply and keep.
    pub resources: LinuxResources,
    /// What the host cannot do of what was asked (as dockerd warns).
    pub warnings: Vec<String>,
}

/// An update body checked against the host's features, with the warnings of the checks.
#[derive(Debug)]
pub struct Checked {
    body: UpdateConfig,
    warnings: Vec<String>,
}

/// Checks an update body before any container is looked at (as dockerd, which decodes and
/// verifies it first): an object whose resources this host can apply.
pub fn check(si: &SysInfo, body: serde_json::Value) -> Result<Checked, Error> {
    if !body.is_object() {
        return Err(Error::invalid("the update must be a JSON object"));
    }
    let mut body: UpdateConfig =
        serde_json::from_value(body).map_err(|e| Error::invalid(format!("invalid update: {e}")))?;
    let warnings = crate::oci::sysinfo::verify_resources(si, &mut body.resources, None)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Checked { body, warnings })
}

/// The resources `docker update` may change, each as `keep` has it unless `new` sets it: a
/// zero or empty field means "unchanged" as in dockerd (but a zero `PidsLimit`, "no limit").
fn merged(keep: &Resources, new: &Resources) -> Resources {
    fn pick<T: Clone + PartialEq + Default>(old: &T, new: &T) -> T {
        if *new == T::default() { old } else { new }.clone()
    }
    Resources {
        memory: pick(&keep.memory, &new.memory),
        memory_reservation: pick(&keep.memory_reservation, &new.memory_reservation),
        memory_swap: pick(&keep.memory_swap, &new.memory_swap),
        cpu_shares: pick(&keep.cpu_shares, &new.cpu_shares),
        cpu_period: pick(&keep.cpu_period, &new.cpu_period),
        cpu_quota: pick(&keep.cpu_quota, &new.cpu_quota),
        cpu_realtime_period: pick(&keep.cpu_realtime_period, &new.cpu_realtime_period),
        cpu_realtime_runtime: pick(&keep.cpu_realtime_runtime, &new.cpu_realtime_runtime),
        cpuset_cpus: pick(&keep.cpuset_cpus, &new.cpuset_cpus),
        cpuset_mems: pick(&keep.cpuset_mems, &new.cpuset_mems),
        nano_cpus: pick(&keep.nano_cpus, &new.nano_cpus),
        pids_limit: new.pids_limit.or(keep.pids_limit),
        blkio_weight: pick(&keep.blkio_weight, &new.blkio_weight),
        ..keep.clone()
    }
}

/// Applies a checked update to a container with `host_config` and OCI `resources` (and
/// `auto_remove`, which allows no restart policy).
pub fn apply(
    update: Checked,
    host_config: &HostConfig,
    resources: Option<&LinuxResources>,
    auto_remove: bool,
) -> Result<Update, Error> {
    let Checked { body, warnings } = update;
    let mut hc = host_config.clone();
    hc.resources = merged(&hc.resources, &body.resources);
    if let Some(p) = body.restart_policy.filter(|p| !p.name.is_empty()) {
        hc.restart_policy = p;
    }
    let policy = crate::engine::create::restart_policy(&hc.restart_policy)?;
    if !matches!(policy.as_str(), "" | "no") && auto_remove {
        return Err(Error::invalid(
            "Restart policy cannot be updated because AutoRemove is enabled for the container",
        ));
    }
    let resources = crate::oci::resources::updated_resources(&hc.resources, resources)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Update {
        host_config: hc,
        resources,
        warnings,
    })
}
