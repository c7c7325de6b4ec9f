//! `POST /system/check?fix=` (a Berth extension of the Engine API; `berth system check
//! [--fix]`): what crashed operations may leave behind, found by comparing the host with the
//! records. A container's things are leftovers when no record says it runs: tasks in
//! berth-containerd, shims, rootfs mounts, pinned network namespaces, cgroups; and
//! half-written files (a record's temp file, a container directory being deleted, a temp
//! download). With `fix`, each is removed, and the answer says which were.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_proto::v1::tasks_client::TasksClient;
use hyper::StatusCode;
use serde::Serialize;

use crate::Daemon;
use crate::http::{ApiResult, Query, json};
use crate::run::req;

/// One leftover.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// What it is (`task`, `shim`, `mount`, `netns`, `cgroup`, `file`).
    pub kind: &'static str,
    /// Which one: an id, a path, a pid.
    pub object: String,
    /// Why it is a leftover.
    pub detail: String,
    /// Removed by this call (`fix`).
    pub fixed: bool,
}

/// `POST /system/check?fix=1`.
pub async fn check(d: &Arc<Daemon>, q: &Query) -> ApiResult {
    let fix = q.bool("fix");
    let (all, running) = {
        let (mut all, mut running) = (HashSet::new(), HashSet::new());
        for h in d.containers.all() {
            let r = h.lock().await;
            all.insert(r.id.clone());
            if r.running() {
                running.insert(r.id.clone());
            }
        }
        (all, running)
    };
    let mut found = Vec::new();
    tasks(d, &running, fix, &mut found).await;
    let (d2, running2) = (d.clone(), running.clone());
    let host = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        shims(&d2, &running2, fix, &mut found);
        mounts(&d2, &running2, fix, &mut found);
        netns(&d2, &running2, fix, &mut found);
        cgroups(&d2, &running2, fix, &mut found);
        files(&d2, &all, fix, &mut found);
        found
    })
    .await
    .unwrap_or_default();
    found.extend(host);
    Ok(json(StatusCode::OK, &found))
}

/// Tasks no running record accounts for.
async fn tasks(d: &Arc<Daemon>, running: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let mut client = TasksClient::new(d.containerd.channel.clone());
    let Ok(list) = client
        .list(req(berth_proto::v1::ListTasksRequest::default()))
        .await
    else {
        return;
    };
    for t in list.into_inner().tasks {
        if !t.exec_id.is_empty() || running.contains(&t.id) {
            continue;
        }
        // A start in progress holds the record's lock: not a leftover.
        if busy(d, &t.id) {
            continue;
        }
        if fix {
            crate::reconcile::purge_task(d, &t.id).await;
        }
        out.push(Finding {
            kind: "task",
            object: t.id,
            detail: "a task no running container's record accounts for".into(),
            fixed: fix,
        });
    }
}

/// Whether an operation (a start, a removal) holds the container's record right now: what it
/// is making is not a leftover.
fn busy(d: &Daemon, id: &str) -> bool {
    d.containers.find(id).is_ok_and(|h| h.try_lock().is_err())
}

/// Files younger than this may belong to an operation under way (an upload, a create).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(600);

fn settled(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > SETTLE))
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
        if running.contains(&id) || busy(d, &id) {
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
        if running.contains(&id) || !point.ends_with("merged") || busy(d, &id) {
            continue;
        }
        if fix {
            crate::rootfs::unmount(&d.containers.dir(&id));
        }
        out.push(Finding {
            kind: "mount",
            object: point.display().to_string(),
            detail: format!("the rootfs of container {id}, which does not run"),
            fixed: fix && !crate::rootfs::is_mounted(point),
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
        if running.contains(&id) || busy(d, &id) {
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
            if running.contains(&id) || !path.is_dir() || busy(d, &id) {
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
fn files(d: &Daemon, all: &HashSet<String>, fix: bool, out: &mut Vec<Finding>) {
    let containers = d.data_root.join("containers");
    for e in std::fs::read_dir(&containers)
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let (leftover, detail) = if name.ends_with(".removing") && settled(&path) {
            (true, "a removed container's directory, not yet deleted")
        } else if id_under(&containers, &path).is_some_and(|id| !all.contains(&id))
            && settled(&path)
        {
            (true, "a container directory no record owns")
        } else {
            (false, "")
        };
        if leftover {
            let fixed = fix
                && !crate::rootfs::is_mounted(&path.join("merged"))
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
        if tmp.exists() && settled(&tmp) {
            let fixed = fix && std::fs::remove_file(&tmp).is_ok();
            out.push(Finding {
                kind: "file",
                object: tmp.display().to_string(),
                detail: "a record's temp file, never renamed into place".into(),
                fixed,
            });
        }
    }
    for e in std::fs::read_dir(d.data_root.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        if !settled(&path) {
            continue;
        }
        let fixed = fix
            && if path.is_dir() {
                std::fs::remove_dir_all(&path).is_ok()
            } else {
                std::fs::remove_file(&path).is_ok()
            };
        out.push(Finding {
            kind: "file",
            object: path.display().to_string(),
            detail: "a temporary file of an upload or load".into(),
            fixed,
        });
    }
}
