//! The environments read model: hosts, environments with their nodes, install
//! tasks and their node-steps. Log lines are not here: they live in
//! `install_task_logs`, written by the task runner (see `logs`).

use opspilot_domain::rbac::Permission;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::Principal;
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::runner::Projection;
use crate::ReadError;

/// The environments projection.
pub const PROJECTION: Projection = Projection {
    name: "environments",
    tables: &["hosts", "environments", "environment_nodes", "install_tasks", "install_task_steps"],
    apply: |tx, e| apply(tx, e).boxed(),
};

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    let uuid = |k: &str| text(k).and_then(|s| Uuid::parse_str(&s).ok());
    let int = |k: &str| d.get(k).and_then(|v| v.as_i64());
    let obj = |k: &str| d.get(k).cloned().unwrap_or(json!({}));
    let at = e.occurred_at;
    match e.action.as_str() {
        "host.registered" => {
            tx.execute(
                "INSERT INTO hosts (id, name, project_id, ip, port, ssh_user, auth_type, credential_id, labels, status, created_at, updated_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'pending_trust',$10,$10) ON CONFLICT DO NOTHING",
                &[&uuid("host_id"), &text("name"), &uuid("project_id"), &text("ip"), &(int("port").unwrap_or(22) as i32), &text("ssh_user"), &text("auth_type"), &uuid("credential_id"), &obj("labels"), &at],
            )
            .await?;
        }
        "host.updated" => {
            tx.execute(
                "UPDATE hosts SET ip = $2, port = $3, ssh_user = $4, auth_type = $5, credential_id = $6, labels = $7, updated_at = $8 WHERE id = $1",
                &[&uuid("host_id"), &text("ip"), &(int("port").unwrap_or(22) as i32), &text("ssh_user"), &text("auth_type"), &uuid("credential_id"), &obj("labels"), &at],
            )
            .await?;
        }
        "host.deleted" => {
            tx.execute("DELETE FROM hosts WHERE id = $1", &[&uuid("host_id")]).await?;
        }
        "host.key_trusted" => {
            tx.execute(
                "UPDATE hosts SET host_key_fingerprint = $2, status = 'active', last_check_error = NULL, updated_at = $3 WHERE id = $1",
                &[&uuid("host_id"), &text("fingerprint"), &at],
            )
            .await?;
        }
        "host.connectivity_checked" => {
            tx.execute(
                "UPDATE hosts SET status = $2, last_check_at = $3, last_check_error = $4, presented_fingerprint = $5, updated_at = $3 WHERE id = $1",
                &[&uuid("host_id"), &text("status"), &at, &text("error_key"), &text("presented_fingerprint")],
            )
            .await?;
        }
        "environment.created" => {
            tx.execute(
                "INSERT INTO environments (id, name, project_id, team_id, runtime_type, mode, status, region, labels, description, created_at, updated_at)
                 VALUES ($1,$2,$3,$4,$5,$6,'draft',$7,$8,$9,$10,$10) ON CONFLICT (id) DO UPDATE SET runtime_type = EXCLUDED.runtime_type,
                    mode = EXCLUDED.mode, status = 'draft', region = EXCLUDED.region, labels = EXCLUDED.labels, description = EXCLUDED.description,
                    current_task_id = NULL, updated_at = EXCLUDED.updated_at",
                &[&uuid("environment_id"), &text("name"), &uuid("project_id"), &uuid("team_id"), &text("runtime_type"), &text("mode"), &text("region").unwrap_or_default(), &obj("labels"), &text("description").unwrap_or_default(), &at],
            )
            .await?;
        }
        "environment.deleted" => {
            let env = uuid("environment_id");
            tx.execute("DELETE FROM environment_nodes WHERE environment_id = $1", &[&env]).await?;
            tx.execute("DELETE FROM environments WHERE id = $1", &[&env]).await?;
        }
        "environment.updated" => {
            tx.execute(
                "UPDATE environments SET region = $2, labels = $3, description = $4, updated_at = $5 WHERE id = $1",
                &[&uuid("environment_id"), &text("region").unwrap_or_default(), &obj("labels"), &text("description").unwrap_or_default(), &at],
            )
            .await?;
        }
        "environment.nodes_bound" => {
            let env = uuid("environment_id");
            tx.execute("DELETE FROM environment_nodes WHERE environment_id = $1", &[&env]).await?;
            for n in d.get("nodes").and_then(|v| v.as_array()).into_iter().flatten() {
                let host = n.get("host_id").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
                let weight = n.get("weight").and_then(|v| v.as_i64()).unwrap_or(100) as i32;
                tx.execute(
                    "INSERT INTO environment_nodes (environment_id, host_id, node_role, weight) VALUES ($1,$2,$3,$4)",
                    &[&env, &host, &n.get("node_role").and_then(|v| v.as_str()), &weight],
                )
                .await?;
            }
            tx.execute("UPDATE environments SET updated_at = $2 WHERE id = $1", &[&env, &at]).await?;
        }
        "environment.install_requested" => {
            let pending = if text("approval_ticket").is_some() { "pending_approval" } else { "pending" };
            let project: Option<Uuid> = e.project_id.as_deref().and_then(|p| Uuid::parse_str(p).ok());
            tx.execute(
                "INSERT INTO install_tasks (id, environment_id, project_id, action, runtime_type, manifest_version, preview_ref, status, approval_ticket, plan, requested_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING",
                &[&uuid("task_id"), &uuid("environment_id"), &project, &text("action"), &text("runtime_type"), &text("manifest_version"), &text("preview_ref"), &pending, &text("approval_ticket"), &obj("plan"), &at],
            )
            .await?;
            tx.execute("UPDATE environments SET current_task_id = $2, updated_at = $3 WHERE id = $1", &[&uuid("environment_id"), &uuid("task_id"), &at]).await?;
        }
        "environment.install_started" | "environment.install_rollback_started" => {
            tx.execute("UPDATE install_tasks SET status = 'running', started_at = $2 WHERE id = $1", &[&uuid("task_id"), &at]).await?;
            let preflight = text("action").as_deref() == Some("preflight");
            if !preflight {
                tx.execute("UPDATE environments SET status = 'installing', updated_at = $2 WHERE id = $1", &[&uuid("environment_id"), &at]).await?;
            }
        }
        "environment.install_succeeded" | "environment.install_failed" | "environment.install_rollback_succeeded" | "environment.install_rollback_failed" => {
            let (task_status, env_status) = match e.action.as_str() {
                "environment.install_succeeded" => ("succeeded", Some("ready")),
                "environment.install_failed" => ("failed", Some("failed")),
                "environment.install_rollback_succeeded" => ("rolled_back", Some("draft")),
                _ => ("failed", Some("failed")),
            };
            let row = tx.query_opt("SELECT started_at IS NOT NULL, action FROM install_tasks WHERE id = $1", &[&uuid("task_id")]).await?;
            let (ran, action) = row.map(|r| (r.get::<_, bool>(0), r.get::<_, String>(1))).unwrap_or((false, String::new()));
            tx.execute(
                "UPDATE install_tasks SET status = $2, ended_at = $3, duration_ms = $4, error_key = $5, error_message = $6 WHERE id = $1",
                &[&uuid("task_id"), &task_status, &at, &int("duration_ms"), &text("error_key"), &text("stderr_excerpt")],
            )
            .await?;
            // A task that never ran (approval rejected or expired) and a preflight leave the status alone.
            if let Some(s) = env_status.filter(|_| ran && action != "preflight") {
                tx.execute("UPDATE environments SET status = $2, updated_at = $3 WHERE id = $1", &[&uuid("environment_id"), &s, &at]).await?;
            }
        }
        "environment.install_cancel_requested" => {
            tx.execute("UPDATE install_tasks SET status = 'cancelling' WHERE id = $1 AND status = 'running'", &[&uuid("task_id")]).await?;
        }
        "environment.install_step_started" => {
            tx.execute(
                "INSERT INTO install_task_steps (task_id, step_index, host_id, attempt, step_name, status, started_at)
                 VALUES ($1,$2,$3,$4,$5,'running',$6) ON CONFLICT (task_id, step_index, host_id, attempt) DO UPDATE SET status = 'running', started_at = EXCLUDED.started_at",
                &[&uuid("task_id"), &(int("step_index").unwrap_or(0) as i32), &uuid("host_id"), &(int("attempt").unwrap_or(0) as i32), &text("step_name"), &at],
            )
            .await?;
        }
        "environment.install_step_succeeded" | "environment.install_step_failed" => {
            let status = match (e.action.ends_with("succeeded"), d.get("will_retry").and_then(|v| v.as_bool()).unwrap_or(false)) {
                (true, _) => "succeeded",
                (false, true) => "retrying",
                (false, false) => "failed",
            };
            let started: Option<DateTime<Utc>> = d.get("started_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            let ended: Option<DateTime<Utc>> = d.get("ended_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            tx.execute(
                "INSERT INTO install_task_steps (task_id, step_index, host_id, attempt, step_name, status, started_at, ended_at, duration_ms, exit_code, stderr_excerpt, outputs, error_key, log_lines)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
                 ON CONFLICT (task_id, step_index, host_id, attempt) DO UPDATE SET status = EXCLUDED.status, ended_at = EXCLUDED.ended_at,
                    duration_ms = EXCLUDED.duration_ms, exit_code = EXCLUDED.exit_code, stderr_excerpt = EXCLUDED.stderr_excerpt,
                    outputs = EXCLUDED.outputs, error_key = EXCLUDED.error_key, log_lines = EXCLUDED.log_lines",
                &[
                    &uuid("task_id"), &(int("step_index").unwrap_or(0) as i32), &uuid("host_id"), &(int("attempt").unwrap_or(0) as i32), &text("step_name"),
                    &status, &started, &ended, &int("duration_ms"), &int("exit_code"), &text("stderr_excerpt"), &obj("outputs"), &text("error_key"),
                    &int("log_lines").unwrap_or(0),
                ],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A host (never its credential).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Host"))]
pub struct HostView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub ip: String,
    pub port: i32,
    pub ssh_user: String,
    pub auth_type: String,
    pub credential_id: Uuid,
    pub labels: Value,
    pub status: String,
    pub host_key_fingerprint: Option<String>,
    pub presented_fingerprint: Option<String>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_check_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const HOST_SELECT: &str = "SELECT id, name, project_id, ip, port, ssh_user, auth_type, credential_id, labels, status, host_key_fingerprint,
    presented_fingerprint, last_check_at, last_check_error, created_at FROM hosts";

fn host(r: &tokio_postgres::Row) -> HostView {
    HostView {
        id: r.get(0),
        name: r.get(1),
        project_id: r.get(2),
        ip: r.get(3),
        port: r.get(4),
        ssh_user: r.get(5),
        auth_type: r.get(6),
        credential_id: r.get(7),
        labels: r.get(8),
        status: r.get(9),
        host_key_fingerprint: r.get(10),
        presented_fingerprint: r.get(11),
        last_check_at: r.get(12),
        last_check_error: r.get(13),
        created_at: r.get(14),
    }
}

fn scope(p: &Principal) -> (bool, Vec<Uuid>) {
    (p.is_admin(), p.project_ids.iter().copied().collect())
}

/// Hosts visible to `p`.
pub async fn hosts(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<HostView>, ReadError> {
    p.require(Permission::HostRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let total: i64 = c.query_one("SELECT count(*) FROM hosts WHERE $1 OR project_id = ANY($2)", &[&admin, &ids]).await?.get(0);
    let rows = c.query(&format!("{HOST_SELECT} WHERE $1 OR project_id = ANY($2) ORDER BY name LIMIT {} OFFSET {}", page.page_size, page.offset()), &[&admin, &ids]).await?;
    Ok(Page { list: rows.iter().map(host).collect(), total, page: page.page, page_size: page.page_size })
}

/// One host visible to `p`.
pub async fn host_by_id(pool: &Pool, p: &Principal, id: Uuid) -> Result<Option<HostView>, ReadError> {
    p.require(Permission::HostRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let row = c.query_opt(&format!("{HOST_SELECT} WHERE id = $3 AND ($1 OR project_id = ANY($2))"), &[&admin, &ids, &id]).await?;
    Ok(row.as_ref().map(host))
}

/// A node of an environment, with its host's address and status.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "EnvironmentNode"))]
pub struct NodeView {
    pub host_id: Uuid,
    pub host_name: String,
    pub ip: String,
    pub node_role: String,
    pub weight: i32,
    pub host_status: String,
}

/// An environment with its nodes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Environment"))]
pub struct EnvironmentView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub team_id: Uuid,
    pub runtime_type: String,
    pub mode: String,
    pub status: String,
    pub region: String,
    pub labels: Value,
    pub description: String,
    pub current_task_id: Option<Uuid>,
    pub nodes: Vec<NodeView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENV_SELECT: &str = "SELECT id, name, project_id, team_id, runtime_type, mode, status, region, labels, description, current_task_id, created_at, updated_at FROM environments";

async fn environment_views(c: &tokio_postgres::Client, rows: Vec<tokio_postgres::Row>) -> Result<Vec<EnvironmentView>, StoreError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let nodes = c
        .query(
            "SELECT n.environment_id, n.host_id, h.name, h.ip, n.node_role, n.weight, h.status FROM environment_nodes n JOIN hosts h ON h.id = n.host_id
             WHERE n.environment_id = ANY($1) ORDER BY n.node_role, h.name",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            EnvironmentView {
                id,
                name: r.get(1),
                project_id: r.get(2),
                team_id: r.get(3),
                runtime_type: r.get(4),
                mode: r.get(5),
                status: r.get(6),
                region: r.get(7),
                labels: r.get(8),
                description: r.get(9),
                current_task_id: r.get(10),
                created_at: r.get(11),
                updated_at: r.get(12),
                nodes: nodes
                    .iter()
                    .filter(|n| n.get::<_, Uuid>(0) == id)
                    .map(|n| NodeView { host_id: n.get(1), host_name: n.get(2), ip: n.get(3), node_role: n.get(4), weight: n.get(5), host_status: n.get(6) })
                    .collect(),
            }
        })
        .collect())
}

/// Environments visible to `p`.
pub async fn environments(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<EnvironmentView>, ReadError> {
    p.require(Permission::EnvironmentRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let total: i64 = c.query_one("SELECT count(*) FROM environments WHERE $1 OR project_id = ANY($2)", &[&admin, &ids]).await?.get(0);
    let rows = c.query(&format!("{ENV_SELECT} WHERE $1 OR project_id = ANY($2) ORDER BY name LIMIT {} OFFSET {}", page.page_size, page.offset()), &[&admin, &ids]).await?;
    Ok(Page { list: environment_views(&c, rows).await?, total, page: page.page, page_size: page.page_size })
}

/// One environment visible to `p`.
pub async fn environment(pool: &Pool, p: &Principal, id: Uuid) -> Result<Option<EnvironmentView>, ReadError> {
    p.require(Permission::EnvironmentRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let rows = c.query(&format!("{ENV_SELECT} WHERE id = $3 AND ($1 OR project_id = ANY($2))"), &[&admin, &ids, &id]).await?;
    Ok(environment_views(&c, rows).await?.into_iter().next())
}

/// One node-step attempt.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InstallNodeStep"))]
pub struct NodeStepView {
    pub host_id: Uuid,
    pub attempt: i32,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i64>,
    pub stderr_excerpt: Option<String>,
    pub outputs: Value,
    pub error_key: Option<String>,
    pub log_lines: i64,
}

/// A step of a task: its hook and the attempts on each node.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InstallStep"))]
pub struct StepView {
    pub step_index: i32,
    pub name: String,
    pub run_on: String,
    /// pending | running | succeeded | failed
    pub status: String,
    pub nodes: Vec<NodeStepView>,
}

/// An install task (the seed's task detail).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InstallTask"))]
pub struct TaskView {
    pub task_id: Uuid,
    pub environment_id: Uuid,
    pub action: String,
    pub runtime_type: String,
    pub manifest_version: String,
    pub preview_ref: String,
    /// pending_approval | running | cancelling | succeeded | failed | rolled_back
    pub status: String,
    pub approval_ticket: Option<String>,
    /// Index of the first step not finished (the one running), or the count when all are.
    pub step_index: i32,
    pub steps: Vec<StepView>,
    pub result: Value,
    pub error_key: Option<String>,
    pub error_message: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

const TASK_SELECT: &str = "SELECT id, environment_id, action, runtime_type, manifest_version, preview_ref, status, approval_ticket, plan, error_key,
    error_message, requested_at, started_at, ended_at, duration_ms FROM install_tasks";

async fn task_views(c: &tokio_postgres::Client, rows: Vec<tokio_postgres::Row>, with_steps: bool) -> Result<Vec<TaskView>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let task_id: Uuid = r.get(0);
        let plan: Value = r.get(8);
        let attempts = if with_steps {
            c.query(
                "SELECT step_index, host_id, attempt, status, started_at, ended_at, duration_ms, exit_code, stderr_excerpt, outputs, error_key, log_lines
                 FROM install_task_steps WHERE task_id = $1 ORDER BY step_index, host_id, attempt",
                &[&task_id],
            )
            .await?
        } else {
            vec![]
        };
        let mut steps = Vec::new();
        let mut result = serde_json::Map::new();
        for s in plan.get("steps").and_then(|v| v.as_array()).into_iter().flatten() {
            let idx = s.get("step_index").and_then(|v| v.as_i64()).unwrap_or(0) as i32;
            let hosts: Vec<Uuid> = s.get("host_ids").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
            let nodes: Vec<NodeStepView> = attempts
                .iter()
                .filter(|a| a.get::<_, i32>(0) == idx)
                .map(|a| NodeStepView {
                    host_id: a.get(1),
                    attempt: a.get(2),
                    status: a.get(3),
                    started_at: a.get(4),
                    ended_at: a.get(5),
                    duration_ms: a.get(6),
                    exit_code: a.get(7),
                    stderr_excerpt: a.get(8),
                    outputs: a.get(9),
                    error_key: a.get(10),
                    log_lines: a.get(11),
                })
                .collect();
            // The latest attempt of each host decides the step's status.
            let latest: Vec<&NodeStepView> = hosts.iter().filter_map(|h| nodes.iter().filter(|n| n.host_id == *h).max_by_key(|n| n.attempt)).collect();
            let status = if !hosts.is_empty() && latest.len() == hosts.len() && latest.iter().all(|n| n.status == "succeeded") {
                "succeeded"
            } else if latest.iter().any(|n| n.status == "failed") {
                "failed"
            } else if latest.is_empty() {
                "pending"
            } else {
                "running"
            };
            for n in &latest {
                if let Some(o) = n.outputs.as_object() {
                    for (k, v) in o {
                        result.insert(k.clone(), v.clone());
                    }
                }
            }
            steps.push(StepView {
                step_index: idx,
                name: s.get("step_name").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                run_on: s.get("run_on").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                status: status.to_string(),
                nodes,
            });
        }
        let step_index = steps.iter().position(|s| s.status != "succeeded").unwrap_or(steps.len()) as i32;
        out.push(TaskView {
            task_id,
            environment_id: r.get(1),
            action: r.get(2),
            runtime_type: r.get(3),
            manifest_version: r.get(4),
            preview_ref: r.get(5),
            status: r.get(6),
            approval_ticket: r.get(7),
            step_index,
            steps,
            result: Value::Object(result),
            error_key: r.get(9),
            error_message: r.get::<_, Option<String>>(10).unwrap_or_default(),
            requested_at: r.get(11),
            started_at: r.get(12),
            ended_at: r.get(13),
            duration_ms: r.get(14),
        });
    }
    Ok(out)
}

/// Tasks of an environment visible to `p`, newest first (without node detail).
pub async fn tasks(pool: &Pool, p: &Principal, environment_id: Uuid, page: PageRequest) -> Result<Page<TaskView>, ReadError> {
    p.require(Permission::EnvironmentRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let filter = "environment_id = $3 AND ($1 OR project_id = ANY($2))";
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM install_tasks WHERE {filter}"), &[&admin, &ids, &environment_id]).await?.get(0);
    let rows = c.query(&format!("{TASK_SELECT} WHERE {filter} ORDER BY requested_at DESC LIMIT {} OFFSET {}", page.page_size, page.offset()), &[&admin, &ids, &environment_id]).await?;
    Ok(Page { list: task_views(&c, rows, false).await?, total, page: page.page, page_size: page.page_size })
}

/// One task with its steps and node attempts.
pub async fn task(pool: &Pool, p: &Principal, environment_id: Uuid, task_id: Uuid) -> Result<Option<TaskView>, ReadError> {
    p.require(Permission::EnvironmentRead)?;
    let c = pool.get().await?;
    let (admin, ids) = scope(p);
    let rows = c.query(&format!("{TASK_SELECT} WHERE id = $4 AND environment_id = $3 AND ($1 OR project_id = ANY($2))"), &[&admin, &ids, &environment_id, &task_id]).await?;
    Ok(task_views(&c, rows, true).await?.into_iter().next())
}


/// One stored log line of a node-step.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "InstallLogLine"))]
pub struct LogLine {
    pub step_index: i32,
    pub host_id: Uuid,
    pub attempt: i32,
    pub seq: i32,
    pub stream: String,
    pub line: String,
    pub at: DateTime<Utc>,
}

/// Log lines of a task, optionally of one step and host, in order.
pub async fn logs(pool: &Pool, task_id: Uuid, step_index: Option<i32>, host_id: Option<Uuid>, limit: i64) -> Result<Vec<LogLine>, StoreError> {
    let c = pool.get().await?;
    let rows = c
        .query(
            "SELECT step_index, host_id, attempt, seq, stream, line, at FROM install_task_logs
             WHERE task_id = $1 AND ($2::int IS NULL OR step_index = $2) AND ($3::uuid IS NULL OR host_id = $3)
             ORDER BY step_index, host_id, attempt, seq LIMIT $4",
            &[&task_id, &step_index, &host_id, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| LogLine { step_index: r.get(0), host_id: r.get(1), attempt: r.get(2), seq: r.get(3), stream: r.get(4), line: r.get(5), at: r.get(6) }).collect())
}
