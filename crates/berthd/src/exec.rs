//! `docker exec`: exec instances (create, start attached or detached, inspect, resize), run as
//! extra processes of the container's task through berth-containerd, with their own FIFOs
//! under the container's exec dir and their output relayed to the hijacked connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_proto::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::Daemon;
use crate::attach::{Relay, StdinTarget, relay, upgraded_response};
use crate::http::{ApiError, ApiResult, Query, empty, json, parse_json, read_body};
use crate::logs::Stream;
use crate::run::{self, grpc, req};

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: Value,
    pub output: broadcast::Sender<(Stream, Bytes)>,
    pub exited: watch::Sender<Option<i64>>,
    pub stdin: Arc<Mutex<Option<std::fs::File>>>,
    pub state: Mutex<(bool, u32)>,
    /// When the process exited (the record goes a while after, or once inspected).
    pub finished: Option<std::time::Instant>,
}

/// How long a finished exec no one inspected is kept (dockerd's collector runs every 5 minutes).
const KEEP_FINISHED: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    fn get(&self, id: &str) -> Result<Arc<Exec>, ApiError> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Exec>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exec `e` ended with `code`: its record shrinks to what inspect shows (the output
    /// channel and its buffer, the stdin pipe go), and finished records past their time go.
    fn finish(&self, e: &Exec, code: i64) {
        let (_, pid) = *e.state.lock().unwrap_or_else(|p| p.into_inner());
        let slim = Arc::new(Exec {
            id: e.id.clone(),
            container: e.container.clone(),
            config: e.config.clone(),
            output: broadcast::channel(1).0,
            exited: watch::channel(Some(code)).0,
            stdin: Arc::new(Mutex::new(None)),
            state: Mutex::new((false, pid)),
            finished: Some(std::time::Instant::now()),
        });
        let mut map = self.lock();
        map.retain(|_, x| x.finished.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
        if map.contains_key(&e.id) {
            map.insert(e.id.clone(), slim);
        }
    }

    /// Forgets the execs of a removed container.
    pub fn remove_of(&self, container: &str) {
        self.lock().retain(|_, x| x.container != container);
    }

    /// Exec ids of a container (for inspect's `ExecIDs`).
    pub fn of(&self, container: &str) -> Vec<String> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container == container)
            .map(|e| e.id.clone())
            .collect()
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(d: &Arc<Daemon>, name: &str, r: Request<Incoming>) -> ApiResult {
    let body = read_body(r.into_body(), 1 << 20).await?;
    let config: Value = parse_json(&body)?;
    let cmd_ok = config["Cmd"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
    if !cmd_ok {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let h = d.containers.find(name)?;
    let container = {
        let rec = h.lock().await;
        if rec.state.status != "running" {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        rec.id.clone()
    };
    let id = crate::container::new_id();
    let e = Arc::new(Exec {
        id: id.clone(),
        container,
        config,
        output: broadcast::channel(1024).0,
        exited: watch::channel(None).0,
        stdin: Arc::new(Mutex::new(None)),
        state: Mutex::new((false, 0)),
        finished: None,
    });
    d.execs.lock().insert(id.clone(), e);
    Ok(json(StatusCode::CREATED, &json!({"Id": id})))
}

/// The exec's OCI process: the container's, with the exec's args, env, cwd, user and TTY.
pub fn process_spec(base: &Value, c: &Value, rootfs: &str) -> Result<Value, ApiError> {
    let mut p = base.clone();
    p["args"] = c["Cmd"].clone();
    p["terminal"] = json!(c["Tty"].as_bool().unwrap_or(false));
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for kv in c["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        if kv.contains('=') {
            env.push(kv.to_string());
        }
    }
    if c["Tty"].as_bool() == Some(true) && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p["env"] = json!(env);
    if let Some(w) = c["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
        p["cwd"] = json!(w);
    }
    if let Some(u) = c["User"].as_str().filter(|u| !u.is_empty()) {
        let (uid, gid) =
            crate::spec::user(u, rootfs).map_err(|e| ApiError::bad_request(e.to_string()))?;
        p["user"] = json!({"uid": uid, "gid": gid});
    }
    Ok(p)
}

/// `POST /exec/{id}/start`.
pub async fn start(d: &Arc<Daemon>, id: &str, r: Request<Incoming>) -> ApiResult {
    let e = d.execs.get(id)?;
    {
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 || e.exited.borrow().is_some() {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
        st.0 = true;
    }
    let (parts, body) = r.into_parts();
    let bytes = read_body(body, 1 << 20).await?;
    let opts: Value = parse_json(&bytes)?;
    let detach = opts["Detach"].as_bool().unwrap_or(false);
    let c = &e.config;
    let tty = c["Tty"].as_bool().unwrap_or(false) || opts["Tty"].as_bool().unwrap_or(false);
    let h = d.containers.find(&e.container)?;
    let (base, rootfs) = {
        let rec = h.lock().await;
        if rec.state.status != "running" {
            e.state.lock().unwrap_or_else(|p| p.into_inner()).0 = false;
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        (
            rec.spec["process"].clone(),
            crate::rootfs::merged(&d.containers.dir(&rec.id))
                .display()
                .to_string(),
        )
    };
    let process = process_spec(&base, c, &rootfs)?;
    let dir = run::fifo_dir(d, &e.container);
    std::fs::create_dir_all(&dir).map_err(|err| ApiError::internal(err.to_string()))?;
    let fifo = |s: &str| dir.join(format!("exec-{}-{s}", &id[..12]));
    let (out, err, inp) = (fifo("stdout"), fifo("stderr"), fifo("stdin"));
    let attach_in = c["AttachStdin"].as_bool().unwrap_or(false) && !detach;
    run::mkfifo(&out)?;
    if !tty {
        run::mkfifo(&err)?;
    }
    if attach_in {
        run::mkfifo(&inp)?;
    }
    let (drain, drain_rx) = watch::channel(false);
    let mut pumps = vec![tokio::spawn(run::pump(
        out.clone(),
        Stream::Stdout,
        None,
        e.output.clone(),
        drain_rx.clone(),
    ))];
    if !tty {
        pumps.push(tokio::spawn(run::pump(
            err.clone(),
            Stream::Stderr,
            None,
            e.output.clone(),
            drain_rx,
        )));
    }
    let output = e.output.subscribe();
    let exited = e.exited.subscribe();
    let mut tasks = d.containerd.tasks();
    let path = |p: &std::path::Path, on: bool| {
        if on {
            p.display().to_string()
        } else {
            String::new()
        }
    };
    let exec_id = id[..12].to_string();
    let made = tasks
        .exec(req(ExecProcessRequest {
            container_id: e.container.clone(),
            exec_id: exec_id.clone(),
            stdin: path(&inp, attach_in),
            stdout: out.display().to_string(),
            stderr: path(&err, !tty),
            terminal: tty,
            spec: serde_json::to_vec(&process).unwrap_or_default(),
        }))
        .await;
    let started = match made {
        Ok(_) => {
            berth_failpoint::point("exec.after-task-exec");
            tasks
                .start(req(StartRequest {
                    container_id: e.container.clone(),
                    exec_id: exec_id.clone(),
                }))
                .await
        }
        Err(s) => Err(s),
    };
    if attach_in && started.is_ok() {
        // The shim opened the FIFO's read end when it started the exec.
        *e.stdin.lock().unwrap_or_else(|p| p.into_inner()) = open_writer(&inp);
    }
    berth_failpoint::point("exec.after-start");
    let pid = match started {
        Ok(r) => r.into_inner().pid,
        Err(s) => {
            let _ = drain.send(true);
            for f in [&out, &err, &inp] {
                let _ = std::fs::remove_file(f);
            }
            e.exited.send_replace(Some(126));
            d.execs.finish(&e, 126);
            let message = format!("OCI runtime exec failed: {}", grpc(s).message);
            if detach {
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message));
            }
            // As dockerd: the connection is upgraded anyway and the error travels in the
            // stream; the client then reads exit code 126 from the exec's inspect.
            let r = Request::from_parts(parts, ());
            tokio::spawn(async move {
                if let Ok(upgraded) = hyper::upgrade::on(r).await {
                    let mut text = message.into_bytes();
                    text.extend_from_slice(b"\r\n");
                    let mut bytes = Vec::with_capacity(text.len() + 8);
                    if tty {
                        bytes = text;
                    } else {
                        berth_api::stdcopy::encode_frame(
                            berth_api::stdcopy::Stream::Stdout,
                            &text,
                            &mut bytes,
                        );
                    }
                    let mut io = hyper_util::rt::TokioIo::new(upgraded);
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &bytes).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
                }
            });
            return Ok(upgraded_response(tty));
        }
    };
    e.state.lock().unwrap_or_else(|p| p.into_inner()).1 = pid;
    let (d2, e2) = (d.clone(), e.clone());
    tokio::spawn(async move {
        let code = run::wait_task(&d2, &e2.container, &exec_id).await;
        let mut tasks = d2.containerd.tasks();
        let _ = drain.send(true);
        for p in pumps {
            let _ = p.await;
        }
        let _ = tasks
            .delete_process(req(DeleteProcessRequest {
                container_id: e2.container.clone(),
                exec_id,
            }))
            .await;
        for f in [&out, &err, &inp] {
            let _ = std::fs::remove_file(f);
        }
        e2.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        e2.state.lock().unwrap_or_else(|p| p.into_inner()).0 = false;
        e2.exited.send_replace(Some(code));
        d2.execs.finish(&e2, code);
    });
    if detach {
        return Ok(empty(StatusCode::OK));
    }
    let relay_opts = Relay {
        tty,
        want_out: c["AttachStdout"].as_bool().unwrap_or(true),
        want_err: c["AttachStderr"].as_bool().unwrap_or(true),
        stdin: attach_in.then(|| StdinTarget::Exec {
            container: e.container.clone(),
            exec_id: id[..12].to_string(),
            file: e.stdin.clone(),
        }),
    };
    let d3 = d.clone();
    let r = Request::from_parts(parts, ());
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(r).await {
            relay(d3, upgraded, output, exited, relay_opts).await;
        }
    });
    Ok(upgraded_response(tty))
}

/// Opens a FIFO's write end without ever blocking (fails if no reader), then makes writes
/// blocking again.
pub fn open_writer(p: &std::path::Path) -> Option<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        p,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).ok()?;
    Some(std::fs::File::from(fd))
}

/// Closes an exec's stdin in the shim (the client's stdin ended).
pub async fn close_stdin(d: &Arc<Daemon>, container: &str, exec_id: &str) {
    let mut tasks = d.containerd.tasks();
    let _ = tasks
        .close_io(req(CloseIoRequest {
            container_id: container.to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
        }))
        .await;
}

/// `GET /exec/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, id: &str) -> ApiResult {
    let e = d.execs.get(id)?;
    let (running, pid) = *e.state.lock().unwrap_or_else(|p| p.into_inner());
    let code = *e.exited.borrow();
    // Inspected after it finished (what `docker exec` does last): the record has served.
    if e.finished.is_some() {
        d.execs.lock().remove(&e.id);
    }
    let c = &e.config;
    let cmd: Vec<Value> = c["Cmd"].as_array().cloned().unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &json!({
            "ID": e.id,
            "Running": running,
            "ExitCode": code,
            "ProcessConfig": {
                "tty": c["Tty"].as_bool().unwrap_or(false),
                "entrypoint": cmd.first(),
                "arguments": cmd.get(1..).unwrap_or_default(),
                "privileged": c["Privileged"].as_bool().unwrap_or(false),
                "user": c["User"].as_str().unwrap_or_default(),
            },
            "OpenStdin": c["AttachStdin"].as_bool().unwrap_or(false),
            "OpenStderr": c["AttachStderr"].as_bool().unwrap_or(false),
            "OpenStdout": c["AttachStdout"].as_bool().unwrap_or(false),
            "CanRemove": false,
            "ContainerID": e.container,
            "DetachKeys": "",
            "Pid": pid,
        }),
    ))
}

fn size(q: &Query) -> Result<(u32, u32), ApiError> {
    let n = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid {k}")))
    };
    Ok((n("w")?, n("h")?))
}

/// `POST /exec/{id}/resize?h=&w=` and `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(d: &Arc<Daemon>, container: &str, exec_id: &str, q: &Query) -> ApiResult {
    let (width, height) = size(q)?;
    let mut tasks = d.containerd.tasks();
    tasks
        .resize_pty(req(ResizePtyRequest {
            container_id: container.to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
        }))
        .await
        .map_err(grpc)?;
    Ok(empty(StatusCode::OK))
}

/// `POST /exec/{id}/resize`.
pub async fn resize_exec(d: &Arc<Daemon>, id: &str, r: Request<Incoming>) -> ApiResult {
    let e = d.execs.get(id)?;
    let q = Query::parse(r.uri().query());
    resize(d, &e.container, &id[..12.min(id.len())], &q).await
}
