//! `docker exec` in the engine: exec instances (create, start, inspect, resize), run as extra
//! processes of the container's task through berth-containerd, with their own FIFOs under the
//! container's exec dir; their output goes to a channel the API relays to its client.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_proto::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest,
};
use bytes::Bytes;
use oci_spec::runtime::{Process, User};
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
pub fn process_spec(base: &Process, c: &ExecConfig, rootfs: &str) -> Result<Process, Error> {
    let mut p = base.clone();
    let tty = c.tty.unwrap_or(false);
    p.set_args(Some(c.cmd.clone().unwrap_or_default()));
    p.set_terminal(Some(tty));
    let mut env = p.env().clone().unwrap_or_default();
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
    p.set_env(Some(env));
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        p.set_cwd(w.into());
    }
    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid) =
            berth_oci::users::user(u, rootfs).map_err(|e| Error::invalid(e.to_string()))?;
        let mut user = User::default();
        user.set_uid(uid).set_gid(gid);
        p.set_user(user);
    }
    Ok(p)
}

/// Starts exec `id`, attached or detached (`tty` is the start's own TTY request), in phases:
/// claim the exec, check its container runs and build its process, open its FIFOs and pumps,
/// run it through berth-containerd, and wait for its end. A failure before the process runs
/// undoes all of it and leaves the exec startable again.
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
    let launched = launch(d, &e, detach, tty).await;
    if launched.is_err() {
        e.state.lock().unwrap_or_else(|p| p.into_inner()).0 = false;
    }
    launched
}

/// Whether exec `id` can start now (not started before, its container running), checked
/// before the API answers with the upgrade; its tty setting. `start` claims it afterwards.
pub async fn check_startable(d: &Daemon, id: &str, tty: bool) -> Result<bool, Error> {
    let e = d.execs.get(id)?;
    {
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 || e.exited.borrow().is_some() {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
    }
    // Only the state: `start` reads the container's process when it builds the exec's.
    running(&*d.containers.find(&e.container)?.lock().await)?;
    Ok(e.config.tty.unwrap_or(false) || tty)
}

/// An exec needs its container running.
fn running(rec: &crate::model::record::Record) -> Result<(), Error> {
    match rec.state.status {
        Status::Running => Ok(()),
        _ => Err(Error::conflict(format!(
            "Container {} is not running",
            rec.id
        ))),
    }
}

/// The container's process (the base of the exec's) and its rootfs path, if it runs.
async fn container_process(d: &Daemon, container: &str) -> Result<(Process, String), Error> {
    let h = d.containers.find(container)?;
    let rec = h.lock().await;
    running(&rec)?;
    let rootfs = crate::oci::rootfs::merged(&d.containers.dir(&rec.id));
    Ok((
        rec.spec.process().clone().unwrap_or_default(),
        rootfs.display().to_string(),
    ))
}

/// Builds the exec's process, opens its stdio and runs it; the exec is claimed.
async fn launch(d: &Arc<Daemon>, e: &Arc<Exec>, detach: bool, tty: bool) -> Result<Started, Error> {
    let c = &e.config;
    let tty = c.tty.unwrap_or(false) || tty;
    let (base, rootfs) = container_process(d, &e.container).await?;
    let process = process_spec(&base, c, &rootfs)?;
    let attach_in = c.attach_stdin.unwrap_or(false) && !detach;
    let io = ExecIo::open(d, e, tty, attach_in)?;
    let output = e.output.subscribe();
    let exited = e.exited.subscribe();
    let exec_id = e.id[..12].to_string();
    let pid = match run_process(d, e, &exec_id, &io, &process).await {
        Ok(pid) => pid,
        Err(s) => {
            // The runtime refused it: the exec has ended, with 126 (as dockerd records it).
            io.close().await;
            e.exited.send_replace(Some(126));
            d.execs.finish(e, 126);
            let message = format!("OCI runtime exec failed: {}", grpc(s).message());
            if detach {
                return Err(Error::internal(message));
            }
            return Ok(Started::Refused { tty, message });
        }
    };
    e.state.lock().unwrap_or_else(|p| p.into_inner()).1 = pid;
    tokio::spawn(wait_end(d.clone(), e.clone(), exec_id.clone(), io));
    Ok(Started::Running {
        tty,
        output,
        exited,
        stdin: attach_in.then(|| (e.container.clone(), exec_id, e.stdin.clone())),
    })
}

/// An exec's FIFOs under its container's exec dir and the pumps copying its output.
struct ExecIo {
    out: PathBuf,
    err: Option<PathBuf>,
    inp: Option<PathBuf>,
    tty: bool,
    drain: watch::Sender<bool>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl ExecIo {
    /// Makes the FIFOs (stderr only without a TTY, stdin only when attached) and starts the
    /// pumps; what was made is removed if one fails.
    fn open(d: &Daemon, e: &Exec, tty: bool, attach_in: bool) -> Result<ExecIo, Error> {
        let dir = stdio::fifo_dir(d, &e.container);
        std::fs::create_dir_all(&dir).map_err(|err| Error::internal(err.to_string()))?;
        let fifo = |s: &str| dir.join(format!("exec-{}-{s}", &e.id[..12]));
        let (drain, drain_rx) = watch::channel(false);
        let io = ExecIo {
            out: fifo("stdout"),
            err: (!tty).then(|| fifo("stderr")),
            inp: attach_in.then(|| fifo("stdin")),
            tty,
            drain,
            pumps: Vec::new(),
        };
        let made = io.paths().into_iter().try_for_each(|p| stdio::mkfifo(p));
        if let Err(err) = made {
            io.remove_files();
            return Err(err);
        }
        let mut io = io;
        let streams = [
            (Some(&io.out), Stream::Stdout),
            (io.err.as_ref(), Stream::Stderr),
        ];
        for (path, stream) in streams {
            if let Some(path) = path {
                let pump = stdio::pump(
                    path.clone(),
                    stream,
                    None,
                    e.output.clone(),
                    drain_rx.clone(),
                );
                io.pumps.push(tokio::spawn(pump));
            }
        }
        Ok(io)
    }

    fn paths(&self) -> Vec<&PathBuf> {
        std::iter::once(&self.out)
            .chain(self.err.as_ref())
            .chain(self.inp.as_ref())
            .collect()
    }

    fn remove_files(&self) {
        for f in self.paths() {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Lets the pumps take what is left, then removes the FIFOs.
    async fn close(self) {
        let _ = self.drain.send(true);
        for p in self.pumps {
            let _ = p.await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            let paths = [Some(self.out), self.err, self.inp];
            for f in paths.iter().flatten() {
                let _ = std::fs::remove_file(f);
            }
        })
        .await;
    }
}

/// Runs the exec's process in the container's task; its pid. An attached stdin's FIFO is
/// opened once the process runs (the shim opened its read end then).
async fn run_process(
    d: &Daemon,
    e: &Exec,
    exec_id: &str,
    io: &ExecIo,
    process: &Process,
) -> Result<u32, tonic::Status> {
    let mut tasks = d.containerd.tasks();
    let path = |p: Option<&PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
    tasks
        .exec(req(ExecProcessRequest {
            container_id: e.container.clone(),
            exec_id: exec_id.to_string(),
            stdin: path(io.inp.as_ref()),
            stdout: io.out.display().to_string(),
            stderr: path(io.err.as_ref()),
            terminal: io.tty,
            spec: serde_json::to_vec(process).unwrap_or_default(),
        }))
        .await?;
    berth_failpoint::point("exec.after-task-exec");
    let started = tasks
        .start(req(StartRequest {
            container_id: e.container.clone(),
            exec_id: exec_id.to_string(),
        }))
        .await;
    if let (Ok(_), Some(inp)) = (&started, &io.inp) {
        *e.stdin.lock().unwrap_or_else(|p| p.into_inner()) = stdio::open_writer(inp);
    }
    berth_failpoint::point("exec.after-start");
    Ok(started?.into_inner().pid)
}

/// Waits for the exec's end: drains its output, deletes its process in the task, removes its
/// FIFOs and records its exit code.
async fn wait_end(d: Arc<Daemon>, e: Arc<Exec>, exec_id: String, io: ExecIo) {
    let code = d.containerd.wait_exit(&e.container, &exec_id).await;
    let mut tasks = d.containerd.tasks();
    io.close().await;
    let _ = tasks
        .delete_process(req(DeleteProcessRequest {
            container_id: e.container.clone(),
            exec_id,
        }))
        .await;
    e.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
    e.state.lock().unwrap_or_else(|p| p.into_inner()).0 = false;
    e.exited.send_replace(Some(code));
    d.execs.finish(&e, code);
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
