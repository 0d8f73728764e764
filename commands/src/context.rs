//! Who is asking, through which entry point, and when.

use chrono::{DateTime, Utc};
use opspilot_domain::{ActorType, DomainError, ErrorCode, Principal, Source};
use opspilot_eventstore::EventMeta;
use uuid::Uuid;

/// Carried by every command: the caller (absent for system actions), the
/// entry point, the time, the correlation and an optional idempotency key.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub principal: Option<Principal>,
    pub source: Source,
    pub now: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

impl CommandContext {
    /// A user's (or API token's) command.
    pub fn user(principal: Principal, source: Source) -> Self {
        CommandContext {
            principal: Some(principal),
            source,
            now: Utc::now(),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            idempotency_key: None,
        }
    }

    /// A command of OpsPilot itself (bootstrap, scheduler).
    pub fn system(source: Source) -> Self {
        CommandContext { principal: None, source, now: Utc::now(), correlation_id: Uuid::new_v4(), causation_id: None, idempotency_key: None }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key.filter(|k| !k.is_empty());
        self
    }

    /// The caller, or `unauthenticated` for a system context.
    pub fn principal(&self) -> Result<&Principal, DomainError> {
        self.principal.as_ref().ok_or_else(|| DomainError::new(ErrorCode::Unauthenticated, "no caller"))
    }

    /// The actor id written on events.
    pub fn actor_id(&self) -> String {
        match &self.principal {
            Some(p) => p.user_id.to_string(),
            None => "system".into(),
        }
    }

    /// The envelope metadata of this command's events.
    pub fn meta(&self) -> EventMeta {
        let actor_type = match &self.principal {
            Some(p) if p.api_token_id.is_some() => ActorType::ApiToken,
            Some(_) => ActorType::User,
            None => ActorType::System,
        };
        EventMeta {
            actor_id: self.actor_id(),
            actor_type,
            source: self.source,
            occurred_at: self.now,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        }
    }
}
