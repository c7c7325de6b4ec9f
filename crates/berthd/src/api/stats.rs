//! `GET /containers/{id}/stats`: cgroup metrics (through berth-containerd) in Docker's shape,
//! with `precpu_stats` from the previous sample and the host's `system_cpu_usage`, so that
//! `docker stats` computes CPU % the way it does against dockerd. One-shot (`stream=false`)
//! takes two samples a second apart, as dockerd does; streaming sends one a second.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_api::responses::{
    BlkioEntry, BlkioStats, ContainerStats, CpuStats, CpuUsage, MemoryStats, PidsStats,
    ThrottlingData,
};
use berth_proto::v1::MetricsRequest;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

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

/// One sample: the container's CPU, and the rest (memory, pids, block I/O) as a document
/// without its times and names.
async fn sample(d: &Daemon, id: &str) -> Result<(CpuStats, ContainerStats), Error> {
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
    let cpu = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: m.cpu_usage_nanos,
            usage_in_kernelmode: m.cpu_system_nanos,
            usage_in_usermode: m.cpu_user_nanos,
        },
        system_cpu_usage: Some(system_cpu_usage()),
        online_cpus: Some(online_cpus()),
        throttling_data: ThrottlingData::default(),
    };
    let io = |op: &str, value| BlkioEntry {
        op: op.into(),
        value,
        ..Default::default()
    };
    let inactive = m.memory_inactive_file_bytes;
    let rest = ContainerStats {
        pids_stats: PidsStats {
            current: Some(m.pids_current),
            limit: Some(m.pids_limit),
        },
        memory_stats: MemoryStats {
            usage: Some(m.memory_usage_bytes),
            limit: Some(memory_limit(m.memory_limit_bytes)),
            stats: Some(
                [
                    ("inactive_file", inactive),
                    ("total_inactive_file", inactive),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ),
        },
        blkio_stats: BlkioStats {
            io_service_bytes_recursive: Some(vec![
                io("read", m.io_read_bytes),
                io("write", m.io_write_bytes),
            ]),
        },
        ..Default::default()
    };
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

fn document(
    name: &str,
    id: &str,
    cpu: &CpuStats,
    pre: &CpuStats,
    rest: &ContainerStats,
    pre_read: &str,
) -> ContainerStats {
    ContainerStats {
        read: berth_clock::rfc3339_now(),
        preread: pre_read.into(),
        cpu_stats: cpu.clone(),
        precpu_stats: pre.clone(),
        name: format!("/{name}"),
        id: id.into(),
        networks: Some(BTreeMap::new()),
        ..rest.clone()
    }
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
    let zero = CpuStats {
        system_cpu_usage: Some(0),
        online_cpus: Some(online_cpus()),
        ..Default::default()
    };
    if !running {
        // Docker answers a stopped container with an all-zero sample.
        let doc = document(
            &cname,
            &id,
            &zero,
            &zero,
            &ContainerStats::default(),
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
