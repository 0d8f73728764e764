//! Facts of OpsPilot's work inside Kubernetes clusters (the seed's `k8s.*`
//! dictionary). Release execution records `deploy_apply_*` on a stream of its
//! own per release, scoped to the release so the facts join its timeline.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{DomainEvent, EventStatus, Severity};

/// A Kubernetes fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum K8sEvent {
    /// The release's objects were applied (server-side apply) and rolled out.
    #[serde(rename = "k8s.deploy_apply_succeeded")]
    /// `execution` is the release's execution this outcome belongs to.
    DeployApplySucceeded {
        release_id: Uuid,
        cluster_id: Option<Uuid>,
        operation: String,
        summary: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution: Option<i64>,
    },
    /// Apply or rollout failed; `error_key` from the dictionary.
    #[serde(rename = "k8s.deploy_apply_failed")]
    DeployApplyFailed {
        release_id: Uuid,
        cluster_id: Option<Uuid>,
        operation: String,
        error_key: String,
        summary: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution: Option<i64>,
    },
}

impl DomainEvent for K8sEvent {
    fn status(&self) -> EventStatus {
        match self {
            K8sEvent::DeployApplySucceeded { .. } => EventStatus::Success,
            K8sEvent::DeployApplyFailed { .. } => EventStatus::Failed,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            K8sEvent::DeployApplySucceeded { .. } => Severity::Info,
            K8sEvent::DeployApplyFailed { .. } => Severity::High,
        }
    }
}
