//! Password hashes and bearer-token hashes: kept beside the log, never in it.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;

/// A token found by its hash.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
}

/// The sha256 of a bearer token: what is stored and looked up.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Access to `user_passwords` and `auth_tokens`.
#[derive(Clone)]
pub struct Secrets {
    pool: Pool,
}

impl Secrets {
    /// Over the tables of `pool`.
    pub fn new(pool: Pool) -> Self {
        Secrets { pool }
    }

    /// Stores (or replaces) a user's argon2 hash.
    pub async fn set_password_hash(&self, user_id: Uuid, hash: &str) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO user_passwords (user_id, hash) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = now()",
            &[&user_id, &hash],
        )
        .await?;
        Ok(())
    }

    /// A user's argon2 hash.
    pub async fn password_hash(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_opt("SELECT hash FROM user_passwords WHERE user_id = $1", &[&user_id]).await?.map(|r| r.get(0)))
    }

    /// Stores a token's hash.
    pub async fn put_token(
        &self,
        token: &str,
        token_id: Uuid,
        user_id: Uuid,
        kind: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO auth_tokens (token_hash, token_id, user_id, kind, expires_at) VALUES ($1,$2,$3,$4,$5)",
            &[&token_hash(token), &token_id, &user_id, &kind, &expires_at],
        )
        .await?;
        Ok(())
    }

    /// Finds a live (not revoked, not expired at `now`) token.
    pub async fn find_token(&self, token: &str, now: DateTime<Utc>) -> Result<Option<TokenRecord>, StoreError> {
        let c = self.pool.get().await?;
        let stmt = c
            .prepare_cached(
                "SELECT token_id, user_id, kind FROM auth_tokens
                 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            )
            .await?;
        Ok(c.query_opt(&stmt, &[&token_hash(token), &now])
            .await?
            .map(|r| TokenRecord { token_id: r.get(0), user_id: r.get(1), kind: r.get(2) }))
    }

    /// Revokes a token by id; returns the owner if it existed.
    pub async fn revoke_token(&self, token_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "UPDATE auth_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1 RETURNING user_id",
            &[&token_id],
        )
        .await?
        .map(|r| r.get(0)))
    }
}
