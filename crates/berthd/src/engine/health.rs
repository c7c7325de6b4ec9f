//! Healthchecks: the container's `Healthcheck` (its own, else its image's; `["NONE"]` turns it
//! off) probed as an exec process every interval while it runs, with a timeout; the result goes
//! to `State.Health` (status, failing streak, last five probes) as Docker keeps it, to
//! `docker ps` ("(healthy)"), and to `health_status` events. Failures during the start period do
//! not count against the retries.

use std::sync::Arc;
use std::time::Duration;

use berth_api::config::ContainerConfig;
use berth_proto::v1::{DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::containerd::req;
use crate::engine::Daemon;
use crate::engine::logs::Stream;
use crate::engine::stdio;
use crate::engine::store::Handle;
pub use crate::model::health::{Health, Probe};

/// A healthcheck's settings with Docker's defaults.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    argv: Vec<String>,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    retries: u32,
}

const OUTPUT_LIMIT: usize = 4096;
const LOG_ENTRIES: usize = 5;

/// The healthcheck of a container config over its image config's (the image config's
/// `config` object), if any.
fn check_of(config: &ContainerConfig, image: &ContainerConfig) -> Option<Check> {
    let own = config.healthcheck.clone().unwrap_or_default();
    let img = image.healthcheck.clone().unwrap_or_default();
    let words = own
        .test
        .filter(|t| !t.is_empty())
        .or(img.test)
        .unwrap_or_default();
    let argv = match words.first().map(String::as_str) {
        Some("CMD") => words[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), words[1..].join(" ")],
        _ => return None, // NONE, or nothing
    };
    if argv.is_empty() {
        return None;
    }
    let pick = |mine: i64, theirs: i64| [mine, theirs].into_iter().find(|n| *n > 0);
    let nanos = |mine: i64, theirs: i64, default: u64| {
        let n = pick(mine, theirs).and_then(|n| u64::try_from(n).ok());
        Duration::from_nanos(n.unwrap_or(default))
    };
    let retries = pick(own.retries, img.retries)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(3);
    Some(Check {
        argv,
        interval: nanos(own.interval, img.interval, 30_000_000_000),
        timeout: nanos(own.timeout, img.timeout, 30_000_000_000),
        start_period: nanos(own.start_period, img.start_period, 0),
        retries,
    })
}

/// Starts probing a container that just started (nothing if it has no healthcheck). The
/// monitor ends when the run ends.
pub fn monitor(
    d: &Arc<Daemon>,
    h: &Handle,
    config: &ContainerConfig,
    image_config: &ContainerConfig,
    id: &str,
) {
    let Some(check) = check_of(config, image_config) else {
        return;
    };
    let (d, h, id) = (d.clone(), h.clone(), id.to_string());
    let mut exited = d.runs.ensure(&id, None).exited.subscribe();
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(check.interval) => {}
                _ = exited.changed() => return,
            }
            if exited.borrow().is_some() {
                return;
            }
            let start = berth_clock::rfc3339_now();
            let (exit_code, output) = probe(&d, &id, &check).await;
            let probe = Probe {
                start,
                end: berth_clock::rfc3339_now(),
                exit_code,
                output,
            };
            let mut rec = h.lock().await;
            if rec.state.status != crate::model::record::Status::Running {
                return;
            }
            let health = rec.state.health.get_or_insert_with(Health::default);
            let before = health.status.clone();
            if exit_code == 0 {
                health.failing_streak = 0;
                health.status = "healthy".into();
            } else if started.elapsed() >= check.start_period {
                health.failing_streak += 1;
                if health.failing_streak >= check.retries {
                    health.status = "unhealthy".into();
                }
            }
            health.log.push(probe);
            let excess = health.log.len().saturating_sub(LOG_ENTRIES);
            health.log.drain(..excess);
            let now = health.status.clone();
            let _ = d.containers.save_state(&rec);
            if now != before {
                d.events.emit(
                    "container",
                    &format!("health_status: {now}"),
                    &id,
                    crate::engine::events::container_attrs(&rec, &[]),
                );
            }
        }
    });
}

/// The `config` of an image's config (its `Cmd`, `Env`, `Healthcheck`...); empty if unreadable.
pub fn image_config(d: &Daemon, image: &berth_image::Digest) -> ContainerConfig {
    d.images
        .content
        .read(image, berth_image::manifest::MAX_CONFIG)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|mut v| crate::model::record::lenient_from(v["config"].take()))
        .unwrap_or_default()
}

/// The `Health` a container starts a run with.
pub fn starting(config: &ContainerConfig, image_config: &ContainerConfig) -> Option<Health> {
    check_of(config, image_config).map(|_| Health {
        status: "starting".into(),
        ..Default::default()
    })
}

/// Runs one probe as an exec process: (exit code, output), -1 when it timed out or could not
/// run.
async fn probe(d: &Arc<Daemon>, id: &str, check: &Check) -> (i64, String) {
    let (base, rootfs) = match d.containers.find(id) {
        Ok(h) => {
            let rec = h.lock().await;
            (
                rec.spec.process().clone().unwrap_or_default(),
                crate::oci::rootfs::merged(&d.containers.dir(id))
                    .display()
                    .to_string(),
            )
        }
        Err(_) => return (-1, String::new()),
    };
    let Ok(process) = crate::engine::exec::process_spec(&base, &exec_config(&check.argv), &rootfs)
    else {
        return (-1, "the healthcheck command is invalid".into());
    };
    let exec_id = format!("health-{}", &crate::engine::store::new_id()[..8]);
    let dir = stdio::fifo_dir(d, id);
    let out = dir.join(format!("{exec_id}-out"));
    if std::fs::create_dir_all(&dir).is_err() || stdio::mkfifo(&out).is_err() {
        return (-1, "cannot make the probe's output FIFO".into());
    }
    let (tx, mut rx) = broadcast::channel::<(Stream, bytes::Bytes)>(256);
    let (drain, drain_rx) = tokio::sync::watch::channel(false);
    let pump = tokio::spawn(stdio::pump(out.clone(), Stream::Stdout, None, tx, drain_rx));
    let collect = tokio::spawn(async move {
        let mut text = Vec::new();
        while let Ok((_, chunk)) = rx.recv().await {
            if text.len() < OUTPUT_LIMIT {
                text.extend_from_slice(&chunk[..chunk.len().min(OUTPUT_LIMIT - text.len())]);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut tasks = d.containerd.tasks();
    let path = out.display().to_string();
    let made = tasks
        .exec(req(ExecProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.clone(),
            stdin: String::new(),
            stdout: path.clone(),
            stderr: path,
            terminal: false,
            spec: serde_json::to_vec(&process).unwrap_or_default(),
        }))
        .await;
    let started = match made {
        Ok(_) => {
            tasks
                .start(req(StartRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await
        }
        Err(e) => Err(e),
    };
    let code = match started {
        Err(e) => Err(e.message().to_string()),
        Ok(_) => {
            match tokio::time::timeout(check.timeout, d.containerd.wait_exit(id, &exec_id)).await {
                Ok(code) => Ok(code),
                Err(_) => {
                    let _ = tasks
                        .kill(req(KillRequest {
                            container_id: id.to_string(),
                            exec_id: exec_id.clone(),
                            signal: 9,
                            all: false,
                        }))
                        .await;
                    let _ = d.containerd.wait_exit(id, &exec_id).await;
                    Err(format!(
                        "Health check exceeded timeout ({}s)",
                        check.timeout.as_secs_f64()
                    ))
                }
            }
        }
    };
    let _ = drain.send(true);
    let _ = pump.await;
    let output = collect.await.unwrap_or_default();
    let _ = tasks
        .delete_process(req(DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id,
        }))
        .await;
    let _ = std::fs::remove_file(&out);
    match code {
        Ok(c) => (c, output),
        Err(why) => (-1, why),
    }
}

/// A probe's exec: its command and nothing else.
fn exec_config(argv: &[String]) -> berth_api::models::ExecConfig {
    berth_api::models::ExecConfig {
        cmd: Some(argv.to_vec()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_healthcheck_wins_over_the_image_and_none_disables() {
        let typed = |v: Value| -> ContainerConfig { serde_json::from_value(v).unwrap() };
        let image = typed(
            json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000u64, "Retries": 5}}),
        );
        let c = check_of(&typed(json!({})), &image).unwrap();
        assert_eq!(
            (c.argv.clone(), c.interval, c.retries),
            (vec!["true".to_string()], Duration::from_secs(5), 5)
        );
        let own = json!({"Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Timeout": 1_000_000_000u64}});
        let c = check_of(&typed(own), &image).unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "wget -q localhost"]);
        assert_eq!(
            (c.timeout, c.interval, c.retries),
            (Duration::from_secs(1), Duration::from_secs(5), 5)
        );
        assert_eq!(
            check_of(&typed(json!({"Healthcheck": {"Test": ["NONE"]}})), &image),
            None
        );
        assert_eq!(check_of(&typed(json!({})), &typed(json!({}))), None);
    }
}
