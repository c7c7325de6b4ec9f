//! A container as stored: its record (create request, run state, endpoints, ports) and the
//! handle the store gives out for it.

use std::sync::Arc;

use berth_api::config::ContainerConfig;
use berth_api::host_config::HostConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A stored config (`ContainerConfig`, `HostConfig`) that does not read as its type (a field of
/// the wrong type written before configs were typed) is kept as far as it reads, so the
/// container is not lost.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(lenient_from(Value::deserialize(d)?))
}

/// `raw` as a `T`, its fields of the wrong type left out (logged), as [`lenient`] reads.
pub fn lenient_from<T: DeserializeOwned + Default>(raw: Value) -> T {
    match serde_json::from_value(raw.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "a stored config does not read; keeping its valid fields");
            let mut kept = serde_json::Map::new();
            for (k, v) in raw.as_object().into_iter().flatten() {
                let one = serde_json::json!({ k: v });
                if serde_json::from_value::<T>(one).is_ok() {
                    kept.insert(k.clone(), v.clone());
                }
            }
            serde_json::from_value(Value::Object(kept)).unwrap_or_default()
        }
    }
}

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

/// A volume mount of a subdirectory (`VolumeOptions.Subpath`): resolved inside the volume and
/// bind-mounted on `staging` at each start, so the runtime mounts a path that no container can
/// turn into a link out of the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subpath {
    pub staging: std::path::PathBuf,
    /// The volume's directory on the host.
    pub volume: String,
    /// Relative, inside the volume.
    pub subpath: String,
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
    #[serde(deserialize_with = "lenient")]
    pub config: ContainerConfig,
    #[serde(deserialize_with = "lenient")]
    pub host_config: HostConfig,
    /// The command: entrypoint and args.
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u64,
    /// The OCI spec given to berth-containerd.
    #[serde(default)]
    pub spec: oci_spec::runtime::Spec,
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
    /// Its volume mounts of subdirectories.
    #[serde(default)]
    pub subpaths: Vec<Subpath>,
}

impl Record {
    pub fn running(&self) -> bool {
        matches!(
            self.state.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }
    pub fn tty(&self) -> bool {
        self.config.tty
    }
    pub fn open_stdin(&self) -> bool {
        self.config.open_stdin
    }
    /// Whether the restart policy restarts the container after this exit.
    pub fn should_restart(&self) -> bool {
        let p = &self.host_config.restart_policy;
        if self.state.manually_stopped {
            return false;
        }
        match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let max = u64::try_from(p.maximum_retry_count).unwrap_or(0);
                self.state.exit_code != 0 && (max == 0 || self.restart_count < max)
            }
            _ => false,
        }
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config.auto_remove
    }
}

pub type Handle = Arc<tokio::sync::Mutex<Record>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_config_with_a_field_of_the_wrong_type_keeps_the_rest() {
        let stored = serde_json::json!({
            "id": "c", "name": "n", "created": "", "image": "i", "image_id": "sha256:x",
            "config": {"Env": "A=1", "Cmd": ["sh"], "Tty": true, "Labels": {"a": "b"}},
            "host_config": {"Privileged": "yes", "Memory": 7}, "path": "sh", "args": [],
            "state": {"status": "exited", "pid": 0, "exit_code": 0, "started_at": "",
                "finished_at": "", "oom_killed": false, "error": ""},
            "restart_count": 0
        });
        let rec: Record = serde_json::from_value(stored).unwrap();
        assert_eq!(rec.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(rec.config.tty && rec.config.env.is_none());
        assert_eq!(rec.config.labels.unwrap()["a"], "b");
        assert!(!rec.host_config.privileged);
        assert_eq!(rec.host_config.resources.memory, 7);
    }
}
