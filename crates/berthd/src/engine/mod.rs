//! The engine: containers (the store of records, their lifecycle through berth-containerd:
//! create, start, stop, remove, restart policies), exec, health, logs, events, the endpoints
//! that put a container on its networks, and the checks that reconcile all of it with the host
//! after a crash. It sits below the Engine API (`api`) and never reaches up to it; networks
//! (`net`) and volumes (`volumes`) are beside it, the OCI bundle (`oci`) and the containerd
//! client below.

pub mod check;
pub mod commit;
pub mod create;
pub mod endpoints;
pub mod events;
pub mod exec;
pub mod health;
pub mod links;
pub mod logs;
pub mod reconcile;
pub mod registry;
pub mod restart;
pub mod run;
pub mod stdio;
pub mod store;
pub mod unpack_into;
pub mod update;
pub mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

/// Runs file-system work that may take long (a volume's copy-up or removal, a tree's size) on
/// the current worker after handing its other tasks to the rest of the runtime, so requests in
/// flight are not held up behind it. Only for a multi-threaded runtime, which berthd's is.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

use crate::model::Error;
use crate::model::record::Record;

/// The engine's handle: its stores, the containerd client and the host's settings; every
/// route reaches the engine through it.
pub struct Daemon {
    pub id: String,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub cgroup_parent: String,
    pub images: berth_image::service::ImageService,
    pub containers: store::Store,
    pub runs: run::Runs,
    pub execs: exec::Execs,
    pub events: events::Events,
    pub containerd: Arc<crate::containerd::Containerd>,
    pub networks: Arc<crate::net::Networks>,
    pub volumes: crate::volumes::Volumes,
    /// The static init `--init` containers run (`docker-init` or `tini-static`), if found.
    pub init_path: Option<PathBuf>,
    /// Where registries' CA certificates are (`--registry-certs-dir`).
    pub registry_certs_dir: PathBuf,
    /// What the host's cgroups can enforce, probed at start.
    pub sysinfo: crate::oci::sysinfo::SysInfo,
}

impl Daemon {
    /// The image a container was created from (`No such image` once it is gone).
    pub fn image_of(&self, rec: &Record) -> Result<berth_image::images::ImageRecord, Error> {
        let digest = berth_image::Digest::parse(&rec.image_id)
            .map_err(|e| Error::internal(e.to_string()))?;
        self.images
            .images
            .get(&digest)
            .ok_or_else(|| Error::not_found(format!("No such image: {}", rec.image)))
    }
}
