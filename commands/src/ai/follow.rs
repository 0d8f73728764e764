//! The session follower: one more reaction of the process manager. A
//! session follows a release from its preview on; what the release and its
//! tickets record later is appended to the session (`approval_status_changed`,
//! `release_status_changed`, `timeline_synced`), exactly once per log
//! position, whether anyone watches the session or not.

use opspilot_domain::ai::messages::{text, Msg};
use opspilot_domain::ai::session::{AiSession, AiSessionCommand, AiSessionEvent};
use opspilot_domain::catalog::Service;
use opspilot_domain::policy::Observation;
use opspilot_domain::release::Release;
use opspilot_domain::{stream_id_of, Aggregate, ErrorCode, Source};
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::{CommandContext, Commands, Result};

/// Statuses after which nothing more happens to a release until someone acts.
const SETTLED: &[&str] = &["applied", "failed", "rejected", "rolled_back", "rollback_failed", "cancelled", "expired"];

impl Commands {
    /// Records that `session_id` follows `release_id` (idempotent).
    pub(crate) async fn follow_release(&self, session_id: Uuid, release_id: Uuid) -> Result<()> {
        let c = self.store.pool().get().await.map_err(StoreError::from)?;
        c.execute("INSERT INTO ai_session_follows (release_id, session_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&release_id, &session_id])
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Tells every session following `release_id` what the event at `e` means for it.
    pub(crate) async fn tell_sessions(&self, e: &RecordedEvent, release_id: Uuid, observation: &Observation) -> Result<()> {
        let c = self.store.pool().get().await.map_err(StoreError::from)?;
        let sessions: Vec<Uuid> = c
            .query("SELECT session_id FROM ai_session_follows WHERE release_id = $1", &[&release_id])
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(c);
        for session_id in sessions {
            let stream = stream_id_of::<AiSession>(session_id);
            let (s, _) = self.load::<AiSession>(&stream).await?;
            if !s.exists() {
                continue;
            }
            let events = self.observed_events(&s, release_id, observation).await?;
            let ctx = CommandContext {
                correlation_id: session_id,
                causation_id: Some(e.event_id),
                ..CommandContext::system(Source::AiCommandCenter)
            };
            let cmd = AiSessionCommand::Observe { position: e.position, events };
            self.execute::<AiSession>(&ctx, "ai.observe", &stream, &super::session_scope(&s), |st| st.decide(cmd.clone()), |_| json!({})).await?;
        }
        Ok(())
    }

    async fn observed_events(&self, s: &AiSession, release_id: Uuid, observation: &Observation) -> Result<Vec<AiSessionEvent>> {
        let session_id = s.id.expect("session");
        let say = |m: Msg<'_>| text(s.lang, &m);
        Ok(match observation {
            Observation::PendingApproval { ticket } => {
                vec![AiSessionEvent::ApprovalRequired { session_id, release_id, approval_ticket: ticket.clone(), text: say(Msg::ApprovalPending { ticket }) }]
            }
            Observation::Ticket { ticket, status, comment } => {
                let said = match *status {
                    "approved" => say(Msg::Approved),
                    "rejected" => say(Msg::Rejected { comment: comment.as_deref().unwrap_or("-") }),
                    "expired" => say(Msg::TicketExpired),
                    "scope_mismatch" => say(Msg::ScopeMismatch),
                    _ => say(Msg::Cancelled),
                };
                vec![AiSessionEvent::ApprovalStatusChanged { session_id, release_id, approval_ticket: ticket.clone(), status: status.to_string(), comment: comment.clone(), text: said }]
            }
            Observation::Release { status, error_key, summary } => {
                let hint = || {
                    let code = error_key.as_deref().and_then(ErrorCode::from_key).unwrap_or(ErrorCode::InternalError);
                    super::describe(s.lang, code, summary.as_deref().unwrap_or_default())
                };
                let said = match *status {
                    "applied" => {
                        let (service, env) = self.release_names(release_id).await?;
                        say(Msg::Applied { service: &service, env: &env })
                    }
                    "failed" => say(Msg::Failed { hint: &hint() }),
                    "rolled_back" => say(Msg::RolledBack),
                    "rollback_failed" => say(Msg::RollbackFailed { hint: &hint() }),
                    "rejected" => say(Msg::Rejected { comment: summary.as_deref().unwrap_or("-") }),
                    _ => say(Msg::Applying),
                };
                let mut events = vec![AiSessionEvent::ReleaseStatusChanged { session_id, release_id, status: status.to_string(), error_key: error_key.clone(), text: said }];
                if SETTLED.contains(status) {
                    events.push(AiSessionEvent::TimelineSynced { session_id, release_id, status: status.to_string() });
                }
                events
            }
        })
    }

    /// The service name and env of a release, for what the assistant says.
    async fn release_names(&self, release_id: Uuid) -> Result<(String, String)> {
        let (r, _) = self.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
        let Some(spec) = r.spec else { return Ok((release_id.to_string(), String::new())) };
        let (svc, _) = self.load::<Service>(&stream_id_of::<Service>(spec.service_id)).await?;
        Ok((svc.name.map(|n| n.to_string()).unwrap_or_default(), spec.env))
    }
}
