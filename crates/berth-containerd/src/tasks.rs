//! The Tasks service: the running side of each container (its init and execs), driven through
//! the container's shim. Lifecycle transitions go through the [`Registry`]; the rest is a thin
//! translation to the shim's protocol, or for metrics to the runtime's `events --stats`.

use berth_shim_protocol::Request as ShimRequest;
use std::sync::Arc;

use berth_proto::v1::envelope::Event;
use berth_proto::v1::tasks_server::Tasks;
use berth_proto::v1::{
    CloseIoRequest, CreateTaskRequest, CreateTaskResponse, DeleteProcessRequest, DeleteResponse,
    DeleteTaskRequest, Empty, ExecAdded, ExecProcessRequest, ExecStarted, GetRequest, GetResponse,
    KillRequest, ListPidsRequest, ListPidsResponse, ListTasksRequest, ListTasksResponse,
    MetricsRequest, MetricsResponse, PauseTaskRequest, Process, ResizePtyRequest,
    ResumeTaskRequest, StartRequest, StartResponse, Status as TaskStatus, TaskPaused, TaskResumed,
    TaskStarted, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::containers::{namespace_of, to_status};
use crate::metrics;
use crate::registry::{ExecInfo, PendingExec, Registry, Task, TaskMeta, shim_status};
use crate::shim_client::{Exit, ShimError};
use crate::store::Store;

pub struct TasksService {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
}

fn exec_key(exec_id: &str) -> Option<&str> {
    (!exec_id.is_empty()).then_some(exec_id)
}

fn parse_status(s: &str) -> TaskStatus {
    match s {
        "created" => TaskStatus::Created,
        "running" => TaskStatus::Running,
        "paused" | "pausing" => TaskStatus::Paused,
        "stopped" => TaskStatus::Stopped,
        _ => TaskStatus::Unknown,
    }
}

fn valid_exec_id(exec_id: &str) -> Result<(), Status> {
    let ok = !exec_id.is_empty()
        && exec_id.len() <= 64
        && exec_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid exec id {exec_id:?}: use 1-64 of [A-Za-z0-9_.-]"
        )))
    }
}

/// The init process of a task as the shim (or, for a dead shim, the record) reports it.
async fn init_process(task: &Task) -> Process {
    let m = &task.meta;
    let mut p = Process {
        id: m.id.clone(),
        exec_id: String::new(),
        pid: m.pid,
        status: TaskStatus::Unknown as i32,
        terminal: m.terminal,
        stdin: m.stdin.clone(),
        stdout: m.stdout.clone(),
        stderr: m.stderr.clone(),
        exit_status: 0,
        exited_at_unix_nanos: 0,
    };
    let recorded = {
        let life = task.life.lock().await;
        if life.shim_gone { life.exit } else { None }
    };
    let state = match recorded {
        Some(_) => None,
        None => task.shim.call(&ShimRequest::State).await.ok(),
    };
    match state {
        Some(st) => {
            p.status = parse_status(st["status"].as_str().unwrap_or("")) as i32;
            if let Some(e) = Exit::from_json(&json!({
                "status": st.get("exit_status"),
                "exited_at": st.get("exited_at"),
            })) {
                p.exit_status = e.status;
                p.exited_at_unix_nanos = e.at_unix_nanos;
            }
        }
        None => {
            let exit = recorded.or_else(|| Exit::read_file(&task.dir.join("exit.json")));
            p.status = TaskStatus::Stopped as i32;
            if let Some(e) = exit {
                p.exit_status = e.status;
                p.exited_at_unix_nanos = e.at_unix_nanos;
            }
        }
    }
    p
}

impl TasksService {
    fn task<T>(&self, req: &Request<T>, id: &str) -> Result<Arc<Task>, Status> {
        let ns = namespace_of(req)?;
        self.registry.get(&ns, id)
    }

    async fn start_exec(&self, task: &Arc<Task>, exec_id: &str) -> Result<u32, Status> {
        let mut life = task.life.lock().await;
        let pending = life.pending.remove(exec_id).ok_or_else(|| {
            Status::not_found(format!(
                "exec {exec_id} of task {} was not added",
                task.meta.id
            ))
        })?;
        let req = ShimRequest::Exec {
            exec_id: exec_id.to_string(),
            process: pending.spec.clone(),
            stdin: Some(pending.stdin.clone()),
            stdout: Some(pending.stdout.clone()),
            stderr: Some(pending.stderr.clone()),
            terminal: pending.terminal,
        };
        let v = task.shim.call(&req).await.map_err(shim_status)?;
        let pid = v.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
        life.execs
            .insert(exec_id.to_string(), ExecInfo { pid, exit: None });
        let ns = task.meta.namespace.clone();
        self.registry.publisher.publish(
            &ns,
            Event::ExecStarted(ExecStarted {
                container_id: task.meta.id.clone(),
                exec_id: exec_id.to_string(),
                pid,
            }),
        );
        drop(life);
        self.registry.watch_exec(task, exec_id);
        Ok(pid)
    }
}

#[tonic::async_trait]
impl Tasks for TasksService {
    async fn create(
        &self,
        req: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        let ns = namespace_of(&req)?;
        let r = req.into_inner();
        let rec = self.store.get(&ns, &r.container_id).map_err(to_status)?;
        let meta = TaskMeta {
            namespace: ns,
            id: r.container_id.clone(),
            runtime: rec.runtime.clone(),
            rootfs: r.rootfs,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: if r.terminal { String::new() } else { r.stderr },
            terminal: r.terminal,
            pid: 0,
            shim_pid: 0,
        };
        // Carried to its end even when the caller goes away meanwhile (a crashed berthd): a
        // create cut in the middle would leave its shim and container running with no task
        // to find them by. A task nobody wanted is then removed by the caller's reconciliation.
        let registry = self.registry.clone();
        let task = tokio::spawn(async move { registry.create(&rec, meta).await })
            .await
            .map_err(|e| Status::internal(format!("creating the task: {e}")))??;
        Ok(Response::new(CreateTaskResponse {
            container_id: r.container_id,
            pid: task.meta.pid,
        }))
    }

    async fn start(&self, req: Request<StartRequest>) -> Result<Response<StartResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        if let Some(eid) = exec_key(&r.exec_id) {
            let pid = self.start_exec(&task, eid).await?;
            return Ok(Response::new(StartResponse { pid }));
        }
        let life = task.life.lock().await;
        if life.shim_gone || life.exit.is_some() {
            return Err(Status::failed_precondition(format!(
                "task {} has already exited",
                task.meta.id
            )));
        }
        task.shim
            .call(&ShimRequest::Start)
            .await
            .map_err(shim_status)?;
        berth_failpoint::point("containerd.start.after-shim");
        self.registry.publisher.publish(
            &task.meta.namespace,
            Event::Started(TaskStarted {
                container_id: task.meta.id.clone(),
                pid: task.meta.pid,
            }),
        );
        drop(life);
        Ok(Response::new(StartResponse { pid: task.meta.pid }))
    }

    async fn delete(
        &self,
        req: Request<DeleteTaskRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        // As a create: never left half done by a caller that went away.
        let (registry, deleting) = (self.registry.clone(), task.clone());
        let exit = tokio::spawn(async move { registry.delete(&deleting).await })
            .await
            .map_err(|e| Status::internal(format!("deleting the task: {e}")))??;
        Ok(Response::new(DeleteResponse {
            id: task.meta.id.clone(),
            pid: task.meta.pid,
            exit_status: exit.status,
            exited_at_unix_nanos: exit.at_unix_nanos,
        }))
    }

    async fn delete_process(
        &self,
        req: Request<DeleteProcessRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let eid = req.into_inner().exec_id;
        valid_exec_id(&eid)?;
        let mut life = task.life.lock().await;
        if life.pending.remove(&eid).is_some() {
            return Ok(Response::new(DeleteResponse {
                id: eid,
                ..Default::default()
            }));
        }
        let v = task
            .shim
            .call(&ShimRequest::Delete {
                exec_id: Some(eid.clone()),
            })
            .await
            .map_err(shim_status)?;
        let exit = Exit::from_json(&v).unwrap_or(Exit {
            status: 255,
            at_unix_nanos: 0,
        });
        let pid = life.execs.get(&eid).map(|i| i.pid).unwrap_or(0);
        drop(life);
        self.registry.record_exec_exit(&task, &eid, exit).await;
        task.life.lock().await.execs.remove(&eid);
        let _ = std::fs::remove_file(crate::registry::exec_published_marker(&task.dir, &eid));
        Ok(Response::new(DeleteResponse {
            id: eid,
            pid,
            exit_status: exit.status,
            exited_at_unix_nanos: exit.at_unix_nanos,
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        let process = match exec_key(&r.exec_id) {
            None => init_process(&task).await,
            Some(eid) => {
                let life = task.life.lock().await;
                let mut p = Process {
                    id: task.meta.id.clone(),
                    exec_id: eid.to_string(),
                    ..Default::default()
                };
                if let Some(pe) = life.pending.get(eid) {
                    p.status = TaskStatus::Created as i32;
                    p.terminal = pe.terminal;
                    p.stdin = pe.stdin.clone();
                    p.stdout = pe.stdout.clone();
                    p.stderr = pe.stderr.clone();
                } else if let Some(info) = life.execs.get(eid) {
                    p.pid = info.pid;
                    p.status = match info.exit {
                        Some(e) => {
                            p.exit_status = e.status;
                            p.exited_at_unix_nanos = e.at_unix_nanos;
                            TaskStatus::Stopped
                        }
                        None => TaskStatus::Running,
                    } as i32;
                } else {
                    return Err(Status::not_found(format!(
                        "exec {eid} not found in task {}",
                        task.meta.id
                    )));
                }
                p
            }
        };
        Ok(Response::new(GetResponse {
            process: Some(process),
        }))
    }

    async fn list(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let ns = namespace_of(&req)?;
        let mut tasks = Vec::new();
        for t in self.registry.list(&ns) {
            tasks.push(init_process(&t).await);
        }
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        if r.signal == 0 || r.signal > 64 {
            return Err(Status::invalid_argument(format!(
                "invalid signal {}",
                r.signal
            )));
        }
        if task.life.lock().await.shim_gone {
            return Err(Status::failed_precondition(format!(
                "task {} is not running",
                task.meta.id
            )));
        }
        task.shim
            .call(&ShimRequest::Kill {
                signal: i32::try_from(r.signal)
                    .map_err(|_| Status::invalid_argument(format!("bad signal {}", r.signal)))?,
                all: r.all,
                exec_id: exec_key(&r.exec_id).map(str::to_string),
            })
            .await
            .map_err(shim_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn exec(&self, req: Request<ExecProcessRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        valid_exec_id(&r.exec_id)?;
        let spec: Value = serde_json::from_slice(&r.spec)
            .map_err(|e| Status::invalid_argument(format!("the process spec is not JSON: {e}")))?;
        if !spec.get("args").is_some_and(Value::is_array) {
            return Err(Status::invalid_argument(
                "the process spec needs args (an array)",
            ));
        }
        let mut life = task.life.lock().await;
        if life.shim_gone || life.exit.is_some() {
            return Err(Status::failed_precondition(format!(
                "task {} is not running",
                task.meta.id
            )));
        }
        if life.pending.contains_key(&r.exec_id) || life.execs.contains_key(&r.exec_id) {
            return Err(Status::already_exists(format!(
                "exec {} already exists in task {}",
                r.exec_id, task.meta.id
            )));
        }
        life.pending.insert(
            r.exec_id.clone(),
            PendingExec {
                spec,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: if r.terminal { String::new() } else { r.stderr },
                terminal: r.terminal,
            },
        );
        self.registry.publisher.publish(
            &task.meta.namespace,
            Event::ExecAdded(ExecAdded {
                container_id: task.meta.id.clone(),
                exec_id: r.exec_id,
            }),
        );
        Ok(Response::new(Empty {}))
    }

    async fn resize_pty(&self, req: Request<ResizePtyRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        task.shim
            .call(&ShimRequest::Resize {
                exec_id: exec_key(&r.exec_id).map(str::to_string),
                width: clamp(r.width),
                height: clamp(r.height),
            })
            .await
            .map_err(shim_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn close_io(&self, req: Request<CloseIoRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        if r.stdin {
            task.shim
                .call(&ShimRequest::CloseStdin {
                    exec_id: exec_key(&r.exec_id).map(str::to_string),
                })
                .await
                .map_err(shim_status)?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn pause(&self, req: Request<PauseTaskRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let _life = task.life.lock().await;
        task.shim
            .call(&ShimRequest::Pause)
            .await
            .map_err(shim_status)?;
        self.registry.publisher.publish(
            &task.meta.namespace,
            Event::Paused(TaskPaused {
                container_id: task.meta.id.clone(),
            }),
        );
        Ok(Response::new(Empty {}))
    }

    async fn resume(&self, req: Request<ResumeTaskRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let _life = task.life.lock().await;
        task.shim
            .call(&ShimRequest::Resume)
            .await
            .map_err(shim_status)?;
        self.registry.publisher.publish(
            &task.meta.namespace,
            Event::Resumed(TaskResumed {
                container_id: task.meta.id.clone(),
            }),
        );
        Ok(Response::new(Empty {}))
    }

    async fn list_pids(
        &self,
        req: Request<ListPidsRequest>,
    ) -> Result<Response<ListPidsResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let v = task
            .shim
            .call(&ShimRequest::Pids)
            .await
            .map_err(shim_status)?;
        let pids = v["pids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(ListPidsResponse { pids }))
    }

    async fn wait(&self, req: Request<WaitRequest>) -> Result<Response<WaitResponse>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let r = req.into_inner();
        let eid = exec_key(&r.exec_id);
        if eid.is_none() {
            let life = task.life.lock().await;
            if let (true, Some(e)) = (life.shim_gone, life.exit) {
                return Ok(Response::new(WaitResponse {
                    exit_status: e.status,
                    exited_at_unix_nanos: e.at_unix_nanos,
                }));
            }
        }
        let exit = match task.shim.wait(eid).await {
            Ok(e) => e,
            Err(ShimError::Gone { .. }) if eid.is_none() => {
                // The shim went away while we waited: its record (or the burial's) answers.
                let mut e = Exit::read_file(&task.dir.join("exit.json"));
                for _ in 0..100 {
                    if e.is_some() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    e = task.life.lock().await.exit;
                }
                e.ok_or_else(|| Status::unavailable("the task's shim is gone"))?
            }
            Err(e) => return Err(shim_status(e)),
        };
        Ok(Response::new(WaitResponse {
            exit_status: exit.status,
            exited_at_unix_nanos: exit.at_unix_nanos,
        }))
    }

    async fn metrics(
        &self,
        req: Request<MetricsRequest>,
    ) -> Result<Response<MetricsResponse>, Status> {
        let ns = namespace_of(&req)?;
        let ids = req.into_inner().container_ids;
        let tasks = if ids.is_empty() {
            self.registry.list(&ns)
        } else {
            ids.iter()
                .map(|id| self.registry.get(&ns, id))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut out = Vec::new();
        for t in tasks {
            let root = self.registry.runtime_root(&ns);
            match metrics::collect(&t.runtime_bin(), &root, &t.meta.id).await {
                Ok(m) => out.push(m),
                // A stopped task has no cgroup left: skip it unless it was asked for by name.
                Err(e) if !ids.is_empty() => return Err(Status::failed_precondition(e)),
                Err(_) => {}
            }
        }
        Ok(Response::new(MetricsResponse { metrics: out }))
    }

    async fn update(&self, req: Request<UpdateTaskRequest>) -> Result<Response<Empty>, Status> {
        let task = self.task(&req, &req.get_ref().container_id)?;
        let resources: Value = serde_json::from_slice(&req.into_inner().resources)
            .map_err(|e| Status::invalid_argument(format!("resources are not JSON: {e}")))?;
        if !resources.is_object() {
            return Err(Status::invalid_argument(
                "resources must be a JSON object (OCI LinuxResources)",
            ));
        }
        task.shim
            .call(&ShimRequest::Update { resources })
            .await
            .map_err(shim_status)?;
        Ok(Response::new(Empty {}))
    }
}
