//! A small client of berth-containerd's gRPC API (Containers and Tasks over its unix socket).
//! `berth-bench grpc-run` is the `lifecycle` suite's Berth contender: a fresh process that
//! creates, starts, waits for and deletes one container, as `ctr run --rm` does for containerd.
//! The suite also uses [`Api`] in-process to keep containers running and to remove them all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, Status, WaitRequest,
};
use berth_proto::with_namespace;
use tonic::transport::Channel;

/// How long a removal waits for a killed task to exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// `berth-bench grpc-run`: one container's whole life through the API.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// berth-containerd's gRPC socket.
    #[arg(long)]
    address: PathBuf,
    /// Tenant namespace of the container.
    #[arg(long, default_value = berth_proto::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Prepared root filesystem of the task.
    #[arg(long)]
    rootfs: PathBuf,
    /// OCI runtime spec (config.json) of the container.
    #[arg(long)]
    spec: PathBuf,
    /// Container id.
    id: String,
}

/// Containers.Create, Tasks.Create (no stdio), Tasks.Start, Tasks.Wait, Tasks.Delete,
/// Containers.Delete; fails on any error and on a non-zero exit status of the task.
pub fn grpc_run(args: &RunArgs) -> anyhow::Result<()> {
    let spec =
        std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    runtime()?.block_on(async {
        let mut api = Api::connect(&args.address, &args.namespace).await?;
        api.create(&args.id, spec, &args.rootfs).await?;
        api.start(&args.id).await?;
        let status = api.wait(&args.id).await?;
        api.delete(&args.id).await?;
        anyhow::ensure!(status == 0, "container {} exited with {status}", args.id);
        Ok(())
    })
}

/// The single-threaded runtime a one-shot client needs.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The Containers and Tasks services of one daemon, every call in one namespace.
pub struct Api {
    ns: String,
    containers: ContainersClient<Channel>,
    tasks: TasksClient<Channel>,
}

impl Api {
    pub async fn connect(address: &Path, namespace: &str) -> anyhow::Result<Api> {
        let ch = berth_proto::connect_unix(address)
            .await
            .with_context(|| format!("connecting to {}", address.display()))?;
        Ok(Api {
            ns: namespace.into(),
            containers: ContainersClient::new(ch.clone()),
            tasks: TasksClient::new(ch),
        })
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        with_namespace(&self.ns, msg)
    }

    /// Stores the container record (`spec` is config.json) and creates its task on `rootfs`,
    /// with stdio on /dev/null.
    pub async fn create(&mut self, id: &str, spec: Vec<u8>, rootfs: &Path) -> anyhow::Result<()> {
        let container = Container {
            id: id.into(),
            spec,
            ..Default::default()
        };
        let req = self.req(CreateContainerRequest {
            container: Some(container),
        });
        self.containers
            .create(req)
            .await
            .with_context(|| format!("Containers.Create {id}"))?;
        let req = self.req(CreateTaskRequest {
            container_id: id.into(),
            rootfs: rootfs.to_string_lossy().into_owned(),
            ..Default::default()
        });
        self.tasks
            .create(req)
            .await
            .with_context(|| format!("Tasks.Create {id}"))?;
        Ok(())
    }

    pub async fn start(&mut self, id: &str) -> anyhow::Result<()> {
        let req = self.req(StartRequest {
            container_id: id.into(),
            exec_id: String::new(),
        });
        self.tasks
            .start(req)
            .await
            .with_context(|| format!("Tasks.Start {id}"))?;
        Ok(())
    }

    /// Waits for the task's init process to exit and returns its exit status.
    pub async fn wait(&mut self, id: &str) -> anyhow::Result<u32> {
        let req = self.req(WaitRequest {
            container_id: id.into(),
            exec_id: String::new(),
        });
        let r = self
            .tasks
            .wait(req)
            .await
            .with_context(|| format!("Tasks.Wait {id}"))?;
        Ok(r.into_inner().exit_status)
    }

    /// Deletes the (exited) task, then the container record.
    pub async fn delete(&mut self, id: &str) -> anyhow::Result<()> {
        let req = self.req(DeleteTaskRequest {
            container_id: id.into(),
        });
        self.tasks
            .delete(req)
            .await
            .with_context(|| format!("Tasks.Delete {id}"))?;
        let req = self.req(DeleteContainerRequest { id: id.into() });
        self.containers
            .delete(req)
            .await
            .with_context(|| format!("Containers.Delete {id}"))?;
        Ok(())
    }

    pub async fn is_running(&mut self, id: &str) -> anyhow::Result<bool> {
        let req = self.req(GetRequest {
            container_id: id.into(),
            exec_id: String::new(),
        });
        let r = self
            .tasks
            .get(req)
            .await
            .with_context(|| format!("Tasks.Get {id}"))?;
        Ok(r.into_inner()
            .process
            .is_some_and(|p| p.status() == Status::Running))
    }

    /// Kills (SIGKILL) and deletes every task of the namespace, then deletes every container
    /// record. Keeps going past a container that fails and reports the first failure.
    pub async fn remove_all(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        let req = self.req(ListTasksRequest::default());
        let tasks = self.tasks.list(req).await.context("Tasks.List")?;
        for t in tasks.into_inner().tasks {
            if let Err(e) = self.kill_task(&t.id, t.status()).await {
                first_err.get_or_insert(e);
            }
        }
        let req = self.req(ListContainersRequest::default());
        let containers = self.containers.list(req).await.context("Containers.List")?;
        for c in containers.into_inner().containers {
            let req = self.req(DeleteContainerRequest { id: c.id.clone() });
            if let Err(e) = self.containers.delete(req).await {
                first_err.get_or_insert(
                    anyhow::Error::new(e).context(format!("Containers.Delete {}", c.id)),
                );
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn kill_task(&mut self, id: &str, status: Status) -> anyhow::Result<()> {
        if status != Status::Stopped {
            let req = self.req(KillRequest {
                container_id: id.into(),
                exec_id: String::new(),
                signal: libc::SIGKILL as u32,
                all: true,
            });
            self.tasks
                .kill(req)
                .await
                .with_context(|| format!("Tasks.Kill {id}"))?;
            tokio::time::timeout(KILL_WAIT, self.wait(id))
                .await
                .with_context(|| format!("waiting {KILL_WAIT:?} for {id} to exit"))??;
        }
        let req = self.req(DeleteTaskRequest {
            container_id: id.into(),
        });
        self.tasks
            .delete(req)
            .await
            .with_context(|| format!("Tasks.Delete {id}"))?;
        Ok(())
    }
}
