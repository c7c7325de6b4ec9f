//! `GET /containers/{id}/stats`: cgroup metrics (through berth-containerd) in Docker's shape,
//! with `precpu_stats` from the previous sample and the host's `system_cpu_usage`, so that
//! `docker stats` computes CPU % the way it does against dockerd. One-shot (`stream=false`)
//! takes two samples a second apart, as dockerd does; streaming sends one a second.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::MetricsRequest;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use crate::api::http::{ApiResult, JsonStream, Query, json};
use crate::containerd::{grpc, req};
use crate::engine::Daemon;
use crate::model::Error;

/// Host CPU time in nanoseconds, from the first line of /proc/stat (USER_HZ = 100).
fn system_cpu_usage() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            Some(
                line.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000,
            )
        })
        .unwrap_or(0)
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One sample in Docker's `cpu_stats` + the rest.
async fn sample(d: &Daemon, id: &str) -> Result<(Value, Value), Error> {
    let mut tasks = d.containerd.tasks();
    let m = tasks
        .metrics(req(MetricsRequest {
            container_ids: vec![id.to_string()],
        }))
        .await
        .map_err(grpc)?
        .into_inner()
        .metrics
        .into_iter()
        .next()
        .ok_or_else(|| Error::conflict(format!("container {id} is not running")))?;
    let cpu = json!({
        "cpu_usage": {
            "total_usage": m.cpu_usage_nanos,
            "usage_in_kernelmode": m.cpu_system_nanos,
            "usage_in_usermode": m.cpu_user_nanos,
        },
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    });
    let rest = json!({
        "pids_stats": {"current": m.pids_current, "limit": m.pids_limit},
        "memory_stats": {
            "usage": m.memory_usage_bytes,
            "limit": memory_limit(m.memory_limit_bytes),
            "stats": {"inactive_file": m.memory_inactive_file_bytes, "total_inactive_file": m.memory_inactive_file_bytes},
        },
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": m.io_read_bytes},
            {"major": 0, "minor": 0, "op": "write", "value": m.io_write_bytes},
        ]},
    });
    Ok((cpu, rest))
}

/// A container's memory limit as `docker stats` shows it: an unlimited one (cgroup v1's
/// page-rounded i64::MAX, v2's "max" read as 0 or u64::MAX) is limited by the host's memory.
fn memory_limit(cgroup: u64) -> u64 {
    let host = crate::api::system::mem_total();
    if cgroup == 0 || (host > 0 && cgroup > host) {
        host
    } else {
        cgroup
    }
}

fn document(name: &str, id: &str, cpu: &Value, pre: &Value, rest: &Value, pre_read: &str) -> Value {
    let mut v = rest.clone();
    v["read"] = json!(berth_clock::rfc3339_now());
    v["preread"] = json!(pre_read);
    v["cpu_stats"] = cpu.clone();
    v["precpu_stats"] = pre.clone();
    v["name"] = json!(format!("/{name}"));
    v["id"] = json!(id);
    v["num_procs"] = json!(0);
    v["networks"] = json!({});
    v
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub async fn stats(d: &Arc<Daemon>, name: &str, r: Request<Incoming>) -> ApiResult {
    let q = Query::parse(r.uri().query());
    let stream = q
        .get("stream")
        .is_none_or(|s| !matches!(s, "0" | "false" | "False"));
    let h = d.containers.find(name)?;
    let (id, cname, running) = {
        let rec = h.lock().await;
        (
            rec.id.clone(),
            rec.name.clone(),
            rec.state.status == crate::model::record::Status::Running,
        )
    };
    let zero = json!({"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": online_cpus()});
    if !running {
        // Docker answers a stopped container with an all-zero sample.
        let doc = document(
            &cname,
            &id,
            &zero,
            &zero,
            &json!({"memory_stats": {}, "pids_stats": {}, "blkio_stats": {}}),
            "0001-01-01T00:00:00Z",
        );
        return Ok(json(StatusCode::OK, &doc));
    }
    if !stream {
        let (pre, _) = sample(d, &id).await?;
        let pre_read = berth_clock::rfc3339_now();
        if !q.bool("one-shot") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (cpu, rest) = sample(d, &id).await?;
        return Ok(json(
            StatusCode::OK,
            &document(&cname, &id, &cpu, &pre, &rest, &pre_read),
        ));
    }
    let (out, resp) = JsonStream::new();
    let d = d.clone();
    tokio::spawn(async move {
        let mut pre = zero;
        let mut pre_read = "0001-01-01T00:00:00Z".to_string();
        loop {
            let Ok((cpu, rest)) = sample(&d, &id).await else {
                return; // the container stopped
            };
            if !out
                .send(&document(&cname, &id, &cpu, &pre, &rest, &pre_read))
                .await
            {
                return;
            }
            pre = cpu;
            pre_read = berth_clock::rfc3339_now();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(resp)
}
