//! The live tasks: one per container that has a shim (or had one whose exit is not yet
//! collected). Each task's directory `<state>/tasks/<ns>/<id>/` is its OCI bundle and the whole
//! of its durable state: `config.json`, `task.json` (how it was created, see [`TaskMeta`]), the
//! shim's `shim.sock` and `exit.json`, and `exit.published` once its exit event went out (so a
//! restart neither loses nor repeats it). [`Registry::recover`] rebuilds everything from those
//! directories and the shims that still answer.
//!
//! Event order per task is created → started → exited → deleted: every transition that emits an
//! event holds the task's `life` lock while it acts and publishes.

use berth_shim_protocol::{ErrorKind, Request as ShimRequest};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::envelope::Event;
use berth_proto::v1::{TaskCreated, TaskDeleted, TaskExit, TaskOom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tonic::Status;

use crate::events::Publisher;
use crate::shim_client::{self, Exit, Launch, Shim, ShimError};
use crate::store::Record;

/// How a task was created, written to `task.json` before its shim starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskMeta {
    pub namespace: String,
    pub id: String,
    pub runtime: String,
    pub rootfs: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// The init's pid and the shim's, once the shim reported them (0 before).
    pub pid: u32,
    pub shim_pid: u32,
}

/// An exec added but not started yet.
#[derive(Debug, Clone)]
pub struct PendingExec {
    pub spec: Value,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// A started exec as far as this daemon has seen it.
#[derive(Debug, Clone, Copy)]
pub struct ExecInfo {
    pub pid: u32,
    pub exit: Option<Exit>,
}

/// The mutable side of a task; its lock orders the task's events.
#[derive(Debug, Default)]
pub struct Life {
    /// The init's exit, once known.
    pub exit: Option<Exit>,
    pub exit_published: bool,
    /// The shim died: the task can only be deleted (its exit is `exit`).
    pub shim_gone: bool,
    pub deleted: bool,
    pub pending: HashMap<String, PendingExec>,
    pub execs: HashMap<String, ExecInfo>,
}

pub struct Task {
    pub meta: TaskMeta,
    pub dir: PathBuf,
    pub shim: Shim,
    pub life: tokio::sync::Mutex<Life>,
}

impl Task {
    pub fn runtime_bin(&self) -> PathBuf {
        shim_client::find_binary(&self.meta.runtime)
    }
}

type Key = (String, String);

#[derive(Default)]
struct Table {
    tasks: HashMap<Key, Arc<Task>>,
    creating: HashSet<Key>,
}

pub struct Registry {
    state: PathBuf,
    pub publisher: Publisher,
    table: std::sync::Mutex<Table>,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn internal(action: &str, path: &Path, e: impl std::fmt::Display) -> Status {
    tracing::error!(path = %path.display(), error = %e, "{action}");
    Status::internal(format!("{action} {}: {e}", path.display()))
}

/// Maps a shim failure to the caller's status by the kind the shim gave it; the runtime's own
/// words are kept.
pub fn shim_status(e: ShimError) -> Status {
    match e {
        ShimError::Gone { .. } => Status::failed_precondition(e.to_string()),
        ShimError::Failed { kind, message } => match kind {
            ErrorKind::NotFound => Status::not_found(message),
            ErrorKind::InvalidArgument => Status::invalid_argument(message),
            ErrorKind::FailedPrecondition => Status::failed_precondition(message),
        },
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Frees a reserved id when a create fails half-way.
struct Reservation<'a> {
    reg: &'a Registry,
    key: Key,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.reg.table.lock() {
            t.creating.remove(&self.key);
        }
    }
}

impl Registry {
    pub fn new(state: &Path, publisher: Publisher) -> Self {
        Registry {
            state: state.to_path_buf(),
            publisher,
            table: Default::default(),
        }
    }

    fn task_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("tasks").join(ns).join(id)
    }

    pub fn runtime_root(&self, ns: &str) -> PathBuf {
        self.state.join("runc").join(ns)
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Arc<Task>, Status> {
        let t = self
            .table
            .lock()
            .map_err(|_| Status::internal("task table poisoned"))?;
        t.tasks
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("task {id} not found in namespace {ns}")))
    }

    pub fn list(&self, ns: &str) -> Vec<Arc<Task>> {
        let Ok(t) = self.table.lock() else {
            return Vec::new();
        };
        let mut v: Vec<Arc<Task>> = t
            .tasks
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, t)| t.clone())
            .collect();
        v.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        v
    }

    fn reserve(&self, ns: &str, id: &str) -> Result<Reservation<'_>, Status> {
        let key = (ns.to_string(), id.to_string());
        let mut t = self
            .table
            .lock()
            .map_err(|_| Status::internal("task table poisoned"))?;
        if t.tasks.contains_key(&key) || !t.creating.insert(key.clone()) {
            return Err(Status::already_exists(format!(
                "task {id} already exists in namespace {ns}"
            )));
        }
        Ok(Reservation { reg: self, key })
    }

    fn insert(&self, task: Arc<Task>) {
        if let Ok(mut t) = self.table.lock() {
            let key = (task.meta.namespace.clone(), task.meta.id.clone());
            t.creating.remove(&key);
            t.tasks.insert(key, task);
        }
    }

    fn remove(&self, task: &Task) {
        if let Ok(mut t) = self.table.lock() {
            t.tasks
                .remove(&(task.meta.namespace.clone(), task.meta.id.clone()));
        }
    }

    /// Creates the task of container `rec`: writes its bundle, starts its shim (which has the
    /// runtime create the container) and watches it. On failure nothing is left.
    pub async fn create(
        self: &Arc<Self>,
        rec: &Record,
        mut meta: TaskMeta,
    ) -> Result<Arc<Task>, Status> {
        let (ns, id) = (meta.namespace.clone(), meta.id.clone());
        let reservation = self.reserve(&ns, &id)?;
        let dir = self.task_dir(&ns, &id);
        let socket = dir.join("shim.sock");
        let mut spec = rec.spec.clone();
        if !meta.rootfs.is_empty() {
            if !meta.rootfs.starts_with('/') {
                return Err(Status::invalid_argument(format!(
                    "rootfs {:?} is not an absolute path",
                    meta.rootfs
                )));
            }
            let root = spec
                .as_object_mut()
                .ok_or_else(|| Status::invalid_argument("the container's spec is not an object"))?
                .entry("root")
                .or_insert_with(|| json!({}));
            root["path"] = json!(meta.rootfs);
        }
        match spec.pointer("/root/path").and_then(Value::as_str) {
            Some(p) if p.starts_with('/') => {}
            _ => {
                return Err(Status::invalid_argument(
                    "no rootfs: give one in the request or an absolute root.path in the spec",
                ));
            }
        }
        if dir.exists() {
            // A leftover of a create that crashed before its shim answered.
            self.clean_stale(&ns, &id, &dir, &meta.runtime).await;
        }
        let runtime_root = self.runtime_root(&ns);
        let prepared = (|| {
            std::fs::create_dir_all(&runtime_root)?;
            std::fs::create_dir_all(&dir)?;
            write_atomic(&dir.join("config.json"), &serde_json::to_vec(&spec)?)?;
            write_atomic(&dir.join("task.json"), &serde_json::to_vec(&meta)?)
        })();
        if let Err(e) = prepared {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(internal("preparing", &dir, e));
        }
        let launched = shim_client::launch(&Launch {
            id: &id,
            task_dir: &dir,
            runtime: &meta.runtime,
            runtime_root: &runtime_root,
            stdin: &meta.stdin,
            stdout: &meta.stdout,
            stderr: &meta.stderr,
            terminal: meta.terminal,
        })
        .await;
        let report = match launched {
            Ok(r) => r,
            Err(e) => {
                // The shim may have died after the runtime made the container (its init,
                // cgroups and state): the runtime removes what it has of it.
                self.force_delete(&ns, &id, &meta.runtime).await;
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Status::failed_precondition(e.to_string()));
            }
        };
        berth_failpoint::point("containerd.create.after-shim");
        meta.pid = report.pid;
        meta.shim_pid = report.shim_pid;
        if let Ok(bytes) = serde_json::to_vec(&meta) {
            let _ = write_atomic(&dir.join("task.json"), &bytes);
        }
        let task = Arc::new(Task {
            shim: Shim {
                id: id.clone(),
                socket,
            },
            meta,
            dir,
            life: Default::default(),
        });
        // Published before anyone can see the task, so `created` is always first.
        self.publisher.publish(
            &ns,
            Event::Created(TaskCreated {
                container_id: id,
                pid: report.pid,
            }),
        );
        self.insert(task.clone());
        drop(reservation);
        self.watch(&task, 0);
        Ok(task)
    }

    /// Starts the two watchers of a task: its init's exit and its OOM kills.
    fn watch(self: &Arc<Self>, task: &Arc<Task>, oom_seen: u64) {
        let (reg, t) = (self.clone(), task.clone());
        tokio::spawn(async move {
            let exit = match t.shim.wait(None).await {
                Ok(e) => e,
                Err(ShimError::Gone { .. }) => {
                    // The shim died: the container lost its parent and its stdio keeper.
                    let exit = reg.bury(&t).await;
                    t.life.lock().await.shim_gone = true;
                    exit
                }
                Err(ShimError::Failed { message, .. }) => {
                    tracing::warn!(id = t.meta.id, error = message, "waiting for the init");
                    return;
                }
            };
            reg.record_exit(&t, exit).await;
        });
        let t = task.clone();
        let publisher = self.publisher.clone();
        tokio::spawn(async move {
            let mut seen = oom_seen;
            loop {
                let req = ShimRequest::OomWait { after: seen };
                let Ok(v) = t.shim.call(&req).await else {
                    return; // the shim is gone or does not watch for OOM
                };
                let count = v.get("oom_count").and_then(Value::as_u64).unwrap_or(0);
                if count <= seen {
                    return;
                }
                seen = count;
                // Under the task's lock, as the start publishes: an OOM kill that comes as the
                // process starts is still published after `/tasks/start`.
                let _life = t.life.lock().await;
                publisher.publish(
                    &t.meta.namespace,
                    Event::Oom(TaskOom {
                        container_id: t.meta.id.clone(),
                    }),
                );
            }
        });
    }

    /// Records the init's exit and publishes it once (ever, across restarts).
    pub async fn record_exit(&self, task: &Task, exit: Exit) {
        let mut life = task.life.lock().await;
        self.publish_exit(task, &mut life, exit);
    }

    /// Publishes the init's exit unless it went out before; the caller holds `life`.
    pub fn publish_exit(&self, task: &Task, life: &mut Life, exit: Exit) {
        life.exit.get_or_insert(exit);
        if life.exit_published || life.deleted {
            return;
        }
        life.exit_published = true;
        let _ = std::fs::write(task.dir.join("exit.published"), b"");
        self.publisher.publish(
            &task.meta.namespace,
            Event::Exit(TaskExit {
                container_id: task.meta.id.clone(),
                exec_id: String::new(),
                pid: task.meta.pid,
                exit_status: exit.status,
                exited_at_unix_nanos: exit.at_unix_nanos,
            }),
        );
    }

    /// Waits (in the background) for an exec to exit, then records and publishes its exit.
    pub fn watch_exec(self: &Arc<Self>, task: &Arc<Task>, exec_id: &str) {
        let (reg, t, eid) = (self.clone(), task.clone(), exec_id.to_string());
        tokio::spawn(async move {
            let Ok(exit) = t.shim.wait(Some(&eid)).await else {
                return;
            };
            reg.record_exec_exit(&t, &eid, exit).await;
        });
    }

    /// Records an exec's exit and publishes it once (across restarts too: a marker file in the
    /// task dir says it went out).
    pub async fn record_exec_exit(&self, task: &Task, exec_id: &str, exit: Exit) {
        let mut life = task.life.lock().await;
        let Some(info) = life.execs.get_mut(exec_id) else {
            return;
        };
        if info.exit.is_some() {
            return;
        }
        info.exit = Some(exit);
        let pid = info.pid;
        let marker = exec_published_marker(&task.dir, exec_id);
        if marker.exists() {
            return;
        }
        let _ = std::fs::write(&marker, b"");
        self.publisher.publish(
            &task.meta.namespace,
            Event::Exit(TaskExit {
                container_id: task.meta.id.clone(),
                exec_id: exec_id.to_string(),
                pid,
                exit_status: exit.status,
                exited_at_unix_nanos: exit.at_unix_nanos,
            }),
        );
    }

    /// For a task whose shim is gone: removes what the runtime still holds (killing an orphaned
    /// container) and returns the recorded exit, or 255 when the shim died before writing one.
    async fn bury(&self, task: &Task) -> Exit {
        self.force_delete(&task.meta.namespace, &task.meta.id, &task.meta.runtime)
            .await;
        Exit::read_file(&task.dir.join("exit.json")).unwrap_or(Exit {
            status: 255,
            at_unix_nanos: now_nanos(),
        })
    }

    /// `RUNTIME delete --force ID`, ignoring "does not exist".
    async fn force_delete(&self, ns: &str, id: &str, runtime: &str) {
        #[allow(clippy::disallowed_methods)] // the OCI runtime CLI, for a container without shim
        let mut cmd = std::process::Command::new(shim_client::find_binary(runtime));
        cmd.arg("--root")
            .arg(self.runtime_root(ns))
            .args(["delete", "--force", id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let _ = tokio::task::spawn_blocking(move || cmd.status()).await;
    }

    async fn clean_stale(&self, ns: &str, id: &str, dir: &Path, runtime: &str) {
        tracing::warn!(dir = %dir.display(), "removing a half-created task");
        let shim = Shim {
            id: id.to_string(),
            socket: dir.join("shim.sock"),
        };
        if shim.call_final(&ShimRequest::Shutdown).await.is_err() {
            self.force_delete(ns, id, runtime).await;
        }
        remove_task_dir(dir).await;
    }

    /// Deletes a task: the shim deletes the container and exits; its directory goes. Returns the
    /// init's exit. A running task is refused (the runtime's error).
    pub async fn delete(&self, task: &Arc<Task>) -> Result<Exit, Status> {
        let mut life = task.life.lock().await;
        if life.deleted {
            return Err(Status::not_found(format!(
                "task {} not found",
                task.meta.id
            )));
        }
        let exit = if life.shim_gone {
            match life.exit {
                Some(e) => e,
                None => self.bury(task).await,
            }
        } else {
            match task
                .shim
                .call_final(&ShimRequest::Delete { exec_id: None })
                .await
            {
                Ok(v) => Exit::from_json(&v).unwrap_or(Exit {
                    status: 255,
                    at_unix_nanos: now_nanos(),
                }),
                Err(ShimError::Gone { .. }) => self.bury(task).await,
                Err(e) => return Err(shim_status(e)),
            }
        };
        berth_failpoint::point("containerd.delete.after-shim");
        self.publish_exit(task, &mut life, exit);
        life.deleted = true;
        // `call_final` returned once the shim exited (its socket removed first); a shim that
        // was already gone leaves nothing behind that still writes in the directory.
        remove_task_dir(&task.dir).await;
        self.remove(task);
        self.publisher.publish(
            &task.meta.namespace,
            Event::Deleted(TaskDeleted {
                container_id: task.meta.id.clone(),
                exit_status: exit.status,
            }),
        );
        Ok(exit)
    }

    /// Rebuilds the task table from `<state>/tasks`: live shims are re-attached, dead ones'
    /// containers cleaned up and kept with their recorded exit until deleted.
    pub async fn recover(self: &Arc<Self>) {
        let root = self.state.join("tasks");
        let Ok(namespaces) = std::fs::read_dir(&root) else {
            return;
        };
        for ns_entry in namespaces.flatten() {
            let ns = ns_entry.file_name().to_string_lossy().into_owned();
            let Ok(entries) = std::fs::read_dir(ns_entry.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                self.recover_one(&ns, &id, &e.path()).await;
            }
        }
    }

    async fn recover_one(self: &Arc<Self>, ns: &str, id: &str, dir: &Path) {
        let meta: Option<TaskMeta> = std::fs::read(dir.join("task.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &TaskMeta| m.namespace == ns && m.id == id);
        let Some(mut meta) = meta else {
            self.clean_stale(ns, id, dir, "berth-runc").await;
            return;
        };
        let shim = Shim {
            id: id.to_string(),
            socket: dir.join("shim.sock"),
        };
        let state = shim.call(&ShimRequest::State).await;
        let mut life = Life {
            exit_published: dir.join("exit.published").exists(),
            ..Default::default()
        };
        let mut oom_seen = 0;
        match &state {
            Ok(st) => {
                meta.pid = st.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
                oom_seen = st.get("oom_count").and_then(Value::as_u64).unwrap_or(0);
                tracing::info!(namespace = ns, id, "re-attached to a live shim");
            }
            Err(_) if meta.pid == 0 => {
                // Crashed while the shim was starting and the shim did not survive.
                self.clean_stale(ns, id, dir, &meta.runtime).await;
                return;
            }
            Err(_) => {
                tracing::warn!(
                    namespace = ns,
                    id,
                    "the shim is gone; cleaning up its container"
                );
                life.shim_gone = true;
            }
        }
        let task = Arc::new(Task {
            meta,
            dir: dir.to_path_buf(),
            shim,
            life: tokio::sync::Mutex::new(life),
        });
        if let Ok(st) = &state {
            self.insert(task.clone());
            self.watch(&task, oom_seen);
            self.readopt_execs(&task, st).await;
        } else {
            let exit = self.bury(&task).await;
            self.record_exit(&task, exit).await;
            self.insert(task);
        }
    }
}

impl Registry {
    /// After a restart: takes back the execs the shim still holds (from its `state`), waits for
    /// the running ones and publishes the exits that happened while nobody listened.
    async fn readopt_execs(self: &Arc<Self>, task: &Arc<Task>, state: &Value) {
        let execs = state.get("execs").and_then(Value::as_array);
        for e in execs.into_iter().flatten() {
            let Some(eid) = e.get("exec_id").and_then(Value::as_str) else {
                continue;
            };
            let pid = e.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
            let exited = e.get("exit_status").is_some().then(|| {
                Exit::from_json(&json!({
                    "status": e["exit_status"],
                    "exited_at": e.get("exited_at").cloned().unwrap_or_default(),
                }))
                .unwrap_or(Exit {
                    status: 255,
                    at_unix_nanos: 0,
                })
            });
            task.life
                .lock()
                .await
                .execs
                .insert(eid.to_string(), ExecInfo { pid, exit: None });
            match exited {
                Some(exit) => self.record_exec_exit(task, eid, exit).await,
                None => self.watch_exec(task, eid),
            }
        }
    }
}

/// The file that says an exec's exit event went out.
pub fn exec_published_marker(task_dir: &Path, exec_id: &str) -> PathBuf {
    task_dir.join(format!("exec-{exec_id}.exit.published"))
}

/// Removes a task directory, retrying briefly while a departing shim still touches it.
async fn remove_task_dir(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    tracing::warn!(dir = %dir.display(), "could not remove the task directory");
}
