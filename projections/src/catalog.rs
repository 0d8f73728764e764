//! The catalog read model: services and deploy targets.

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

/// The catalog projection.
pub const PROJECTION: Projection = Projection { name: "catalog", tables: &["catalog_services", "catalog_targets"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    let uuid = |k: &str| text(k).and_then(|s| Uuid::parse_str(&s).ok());
    match e.action.as_str() {
        "service.created" => {
            tx.execute(
                "INSERT INTO catalog_services (id, name, project_id, team_id, runtime_type, manifest_template, default_variables, risk_level, created_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
                &[&uuid("service_id"), &text("name"), &uuid("project_id"), &uuid("team_id"), &text("runtime_type"), &text("manifest_template"),
                  &d.get("default_variables").cloned().unwrap_or_default(), &text("risk_level"), &e.occurred_at],
            )
            .await?;
        }
        "deploy_target.created" => {
            tx.execute(
                "INSERT INTO catalog_targets (id, name, project_id, team_id, runtime_type, env, cluster_id, namespace, created_at, compose)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING",
                &[&uuid("target_id"), &text("name"), &uuid("project_id"), &uuid("team_id"), &text("runtime_type"), &text("env"), &uuid("cluster_id"), &text("namespace"), &e.occurred_at, &d.get("compose").cloned()],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A service as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Service"))]
pub struct ServiceView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub runtime_type: String,
    pub manifest_template: String,
    pub default_variables: Value,
    pub risk_level: String,
    pub created_at: DateTime<Utc>,
}

/// A deploy target as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Target"))]
pub struct TargetView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub runtime_type: String,
    pub env: String,
    pub cluster_id: Option<Uuid>,
    pub namespace: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Services visible to `p`.
pub async fn services(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<ServiceView>, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let total: i64 = c.query_one("SELECT count(*) FROM catalog_services WHERE $1 OR project_id = ANY($2)", &[&p.is_admin(), &ids]).await?.get(0);
    let rows = c
        .query(
            &format!(
                "SELECT id, name, project_id, team_id, runtime_type, manifest_template, default_variables, risk_level, created_at
                 FROM catalog_services WHERE $1 OR project_id = ANY($2) ORDER BY name LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &[&p.is_admin(), &ids],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| ServiceView { id: r.get(0), name: r.get(1), project_id: r.get(2), team_id: r.get(3), runtime_type: r.get(4), manifest_template: r.get(5), default_variables: r.get(6), risk_level: r.get(7), created_at: r.get(8) })
        .collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}

/// Deploy targets visible to `p`.
pub async fn targets(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<TargetView>, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let total: i64 = c.query_one("SELECT count(*) FROM catalog_targets WHERE $1 OR project_id = ANY($2)", &[&p.is_admin(), &ids]).await?.get(0);
    let rows = c
        .query(
            &format!(
                "SELECT id, name, project_id, team_id, runtime_type, env, cluster_id, namespace, created_at
                 FROM catalog_targets WHERE $1 OR project_id = ANY($2) ORDER BY name LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &[&p.is_admin(), &ids],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| TargetView { id: r.get(0), name: r.get(1), project_id: r.get(2), team_id: r.get(3), runtime_type: r.get(4), env: r.get(5), cluster_id: r.get(6), namespace: r.get(7), created_at: r.get(8) })
        .collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}
