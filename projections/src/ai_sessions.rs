//! The AI sessions read model: a user's conversations, newest first, with
//! the release each one is about and where that release stands.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::Principal;
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::runner::Projection;
use crate::ReadError;

/// The sessions projection.
pub const PROJECTION: Projection = Projection { name: "ai_sessions", tables: &["ai_sessions"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    if e.domain != "ai" {
        return Ok(());
    }
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    let uuid = |k: &str| text(k).and_then(|s| Uuid::parse_str(&s).ok());
    let Some(id) = uuid("session_id") else { return Ok(()) };
    match e.action.as_str() {
        "ai.session_started" => {
            tx.execute(
                "INSERT INTO ai_sessions (id, owner, project_id, title, lang, last_position, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$7) ON CONFLICT DO NOTHING",
                &[&id, &uuid("owner"), &uuid("project_id"), &text("title").unwrap_or_default(), &text("lang").unwrap_or_default(), &e.position, &e.occurred_at],
            )
            .await?;
        }
        "ai.user_message" => {
            // A session without a title is named by its first sentence.
            let first: String = text("text").unwrap_or_default().chars().take(80).collect();
            tx.execute("UPDATE ai_sessions SET title = $2 WHERE id = $1 AND title = ''", &[&id, &first]).await?;
        }
        "ai.apply_requested" | "ai.approval_required" => {
            tx.execute("UPDATE ai_sessions SET release_id = coalesce($2, release_id) WHERE id = $1", &[&id, &uuid("release_id")]).await?;
        }
        "ai.release_status_changed" => {
            tx.execute("UPDATE ai_sessions SET release_id = $2, release_status = $3 WHERE id = $1", &[&id, &uuid("release_id"), &text("status")]).await?;
        }
        _ => {}
    }
    tx.execute("UPDATE ai_sessions SET last_position = $2, updated_at = $3 WHERE id = $1 AND last_position < $2", &[&id, &e.position, &e.occurred_at]).await?;
    Ok(())
}

/// A session as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "AiSessionSummary"))]
pub struct SessionSummary {
    pub id: Uuid,
    pub title: String,
    pub lang: String,
    pub project_id: Option<Uuid>,
    pub release_id: Option<Uuid>,
    pub release_status: Option<String>,
    pub last_position: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The caller's own sessions, most recently active first.
pub async fn list(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<SessionSummary>, ReadError> {
    let c = pool.get().await?;
    let total: i64 = c.query_one("SELECT count(*) FROM ai_sessions WHERE owner = $1", &[&p.user_id]).await?.get(0);
    let rows = c
        .query(
            "SELECT id, title, lang, project_id, release_id, release_status, last_position, created_at, updated_at FROM ai_sessions
             WHERE owner = $1 ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3",
            &[&p.user_id, &page.page_size, &page.offset()],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| SessionSummary {
            id: r.get(0),
            title: r.get(1),
            lang: r.get(2),
            project_id: r.get(3),
            release_id: r.get(4),
            release_status: r.get(5),
            last_position: r.get(6),
            created_at: r.get(7),
            updated_at: r.get(8),
        })
        .collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}
