//! The global approval inbox: tickets of every scope type in one queue.
//! Deciding a ticket is checked here (permission, scope, four-eyes, expiry,
//! binding); what the ticket was raised for hears of it from the process manager.

use opspilot_domain::rbac::Permission;
use chrono::Duration;
use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, Approver, RiskLevel, ScopeType, TicketBinding};
use opspilot_domain::release::Release;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode};
use serde_json::json;

use crate::{CommandContext, Commands, DecideClone, Handled, Result};

impl Commands {
    /// How long a ticket stays decidable: twice its SLA (high: 30 min SLA,
    /// 1 h expiry, as in the seed's example), unless configured.
    pub fn ticket_ttl(&self, risk: RiskLevel) -> Duration {
        self.ticket_ttl_override.unwrap_or(risk.sla() * 2)
    }

    /// Expires every pending ticket past its `expires_at`; run by the
    /// scheduler. What the ticket was raised for ends as the process
    /// manager's follow-up. Answers how many tickets expired.
    pub async fn expire_due_tickets(&self, due: &[String]) -> Result<usize> {
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let mut n = 0;
        for ticket in due {
            let t = self.ticket(ticket).await?;
            let Some(scope) = t.scope() else { continue };
            let cmd = ApprovalCommand::Expire { now: ctx.now };
            let expired = self.execute::<ApprovalTicket>(&ctx, "approval.expire", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cmd), |_| json!({ "expired": true })).await;
            match expired {
                Ok(_) => n += 1,
                // Decided meanwhile: nothing to expire.
                Err(crate::CommandError::Domain(e)) => tracing::debug!(%ticket, error = %e, "ticket not expired"),
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

impl Commands {
    pub(crate) async fn ticket(&self, ticket: &str) -> Result<ApprovalTicket> {
        let (t, _) = self.load::<ApprovalTicket>(&stream_id_of::<ApprovalTicket>(ticket)).await?;
        if t.facts.is_none() {
            return Err(DomainError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")).into());
        }
        Ok(t)
    }

    /// A ticket the caller may see; others' tickets do not exist for them.
    async fn visible_ticket(&self, ctx: &CommandContext, ticket: &str) -> Result<ApprovalTicket> {
        let t = self.ticket(ticket).await?;
        let facts = t.facts.as_ref().expect("checked");
        let p = ctx.principal()?;
        let mine = p.user_id == facts.requested_by || t.assigned_to == Some(p.user_id);
        if !(p.sees_project(facts.project_id) || mine) {
            return Err(DomainError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")).into());
        }
        Ok(t)
    }

    /// The binding the ticket's scope has now (what an approval is checked against).
    async fn current_binding(&self, t: &ApprovalTicket) -> Result<TicketBinding> {
        let facts = t.facts.as_ref().expect("checked");
        match facts.binding.scope_type {
            ScopeType::Release => {
                let id = uuid::Uuid::parse_str(&facts.binding.scope_id).map_err(|_| DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, "ticket scope is not a release"))?;
                let (r, _) = self.load::<Release>(&stream_id_of::<Release>(id)).await?;
                Ok(TicketBinding { scope_type: ScopeType::Release, scope_id: id.to_string(), binding_hash: r.binding_hash.unwrap_or_default() })
            }
            _ => Ok(facts.binding.clone()),
        }
    }

    /// Assigns a pending ticket to an approver (who may approve it).
    pub async fn assign_ticket(&self, ctx: &CommandContext, ticket: &str, assignee: &str, comment: Option<String>) -> Result<Handled> {
        let t = self.visible_ticket(ctx, ticket).await?;
        let facts = t.facts.clone().expect("checked");
        let p = ctx.principal()?.clone();
        if !(p.has(facts.required_permission) || p.is_admin()) {
            let e = DomainError::new(ErrorCode::ApprovalPermissionDenied, "only approvers assign tickets");
            self.deny(ctx, "approval.assign", facts.required_permission, &e).await?;
            return Err(e.into());
        }
        let assigned_to = self.existing_user(assignee).await?;
        let cmd = ApprovalCommand::Assign { assigned_to, by: p.user_id, comment, now: ctx.now };
        let scope = t.scope().expect("created ticket has a scope");
        self.execute::<ApprovalTicket>(ctx, "approval.assign", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cmd), |_| json!({ "ticket": ticket, "assigned_to": assigned_to }))
            .await
    }

    /// Comments on a ticket the caller can see.
    pub async fn comment_ticket(&self, ctx: &CommandContext, ticket: &str, comment: &str) -> Result<Handled> {
        let t = self.visible_ticket(ctx, ticket).await?;
        let cmd = ApprovalCommand::Comment { by: ctx.principal()?.user_id, comment: comment.to_string(), now: ctx.now };
        let scope = t.scope().expect("created ticket has a scope");
        self.execute::<ApprovalTicket>(ctx, "approval.comment", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cmd), |_| json!({ "ticket": ticket, "commented": true }))
            .await
    }

    /// Records that the caller opened a ticket.
    pub async fn view_ticket(&self, ctx: &CommandContext, ticket: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::DeployReleaseRead, "approval.view").await?;
        let t = self.visible_ticket(ctx, ticket).await?;
        let cmd = ApprovalCommand::View { by: ctx.principal()?.user_id, now: ctx.now };
        let scope = t.scope().expect("created ticket has a scope");
        self.execute::<ApprovalTicket>(ctx, "approval.view", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cmd), |_| json!({ "ticket": ticket }))
            .await
    }

    /// Approves a ticket and starts what it was raised for.
    pub async fn approve_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>) -> Result<Handled> {
        self.decide_ticket(ctx, ticket, comment, true, None).await
    }

    /// Approves a ticket presented for a given release: a ticket raised for
    /// another release is refused (`approval_ticket_scope_mismatch`) and the
    /// attempt recorded.
    pub async fn approve_ticket_for_release(&self, ctx: &CommandContext, ticket: &str, release_id: uuid::Uuid, comment: Option<String>) -> Result<Handled> {
        self.decide_ticket(ctx, ticket, comment, true, Some(release_id)).await
    }

    /// Rejects a ticket; what it was raised for ends, with the comment visible.
    pub async fn reject_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>) -> Result<Handled> {
        self.decide_ticket(ctx, ticket, comment, false, None).await
    }

    async fn decide_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>, approve: bool, for_release: Option<uuid::Uuid>) -> Result<Handled> {
        let t = self.visible_ticket(ctx, ticket).await?;
        let facts = t.facts.clone().expect("checked");
        let p = ctx.principal()?.clone();
        let approver = Approver { user_id: p.user_id, has_permission: p.has(facts.required_permission), in_scope: p.sees_project(facts.project_id) };
        let binding = match for_release {
            // What the approver says they approve: that release, as it is now.
            Some(release_id) => {
                let (r, _) = self.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
                TicketBinding { scope_type: ScopeType::Release, scope_id: release_id.to_string(), binding_hash: r.binding_hash.unwrap_or_default() }
            }
            None => self.current_binding(&t).await?,
        };
        let cmd = if approve {
            ApprovalCommand::Approve { approver, binding: binding.clone(), comment: comment.clone(), now: ctx.now }
        } else {
            ApprovalCommand::Reject { approver, comment: comment.clone(), now: ctx.now }
        };
        let scope = t.scope().expect("created ticket has a scope");
        let stream = stream_id_of::<ApprovalTicket>(ticket);
        let attempted = if approve { "approval.approve" } else { "approval.reject" };
        let handled = self
            .execute::<ApprovalTicket>(ctx, attempted, &stream, &scope, |s| s.decide_clone(&cmd), |_| json!({ "ticket": ticket, "status": if approve { "approved" } else { "rejected" } }))
            .await;
        let handled = match handled {
            Ok(h) => h,
            Err(e) => {
                match e.code() {
                    // Audited; nothing changed.
                    ErrorCode::ApprovalPermissionDenied => {
                        if let crate::CommandError::Domain(d) = &e {
                            self.deny(ctx, attempted, facts.required_permission, d).await?;
                        }
                    }
                    ErrorCode::ApprovalTicketScopeMismatch => {
                        let record = ApprovalCommand::RecordScopeMismatch { by: p.user_id, presented: binding.clone(), now: ctx.now };
                        self.execute::<ApprovalTicket>(ctx, "approval.scope_mismatch", &stream, &scope, |s| s.decide_clone(&record), |_| json!({})).await?;
                    }
                    _ => {}
                }
                return Err(e);
            }
        };
        // What the ticket was raised for hears of it from the process manager.
        Ok(handled)
    }
}
