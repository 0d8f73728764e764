//! Release aggregate: one release of a service to a target, from its preview to
//! applied (or failed, rejected, expired, cancelled) and, once applied, through
//! an optional rollback (SPEC §2).
//!
//! A release id is created at preview and the command layer derives the
//! `preview_ref` from it, so a preview belongs to exactly one release and "a
//! preview can be applied once" is the state machine: only a `previewed` release
//! accepts Apply.
//!
//! The event names are the seed's dictionary and nothing else. Where the
//! lifecycle has more states than the dictionary has names, the detail says
//! which one is meant:
//! - `release.applying` starts both an apply and a rollback; `operation`
//!   (`apply` | `rollback`) tells them apart, and a rollback's makes the release
//!   `rolling_back`.
//! - An approval that ends without a decision ends the release with
//!   `release.failed`, whose `error_key` is the reason from the dictionary:
//!   `approval_ticket_expired` (status `expired`) or `release_cancelled` (status
//!   `cancelled`). `release.rejected` stays what an approver said.
//! - A rollback whose approval is rejected, expires or is cancelled never ran:
//!   the release is `applied` again (the events are `release.rejected` and
//!   `release.rollback_failed` with the reason's `error_key`), so the rollback
//!   can be requested again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::approval::{check_comment, value_enum, RiskLevel, TicketStatus};
use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventScope, EventStatus, Severity};

/// Where a release stands; the names, labels and colors shown everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    #[default]
    Draft,
    Previewed,
    PendingApproval,
    Approved,
    Applying,
    Applied,
    Failed,
    Rejected,
    Expired,
    Cancelled,
    RollbackRequested,
    RollingBack,
    RolledBack,
    RollbackFailed,
}
value_enum!(ReleaseStatus, "status" {
    Draft => "draft", Previewed => "previewed", PendingApproval => "pending_approval", Approved => "approved",
    Applying => "applying", Applied => "applied", Failed => "failed", Rejected => "rejected", Expired => "expired",
    Cancelled => "cancelled", RollbackRequested => "rollback_requested", RollingBack => "rolling_back",
    RolledBack => "rolled_back", RollbackFailed => "rollback_failed",
});

impl ReleaseStatus {
    /// `(label_en, label_zh, color)`: the one table every surface reads.
    /// Colors are hex values (Tailwind 600 shades): gray = not started, blue =
    /// previewed, amber = waiting for a person, teal = approved, indigo =
    /// running, green = done, red = failed, orange = rejected, stone = expired,
    /// light gray = cancelled, purple/violet = rollback in progress, cyan =
    /// rolled back, dark red = rollback failed.
    fn presentation(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ReleaseStatus::Draft => ("Draft", "草稿", "#4b5563"),
            ReleaseStatus::Previewed => ("Previewed", "已预览", "#2563eb"),
            ReleaseStatus::PendingApproval => ("Pending approval", "待审批", "#d97706"),
            ReleaseStatus::Approved => ("Approved", "已批准", "#0d9488"),
            ReleaseStatus::Applying => ("Applying", "发布中", "#4f46e5"),
            ReleaseStatus::Applied => ("Applied", "已发布", "#16a34a"),
            ReleaseStatus::Failed => ("Failed", "发布失败", "#dc2626"),
            ReleaseStatus::Rejected => ("Rejected", "已驳回", "#ea580c"),
            ReleaseStatus::Expired => ("Expired", "已过期", "#57534e"),
            ReleaseStatus::Cancelled => ("Cancelled", "已取消", "#9ca3af"),
            ReleaseStatus::RollbackRequested => ("Rollback requested", "已申请回滚", "#9333ea"),
            ReleaseStatus::RollingBack => ("Rolling back", "回滚中", "#7c3aed"),
            ReleaseStatus::RolledBack => ("Rolled back", "已回滚", "#0891b2"),
            ReleaseStatus::RollbackFailed => ("Rollback failed", "回滚失败", "#991b1b"),
        }
    }
    /// English label.
    pub fn label_en(self) -> &'static str {
        self.presentation().0
    }
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        self.presentation().1
    }
    /// Display color, `#rrggbb`.
    pub fn color(self) -> &'static str {
        self.presentation().2
    }
}

/// What an execution (or the approval waiting for it) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    #[default]
    Apply,
    Rollback,
}

/// What is released where: service × target × env × strategy × variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    pub service_id: Uuid,
    pub target_id: Uuid,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub environment_id: Option<String>,
    /// `k8s` or `compose`.
    pub runtime_type: String,
    pub env: String,
    pub strategy: String,
    pub variables: BTreeMap<String, String>,
}

/// The seed's common release detail, carried by every release event so any
/// single event reads on its own in a timeline or the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub release_id: Uuid,
    pub service_id: Uuid,
    pub target_id: Uuid,
    pub runtime_type: String,
    pub env: String,
    pub strategy: String,
    /// `None` until a preview succeeded.
    pub preview_ref: Option<String>,
}

impl ReleaseRef {
    fn of(release_id: Uuid, spec: &ReleaseSpec, preview_ref: Option<String>) -> Self {
        ReleaseRef {
            release_id,
            service_id: spec.service_id,
            target_id: spec.target_id,
            runtime_type: spec.runtime_type.clone(),
            env: spec.env.clone(),
            strategy: spec.strategy.clone(),
            preview_ref,
        }
    }
}

/// Whether the approval policy (evaluated by the command layer) wants a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// A ticket was raised for this apply or rollback.
    Required { ticket: String, risk_level: RiskLevel },
    NotRequired,
}

/// What a release can be asked to do.
#[derive(Debug, Clone)]
pub enum ReleaseCommand {
    /// Saves a draft without previewing it (the console's drafts).
    CreateDraft { release_id: Uuid, spec: ReleaseSpec },
    /// Records a successful preview; on a new release it creates the draft too.
    Preview {
        release_id: Uuid,
        spec: ReleaseSpec,
        preview_ref: String,
        /// sha256 hex of the canonical parameters and the rendered artifact.
        binding_hash: String,
        artifact_digest: String,
        expires_at: DateTime<Utc>,
        warnings: Vec<String>,
        now: DateTime<Utc>,
    },
    PreviewFailed { release_id: Uuid, spec: ReleaseSpec, error_key: ErrorCode, summary: String },
    Apply { presented_binding_hash: String, now: DateTime<Utc>, approval: ApprovalDecision },
    /// The ticket was approved: execution starts (apply or rollback, whichever waits).
    Approve { ticket: String, by: Uuid },
    Reject { ticket: String, by: Uuid, comment: Option<String> },
    ExpireApproval { ticket: String },
    /// Withdraws a release (or rollback) waiting for approval.
    /// Who cancelled is the envelope's actor.
    Cancel { reason: Option<String> },
    /// The execution that started at stream version `execution` applied.
    /// Outcomes name their execution, so a late or repeated outcome of an
    /// execution that is over changes nothing.
    Applied { execution: i64, summary: String },
    Failed { execution: i64, error_key: ErrorCode, summary: String },
    RequestRollback { by: Uuid, target_artifact_release_id: Uuid, approval: ApprovalDecision },
    RollbackCompleted { execution: i64, summary: String },
    RollbackFailed { execution: i64, error_key: ErrorCode, summary: String },
}

/// What a release records; names exactly the seed's dictionary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ReleaseEvent {
    #[serde(rename = "release.draft_created")]
    DraftCreated {
        #[serde(flatten)]
        release: ReleaseRef,
        project_id: Uuid,
        team_id: Uuid,
        environment_id: Option<String>,
        variables: BTreeMap<String, String>,
    },
    #[serde(rename = "release.previewed")]
    Previewed {
        #[serde(flatten)]
        release: ReleaseRef,
        project_id: Uuid,
        team_id: Uuid,
        environment_id: Option<String>,
        variables: BTreeMap<String, String>,
        binding_hash: String,
        artifact_digest: String,
        expires_at: DateTime<Utc>,
        warnings: Vec<String>,
    },
    #[serde(rename = "release.preview_failed")]
    PreviewFailed {
        #[serde(flatten)]
        release: ReleaseRef,
        project_id: Uuid,
        team_id: Uuid,
        environment_id: Option<String>,
        variables: BTreeMap<String, String>,
        error_key: String,
        summary: String,
    },
    #[serde(rename = "release.apply_requested")]
    ApplyRequested {
        #[serde(flatten)]
        release: ReleaseRef,
        binding_hash: String,
    },
    #[serde(rename = "release.pending_approval")]
    PendingApproval {
        #[serde(flatten)]
        release: ReleaseRef,
        approval_ticket: String,
        risk_level: RiskLevel,
        operation: Operation,
    },
    #[serde(rename = "release.approved")]
    Approved {
        #[serde(flatten)]
        release: ReleaseRef,
        approval_ticket: String,
        by: Uuid,
        operation: Operation,
    },
    #[serde(rename = "release.rejected")]
    Rejected {
        #[serde(flatten)]
        release: ReleaseRef,
        approval_ticket: String,
        by: Uuid,
        comment: Option<String>,
        operation: Operation,
    },
    /// Execution starts; for a rollback, `target_artifact_release_id` is the
    /// release whose artifact is re-applied.
    #[serde(rename = "release.applying")]
    Applying {
        #[serde(flatten)]
        release: ReleaseRef,
        operation: Operation,
        approval_ticket: Option<String>,
        target_artifact_release_id: Option<Uuid>,
    },
    #[serde(rename = "release.applied")]
    Applied {
        #[serde(flatten)]
        release: ReleaseRef,
        summary: String,
    },
    /// The apply failed, or its approval expired (`approval_ticket_expired`) or
    /// was cancelled (`release_cancelled`) before it ran.
    #[serde(rename = "release.failed")]
    Failed {
        #[serde(flatten)]
        release: ReleaseRef,
        error_key: String,
        summary: String,
        approval_ticket: Option<String>,
    },
    #[serde(rename = "release.rollback_requested")]
    RollbackRequested {
        #[serde(flatten)]
        release: ReleaseRef,
        by: Uuid,
        target_artifact_release_id: Uuid,
    },
    #[serde(rename = "release.rollback_completed")]
    RollbackCompleted {
        #[serde(flatten)]
        release: ReleaseRef,
        target_artifact_release_id: Uuid,
        summary: String,
    },
    /// The rollback failed, or its approval ended without it running (see the module doc).
    #[serde(rename = "release.rollback_failed")]
    RollbackFailed {
        #[serde(flatten)]
        release: ReleaseRef,
        target_artifact_release_id: Uuid,
        error_key: String,
        summary: String,
        approval_ticket: Option<String>,
    },
}

/// An `error_key` saying an approval ended without anything being executed.
fn ended_before_running(error_key: &str) -> bool {
    error_key == ErrorCode::ApprovalTicketExpired.key() || error_key == ErrorCode::ReleaseCancelled.key()
}

impl DomainEvent for ReleaseEvent {
    fn status(&self) -> EventStatus {
        match self {
            ReleaseEvent::Previewed { warnings, .. } if !warnings.is_empty() => EventStatus::Warning,
            ReleaseEvent::PendingApproval { .. } | ReleaseEvent::Applying { .. } => EventStatus::Running,
            ReleaseEvent::Failed { error_key, .. } | ReleaseEvent::RollbackFailed { error_key, .. } if ended_before_running(error_key) => {
                EventStatus::Warning
            }
            ReleaseEvent::PreviewFailed { .. }
            | ReleaseEvent::Rejected { .. }
            | ReleaseEvent::Failed { .. }
            | ReleaseEvent::RollbackFailed { .. } => EventStatus::Failed,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            ReleaseEvent::Failed { error_key, .. } | ReleaseEvent::RollbackFailed { error_key, .. } if ended_before_running(error_key) => {
                Severity::Low
            }
            // A failed rollback may leave the service on neither version.
            ReleaseEvent::RollbackFailed { .. } => Severity::Critical,
            ReleaseEvent::Failed { .. } => Severity::High,
            ReleaseEvent::Rejected { .. } | ReleaseEvent::RollbackRequested { .. } => Severity::Medium,
            ReleaseEvent::PreviewFailed { .. } => Severity::Low,
            _ => Severity::Info,
        }
    }
}

/// A release's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// `None` until the draft exists.
    pub release: Option<ReleaseRef>,
    pub spec: Option<ReleaseSpec>,
    pub status: ReleaseStatus,
    pub binding_hash: Option<String>,
    pub preview_expires_at: Option<DateTime<Utc>>,
    /// The ticket of the approval pending (or last granted).
    pub approval_ticket: Option<String>,
    /// What the pending approval or the running execution does.
    pub operation: Operation,
    /// The release whose artifact the rollback re-applies.
    pub rollback_target: Option<Uuid>,
    /// The last ticket decided for this release, so a redelivered decision is a no-op.
    pub last_decision: Option<(String, TicketStatus)>,
    /// The stream version of the last event folded (events are numbered from 1).
    pub version: i64,
    /// The execution under way: the stream version of its `release.applying`.
    pub execution: Option<i64>,
    /// The last execution whose outcome is recorded.
    pub last_finished_execution: Option<i64>,
}

/// An execution a release asks for now: what to run, and the version that
/// ties its side effect and its outcome together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueExecution {
    /// The stream version of the `release.applying` that started it.
    pub execution: i64,
    pub operation: Operation,
    /// The release whose previewed artifact is applied (itself, or the rollback's target).
    pub artifact_of: Uuid,
}

impl Release {
    fn existing(&self) -> Result<&ReleaseRef, DomainError> {
        self.release.as_ref().ok_or_else(|| DomainError::new(ErrorCode::ReleaseNotFound, "release does not exist"))
    }

    /// The envelope scope of this release's events, once it exists.
    pub fn scope(&self) -> Option<EventScope> {
        let (r, spec) = (self.release.as_ref()?, self.spec.as_ref()?);
        Some(EventScope {
            environment_id: spec.environment_id.clone(),
            ..EventScope::resource("release", r.release_id).in_project(spec.project_id).in_team(spec.team_id)
        })
    }

    /// The execution still due, if the release is applying or rolling back.
    /// An executor acts only on this: anything else means the effect it was
    /// asked for happened already, or is no longer wanted.
    pub fn execution_due(&self) -> Option<DueExecution> {
        let r = self.release.as_ref()?;
        let execution = self.execution?;
        match (self.status, self.operation) {
            (ReleaseStatus::Applying, Operation::Apply) => Some(DueExecution { execution, operation: Operation::Apply, artifact_of: r.release_id }),
            (ReleaseStatus::RollingBack, Operation::Rollback) => {
                Some(DueExecution { execution, operation: Operation::Rollback, artifact_of: self.rollback_target? })
            }
            _ => None,
        }
    }

    /// The release an outcome of `execution` may be recorded for; `Ok(None)`
    /// when that outcome is recorded already (a repeated delivery).
    fn finishing(&self, execution: i64, operation: Operation, action: &str) -> Result<Option<&ReleaseRef>, DomainError> {
        let r = self.existing()?;
        match self.execution_due() {
            Some(due) if due.execution == execution && due.operation == operation => Ok(Some(r)),
            _ if self.last_finished_execution == Some(execution) => Ok(None),
            _ => Err(self.state_invalid(action)),
        }
    }

    fn state_invalid(&self, action: &str) -> DomainError {
        DomainError::new(ErrorCode::ReleaseStateInvalid, format!("cannot {action} a release that is {}", self.status.as_str()))
    }

    /// The ticket an approval decision names must be the one pending. A
    /// decision already recorded for the same ticket is a redelivery: `Ok(None)`.
    fn pending_ticket(&self, ticket: &str, decision: TicketStatus, action: &str) -> Result<Option<&ReleaseRef>, DomainError> {
        let r = self.existing()?;
        if self.status != ReleaseStatus::PendingApproval {
            return match &self.last_decision {
                Some((t, d)) if t == ticket && *d == decision => Ok(None),
                _ => Err(self.state_invalid(action)),
            };
        }
        if self.approval_ticket.as_deref() != Some(ticket) {
            return Err(DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, format!("ticket {ticket} was not raised for this release")));
        }
        Ok(Some(r))
    }

    /// What execution waits on after an approval: apply or rollback.
    fn applying(&self, r: &ReleaseRef, approval_ticket: Option<String>) -> ReleaseEvent {
        ReleaseEvent::Applying {
            release: r.clone(),
            operation: self.operation,
            approval_ticket,
            target_artifact_release_id: if self.operation == Operation::Rollback { self.rollback_target } else { None },
        }
    }

    /// Ends a pending approval that was neither approved nor rejected.
    fn end_pending(&self, r: &ReleaseRef, error_key: ErrorCode, summary: String) -> ReleaseEvent {
        let (release, error_key, approval_ticket) = (r.clone(), error_key.key().to_string(), self.approval_ticket.clone());
        match (self.operation, self.rollback_target) {
            (Operation::Rollback, Some(target_artifact_release_id)) => {
                ReleaseEvent::RollbackFailed { release, target_artifact_release_id, error_key, summary, approval_ticket }
            }
            _ => ReleaseEvent::Failed { release, error_key, summary, approval_ticket },
        }
    }
}

fn check_spec(spec: &ReleaseSpec) -> Result<(), DomainError> {
    if !matches!(spec.runtime_type.as_str(), "k8s" | "compose") {
        return Err(DomainError::validation("runtime_type", "k8s or compose"));
    }
    if spec.env.trim().is_empty() {
        return Err(DomainError::validation("env", "must not be empty"));
    }
    if spec.strategy.trim().is_empty() {
        return Err(DomainError::validation("strategy", "must not be empty"));
    }
    if spec.variables.keys().any(|k| k.trim().is_empty()) {
        return Err(DomainError::validation("variables", "names must not be empty"));
    }
    Ok(())
}

fn check_ticket(approval: &ApprovalDecision) -> Result<(), DomainError> {
    match approval {
        ApprovalDecision::Required { ticket, .. } if ticket.trim().is_empty() => Err(DomainError::validation("approval_ticket", "must not be empty")),
        _ => Ok(()),
    }
}

impl Aggregate for Release {
    type Command = ReleaseCommand;
    type Event = ReleaseEvent;
    const KIND: &'static str = "release";

    fn decide(&self, command: ReleaseCommand) -> Result<Vec<ReleaseEvent>, DomainError> {
        // The draft event a first preview (or failed preview) records before its own.
        let draft = |release_id: Uuid, spec: &ReleaseSpec| -> Result<Vec<ReleaseEvent>, DomainError> {
            match &self.release {
                None => Ok(vec![ReleaseEvent::DraftCreated {
                    release: ReleaseRef::of(release_id, spec, None),
                    project_id: spec.project_id,
                    team_id: spec.team_id,
                    environment_id: spec.environment_id.clone(),
                    variables: spec.variables.clone(),
                }]),
                Some(r) if r.release_id != release_id => Err(DomainError::validation("release_id", "does not name this release")),
                // Decision: a release is previewed once; previewing again (e.g.
                // after expiry) is a new release, so a preview_ref never names two
                // previews. Only a draft whose preview failed may try again.
                Some(_) if self.status == ReleaseStatus::Draft => Ok(vec![]),
                Some(_) => Err(self.state_invalid("preview")),
            }
        };
        match command {
            ReleaseCommand::CreateDraft { release_id, spec } => {
                if self.release.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("release {release_id} already exists")));
                }
                check_spec(&spec)?;
                draft(release_id, &spec)
            }
            ReleaseCommand::Preview { release_id, spec, preview_ref, binding_hash, artifact_digest, expires_at, warnings, now } => {
                check_spec(&spec)?;
                if preview_ref.trim().is_empty() {
                    return Err(DomainError::validation("preview_ref", "must not be empty"));
                }
                if binding_hash.len() != 64 || !binding_hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(DomainError::validation("binding_hash", "a lowercase sha256 hex digest"));
                }
                if artifact_digest.trim().is_empty() {
                    return Err(DomainError::validation("artifact_digest", "must not be empty"));
                }
                if expires_at <= now {
                    return Err(DomainError::validation("expires_at", "must lie in the future"));
                }
                let mut events = draft(release_id, &spec)?;
                events.push(ReleaseEvent::Previewed {
                    release: ReleaseRef::of(release_id, &spec, Some(preview_ref)),
                    project_id: spec.project_id,
                    team_id: spec.team_id,
                    environment_id: spec.environment_id,
                    variables: spec.variables,
                    binding_hash,
                    artifact_digest,
                    expires_at,
                    warnings,
                });
                Ok(events)
            }
            ReleaseCommand::PreviewFailed { release_id, spec, error_key, summary } => {
                let mut events = draft(release_id, &spec)?;
                events.push(ReleaseEvent::PreviewFailed {
                    release: ReleaseRef::of(release_id, &spec, None),
                    project_id: spec.project_id,
                    team_id: spec.team_id,
                    environment_id: spec.environment_id,
                    variables: spec.variables,
                    error_key: error_key.key().into(),
                    summary,
                });
                Ok(events)
            }
            ReleaseCommand::Apply { presented_binding_hash, now, approval } => {
                let preview_required = || DomainError::new(ErrorCode::PreviewRequired, "no successful preview to apply");
                let r = self.release.as_ref().ok_or_else(preview_required)?;
                match self.status {
                    ReleaseStatus::Previewed => {}
                    ReleaseStatus::Draft => return Err(preview_required()),
                    // Includes a second apply of the same preview.
                    _ => return Err(self.state_invalid("apply")),
                }
                if presented_binding_hash.is_empty() {
                    return Err(preview_required());
                }
                if self.preview_expires_at.is_some_and(|at| now > at) {
                    return Err(DomainError::new(ErrorCode::PreviewExpired, format!("preview expired at {}", self.preview_expires_at.unwrap())));
                }
                if self.binding_hash.as_deref() != Some(presented_binding_hash.as_str()) {
                    return Err(DomainError::new(ErrorCode::PreviewMismatch, "parameters or target differ from the preview"));
                }
                check_ticket(&approval)?;
                let requested = ReleaseEvent::ApplyRequested { release: r.clone(), binding_hash: presented_binding_hash };
                Ok(vec![
                    requested,
                    match approval {
                        ApprovalDecision::Required { ticket, risk_level } => {
                            ReleaseEvent::PendingApproval { release: r.clone(), approval_ticket: ticket, risk_level, operation: Operation::Apply }
                        }
                        ApprovalDecision::NotRequired => ReleaseEvent::Applying {
                            release: r.clone(),
                            operation: Operation::Apply,
                            approval_ticket: None,
                            target_artifact_release_id: None,
                        },
                    },
                ])
            }
            ReleaseCommand::Approve { ticket, by } => {
                let Some(r) = self.pending_ticket(&ticket, TicketStatus::Approved, "approve")? else { return Ok(vec![]) };
                Ok(vec![
                    ReleaseEvent::Approved { release: r.clone(), approval_ticket: ticket.clone(), by, operation: self.operation },
                    self.applying(r, Some(ticket)),
                ])
            }
            ReleaseCommand::Reject { ticket, by, comment } => {
                check_comment("comment", comment.as_deref())?;
                let Some(r) = self.pending_ticket(&ticket, TicketStatus::Rejected, "reject")? else { return Ok(vec![]) };
                Ok(vec![ReleaseEvent::Rejected { release: r.clone(), approval_ticket: ticket, by, comment, operation: self.operation }])
            }
            ReleaseCommand::ExpireApproval { ticket } => {
                let Some(r) = self.pending_ticket(&ticket, TicketStatus::Expired, "expire the approval of")? else { return Ok(vec![]) };
                Ok(vec![self.end_pending(r, ErrorCode::ApprovalTicketExpired, format!("approval ticket {ticket} expired"))])
            }
            ReleaseCommand::Cancel { reason } => {
                let r = self.existing()?;
                check_comment("reason", reason.as_deref())?;
                match self.status {
                    ReleaseStatus::PendingApproval => {
                        Ok(vec![self.end_pending(r, ErrorCode::ReleaseCancelled, reason.unwrap_or_else(|| "cancelled before it ran".into()))])
                    }
                    ReleaseStatus::Cancelled => Ok(vec![]),
                    _ => Err(self.state_invalid("cancel")),
                }
            }
            ReleaseCommand::Applied { execution, summary } => {
                let Some(r) = self.finishing(execution, Operation::Apply, "complete")? else { return Ok(vec![]) };
                Ok(vec![ReleaseEvent::Applied { release: r.clone(), summary }])
            }
            ReleaseCommand::Failed { execution, error_key, summary } => {
                let Some(r) = self.finishing(execution, Operation::Apply, "fail")? else { return Ok(vec![]) };
                Ok(vec![ReleaseEvent::Failed { release: r.clone(), error_key: error_key.key().into(), summary, approval_ticket: self.approval_ticket.clone() }])
            }
            ReleaseCommand::RequestRollback { by, target_artifact_release_id, approval } => {
                let r = self.existing()?;
                if self.status != ReleaseStatus::Applied {
                    return Err(self.state_invalid("roll back"));
                }
                if target_artifact_release_id == r.release_id {
                    return Err(DomainError::validation("target_artifact_release_id", "a rollback re-applies an earlier release's artifact"));
                }
                check_ticket(&approval)?;
                let requested = ReleaseEvent::RollbackRequested { release: r.clone(), by, target_artifact_release_id };
                Ok(vec![
                    requested,
                    match approval {
                        ApprovalDecision::Required { ticket, risk_level } => {
                            ReleaseEvent::PendingApproval { release: r.clone(), approval_ticket: ticket, risk_level, operation: Operation::Rollback }
                        }
                        ApprovalDecision::NotRequired => ReleaseEvent::Applying {
                            release: r.clone(),
                            operation: Operation::Rollback,
                            approval_ticket: None,
                            target_artifact_release_id: Some(target_artifact_release_id),
                        },
                    },
                ])
            }
            ReleaseCommand::RollbackCompleted { execution, summary } => {
                let Some(r) = self.finishing(execution, Operation::Rollback, "complete the rollback of")? else { return Ok(vec![]) };
                let target_artifact_release_id = self.rollback_target.expect("a due rollback has a target");
                Ok(vec![ReleaseEvent::RollbackCompleted { release: r.clone(), target_artifact_release_id, summary }])
            }
            ReleaseCommand::RollbackFailed { execution, error_key, summary } => {
                let Some(r) = self.finishing(execution, Operation::Rollback, "fail the rollback of")? else { return Ok(vec![]) };
                Ok(vec![ReleaseEvent::RollbackFailed {
                    release: r.clone(),
                    target_artifact_release_id: self.rollback_target.expect("a due rollback has a target"),
                    error_key: error_key.key().into(),
                    summary,
                    approval_ticket: self.approval_ticket.clone(),
                }])
            }
        }
    }

    fn evolve(mut self, event: &ReleaseEvent) -> Self {
        let decided = |s: &Self| s.approval_ticket.clone().unwrap_or_default();
        self.version += 1;
        // An outcome of the execution under way ends it.
        if matches!(
            (event, self.status),
            (ReleaseEvent::Applied { .. } | ReleaseEvent::Failed { .. }, ReleaseStatus::Applying)
                | (ReleaseEvent::RollbackCompleted { .. } | ReleaseEvent::RollbackFailed { .. }, ReleaseStatus::RollingBack)
        ) {
            self.last_finished_execution = self.execution.take();
        }
        match event {
            ReleaseEvent::DraftCreated { release, project_id, team_id, environment_id, variables }
            | ReleaseEvent::PreviewFailed { release, project_id, team_id, environment_id, variables, .. } => {
                self.spec = Some(spec_of(release, *project_id, *team_id, environment_id, variables));
                self.release = Some(release.clone());
                self.status = ReleaseStatus::Draft;
            }
            ReleaseEvent::Previewed { release, project_id, team_id, environment_id, variables, binding_hash, expires_at, .. } => {
                self.spec = Some(spec_of(release, *project_id, *team_id, environment_id, variables));
                self.release = Some(release.clone());
                self.binding_hash = Some(binding_hash.clone());
                self.preview_expires_at = Some(*expires_at);
                self.status = ReleaseStatus::Previewed;
            }
            ReleaseEvent::ApplyRequested { .. } => self.operation = Operation::Apply,
            ReleaseEvent::PendingApproval { approval_ticket, operation, .. } => {
                self.approval_ticket = Some(approval_ticket.clone());
                self.operation = *operation;
                self.status = ReleaseStatus::PendingApproval;
            }
            ReleaseEvent::Approved { approval_ticket, .. } => {
                self.last_decision = Some((approval_ticket.clone(), TicketStatus::Approved));
                self.status = ReleaseStatus::Approved;
            }
            ReleaseEvent::Rejected { approval_ticket, operation, .. } => {
                self.last_decision = Some((approval_ticket.clone(), TicketStatus::Rejected));
                self.status = if *operation == Operation::Rollback { ReleaseStatus::Applied } else { ReleaseStatus::Rejected };
            }
            ReleaseEvent::Applying { operation, .. } => {
                self.execution = Some(self.version);
                self.operation = *operation;
                self.status = if *operation == Operation::Rollback { ReleaseStatus::RollingBack } else { ReleaseStatus::Applying };
            }
            ReleaseEvent::Applied { .. } => self.status = ReleaseStatus::Applied,
            ReleaseEvent::Failed { error_key, .. } => {
                self.status = match self.status {
                    ReleaseStatus::PendingApproval if error_key == ErrorCode::ApprovalTicketExpired.key() => {
                        self.last_decision = Some((decided(&self), TicketStatus::Expired));
                        ReleaseStatus::Expired
                    }
                    ReleaseStatus::PendingApproval => {
                        self.last_decision = Some((decided(&self), TicketStatus::Cancelled));
                        ReleaseStatus::Cancelled
                    }
                    _ => ReleaseStatus::Failed,
                };
            }
            ReleaseEvent::RollbackRequested { target_artifact_release_id, .. } => {
                self.rollback_target = Some(*target_artifact_release_id);
                self.operation = Operation::Rollback;
                self.status = ReleaseStatus::RollbackRequested;
            }
            ReleaseEvent::RollbackCompleted { .. } => self.status = ReleaseStatus::RolledBack,
            ReleaseEvent::RollbackFailed { error_key, .. } => {
                self.status = match self.status {
                    // The rollback never ran: the applied artifact is still live.
                    ReleaseStatus::PendingApproval => {
                        let decision = if error_key == ErrorCode::ApprovalTicketExpired.key() { TicketStatus::Expired } else { TicketStatus::Cancelled };
                        self.last_decision = Some((decided(&self), decision));
                        ReleaseStatus::Applied
                    }
                    _ => ReleaseStatus::RollbackFailed,
                };
            }
        }
        self
    }
}

fn spec_of(r: &ReleaseRef, project_id: Uuid, team_id: Uuid, environment_id: &Option<String>, variables: &BTreeMap<String, String>) -> ReleaseSpec {
    ReleaseSpec {
        service_id: r.service_id,
        target_id: r.target_id,
        project_id,
        team_id,
        environment_id: environment_id.clone(),
        runtime_type: r.runtime_type.clone(),
        env: r.env.clone(),
        strategy: r.strategy.clone(),
        variables: variables.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;
    use chrono::{Duration, TimeZone};

    const RELEASE: Uuid = Uuid::from_u128(9001);
    const EARLIER: Uuid = Uuid::from_u128(9000);
    const APPROVER: Uuid = Uuid::from_u128(3);
    const DEV: Uuid = Uuid::from_u128(12);
    const TICKET: &str = "dep-appr-9001";
    const ROLLBACK_TICKET: &str = "dep-appr-9001-rb";

    fn t(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 26, 12, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn spec() -> ReleaseSpec {
        ReleaseSpec {
            service_id: Uuid::from_u128(501),
            target_id: Uuid::from_u128(801),
            project_id: Uuid::from_u128(11),
            team_id: Uuid::from_u128(7),
            environment_id: Some("env-k8s-prod".into()),
            runtime_type: "k8s".into(),
            env: "production".into(),
            strategy: "rolling".into(),
            variables: [("image".to_string(), "svc-a:v2.0.1".to_string())].into(),
        }
    }

    fn draft_ref() -> ReleaseRef {
        ReleaseRef::of(RELEASE, &spec(), None)
    }

    fn rel() -> ReleaseRef {
        ReleaseRef::of(RELEASE, &spec(), Some("rel-prev-9001".into()))
    }

    fn preview() -> ReleaseCommand {
        ReleaseCommand::Preview {
            release_id: RELEASE,
            spec: spec(),
            preview_ref: "rel-prev-9001".into(),
            binding_hash: hash('a'),
            artifact_digest: format!("sha256:{}", hash('d')),
            expires_at: t(30),
            warnings: vec![],
            now: t(0),
        }
    }

    fn draft_created() -> ReleaseEvent {
        let s = spec();
        ReleaseEvent::DraftCreated { release: draft_ref(), project_id: s.project_id, team_id: s.team_id, environment_id: s.environment_id, variables: s.variables }
    }

    fn previewed() -> ReleaseEvent {
        let s = spec();
        ReleaseEvent::Previewed {
            release: rel(),
            project_id: s.project_id,
            team_id: s.team_id,
            environment_id: s.environment_id,
            variables: s.variables,
            binding_hash: hash('a'),
            artifact_digest: format!("sha256:{}", hash('d')),
            expires_at: t(30),
            warnings: vec![],
        }
    }

    fn apply(approval: ApprovalDecision) -> ReleaseCommand {
        ReleaseCommand::Apply { presented_binding_hash: hash('a'), now: t(5), approval }
    }

    fn required(ticket: &str) -> ApprovalDecision {
        ApprovalDecision::Required { ticket: ticket.into(), risk_level: RiskLevel::High }
    }

    fn apply_requested() -> ReleaseEvent {
        ReleaseEvent::ApplyRequested { release: rel(), binding_hash: hash('a') }
    }

    fn pending(ticket: &str, operation: Operation) -> ReleaseEvent {
        ReleaseEvent::PendingApproval { release: rel(), approval_ticket: ticket.into(), risk_level: RiskLevel::High, operation }
    }

    fn approved(ticket: &str, operation: Operation) -> ReleaseEvent {
        ReleaseEvent::Approved { release: rel(), approval_ticket: ticket.into(), by: APPROVER, operation }
    }

    fn applying(ticket: Option<&str>) -> ReleaseEvent {
        ReleaseEvent::Applying { release: rel(), operation: Operation::Apply, approval_ticket: ticket.map(Into::into), target_artifact_release_id: None }
    }

    fn rolling_back(ticket: Option<&str>) -> ReleaseEvent {
        ReleaseEvent::Applying {
            release: rel(),
            operation: Operation::Rollback,
            approval_ticket: ticket.map(Into::into),
            target_artifact_release_id: Some(EARLIER),
        }
    }

    fn rejected() -> ReleaseEvent {
        ReleaseEvent::Rejected { release: rel(), approval_ticket: TICKET.into(), by: APPROVER, comment: Some("not in the change window".into()), operation: Operation::Apply }
    }

    fn awaiting_approval() -> Vec<ReleaseEvent> {
        vec![draft_created(), previewed(), apply_requested(), pending(TICKET, Operation::Apply)]
    }

    fn applied_release() -> Vec<ReleaseEvent> {
        vec![draft_created(), previewed(), apply_requested(), applying(None), ReleaseEvent::Applied { release: rel(), summary: "3/3 ready".into() }]
    }

    fn rollback_requested() -> ReleaseEvent {
        ReleaseEvent::RollbackRequested { release: rel(), by: DEV, target_artifact_release_id: EARLIER }
    }

    fn status_after(events: &[ReleaseEvent]) -> ReleaseStatus {
        Release::fold(events.iter()).status
    }

    /// The execution a history has under way.
    fn due(events: &[ReleaseEvent]) -> i64 {
        Release::fold(events.iter()).execution_due().expect("an execution is due").execution
    }

    #[test]
    fn a_first_preview_creates_the_draft_and_records_the_preview() {
        given::<Release>(vec![]).when(preview()).then_expect_events(vec![draft_created(), previewed()]);
        assert_eq!(status_after(&[draft_created(), previewed()]), ReleaseStatus::Previewed);
    }

    #[test]
    fn a_failed_preview_leaves_a_draft_that_may_be_previewed_again() {
        let failed = ReleaseEvent::PreviewFailed {
            release: draft_ref(),
            project_id: spec().project_id,
            team_id: spec().team_id,
            environment_id: spec().environment_id,
            variables: spec().variables,
            error_key: "cluster_connect_failed".into(),
            summary: "dry-run refused".into(),
        };
        given::<Release>(vec![])
            .when(ReleaseCommand::PreviewFailed { release_id: RELEASE, spec: spec(), error_key: ErrorCode::ClusterConnectFailed, summary: "dry-run refused".into() })
            .then_expect_events(vec![draft_created(), failed.clone()]);
        given::<Release>(vec![draft_created(), failed.clone()]).when(preview()).then_expect_events(vec![previewed()]);
        given::<Release>(vec![draft_created(), failed]).when(apply(ApprovalDecision::NotRequired)).then_expect_error(ErrorCode::PreviewRequired);
    }

    #[test]
    fn a_release_is_previewed_once() {
        given::<Release>(vec![draft_created(), previewed()]).when(preview()).then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn a_preview_needs_a_sha256_binding_and_a_known_runtime() {
        let mut bad_hash = preview();
        if let ReleaseCommand::Preview { binding_hash, .. } = &mut bad_hash {
            *binding_hash = "not-a-hash".into();
        }
        given::<Release>(vec![]).when(bad_hash).then_expect_error(ErrorCode::ValidationError);
        let mut bad_runtime = preview();
        if let ReleaseCommand::Preview { spec, .. } = &mut bad_runtime {
            spec.runtime_type = "nomad".into();
        }
        given::<Release>(vec![]).when(bad_runtime).then_expect_error(ErrorCode::ValidationError);
    }

    #[test]
    fn main_path_apply_waits_for_approval_and_approval_starts_execution() {
        given::<Release>(vec![draft_created(), previewed()])
            .when(apply(required(TICKET)))
            .then_expect_events(vec![apply_requested(), pending(TICKET, Operation::Apply)]);
        assert_eq!(status_after(&awaiting_approval()), ReleaseStatus::PendingApproval);
        given::<Release>(awaiting_approval())
            .when(ReleaseCommand::Approve { ticket: TICKET.into(), by: APPROVER })
            .then_expect_events(vec![approved(TICKET, Operation::Apply), applying(Some(TICKET))]);
        let mut running = awaiting_approval();
        running.extend([approved(TICKET, Operation::Apply), applying(Some(TICKET))]);
        assert_eq!(status_after(&running), ReleaseStatus::Applying);
        given::<Release>(running.clone())
            .when(ReleaseCommand::Applied { execution: due(&running), summary: "3/3 ready".into() })
            .then_expect_events(vec![ReleaseEvent::Applied { release: rel(), summary: "3/3 ready".into() }]);
        running.push(ReleaseEvent::Applied { release: rel(), summary: "3/3 ready".into() });
        assert_eq!(status_after(&running), ReleaseStatus::Applied);
    }

    #[test]
    fn an_outcome_names_its_execution_and_a_repeated_one_changes_nothing() {
        let mut history = vec![draft_created(), previewed(), apply_requested(), applying(None)];
        let execution = due(&history);
        assert_eq!(execution, 4, "the stream version of release.applying");
        given::<Release>(history.clone())
            .when(ReleaseCommand::Applied { execution: execution + 1, summary: String::new() })
            .then_expect_error(ErrorCode::ReleaseStateInvalid);
        history.push(ReleaseEvent::Applied { release: rel(), summary: "3/3 ready".into() });
        assert_eq!(Release::fold(history.iter()).execution_due(), None, "nothing is due once applied");
        given::<Release>(history.clone()).when(ReleaseCommand::Applied { execution, summary: "again".into() }).then_expect_events(vec![]);
        given::<Release>(history.clone())
            .when(ReleaseCommand::Failed { execution, error_key: ErrorCode::ReleaseApplyFailed, summary: "late".into() })
            .then_expect_events(vec![]);
        // A rollback is a new execution: the apply's outcome does not end it.
        history.extend([rollback_requested(), rolling_back(None)]);
        let rollback = Release::fold(history.iter()).execution_due().unwrap();
        assert_eq!((rollback.operation, rollback.artifact_of), (Operation::Rollback, EARLIER));
        given::<Release>(history).when(ReleaseCommand::Applied { execution, summary: String::new() }).then_expect_events(vec![]);
    }

    #[test]
    fn without_approval_apply_goes_straight_to_applying() {
        given::<Release>(vec![draft_created(), previewed()])
            .when(apply(ApprovalDecision::NotRequired))
            .then_expect_events(vec![apply_requested(), applying(None)]);
    }

    #[test]
    fn a_failed_apply_ends_the_release_with_its_error_key() {
        let history = vec![draft_created(), previewed(), apply_requested(), applying(None)];
        let failed = ReleaseEvent::Failed { release: rel(), error_key: "release_apply_failed".into(), summary: "rollout deadline".into(), approval_ticket: None };
        given::<Release>(history.clone())
            .when(ReleaseCommand::Failed { execution: due(&history), error_key: ErrorCode::ReleaseApplyFailed, summary: "rollout deadline".into() })
            .then_expect_events(vec![failed.clone()]);
        let mut ended = history;
        ended.push(failed.clone());
        assert_eq!(status_after(&ended), ReleaseStatus::Failed);
        assert_eq!((failed.status(), failed.severity()), (EventStatus::Failed, Severity::High));
    }

    #[test]
    fn a_rejected_release_never_applies() {
        given::<Release>(awaiting_approval())
            .when(ReleaseCommand::Reject { ticket: TICKET.into(), by: APPROVER, comment: Some("not in the change window".into()) })
            .then_expect_events(vec![rejected()]);
        let mut history = awaiting_approval();
        history.push(rejected());
        assert_eq!(status_after(&history), ReleaseStatus::Rejected);
        given::<Release>(history.clone()).when(ReleaseCommand::Applied { execution: 4, summary: String::new() }).then_expect_error(ErrorCode::ReleaseStateInvalid);
        given::<Release>(history).when(apply(ApprovalDecision::NotRequired)).then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn apply_refuses_an_expired_or_mismatched_or_missing_preview() {
        given::<Release>(vec![draft_created(), previewed()])
            .when(ReleaseCommand::Apply { presented_binding_hash: hash('a'), now: t(31), approval: ApprovalDecision::NotRequired })
            .then_expect_error(ErrorCode::PreviewExpired);
        given::<Release>(vec![draft_created(), previewed()])
            .when(ReleaseCommand::Apply { presented_binding_hash: hash('b'), now: t(5), approval: ApprovalDecision::NotRequired })
            .then_expect_error(ErrorCode::PreviewMismatch);
        given::<Release>(vec![]).when(apply(ApprovalDecision::NotRequired)).then_expect_error(ErrorCode::PreviewRequired);
        given::<Release>(vec![draft_created(), previewed()])
            .when(ReleaseCommand::Apply { presented_binding_hash: String::new(), now: t(5), approval: ApprovalDecision::NotRequired })
            .then_expect_error(ErrorCode::PreviewRequired);
        // Exactly at expires_at the preview is still valid.
        given::<Release>(vec![draft_created(), previewed()])
            .when(ReleaseCommand::Apply { presented_binding_hash: hash('a'), now: t(30), approval: ApprovalDecision::NotRequired })
            .then_expect_events(vec![apply_requested(), applying(None)]);
    }

    #[test]
    fn a_preview_is_applied_once() {
        given::<Release>(awaiting_approval()).when(apply(required(TICKET))).then_expect_error(ErrorCode::ReleaseStateInvalid);
        given::<Release>(applied_release()).when(apply(ApprovalDecision::NotRequired)).then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn racing_decisions_yield_one_outcome_and_redelivery_is_harmless() {
        let mut after_reject = awaiting_approval();
        after_reject.push(rejected());
        given::<Release>(after_reject.clone())
            .when(ReleaseCommand::Approve { ticket: TICKET.into(), by: APPROVER })
            .then_expect_error(ErrorCode::ReleaseStateInvalid);
        given::<Release>(after_reject)
            .when(ReleaseCommand::Reject { ticket: TICKET.into(), by: APPROVER, comment: None })
            .then_expect_events(vec![]);
        let mut after_approve = awaiting_approval();
        after_approve.extend([approved(TICKET, Operation::Apply), applying(Some(TICKET))]);
        given::<Release>(after_approve.clone())
            .when(ReleaseCommand::Approve { ticket: TICKET.into(), by: APPROVER })
            .then_expect_events(vec![]);
        given::<Release>(after_approve)
            .when(ReleaseCommand::Reject { ticket: TICKET.into(), by: APPROVER, comment: None })
            .then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn an_approval_of_another_ticket_is_a_scope_mismatch() {
        given::<Release>(awaiting_approval())
            .when(ReleaseCommand::Approve { ticket: "dep-appr-other".into(), by: APPROVER })
            .then_expect_error(ErrorCode::ApprovalTicketScopeMismatch);
    }

    #[test]
    fn an_expired_or_cancelled_approval_ends_the_release_before_it_runs() {
        let expired = ReleaseEvent::Failed {
            release: rel(),
            error_key: "approval_ticket_expired".into(),
            summary: format!("approval ticket {TICKET} expired"),
            approval_ticket: Some(TICKET.into()),
        };
        given::<Release>(awaiting_approval()).when(ReleaseCommand::ExpireApproval { ticket: TICKET.into() }).then_expect_events(vec![expired.clone()]);
        let mut history = awaiting_approval();
        history.push(expired.clone());
        assert_eq!(status_after(&history), ReleaseStatus::Expired);
        assert_eq!(expired.status(), EventStatus::Warning);
        given::<Release>(history.clone()).when(ReleaseCommand::ExpireApproval { ticket: TICKET.into() }).then_expect_events(vec![]);
        given::<Release>(history).when(ReleaseCommand::Approve { ticket: TICKET.into(), by: APPROVER }).then_expect_error(ErrorCode::ReleaseStateInvalid);

        let cancelled = ReleaseEvent::Failed {
            release: rel(),
            error_key: "release_cancelled".into(),
            summary: "wrong image".into(),
            approval_ticket: Some(TICKET.into()),
        };
        given::<Release>(awaiting_approval())
            .when(ReleaseCommand::Cancel { reason: Some("wrong image".into()) })
            .then_expect_events(vec![cancelled.clone()]);
        let mut history = awaiting_approval();
        history.push(cancelled);
        assert_eq!(status_after(&history), ReleaseStatus::Cancelled);
        given::<Release>(history).when(ReleaseCommand::Cancel { reason: None }).then_expect_events(vec![]);
        given::<Release>(applied_release()).when(ReleaseCommand::Cancel { reason: None }).then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn a_rollback_without_approval_re_applies_the_earlier_artifact() {
        given::<Release>(applied_release())
            .when(ReleaseCommand::RequestRollback { by: DEV, target_artifact_release_id: EARLIER, approval: ApprovalDecision::NotRequired })
            .then_expect_events(vec![rollback_requested(), rolling_back(None)]);
        let mut history = applied_release();
        history.extend([rollback_requested(), rolling_back(None)]);
        assert_eq!(status_after(&history), ReleaseStatus::RollingBack);
        let completed = ReleaseEvent::RollbackCompleted { release: rel(), target_artifact_release_id: EARLIER, summary: "2/2 ready".into() };
        given::<Release>(history.clone())
            .when(ReleaseCommand::RollbackCompleted { execution: due(&history), summary: "2/2 ready".into() })
            .then_expect_events(vec![completed.clone()]);
        let mut done = history.clone();
        done.push(completed);
        assert_eq!(status_after(&done), ReleaseStatus::RolledBack);
        let failed = ReleaseEvent::RollbackFailed {
            release: rel(),
            target_artifact_release_id: EARLIER,
            error_key: "release_rollback_failed".into(),
            summary: "image pull".into(),
            approval_ticket: None,
        };
        given::<Release>(history.clone())
            .when(ReleaseCommand::RollbackFailed { execution: due(&history), error_key: ErrorCode::ReleaseRollbackFailed, summary: "image pull".into() })
            .then_expect_events(vec![failed.clone()]);
        history.push(failed.clone());
        assert_eq!(status_after(&history), ReleaseStatus::RollbackFailed);
        assert_eq!(failed.severity(), Severity::Critical);
    }

    #[test]
    fn a_rollback_with_approval_waits_then_rolls_back() {
        given::<Release>(applied_release())
            .when(ReleaseCommand::RequestRollback { by: DEV, target_artifact_release_id: EARLIER, approval: required(ROLLBACK_TICKET) })
            .then_expect_events(vec![rollback_requested(), pending(ROLLBACK_TICKET, Operation::Rollback)]);
        let mut history = applied_release();
        history.extend([rollback_requested(), pending(ROLLBACK_TICKET, Operation::Rollback)]);
        assert_eq!(status_after(&history), ReleaseStatus::PendingApproval);
        given::<Release>(history)
            .when(ReleaseCommand::Approve { ticket: ROLLBACK_TICKET.into(), by: APPROVER })
            .then_expect_events(vec![approved(ROLLBACK_TICKET, Operation::Rollback), rolling_back(Some(ROLLBACK_TICKET))]);
    }

    #[test]
    fn a_rollback_whose_approval_ends_without_it_leaves_the_release_applied() {
        let mut history = applied_release();
        history.extend([rollback_requested(), pending(ROLLBACK_TICKET, Operation::Rollback)]);
        let rejected = ReleaseEvent::Rejected { release: rel(), approval_ticket: ROLLBACK_TICKET.into(), by: APPROVER, comment: None, operation: Operation::Rollback };
        given::<Release>(history.clone())
            .when(ReleaseCommand::Reject { ticket: ROLLBACK_TICKET.into(), by: APPROVER, comment: None })
            .then_expect_events(vec![rejected.clone()]);
        let expired = ReleaseEvent::RollbackFailed {
            release: rel(),
            target_artifact_release_id: EARLIER,
            error_key: "approval_ticket_expired".into(),
            summary: format!("approval ticket {ROLLBACK_TICKET} expired"),
            approval_ticket: Some(ROLLBACK_TICKET.into()),
        };
        given::<Release>(history.clone()).when(ReleaseCommand::ExpireApproval { ticket: ROLLBACK_TICKET.into() }).then_expect_events(vec![expired.clone()]);
        for ending in [rejected, expired] {
            let mut ended = history.clone();
            ended.push(ending);
            assert_eq!(status_after(&ended), ReleaseStatus::Applied);
            given::<Release>(ended)
                .when(ReleaseCommand::RequestRollback { by: DEV, target_artifact_release_id: EARLIER, approval: ApprovalDecision::NotRequired })
                .then_expect_events(vec![rollback_requested(), rolling_back(None)]);
        }
    }

    #[test]
    fn only_an_applied_release_rolls_back_and_never_to_itself() {
        given::<Release>(awaiting_approval())
            .when(ReleaseCommand::RequestRollback { by: DEV, target_artifact_release_id: EARLIER, approval: ApprovalDecision::NotRequired })
            .then_expect_error(ErrorCode::ReleaseStateInvalid);
        given::<Release>(applied_release())
            .when(ReleaseCommand::RequestRollback { by: DEV, target_artifact_release_id: RELEASE, approval: ApprovalDecision::NotRequired })
            .then_expect_error(ErrorCode::ValidationError);
        given::<Release>(applied_release())
            .when(ReleaseCommand::RollbackCompleted { execution: 1, summary: String::new() })
            .then_expect_error(ErrorCode::ReleaseStateInvalid);
    }

    #[test]
    fn events_carry_the_seed_names_and_detail_fields() {
        let events = [draft_created(), previewed(), apply_requested(), pending(TICKET, Operation::Apply), approved(TICKET, Operation::Apply), applying(Some(TICKET)), rejected(), rollback_requested(), rolling_back(None)];
        for e in &events {
            let (action, detail) = e.to_parts();
            assert!(action.starts_with("release."), "{action}");
            for field in ["release_id", "service_id", "target_id", "runtime_type", "env", "strategy", "preview_ref"] {
                assert!(detail.get(field).is_some(), "{action} lacks {field}");
            }
            assert_eq!(&ReleaseEvent::from_parts(&action, &detail).unwrap(), e, "{action} round-trips");
        }
        let (action, detail) = rolling_back(None).to_parts();
        assert_eq!((action.as_str(), detail["operation"].as_str()), ("release.applying", Some("rollback")));
        assert_eq!(applying(None).to_parts().1["operation"], "apply");
        assert_eq!(pending(TICKET, Operation::Apply).to_parts().1["approval_ticket"], TICKET);
    }

    #[test]
    fn every_status_has_one_name_label_and_color() {
        assert_eq!(ReleaseStatus::ALL.len(), 14);
        let colors: std::collections::HashSet<_> = ReleaseStatus::ALL.iter().map(|s| s.color()).collect();
        assert_eq!(colors.len(), 14, "colors tell statuses apart");
        for s in ReleaseStatus::ALL {
            assert_eq!(ReleaseStatus::parse(s.as_str()).unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert!(!s.label_en().is_empty() && !s.label_zh().is_empty() && s.color().starts_with('#'));
        }
        assert_eq!(ReleaseStatus::PendingApproval.as_str(), "pending_approval");
        assert_eq!(ReleaseStatus::Applied.label_zh(), "已发布");
    }

    #[test]
    fn the_console_shows_every_release_status_with_the_same_label_and_color() {
        let table: serde_json::Value = serde_json::from_str(include_str!("../../web/src/states.json")).expect("web/src/states.json parses");
        let release = table["release"].as_object().expect("a release table");
        assert_eq!(release.len(), ReleaseStatus::ALL.len(), "the console knows exactly the release statuses");
        for s in ReleaseStatus::ALL {
            let e = &release[s.as_str()];
            assert_eq!((e["en"].as_str(), e["zh"].as_str(), e["color"].as_str()), (Some(s.label_en()), Some(s.label_zh()), Some(s.color())), "{}", s.as_str());
        }
        // A ticket's statuses read like the release waiting for it.
        for (ticket, release_status) in [("pending", ReleaseStatus::PendingApproval), ("approved", ReleaseStatus::Approved), ("rejected", ReleaseStatus::Rejected)] {
            assert_eq!(table["ticket"][ticket]["zh"].as_str(), Some(release_status.label_zh()));
        }
    }
}
