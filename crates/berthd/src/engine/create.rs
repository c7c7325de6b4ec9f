//! `docker create` as phases: `check` reads the request and the image and makes nothing;
//! `make` creates the container's directory, its `/etc` files and volumes, builds the OCI
//! spec and records the container. What `make` has made is tracked in one `Made` value whose
//! `undo` removes it when a later phase fails, so a failed create leaves nothing behind.

use std::path::PathBuf;
use std::sync::Arc;

use berth_api::config::ContainerConfig;
use berth_api::host_config::{HostConfig, LogConfig, NetworkingConfig, RestartPolicy};
use berth_image::images::ImageRecord;
use serde_json::Value;

use crate::engine::Daemon;
use crate::model::Error;
use crate::model::ids::{new_id, random_name, valid_name};
use crate::model::net::Attachment;
use crate::model::record::{Record, State, Status};

/// A created container: its id, and what the host could not enforce (dockerd's warnings).
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

/// A create request, checked against the daemon: nothing is made yet.
struct Plan {
    id: String,
    /// The name the user gave (none: a generated one, drawn again on a collision).
    given: Option<String>,
    image_name: String,
    image: ImageRecord,
    image_config: ContainerConfig,
    /// The request's container config, typed.
    config: ContainerConfig,
    host_config: HostConfig,
    networks: Vec<Attachment>,
    argv: Vec<String>,
    warnings: Vec<String>,
}

/// What a create has made so far.
#[derive(Default)]
struct Made {
    dir: Option<PathBuf>,
    volumes: Vec<String>,
}

impl Made {
    /// Removes what was made, newest first: the anonymous volumes, then the directory.
    async fn undo(self, d: &Daemon) {
        crate::engine::volumes::remove_anonymous(d, &self.volumes).await;
        if let Some(dir) = self.dir {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }
}

/// Creates a container from Docker's create request, named `name` (or a generated name).
pub async fn create(d: &Arc<Daemon>, name: Option<&str>, request: Value) -> Result<Created, Error> {
    let plan = check(d, name, request).await?;
    let mut made = Made::default();
    match make(d, plan, &mut made).await {
        Ok(created) => Ok(created),
        Err(e) => {
            made.undo(d).await;
            Err(e)
        }
    }
}

/// Reads and checks the request, the image and the host's limits; makes nothing.
async fn check(d: &Arc<Daemon>, name: Option<&str>, mut create: Value) -> Result<Plan, Error> {
    if !create.is_object() {
        return Err(Error::invalid("the container config must be a JSON object"));
    }
    // The request, typed once: a field of the wrong type is refused here.
    let mut host_config: HostConfig =
        match create.as_object_mut().and_then(|o| o.remove("HostConfig")) {
            None | Some(Value::Null) => HostConfig::default(),
            Some(v @ Value::Object(_)) => serde_json::from_value(v)
                .map_err(|e| Error::invalid(format!("invalid HostConfig: {e}")))?,
            Some(_) => return Err(Error::invalid("HostConfig must be a JSON object")),
        };
    let networking: Option<NetworkingConfig> = match create
        .as_object_mut()
        .and_then(|o| o.remove("NetworkingConfig"))
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v)
                .map_err(|e| Error::invalid(format!("invalid NetworkingConfig: {e}")))?,
        ),
    };
    let mut config: ContainerConfig = serde_json::from_value(create)
        .map_err(|e| Error::invalid(format!("invalid container config: {e}")))?;
    let image_name = Some(config.image.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("Config cannot be empty in order to create a container"))?;
    // Docker's answer to a runtime it does not know (`docker run --runtime X`).
    let rt = host_config.runtime.as_str();
    if !rt.is_empty() && !matches!(rt, "berth-runc" | "runc") {
        return Err(Error::invalid(format!(
            "unknown or invalid runtime name: {rt}"
        )));
    }
    let given = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            let n = n.strip_prefix('/').unwrap_or(n);
            if !valid_name(n) {
                return Err(Error::invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            Some(n.to_string())
        }
        None => None,
    };
    let d2 = d.clone();
    let image_name2 = image_name.clone();
    let image = tokio::task::spawn_blocking(move || d2.images.images.resolve(&image_name2))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(|_| Error::not_found(format!("No such image: {image_name}")))?;
    let image_config = crate::engine::health::image_config(d, &image.id);
    check_host_config(&mut host_config)?;
    crate::engine::links::check(d, &mut host_config)?;
    crate::engine::endpoints::extra_hosts(d, &host_config)?;
    for from in host_config.volumes_from() {
        let name = from.rsplit_once(':').map_or(from.as_str(), |(n, _)| n);
        d.containers.view(name)?;
    }
    let mac = config.mac_address.as_str();
    if !mac.is_empty() && crate::engine::endpoints::parse_mac(mac).is_none() {
        return Err(Error::invalid(format!("invalid MAC address: {mac}")));
    }
    let networks =
        crate::engine::endpoints::attachments(d, &host_config.network_mode, networking.as_ref())?;
    // The image's exposed ports are the container's too (`-P` publishes them).
    for k in image_config.exposed_ports.iter().flat_map(|p| p.keys()) {
        config.expose(k);
    }
    let argv = crate::oci::spec::command(&config, &image_config)
        .map_err(|e| Error::invalid(e.to_string()))?;
    // What the host cannot enforce is dropped with dockerd's warnings (and not kept in the record).
    let warnings = crate::oci::sysinfo::verify_resources(
        &d.sysinfo,
        &mut host_config.resources,
        Some(host_config.network_mode.as_str()),
    )
    .map_err(|e| Error::invalid(e.to_string()))?;
    // A name in use fails the create before anything is made (a create that takes it
    // meanwhile still fails at the record, and what was made is undone).
    if let Some(n) = &given {
        d.containers.check_name_free(n)?;
    }
    Ok(Plan {
        id: new_id(),
        given,
        image_name,
        image,
        image_config,
        config,
        host_config,
        networks,
        argv,
        warnings,
    })
}

/// The log driver: none named is the default one (its options kept); dockerd's own drivers
/// that berthd has not are refused by name, any other as an unknown plugin, as dockerd does.
fn log_config(log: &mut LogConfig) -> Result<(), Error> {
    let kind = log.kind.clone();
    match kind.as_str() {
        "" => {
            log.kind = "json-file".into();
            log.config.get_or_insert_with(Default::default);
            Ok(())
        }
        "json-file" | "local" | "none" => Ok(()),
        "syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk" | "gcplogs"
        | "logentries" | "etwlogs" => Err(Error::invalid(format!(
            "logging driver {kind} is not supported by berthd (json-file, local or none)"
        ))),
        other => Err(Error::invalid(format!(
            "error looking up logging plugin {other}: plugin \"{other}\" not found"
        ))),
    }
}

/// Limits dockerd refuses or normalises at create: a negative shm size and a CPU count outside
/// the host's are refused with its messages; a negative pids limit means none.
fn limits(host_config: &mut HostConfig) -> Result<(), Error> {
    if host_config.shm_size < 0 {
        return Err(Error::invalid("SHM size can not be less than 0"));
    }
    let r = &mut host_config.resources;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if r.nano_cpus < 0 || r.nano_cpus > cpus * 1_000_000_000 {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    if r.cpu_shares < 0 {
        return Err(Error::invalid(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            r.cpu_shares
        )));
    }
    if r.pids_limit.is_some_and(|p| p < 0) {
        r.pids_limit = None;
    }
    Ok(())
}

/// Fills in the `HostConfig` defaults dockerd fills in (clients read them back) and checks
/// the restart policy as dockerd does.
fn check_host_config(host_config: &mut HostConfig) -> Result<(), Error> {
    log_config(&mut host_config.log_config)?;
    limits(host_config)?;
    if host_config.network_mode.is_empty() {
        host_config.network_mode = "default".into();
    }
    if host_config.restart_policy.name.is_empty() {
        host_config.restart_policy.name = "no".into();
    }
    // The runtime it runs with, as dockerd records its default one.
    if host_config.runtime.is_empty() {
        host_config.runtime = "berth-runc".into();
    }
    let policy = restart_policy(&host_config.restart_policy)?;
    if host_config.restart_policy.maximum_retry_count != 0 && policy != "on-failure" {
        return Err(Error::invalid(format!(
            "maximum retry count cannot be used with restart policy '{policy}'"
        )));
    }
    if !matches!(policy.as_str(), "" | "no") && host_config.auto_remove {
        return Err(Error::invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(())
}

/// The `HostConfig`'s restart policy name, if it is one Docker knows (empty: none).
pub fn restart_policy(p: &RestartPolicy) -> Result<String, Error> {
    let policy = p.name.clone();
    if !matches!(
        policy.as_str(),
        "" | "no" | "always" | "unless-stopped" | "on-failure"
    ) {
        return Err(Error::invalid(format!("invalid restart policy '{policy}'")));
    }
    Ok(policy)
}

/// Makes the container: its directory and `/etc` files, its volumes, its spec, its record.
/// Its file-system work (a volume's copy-up can be long) runs off the async workers.
async fn make(d: &Arc<Daemon>, plan: Plan, made: &mut Made) -> Result<Created, Error> {
    crate::engine::blocking(|| make_files(d, plan, made))
}

fn make_files(d: &Arc<Daemon>, plan: Plan, made: &mut Made) -> Result<Created, Error> {
    let id = plan.id.clone();
    let dir = d.containers.dir(&id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::internal(e.to_string()))?;
    made.dir = Some(dir.clone());
    let hostname = Some(plan.config.hostname.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or(&id[..12])
        .to_string();
    let dns = crate::oci::rootfs::dns_settings(&plan.host_config);
    let extra = crate::engine::endpoints::extra_hosts(d, &plan.host_config)?;
    crate::oci::rootfs::write_etc_files(&dir, &hostname, &dns, &extra)?;
    let mut resolved = plan.host_config.clone();
    // After the request's own mounts, the ones of `--volumes-from`, then the request's own
    // `Volumes` (`docker run -v /data`), then the image's `VOLUME`s.
    crate::engine::volumes::volumes_from(d, &mut resolved)?;
    crate::volumes::add_anonymous_volumes(&mut resolved, &plan.config);
    crate::volumes::add_anonymous_volumes(&mut resolved, &plan.image_config);
    let layer_dirs = d.images.layer_dirs(&plan.image);
    let volumes = d
        .volumes
        .resolve(&mut resolved, &layer_dirs, &dir.join("subpaths"))?;
    made.volumes = volumes.names.clone();
    let merged = crate::oci::rootfs::merged(&dir).display().to_string();
    let user_root = crate::oci::rootfs::passwd_layer(&layer_dirs)
        .map(|l| l.display().to_string())
        .unwrap_or_default();
    let spec = crate::oci::spec::build(&crate::oci::spec::SpecInput {
        id: &id,
        config: &plan.config,
        host: &resolved,
        image_config: &plan.image_config,
        rootfs: &merged,
        user_root: &user_root,
        container_dir: &dir.display().to_string(),
        hard_nofile: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        cgroup_parent: &d.cgroup_parent,
        netns_path: None,
        init_path: d.init_path.as_deref().and_then(|p| p.to_str()),
    })
    .map_err(|e| Error::invalid(e.to_string()))?;
    crate::oci::propagation::check_binds(&spec).map_err(Error::invalid)?;
    let mut config = plan.config;
    config.image.clone_from(&plan.image_name);
    config.hostname = hostname;
    let rec = Record {
        id: id.clone(),
        name: plan.given.clone().unwrap_or_else(|| random_name(0)),
        created: berth_clock::rfc3339_now(),
        image: plan.image_name,
        image_id: plan.image.id.to_string(),
        config,
        host_config: plan.host_config,
        path: plan.argv.first().cloned().unwrap_or_default(),
        args: plan.argv.iter().skip(1).cloned().collect(),
        state: State {
            status: Status::Created,
            started_at: "0001-01-01T00:00:00Z".into(),
            finished_at: "0001-01-01T00:00:00Z".into(),
            ..Default::default()
        },
        restart_count: 0,
        spec,
        volumes: volumes.names,
        mounts: volumes.points,
        subpaths: volumes.subpaths,
        networks: plan.networks,
        ports: vec![],
    };
    record(d, rec, plan.given.is_none())?;
    Ok(Created {
        id,
        warnings: plan.warnings,
    })
}

/// Records the container; a generated name another create took meanwhile is drawn again.
fn record(d: &Daemon, mut rec: Record, generated: bool) -> Result<(), Error> {
    berth_failpoint::point("create.before-record");
    let mut retry = 0;
    loop {
        match d.containers.insert(rec.clone()) {
            Err(e) if generated && e.is_conflict() && retry < 10 => {
                retry += 1;
                rec.name = random_name(retry);
            }
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    berth_failpoint::point("create.after-record");
    let attrs = crate::engine::events::container_attrs(&rec, &[]);
    d.events.emit("container", "create", &rec.id, attrs);
    d.runs.ensure(&rec.id, None);
    Ok(())
}
