//! Read-only commands: `state`, `list`, `ps`, `events --stats` and `features`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::ListFormat;
use crate::lifecycle::Container;
use crate::state::{Saved, Status};

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `state ID`: the OCI state JSON.
pub fn state(root: &Path, id: &str) -> anyhow::Result<()> {
    let c = Container::load(root, id)?;
    print_json(&c.saved.oci_state(c.status(root)))
}

/// `list`: every container under the root, as a table, JSON or ids.
pub fn list(root: &Path, format: ListFormat, quiet: bool) -> anyhow::Result<()> {
    let mut rows: Vec<(Saved, Status)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Container::load(root, &name) {
                let s = c.status(root);
                rows.push((c.saved, s));
            }
        }
    }
    rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let mut out = std::io::stdout().lock();
    if quiet {
        for (s, _) in &rows {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    if format == ListFormat::Json {
        let v: Vec<serde_json::Value> = rows.iter().map(|(s, st)| s.oci_state(*st)).collect();
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    let id_w = rows.iter().map(|r| r.0.id.len()).max().unwrap_or(2).max(2);
    writeln!(
        out,
        "{:<id_w$}   {:<10} {:<10} {:<40} {:<30} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    )?;
    for (s, st) in &rows {
        let pid = if *st == Status::Stopped { 0 } else { s.pid };
        writeln!(
            out,
            "{:<id_w$}   {:<10} {:<10} {:<40} {:<30} root",
            s.id,
            pid,
            st.as_str(),
            s.bundle.display(),
            s.created
        )?;
    }
    Ok(())
}

/// `ps ID [PS_OPTIONS]`: as runc, the host's `ps` run with the given options (`-ef` without
/// any), printed as its header plus the lines whose PID column is one of the container's;
/// `--format json` prints the container's pids instead.
pub fn ps(root: &Path, id: &str, format: ListFormat, ps_args: &[String]) -> anyhow::Result<()> {
    let c = Container::load(root, id)?;
    let mut pids = c
        .cgroup
        .pids()
        .context("listing the container's processes")?;
    pids.sort_unstable();
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Json {
        serde_json::to_writer(&mut out, &pids)?;
        writeln!(out)?;
        return Ok(());
    }
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    #[allow(clippy::disallowed_methods)]
    // ps(1) is the tool asked for; it never enters the container
    let output = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ps")?;
    anyhow::ensure!(
        output.status.success(),
        "ps {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    out.write_all(filter_ps(&text, &pids)?.as_bytes())?;
    Ok(())
}

/// The header of `ps` output plus its lines whose PID column is in `pids`.
fn filter_ps(text: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .context("couldn't find PID field in ps output")?;
    let mut kept = format!("{header}\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let field = line.split_whitespace().nth(col).unwrap_or("");
        let pid: i32 = field
            .parse()
            .with_context(|| format!("unable to parse pid {field:?} in ps output"))?;
        if pids.contains(&pid) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

/// `events --stats ID`: one stats record in runc's JSON shape.
pub fn stats(root: &Path, id: &str) -> anyhow::Result<()> {
    let c = Container::load(root, id)?;
    anyhow::ensure!(
        c.status(root) != Status::Stopped,
        "container with id {id} is not running"
    );
    let s = c
        .cgroup
        .stats()
        .context("reading the container's cgroup stats")?;
    let v = serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {
                    "total": s.cpu.usage_total_ns,
                    "percpu": s.cpu.usage_per_cpu_ns,
                    "kernel": s.cpu.usage_system_ns,
                    "user": s.cpu.usage_user_ns,
                },
                "throttling": {
                    "periods": s.cpu.nr_periods,
                    "throttledPeriods": s.cpu.nr_throttled,
                    "throttledTime": s.cpu.throttled_time_ns,
                },
            },
            "memory": {
                "usage": { "usage": s.memory.usage, "max": s.memory.max_usage, "limit": s.memory.limit.unwrap_or(u64::MAX) },
                "swap": { "usage": s.memory.swap_usage },
                "cache": s.memory.cache,
                "raw": s.memory.raw,
            },
            "pids": { "current": s.pids.current, "limit": s.pids.limit.unwrap_or(0) },
            "blkio": { "ioServiceBytesRecursive": s.io.devices.iter().flat_map(|d| [
                serde_json::json!({ "major": d.major, "minor": d.minor, "op": "Read", "value": d.read_bytes }),
                serde_json::json!({ "major": d.major, "minor": d.minor, "op": "Write", "value": d.write_bytes }),
            ]).collect::<Vec<_>>() },
        }
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &v)?;
    writeln!(out)?;
    Ok(())
}

/// `features`: what this runtime supports, in the OCI features JSON shape.
pub fn features() -> anyhow::Result<()> {
    let mut options: Vec<&str> = vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "unbindable",
    ];
    options.sort_unstable();
    let seccomp = berth_seccomp::features();
    let v = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": crate::caps::NAMES.to_vec(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": seccomp,
            "apparmor": { "enabled": true },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
        },
        "annotations": {
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION"),
            "io.github.seccomp.libseccomp.version": berth_seccomp::library_version().unwrap_or_default(),
        },
    });
    print_json(&v)
}

#[cfg(test)]
mod tests {
    use super::filter_ps;

    #[test]
    fn ps_output_keeps_the_header_and_the_containers_lines() {
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh -c x\nroot 420 1 other\n";
        assert_eq!(
            filter_ps(text, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sh -c x\n"
        );
        assert!(filter_ps("USER COMMAND\nroot x\n", &[1]).is_err());
        assert!(filter_ps("PID CMD\nabc x\n", &[1]).is_err());
    }
}
