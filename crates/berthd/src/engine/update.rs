//! `docker update`: what a request body changes in a container, worked out before anything
//! changes (the caller applies it to the running task, then stores it).

use serde_json::Value;

use crate::model::Error;
use crate::oci::sysinfo::SysInfo;

/// HostConfig fields `docker update` may change.
const UPDATABLE: [&str; 14] = [
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "NanoCpus",
    "PidsLimit",
    "BlkioWeight",
    "RestartPolicy",
];

/// A container's settings after an update.
#[derive(Debug)]
pub struct Update {
    pub host_config: Value,
    /// The OCI `linux.resources` to apply and keep.
    pub resources: Value,
    /// What the host cannot do of what was asked (as dockerd warns).
    pub warnings: Vec<String>,
}

/// An update body checked against the host's features, with the warnings of the checks.
#[derive(Debug)]
pub struct Checked {
    body: Value,
    warnings: Vec<String>,
}

/// Checks an update body before any container is looked at (as dockerd, which decodes and
/// verifies it first): an object whose resources this host can apply.
pub fn check(si: &SysInfo, mut body: Value) -> Result<Checked, Error> {
    if !body.is_object() {
        return Err(Error::invalid("the update must be a JSON object"));
    }
    let warnings = crate::oci::sysinfo::verify_resources(si, &mut body, None)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Checked { body, warnings })
}

/// Applies a checked update to a container with `host_config` and OCI `resources` (and
/// `auto_remove`, which allows no restart policy); a zero or empty field means "unchanged" as
/// in dockerd (but a zero `PidsLimit`, "no limit").
pub fn apply(
    update: Checked,
    host_config: &Value,
    resources: &Value,
    auto_remove: bool,
) -> Result<Update, Error> {
    let Checked { body, warnings } = update;
    let mut hc = host_config.clone();
    for k in UPDATABLE {
        match &body[k] {
            Value::Null => {}
            Value::Number(n) if n.as_i64() == Some(0) && k != "PidsLimit" => {}
            Value::String(s) if s.is_empty() => {}
            x => hc[k] = x.clone(),
        }
    }
    let policy = crate::engine::create::restart_policy(&hc)?;
    if !matches!(policy.as_str(), "" | "no") && auto_remove {
        return Err(Error::invalid(
            "Restart policy cannot be updated because AutoRemove is enabled for the container",
        ));
    }
    let resources = crate::oci::spec::updated_resources(&hc, resources)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Update {
        host_config: hc,
        resources,
        warnings,
    })
}
