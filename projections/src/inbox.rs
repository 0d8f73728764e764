//! The global approval inbox (SPEC §3): one row per ticket of every scope
//! type, its action history, and the views, filters, sorts and stats of the seed.

use opspilot_domain::rbac::Permission;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::Principal;
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::runner::Projection;
use crate::ReadError;

/// The inbox projection.
pub const PROJECTION: Projection = Projection { name: "inbox", tables: &["approval_inbox_items", "approval_inbox_actions"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    if e.domain != "approval" {
        return Ok(());
    }
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    let uuid = |k: &str| text(k).and_then(|s| Uuid::parse_str(&s).ok());
    let ticket = text("ticket").unwrap_or_default();
    let at = e.occurred_at;
    match e.action.as_str() {
        "approval.ticket_created" => {
            let expires: Option<DateTime<Utc>> = d.get("expires_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            let sla: Option<DateTime<Utc>> = d.get("sla_due_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            tx.execute(
                "INSERT INTO approval_inbox_items (ticket, scope_type, scope_id, project_id, team_id, environment_id, runtime_type, risk_level, priority,
                    status, requested_by, required_role, source, summary, detail, expires_at, sla_due_at, created_at, updated_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'pending',$10,$11,$12,$13,$14,$15,$16,$17,$17) ON CONFLICT DO NOTHING",
                &[
                    &ticket, &text("scope_type"), &text("scope_id"), &uuid("project_id"), &uuid("team_id"), &text("environment_id"), &text("runtime_type"),
                    &text("risk_level"), &text("priority"), &uuid("requested_by"), &text("required_role"), &text("source"), &text("summary"),
                    &d.get("detail").cloned().unwrap_or(json!({})), &expires, &sla, &at,
                ],
            )
            .await?;
        }
        "approval.ticket_assigned" => {
            tx.execute("UPDATE approval_inbox_items SET assigned_to = $2, updated_at = $3 WHERE ticket = $1", &[&ticket, &uuid("assigned_to"), &at]).await?;
        }
        "approval.ticket_approved" => {
            tx.execute("UPDATE approval_inbox_items SET status = 'approved', approved_at = $3, approved_by = $2, updated_at = $3 WHERE ticket = $1", &[&ticket, &uuid("reviewed_by"), &at])
                .await?;
        }
        "approval.ticket_rejected" => {
            tx.execute("UPDATE approval_inbox_items SET status = 'rejected', rejected_at = $3, rejected_by = $2, updated_at = $3 WHERE ticket = $1", &[&ticket, &uuid("reviewed_by"), &at])
                .await?;
        }
        "approval.ticket_expired" => {
            tx.execute("UPDATE approval_inbox_items SET status = 'expired', updated_at = $2 WHERE ticket = $1", &[&ticket, &at]).await?;
        }
        "approval.ticket_cancelled" => {
            tx.execute("UPDATE approval_inbox_items SET status = 'cancelled', updated_at = $2 WHERE ticket = $1", &[&ticket, &at]).await?;
        }
        _ => {}
    }
    let action = e.action.trim_start_matches("approval.ticket_").to_string();
    tx.execute(
        "INSERT INTO approval_inbox_actions (position, ticket, action, actor_id, comment, meta, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING",
        &[&e.position, &ticket, &action, &e.actor_id, &text("comment"), d, &at],
    )
    .await?;
    Ok(())
}

/// A ticket as listed (the seed's item fields).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InboxItem"))]
pub struct InboxItem {
    pub ticket: String,
    pub scope_type: String,
    pub scope_id: String,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub environment_id: Option<String>,
    pub runtime_type: String,
    pub risk_level: String,
    pub priority: String,
    pub status: String,
    pub requested_by: Uuid,
    pub assigned_to: Option<Uuid>,
    pub required_role: String,
    pub source: String,
    pub summary: String,
    pub detail: Value,
    pub expires_at: DateTime<Utc>,
    pub sla_due_at: DateTime<Utc>,
    pub overdue: bool,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<Uuid>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub rejected_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The seed's list query: view, filters, sort, page.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    /// `mine` (default), `pending` or `all`.
    pub view: Option<String>,
    pub status: Vec<String>,
    pub scope_type: Vec<String>,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub environment_id: Option<String>,
    pub runtime_type: Option<String>,
    pub risk_level: Option<String>,
    pub priority: Option<String>,
    pub assigned_to: Option<Uuid>,
    pub requested_by: Option<Uuid>,
    pub q: Option<String>,
    /// `15m`, `1h` or `today`.
    pub expiring: Option<String>,
    /// `priority`, `expires_at`, `sla_due_at` or `created_at`.
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

/// The stats strip of the inbox.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InboxStats"))]
pub struct InboxStats {
    pub pending: i64,
    pub overdue: i64,
    pub expiring_15m: i64,
}

/// A page of tickets with the stats of the caller's view.
#[derive(Debug, Clone, Serialize)]
pub struct InboxPage {
    #[serde(flatten)]
    pub page: Page<InboxItem>,
    pub stats: InboxStats,
}

const COLUMNS: &str = "ticket, scope_type, scope_id, project_id, team_id, environment_id, runtime_type, risk_level, priority, status, requested_by,
    assigned_to, required_role, source, summary, detail, expires_at, sla_due_at, approved_at, approved_by, rejected_at, rejected_by, created_at, updated_at";

fn item(r: &tokio_postgres::Row, now: DateTime<Utc>) -> InboxItem {
    let status: String = r.get(9);
    let sla: DateTime<Utc> = r.get(17);
    InboxItem {
        ticket: r.get(0),
        scope_type: r.get(1),
        scope_id: r.get(2),
        project_id: r.get(3),
        team_id: r.get(4),
        environment_id: r.get(5),
        runtime_type: r.get(6),
        risk_level: r.get(7),
        priority: r.get(8),
        overdue: status == "pending" && now > sla,
        status,
        requested_by: r.get(10),
        assigned_to: r.get(11),
        required_role: r.get(12),
        source: r.get(13),
        summary: r.get(14),
        detail: r.get(15),
        expires_at: r.get(16),
        sla_due_at: sla,
        approved_at: r.get(18),
        approved_by: r.get(19),
        rejected_at: r.get(20),
        rejected_by: r.get(21),
        created_at: r.get(22),
        updated_at: r.get(23),
    }
}

/// The tickets `p` may see, in the requested view. Other projects' tickets are
/// never visible (a ticket the caller requested or was assigned stays visible).
pub async fn list(pool: &Pool, p: &Principal, q: &InboxQuery, now: DateTime<Utc>, page: PageRequest) -> Result<InboxPage, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let projects: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let teams: Vec<Uuid> = p.team_ids.iter().copied().collect();
    let roles: Vec<String> = {
        let mut perms: Vec<String> = p.roles.iter().flat_map(|r| r.permissions().iter().map(|s| s.to_string())).collect();
        perms.sort();
        perms.dedup();
        perms
    };
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(p.is_admin()), Box::new(projects), Box::new(p.user_id), Box::new(teams), Box::new(roles), Box::new(now)];
    let mut arg = |v: Box<dyn ToSql + Sync + Send>| {
        args.push(v);
        format!("${}", args.len())
    };
    // Visibility: admins all; others their projects, or tickets they requested or hold.
    // Every base parameter is typed here, whichever clauses below use it.
    let mut filter = vec![
        "($1 OR project_id = ANY($2) OR requested_by = $3 OR assigned_to = $3)".to_string(),
        "($4::uuid[] IS NOT NULL AND $5::text[] IS NOT NULL AND $6::timestamptz IS NOT NULL)".to_string(),
    ];
    match q.view.as_deref().unwrap_or("mine") {
        "all" => {}
        "pending" => filter.push("status = 'pending'".into()),
        _ => filter.push(
            "(assigned_to = $3 OR requested_by = $3 OR (status = 'pending' AND required_role = ANY($5))
              OR (status = 'pending' AND (project_id = ANY($2) OR team_id = ANY($4))))"
                .into(),
        ),
    }
    if !q.status.is_empty() {
        let a = arg(Box::new(q.status.clone()));
        filter.push(format!("status = ANY({a})"));
    }
    if !q.scope_type.is_empty() {
        let a = arg(Box::new(q.scope_type.clone()));
        filter.push(format!("scope_type = ANY({a})"));
    }
    macro_rules! eq {
        ($field:expr, $col:literal) => {
            if let Some(v) = $field.clone() {
                let a = arg(Box::new(v));
                filter.push(format!("{} = {a}", $col));
            }
        };
    }
    eq!(q.project_id, "project_id");
    eq!(q.team_id, "team_id");
    eq!(q.environment_id, "environment_id");
    eq!(q.runtime_type, "runtime_type");
    eq!(q.risk_level, "risk_level");
    eq!(q.priority, "priority");
    eq!(q.assigned_to, "assigned_to");
    eq!(q.requested_by, "requested_by");
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let a = arg(Box::new(format!("%{}%", text.replace('%', "\\%").replace('_', "\\_"))));
        filter.push(format!("(ticket ILIKE {a} OR summary ILIKE {a})"));
    }
    match q.expiring.as_deref() {
        Some("15m") => filter.push("status = 'pending' AND expires_at <= $6 + interval '15 minutes'".into()),
        Some("1h") => filter.push("status = 'pending' AND expires_at <= $6 + interval '1 hour'".into()),
        Some("today") => filter.push("status = 'pending' AND expires_at < date_trunc('day', $6 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day'".into()),
        _ => {}
    }
    let dir = if q.sort_order.as_deref() == Some("desc") { "DESC" } else { "ASC" };
    let order = match q.sort_by.as_deref() {
        Some("priority") => format!("priority {dir}, expires_at, created_at"),
        Some("expires_at") => format!("expires_at {dir}"),
        Some("sla_due_at") => format!("sla_due_at {dir}"),
        Some("created_at") => format!("created_at {dir}"),
        _ => "(status = 'pending') DESC, priority, expires_at, created_at".into(),
    };
    let where_ = filter.join(" AND ");
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM approval_inbox_items WHERE {where_}"), &refs).await?.get(0);
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM approval_inbox_items WHERE {where_} ORDER BY {order} LIMIT {} OFFSET {}", page.page_size, page.offset()), &refs)
        .await?;
    // Stats over everything the caller may see, whatever the view and filters.
    let visible: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let stats_row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'),
                    count(*) FILTER (WHERE status = 'pending' AND $4 > sla_due_at),
                    count(*) FILTER (WHERE status = 'pending' AND expires_at <= $4 + interval '15 minutes')
             FROM approval_inbox_items WHERE ($1 OR project_id = ANY($2) OR requested_by = $3 OR assigned_to = $3)",
            &[&p.is_admin(), &visible, &p.user_id, &now],
        )
        .await?;
    Ok(InboxPage {
        page: Page { list: rows.iter().map(|r| item(r, now)).collect(), total, page: page.page, page_size: page.page_size },
        stats: InboxStats { pending: stats_row.get(0), overdue: stats_row.get(1), expiring_15m: stats_row.get(2) },
    })
}

/// One ticket visible to `p`, with its action history.
pub async fn get(pool: &Pool, p: &Principal, ticket: &str, now: DateTime<Utc>) -> Result<Option<(InboxItem, Vec<Value>)>, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let projects: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM approval_inbox_items WHERE ticket = $4 AND ($1 OR project_id = ANY($2) OR requested_by = $3 OR assigned_to = $3)"),
            &[&p.is_admin(), &projects, &p.user_id, &ticket],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let actions = c
        .query("SELECT action, actor_id, comment, created_at FROM approval_inbox_actions WHERE ticket = $1 ORDER BY position", &[&ticket])
        .await?
        .iter()
        .map(|r| json!({ "action": r.get::<_, String>(0), "actor_id": r.get::<_, String>(1), "comment": r.get::<_, Option<String>>(2), "created_at": r.get::<_, DateTime<Utc>>(3) }))
        .collect();
    Ok(Some((item(&row, now), actions)))
}

/// Pending tickets past their expiry, for the scheduler.
pub async fn due_tickets(pool: &Pool, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let c = pool.get().await?;
    Ok(c.query("SELECT ticket FROM approval_inbox_items WHERE status = 'pending' AND expires_at < $1 ORDER BY expires_at LIMIT 500", &[&now])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
