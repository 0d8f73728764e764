//! API token aggregate: long-lived tokens for automation. The token itself is
//! shown once at issue time and stored only as a hash beside the event store;
//! events carry its id and a short fingerprint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};

/// What an API token can be asked to do.
#[derive(Debug, Clone)]
pub enum ApiTokenCommand {
    Issue { token_id: Uuid, user_id: Uuid, name: String, fingerprint: String, expires_at: Option<DateTime<Utc>> },
    Revoke,
}

/// What an API token records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ApiTokenEvent {
    #[serde(rename = "auth.api_token_issued")]
    Issued { token_id: Uuid, user_id: Uuid, name: String, fingerprint: String, expires_at: Option<DateTime<Utc>> },
    #[serde(rename = "auth.api_token_revoked")]
    Revoked { token_id: Uuid, user_id: Uuid },
}

impl DomainEvent for ApiTokenEvent {}

/// An API token's state.
#[derive(Debug, Clone, Default)]
pub struct ApiToken {
    pub id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub revoked: bool,
}

impl Aggregate for ApiToken {
    type Command = ApiTokenCommand;
    type Event = ApiTokenEvent;
    const KIND: &'static str = "api_token";

    fn decide(&self, command: ApiTokenCommand) -> Result<Vec<ApiTokenEvent>, DomainError> {
        match command {
            ApiTokenCommand::Issue { token_id, user_id, name, fingerprint, expires_at } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, "token already issued"));
                }
                if name.trim().is_empty() || name.len() > 100 {
                    return Err(DomainError::validation("name", "give the token a name of 1-100 characters"));
                }
                Ok(vec![ApiTokenEvent::Issued { token_id, user_id, name, fingerprint, expires_at }])
            }
            ApiTokenCommand::Revoke => match (self.id, self.user_id) {
                (Some(token_id), Some(user_id)) if !self.revoked => Ok(vec![ApiTokenEvent::Revoked { token_id, user_id }]),
                (Some(_), _) => Ok(vec![]),
                _ => Err(DomainError::new(ErrorCode::NotFound, "token does not exist")),
            },
        }
    }

    fn evolve(mut self, event: &ApiTokenEvent) -> Self {
        match event {
            ApiTokenEvent::Issued { token_id, user_id, .. } => {
                self.id = Some(*token_id);
                self.user_id = Some(*user_id);
            }
            ApiTokenEvent::Revoked { .. } => self.revoked = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn issued() -> ApiTokenEvent {
        ApiTokenEvent::Issued { token_id: Uuid::from_u128(1), user_id: Uuid::from_u128(2), name: "ci".into(), fingerprint: "abcd".into(), expires_at: None }
    }

    #[test]
    fn a_token_is_revoked_once() {
        given::<ApiToken>(vec![issued()])
            .when(ApiTokenCommand::Revoke)
            .then_expect_events(vec![ApiTokenEvent::Revoked { token_id: Uuid::from_u128(1), user_id: Uuid::from_u128(2) }]);
        given::<ApiToken>(vec![issued(), ApiTokenEvent::Revoked { token_id: Uuid::from_u128(1), user_id: Uuid::from_u128(2) }])
            .when(ApiTokenCommand::Revoke)
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_unnamed_token_is_refused() {
        given::<ApiToken>(vec![])
            .when(ApiTokenCommand::Issue { token_id: Uuid::nil(), user_id: Uuid::nil(), name: " ".into(), fingerprint: "x".into(), expires_at: None })
            .then_expect_error(ErrorCode::ValidationError);
    }
}
