//! A container as stored: its record (create request, run state, endpoints, ports) and the
//! handle the store gives out for it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A container's status, as Docker names it (`State.Status`, the `status` filter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// A container's run state, in Docker's words.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i64,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    pub error: String,
    /// Stopped or killed by a user: restart policies leave it alone.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Policy restarts in a row without a 10-second run in between (the back-off exponent).
    #[serde(default)]
    pub quick_restarts: u32,
    /// The healthcheck's state, for a container that has one.
    #[serde(default)]
    pub health: Option<super::health::Health>,
}

/// One container, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// The create request's container config (everything but HostConfig).
    pub config: Value,
    pub host_config: Value,
    /// The command: entrypoint and args.
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u64,
    /// The OCI spec given to berth-containerd.
    #[serde(default)]
    pub spec: Value,
    /// Names of the volumes it mounts.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Docker's `Mounts` entries (binds, volumes, tmpfs) for inspect and ps.
    #[serde(default)]
    pub mounts: Vec<berth_api::models::MountPoint>,
    /// The networks it is on, primary first, with their endpoints while it runs.
    #[serde(default)]
    pub networks: Vec<super::net::Attachment>,
    /// Its published ports while it runs.
    #[serde(default)]
    pub ports: Vec<super::net::Published>,
}

impl Record {
    pub fn running(&self) -> bool {
        matches!(
            self.state.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }
    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }
    pub fn open_stdin(&self) -> bool {
        self.config["OpenStdin"].as_bool().unwrap_or(false)
    }
    /// Whether the restart policy restarts the container after this exit.
    pub fn should_restart(&self) -> bool {
        let p = &self.host_config["RestartPolicy"];
        if self.state.manually_stopped {
            return false;
        }
        match p["Name"].as_str().unwrap_or("no") {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let max = p["MaximumRetryCount"].as_u64().unwrap_or(0);
                self.state.exit_code != 0 && (max == 0 || self.restart_count < max)
            }
            _ => false,
        }
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }
}

pub type Handle = Arc<tokio::sync::Mutex<Record>>;
