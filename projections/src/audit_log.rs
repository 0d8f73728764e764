//! The audit log read model: the envelope of every event, scoped and filterable,
//! for the audit explorer and for timelines.

use opspilot_domain::rbac::Permission;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::Principal;
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::runner::Projection;
use crate::ReadError;

/// The audit_log projection.
pub const PROJECTION: Projection = Projection { name: "audit_log", tables: &["audit_log_entries"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log_entries (position, event_id, stream_id, domain, action, resource_type, resource_id, environment_id,
                project_id, team_id, actor_id, actor_type, source, status, severity, occurred_at, correlation_id, detail)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &e.position, &e.event_id, &e.stream_id, &e.domain, &e.action, &e.resource_type, &e.resource_id, &e.environment_id,
            &e.project_id, &e.team_id, &e.actor_id, &e.actor_type, &e.source, &e.status, &e.severity, &e.occurred_at,
            &e.correlation_id, &e.detail,
        ],
    )
    .await?;
    Ok(())
}

/// One audit entry: the SPEC §4 envelope.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "AuditEntry"))]
pub struct AuditEntry {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub domain: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub environment_id: Option<String>,
    pub project_id: Option<String>,
    pub team_id: Option<String>,
    pub actor_id: String,
    pub actor_type: String,
    pub source: String,
    pub status: String,
    pub severity: String,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub detail: Value,
}

impl AuditEntry {
    /// The same entry built straight from a recorded event (live updates).
    pub fn from_event(e: &RecordedEvent) -> Self {
        AuditEntry {
            position: e.position,
            event_id: e.event_id,
            stream_id: e.stream_id.clone(),
            domain: e.domain.clone(),
            action: e.action.clone(),
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            environment_id: e.environment_id.clone(),
            project_id: e.project_id.clone(),
            team_id: e.team_id.clone(),
            actor_id: e.actor_id.clone(),
            actor_type: e.actor_type.clone(),
            source: e.source.clone(),
            status: e.status.clone(),
            severity: e.severity.clone(),
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            detail: e.detail.clone(),
        }
    }
}

/// Filters of the audit explorer; every field optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub domain: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor_id: Option<String>,
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub after_position: Option<i64>,
}

/// True when `p` may see an entry: admins see all; others the entries of
/// their projects and their own actions.
pub fn visible_to(p: &Principal, project_id: Option<&str>, actor_id: &str) -> bool {
    p.is_admin()
        || actor_id == p.user_id.to_string()
        || project_id.and_then(|s| Uuid::parse_str(s).ok()).is_some_and(|id| p.project_ids.contains(&id))
}

impl AuditFilter {
    /// True when a live entry passes the filter.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        fn eq(f: &Option<String>, v: &str) -> bool {
            f.as_deref().is_none_or(|f| f == v)
        }
        eq(&self.domain, &e.domain)
            && eq(&self.action, &e.action)
            && eq(&self.resource_type, &e.resource_type)
            && eq(&self.resource_id, &e.resource_id)
            && eq(&self.actor_id, &e.actor_id)
            && eq(&self.status, &e.status)
            && self.project_id.as_deref().is_none_or(|p| e.project_id.as_deref() == Some(p))
            && self.after_position.is_none_or(|a| e.position > a)
    }
}

/// The entry columns, for queries that join `audit_log_entries a`.
pub(crate) const ENTRY_COLUMNS: &str = "a.position, a.event_id, a.stream_id, a.domain, a.action, a.resource_type, a.resource_id, a.environment_id, \
     a.project_id, a.team_id, a.actor_id, a.actor_type, a.source, a.status, a.severity, a.occurred_at, a.correlation_id, a.detail";

pub(crate) fn row_entry(r: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        position: r.get(0),
        event_id: r.get(1),
        stream_id: r.get(2),
        domain: r.get(3),
        action: r.get(4),
        resource_type: r.get(5),
        resource_id: r.get(6),
        environment_id: r.get(7),
        project_id: r.get(8),
        team_id: r.get(9),
        actor_id: r.get(10),
        actor_type: r.get(11),
        source: r.get(12),
        status: r.get(13),
        severity: r.get(14),
        occurred_at: r.get(15),
        correlation_id: r.get(16),
        detail: r.get(17),
    }
}

/// Entries visible to `p`, newest first unless `ascending`.
pub async fn list(pool: &Pool, p: &Principal, f: &AuditFilter, ascending: bool, page: PageRequest) -> Result<Page<AuditEntry>, ReadError> {
    p.require(Permission::AuditRead)?;
    let c = pool.get().await?;
    let projects: Vec<String> = p.project_ids.iter().map(|u| u.to_string()).collect();
    let me = p.user_id.to_string();
    let filter = "($1 OR actor_id = $2 OR project_id = ANY($3))
        AND ($4::text IS NULL OR domain = $4) AND ($5::text IS NULL OR action = $5)
        AND ($6::text IS NULL OR resource_type = $6) AND ($7::text IS NULL OR resource_id = $7)
        AND ($8::text IS NULL OR actor_id = $8) AND ($9::text IS NULL OR project_id = $9)
        AND ($10::text IS NULL OR status = $10) AND ($11::bigint IS NULL OR position > $11)";
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &p.is_admin(), &me, &projects, &f.domain, &f.action, &f.resource_type, &f.resource_id, &f.actor_id, &f.project_id, &f.status,
        &f.after_position,
    ];
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM audit_log_entries WHERE {filter}"), &args).await?.get(0);
    let order = if ascending { "ASC" } else { "DESC" };
    let rows = c
        .query(
            &format!(
                "SELECT position, event_id, stream_id, domain, action, resource_type, resource_id, environment_id, project_id, team_id,
                        actor_id, actor_type, source, status, severity, occurred_at, correlation_id, detail
                 FROM audit_log_entries WHERE {filter} ORDER BY position {order} LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &args,
        )
        .await?;
    let list = rows.iter().map(row_entry).collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}
