//! The clusters read model: clusters and their connection records (never
//! the credentials themselves).

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

/// The clusters projection.
pub const PROJECTION: Projection = Projection { name: "clusters", tables: &["clusters", "cluster_connections"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let d = &e.detail;
    let id = d.get("cluster_id").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    let uuid = |k: &str| text(k).and_then(|s| Uuid::parse_str(&s).ok());
    match e.action.as_str() {
        "cluster.import_kubeconfig_succeeded" | "cluster.import_cert_succeeded" => {
            let labels = d.get("labels").cloned().unwrap_or(Value::Object(Default::default()));
            tx.execute(
                "INSERT INTO clusters (id, name, project_id, team_id, source_type, status, labels, created_at, updated_at)
                 VALUES ($1,$2,$3,$4,$5,'connected',$6,$7,$7)
                 ON CONFLICT (id) DO UPDATE SET status = 'connected', updated_at = EXCLUDED.updated_at,
                    labels = CASE WHEN EXCLUDED.labels = '{}'::jsonb THEN clusters.labels ELSE EXCLUDED.labels END",
                &[&id, &text("name"), &uuid("project_id"), &uuid("team_id"), &text("source_type"), &labels, &e.occurred_at],
            )
            .await?;
            let expires: Option<DateTime<Utc>> = d.get("client_cert_expires_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            tx.execute(
                "INSERT INTO cluster_connections (cluster_id, source_type, auth_type, endpoint, credential_id, credential_fingerprint,
                    server_version, namespaces_checked, client_cert_expires_at, last_check_at, last_check_status, updated_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'succeeded',$10)
                 ON CONFLICT (cluster_id) DO UPDATE SET auth_type = EXCLUDED.auth_type, endpoint = EXCLUDED.endpoint,
                    credential_id = EXCLUDED.credential_id, credential_fingerprint = EXCLUDED.credential_fingerprint,
                    server_version = EXCLUDED.server_version, namespaces_checked = EXCLUDED.namespaces_checked,
                    client_cert_expires_at = EXCLUDED.client_cert_expires_at, last_check_at = EXCLUDED.last_check_at,
                    last_check_status = 'succeeded', last_check_error = NULL, updated_at = EXCLUDED.updated_at",
                &[
                    &id, &text("source_type"), &text("auth_type"), &text("endpoint"), &uuid("credential_id"), &text("credential_fingerprint"),
                    &text("server_version"), &d.get("namespaces_checked").cloned().unwrap_or(Value::Array(vec![])), &expires, &e.occurred_at,
                ],
            )
            .await?;
        }
        "cluster.connection_test_succeeded" | "cluster.connection_test_failed" => {
            let ok = e.action.ends_with("succeeded");
            tx.execute(
                "UPDATE cluster_connections SET last_check_at = $2, last_check_status = $3, last_check_error = $4,
                    server_version = coalesce($5, server_version), permissions = $6, updated_at = $2 WHERE cluster_id = $1",
                &[&id, &e.occurred_at, &if ok { "succeeded" } else { "failed" }, &text("error_key"), &text("server_version"), &d.get("permissions").cloned().unwrap_or_default()],
            )
            .await?;
            tx.execute("UPDATE clusters SET status = $2, updated_at = $3 WHERE id = $1", &[&id, &if ok { "connected" } else { "unreachable" }, &e.occurred_at]).await?;
        }
        _ => {}
    }
    Ok(())
}

/// A cluster with its connection record (never its credentials).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Cluster"))]
pub struct ClusterView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub source_type: String,
    pub status: String,
    pub labels: Value,
    pub connection: ConnectionView,
    pub created_at: DateTime<Utc>,
}

/// The connection record (`GET /clusters/:id/connection`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "ClusterConnection"))]
pub struct ConnectionView {
    pub source_type: String,
    pub auth_type: String,
    pub endpoint: String,
    pub credential_id: Uuid,
    pub credential_fingerprint: String,
    pub server_version: Option<String>,
    pub namespaces_checked: Value,
    pub client_cert_expires_at: Option<DateTime<Utc>>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_check_status: Option<String>,
    pub last_check_error: Option<String>,
    pub permissions: Value,
}

const SELECT: &str = "SELECT c.id, c.name, c.project_id, c.team_id, c.source_type, c.status, c.labels, c.created_at,
        k.source_type, k.auth_type, k.endpoint, k.credential_id, k.credential_fingerprint, k.server_version, k.namespaces_checked,
        k.client_cert_expires_at, k.last_check_at, k.last_check_status, k.last_check_error, k.permissions
    FROM clusters c JOIN cluster_connections k ON k.cluster_id = c.id";

fn view(r: &tokio_postgres::Row) -> ClusterView {
    ClusterView {
        id: r.get(0),
        name: r.get(1),
        project_id: r.get(2),
        team_id: r.get(3),
        source_type: r.get(4),
        status: r.get(5),
        labels: r.get(6),
        created_at: r.get(7),
        connection: ConnectionView {
            source_type: r.get(8),
            auth_type: r.get(9),
            endpoint: r.get(10),
            credential_id: r.get(11),
            credential_fingerprint: r.get(12),
            server_version: r.get(13),
            namespaces_checked: r.get(14),
            client_cert_expires_at: r.get(15),
            last_check_at: r.get(16),
            last_check_status: r.get(17),
            last_check_error: r.get(18),
            permissions: r.get(19),
        },
    }
}

/// Clusters visible to `p`.
pub async fn list(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<ClusterView>, ReadError> {
    p.require(Permission::ClusterRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let total: i64 = c.query_one("SELECT count(*) FROM clusters WHERE $1 OR project_id = ANY($2)", &[&p.is_admin(), &ids]).await?.get(0);
    let rows = c
        .query(&format!("{SELECT} WHERE $1 OR c.project_id = ANY($2) ORDER BY c.name LIMIT {} OFFSET {}", page.page_size, page.offset()), &[&p.is_admin(), &ids])
        .await?;
    Ok(Page { list: rows.iter().map(view).collect(), total, page: page.page, page_size: page.page_size })
}

/// One cluster visible to `p`.
pub async fn get(pool: &Pool, p: &Principal, id: Uuid) -> Result<Option<ClusterView>, ReadError> {
    p.require(Permission::ClusterRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let row = c.query_opt(&format!("{SELECT} WHERE c.id = $3 AND ($1 OR c.project_id = ANY($2))"), &[&p.is_admin(), &ids, &id]).await?;
    Ok(row.as_ref().map(view))
}
