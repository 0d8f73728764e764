//! The global approval inbox: tickets of every scope type in one queue.
//! Deciding a ticket is checked here (permission, scope, four-eyes, expiry,
//! binding) and then handed to what the ticket was raised for.

use chrono::Duration;
use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, Approver, RiskLevel, ScopeType, TicketBinding};
use opspilot_domain::release::{Release, ReleaseCommand};
use opspilot_domain::{stream_id_of, DomainError, ErrorCode};
use serde_json::json;

use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// How long a ticket stays decidable: twice its SLA (high: 30 min SLA, 1 h expiry).
pub fn ticket_ttl(risk: RiskLevel) -> Duration {
    risk.sla() * 2
}

impl Commands {
    async fn ticket(&self, ticket: &str) -> Result<ApprovalTicket> {
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

    /// Approves a ticket and starts what it was raised for.
    pub async fn approve_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>) -> Result<Handled> {
        self.decide_ticket(ctx, ticket, comment, true).await
    }

    /// Rejects a ticket; what it was raised for ends, with the comment visible.
    pub async fn reject_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>) -> Result<Handled> {
        self.decide_ticket(ctx, ticket, comment, false).await
    }

    async fn decide_ticket(&self, ctx: &CommandContext, ticket: &str, comment: Option<String>, approve: bool) -> Result<Handled> {
        let t = self.visible_ticket(ctx, ticket).await?;
        let facts = t.facts.clone().expect("checked");
        let p = ctx.principal()?.clone();
        let approver = Approver { user_id: p.user_id, has_permission: p.has(&facts.required_permission), in_scope: p.sees_project(facts.project_id) };
        let binding = self.current_binding(&t).await?;
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
                            self.deny(ctx, attempted, &facts.required_permission, d).await?;
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
        // Hand the decision to the release the ticket was raised for.
        if facts.binding.scope_type == ScopeType::Release {
            let release_id = uuid::Uuid::parse_str(&facts.binding.scope_id).expect("release binding");
            let rcmd = if approve {
                ReleaseCommand::Approve { ticket: ticket.to_string(), by: p.user_id }
            } else {
                ReleaseCommand::Reject { ticket: ticket.to_string(), by: p.user_id, comment }
            };
            let (r, _) = self.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
            let rscope = self.release_scope(release_id, &r)?;
            let h = self
                .execute::<Release>(ctx, "release.decision", &stream_id_of::<Release>(release_id), &rscope, |s| s.decide_clone(&rcmd), |_| handled.result.clone())
                .await?;
            if approve {
                self.start_execution(release_id);
            }
            return Ok(Handled { result: handled.result, position: h.position });
        }
        Ok(handled)
    }
}
