//! `docker exec` in the engine: exec instances (create, start, inspect, resize), run as extra
//! processes of the container's task through berth-containerd, with their own FIFOs under the
//! container's exec dir; their output goes to a channel the API relays to its client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_proto::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest,
};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::containerd::{grpc, req};
use berth_api::models::ExecConfig;

use crate::engine::Daemon;
use crate::engine::logs::Stream;
use crate::engine::stdio;
use crate::model::Error;
use crate::model::record::Status;

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
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
    pub fn get(&self, id: &str) -> Result<Arc<Exec>, Error> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
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

/// A new exec instance of running container `name` for `config` (Docker's exec config); its id.
pub async fn create(d: &Daemon, name: &str, config: ExecConfig) -> Result<String, Error> {
    let cmd_ok = config.cmd.as_ref().is_some_and(|c| !c.is_empty());
    if !cmd_ok {
        return Err(Error::invalid("No exec command specified"));
    }
    let h = d.containers.find(name)?;
    let container = {
        let rec = h.lock().await;
        if rec.state.status != Status::Running {
            return Err(Error::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        rec.id.clone()
    };
    let id = crate::model::ids::new_id();
    let e = Arc::new(Exec {
        id: id.clone(),
        container,
        config,
        output: broadcast::channel(crate::engine::stdio::OUTPUT_CHUNKS).0,
        exited: watch::channel(None).0,
        stdin: Arc::new(Mutex::new(None)),
        state: Mutex::new((false, 0)),
        finished: None,
    });
    d.execs.lock().insert(id.clone(), e);
    Ok(id)
}

/// An attached exec's stdin: its container, its id in the task, and the write end of its FIFO.
pub type ExecStdin = (String, String, Arc<Mutex<Option<std::fs::File>>>);

/// What a start made of an exec.
pub enum Started {
    /// Its process runs: its output, its end, and its stdin when the client sends one.
    Running {
        tty: bool,
        output: broadcast::Receiver<(Stream, Bytes)>,
        exited: watch::Receiver<Option<i64>>,
        stdin: Option<ExecStdin>,
    },
    /// The runtime refused it (exit code 126 recorded); the client of an attached start gets
    /// the message in its stream, as from dockerd.
    Refused { tty: bool, message: String },
}

/// The exec's OCI process: the container's, with the exec's args, env, cwd, user and TTY.
pub fn process_spec(base: &Value, c: &ExecConfig, rootfs: &str) -> Result<Value, Error> {
    let mut p = base.clone();
    let tty = c.tty.unwrap_or(false);
    p["args"] = json!(c.cmd.clone().unwrap_or_default());
    p["terminal"] = json!(tty);
    let mut env = crate::model::strings(&p["env"]);
    for kv in c.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        if kv.contains('=') {
            env.push(kv.to_string());
        }
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p["env"] = json!(env);
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        p["cwd"] = json!(w);
    }
    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid) =
            crate::oci::spec::user(u, rootfs).map_err(|e| Error::invalid(e.to_string()))?;
        p["user"] = json!({"uid": uid, "gid": gid});
    }
    Ok(p)
}

/// Starts exec `id`, attached or detached (`tty` is the start's own TTY request).
pub async fn start(d: &Arc<Daemon>, id: &str, detach: bool, tty: bool) -> Result<Started, Error> {
    let e = d.execs.get(id)?;
    {
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 || e.exited.borrow().is_some() {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
        st.0 = true;
    }
    let c = &e.config;
    let tty = c.tty.unwrap_or(false) || tty;
    let h = d.containers.find(&e.container)?;
    let (base, rootfs) = {
        let rec = h.lock().await;
        if rec.state.status != Status::Running {
            e.state.lock().unwrap_or_else(|p| p.into_inner()).0 = false;
            return Err(Error::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        (
            rec.spec["process"].clone(),
            crate::oci::rootfs::merged(&d.containers.dir(&rec.id))
                .display()
                .to_string(),
        )
    };
    let process = process_spec(&base, c, &rootfs)?;
    let dir = stdio::fifo_dir(d, &e.container);
    std::fs::create_dir_all(&dir).map_err(|err| Error::internal(err.to_string()))?;
    let fifo = |s: &str| dir.join(format!("exec-{}-{s}", &id[..12]));
    let (out, err, inp) = (fifo("stdout"), fifo("stderr"), fifo("stdin"));
    let attach_in = c.attach_stdin.unwrap_or(false) && !detach;
    stdio::mkfifo(&out)?;
    if !tty {
        stdio::mkfifo(&err)?;
    }
    if attach_in {
        stdio::mkfifo(&inp)?;
    }
    let (drain, drain_rx) = watch::channel(false);
    let mut pumps = vec![tokio::spawn(stdio::pump(
        out.clone(),
        Stream::Stdout,
        None,
        e.output.clone(),
        drain_rx.clone(),
    ))];
    if !tty {
        pumps.push(tokio::spawn(stdio::pump(
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
        *e.stdin.lock().unwrap_or_else(|p| p.into_inner()) = stdio::open_writer(&inp);
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
            let message = format!("OCI runtime exec failed: {}", grpc(s).message());
            if detach {
                return Err(Error::internal(message));
            }
            return Ok(Started::Refused { tty, message });
        }
    };
    e.state.lock().unwrap_or_else(|p| p.into_inner()).1 = pid;
    let (d2, e2) = (d.clone(), e.clone());
    tokio::spawn(async move {
        let code = d2.containerd.wait_exit(&e2.container, &exec_id).await;
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
    Ok(Started::Running {
        tty,
        output,
        exited,
        stdin: attach_in.then(|| (e.container.clone(), id[..12].to_string(), e.stdin.clone())),
    })
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

/// Exec `id` for inspect: a finished one is then forgotten (inspect is what `docker exec`
/// does last, so the record has served).
pub fn inspect(d: &Daemon, id: &str) -> Result<Arc<Exec>, Error> {
    let e = d.execs.get(id)?;
    if e.finished.is_some() {
        d.execs.lock().remove(&e.id);
    }
    Ok(e)
}

/// Resizes the TTY of a container's process (`exec_id` empty) or of one of its execs.
pub async fn resize(
    d: &Daemon,
    container: &str,
    exec_id: &str,
    width: u32,
    height: u32,
) -> Result<(), Error> {
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
    Ok(())
}
