//! `POST /system/check?fix=` (a Berth extension of the Engine API; `berth system check
//! [--fix]`): what crashed operations may leave behind, found by comparing the host with the
//! records. A container's things are leftovers when no record says it runs: tasks in
//! berth-containerd, shims, rootfs mounts, pinned network namespaces, veths, published ports'
//! firewall rules, cgroups; a record that says it runs has a task; and half-written files (a
//! record's temp file, a container directory being deleted, a temp download, a half-made
//! volume), blobs and layers no image references. With `fix`, each is removed, and the answer
//! says which were. berthd runs the same scan with `fix` at start, before it serves: nothing is
//! under way then, so whatever a crash left is removed at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::containerd::req;
use crate::engine::Daemon;

/// One leftover.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// What it is (`containerd`, `task`, `record`, `container`, `shim`, `mount`, `netns`, `veth`, `nft`, `cgroup`, `file`,
    /// `volume`, `blob`, `layer`).
    pub kind: &'static str,
    /// Which one: an id, a path, a pid.
    pub object: String,
    /// Why it is a leftover.
    pub detail: String,
    /// Removed by this call (`fix`).
    pub fixed: bool,
}

/// A check asked for through the API (`POST /system/check?fix=1`): files and store objects
/// younger than a few seconds may belong to an operation under way and are left alone.
pub async fn check(d: &Arc<Daemon>, fix: bool) -> Vec<Finding> {
    scan(d, fix, SETTLE).await
}

/// At start, before the API serves: no operation is under way, so every leftover of one that
/// crashed is removed now (files and store objects of any age).
pub async fn sweep_at_start(d: &Arc<Daemon>) {
    for f in scan(d, true, Duration::ZERO).await {
        tracing::warn!(
            kind = f.kind,
            object = f.object,
            removed = f.fixed,
            "{}",
            f.detail
        );
    }
}

/// Finds (with `fix`, removes) the leftovers; files and store objects younger than `settle`
/// may belong to an operation under way and are left alone.
pub async fn scan(d: &Arc<Daemon>, fix: bool, settle: Duration) -> Vec<Finding> {
    let (mut all, mut running, mut veths) = (HashSet::new(), HashSet::new(), HashSet::new());
    for h in d.containers.all() {
        let r = h.lock().await;
        all.insert(r.id.clone());
        if r.running() {
            running.insert(r.id.clone());
            for a in &r.networks {
                if let Some(ep) = &a.endpoint {
                    veths.insert(ep.host_ifname.clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    match tasks(d, &running, fix, &mut found).await {
        Some(tasks) => records(d, &running, &tasks, fix, &mut found).await,
        // Nothing can be said of tasks then: the check is not clean.
        None => found.push(Finding {
            kind: "containerd",
            object: d.containerd.socket.display().to_string(),
            detail: "berth-containerd does not answer (being restarted?)".into(),
            fixed: false,
        }),
    }
    containerd_records(d, &running, fix, &mut found).await;
    ports(d, &running, fix, &mut found).await;
    let (d2, running2) = (d.clone(), running.clone());
    let host = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        shims(&d2, &running2, fix, &mut found);
        mounts(&d2, &running2, fix, &mut found);
        netns(&d2, &running2, fix, &mut found);
        host_veths(&d2, &veths, fix, &mut found);
        cgroups(&d2, &running2, fix, &mut found);
        files(&d2, &all, fix, settle, &mut found);
        volumes(&d2, fix, settle, &mut found);
        images(&d2, fix, settle, &mut found);
        found
    })
    .await
    .unwrap_or_default();
    found.extend(host);
    found
}

/// Tasks no running record accounts for; returns the containers that have a task (None when
/// berth-containerd does not answer).
async fn tasks(
    d: &Arc<Daemon>,
    running: &HashSet<String>,
    fix: bool,
    out: &mut Vec<Finding>,
) -> Option<HashSet<String>> {
    let mut client = d.containerd.tasks();
    let list = client
        .list(req(berth_proto::v1::ListTasksRequest::default()))
        .await
        .ok()?
        .into_inner()
        .tasks;
    let with_task = list
        .iter()
        .filter(|t| t.exec_id.is_empty())
        .map(|t| t.id.clone())
        .collect();
    for t in list {
        if !t.exec_id.is_empty() || spoken_for(d, running, &t.id) {
            continue;
        }
        if fix {
            crate::engine::reconcile::purge_task(d, &t.id).await;
        }
        out.push(Finding {
            kind: "task",
            object: t.id,
            detail: "a task no running container's record accounts for".into(),
            fixed: fix,
        });
    }
    Some(with_task)
}

/// Records that say their container runs, without a task: finished (exit code 255).
async fn records(
    d: &Arc<Daemon>,
    running: &HashSet<String>,
    with_task: &HashSet<String>,
    fix: bool,
    out: &mut Vec<Finding>,
) {
    for id in running.difference(with_task) {
        let Ok(h) = d.containers.find(id) else {
            continue;
        };
        // Still running and without a task, with no start or exit in progress.
        if h.try_lock().map_or(true, |r| !r.running()) {
            continue;
        }
        if fix {
            crate::engine::run::finish_lost(d, &h, id).await;
        }
        out.push(Finding {
            kind: "record",
            object: id.clone(),
            detail: "says the container runs, but it has no task".into(),
            fixed: fix,
        });
    }
}

/// berth-containerd's container records (the spec given at a start) for containers that do
/// not run: a start or removal cut short.
async fn containerd_records(
    d: &Arc<Daemon>,
    running: &HashSet<String>,
    fix: bool,
    out: &mut Vec<Finding>,
) {
    let mut client = d.containerd.containers();
    let Ok(list) = client
        .list(req(berth_proto::v1::ListContainersRequest::default()))
        .await
    else {
        return;
    };
    for c in list.into_inner().containers {
        if spoken_for(d, running, &c.id) {
            continue;
        }
        if fix {
            d.containerd.drop_container(&c.id).await;
        }
        out.push(Finding {
            kind: "container",
            object: c.id.clone(),
            detail: "berth-containerd's record of a container that does not run".into(),
            fixed: fix,
        });
    }
}

/// Published ports (and their firewall rules) held for containers that do not run.
async fn ports(d: &Arc<Daemon>, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let mut changed = false;
    for id in d.networks.port_holders() {
        if spoken_for(d, running, &id) {
            continue;
        }
        changed |= fix && d.networks.drop_ports(&id);
        out.push(Finding {
            kind: "nft",
            object: id.clone(),
            detail: format!("port rules of container {id}, which does not run"),
            fixed: fix,
        });
    }
    if changed {
        if let Err(e) = crate::net::apply_firewall(&d.networks).await {
            tracing::warn!(error = e.message(), "applying the firewall");
        }
    }
}

/// Whether an operation (a start, a removal) holds the container's record right now: what it
/// is making is not a leftover.
fn busy(d: &Daemon, id: &str) -> bool {
    d.containers.find(id).is_ok_and(|h| h.try_lock().is_err())
}

/// Whether container `id`'s things are accounted for: it runs, or an operation on it is under
/// way. Anything else of it is a leftover.
fn spoken_for(d: &Daemon, running: &HashSet<String>, id: &str) -> bool {
    running.contains(id) || busy(d, id)
}

/// Files younger than this may belong to an operation under way (an upload, a create).
const SETTLE: Duration = Duration::from_secs(600);

fn settled(path: &Path, settle: Duration) -> bool {
    settle.is_zero()
        || std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > settle))
}

/// The container id a path under `dir` names (`<dir>/<id>[/...]`), when it is one.
fn id_under(dir: &Path, path: &Path) -> Option<String> {
    let id = path.strip_prefix(dir).ok()?.components().next()?;
    let id = id.as_os_str().to_str()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Shim processes serving this daemon's exec root for a container that does not run.
fn shims(d: &Daemon, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let tasks = d.exec_root.join("tasks").join(crate::containerd::NAMESPACE);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if !args.first().is_some_and(|a| a.ends_with(b"berth-shim")) {
            continue;
        }
        let task_dir = args
            .windows(2)
            .find(|w| w[0] == b"--task-dir")
            .map(|w| PathBuf::from(String::from_utf8_lossy(w[1]).into_owned()));
        let Some(id) = task_dir.and_then(|t| id_under(&tasks, &t)) else {
            continue;
        };
        if spoken_for(d, running, &id) {
            continue;
        }
        let fixed = fix
            && rustix::process::Pid::from_raw(pid).is_some_and(|p| {
                rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok()
            });
        out.push(Finding {
            kind: "shim",
            object: pid.to_string(),
            detail: format!("serves container {id}, which does not run"),
            fixed,
        });
    }
}

/// Rootfs mounts of containers that do not run.
fn mounts(d: &Daemon, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let containers = d.data_root.join("containers");
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in table.lines().filter_map(|l| l.split(' ').nth(4)) {
        let point = Path::new(point);
        let Some(id) = id_under(&containers, point) else {
            continue;
        };
        if !point.ends_with("merged") || spoken_for(d, running, &id) {
            continue;
        }
        if fix {
            crate::oci::rootfs::unmount(&d.containers.dir(&id));
        }
        out.push(Finding {
            kind: "mount",
            object: point.display().to_string(),
            detail: format!("the rootfs of container {id}, which does not run"),
            fixed: fix && !crate::oci::rootfs::is_mounted(point),
        });
    }
}

/// Network namespaces pinned for containers that do not run.
fn netns(d: &Daemon, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let dir = d.exec_root.join("netns");
    for ns in berth_net::netns::list(&dir) {
        let Some(id) = id_under(&dir, &ns) else {
            continue;
        };
        if spoken_for(d, running, &id) {
            continue;
        }
        let fixed = fix && berth_net::netns::remove(&ns).is_ok();
        out.push(Finding {
            kind: "netns",
            object: ns.display().to_string(),
            detail: format!("pinned for container {id}, which does not run"),
            fixed,
        });
    }
}

/// Host ends of veths on the daemon's bridges that no running container's endpoint owns.
fn host_veths(d: &Daemon, owned: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    for n in d.networks.all().iter().filter(|n| n.driver == "bridge") {
        for port in berth_net::netns::bridge_ports(&n.bridge).unwrap_or_default() {
            if !port.starts_with("vb") || owned.contains(&port) {
                continue;
            }
            // A start in progress plugs veths before its record says it runs.
            if d.containers.all().iter().any(|h| h.try_lock().is_err()) {
                return;
            }
            let fixed = fix && berth_net::netns::detach(&port).is_ok();
            out.push(Finding {
                kind: "veth",
                object: port,
                detail: format!("on bridge {}, of no running container", n.bridge),
                fixed,
            });
        }
    }
}

/// Cgroups under the daemon's parent for containers that do not run (and hold no process).
fn cgroups(d: &Daemon, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let parent = d.cgroup_parent.trim_start_matches('/');
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(parent))
        .collect();
    roots.push(Path::new("/sys/fs/cgroup").join(parent));
    for root in roots {
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let path = e.path();
            let Some(id) = id_under(&root, &path) else {
                continue;
            };
            if !path.is_dir() || spoken_for(d, running, &id) {
                continue;
            }
            let fixed = fix && std::fs::remove_dir(&path).is_ok();
            out.push(Finding {
                kind: "cgroup",
                object: path.display().to_string(),
                detail: format!("of container {id}, which does not run"),
                fixed,
            });
        }
    }
}

/// Half-written files: records' temp files, container directories being deleted (or of no
/// record), downloads left in the data root's `tmp`.
fn files(d: &Daemon, all: &HashSet<String>, fix: bool, settle: Duration, out: &mut Vec<Finding>) {
    let containers = d.data_root.join("containers");
    for e in std::fs::read_dir(&containers)
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        // The store deletes these in the background (from its start on): late only after a
        // while, whatever `settle` is.
        let (leftover, detail) = if name.ends_with(".removing") && settled(&path, SETTLE) {
            (true, "a removed container's directory, not yet deleted")
        } else if id_under(&containers, &path).is_some_and(|id| !all.contains(&id))
            && settled(&path, settle)
        {
            (true, "a container directory no record owns")
        } else {
            (false, "")
        };
        if leftover {
            let fixed = fix
                && !crate::oci::rootfs::is_mounted(&path.join("merged"))
                && std::fs::remove_dir_all(&path).is_ok();
            out.push(Finding {
                kind: "file",
                object: path.display().to_string(),
                detail: detail.into(),
                fixed,
            });
            continue;
        }
        let tmp = path.join("config.v2.tmp");
        if tmp.exists() && settled(&tmp, settle) {
            let fixed = fix && std::fs::remove_file(&tmp).is_ok();
            out.push(Finding {
                kind: "file",
                object: tmp.display().to_string(),
                detail: "a record's temp file, never renamed into place".into(),
                fixed,
            });
        }
    }
    let tmp = std::fs::read_dir(d.data_root.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    leftover_paths(
        tmp,
        "file",
        "a temporary file of an upload or load",
        fix,
        settle,
        out,
    );
}

/// Volumes a crashed create left half made.
fn volumes(d: &Daemon, fix: bool, settle: Duration, out: &mut Vec<Finding>) {
    let half = d.volumes.half_made();
    leftover_paths(
        half,
        "volume",
        "a volume whose create never finished",
        fix,
        settle,
        out,
    );
}

/// Reports (and with `fix` removes) each settled path, a file or a whole directory.
fn leftover_paths(
    paths: impl IntoIterator<Item = PathBuf>,
    kind: &'static str,
    detail: &str,
    fix: bool,
    settle: Duration,
    out: &mut Vec<Finding>,
) {
    for path in paths {
        if !settled(&path, settle) {
            continue;
        }
        let fixed = fix
            && if path.is_dir() {
                std::fs::remove_dir_all(&path).is_ok()
            } else {
                std::fs::remove_file(&path).is_ok()
            };
        out.push(Finding {
            kind,
            object: path.display().to_string(),
            detail: detail.into(),
            fixed,
        });
    }
}

/// Blobs and layers no image references (a pull, load or removal cut short).
fn images(d: &Daemon, fix: bool, settle: Duration, out: &mut Vec<Finding>) {
    let (blobs, chains) = d.images.unreferenced();
    let blobs: Vec<_> = blobs
        .into_iter()
        .filter(|b| settled(&d.images.content.path(b), settle))
        .collect();
    let chains: Vec<_> = chains
        .into_iter()
        .filter(|c| settled(&d.images.layers.dir(c), settle))
        .collect();
    if fix {
        d.images.collect(&chains, &blobs);
    }
    for (kind, list, what) in [
        ("blob", &blobs, "a blob not referenced by any image"),
        ("layer", &chains, "a layer not referenced by any image"),
    ] {
        for x in list {
            let fixed = fix
                && if kind == "blob" {
                    d.images.content.size(x).is_none()
                } else {
                    !d.images.layers.exists(x)
                };
            out.push(Finding {
                kind,
                object: x.to_string(),
                detail: what.into(),
                fixed,
            });
        }
    }
}
