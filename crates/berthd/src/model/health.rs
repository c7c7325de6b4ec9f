//! A container's health as Docker reports it in `State.Health`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// One probe's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

impl Health {
    pub fn to_json(&self) -> Value {
        json!({
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": self.log.iter().map(|p| json!({
                "Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output,
            })).collect::<Vec<_>>(),
        })
    }
}
