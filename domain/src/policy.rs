//! What follows from what: the reactions of the process manager.
//!
//! A decided ticket hands its decision to what it was raised for; a release
//! that starts applying gets executed; an install task that starts gets its
//! runner, and a cancel request stops it. Nothing else in OpsPilot maps one
//! of these events to the next step: the command layer's process manager
//! follows the log, asks [`react`] and dispatches what it answers.
//!
//! Every reaction is safe to deliver twice: the commands it yields are no-ops
//! on an aggregate that has them already (a redelivered decision), and the
//! executions carry the stream version they were started at, so an executor
//! acts only while that execution is still due.

use uuid::Uuid;

use crate::ai::session::AiSessionEvent;
use crate::approval::{ApprovalEvent, ScopeType, TicketBinding};
use crate::environment::{EnvironmentCommand, EnvironmentEvent};
use crate::error::{DomainError, ErrorCode};
use crate::release::{ReleaseCommand, ReleaseEvent};

/// An event the process manager reacts to, with what its envelope adds.
#[derive(Debug, Clone, Copy)]
pub enum Trigger<'a> {
    /// A ticket event; install tickets name their environment on the envelope.
    Ticket { event: &'a ApprovalEvent, environment_id: Option<Uuid> },
    /// A release event at its stream version.
    Release { event: &'a ReleaseEvent, stream_version: i64 },
    Environment { event: &'a EnvironmentEvent },
    AiSession { event: &'a AiSessionEvent },
}

/// What an AI session following a release hears about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A ticket raised for the release was decided (or waits).
    Ticket { ticket: String, status: &'static str, comment: Option<String> },
    /// The release waits for a ticket (an apply or rollback that needs one).
    PendingApproval { ticket: String },
    /// The release reached a status a user waits for.
    Release { status: &'static str, error_key: Option<String>, summary: Option<String> },
}

/// A step that follows from an event.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// A command for the release a ticket was raised for.
    Release { release_id: Uuid, command: ReleaseCommand },
    /// A command for the environment whose install task a ticket was raised for.
    Environment { environment_id: Uuid, command: EnvironmentCommand },
    /// Run the release's execution that started at `execution` (its
    /// `release.applying` stream version), if it is still due.
    ExecuteRelease { release_id: Uuid, execution: i64 },
    /// Run the install task, if it is still running.
    RunInstallTask { environment_id: Uuid, task_id: Uuid },
    /// Stop the install task's hooks now.
    StopInstallTask { task_id: Uuid },
    /// From now on, tell the session what happens to the release.
    FollowRelease { session_id: Uuid, release_id: Uuid },
    /// Tell the sessions following the release.
    TellSessions { release_id: Uuid, observation: Observation },
}

/// The follow-ups of one event. An event that asks for nothing answers an
/// empty list; a ticket whose scope cannot be addressed is an error.
pub fn react(trigger: Trigger<'_>) -> Result<Vec<FollowUp>, DomainError> {
    match trigger {
        Trigger::Ticket { event, environment_id } => ticket(event, environment_id),
        Trigger::Release { event, stream_version } => Ok(release(event, stream_version)),
        Trigger::Environment { event } => Ok(environment(event)),
        Trigger::AiSession { event } => Ok(ai_session(event)),
    }
}

fn ai_session(event: &AiSessionEvent) -> Vec<FollowUp> {
    match event {
        AiSessionEvent::PreviewResult { session_id, release_id: Some(release_id), ok: true, .. }
        | AiSessionEvent::ApplyRequested { session_id, release_id: Some(release_id), .. } => {
            vec![FollowUp::FollowRelease { session_id: *session_id, release_id: *release_id }]
        }
        _ => vec![],
    }
}

/// How a ticket ended, as its scope needs to hear it.
enum Decision<'a> {
    Approved { by: Uuid },
    Rejected { by: Uuid, comment: &'a Option<String> },
    Expired,
    Cancelled { comment: &'a Option<String> },
}

fn ticket(event: &ApprovalEvent, environment_id: Option<Uuid>) -> Result<Vec<FollowUp>, DomainError> {
    let (ticket, binding, decision) = match event {
        ApprovalEvent::Approved { ticket, binding, reviewed_by, .. } => (ticket, binding, Decision::Approved { by: *reviewed_by }),
        ApprovalEvent::Rejected { ticket, binding, reviewed_by, comment, .. } => (ticket, binding, Decision::Rejected { by: *reviewed_by, comment }),
        ApprovalEvent::Expired { ticket, binding, .. } => (ticket, binding, Decision::Expired),
        ApprovalEvent::Cancelled { ticket, binding, comment, .. } => (ticket, binding, Decision::Cancelled { comment }),
        ApprovalEvent::Created { .. }
        | ApprovalEvent::Assigned { .. }
        | ApprovalEvent::Viewed { .. }
        | ApprovalEvent::Commented { .. } => return Ok(vec![]),
        // The ticket was presented for another release: its sessions hear it needs a new submission.
        ApprovalEvent::ScopeMismatch { ticket, binding, .. } => {
            return Ok(match (binding.scope_type, scope_uuid(binding)) {
                (ScopeType::Release, Ok(release_id)) => {
                    vec![FollowUp::TellSessions { release_id, observation: Observation::Ticket { ticket: ticket.clone(), status: "scope_mismatch", comment: None } }]
                }
                _ => vec![],
            })
        }
    };
    let ticket = ticket.clone();
    match binding.scope_type {
        ScopeType::Release => {
            let release_id = scope_uuid(binding)?;
            let (status, said) = match &decision {
                Decision::Approved { .. } => ("approved", None),
                Decision::Rejected { comment, .. } => ("rejected", (*comment).clone()),
                Decision::Expired => ("expired", None),
                Decision::Cancelled { comment } => ("cancelled", (*comment).clone()),
            };
            let tell = FollowUp::TellSessions { release_id, observation: Observation::Ticket { ticket: ticket.clone(), status, comment: said } };
            let command = match decision {
                Decision::Approved { by } => ReleaseCommand::Approve { ticket, by },
                Decision::Rejected { by, comment } => ReleaseCommand::Reject { ticket, by, comment: comment.clone() },
                Decision::Expired => ReleaseCommand::ExpireApproval { ticket },
                Decision::Cancelled { comment } => ReleaseCommand::Cancel { reason: comment.clone() },
            };
            Ok(vec![FollowUp::Release { release_id, command }, tell])
        }
        ScopeType::Install => {
            let environment_id = environment_id
                .ok_or_else(|| DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, format!("install ticket {ticket} names no environment")))?;
            let command = match decision {
                Decision::Approved { by } => EnvironmentCommand::ApproveTask { ticket, by },
                Decision::Rejected { comment, .. } => EnvironmentCommand::EndPendingTask {
                    ticket,
                    error_key: ErrorCode::ApprovalRejected,
                    summary: comment.clone().unwrap_or_else(|| "rejected".into()),
                },
                Decision::Expired => EnvironmentCommand::EndPendingTask { summary: format!("approval ticket {ticket} expired"), ticket, error_key: ErrorCode::ApprovalTicketExpired },
                Decision::Cancelled { comment } => EnvironmentCommand::EndPendingTask {
                    ticket,
                    error_key: ErrorCode::InstallTaskCancelled,
                    summary: comment.clone().unwrap_or_else(|| "cancelled".into()),
                },
            };
            Ok(vec![FollowUp::Environment { environment_id, command }])
        }
        // No ticket of these scopes is raised yet; their follow-ups arrive
        // with the cluster-creation and network-entry capabilities.
        ScopeType::ClusterImport | ScopeType::CertRotation | ScopeType::ComposeApply | ScopeType::K8sApply | ScopeType::NetworkEntry => Ok(vec![]),
    }
}

fn scope_uuid(binding: &TicketBinding) -> Result<Uuid, DomainError> {
    Uuid::parse_str(&binding.scope_id)
        .map_err(|_| DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, format!("ticket scope {} is not an id", binding.scope_id)))
}

fn release(event: &ReleaseEvent, stream_version: i64) -> Vec<FollowUp> {
    let tell = |release_id: Uuid, observation: Observation| FollowUp::TellSessions { release_id, observation };
    let status = |release: &crate::release::ReleaseRef, status: &'static str, error_key: Option<&str>, summary: Option<&str>| {
        tell(release.release_id, Observation::Release { status, error_key: error_key.map(String::from), summary: summary.map(String::from) })
    };
    match event {
        ReleaseEvent::Applying { release, operation, .. } => vec![
            FollowUp::ExecuteRelease { release_id: release.release_id, execution: stream_version },
            status(release, if *operation == crate::release::Operation::Rollback { "rolling_back" } else { "applying" }, None, None),
        ],
        ReleaseEvent::PendingApproval { release, approval_ticket, .. } => {
            vec![tell(release.release_id, Observation::PendingApproval { ticket: approval_ticket.clone() })]
        }
        ReleaseEvent::Applied { release, summary } => vec![status(release, "applied", None, Some(summary))],
        ReleaseEvent::Failed { release, error_key, summary, .. } => vec![status(release, "failed", Some(error_key), Some(summary))],
        ReleaseEvent::Rejected { release, .. } => vec![status(release, "rejected", None, None)],
        ReleaseEvent::RollbackCompleted { release, summary, .. } => vec![status(release, "rolled_back", None, Some(summary))],
        ReleaseEvent::RollbackFailed { release, error_key, summary, .. } => vec![status(release, "rollback_failed", Some(error_key), Some(summary))],
        ReleaseEvent::DraftCreated { .. }
        | ReleaseEvent::Previewed { .. }
        | ReleaseEvent::PreviewFailed { .. }
        | ReleaseEvent::ApplyRequested { .. }
        | ReleaseEvent::Approved { .. }
        | ReleaseEvent::RollbackRequested { .. } => vec![],
    }
}

fn environment(event: &EnvironmentEvent) -> Vec<FollowUp> {
    match event {
        EnvironmentEvent::InstallStarted { environment_id, task_id, .. } | EnvironmentEvent::InstallRollbackStarted { environment_id, task_id, .. } => {
            vec![FollowUp::RunInstallTask { environment_id: *environment_id, task_id: *task_id }]
        }
        EnvironmentEvent::InstallCancelRequested { task_id, .. } => vec![FollowUp::StopInstallTask { task_id: *task_id }],
        EnvironmentEvent::Created { .. }
        | EnvironmentEvent::Updated { .. }
        | EnvironmentEvent::NodesBound { .. }
        | EnvironmentEvent::InstallPreviewed { .. }
        | EnvironmentEvent::InstallRequested { .. }
        | EnvironmentEvent::InstallSucceeded { .. }
        | EnvironmentEvent::InstallFailed { .. }
        | EnvironmentEvent::InstallRollbackSucceeded { .. }
        | EnvironmentEvent::InstallRollbackFailed { .. }
        | EnvironmentEvent::Deleted { .. } => vec![],
    }
}

#[cfg(test)]
mod tests {
    use crate::rbac::Permission;
    use super::*;
    use chrono::{TimeZone, Utc};

    const RELEASE: Uuid = Uuid::from_u128(9001);
    const ENV: Uuid = Uuid::from_u128(77);
    const APPROVER: Uuid = Uuid::from_u128(3);

    fn binding(scope_type: ScopeType, scope_id: Uuid) -> TicketBinding {
        TicketBinding { scope_type, scope_id: scope_id.to_string(), binding_hash: "a".repeat(64) }
    }

    fn approved(scope_type: ScopeType, scope_id: Uuid) -> ApprovalEvent {
        ApprovalEvent::Approved {
            ticket: "t-1".into(),
            binding: binding(scope_type, scope_id),
            required_role: Permission::DeployReleaseApprove,
            requested_by: Uuid::from_u128(12),
            reviewed_by: APPROVER,
            comment: None,
            at: Utc.with_ymd_and_hms(2026, 2, 26, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn an_approved_release_ticket_approves_its_release() {
        let f = react(Trigger::Ticket { event: &approved(ScopeType::Release, RELEASE), environment_id: None }).unwrap();
        assert!(matches!(&f[..], [FollowUp::Release { release_id: RELEASE, command: ReleaseCommand::Approve { by: APPROVER, .. } }, FollowUp::TellSessions { release_id: RELEASE, observation: Observation::Ticket { status: "approved", .. } }]), "{f:?}");
    }

    #[test]
    fn an_install_ticket_goes_to_its_environment_and_must_name_it() {
        let task = Uuid::from_u128(5);
        let f = react(Trigger::Ticket { event: &approved(ScopeType::Install, task), environment_id: Some(ENV) }).unwrap();
        assert!(matches!(&f[..], [FollowUp::Environment { environment_id: ENV, command: EnvironmentCommand::ApproveTask { .. } }]), "{f:?}");
        let e = react(Trigger::Ticket { event: &approved(ScopeType::Install, task), environment_id: None }).unwrap_err();
        assert_eq!(e.code, ErrorCode::ApprovalTicketScopeMismatch);
    }

    #[test]
    fn tickets_of_scopes_without_a_follow_up_ask_for_nothing() {
        for scope in [ScopeType::ClusterImport, ScopeType::CertRotation, ScopeType::ComposeApply, ScopeType::K8sApply, ScopeType::NetworkEntry] {
            assert!(react(Trigger::Ticket { event: &approved(scope, RELEASE), environment_id: None }).unwrap().is_empty());
        }
        let viewed = ApprovalEvent::Viewed { ticket: "t-1".into(), by: APPROVER, at: Utc::now() };
        assert!(react(Trigger::Ticket { event: &viewed, environment_id: None }).unwrap().is_empty());
    }

    #[test]
    fn a_release_that_starts_applying_is_executed_at_that_version() {
        let r = crate::release::ReleaseRef {
            release_id: RELEASE,
            service_id: Uuid::nil(),
            target_id: Uuid::nil(),
            runtime_type: "k8s".into(),
            env: "production".into(),
            strategy: "rolling".into(),
            preview_ref: None,
        };
        let applying = ReleaseEvent::Applying { release: r.clone(), operation: crate::release::Operation::Apply, approval_ticket: None, target_artifact_release_id: None };
        let f = react(Trigger::Release { event: &applying, stream_version: 6 }).unwrap();
        assert!(matches!(&f[..], [FollowUp::ExecuteRelease { release_id: RELEASE, execution: 6 }, FollowUp::TellSessions { .. }]), "{f:?}");
        // An outcome only tells the sessions following the release.
        let applied = ReleaseEvent::Applied { release: r, summary: String::new() };
        let f = react(Trigger::Release { event: &applied, stream_version: 7 }).unwrap();
        assert!(matches!(&f[..], [FollowUp::TellSessions { observation: Observation::Release { status: "applied", .. }, .. }]), "{f:?}");
    }
}
