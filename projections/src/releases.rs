//! The releases read model: one row per release with its current status, by
//! folding the release's own events (the state names are the domain's).

use opspilot_domain::rbac::Permission;
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::release::{Release, ReleaseEvent};
use opspilot_domain::{Aggregate, DomainEvent, Principal};
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::runner::Projection;
use crate::ReadError;

/// The releases projection.
pub const PROJECTION: Projection = Projection { name: "releases", tables: &["deploy_releases"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    if e.domain != "release" {
        return Ok(());
    }
    let Ok(id) = Uuid::parse_str(&e.resource_id) else { return Ok(()) };
    // The status is the aggregate's own fold over the stream up to this event.
    let rows = tx
        .query("SELECT action, schema_version, detail FROM events WHERE stream_id = $1 AND position <= $2 ORDER BY stream_version", &[&e.stream_id, &e.position])
        .await?;
    let events: Vec<(String, Value)> = rows
        .iter()
        .map(|r| {
            let action: String = r.get(0);
            let (_, detail) = opspilot_domain::upcast::upcast(&action, r.get(1), r.get(2));
            (action, detail)
        })
        .collect();
    let folded: Vec<ReleaseEvent> = events.iter().filter_map(|(a, d)| ReleaseEvent::from_parts(a, d).ok()).collect();
    let state = Release::fold(folded.iter());
    let Some(spec) = state.spec.as_ref() else { return Ok(()) };
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    tx.execute(
        "INSERT INTO deploy_releases (id, service_id, target_id, project_id, team_id, runtime_type, env, strategy, status, preview_ref,
            approval_ticket, variables, last_error_key, last_summary, created_by, created_at, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$16)
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, preview_ref = coalesce(EXCLUDED.preview_ref, deploy_releases.preview_ref),
            approval_ticket = coalesce(EXCLUDED.approval_ticket, deploy_releases.approval_ticket),
            last_error_key = coalesce(EXCLUDED.last_error_key, deploy_releases.last_error_key),
            last_summary = coalesce(EXCLUDED.last_summary, deploy_releases.last_summary), updated_at = EXCLUDED.updated_at",
        &[
            &id, &spec.service_id, &spec.target_id, &spec.project_id, &spec.team_id, &spec.runtime_type, &spec.env, &spec.strategy,
            &state.status.as_str(), &state.release.as_ref().and_then(|r| r.preview_ref.clone()), &state.approval_ticket,
            &serde_json::to_value(&spec.variables).unwrap_or_default(), &text("error_key").filter(|k| !k.is_empty()), &text("summary").filter(|s| !s.is_empty()),
            &e.actor_id, &e.occurred_at,
        ],
    )
    .await?;
    Ok(())
}

/// A release as shown everywhere: status with its label and color.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Release"))]
pub struct ReleaseView {
    pub id: Uuid,
    pub service_id: Uuid,
    pub target_id: Uuid,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub runtime_type: String,
    pub env: String,
    pub strategy: String,
    pub status: String,
    pub status_label_en: String,
    pub status_label_zh: String,
    pub status_color: String,
    pub preview_ref: Option<String>,
    pub approval_ticket: Option<String>,
    pub variables: Value,
    pub last_error_key: Option<String>,
    pub last_summary: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One release visible to `p`.
pub async fn get(pool: &Pool, p: &Principal, id: Uuid) -> Result<Option<ReleaseView>, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM deploy_releases WHERE id = $3 AND ($1 OR project_id = ANY($2))"),
            &[&p.is_admin(), &ids, &id],
        )
        .await?;
    Ok(row.as_ref().map(view_of))
}

const COLUMNS: &str = "id, service_id, target_id, project_id, team_id, runtime_type, env, strategy, status, preview_ref, approval_ticket, variables,
    last_error_key, last_summary, created_at, updated_at";

fn view_of(r: &tokio_postgres::Row) -> ReleaseView {
    let status: String = r.get(8);
    let s = opspilot_domain::release::ReleaseStatus::parse(&status).ok();
    ReleaseView {
        id: r.get(0),
        service_id: r.get(1),
        target_id: r.get(2),
        project_id: r.get(3),
        team_id: r.get(4),
        runtime_type: r.get(5),
        env: r.get(6),
        strategy: r.get(7),
        status_label_en: s.map(|s| s.label_en().to_string()).unwrap_or_default(),
        status_label_zh: s.map(|s| s.label_zh().to_string()).unwrap_or_default(),
        status_color: s.map(|s| s.color().to_string()).unwrap_or_default(),
        status,
        preview_ref: r.get(9),
        approval_ticket: r.get(10),
        variables: r.get(11),
        last_error_key: r.get(12),
        last_summary: r.get(13),
        created_at: r.get(14),
        updated_at: r.get(15),
    }
}

/// Which releases a list shows; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    /// Only the caller's own (created by them, from any entry point).
    pub mine: bool,
    pub statuses: Vec<String>,
    pub project_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
}

/// The releases visible to `p`, most recently changed first.
pub async fn list(pool: &Pool, p: &Principal, f: &ReleaseFilter, page: crate::PageRequest) -> Result<crate::Page<ReleaseView>, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let me = p.user_id.to_string();
    let filter = "($1 OR project_id = ANY($2)) AND (NOT $3 OR created_by = $4) AND (cardinality($5::text[]) = 0 OR status = ANY($5))
        AND ($6::uuid IS NULL OR project_id = $6) AND ($7::uuid IS NULL OR service_id = $7)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [&p.is_admin(), &ids, &f.mine, &me, &f.statuses, &f.project_id, &f.service_id];
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM deploy_releases WHERE {filter}"), &params).await?.get(0);
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM deploy_releases WHERE {filter} ORDER BY updated_at DESC, id LIMIT {} OFFSET {}", page.page_size, page.offset()), &params)
        .await?;
    Ok(crate::Page { list: rows.iter().map(view_of).collect(), total, page: page.page, page_size: page.page_size })
}

