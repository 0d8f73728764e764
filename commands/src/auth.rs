//! Authentication: argon2 passwords, session and API tokens. Tokens are shown
//! once and stored only as sha256 hashes; events carry ids and fingerprints.

use opspilot_domain::rbac::Permission;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use opspilot_domain::identity::api_token::{ApiToken, ApiTokenCommand};
use opspilot_domain::identity::user::{User, UserCommand};
use opspilot_domain::security::SecurityEvent;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::ids::resolve;
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// How long a login session lasts.
pub const SESSION_TTL_HOURS: i64 = 12;

/// Refuses passwords shorter than 8 or longer than 256 characters.
pub fn validate_password(password: &str) -> Result<(), DomainError> {
    if (8..=256).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(DomainError::validation("password", "use 8 to 256 characters"))
    }
}

/// An argon2id hash in PHC format.
pub fn hash_password(password: &str) -> Result<String, DomainError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::new(ErrorCode::InternalError, format!("argon2: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false)
}

/// A fresh bearer token: a kind prefix and 32 random bytes.
fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A short, non-reversible label of a token for lists and events.
fn token_fingerprint(token: &str) -> String {
    hex_prefix(&opspilot_eventstore::secrets::token_hash(token))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The answer to a successful login.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub token: String,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// The answer to issuing an API token: the token is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub id: Uuid,
    pub name: String,
    pub token: String,
    pub fingerprint: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Commands {
    /// Checks a username and password; records the attempt either way.
    /// Unknown user and wrong password answer the same.
    pub async fn login(&self, ctx: &CommandContext, username: &str, password: &str) -> Result<Session> {
        let user_id = resolve("user", username);
        let (user, _) = self.load::<User>(&stream_id_of::<User>(user_id)).await?;
        let hash = match user.id {
            Some(id) if !user.disabled => self.secrets.password_hash(id).await?,
            _ => None,
        };
        let ok = hash.is_some_and(|h| verify_password(password, &h));
        if !ok {
            let event = SecurityEvent::LoginFailed { username: username.chars().take(64).collect(), error_key: "unauthenticated".into() };
            self.record(ctx, &format!("security-{user_id}"), &EventScope::resource("user", user_id), &[event]).await?;
            return Err(DomainError::new(ErrorCode::Unauthenticated, "invalid username or password").into());
        }
        let session_id = Uuid::new_v4();
        let token = new_token("ops_s_");
        let expires_at = ctx.now + Duration::hours(SESSION_TTL_HOURS);
        self.secrets.put_token(&token, session_id, user_id, "session", Some(expires_at)).await?;
        let event = SecurityEvent::LoginSucceeded { user_id, session_id };
        self.record(ctx, &format!("security-{user_id}"), &EventScope::resource("user", user_id), &[event]).await?;
        Ok(Session { token, user_id, expires_at })
    }

    /// Ends a session (or revokes the token used).
    pub async fn logout(&self, token_id: Uuid) -> Result<()> {
        self.secrets.revoke_token(token_id).await?;
        Ok(())
    }

    /// Issues an API token for the caller.
    pub async fn issue_api_token(&self, ctx: &CommandContext, name: &str, expires_in_days: Option<i64>) -> Result<(IssuedToken, i64)> {
        let principal = ctx.principal()?.clone();
        if let Some(d) = expires_in_days {
            if !(1..=3650).contains(&d) {
                return Err(DomainError::validation("expires_in_days", "use 1 to 3650 days, or none").into());
            }
        }
        let token_id = Uuid::new_v4();
        let token = new_token("ops_t_");
        let fingerprint = token_fingerprint(&token);
        let expires_at = expires_in_days.map(|d| ctx.now + Duration::days(d));
        let cmd = ApiTokenCommand::Issue { token_id, user_id: principal.user_id, name: name.to_string(), fingerprint: fingerprint.clone(), expires_at };
        let scope = EventScope::resource("api_token", token_id);
        // The hash goes in first: if the append fails the token is unusable garbage; if
        // the hash failed after the event, the event would list a token that cannot work.
        self.secrets.put_token(&token, token_id, principal.user_id, "api", expires_at).await?;
        let handled = self
            .execute::<ApiToken>(ctx, "issue_api_token", &stream_id_of::<ApiToken>(token_id), &scope, |s| s.decide_clone(&cmd), |_| json!({ "id": token_id }))
            .await;
        match handled {
            Ok(h) => Ok((IssuedToken { id: token_id, name: name.into(), token, fingerprint, expires_at }, h.position)),
            Err(e) => {
                self.secrets.revoke_token(token_id).await?;
                Err(e)
            }
        }
    }

    /// Revokes an API token: its owner, or an admin (`identity:manage`).
    pub async fn revoke_api_token(&self, ctx: &CommandContext, token_id: Uuid) -> Result<Handled> {
        let principal = ctx.principal()?.clone();
        let stream = stream_id_of::<ApiToken>(token_id);
        let (state, _) = self.load::<ApiToken>(&stream).await?;
        let owner = state.user_id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, "token does not exist"))?;
        if owner != principal.user_id {
            self.authorize(ctx, Permission::IdentityManage, "api_token.revoke").await?;
        }
        let handled = self
            .execute::<ApiToken>(ctx, "revoke_api_token", &stream, &EventScope::resource("api_token", token_id), |s| s.decide_clone(&ApiTokenCommand::Revoke), |_| {
                json!({ "id": token_id, "revoked": true })
            })
            .await?;
        self.secrets.revoke_token(token_id).await?;
        Ok(handled)
    }

    /// Sets a new password: the user themself, or an admin (`identity:manage`).
    pub async fn change_password(&self, ctx: &CommandContext, user: &str, new_password: &str) -> Result<Handled> {
        let user_id = self.existing_user(user).await?;
        let principal = ctx.principal()?.clone();
        if principal.user_id != user_id {
            self.authorize(ctx, Permission::IdentityManage, "user.change_password").await?;
        }
        validate_password(new_password)?;
        self.secrets.set_password_hash(user_id, &hash_password(new_password)?).await?;
        self.execute::<User>(ctx, "change_password", &stream_id_of::<User>(user_id), &EventScope::resource("user", user_id), |s| {
            s.decide_clone(&UserCommand::ChangePassword)
        }, |_| json!({ "user_id": user_id }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(validate_password("short").is_err());
    }

    #[test]
    fn tokens_are_random_and_fingerprints_do_not_reveal_them() {
        let a = new_token("ops_t_");
        assert_ne!(a, new_token("ops_t_"));
        assert!(a.starts_with("ops_t_") && a.len() > 40);
        assert!(!a.contains(&token_fingerprint(&a)));
    }
}
