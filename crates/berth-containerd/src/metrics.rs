//! Task metrics from the runtime's `events --stats ID` (runc's one-shot stats JSON), so they are
//! the same whichever runtime (berth-runc, runc, crun) and cgroup version a container uses.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_proto::v1::Metric;
use serde_json::Value;

/// Runs the runtime's stats command and converts its answer.
pub async fn collect(runtime: &Path, root: &Path, id: &str) -> Result<Metric, String> {
    #[allow(clippy::disallowed_methods)] // the OCI runtime CLI is the stats contract
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("--root")
        .arg(root)
        .args(["events", "--stats", id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let rt: PathBuf = runtime.to_path_buf();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("running {}: {e}", rt.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(format!("stats of {id}: {err}"));
    }
    let line = out.stdout.split(|b| *b == b'\n').next().unwrap_or_default();
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| format!("the runtime's stats are not JSON: {e}"))?;
    Ok(from_stats(id, &v))
}

/// Converts runc's stats record (`{"type":"stats","data":{cpu,memory,pids,blkio}}`).
pub fn from_stats(id: &str, v: &Value) -> Metric {
    let d = &v["data"];
    let u = |p: &str| d.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let raw = &d["memory"]["raw"];
    let inactive = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    let io = |op: &str| -> u64 {
        d["blkio"]["ioServiceBytesRecursive"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["op"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                    .filter_map(|e| e["value"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    Metric {
        id: id.to_string(),
        timestamp_unix_nanos: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        cpu_usage_nanos: u("/cpu/usage/total"),
        cpu_user_nanos: u("/cpu/usage/user"),
        cpu_system_nanos: u("/cpu/usage/kernel"),
        memory_usage_bytes: u("/memory/usage/usage"),
        memory_limit_bytes: u("/memory/usage/limit"),
        memory_inactive_file_bytes: inactive,
        pids_current: u("/pids/current"),
        pids_limit: u("/pids/limit"),
        io_read_bytes: io("Read"),
        io_write_bytes: io("Write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runc_stats() {
        let v = serde_json::json!({"type":"stats","id":"c","data":{
            "cpu":{"usage":{"total":10,"user":6,"kernel":4}},
            "memory":{"usage":{"usage":4096,"limit":8192},"raw":{"total_inactive_file":7}},
            "pids":{"current":2,"limit":100},
            "blkio":{"ioServiceBytesRecursive":[
                {"op":"Read","value":5},{"op":"Write","value":6},{"op":"read","value":1}]}}});
        let m = from_stats("c", &v);
        assert_eq!(
            (m.cpu_usage_nanos, m.cpu_user_nanos, m.cpu_system_nanos),
            (10, 6, 4)
        );
        assert_eq!((m.memory_usage_bytes, m.memory_limit_bytes), (4096, 8192));
        assert_eq!(m.memory_inactive_file_bytes, 7);
        assert_eq!((m.pids_current, m.pids_limit), (2, 100));
        assert_eq!((m.io_read_bytes, m.io_write_bytes), (6, 6));
    }
}
