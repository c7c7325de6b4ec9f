//! Restart policies, as state: Docker's back-off after an exit, the `restarting` state a
//! container waits in until its restart (which a user's stop, kill or forced remove calls
//! off), and which containers berthd starts again when it starts. The starts themselves are
//! `run`'s.

use std::time::Duration;

use crate::engine::Daemon;
use crate::engine::store::Handle;
use crate::model::Error;
use crate::model::record::{Record, Status};

/// After an exit: whether the policy restarts the container, and after what back-off (100 ms
/// doubling per quick restart, reset by a run of 10 s or more). Until the restart it is
/// `restarting`, as dockerd shows it (and refuses a plain rm).
pub async fn begin(d: &Daemon, h: &Handle) -> Option<Duration> {
    let mut rec = h.lock().await;
    if !rec.should_restart() {
        return None;
    }
    let ran = berth_clock::parse_rfc3339(&rec.state.finished_at).unwrap_or(0)
        - berth_clock::parse_rfc3339(&rec.state.started_at).unwrap_or(0);
    if ran >= 10_000_000_000 {
        rec.state.quick_restarts = 0;
    }
    let n = rec.state.quick_restarts.min(10);
    rec.state.quick_restarts += 1;
    rec.state.status = Status::Restarting;
    let _ = d.containers.save_state(&rec);
    Some(Duration::from_millis(100 << n))
}

/// At the end of the back-off: whether the container still waits for its restart (no user
/// called it off, and it was not removed).
pub async fn due(d: &Daemon, h: &Handle) -> bool {
    let rec = h.lock().await;
    rec.state.status == Status::Restarting
        && rec.should_restart()
        && d.containers.find(&rec.id).is_ok()
}

/// Records how the restart went: one more restart, or an exited container with the error.
pub async fn ended(d: &Daemon, h: &Handle, started: Result<(), Error>) {
    let mut rec = h.lock().await;
    match started {
        Ok(()) => rec.restart_count += 1,
        Err(e) => {
            tracing::warn!(id = rec.id, error = e.message(), "restart by policy");
            if rec.state.status == Status::Restarting {
                rec.state.status = Status::Exited;
                rec.state.error = e.message().to_string();
                let _ = d.containers.save_state(&rec);
            }
        }
    }
}

/// A user's stop, kill or forced remove of a container waiting for its policy's restart: the
/// restart is called off and it is exited (as it was). False when it was not waiting.
pub async fn cancel_restart(d: &Daemon, h: &Handle) -> bool {
    let mut rec = h.lock().await;
    if rec.state.status != Status::Restarting {
        return false;
    }
    rec.state.status = Status::Exited;
    rec.state.manually_stopped = true;
    let _ = d.containers.save(&rec);
    true
}

/// Whether berthd starts the container again when it starts: `always` even if a user stopped
/// it; `unless-stopped` only if no user did.
pub fn wanted_at_daemon_start(rec: &Record) -> bool {
    let name = rec.host_config.restart_policy.name.as_str();
    !rec.running()
        && rec.state.status != Status::Created
        && (name == "always" || (name == "unless-stopped" && !rec.state.manually_stopped))
}

/// Records that a user stopped the container (restart policies then leave it alone).
pub async fn mark_manually_stopped(d: &Daemon, h: &Handle) {
    let mut rec = h.lock().await;
    rec.state.manually_stopped = true;
    let _ = d.containers.save(&rec);
}
