//! Running containers through berth-containerd: start (rootfs, spec, FIFOs, task), the output
//! pumps (FIFO → json-file log + attached clients), exits (from containerd's event stream, with
//! Tasks.Wait as the truth), kill, stop, and removal. Per-container live state (`Live`) is kept
//! in memory while a task exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::host_config::HostConfig;
use berth_proto::v1::envelope::Event;
use berth_proto::v1::{
    CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, KillRequest, StartRequest, SubscribeRequest,
};
use bytes::Bytes;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use tokio::sync::{broadcast, watch};

use crate::containerd::{NAMESPACE, grpc, req};
use crate::engine::Daemon;
use crate::engine::logs::{LogWriter, Stream};
use crate::engine::stdio;
use crate::engine::store::Handle;
use crate::model::Error;
use crate::model::record::Status;

/// What berthd keeps in memory per container (from its first use until its removal).
pub struct Live {
    /// Output chunks for attached clients.
    pub output: broadcast::Sender<(Stream, Bytes)>,
    /// None while a run is in progress; Some(exit code) once it ended and its output drained.
    pub exited: watch::Sender<Option<i64>>,
    /// Turns true when the container is removed.
    pub removed: watch::Sender<bool>,
    /// The write end of the container's stdin FIFO, when it has one.
    pub stdin: Mutex<Option<std::fs::File>>,
}

#[derive(Default)]
pub struct Runs {
    live: Mutex<HashMap<String, Arc<Live>>>,
}

impl Runs {
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The container's live state, made on first use; `exit` is its last known exit code.
    pub fn ensure(&self, id: &str, exit: Option<i64>) -> Arc<Live> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Live {
                    output: broadcast::channel(stdio::OUTPUT_CHUNKS).0,
                    exited: watch::channel(exit).0,
                    removed: watch::channel(false).0,
                    stdin: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Forgets a removed container, telling whoever waits for its removal.
    pub fn forget(&self, id: &str) {
        if let Some(l) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            let _ = l.removed.send(true);
        }
    }
}

pub fn log_path(d: &Daemon, id: &str) -> PathBuf {
    d.containers.dir(id).join(format!("{id}-json.log"))
}

/// The container keeps no log (`--log-driver none`): its output goes only to attached clients.
pub fn logs_off(host_config: &HostConfig) -> bool {
    host_config.log_config.kind == "none"
}

/// The error of reading a log that is not kept, as dockerd words it.
pub fn no_log_reading() -> Error {
    Error::NotImplemented("configured logging driver does not support reading".into())
}

fn log_limits(host_config: &HostConfig) -> (Option<u64>, u32) {
    let opts = host_config.log_config.config.clone().unwrap_or_default();
    let size = opts.get("max-size").and_then(|s| parse_size(s));
    let files = opts
        .get("max-file")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (size, files)
}

/// Docker's size strings: `10m`, `1g`, `512k`, plain bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.find('k')?], 1u64 << 10),
        'm' => (&s[..s.find('m')?], 1 << 20),
        'g' => (&s[..s.find('g')?], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult as f64) as u64)
}

/// Starts a created or exited container, in phases: `prepare` makes the rootfs, FIFOs,
/// network and containerd's record at once; the output pumps start; `create_task` creates the
/// task while its endpoints are plugged in; `start_task` runs it; the record then says it runs.
/// What a phase made is in one `Made`, which any failure undoes.
pub async fn start(d: &Arc<Daemon>, h: &Handle) -> Result<(), Error> {
    let mut rec = h.lock().await;
    // A container waiting for its policy's restart starts now.
    if rec.running() && rec.state.status != Status::Restarting {
        return Err(Error::NotModified);
    }
    let id = rec.id.clone();
    let image = d.image_of(&rec)?;
    let image_config = crate::engine::health::image_config(d, &image.id);
    let mut made = Made::default();
    let pid = match launch(d, &mut rec, &image, &mut made).await {
        Ok(pid) => pid,
        Err(f) => {
            made.undo(d, &mut rec, f.recorded).await;
            return Err(f.error);
        }
    };
    berth_failpoint::point("start.after-task-start");
    let io = made.io.take();
    rec.state = crate::engine::store::State {
        status: Status::Running,
        pid,
        exit_code: 0,
        started_at: berth_clock::rfc3339_now(),
        finished_at: "0001-01-01T00:00:00Z".into(),
        oom_killed: false,
        error: String::new(),
        manually_stopped: false,
        quick_restarts: rec.state.quick_restarts,
        health: crate::engine::health::starting(&rec.config, &image_config),
    };
    d.containers.save_state(&rec)?;
    berth_failpoint::point("start.after-record");
    d.events.emit(
        "container",
        "start",
        &id,
        crate::engine::events::container_attrs(&rec, &[]),
    );
    let config = rec.config.clone();
    drop(rec);
    if let Some(io) = io {
        spawn_waiter(d, h, &id, io);
    }
    crate::engine::health::monitor(d, h, &config, &image_config, &id);
    Ok(())
}

/// Why a start failed: the caller's error, and what the record keeps of it (Docker's
/// `State.Error`, and the exit code of a run that never started) once the runtime had a say.
struct Failure {
    error: Error,
    recorded: Option<(String, Option<i64>)>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            recorded: None,
        }
    }
}

/// Where a container's run lives: its rootfs mount point and stdio FIFOs.
struct RunPaths {
    rootfs: PathBuf,
    fifos: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    stdin: PathBuf,
}

impl RunPaths {
    fn of(d: &Daemon, id: &str) -> RunPaths {
        let fifos = stdio::fifo_dir(d, id);
        RunPaths {
            rootfs: crate::oci::rootfs::merged(&d.containers.dir(id)),
            stdout: fifos.join("stdout"),
            stderr: fifos.join("stderr"),
            stdin: fifos.join("stdin"),
            fifos,
        }
    }
}

/// Every phase up to the running process; its pid.
async fn launch(
    d: &Arc<Daemon>,
    rec: &mut crate::engine::store::Record,
    image: &berth_image::images::ImageRecord,
    made: &mut Made,
) -> Result<u32, Failure> {
    let id = rec.id.clone();
    let paths = RunPaths::of(d, &id);
    let (spec, pending) = prepare(d, rec, image, &paths, made).await?;
    berth_failpoint::point("start.after-prepare");
    if let Some(t) = berth_failpoint::delay("start.after-prepare") {
        tokio::time::sleep(t).await;
    }
    tracing::debug!(id, "rootfs, network namespace and container record made");
    let live = d.runs.ensure(&id, None);
    live.exited.send_replace(None);
    made.live = Some(live.clone());
    made.io = Some(open_io(d, &id, rec.tty(), &rec.host_config)?);
    create_task(d, rec, &spec, &paths, pending, made).await?;
    tracing::debug!(id, "task created");
    berth_failpoint::point("start.after-task-create");
    let stdin = if rec.open_stdin() {
        crate::engine::stdio::open_writer(&paths.stdin)
    } else {
        None
    };
    *live.stdin.lock().unwrap_or_else(|p| p.into_inner()) = stdin;
    let started = d
        .containerd
        .tasks()
        .start(req(StartRequest {
            container_id: id.clone(),
            exec_id: String::new(),
        }))
        .await;
    match started {
        Ok(r) => Ok(r.into_inner().pid),
        Err(e) => Err(Failure {
            error: Error::invalid(format!("failed to start container: {}", e.message())),
            recorded: Some((e.message().to_string(), Some(127))),
        }),
    }
}

/// Makes the rootfs and FIFOs, the network and containerd's container record at once (the
/// spec names the rootfs and network namespace before they exist); the spec given to
/// containerd, and the endpoints still to plug in.
async fn prepare(
    d: &Arc<Daemon>,
    rec: &mut crate::engine::store::Record,
    image: &berth_image::images::ImageRecord,
    paths: &RunPaths,
    made: &mut Made,
) -> Result<(Spec, Option<crate::engine::endpoints::Pending>), Failure> {
    let id = rec.id.clone();
    // Legacy links need their containers running; their variables join the environment.
    let on_bridge = rec.networks.iter().any(|a| a.network == "bridge");
    let links = match on_bridge {
        true => crate::engine::links::resolve(d, rec)?,
        false => Vec::new(),
    };
    let netns = crate::engine::endpoints::planned(d, rec).await?;
    let mut spec = rec.spec.clone();
    if let Some(process) = spec.process_mut().as_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        for l in &links {
            env.extend(crate::engine::links::env(&rec.name, l));
        }
        process.set_env(Some(env));
    }
    if let Some(root) = spec.root_mut().as_mut() {
        root.set_path(paths.rootfs.clone());
    }
    if let Some(path) = &netns {
        let namespaces = spec
            .linux_mut()
            .as_mut()
            .and_then(|l| l.namespaces_mut().as_mut());
        for ns in namespaces.into_iter().flatten() {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(path.into()));
            }
        }
    }
    let containers = d.containerd.containers();
    let record = CreateContainerRequest {
        container: Some(Container {
            id: id.clone(),
            spec: serde_json::to_vec(&spec).unwrap_or_default(),
            runtime: String::new(),
            ..Default::default()
        }),
    };
    let files = {
        let (cdir, lowers, volatile) = (
            d.containers.dir(&id),
            d.images.layer_dirs(image),
            rec.auto_remove(),
        );
        let (fifos, out, err, inp) = (
            paths.fifos.clone(),
            paths.stdout.clone(),
            paths.stderr.clone(),
            paths.stdin.clone(),
        );
        let (tty, open_stdin) = (rec.tty(), rec.open_stdin());
        let subpaths = rec.subpaths.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            crate::oci::rootfs::mount(&cdir, &lowers, volatile)?;
            crate::volumes::stage_subpaths(&subpaths)?;
            std::fs::create_dir_all(&fifos).map_err(|e| Error::internal(e.to_string()))?;
            stdio::mkfifo(&out)?;
            if !tty {
                stdio::mkfifo(&err)?;
            }
            if open_stdin {
                stdio::mkfifo(&inp)?;
            }
            Ok(())
        })
    };
    let create_record = async {
        match containers.clone().create(req(record.clone())).await {
            // A stale record a crash left behind, with the task it may still have (the record
            // says the container does not run): replace it (the usual start pays no extra call).
            Err(e) if e.code() == tonic::Code::AlreadyExists => {
                d.containerd.drop_container(&id).await;
                containers.clone().create(req(record)).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    };
    let (files, network, created_record) = tokio::join!(
        files,
        crate::engine::endpoints::prepare(d, rec, &links),
        create_record
    );
    made.record = created_record.is_ok();
    made.network = network.is_ok();
    files.map_err(|e| Error::internal(e.to_string()))??;
    let pending = network?;
    created_record.map_err(grpc)?;
    Ok((spec, pending))
}

/// Creates the task while its endpoints are plugged into its namespace (before it, when the
/// runtime's create already needs them); its process only runs at Tasks.Start.
async fn create_task(
    d: &Arc<Daemon>,
    rec: &mut crate::engine::store::Record,
    spec: &Spec,
    paths: &RunPaths,
    mut pending: Option<crate::engine::endpoints::Pending>,
    made: &mut Made,
) -> Result<(), Failure> {
    // The runtime's create already needs the interfaces when the spec sets a sysctl of the
    // network namespace (`net.ipv4.conf.eth0.…`) or runs create-time hooks: plug them first.
    if let Some(p) = pending.take_if(|_| needs_network_at_create(spec)) {
        crate::engine::endpoints::plug(d, rec, p).await?;
    }
    let s = |p: &Path, on: bool| {
        if on {
            p.display().to_string()
        } else {
            String::new()
        }
    };
    let task = CreateTaskRequest {
        container_id: rec.id.clone(),
        rootfs: paths.rootfs.display().to_string(),
        stdin: s(&paths.stdin, rec.open_stdin()),
        stdout: paths.stdout.display().to_string(),
        stderr: s(&paths.stderr, !rec.tty()),
        terminal: rec.tty(),
    };
    let plugging = async {
        match pending {
            Some(p) => crate::engine::endpoints::plug(d, rec, p).await,
            None => Ok(()),
        }
    };
    let mut tasks = d.containerd.tasks();
    let (created, plugged) = tokio::join!(tasks.create(req(task)), plugging);
    made.task = created.is_ok();
    match (created, plugged) {
        (Ok(_), Ok(())) => Ok(()),
        (Ok(_), Err(e)) => Err(Failure {
            recorded: Some((e.message().to_string(), Some(127))),
            error: e,
        }),
        (Err(e), _) => Err(Failure {
            error: Error::invalid(format!(
                "failed to create task for container: {}",
                e.message()
            )),
            recorded: Some((e.message().to_string(), None)),
        }),
    }
}

/// Whether the runtime's create already uses the container's interfaces: a sysctl of one of
/// them (`net.ipv4.conf.eth0.…`, `net.ipv6.neigh.eth0.…`; not the namespace-wide ones every
/// container gets, nor `all`/`default`), or a hook run before the process starts.
fn needs_network_at_create(spec: &Spec) -> bool {
    let per_interface = |key: &str| {
        let parts: Vec<&str> = key.split('.').collect();
        parts.len() >= 5
            && parts[0] == "net"
            && matches!(parts[2], "conf" | "neigh")
            && !matches!(parts[3], "all" | "default")
    };
    let sysctl = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    let net_sysctl = sysctl.is_some_and(|m| m.keys().any(|k| per_interface(k)));
    let set = |h: &Option<Vec<_>>| h.as_ref().is_some_and(|a| !a.is_empty());
    #[allow(deprecated)] // `prestart`: runtimes still run it, so it still needs the network
    let hooks = spec
        .hooks()
        .as_ref()
        .is_some_and(|h| set(h.prestart()) || set(h.create_runtime()) || set(h.create_container()));
    net_sysctl || hooks
}

/// What a start has made so far. On any failure [`Made::undo`] removes it in reverse order,
/// so every failure path undoes the same way.
#[derive(Default)]
struct Made {
    /// berth-containerd's container record.
    record: bool,
    /// The network, prepared (and perhaps plugged).
    network: bool,
    /// The output pumps, once they run.
    io: Option<Io>,
    /// The task, once created.
    task: bool,
    /// The container's live state, once its run began (its waiters see the run end).
    live: Option<Arc<Live>>,
}

impl Made {
    /// Kills and deletes the task, records `failed` (the error and exit code of a run that
    /// never started), stops the pumps, deletes containerd's record, tears the network down,
    /// unmounts the rootfs and removes the FIFOs; waiters on `live` see the run end.
    async fn undo(
        self,
        d: &Arc<Daemon>,
        rec: &mut crate::engine::store::Record,
        failed: Option<(String, Option<i64>)>,
    ) {
        let id = rec.id.clone();
        if self.task {
            let mut tasks = d.containerd.tasks();
            let _ = tasks
                .kill(req(KillRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                    signal: 9,
                    all: true,
                }))
                .await;
            let _ = tasks
                .delete(req(DeleteTaskRequest {
                    container_id: id.clone(),
                }))
                .await;
        }
        if let Some((error, code)) = failed {
            rec.state.error = error;
            if let Some(code) = code {
                rec.state.exit_code = code;
            }
        }
        if self.task || !rec.state.error.is_empty() {
            let _ = d.containers.save_state(rec);
        }
        if let Some(io) = &self.io {
            let _ = io.drain.send(true);
        }
        if self.record {
            let _ = d
                .containerd
                .containers()
                .delete(req(DeleteContainerRequest { id: id.clone() }))
                .await;
        }
        if self.network {
            crate::engine::endpoints::teardown(d, rec).await;
        }
        crate::oci::rootfs::unmount(&d.containers.dir(&id));
        let _ = std::fs::remove_dir_all(stdio::fifo_dir(d, &id));
        if let Some(live) = &self.live {
            live.exited.send_replace(Some(rec.state.exit_code));
        }
    }
}

/// The output side of a run: the pumps and the log they write.
struct Io {
    pumps: Vec<tokio::task::JoinHandle<()>>,
    drain: watch::Sender<bool>,
    log: Option<Arc<Mutex<LogWriter>>>,
}

/// Starts pumping the container's FIFOs into its log and to attached clients.
fn open_io(d: &Daemon, id: &str, tty: bool, host_config: &HostConfig) -> Result<Io, Error> {
    let log = match logs_off(host_config) {
        true => None,
        false => {
            let (size, files) = log_limits(host_config);
            let log = LogWriter::open(&log_path(d, id), size, files)
                .map_err(|e| Error::internal(format!("opening the log: {e}")))?;
            Some(Arc::new(Mutex::new(log)))
        }
    };
    let out = d.runs.ensure(id, None).output.clone();
    let (drain, drain_rx) = watch::channel(false);
    let fifos = stdio::fifo_dir(d, id);
    let mut streams = vec![(fifos.join("stdout"), Stream::Stdout)];
    if !tty {
        streams.push((fifos.join("stderr"), Stream::Stderr));
    }
    let pumps = streams
        .into_iter()
        .map(|(p, s)| {
            tokio::spawn(stdio::pump(
                p,
                s,
                log.clone(),
                out.clone(),
                drain_rx.clone(),
            ))
        })
        .collect();
    Ok(Io { pumps, drain, log })
}

/// Waits on the task (the truth), then drains the output and records the exit.
fn spawn_waiter(d: &Arc<Daemon>, h: &Handle, id: &str, io: Io) {
    let (d2, h2, id2) = (d.clone(), h.clone(), id.to_string());
    tokio::spawn(async move {
        let code = d2.containerd.wait_exit(&id2, "").await;
        tracing::debug!(id = id2, code, "task exited");
        let _ = io.drain.send(true);
        for p in io.pumps {
            let _ = p.await;
        }
        tracing::debug!(id = id2, "output drained");
        if let Some(Ok(mut w)) = io.log.as_ref().map(|l| l.lock()) {
            let _ = w.flush_partial();
        }
        let remove = finish(&d2, &h2, code).await;
        tracing::debug!(id = id2, "finished");
        d2.runs.ensure(&id2, None).exited.send_replace(Some(code));
        if let Some(rec) = remove {
            remove_files(&d2, &rec);
            crate::engine::volumes::remove_anonymous(&d2, &rec.volumes).await;
            return;
        }
        restart_by_policy(&d2, &h2).await;
    });
}

/// Applies the restart policy after an exit: after the back-off, start again unless a user
/// stopped it meanwhile.
async fn restart_by_policy(d: &Arc<Daemon>, h: &Handle) {
    let Some(delay) = crate::engine::restart::begin(d, h).await else {
        return;
    };
    let (d, h) = (d.clone(), h.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if crate::engine::restart::due(&d, &h).await {
            let started = start(&d, &h).await;
            crate::engine::restart::ended(&d, &h, started).await;
        }
    });
}

/// At daemon start: containers whose policy says so are started again.
pub async fn start_by_policy(d: &Arc<Daemon>) {
    for h in d.containers.all() {
        let go = crate::engine::restart::wanted_at_daemon_start(&*h.lock().await);
        if go {
            if let Err(e) = start(d, &h).await {
                tracing::warn!(
                    error = e.message(),
                    "starting a container by its restart policy"
                );
            }
        }
    }
}

/// After a berthd restart: re-attach to the containers that still run (their output waited
/// in the FIFOs, held open by the shims), and record the exits that happened meanwhile.
pub async fn recover(d: &Arc<Daemon>) {
    for h in d.containers.all() {
        let (id, tty, running, hc) = {
            let mut r = h.lock().await;
            // One that was waiting for its policy's restart waits again (its exit code kept).
            if r.state.status == Status::Restarting {
                r.state.status = Status::Exited;
                let _ = d.containers.save_state(&r);
                drop(r);
                restart_by_policy(d, &h).await;
                continue;
            }
            (r.id.clone(), r.tty(), r.running(), r.host_config.clone())
        };
        if !running {
            continue;
        }
        let mut tasks = d.containerd.tasks();
        let alive = tasks
            .get(req(berth_proto::v1::GetRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }))
            .await
            .is_ok();
        d.runs.ensure(&id, None);
        match open_io(d, &id, tty, &hc) {
            Ok(io) if alive => {
                spawn_waiter(d, &h, &id, io);
                let (config, image_id) = {
                    let r = h.lock().await;
                    (r.config.clone(), r.image_id.clone())
                };
                let image_config = berth_image::Digest::parse(&image_id)
                    .map(|i| crate::engine::health::image_config(d, &i))
                    .unwrap_or_default();
                crate::engine::health::monitor(d, &h, &config, &image_config, &id);
            }
            Ok(io) => {
                let _ = io.drain.send(true);
                finish_lost(d, &h, &id).await;
            }
            Err(e) => tracing::warn!(id, error = e.message(), "re-attaching"),
        }
    }
}

/// A record that says it runs but whose task is gone (it ended while berthd was down, or the
/// shim died): finished with exit code 255, as dockerd does.
pub async fn finish_lost(d: &Arc<Daemon>, h: &Handle, id: &str) {
    let remove = finish(d, h, 255).await;
    d.runs.ensure(id, None).exited.send_replace(Some(255));
    if let Some(rec) = remove {
        remove_files(d, &rec);
    }
}

/// After an exit: delete the task, unmount, record the state. Returns the record when it is to
/// be removed (auto-remove).
async fn finish(d: &Arc<Daemon>, h: &Handle, code: i64) -> Option<crate::engine::store::Record> {
    let mut rec = h.lock().await;
    let id = rec.id.clone();
    rec.state.status = Status::Exited;
    rec.state.exit_code = code;
    rec.state.pid = 0;
    rec.state.finished_at = berth_clock::rfc3339_now();
    // The exit is recorded before the task goes: should berthd die in between, the record
    // keeps the real exit code and reconciliation removes the task, where a record still
    // "running" without a task would be finished again with 255. An auto-removed record is
    // deleted right after: writing it buys nothing (`recover` finishes it again).
    let keep = !rec.auto_remove();
    if keep {
        let _ = d.containers.save_state(&rec);
    }
    berth_failpoint::point("exit.after-record");
    let had_endpoints = rec.networks.iter().any(|a| a.endpoint.is_some()) || !rec.ports.is_empty();
    // The task's deletion (the runtime's delete, the shim's exit) and the host-side cleanup of
    // its rootfs mount, FIFOs and network run at once: the init is gone, and with it the
    // mount and network namespaces that used them.
    let task_gone = async {
        let mut tasks = d.containerd.tasks();
        let _ = tasks
            .delete(req(DeleteTaskRequest {
                container_id: id.clone(),
            }))
            .await;
        tracing::debug!(id, "task deleted");
        let mut containers = d.containerd.containers();
        let _ = containers
            .delete(req(DeleteContainerRequest { id: id.clone() }))
            .await;
        tracing::debug!(id, "container record deleted");
    };
    let host_side = async {
        crate::oci::rootfs::unmount(&d.containers.dir(&id));
        let _ = std::fs::remove_dir_all(stdio::fifo_dir(d, &id));
        crate::engine::endpoints::teardown(d, &mut rec).await;
        tracing::debug!(id, "rootfs unmounted, network torn down");
    };
    tokio::join!(task_gone, host_side);
    if keep && had_endpoints {
        let _ = d.containers.save_state(&rec);
    }
    d.events.emit(
        "container",
        "die",
        &id,
        crate::engine::events::container_attrs(&rec, &[("exitCode", code.to_string())]),
    );
    if let Some(l) = d.runs.get(&id) {
        l.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    rec.auto_remove().then(|| rec.clone())
}

/// Removes a stopped container's record, rootfs dirs and logs.
pub fn remove_files(d: &Daemon, rec: &crate::engine::store::Record) {
    crate::oci::rootfs::unmount(&d.containers.dir(&rec.id));
    let _ = std::fs::remove_dir_all(stdio::fifo_dir(d, &rec.id));
    d.containers.remove(rec);
    d.execs.remove_of(&rec.id);
    d.runs.forget(&rec.id);
    d.events.emit(
        "container",
        "destroy",
        &rec.id,
        crate::engine::events::container_attrs(rec, &[]),
    );
}

/// Sends a signal to the container's processes. While berth-containerd is being restarted
/// (it answers `Unavailable`), the signal is retried for a few seconds.
pub async fn kill(d: &Arc<Daemon>, id: &str, signal: u32) -> Result<(), Error> {
    let mut tasks = d.containerd.tasks();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let sent = tasks
            .kill(req(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all: false,
            }))
            .await;
        match sent {
            Ok(_) => return Ok(()),
            Err(e)
                if e.code() == tonic::Code::Unavailable && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(grpc(e)),
        }
    }
}

/// Waits for the running container `id` to exit, at most `timeout` (None = forever).
pub async fn wait_exit(d: &Daemon, id: &str, timeout: Option<Duration>) -> Option<i64> {
    let live = d.runs.ensure(id, None);
    let mut rx = live.exited.subscribe();
    let fut = async {
        loop {
            if let Some(c) = *rx.borrow() {
                return Some(c);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.ok().flatten(),
        None => fut.await,
    }
}

/// Stops a container: its stop signal, then SIGKILL after `timeout` seconds.
pub async fn stop(
    d: &Arc<Daemon>,
    h: &Handle,
    timeout: Option<i64>,
    signal: Option<u32>,
) -> Result<(), Error> {
    let (id, running, signal, default_timeout) = {
        let rec = h.lock().await;
        let sig = signal
            .or_else(|| signal_number(&rec.config.stop_signal))
            .unwrap_or(15);
        let t = rec.config.stop_timeout.unwrap_or(10);
        (rec.id.clone(), rec.running(), sig, t)
    };
    // Even when it is not running — between an exit and its restart policy's delayed start —
    // a stop is the user's word: the pending restart must not happen.
    if crate::engine::restart::cancel_restart(d, h).await {
        return Ok(());
    }
    crate::engine::restart::mark_manually_stopped(d, h).await;
    if !running {
        return Err(Error::NotModified);
    }
    let t = timeout.unwrap_or(default_timeout);
    if t != 0 {
        let _ = kill(d, &id, signal).await;
    }
    berth_failpoint::point("stop.after-signal");
    let graceful = if t < 0 {
        None
    } else {
        Some(Duration::from_secs(t as u64))
    };
    if t == 0 || wait_exit(d, &id, graceful).await.is_none() {
        // A kill that fails, or a process that outlives SIGKILL, is the user's to know (the
        // container is not stopped): never a 204 for a container still running.
        if let Err(e @ Error::Internal { .. }) = kill(d, &id, 9).await {
            return Err(Error::internal(format!(
                "Cannot kill container: {id}: {}",
                e.message()
            )));
        }
        if wait_exit(d, &id, Some(Duration::from_secs(30)))
            .await
            .is_none()
        {
            return Err(Error::internal(format!(
                "Cannot stop container {id}: it did not exit after SIGKILL"
            )));
        }
    }
    Ok(())
}

/// Closes the container's stdin (the attached client's stdin ended).
pub async fn close_stdin(d: &Arc<Daemon>, id: &str) {
    if let Some(l) = d.runs.get(id) {
        l.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    let mut tasks = d.containerd.tasks();
    let _ = tasks
        .close_io(req(CloseIoRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            stdin: true,
        }))
        .await;
}

/// Signal names and numbers as Docker accepts them (`SIGTERM`, `TERM`, `15`).
pub fn signal_number(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.to_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let table = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Watches containerd's events to log them; exits are handled by each container's waiter.
pub async fn watch_events(d: Arc<Daemon>) {
    loop {
        let mut ev = d.containerd.events();
        if let Ok(s) = ev
            .subscribe(SubscribeRequest {
                filters: vec![format!("namespace=={NAMESPACE}")],
            })
            .await
        {
            let mut s = s.into_inner();
            while let Ok(Some(e)) = s.message().await {
                if let Some(Event::Oom(o)) = e.event {
                    if let Ok(h) = d.containers.find(&o.container_id) {
                        let mut rec = h.lock().await;
                        rec.state.oom_killed = true;
                        let _ = d.containers.save_state(&rec);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::needs_network_at_create;

    #[test]
    fn only_interface_sysctls_and_create_hooks_need_the_network_at_create() {
        let spec = |sysctl: serde_json::Value,
                    hooks: serde_json::Value|
         -> oci_spec::runtime::Spec {
            let v = serde_json::json!({"ociVersion": "1.2.0", "linux": {"sysctl": sysctl}, "hooks": hooks});
            serde_json::from_value(v).unwrap()
        };
        let defaults = serde_json::json!({
            "net.ipv4.ping_group_range": "0 2147483647",
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.conf.all.forwarding": "1",
        });
        assert!(!needs_network_at_create(&spec(
            defaults,
            serde_json::json!({})
        )));
        assert!(needs_network_at_create(&spec(
            serde_json::json!({"net.ipv4.conf.eth0.route_localnet": "1"}),
            serde_json::json!({})
        )));
        assert!(needs_network_at_create(&spec(
            serde_json::json!({}),
            serde_json::json!({"createRuntime": [{"path": "/bin/true"}]})
        )));
        assert!(!needs_network_at_create(&spec(
            serde_json::json!({}),
            serde_json::json!({"poststart": [{"path": "/bin/true"}]})
        )));
    }
}
