//! A container's health as Docker reports it in `State.Health`.

use berth_api::models;
use serde::{Deserialize, Serialize};

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
    /// As inspect shows it (`State.Health`).
    pub fn view(&self) -> models::Health {
        use models::HealthStatusEnum as S;
        models::Health {
            status: Some(match self.status.as_str() {
                "starting" => S::STARTING,
                "healthy" => S::HEALTHY,
                "unhealthy" => S::UNHEALTHY,
                "none" => S::NONE,
                _ => S::EMPTY,
            }),
            failing_streak: Some(i64::from(self.failing_streak)),
            log: Some(
                self.log
                    .iter()
                    .map(|p| models::HealthcheckResult {
                        start: Some(p.start.clone()),
                        end: Some(p.end.clone()),
                        exit_code: Some(p.exit_code),
                        output: Some(p.output.clone()),
                    })
                    .collect(),
            ),
        }
    }
}
