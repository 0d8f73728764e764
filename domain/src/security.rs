//! Security facts that are recorded but decide nothing: logins and denials.
//! They are appended to a per-actor `security-<id>` stream.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{DomainEvent, EventStatus, Severity};

/// A security fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum SecurityEvent {
    /// A request was refused for lack of permission or scope; nothing changed.
    #[serde(rename = "auth.permission_denied")]
    PermissionDenied { user_id: Uuid, attempted: String, permission: String, error_key: String, reason: String },
    #[serde(rename = "auth.login_succeeded")]
    LoginSucceeded { user_id: Uuid, session_id: Uuid },
    #[serde(rename = "auth.login_failed")]
    LoginFailed { username: String, error_key: String },
}

impl DomainEvent for SecurityEvent {
    fn status(&self) -> EventStatus {
        match self {
            SecurityEvent::LoginSucceeded { .. } => EventStatus::Success,
            _ => EventStatus::Failed,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            SecurityEvent::PermissionDenied { .. } => Severity::Medium,
            SecurityEvent::LoginFailed { .. } => Severity::Low,
            SecurityEvent::LoginSucceeded { .. } => Severity::Info,
        }
    }
}
