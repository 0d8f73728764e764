//! Rendered release artifacts, content-addressed: events carry the digest.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The sha256 hex of an artifact.
pub fn digest(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// Stores an artifact (idempotent); answers its digest.
pub async fn put(pool: &Pool, content: &str) -> Result<String, StoreError> {
    let d = digest(content);
    pool.get().await?.execute("INSERT INTO release_artifacts (digest, content) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&d, &content]).await?;
    Ok(d)
}

/// Reads an artifact by digest.
pub async fn get(pool: &Pool, digest: &str) -> Result<Option<String>, StoreError> {
    Ok(pool.get().await?.query_opt("SELECT content FROM release_artifacts WHERE digest = $1", &[&digest]).await?.map(|r| r.get(0)))
}
