//! REST for hosts, environments, install tasks and compose targets (the
//! seed's `/api/v1/hosts` and `/api/v1/environments/...`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::Router;
use opspilot_commands::environments::{InstallPreviewRequest, NewEnvironment, NodeRequest};
use opspilot_commands::hosts::{HostPatch, NewHost};
use opspilot_domain::environment::EnvironmentFacts;
use opspilot_domain::ErrorCode;
use opspilot_projections::environments as views;
use opspilot_projections::PageRequest;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ok, ApiError};
use crate::rest::{settled, Body, Paging};
use crate::state::{AppState, RequestMeta};

type ApiResult = Result<axum::response::Response, ApiError>;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hosts", get(list_hosts).post(register_host))
        .route("/hosts/{id}", get(get_host).patch(update_host).delete(delete_host))
        .route("/hosts/{id}/host-key/scan", post(scan_host_key))
        .route("/hosts/{id}/host-key/trust", post(trust_host_key))
        .route("/hosts/{id}/check", post(check_host))
        .route("/environments", get(list_environments).post(create_environment))
        .route("/environments/{id}", get(get_environment).patch(update_environment).delete(delete_environment))
        .route("/environments/{id}/nodes", put(bind_nodes))
        .route("/environments/{id}/install/preview", post(preview_install))
        .route("/environments/{id}/install/apply", post(apply_install))
        .route("/environments/{id}/install/rollback", post(rollback_install))
        .route("/environments/{id}/install/tasks", get(list_tasks))
        .route("/environments/{id}/install/tasks/{task_id}", get(get_task))
        .route("/environments/{id}/install/tasks/{task_id}/logs", get(task_logs))
        .route("/environments/{id}/install/tasks/{task_id}/cancel", post(cancel_task))
        .route("/environments/{id}/health/check", post(health_check))
        .route("/deploy/targets/{id}/compose/ps", get(compose_ps))
        .route("/deploy/targets/{id}/compose/logs", get(compose_logs))
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("{what} {id} does not exist"))
}

/// Ids or names in paths: names resolve like everywhere else.
fn id_of(kind: &str, s: &str) -> Uuid {
    opspilot_commands::ids::resolve(kind, s)
}

#[derive(Deserialize)]
struct HostBody {
    name: String,
    project_id: String,
    ip: String,
    port: Option<u16>,
    ssh_user: String,
    auth: String,
    credential_id: Option<String>,
    private_key: Option<String>,
    password: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

async fn register_host(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<HostBody>) -> ApiResult {
    let secret = b.private_key.or(b.password);
    let h = NewHost { name: b.name, project: b.project_id, ip: b.ip, port: b.port.unwrap_or(22), ssh_user: b.ssh_user, auth: b.auth, credential: b.credential_id, secret, labels: b.labels };
    settled(&s, s.run(meta.lang, s.commands.register_host(&meta.command_context()?, h)).await?).await
}

#[derive(Deserialize)]
struct HostPatchBody {
    ip: Option<String>,
    port: Option<u16>,
    ssh_user: Option<String>,
    auth: Option<String>,
    credential_id: Option<String>,
    private_key: Option<String>,
    password: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

async fn update_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<HostPatchBody>) -> ApiResult {
    let secret = b.private_key.or(b.password);
    let p = HostPatch { ip: b.ip, port: b.port, ssh_user: b.ssh_user, auth: b.auth, credential: b.credential_id, secret, labels: b.labels };
    settled(&s, s.run(meta.lang, s.commands.update_host(&meta.command_context()?, &id, p)).await?).await
}

async fn delete_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.delete_host(&meta.command_context()?, &id)).await?).await
}

async fn list_hosts(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::hosts(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

async fn get_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let v = views::host_by_id(&s.pool, meta.principal()?, id_of("host", &id)).await?.ok_or_else(|| not_found("host", &id))?;
    Ok(ok(v))
}

async fn scan_host_key(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(s.run(meta.lang, s.commands.scan_host_key(&meta.command_context()?, &id)).await?))
}

#[derive(Deserialize)]
struct TrustBody {
    fingerprint: String,
}

async fn trust_host_key(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<TrustBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.trust_host_key(&meta.command_context()?, &id, &b.fingerprint)).await?).await
}

async fn check_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.check_host(&meta.command_context()?, &id)).await?).await
}

#[derive(Deserialize)]
struct EnvironmentBody {
    name: String,
    project_id: String,
    team_id: String,
    runtime_type: String,
    mode: Option<String>,
    #[serde(default)]
    region: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

async fn create_environment(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<EnvironmentBody>) -> ApiResult {
    let n = NewEnvironment {
        name: b.name,
        project: b.project_id,
        team: b.team_id,
        runtime_type: b.runtime_type,
        mode: b.mode.unwrap_or_else(|| "platform_managed".into()),
        region: b.region,
        labels: b.labels,
        description: b.description,
    };
    settled(&s, s.run(meta.lang, s.commands.create_environment(&meta.command_context()?, n)).await?).await
}

async fn list_environments(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::environments(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

async fn get_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let v = views::environment(&s.pool, meta.principal()?, id_of("environment", &id)).await?;
    Ok(ok(v.ok_or_else(|| ApiError::new(ErrorCode::EnvironmentNotFound, format!("environment {id} does not exist")))?))
}

#[derive(Deserialize)]
struct EnvironmentPatch {
    #[serde(default)]
    region: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

async fn update_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<EnvironmentPatch>) -> ApiResult {
    let facts = EnvironmentFacts { region: b.region, labels: b.labels, description: b.description };
    settled(&s, s.run(meta.lang, s.commands.update_environment(&meta.command_context()?, &id, facts)).await?).await
}

async fn delete_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.delete_environment(&meta.command_context()?, &id)).await?).await
}

#[derive(Deserialize)]
struct NodeBody {
    host_id: String,
    node_role: String,
    weight: Option<u32>,
}

#[derive(Deserialize)]
struct NodesBody {
    nodes: Vec<NodeBody>,
}

async fn bind_nodes(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<NodesBody>) -> ApiResult {
    let nodes = b.nodes.into_iter().map(|n| NodeRequest { host: n.host_id, node_role: n.node_role, weight: n.weight }).collect();
    settled(&s, s.run(meta.lang, s.commands.bind_nodes(&meta.command_context()?, &id, nodes)).await?).await
}

#[derive(Deserialize, Default)]
struct InstallPreviewBody {
    action: Option<String>,
    runtime_type: Option<String>,
    manifest_version: Option<String>,
    /// Accepted for the seed's payload; the bundle root is OpsPilot's configuration.
    script_root: Option<String>,
    #[serde(default)]
    install_options: BTreeMap<String, serde_json::Value>,
}

async fn preview_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallPreviewBody>) -> ApiResult {
    if b.script_root.as_deref().is_some_and(|r| r != "script" && r != "script/") {
        return Err(ApiError::new(ErrorCode::ValidationError, "script_root: the bundle root is set by OpsPilot's configuration (OPSPILOT_SCRIPT_ROOT); send \"script\" or nothing").in_lang(meta.lang));
    }
    let options = b.install_options.into_iter().map(|(k, v)| (k, v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect();
    let r = InstallPreviewRequest { action: b.action, runtime_type: b.runtime_type, manifest_version: b.manifest_version, install_options: options };
    settled(&s, s.run(meta.lang, s.commands.preview_install(&meta.command_context()?, &id, r)).await?).await
}

#[derive(Deserialize)]
struct InstallApplyBody {
    preview_ref: Option<String>,
    #[serde(default)]
    confirm: bool,
    /// The seed's field; approvals go through the inbox, so it is ignored.
    #[allow(dead_code)]
    approval_token: Option<String>,
}

async fn apply_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallApplyBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.apply_install(&meta.command_context()?, &id, b.preview_ref.as_deref(), b.confirm, false)).await?).await
}

async fn rollback_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallApplyBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.apply_install(&meta.command_context()?, &id, b.preview_ref.as_deref(), b.confirm, true)).await?).await
}

#[derive(Deserialize)]
struct CancelBody {
    reason: Option<String>,
}

async fn cancel_task(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>, Body(b): Body<CancelBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.cancel_install(&meta.command_context()?, &id, task_id, b.reason)).await?).await
}

async fn list_tasks(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::tasks(&s.pool, meta.principal()?, id_of("environment", &id), PageRequest::new(q.page, q.page_size)).await?))
}

async fn get_task(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>) -> ApiResult {
    let v = views::task(&s.pool, meta.principal()?, id_of("environment", &id), task_id).await?;
    Ok(ok(v.ok_or_else(|| ApiError::new(ErrorCode::InstallTaskNotFound, format!("task {task_id} does not exist")))?))
}

#[derive(Deserialize)]
struct LogQuery {
    step_index: Option<i32>,
    host_id: Option<Uuid>,
    limit: Option<i64>,
}

async fn task_logs(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>, Query(q): Query<LogQuery>) -> ApiResult {
    // Visibility follows the task.
    views::task(&s.pool, meta.principal()?, id_of("environment", &id), task_id).await?.ok_or_else(|| ApiError::new(ErrorCode::InstallTaskNotFound, format!("task {task_id} does not exist")))?;
    let lines = views::logs(&s.pool, task_id, q.step_index, q.host_id, q.limit.unwrap_or(5000).clamp(1, 50_000)).await?;
    Ok(ok(json!({ "list": lines, "total": lines.len() })))
}

async fn health_check(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let v = s.run(meta.lang, s.commands.health_check(&meta.command_context()?, &id)).await?;
    if let Ok(head) = s.commands.store.head().await {
        s.settle(head).await;
    }
    Ok(ok(v))
}

async fn compose_ps(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(s.run(meta.lang, s.commands.compose_ps(&meta.command_context()?, &id)).await?))
}

#[derive(Deserialize)]
struct ComposeLogQuery {
    service: Option<String>,
    tail: Option<u32>,
}

async fn compose_logs(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Query(q): Query<ComposeLogQuery>) -> ApiResult {
    Ok(ok(s.run(meta.lang, s.commands.compose_logs(&meta.command_context()?, &id, q.service.as_deref(), q.tail.unwrap_or(200))).await?))
}
