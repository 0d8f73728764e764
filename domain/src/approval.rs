//! ApprovalTicket aggregate: one ticket of the global approval inbox (SPEC §3),
//! whatever raised it (a release, an install, a certificate rotation, ...).
//!
//! A ticket is bound to the exact scope it was raised for (`TicketBinding`: the
//! scope and the hash that binds its preview); an approval presented for another
//! binding is refused. Who may decide is resolved by the command layer into
//! plain facts (`Approver`), so the rules here stay pure: permission, scope,
//! four-eyes, one decision per ticket, and expiry.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventScope, EventStatus, Severity, Source};
use crate::rbac::Permission;

/// Longest comment (or cancel reason) a ticket accepts, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// `as_str`/`parse`/`ALL` for a snake_case value enum; `parse` fails with a
/// `validation_error` naming the field and the known values.
macro_rules! value_enum {
    ($t:ident, $field:literal { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            /// Parses the wire name.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(DomainError::validation($field, format!("unknown value {s:?}; known: {}", [$($s),*].join(", ")))),
                }
            }
        }
    };
}
pub(crate) use value_enum;

/// What kind of operation a ticket asks approval for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeType {
    Release,
    Install,
    ClusterImport,
    CertRotation,
    ComposeApply,
    K8sApply,
    NetworkEntry,
}
value_enum!(ScopeType, "scope_type" {
    Release => "release", Install => "install", ClusterImport => "cluster_import", CertRotation => "cert_rotation",
    ComposeApply => "compose_apply", K8sApply => "k8s_apply", NetworkEntry => "network_entry",
});

/// How risky the operation is; ordered, so `risk >= RiskLevel::High` reads as policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}
value_enum!(RiskLevel, "risk_level" { Low => "low", Medium => "medium", High => "high", Critical => "critical" });

impl RiskLevel {
    /// How long an approver has before the ticket is overdue (SPEC §3).
    pub fn sla(self) -> Duration {
        match self {
            RiskLevel::Critical => Duration::minutes(15),
            RiskLevel::High => Duration::minutes(30),
            RiskLevel::Medium => Duration::hours(2),
            RiskLevel::Low => Duration::hours(8),
        }
    }
    /// The priority a ticket of this risk gets unless the requester says otherwise.
    pub fn default_priority(self) -> Priority {
        match self {
            RiskLevel::Critical => Priority::P0,
            RiskLevel::High => Priority::P1,
            RiskLevel::Medium => Priority::P2,
            RiskLevel::Low => Priority::P3,
        }
    }
}

/// Inbox priority; `P0` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}
value_enum!(Priority, "priority" { P0 => "p0", P1 => "p1", P2 => "p2", P3 => "p3" });

/// Where a ticket stands. Only `Pending` can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    #[default]
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}
value_enum!(TicketStatus, "status" {
    Pending => "pending", Approved => "approved", Rejected => "rejected", Expired => "expired", Cancelled => "cancelled",
});

/// What a ticket was raised for: the scope, and the hash that binds its preview
/// (for a release: the release id and its preview's binding hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketBinding {
    pub scope_type: ScopeType,
    pub scope_id: String,
    pub binding_hash: String,
}

/// Facts the command layer resolved from the principal deciding a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub user_id: Uuid,
    /// Holds the ticket's `required_permission`.
    pub has_permission: bool,
    /// May act in the ticket's project and team.
    pub in_scope: bool,
}

/// What a ticket can be asked to do.
#[derive(Debug, Clone)]
pub enum ApprovalCommand {
    Create {
        ticket: String,
        binding: TicketBinding,
        project_id: Uuid,
        team_id: Uuid,
        environment_id: Option<String>,
        runtime_type: String,
        risk_level: RiskLevel,
        priority: Priority,
        requested_by: Uuid,
        /// The permission an approver needs, e.g. `deploy:release:approve`.
        required_permission: Permission,
        source: Source,
        summary: String,
        detail: Value,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Assign { assigned_to: Uuid, by: Uuid, comment: Option<String>, now: DateTime<Utc> },
    View { by: Uuid, now: DateTime<Utc> },
    Comment { by: Uuid, comment: String, now: DateTime<Utc> },
    Approve { approver: Approver, binding: TicketBinding, comment: Option<String>, now: DateTime<Utc> },
    Reject { approver: Approver, comment: Option<String>, now: DateTime<Utc> },
    /// Sent by the scheduler once `expires_at` has passed.
    Expire { now: DateTime<Utc> },
    Cancel { by: Uuid, reason: Option<String>, now: DateTime<Utc> },
    /// Audits an approval presented for another binding (the approval itself was refused).
    RecordScopeMismatch { by: Uuid, presented: TicketBinding, now: DateTime<Utc> },
}

/// What a ticket records. Every event carries enough for the inbox projection
/// to build and update its row from events alone; the routing fields
/// (`scope_type`, `scope_id`, `binding_hash`) are on every decision so a saga can
/// forward it to the aggregate the ticket was raised for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ApprovalEvent {
    /// `sla_due_at` is fixed at creation (`at` + the risk's SLA), so a later
    /// change of policy never moves the deadline of an existing ticket.
    #[serde(rename = "approval.ticket_created")]
    Created {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        project_id: Uuid,
        team_id: Uuid,
        environment_id: Option<String>,
        runtime_type: String,
        risk_level: RiskLevel,
        priority: Priority,
        requested_by: Uuid,
        /// The permission an approver needs (the seed calls it `required_role`).
        required_role: Permission,
        source: Source,
        summary: String,
        detail: Value,
        expires_at: DateTime<Utc>,
        sla_due_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "approval.ticket_assigned")]
    Assigned { ticket: String, assigned_to: Uuid, by: Uuid, comment: Option<String>, at: DateTime<Utc> },
    #[serde(rename = "approval.ticket_viewed")]
    Viewed { ticket: String, by: Uuid, at: DateTime<Utc> },
    #[serde(rename = "approval.ticket_commented")]
    Commented { ticket: String, by: Uuid, comment: String, at: DateTime<Utc> },
    #[serde(rename = "approval.ticket_approved")]
    Approved {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        required_role: Permission,
        requested_by: Uuid,
        reviewed_by: Uuid,
        comment: Option<String>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "approval.ticket_rejected")]
    Rejected {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        required_role: Permission,
        requested_by: Uuid,
        reviewed_by: Uuid,
        comment: Option<String>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "approval.ticket_expired")]
    Expired {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        requested_by: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "approval.ticket_cancelled")]
    Cancelled {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        by: Uuid,
        comment: Option<String>,
        at: DateTime<Utc>,
    },
    /// Changes nothing: an audit record of an approval presented for another binding.
    #[serde(rename = "approval.ticket_scope_mismatch")]
    ScopeMismatch {
        ticket: String,
        #[serde(flatten)]
        binding: TicketBinding,
        presented: TicketBinding,
        by: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ApprovalEvent {
    fn status(&self) -> EventStatus {
        match self {
            ApprovalEvent::Rejected { .. } | ApprovalEvent::ScopeMismatch { .. } => EventStatus::Failed,
            ApprovalEvent::Expired { .. } | ApprovalEvent::Cancelled { .. } => EventStatus::Warning,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            // Someone tried to use an approval outside what it was granted for.
            ApprovalEvent::ScopeMismatch { .. } => Severity::High,
            ApprovalEvent::Rejected { .. } => Severity::Medium,
            ApprovalEvent::Expired { .. } => Severity::Low,
            _ => Severity::Info,
        }
    }
}

/// The facts a ticket was created with that later decisions need.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFacts {
    pub ticket: String,
    pub binding: TicketBinding,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub environment_id: Option<String>,
    pub requested_by: Uuid,
    pub required_permission: Permission,
    pub expires_at: DateTime<Utc>,
}

/// A ticket's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct ApprovalTicket {
    /// `None` until the ticket is created.
    pub facts: Option<TicketFacts>,
    pub status: TicketStatus,
    pub assigned_to: Option<Uuid>,
}

impl ApprovalTicket {
    fn existing(&self) -> Result<&TicketFacts, DomainError> {
        self.facts.as_ref().ok_or_else(|| DomainError::new(ErrorCode::ApprovalTicketNotFound, "ticket does not exist"))
    }

    /// The envelope scope of this ticket's events, once it exists.
    pub fn scope(&self) -> Option<EventScope> {
        self.facts.as_ref().map(|f| EventScope {
            environment_id: f.environment_id.clone(),
            ..EventScope::resource("approval_ticket", &f.ticket).in_project(f.project_id).in_team(f.team_id)
        })
    }

    /// Refuses anything but a pending ticket: expired tickets say so (the user
    /// should request again), other decided ones say they were decided.
    fn require_pending(&self, ticket: &str) -> Result<(), DomainError> {
        match self.status {
            TicketStatus::Pending => Ok(()),
            TicketStatus::Expired => Err(DomainError::new(ErrorCode::ApprovalTicketExpired, format!("ticket {ticket} expired"))),
            other => Err(DomainError::new(ErrorCode::ApprovalTicketDecided, format!("ticket {ticket} is {}", other.as_str()))),
        }
    }

    /// The checks shared by approve and reject, in the order that leaks least:
    /// an approver without the right learns nothing about the ticket's state.
    fn require_decidable(&self, facts: &TicketFacts, approver: &Approver, now: DateTime<Utc>) -> Result<(), DomainError> {
        if !approver.has_permission {
            return Err(DomainError::new(
                ErrorCode::ApprovalPermissionDenied,
                format!("missing permission {}", facts.required_permission),
            ));
        }
        if !approver.in_scope {
            return Err(DomainError::new(ErrorCode::ApprovalPermissionDenied, "ticket belongs to another project or team"));
        }
        if approver.user_id == facts.requested_by {
            return Err(DomainError::new(ErrorCode::ApprovalPermissionDenied, "a requester never decides their own ticket"));
        }
        self.require_pending(&facts.ticket)?;
        if now > facts.expires_at {
            return Err(DomainError::new(ErrorCode::ApprovalTicketExpired, format!("ticket {} expired at {}", facts.ticket, facts.expires_at)));
        }
        Ok(())
    }
}

/// Refuses a comment longer than [`MAX_COMMENT_CHARS`] or holding control characters.
pub(crate) fn check_comment(field: &str, comment: Option<&str>) -> Result<(), DomainError> {
    match comment {
        Some(c) => crate::text::check(field, c, MAX_COMMENT_CHARS),
        None => Ok(()),
    }
}

fn check_create(ticket: &str, binding: &TicketBinding, summary: &str, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Result<(), DomainError> {
    let id_like = |s: &str| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_like(ticket) {
        return Err(DomainError::validation("ticket", "1 to 128 characters of letters, digits, '-', '_' or '.'"));
    }
    if binding.scope_id.trim().is_empty() {
        return Err(DomainError::validation("scope_id", "must not be empty"));
    }
    if binding.binding_hash.trim().is_empty() {
        return Err(DomainError::validation("binding_hash", "a ticket is bound to the exact preview it was raised for"));
    }
    if summary.chars().count() > 500 {
        return Err(DomainError::validation("summary", "at most 500 characters"));
    }
    if expires_at <= now {
        return Err(DomainError::validation("expires_at", "must lie in the future"));
    }
    Ok(())
}

impl Aggregate for ApprovalTicket {
    type Command = ApprovalCommand;
    type Event = ApprovalEvent;
    const KIND: &'static str = "approval";

    fn decide(&self, command: ApprovalCommand) -> Result<Vec<ApprovalEvent>, DomainError> {
        match command {
            ApprovalCommand::Create {
                ticket,
                binding,
                project_id,
                team_id,
                environment_id,
                runtime_type,
                risk_level,
                priority,
                requested_by,
                required_permission,
                source,
                summary,
                detail,
                now,
                expires_at,
            } => {
                if self.facts.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("ticket {ticket} already exists")));
                }
                check_create(&ticket, &binding, &summary, now, expires_at)?;
                Ok(vec![ApprovalEvent::Created {
                    ticket,
                    binding,
                    project_id,
                    team_id,
                    environment_id,
                    runtime_type,
                    risk_level,
                    priority,
                    requested_by,
                    required_role: required_permission,
                    source,
                    summary,
                    detail,
                    expires_at,
                    sla_due_at: now + risk_level.sla(),
                    at: now,
                }])
            }
            ApprovalCommand::Assign { assigned_to, by, comment, now } => {
                let facts = self.existing()?;
                self.require_pending(&facts.ticket)?;
                if now > facts.expires_at {
                    return Err(DomainError::new(ErrorCode::ApprovalTicketExpired, format!("ticket {} expired", facts.ticket)));
                }
                if assigned_to == facts.requested_by {
                    return Err(DomainError::validation("assigned_to", "the requester never reviews their own ticket"));
                }
                check_comment("comment", comment.as_deref())?;
                // Assigning the current assignee again changes nothing and records nothing.
                if self.assigned_to == Some(assigned_to) {
                    return Ok(vec![]);
                }
                Ok(vec![ApprovalEvent::Assigned { ticket: facts.ticket.clone(), assigned_to, by, comment, at: now }])
            }
            // Views are audited whatever the ticket's status.
            ApprovalCommand::View { by, now } => Ok(vec![ApprovalEvent::Viewed { ticket: self.existing()?.ticket.clone(), by, at: now }]),
            ApprovalCommand::Comment { by, comment, now } => {
                let facts = self.existing()?;
                if comment.trim().is_empty() {
                    return Err(DomainError::validation("comment", "must not be empty"));
                }
                check_comment("comment", Some(&comment))?;
                Ok(vec![ApprovalEvent::Commented { ticket: facts.ticket.clone(), by, comment, at: now }])
            }
            ApprovalCommand::Approve { approver, binding, comment, now } => {
                let facts = self.existing()?;
                self.require_decidable(facts, &approver, now)?;
                if binding != facts.binding {
                    return Err(DomainError::new(
                        ErrorCode::ApprovalTicketScopeMismatch,
                        format!("ticket {} was raised for {} {}", facts.ticket, facts.binding.scope_type.as_str(), facts.binding.scope_id),
                    ));
                }
                check_comment("comment", comment.as_deref())?;
                Ok(vec![ApprovalEvent::Approved {
                    ticket: facts.ticket.clone(),
                    binding: facts.binding.clone(),
                    required_role: facts.required_permission,
                    requested_by: facts.requested_by,
                    reviewed_by: approver.user_id,
                    comment,
                    at: now,
                }])
            }
            ApprovalCommand::Reject { approver, comment, now } => {
                let facts = self.existing()?;
                self.require_decidable(facts, &approver, now)?;
                check_comment("comment", comment.as_deref())?;
                Ok(vec![ApprovalEvent::Rejected {
                    ticket: facts.ticket.clone(),
                    binding: facts.binding.clone(),
                    required_role: facts.required_permission,
                    requested_by: facts.requested_by,
                    reviewed_by: approver.user_id,
                    comment,
                    at: now,
                }])
            }
            // Decision: expiring a ticket before its time is a `validation_error`
            // on `now` — only the scheduler sends Expire, and its clock reading
            // is the input that is wrong. A decided ticket records nothing, so a
            // scheduler that fires twice (or late, after a decision) is harmless.
            ApprovalCommand::Expire { now } => {
                let facts = self.existing()?;
                if self.status != TicketStatus::Pending {
                    return Ok(vec![]);
                }
                if now <= facts.expires_at {
                    return Err(DomainError::validation("now", format!("ticket {} expires at {}", facts.ticket, facts.expires_at)));
                }
                Ok(vec![ApprovalEvent::Expired {
                    ticket: facts.ticket.clone(),
                    binding: facts.binding.clone(),
                    requested_by: facts.requested_by,
                    expires_at: facts.expires_at,
                    at: now,
                }])
            }
            ApprovalCommand::Cancel { by, reason, now } => {
                let facts = self.existing()?;
                if self.status == TicketStatus::Cancelled {
                    return Ok(vec![]);
                }
                self.require_pending(&facts.ticket)?;
                check_comment("reason", reason.as_deref())?;
                Ok(vec![ApprovalEvent::Cancelled { ticket: facts.ticket.clone(), binding: facts.binding.clone(), by, comment: reason, at: now }])
            }
            ApprovalCommand::RecordScopeMismatch { by, presented, now } => {
                let facts = self.existing()?;
                if presented == facts.binding {
                    return Err(DomainError::validation("presented", "matches the ticket's binding; there is no mismatch to record"));
                }
                Ok(vec![ApprovalEvent::ScopeMismatch { ticket: facts.ticket.clone(), binding: facts.binding.clone(), presented, by, at: now }])
            }
        }
    }

    fn evolve(mut self, event: &ApprovalEvent) -> Self {
        match event {
            ApprovalEvent::Created { ticket, binding, project_id, team_id, environment_id, requested_by, required_role, expires_at, .. } => {
                self.facts = Some(TicketFacts {
                    ticket: ticket.clone(),
                    binding: binding.clone(),
                    project_id: *project_id,
                    team_id: *team_id,
                    environment_id: environment_id.clone(),
                    requested_by: *requested_by,
                    required_permission: *required_role,
                    expires_at: *expires_at,
                });
                self.status = TicketStatus::Pending;
            }
            ApprovalEvent::Assigned { assigned_to, .. } => self.assigned_to = Some(*assigned_to),
            ApprovalEvent::Viewed { .. } | ApprovalEvent::Commented { .. } | ApprovalEvent::ScopeMismatch { .. } => {}
            ApprovalEvent::Approved { .. } => self.status = TicketStatus::Approved,
            ApprovalEvent::Rejected { .. } => self.status = TicketStatus::Rejected,
            ApprovalEvent::Expired { .. } => self.status = TicketStatus::Expired,
            ApprovalEvent::Cancelled { .. } => self.status = TicketStatus::Cancelled,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::rbac::Permission;
    use super::*;
    use crate::event::testing::given;
    use chrono::TimeZone;

    const TICKET: &str = "dep-appr-9001";
    const REQUESTER: Uuid = Uuid::from_u128(12);
    const APPROVER: Uuid = Uuid::from_u128(3);
    const PROJECT: Uuid = Uuid::from_u128(11);
    const TEAM: Uuid = Uuid::from_u128(7);

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 26, 12, 0, 0).unwrap() + Duration::minutes(minute.into())
    }

    fn binding() -> TicketBinding {
        TicketBinding { scope_type: ScopeType::Release, scope_id: "9001".into(), binding_hash: "ab".repeat(32) }
    }

    fn approver() -> Approver {
        Approver { user_id: APPROVER, has_permission: true, in_scope: true }
    }

    fn create() -> ApprovalCommand {
        ApprovalCommand::Create {
            ticket: TICKET.into(),
            binding: binding(),
            project_id: PROJECT,
            team_id: TEAM,
            environment_id: Some("env-k8s-prod".into()),
            runtime_type: "k8s".into(),
            risk_level: RiskLevel::High,
            priority: RiskLevel::High.default_priority(),
            requested_by: REQUESTER,
            required_permission: Permission::DeployReleaseApprove,
            source: Source::AiCommandCenter,
            summary: "prod release svc-a v2.0.1".into(),
            detail: serde_json::json!({ "image": "v2.0.1" }),
            now: t(0),
            expires_at: t(60),
        }
    }

    fn created() -> ApprovalEvent {
        ApprovalEvent::Created {
            ticket: TICKET.into(),
            binding: binding(),
            project_id: PROJECT,
            team_id: TEAM,
            environment_id: Some("env-k8s-prod".into()),
            runtime_type: "k8s".into(),
            risk_level: RiskLevel::High,
            priority: Priority::P1,
            requested_by: REQUESTER,
            required_role: Permission::DeployReleaseApprove,
            source: Source::AiCommandCenter,
            summary: "prod release svc-a v2.0.1".into(),
            detail: serde_json::json!({ "image": "v2.0.1" }),
            expires_at: t(60),
            sla_due_at: t(30),
            at: t(0),
        }
    }

    fn approved() -> ApprovalEvent {
        ApprovalEvent::Approved {
            ticket: TICKET.into(),
            binding: binding(),
            required_role: Permission::DeployReleaseApprove,
            requested_by: REQUESTER,
            reviewed_by: APPROVER,
            comment: Some("approved for prod window".into()),
            at: t(5),
        }
    }

    fn rejected() -> ApprovalEvent {
        ApprovalEvent::Rejected {
            ticket: TICKET.into(),
            binding: binding(),
            required_role: Permission::DeployReleaseApprove,
            requested_by: REQUESTER,
            reviewed_by: APPROVER,
            comment: Some("not in the change window".into()),
            at: t(5),
        }
    }

    fn expired() -> ApprovalEvent {
        ApprovalEvent::Expired { ticket: TICKET.into(), binding: binding(), requested_by: REQUESTER, expires_at: t(60), at: t(61) }
    }

    fn approve(approver: Approver, now: DateTime<Utc>) -> ApprovalCommand {
        ApprovalCommand::Approve { approver, binding: binding(), comment: Some("approved for prod window".into()), now }
    }

    #[test]
    fn a_ticket_is_created_with_its_sla_due_from_the_risk() {
        given::<ApprovalTicket>(vec![]).when(create()).then_expect_events(vec![created()]);
    }

    #[test]
    fn a_ticket_is_created_once_and_must_expire_in_the_future() {
        given::<ApprovalTicket>(vec![created()]).when(create()).then_expect_error(ErrorCode::ResourceConflict);
        let mut past = create();
        if let ApprovalCommand::Create { expires_at, .. } = &mut past {
            *expires_at = t(0);
        }
        given::<ApprovalTicket>(vec![]).when(past).then_expect_error(ErrorCode::ValidationError);
    }

    #[test]
    fn a_ticket_is_assigned_once_and_never_to_its_requester() {
        let assigned = ApprovalEvent::Assigned { ticket: TICKET.into(), assigned_to: APPROVER, by: REQUESTER, comment: None, at: t(1) };
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Assign { assigned_to: APPROVER, by: REQUESTER, comment: None, now: t(1) })
            .then_expect_events(vec![assigned.clone()]);
        given::<ApprovalTicket>(vec![created(), assigned])
            .when(ApprovalCommand::Assign { assigned_to: APPROVER, by: REQUESTER, comment: None, now: t(2) })
            .then_expect_events(vec![]);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Assign { assigned_to: REQUESTER, by: APPROVER, comment: None, now: t(1) })
            .then_expect_error(ErrorCode::ValidationError);
        given::<ApprovalTicket>(vec![created(), approved()])
            .when(ApprovalCommand::Assign { assigned_to: APPROVER, by: REQUESTER, comment: None, now: t(6) })
            .then_expect_error(ErrorCode::ApprovalTicketDecided);
    }

    #[test]
    fn views_are_recorded_before_and_after_the_decision() {
        for history in [vec![created()], vec![created(), approved()]] {
            given::<ApprovalTicket>(history)
                .when(ApprovalCommand::View { by: APPROVER, now: t(7) })
                .then_expect_events(vec![ApprovalEvent::Viewed { ticket: TICKET.into(), by: APPROVER, at: t(7) }]);
        }
        given::<ApprovalTicket>(vec![]).when(ApprovalCommand::View { by: APPROVER, now: t(7) }).then_expect_error(ErrorCode::ApprovalTicketNotFound);
    }

    #[test]
    fn a_comment_is_recorded_up_to_2000_characters() {
        given::<ApprovalTicket>(vec![created(), rejected()])
            .when(ApprovalCommand::Comment { by: REQUESTER, comment: "will retry tomorrow".into(), now: t(8) })
            .then_expect_events(vec![ApprovalEvent::Commented { ticket: TICKET.into(), by: REQUESTER, comment: "will retry tomorrow".into(), at: t(8) }]);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Comment { by: REQUESTER, comment: "字".repeat(2001), now: t(8) })
            .then_expect_error(ErrorCode::ValidationError);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Comment { by: REQUESTER, comment: "  ".into(), now: t(8) })
            .then_expect_error(ErrorCode::ValidationError);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Comment { by: REQUESTER, comment: "字".repeat(2000), now: t(8) })
            .then_expect_events(vec![ApprovalEvent::Commented { ticket: TICKET.into(), by: REQUESTER, comment: "字".repeat(2000), at: t(8) }]);
    }

    #[test]
    fn an_approver_with_the_permission_in_scope_approves() {
        given::<ApprovalTicket>(vec![created()]).when(approve(approver(), t(5))).then_expect_events(vec![approved()]);
    }

    #[test]
    fn an_approver_rejects_with_a_comment() {
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Reject { approver: approver(), comment: Some("not in the change window".into()), now: t(5) })
            .then_expect_events(vec![rejected()]);
    }

    #[test]
    fn the_requester_never_approves_or_rejects_their_own_ticket() {
        let me = Approver { user_id: REQUESTER, has_permission: true, in_scope: true };
        given::<ApprovalTicket>(vec![created()]).when(approve(me, t(5))).then_expect_error(ErrorCode::ApprovalPermissionDenied);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Reject { approver: me, comment: None, now: t(5) })
            .then_expect_error(ErrorCode::ApprovalPermissionDenied);
    }

    #[test]
    fn an_approver_without_the_permission_is_denied() {
        let operator = Approver { has_permission: false, ..approver() };
        given::<ApprovalTicket>(vec![created()]).when(approve(operator, t(5))).then_expect_error(ErrorCode::ApprovalPermissionDenied);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Reject { approver: operator, comment: None, now: t(5) })
            .then_expect_error(ErrorCode::ApprovalPermissionDenied);
    }

    #[test]
    fn an_approver_of_another_project_is_denied_and_learns_nothing_of_the_state() {
        let outsider = Approver { in_scope: false, ..approver() };
        given::<ApprovalTicket>(vec![created()]).when(approve(outsider, t(5))).then_expect_error(ErrorCode::ApprovalPermissionDenied);
        given::<ApprovalTicket>(vec![created(), approved()]).when(approve(outsider, t(6))).then_expect_error(ErrorCode::ApprovalPermissionDenied);
    }

    #[test]
    fn a_ticket_past_its_expiry_is_refused_before_and_after_the_expiry_is_recorded() {
        given::<ApprovalTicket>(vec![created()]).when(approve(approver(), t(61))).then_expect_error(ErrorCode::ApprovalTicketExpired);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Reject { approver: approver(), comment: None, now: t(61) })
            .then_expect_error(ErrorCode::ApprovalTicketExpired);
        given::<ApprovalTicket>(vec![created(), expired()]).when(approve(approver(), t(62))).then_expect_error(ErrorCode::ApprovalTicketExpired);
    }

    #[test]
    fn two_racing_decisions_produce_exactly_one() {
        given::<ApprovalTicket>(vec![created(), rejected()]).when(approve(approver(), t(6))).then_expect_error(ErrorCode::ApprovalTicketDecided);
        let second = Approver { user_id: Uuid::from_u128(4), ..approver() };
        given::<ApprovalTicket>(vec![created(), approved()])
            .when(ApprovalCommand::Reject { approver: second, comment: None, now: t(6) })
            .then_expect_error(ErrorCode::ApprovalTicketDecided);
        given::<ApprovalTicket>(vec![created(), approved()]).when(approve(second, t(6))).then_expect_error(ErrorCode::ApprovalTicketDecided);
    }

    #[test]
    fn expiry_is_recorded_once_and_only_after_its_time() {
        given::<ApprovalTicket>(vec![created()]).when(ApprovalCommand::Expire { now: t(61) }).then_expect_events(vec![expired()]);
        given::<ApprovalTicket>(vec![created(), expired()]).when(ApprovalCommand::Expire { now: t(62) }).then_expect_events(vec![]);
        given::<ApprovalTicket>(vec![created(), approved()]).when(ApprovalCommand::Expire { now: t(62) }).then_expect_events(vec![]);
        given::<ApprovalTicket>(vec![created()]).when(ApprovalCommand::Expire { now: t(60) }).then_expect_error(ErrorCode::ValidationError);
    }

    #[test]
    fn an_approval_for_another_binding_is_refused_and_can_be_recorded() {
        let other = TicketBinding { binding_hash: "cd".repeat(32), ..binding() };
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Approve { approver: approver(), binding: other.clone(), comment: None, now: t(5) })
            .then_expect_error(ErrorCode::ApprovalTicketScopeMismatch);
        let mismatch = ApprovalEvent::ScopeMismatch { ticket: TICKET.into(), binding: binding(), presented: other.clone(), by: APPROVER, at: t(5) };
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::RecordScopeMismatch { by: APPROVER, presented: other, now: t(5) })
            .then_expect_events(vec![mismatch.clone()]);
        // Recording the mismatch changes nothing: the right binding still approves.
        given::<ApprovalTicket>(vec![created(), mismatch]).when(approve(approver(), t(5))).then_expect_events(vec![approved()]);
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::RecordScopeMismatch { by: APPROVER, presented: binding(), now: t(5) })
            .then_expect_error(ErrorCode::ValidationError);
    }

    #[test]
    fn a_pending_ticket_is_cancelled_once() {
        let cancelled = ApprovalEvent::Cancelled { ticket: TICKET.into(), binding: binding(), by: REQUESTER, comment: None, at: t(3) };
        given::<ApprovalTicket>(vec![created()])
            .when(ApprovalCommand::Cancel { by: REQUESTER, reason: None, now: t(3) })
            .then_expect_events(vec![cancelled.clone()]);
        given::<ApprovalTicket>(vec![created(), cancelled.clone()])
            .when(ApprovalCommand::Cancel { by: REQUESTER, reason: None, now: t(4) })
            .then_expect_events(vec![]);
        given::<ApprovalTicket>(vec![created(), approved()])
            .when(ApprovalCommand::Cancel { by: REQUESTER, reason: None, now: t(6) })
            .then_expect_error(ErrorCode::ApprovalTicketDecided);
        given::<ApprovalTicket>(vec![created(), cancelled]).when(approve(approver(), t(5))).then_expect_error(ErrorCode::ApprovalTicketDecided);
    }

    #[test]
    fn events_carry_the_seed_names_and_fields() {
        let (action, detail) = created().to_parts();
        assert_eq!(action, "approval.ticket_created");
        for field in ["ticket", "scope_type", "scope_id", "binding_hash", "required_role", "requested_by", "expires_at", "sla_due_at", "risk_level", "priority", "source"] {
            assert!(detail.get(field).is_some(), "{field} missing from {detail}");
        }
        assert_eq!(detail["scope_type"], "release");
        assert_eq!(detail["priority"], "p1");
        let (action, detail) = approved().to_parts();
        assert_eq!((action.as_str(), detail["reviewed_by"].clone()), ("approval.ticket_approved", serde_json::json!(APPROVER)));
        let events = [created(), approved(), rejected(), expired()];
        for e in events {
            let (action, detail) = e.to_parts();
            assert_eq!(ApprovalEvent::from_parts(&action, &detail).unwrap(), e, "{action} round-trips");
        }
        assert_eq!(rejected().status(), EventStatus::Failed);
        assert_eq!(expired().status(), EventStatus::Warning);
    }

    #[test]
    fn value_enums_parse_their_wire_names_and_risk_orders() {
        for s in ScopeType::ALL {
            assert_eq!(ScopeType::parse(s.as_str()).unwrap(), *s);
        }
        assert_eq!(ScopeType::parse("network_entry").unwrap(), ScopeType::NetworkEntry);
        assert_eq!(Priority::parse("p0").unwrap(), Priority::P0);
        assert_eq!(TicketStatus::parse("cancelled").unwrap(), TicketStatus::Cancelled);
        assert_eq!(RiskLevel::parse("urgent").unwrap_err().code, ErrorCode::ValidationError);
        assert!(RiskLevel::Critical >= RiskLevel::High && RiskLevel::Medium < RiskLevel::High);
        assert_eq!(RiskLevel::Critical.sla(), Duration::minutes(15));
        assert_eq!(RiskLevel::Low.sla(), Duration::hours(8));
        assert_eq!(RiskLevel::Medium.default_priority(), Priority::P2);
        assert_eq!(serde_json::to_value(RiskLevel::Critical).unwrap(), "critical");
    }
}
