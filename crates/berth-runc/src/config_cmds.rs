//! `spec` (write a default config.json) and `update` (change a running container's resources).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::cli::UpdateArgs;
use crate::lifecycle::Container;

/// Writes runc's default spec (`args: ["sh"]`, terminal, read-only `rootfs`) into the bundle.
pub fn spec(bundle: &Path, rootless: bool) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    anyhow::ensure!(
        !path.exists(),
        "File {} exists. Remove it first",
        path.display()
    );
    let spec = if rootless {
        Spec::rootless(0, 0)
    } else {
        Spec::default()
    };
    let mut v = serde_json::to_value(&spec)?;
    v["hostname"] = "berth".into();
    // As runc since 1.1.2: no inheritable or ambient capabilities unless asked (CVE-2022-29162).
    if let Some(caps) = v["process"]["capabilities"].as_object_mut() {
        caps.remove("inheritable");
        caps.remove("ambient");
    }
    if rootless {
        // Map the caller's own ids, as `runc spec --rootless` does.
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        v["linux"]["uidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Parses a size as docker/runc do: bytes, or with a k/m/g/t suffix (binary units); -1 = unlimited.
pub fn parse_size(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    anyhow::ensure!(n >= 0.0, "invalid size {s:?}");
    Ok((n * mult as f64) as i64)
}

/// The resources asked for by `update`: `-r FILE|-` as a base, flags on top.
fn resources(args: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut v = match args.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading resources from stdin")?;
            serde_json::from_str(&s).context("parsing resources JSON")?
        }
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            serde_json::from_slice(&bytes).context("parsing resources JSON")?
        }
        None => serde_json::json!({}),
    };
    let obj = v
        .as_object_mut()
        .context("resources must be a JSON object")?;
    let mut section = |name: &str, key: &str, value: serde_json::Value| {
        let s = obj.entry(name).or_insert_with(|| serde_json::json!({}));
        if let Some(m) = s.as_object_mut() {
            m.insert(key.to_string(), value);
        }
    };
    if let Some(m) = &args.memory {
        section("memory", "limit", parse_size(m)?.into());
    }
    if let Some(m) = &args.memory_reservation {
        section("memory", "reservation", parse_size(m)?.into());
    }
    if let Some(m) = &args.memory_swap {
        section("memory", "swap", parse_size(m)?.into());
    }
    if let Some(n) = args.cpu_share {
        section("cpu", "shares", n.into());
    }
    if let Some(n) = args.cpu_quota {
        section("cpu", "quota", n.into());
    }
    if let Some(n) = args.cpu_period {
        section("cpu", "period", n.into());
    }
    if let Some(n) = args.cpu_rt_period {
        section("cpu", "realtimePeriod", n.into());
    }
    if let Some(n) = args.cpu_rt_runtime {
        section("cpu", "realtimeRuntime", n.into());
    }
    if let Some(s) = &args.cpuset_cpus {
        section("cpu", "cpus", s.clone().into());
    }
    if let Some(s) = &args.cpuset_mems {
        section("cpu", "mems", s.clone().into());
    }
    if let Some(n) = args.pids_limit {
        section("pids", "limit", n.into());
    }
    if let Some(n) = args.blkio_weight {
        section("blockIO", "weight", n.into());
    }
    serde_json::from_value(v).context("invalid resources")
}

/// `update`: applies new limits to the container's cgroup.
pub fn update(root: &Path, args: &UpdateArgs) -> anyhow::Result<()> {
    let c = Container::load(root, &args.id)?;
    let r = resources(args)?;
    // `checkBeforeUpdate`: a memory limit below what the container uses now is refused, where
    // the kernel would otherwise reclaim or OOM-kill to meet it.
    let memory = r.memory().as_ref();
    if let Some(limit) = memory
        .filter(|m| m.check_before_update() == Some(true))
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
    {
        let usage = c
            .cgroup
            .stats()
            .context("reading the container's memory usage")?
            .memory
            .usage;
        anyhow::ensure!(
            limit as u64 >= usage,
            "memory limit {limit} is below the container's current usage {usage} (checkBeforeUpdate)"
        );
    }
    c.cgroup
        .apply(&r)
        .context("updating the container's resources")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("lots").is_err());
    }
}
