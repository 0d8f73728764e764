//! Facts of OpsPilot's work on Docker Compose hosts (the seed's `compose.*`
//! dictionary). A compose release records them on a stream of its own
//! (`compose-release-<id>`), scoped to the release so they join its timeline.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{DomainEvent, EventStatus, Severity};

/// The seed's compose detail: where, which project and file, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeFact {
    pub release_id: Uuid,
    pub environment_id: Uuid,
    pub target_id: Uuid,
    pub host_id: Uuid,
    pub project_name: String,
    pub compose_file: String,
    /// `apply` or `rollback`.
    pub operation: String,
    pub error_key: String,
    pub summary: String,
    /// The release's execution this fact belongs to (absent on previews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<i64>,
}

/// A compose fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ComposeEvent {
    /// The host answered and `docker compose config` accepted the rendered file.
    #[serde(rename = "compose.preflight_succeeded")]
    PreflightSucceeded(ComposeFact),
    #[serde(rename = "compose.preflight_failed")]
    PreflightFailed(ComposeFact),
    /// The rendered file was stored; `sha256` names it.
    #[serde(rename = "compose.config_rendered")]
    ConfigRendered { #[serde(flatten)] fact: ComposeFact, sha256: String },
    #[serde(rename = "compose.up_started")]
    UpStarted(ComposeFact),
    #[serde(rename = "compose.up_succeeded")]
    UpSucceeded(ComposeFact),
    #[serde(rename = "compose.up_failed")]
    UpFailed(ComposeFact),
    /// The containers of the project after an up, as `docker compose ps` reports them.
    #[serde(rename = "compose.ps_collected")]
    PsCollected { #[serde(flatten)] fact: ComposeFact, services: Vec<ComposeService> },
    #[serde(rename = "compose.rollback_started")]
    RollbackStarted(ComposeFact),
    #[serde(rename = "compose.rollback_succeeded")]
    RollbackSucceeded(ComposeFact),
    #[serde(rename = "compose.rollback_failed")]
    RollbackFailed(ComposeFact),
}

/// One container line of `docker compose ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeService {
    pub service: String,
    pub name: String,
    pub state: String,
    pub status: String,
    pub image: String,
}

impl DomainEvent for ComposeEvent {
    fn status(&self) -> EventStatus {
        match self {
            ComposeEvent::PreflightFailed(_) | ComposeEvent::UpFailed(_) | ComposeEvent::RollbackFailed(_) => EventStatus::Failed,
            ComposeEvent::UpStarted(_) | ComposeEvent::RollbackStarted(_) => EventStatus::Running,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            ComposeEvent::RollbackFailed(_) => Severity::Critical,
            ComposeEvent::UpFailed(_) => Severity::High,
            ComposeEvent::PreflightFailed(_) => Severity::Low,
            _ => Severity::Info,
        }
    }
}
