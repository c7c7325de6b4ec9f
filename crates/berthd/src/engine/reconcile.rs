//! Reconciling berth-containerd's tasks with berthd's records. The record is the intent log:
//! a start is done once the container's record says it runs, so a task whose record says
//! otherwise (berthd crashed between a task's start and the record of it), or that has no
//! record at all, is removed: at start, a few seconds later (a creation berth-containerd
//! finished after the crashed berthd had gone shows up only then) and every minute.

use std::sync::Arc;
use std::time::Duration;

use crate::containerd::req;
use crate::engine::Daemon;
use crate::engine::stdio::fifo_dir;

/// Removes whatever task berth-containerd has for `id` (its processes killed first) and its
/// container record there: for a container whose own record says it does not run (a crash of
/// berthd between a task's start and the record of it), or that has no record at all.
pub async fn purge_task(d: &Daemon, id: &str) {
    d.containerd.drop_container(id).await;
    crate::oci::rootfs::unmount(&d.containers.dir(id));
    let _ = std::fs::remove_dir_all(fifo_dir(d, id));
}

/// Reconciles berth-containerd's tasks with the records: a task whose record does not say it
/// runs, or that has no record, is removed (the record is the intent log: a start is done once
/// the record says so). A record locked by an operation in progress (a start) is left alone.
pub async fn purge_unrecorded_tasks(d: &Arc<Daemon>) {
    let mut tasks = d.containerd.tasks();
    let Ok(list) = tasks
        .list(req(berth_proto::v1::ListTasksRequest::default()))
        .await
    else {
        return;
    };
    for t in list.into_inner().tasks {
        if !t.exec_id.is_empty() {
            continue;
        }
        let recorded = match d.containers.find(&t.id) {
            Ok(h) => h.try_lock().map_or(true, |r| r.running()),
            Err(_) => false,
        };
        if !recorded {
            tracing::warn!(id = t.id, "removing a task no record says runs");
            purge_task(d, &t.id).await;
        }
    }
}

/// Reconciles again a few seconds after the start (a task whose creation berth-containerd
/// finished after the crashed berthd had gone shows up only then), then every minute and
/// after every restart of a berth-containerd that died.
pub async fn reconcile_tasks(d: Arc<Daemon>) {
    let mut restarts = d.containerd.restarts.subscribe();
    tokio::time::sleep(Duration::from_secs(3)).await;
    loop {
        purge_unrecorded_tasks(&d).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = restarts.changed() => {}
        }
    }
}
