//! Container routes: create, list, inspect, start, stop, restart, kill, wait, attach, logs,
//! rename, remove, prune; JSON shaped as the docker CLI and docker-py read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_api::models;
use berth_api::responses::{
    ContainerInspect, ContainerState, ContainerSummary, ContainerWaitResponse, SummaryHostConfig,
    SummaryNetworkSettings,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

use crate::api::http::{ApiResult, Query, empty, json, parse_json, read_body};
use crate::engine::Daemon;
use crate::engine::logs::{self, ReadOptions, Stream};
use crate::engine::run;
use crate::engine::store::{Record, valid_name};
use crate::model::Error;
use crate::model::record::Status;

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// `POST /containers/create?name=`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let body = read_body(req.into_body(), 4 << 20).await?;
    let created = crate::engine::create::create(d, q.get("name"), parse_json(&body)?).await?;
    Ok(json(
        StatusCode::CREATED,
        &models::ContainerCreateResponse {
            id: created.id,
            warnings: created.warnings,
        },
    ))
}

/// Go's `units.HumanDuration`, as `docker ps` shows ages.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, day) = (s / 60, s / 3600, s / 86400);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if day < 14 => format!("{day} days"),
        _ if day < 56 => format!("{} weeks", day / 7),
        _ if day < 730 => format!("{} months", day / 30),
        _ => format!("{} years", day / 365),
    }
}

fn unix(rfc: &str) -> i64 {
    berth_clock::parse_rfc3339(rfc).map_or(0, |n| n / 1_000_000_000)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn status_text(r: &Record) -> String {
    match r.state.status {
        Status::Running => {
            let up = format!("Up {}", human_duration(now() - unix(&r.state.started_at)));
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("{up} (health: starting)"),
                Some(s) if !s.is_empty() => format!("{up} ({s})"),
                _ => up,
            }
        }
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(now() - unix(&r.state.started_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(now() - unix(&r.state.finished_at))
        ),
        Status::Created => "Created".into(),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(now() - unix(&r.state.finished_at))
        ),
        other => other.as_str().to_string(),
    }
}

fn command_line(r: &Record) -> String {
    std::iter::once(r.path.as_str())
        .chain(r.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn summary(r: &Record) -> ContainerSummary {
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.image.clone(),
        image_id: r.image_id.clone(),
        command: command_line(r),
        created: unix(&r.created),
        ports: crate::engine::endpoints::ports_view(r),
        size_rw: None,
        labels: labels(r),
        state: r.state.status.as_str().into(),
        status: status_text(r),
        host_config: SummaryHostConfig {
            network_mode: Some(r.host_config.network_mode.as_str())
                .filter(|m| !m.is_empty())
                .unwrap_or("default")
                .into(),
        },
        network_settings: SummaryNetworkSettings {
            networks: crate::engine::endpoints::networks_view(r),
        },
        mounts: r.mounts.clone(),
    }
}

/// The container's labels.
fn labels(r: &Record) -> BTreeMap<String, String> {
    r.config.labels.clone().unwrap_or_default()
}

/// `GET /containers/json?all=&filters=&limit=`.
pub async fn list(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let all = q.bool("all");
    let filters = q.filters()?;
    for (k, _) in &filters {
        if !matches!(
            k.as_str(),
            "status" | "name" | "id" | "label" | "exited" | "ancestor"
        ) {
            return Err(Error::invalid(format!("invalid filter '{k}'")));
        }
    }
    let mut out = Vec::new();
    // Without waiting for a start or stop in progress (their record as last written).
    let views = d.containers.views();
    // A linked container is also listed under each link's name, as dockerd lists it.
    let mut link_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &views {
        for (child, alias) in crate::engine::links::of(p) {
            link_names
                .entry(child)
                .or_default()
                .push(format!("/{}/{alias}", p.name));
        }
    }
    for r in views {
        let matches = filters.iter().all(|(k, v)| match k.as_str() {
            "status" => r.state.status.as_str() == v,
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v.as_str()),
            "exited" => r.state.status == Status::Exited && r.state.exit_code.to_string() == *v,
            "ancestor" => r.image == *v || r.image_id == *v,
            "label" => match v.split_once('=') {
                Some((lk, lv)) => labels(&r).get(lk).is_some_and(|x| x == lv),
                None => labels(&r).contains_key(v),
            },
            _ => true,
        });
        let shown =
            all || r.running() || filters.iter().any(|(k, _)| k == "status" || k == "exited");
        if matches && shown {
            let mut s = summary(&r);
            s.names
                .extend(link_names.get(&r.name).into_iter().flatten().cloned());
            out.push((r.created.clone(), s));
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0));
    let mut list: Vec<ContainerSummary> = out.into_iter().map(|(_, v)| v).collect();
    if let Some(n) = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        list.truncate(n);
    }
    Ok(json(StatusCode::OK, &list))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let r = d.containers.view(name)?;
    let dir = d.containers.dir(&r.id);
    let p = |f: &str| dir.join(f).display().to_string();
    let st = &r.state;
    let v = ContainerInspect {
        id: r.id.clone(),
        created: r.created.clone(),
        path: r.path.clone(),
        args: r.args.clone(),
        state: ContainerState {
            status: st.status.as_str().into(),
            // As dockerd: a container waiting for its policy's restart counts as running.
            running: matches!(
                st.status,
                Status::Running | Status::Paused | Status::Restarting
            ),
            paused: st.status == Status::Paused,
            restarting: st.status == Status::Restarting,
            oom_killed: st.oom_killed,
            dead: st.status == Status::Dead,
            pid: st.pid,
            exit_code: st.exit_code,
            error: st.error.clone(),
            started_at: st.started_at.clone(),
            finished_at: st.finished_at.clone(),
            // Docker omits it for a container without a healthcheck (clients test for it).
            health: st.health.as_ref().map(crate::model::health::Health::view),
        },
        image: r.image_id.clone(),
        resolv_conf_path: p("resolv.conf"),
        hostname_path: p("hostname"),
        hosts_path: p("hosts"),
        log_path: match run::logs_off(&r.host_config) {
            true => String::new(),
            false => run::log_path(d, &r.id).display().to_string(),
        },
        name: format!("/{}", r.name),
        restart_count: r.restart_count,
        driver: "overlay2".into(),
        platform: "linux".into(),
        exec_ids: Some(d.execs.of(&r.id)).filter(|e| !e.is_empty()),
        host_config: {
            let mut hc = r.host_config.clone();
            if hc.links.is_some() {
                hc.links = Some(crate::engine::links::shown(&r));
            }
            hc
        },
        graph_driver: models::GraphDriverData {
            name: "overlay2".into(),
            data: [
                ("MergedDir", p("merged")),
                ("UpperDir", p("upper")),
                ("WorkDir", p("work")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        },
        mounts: r.mounts.clone(),
        config: r.config.clone(),
        network_settings: crate::engine::endpoints::settings_view(d, &r),
        ..Default::default()
    };
    Ok(json(StatusCode::OK, &v))
}

pub async fn start(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let h = d.containers.find(name)?;
    // As dockerd: one waiting for its policy's restart counts as running.
    if h.lock().await.state.status == Status::Restarting {
        return Err(Error::NotModified);
    }
    if let Err(e) = run::start(d, &h).await {
        // Like dockerd: an auto-remove container that cannot start is removed.
        let rec = h.lock().await.clone();
        if !e.is_not_modified() && rec.auto_remove() && !rec.running() {
            run::remove_files(d, &rec);
        }
        return Err(e);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn timeout_param(q: &Query) -> Option<i64> {
    q.get("t").or(q.get("timeout")).and_then(|t| t.parse().ok())
}

/// `signal` of stop and restart (API 1.42): the container's StopSignal when absent.
fn stop_signal_param(q: &Query) -> Result<Option<u32>, Error> {
    match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => run::signal_number(s)
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("Invalid signal: {s}"))),
        None => Ok(None),
    }
}

pub async fn stop(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let signal = stop_signal_param(&q)?;
    let h = d.containers.find(name)?;
    run::stop(d, &h, timeout_param(&q), signal).await?;
    let rec = h.lock().await.clone();
    d.events.emit(
        "container",
        "stop",
        &rec.id,
        crate::engine::events::container_attrs(&rec, &[]),
    );
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn restart(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let signal = stop_signal_param(&q)?;
    let h = d.containers.find(name)?;
    match run::stop(d, &h, timeout_param(&q), signal).await {
        Ok(()) => {}
        Err(e) if e.is_not_modified() => {}
        Err(e) => return Err(e),
    }
    run::start(d, &h).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn kill(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let h = d.containers.find(name)?;
    let (id, running) = {
        let r = h.lock().await;
        (r.id.clone(), r.running())
    };
    if !running {
        return Err(Error::conflict(format!("Container {id} is not running")));
    }
    // Waiting for its policy's restart: no process to signal; the restart is called off.
    if crate::engine::restart::cancel_restart(d, &h).await {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let sig = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => {
            run::signal_number(s).ok_or_else(|| Error::invalid(format!("Invalid signal: {s}")))?
        }
        None => 9,
    };
    if sig == 9 || sig == 15 {
        crate::engine::restart::mark_manually_stopped(d, &h).await;
    }
    run::kill(d, &id, sig).await?;
    // As dockerd: after SIGKILL the answer waits until the exit is recorded, so an inspect or
    // a plain remove right after sees the container stopped.
    if sig == 9 {
        run::wait_exit(d, &id, Some(Duration::from_secs(10))).await;
    }
    let rec = h.lock().await.clone();
    d.events.emit(
        "container",
        "kill",
        &id,
        crate::engine::events::container_attrs(&rec, &[("signal", sig.to_string())]),
    );
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`: the headers go out at
/// once, the status when the condition holds.
pub async fn wait(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let condition = q
        .get("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running")
        .to_string();
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(Error::invalid(format!("invalid condition: {condition:?}")));
    }
    let h = d.containers.find(name)?;
    let (id, running, last) = {
        let r = h.lock().await;
        (r.id.clone(), r.running(), r.state.exit_code)
    };
    let live = d.runs.ensure(&id, (!running).then_some(last));
    let mut exited = live.exited.subscribe();
    let mut removed = live.removed.subscribe();
    // The current run's state is "seen": next-exit waits for a change.
    exited.borrow_and_update();
    let (stream, resp) = crate::api::http::JsonStream::new();
    tokio::spawn(async move {
        let code = match condition.as_str() {
            "not-running" if !running => Some(last),
            "removed" => {
                while !*removed.borrow_and_update() {
                    if removed.changed().await.is_err() {
                        break;
                    }
                }
                *exited.borrow()
            }
            _ => loop {
                if exited.changed().await.is_err() {
                    break None;
                }
                if let Some(c) = *exited.borrow_and_update() {
                    break Some(c);
                }
            },
        };
        let _ = stream
            .send(&ContainerWaitResponse {
                status_code: code.unwrap_or(0),
                error: None,
            })
            .await;
    });
    Ok(resp)
}

/// `POST /containers/{id}/attach?stream=1&stdin=&stdout=&stderr=`: upgrades the connection
/// and relays the container's output and the client's stdin; ends when the container exits.
pub async fn attach(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let h = d.containers.find(name)?;
    let (id, tty, running, last) = {
        let r = h.lock().await;
        (r.id.clone(), r.tty(), r.running(), r.state.exit_code)
    };
    let live = d.runs.ensure(&id, (!running).then_some(last));
    let output = live.output.subscribe();
    let mut exited = live.exited.subscribe();
    exited.borrow_and_update();
    let r = crate::api::attach::Relay {
        tty,
        want_out: q.bool("stdout"),
        want_err: q.bool("stderr"),
        stdin: q
            .bool("stdin")
            .then(|| crate::api::attach::StdinTarget::Container(id.clone())),
        detach_keys: crate::api::attach::Relay::keys_for(
            tty,
            q.bool("stdin"),
            q.get("detachKeys"),
            "detach",
        )?,
    };
    // `logs`: the output so far first; `stream`: then the live output (without it the
    // connection ends after the logs, as dockerd's).
    let (with_logs, with_stream) = (q.bool("logs"), q.bool("stream"));
    let past = match with_logs {
        true => {
            let opts = ReadOptions {
                stdout: r.want_out,
                stderr: r.want_err,
                since: None,
                until: None,
                tail: None,
                timestamps: false,
                follow: false,
            };
            let path = run::log_path(d, &id);
            tokio::task::spawn_blocking(move || logs::read(&path, &opts))
                .await
                .map_err(|e| Error::internal(format!("worker failed: {e}")))?
                .unwrap_or_default()
        }
        false => Vec::new(),
    };
    let d2 = d.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        for rec in &past {
            let line = logs::format_line(rec, false);
            let bytes = match tty {
                true => line,
                false => {
                    let st = match rec.stream {
                        Stream::Stdout => berth_api::stdcopy::Stream::Stdout,
                        Stream::Stderr => berth_api::stdcopy::Stream::Stderr,
                    };
                    let mut out = Vec::with_capacity(line.len() + 8);
                    berth_api::stdcopy::encode_frame(st, &line, &mut out);
                    out
                }
            };
            if tokio::io::AsyncWriteExt::write_all(&mut io, &bytes)
                .await
                .is_err()
            {
                return;
            }
        }
        if with_stream {
            crate::api::attach::relay(d2, io.into_inner(), output, exited, r).await;
        } else {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
        }
    });
    Ok(crate::api::attach::upgraded_response(tty))
}

/// `GET /containers/{id}/logs`.
pub async fn logs(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    // A follow needs to know whether a start in progress ends running: it waits for it; a
    // plain read of the log never does.
    let r = if q.bool("follow") {
        d.containers.find(name)?.lock().await.clone()
    } else {
        d.containers.view(name)?
    };
    let (id, tty, running) = (r.id.clone(), r.tty(), r.running());
    if run::logs_off(&r.host_config) {
        return Err(run::no_log_reading());
    }
    if !q.bool("stdout") && !q.bool("stderr") {
        return Err(Error::invalid("You must choose at least one stream"));
    }
    let time = |k: &str| -> Result<Option<i64>, Error> {
        match q.get(k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => logs::parse_time_param(v)
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("invalid value for \"{k}\": {v}"))),
        }
    };
    let opts = ReadOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: time("since")?,
        until: time("until")?,
        tail: q
            .get("tail")
            .filter(|t| *t != "all" && !t.is_empty())
            .and_then(|t| t.parse().ok()),
        timestamps: q.bool("timestamps"),
        follow: q.bool("follow") && running,
    };
    let path = run::log_path(d, &id);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let timestamps = opts.timestamps;
    let frame = move |r: &logs::Record| -> Bytes {
        let line = logs::format_line(r, timestamps);
        if tty {
            return Bytes::from(line);
        }
        let st = match r.stream {
            Stream::Stdout => berth_api::stdcopy::Stream::Stdout,
            Stream::Stderr => berth_api::stdcopy::Stream::Stderr,
        };
        let mut out = Vec::with_capacity(line.len() + 8);
        berth_api::stdcopy::encode_frame(st, &line, &mut out);
        Bytes::from(out)
    };
    if opts.follow {
        let live = d.runs.ensure(&id, None);
        let mut exited = live.exited.subscribe();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                if exited.borrow_and_update().is_some() {
                    break;
                }
                if exited.changed().await.is_err() {
                    break;
                }
            }
            let _ = stop_tx.send(true);
        });
        let (rtx, mut rrx) = tokio::sync::mpsc::channel::<logs::Record>(256);
        tokio::spawn(logs::follow(path, opts, rtx, stop_rx));
        tokio::spawn(async move {
            while let Some(r) = rrx.recv().await {
                if tx.send(frame(&r)).await.is_err() {
                    return;
                }
            }
        });
    } else {
        let records = tokio::task::spawn_blocking(move || logs::read(&path, &opts))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .unwrap_or_default();
        tokio::spawn(async move {
            for r in &records {
                if tx.send(frame(r)).await.is_err() {
                    return;
                }
            }
        });
    }
    use http_body_util::BodyExt;
    use tokio_stream::StreamExt;
    let body = http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|b| Ok::<_, std::io::Error>(hyper::body::Frame::data(b))),
    );
    let mut r = Response::new(body.boxed());
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    r.headers_mut()
        .insert("Content-Type", HeaderValue::from_static(ct));
    Ok(r)
}

/// `DELETE /containers/{id}?force=&v=`.
/// `DELETE /containers/{parent}/{alias}?link=1`: removes the parent's link of that alias (the
/// containers stay).
pub async fn remove_link(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let full = format!("/{}", name.trim_start_matches('/'));
    let (parent, alias) = full.rsplit_once('/').unwrap_or_default();
    if parent.is_empty() {
        return Err(Error::conflict(
            "Conflict, cannot remove the default link name of the container",
        ));
    }
    let missing = || Error::not_found(format!("No such container: {full}"));
    let h = d
        .containers
        .find(parent.trim_start_matches('/'))
        .map_err(|_| missing())?;
    let mut rec = h.lock().await;
    let links = crate::engine::links::of(&rec);
    let kept: Vec<String> = links
        .iter()
        .filter(|(_, a)| a != alias)
        .map(|(child, a)| format!("{child}:{a}"))
        .collect();
    if kept.len() == links.len() {
        return Err(missing());
    }
    rec.host_config.links = Some(kept);
    d.containers.save(&rec)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn remove(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let h = d.containers.find(name)?;
    let (id, running, restarting) = {
        let r = h.lock().await;
        (
            r.id.clone(),
            r.running(),
            r.state.status == Status::Restarting,
        )
    };
    if restarting {
        if !q.bool("force") {
            return Err(Error::conflict(format!(
                "You cannot remove a restarting container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        crate::engine::restart::cancel_restart(d, &h).await;
    } else if running {
        if !q.bool("force") {
            return Err(Error::conflict(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        // A user's kill, as dockerd's: the restart policy leaves it alone.
        crate::engine::restart::mark_manually_stopped(d, &h).await;
        let _ = run::kill(d, &id, 9).await;
        run::wait_exit(d, &id, Some(Duration::from_secs(30))).await;
        crate::engine::restart::cancel_restart(d, &h).await;
    }
    let rec = h.lock().await.clone();
    if rec.running() {
        return Err(Error::conflict(format!(
            "container {id} could not be stopped"
        )));
    }
    // Whatever the record says, no task of it outlives it.
    crate::engine::reconcile::purge_task(d, &id).await;
    berth_failpoint::point("rm.after-task-purge");
    run::remove_files(d, &rec);
    if q.bool("v") {
        crate::engine::volumes::remove_anonymous(d, &rec.volumes).await;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let new = q
        .get("name")
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| valid_name(n))
        .ok_or_else(|| {
            Error::invalid("Invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        })?;
    let h = d.containers.find(name)?;
    let mut r = h.lock().await;
    let old = r.name.clone();
    d.containers.rename(&mut r, &new)?;
    d.events.emit(
        "container",
        "rename",
        &r.id,
        crate::engine::events::container_attrs(&r, &[("oldName", format!("/{old}"))]),
    );
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let id = d.containers.find(name)?.lock().await.id.clone();
    crate::api::exec::resize(d, &id, "", &q).await
}

/// `POST /containers/{id}/update`: resources (applied to the running task at once) and the
/// restart policy.
pub async fn update(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let checked = crate::engine::update::check(&d.sysinfo, parse_json(&body)?)?;
    let h = d.containers.find(name)?;
    let mut rec = h.lock().await;
    let auto_remove = rec.auto_remove();
    let update = crate::engine::update::apply(
        checked,
        &rec.host_config,
        rec.spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref()),
        auto_remove,
    )?;
    let crate::engine::update::Update {
        host_config: hc,
        resources,
        warnings,
    } = update;
    if rec.running() {
        let mut tasks = d.containerd.tasks();
        tasks
            .update(crate::containerd::req(berth_proto::v1::UpdateTaskRequest {
                container_id: rec.id.clone(),
                resources: serde_json::to_vec(&resources).unwrap_or_default(),
            }))
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "Cannot update container {}: {}",
                    rec.id,
                    e.message()
                ))
            })?;
    }
    rec.host_config = hc;
    if let Some(linux) = rec.spec.linux_mut().as_mut() {
        linux.set_resources(Some(resources));
    }
    d.containers.save(&rec)?;
    d.events.emit(
        "container",
        "update",
        &rec.id.clone(),
        crate::engine::events::container_attrs(&rec, &[]),
    );
    Ok(json(
        StatusCode::OK,
        &models::ContainerUpdateResponse {
            warnings: Some(warnings),
        },
    ))
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(d: &Arc<Daemon>, name: &str, pause: bool) -> ApiResult {
    use berth_proto::v1::{PauseTaskRequest, ResumeTaskRequest};
    let h = d.containers.find(name)?;
    let mut rec = h.lock().await;
    let mut tasks = d.containerd.tasks();
    match (pause, rec.state.status) {
        (true, Status::Running) => {
            tasks
                .pause(crate::containerd::req(PauseTaskRequest {
                    container_id: rec.id.clone(),
                }))
                .await
                .map_err(crate::containerd::grpc)?;
            rec.state.status = Status::Paused;
        }
        (false, Status::Paused) => {
            tasks
                .resume(crate::containerd::req(ResumeTaskRequest {
                    container_id: rec.id.clone(),
                }))
                .await
                .map_err(crate::containerd::grpc)?;
            rec.state.status = Status::Running;
        }
        (true, Status::Paused) => {
            return Err(Error::conflict(format!(
                "Container {} is already paused",
                rec.id
            )));
        }
        (false, _) => {
            return Err(Error::conflict(format!(
                "Container {} is not paused",
                rec.id
            )));
        }
        _ => {
            return Err(Error::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
    }
    d.containers.save(&rec)?;
    let action = if pause { "pause" } else { "unpause" };
    d.events.emit(
        "container",
        action,
        &rec.id,
        crate::engine::events::container_attrs(&rec, &[]),
    );
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET /containers/{id}/top`: the container's processes, ps-style.
pub async fn top(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let (id, running) = {
        let r = d.containers.view(name)?;
        (r.id.clone(), r.running())
    };
    if !running {
        return Err(Error::conflict(format!("Container {id} is not running")));
    }
    let mut tasks = d.containerd.tasks();
    let pids = tasks
        .list_pids(crate::containerd::req(berth_proto::v1::ListPidsRequest {
            container_id: id,
        }))
        .await
        .map_err(crate::containerd::grpc)?
        .into_inner()
        .pids;
    let mut rows = Vec::new();
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .unwrap_or("0")
            .to_string();
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            })
            .unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        rows.push(vec![uid, pid.to_string(), ppid, cmd]);
    }
    let titles = ["UID", "PID", "PPID", "CMD"].map(str::to_string).to_vec();
    Ok(json(
        StatusCode::OK,
        &models::ContainerTopResponse {
            titles: Some(titles),
            processes: Some(rows),
        },
    ))
}

/// `POST /containers/prune`.
pub async fn prune(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = crate::api::http::PruneFilters::parse(&q.filters()?, &[])?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for h in d.containers.all() {
        let r = h.lock().await.clone();
        if r.running()
            || !filters.selects(&r.created, |k| {
                r.config
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .map(String::as_str)
            })
        {
            continue;
        }
        // What its writable layer held, as dockerd reports it.
        let upper = d.containers.dir(&r.id).join("upper");
        reclaimed += tokio::task::spawn_blocking(move || crate::volumes::dir_size(&upper))
            .await
            .unwrap_or(0);
        run::remove_files(d, &r);
        deleted.push(r.id);
    }
    Ok(json(
        StatusCode::OK,
        &models::ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed as i64),
        },
    ))
}

/// Used by the images routes: a container using image `id`, if any.
pub fn user_of_image(d: &Daemon, id: &berth_image::Digest) -> Option<String> {
    for h in d.containers.all() {
        if let Ok(r) = h.try_lock() {
            if r.image_id == id.as_str() {
                return Some(short(&r.id).to_string());
            }
        }
    }
    None
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`: the body, if any, is
/// a container config whose fields replace the container's in the new image.
pub async fn commit(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let reference = crate::api::images::repo_tag(&q)?;
    let body = read_body(req.into_body(), 4 << 20).await?;
    let config: Option<berth_api::config::ContainerConfig> =
        match body.iter().all(u8::is_ascii_whitespace) {
            true => None,
            false => parse_json(&body)?,
        };
    let opts = crate::engine::commit::CommitOptions {
        reference,
        comment: q.get("comment").unwrap_or_default().to_string(),
        author: q.get("author").unwrap_or_default().to_string(),
        pause: !matches!(q.get("pause"), Some("0" | "false" | "False")),
        changes: q
            .get_all("changes")
            .into_iter()
            .map(str::to_string)
            .collect(),
        config,
        ..Default::default()
    };
    let name = q.get("container").unwrap_or_default();
    let image = crate::engine::commit::commit(d, name, opts).await?;
    Ok(json(
        StatusCode::CREATED,
        &berth_api::responses::IdResponse {
            id: image.id.to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(70), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
