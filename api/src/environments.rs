//! Environments and install tasks: create, bind hosts with roles, install
//! preview and apply, the task view with its timeline and live progress,
//! cancel, health check, and the compose targets' `ps`/logs — REST and GraphQL.

use std::collections::BTreeMap;

use async_graphql::{Context, InputObject, Json, Object, SimpleObject, Subscription};
use axum::extract::State;
use crate::edge::{Path, Query};
use axum::routing::{get, post, put};
use axum::Router;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::environments::{InstallPreviewRequest, NewEnvironment, NodeRequest};
use opspilot_domain::environment::EnvironmentFacts;
use opspilot_domain::ErrorCode;
use opspilot_projections::audit_log::AuditEntry;
use opspilot_projections::environments as views;
use opspilot_projections::timelines::{self, Subject};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::edge::{
    command_ctx, gql, id_of, meta, mutate, mutate_with_follow_ups, ok, principal, refused, settled, settled_with_follow_ups, state, ApiError, ApiResult, AppState, Body,
    CommandResult, GqlResult, Paging, RequestMeta,
};
use crate::page_type;

page_type!(EnvironmentPage, views::EnvironmentView);
page_type!(InstallTaskPage, views::TaskView);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/environments", get(list_environments).post(create_environment))
        .route("/environments/{id}", get(get_environment).patch(update_environment).delete(delete_environment))
        .route("/environments/{id}/nodes", put(bind_nodes))
        .route("/environments/{id}/install/preview", post(preview_install))
        .route("/environments/{id}/install/apply", post(apply_install))
        .route("/environments/{id}/install/rollback", post(rollback_install))
        .route("/environments/{id}/install/tasks", get(list_tasks))
        .route("/environments/{id}/install/tasks/{task_id}", get(get_task))
        .route("/environments/{id}/install/tasks/{task_id}/logs", get(task_logs))
        .route("/environments/{id}/install/tasks/{task_id}/timeline", get(task_timeline))
        .route("/environments/{id}/install/tasks/{task_id}/cancel", post(cancel_task))
        .route("/environments/{id}/health/check", post(health_check))
        .route("/deploy/targets/{id}/compose/ps", get(compose_ps))
        .route("/deploy/targets/{id}/compose/logs", get(compose_logs))
}

/// A new environment.
#[derive(Deserialize, InputObject)]
pub struct EnvironmentInput {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    pub runtime_type: String,
    pub mode: Option<String>,
    pub region: Option<String>,
    pub labels: Option<Json<BTreeMap<String, String>>>,
    pub description: Option<String>,
}

impl From<EnvironmentInput> for NewEnvironment {
    fn from(b: EnvironmentInput) -> Self {
        NewEnvironment {
            name: b.name,
            project: b.project_id,
            team: b.team_id,
            runtime_type: b.runtime_type,
            mode: b.mode.unwrap_or_else(|| "platform_managed".into()),
            region: b.region.unwrap_or_default(),
            labels: b.labels.map(|l| l.0).unwrap_or_default(),
            description: b.description.unwrap_or_default(),
        }
    }
}

/// An environment's descriptive fields, replaced as given.
#[derive(Deserialize, InputObject, Default)]
pub struct EnvironmentPatchInput {
    pub region: Option<String>,
    pub labels: Option<Json<BTreeMap<String, String>>>,
    pub description: Option<String>,
}

impl From<EnvironmentPatchInput> for EnvironmentFacts {
    fn from(b: EnvironmentPatchInput) -> Self {
        EnvironmentFacts { region: b.region.unwrap_or_default(), labels: b.labels.map(|l| l.0).unwrap_or_default(), description: b.description.unwrap_or_default() }
    }
}

/// A node binding: a host (id or name) in a role.
#[derive(Deserialize, InputObject)]
pub struct NodeInput {
    pub host_id: String,
    pub node_role: String,
    pub weight: Option<u32>,
}

/// The nodes of an environment, replacing the bound ones.
#[derive(Deserialize, InputObject)]
pub struct NodesInput {
    pub nodes: Vec<NodeInput>,
}

/// An install preview (the seed's payload).
#[derive(Deserialize, InputObject, Default)]
pub struct InstallPreviewInput {
    /// preflight, install, upgrade, repair or rollback.
    pub action: Option<String>,
    pub runtime_type: Option<String>,
    pub manifest_version: Option<String>,
    /// Accepted for the seed's payload; the bundle root is OpsPilot's configuration.
    pub script_root: Option<String>,
    #[serde(default)]
    pub install_options: Option<Json<BTreeMap<String, Value>>>,
}

impl InstallPreviewInput {
    fn request(self) -> Result<InstallPreviewRequest, ApiError> {
        if self.script_root.as_deref().is_some_and(|r| r != "script" && r != "script/") {
            return Err(ApiError::new(ErrorCode::ValidationError, "script_root: the bundle root is set by OpsPilot's configuration (OPSPILOT_SCRIPT_ROOT); send \"script\" or nothing"));
        }
        let options = self.install_options.map(|o| o.0).unwrap_or_default().into_iter().map(|(k, v)| (k, v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect();
        Ok(InstallPreviewRequest { action: self.action, runtime_type: self.runtime_type, manifest_version: self.manifest_version, install_options: options })
    }
}

/// Confirms a previewed task.
#[derive(Deserialize, InputObject)]
pub struct InstallApplyInput {
    pub preview_ref: Option<String>,
    #[serde(default)]
    #[graphql(default)]
    pub confirm: bool,
    /// The seed's field; approvals go through the inbox, so it is ignored.
    pub approval_token: Option<String>,
}

/// Why a task is cancelled.
#[derive(Deserialize, InputObject, Default)]
pub struct CancelInput {
    pub reason: Option<String>,
}

fn task_not_found(task_id: Uuid) -> ApiError {
    ApiError::new(ErrorCode::InstallTaskNotFound, format!("task {task_id} does not exist"))
}

async fn visible_task(s: &AppState, meta: &RequestMeta, environment: &str, task_id: Uuid) -> Result<views::TaskView, ApiError> {
    views::task(&s.pool, meta.principal()?, id_of("environment", environment), task_id).await?.ok_or_else(|| task_not_found(task_id).in_lang(meta.lang))
}

async fn task_timeline_of(s: &AppState, meta: &RequestMeta, environment: &str, task_id: Uuid) -> Result<Vec<AuditEntry>, ApiError> {
    visible_task(s, meta, environment, task_id).await?;
    Ok(timelines::timeline(&s.pool, meta.principal()?, Subject::InstallTask, &task_id.to_string()).await?)
}

async fn logs_of(s: &AppState, meta: &RequestMeta, environment: &str, task_id: Uuid, step_index: Option<i32>, host_id: Option<Uuid>, limit: Option<i64>) -> Result<Vec<views::LogLine>, ApiError> {
    // Visibility follows the task.
    visible_task(s, meta, environment, task_id).await?;
    Ok(views::logs(&s.pool, task_id, step_index, host_id, limit.unwrap_or(5000).clamp(1, 50_000)).await?)
}

async fn create_environment(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<EnvironmentInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_environment(&meta.command_context()?, b.into())).await?).await
}

async fn list_environments(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::environments(&s.pool, meta.principal()?, q.request()).await?))
}

async fn get_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let v = views::environment(&s.pool, meta.principal()?, id_of("environment", &id)).await?;
    Ok(ok(v.ok_or_else(|| ApiError::new(ErrorCode::EnvironmentNotFound, format!("environment {id} does not exist")).in_lang(meta.lang))?))
}

async fn update_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<EnvironmentPatchInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.update_environment(&meta.command_context()?, &id, b.into())).await?).await
}

async fn delete_environment(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.delete_environment(&meta.command_context()?, &id)).await?).await
}

fn node_requests(b: NodesInput) -> Vec<NodeRequest> {
    b.nodes.into_iter().map(|n| NodeRequest { host: n.host_id, node_role: n.node_role, weight: n.weight }).collect()
}

async fn bind_nodes(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<NodesInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.bind_nodes(&meta.command_context()?, &id, node_requests(b))).await?).await
}

async fn preview_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallPreviewInput>) -> ApiResult {
    let r = b.request().map_err(|e| e.in_lang(meta.lang))?;
    settled(&s, s.run(meta.lang, s.commands.preview_install(&meta.command_context()?, &id, r)).await?).await
}

async fn apply_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallApplyInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.apply_install(&meta.command_context()?, &id, b.preview_ref.as_deref(), b.confirm, false)).await?).await
}

async fn rollback_install(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<InstallApplyInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.apply_install(&meta.command_context()?, &id, b.preview_ref.as_deref(), b.confirm, true)).await?).await
}

async fn cancel_task(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>, Body(b): Body<CancelInput>) -> ApiResult {
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.cancel_install(&meta.command_context()?, &id, task_id, b.reason)).await?).await
}

async fn list_tasks(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::tasks(&s.pool, meta.principal()?, id_of("environment", &id), q.request()).await?))
}

async fn get_task(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>) -> ApiResult {
    Ok(ok(visible_task(&s, &meta, &id, task_id).await?))
}

async fn task_timeline(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>) -> ApiResult {
    let list = task_timeline_of(&s, &meta, &id, task_id).await?;
    Ok(ok(json!({ "total": list.len(), "list": list })))
}

#[derive(Deserialize)]
struct LogQuery {
    step_index: Option<i32>,
    host_id: Option<Uuid>,
    limit: Option<i64>,
}

async fn task_logs(State(s): State<AppState>, meta: RequestMeta, Path((id, task_id)): Path<(String, Uuid)>, Query(q): Query<LogQuery>) -> ApiResult {
    let lines = logs_of(&s, &meta, &id, task_id, q.step_index, q.host_id, q.limit).await?;
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

/// Environment and install task queries.
#[derive(Default)]
pub struct EnvironmentQuery;

#[Object]
impl EnvironmentQuery {
    /// Environments the caller may see, with their nodes.
    async fn environments(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<EnvironmentPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(views::environments(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// One environment (id or name).
    async fn environment(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<views::EnvironmentView>> {
        views::environment(&state(ctx).pool, principal(ctx)?, id_of("environment", &id)).await.map_err(|e| gql(e, ctx))
    }

    /// The install tasks of an environment, newest first (without node detail).
    async fn install_tasks(&self, ctx: &Context<'_>, environment: String, page: Option<i64>, page_size: Option<i64>) -> GqlResult<InstallTaskPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(views::tasks(&state(ctx).pool, principal(ctx)?, id_of("environment", &environment), page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// One install task with its steps and node attempts.
    async fn install_task(&self, ctx: &Context<'_>, environment: String, task_id: Uuid) -> GqlResult<Option<views::TaskView>> {
        views::task(&state(ctx).pool, principal(ctx)?, id_of("environment", &environment), task_id).await.map_err(|e| gql(e, ctx))
    }

    /// An install task's timeline: its events and every event of its ticket, in log order.
    async fn install_task_timeline(&self, ctx: &Context<'_>, environment: String, task_id: Uuid) -> GqlResult<Vec<AuditEntry>> {
        task_timeline_of(state(ctx), meta(ctx), &environment, task_id).await.map_err(|e| gql(e, ctx))
    }

    /// The stored log lines of a task (optionally of one step and host), in order.
    async fn install_task_logs(&self, ctx: &Context<'_>, environment: String, task_id: Uuid, step_index: Option<i32>, host_id: Option<Uuid>, limit: Option<i64>) -> GqlResult<Vec<views::LogLine>> {
        logs_of(state(ctx), meta(ctx), &environment, task_id, step_index, host_id, limit).await.map_err(|e| gql(e, ctx))
    }
}

/// Environment and install task mutations.
#[derive(Default)]
pub struct EnvironmentMutation;

#[Object]
impl EnvironmentMutation {
    /// Creates an environment.
    async fn create_environment(&self, ctx: &Context<'_>, input: EnvironmentInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_environment(&command_ctx(ctx)?, input.into())).await
    }

    /// Replaces an environment's region, labels and description.
    async fn update_environment(&self, ctx: &Context<'_>, environment: String, input: EnvironmentPatchInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.update_environment(&command_ctx(ctx)?, &environment, input.into())).await
    }

    /// Removes an environment from OpsPilot (nothing on its hosts changes).
    async fn delete_environment(&self, ctx: &Context<'_>, environment: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.delete_environment(&command_ctx(ctx)?, &environment)).await
    }

    /// Binds hosts to an environment with roles.
    async fn bind_nodes(&self, ctx: &Context<'_>, environment: String, input: NodesInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.bind_nodes(&command_ctx(ctx)?, &environment, node_requests(input))).await
    }

    /// Previews an install task (action: preflight, install, upgrade, repair or rollback).
    async fn preview_install(&self, ctx: &Context<'_>, environment: String, input: Option<InstallPreviewInput>) -> GqlResult<CommandResult> {
        let r = input.unwrap_or_default().request().map_err(|e| gql(e, ctx))?;
        mutate(ctx, state(ctx).commands.preview_install(&command_ctx(ctx)?, &environment, r)).await
    }

    /// Applies a previewed install task (a rollback preview, with `rollbackOnly`, only).
    async fn apply_install(&self, ctx: &Context<'_>, environment: String, input: InstallApplyInput, rollback_only: Option<bool>) -> GqlResult<CommandResult> {
        let only = rollback_only.unwrap_or(false);
        mutate(ctx, state(ctx).commands.apply_install(&command_ctx(ctx)?, &environment, input.preview_ref.as_deref(), input.confirm, only)).await
    }

    /// Cancels a task: one waiting in the inbox ends at once (its ticket is
    /// cancelled); a running one has its hooks stopped on the hosts and ends
    /// with `install_task_cancelled`.
    async fn cancel_install(&self, ctx: &Context<'_>, environment: String, task_id: Uuid, input: Option<CancelInput>) -> GqlResult<CommandResult> {
        mutate_with_follow_ups(ctx, state(ctx).commands.cancel_install(&command_ctx(ctx)?, &environment, task_id, input.unwrap_or_default().reason)).await
    }
}

/// One item of live install progress: a task or node-step event
/// (`kind: "event"`) or a log line of a node-step (`kind: "log"`).
#[derive(SimpleObject)]
pub struct InstallProgress {
    /// event | log
    pub kind: String,
    pub task_id: Option<Uuid>,
    /// The event's action, e.g. `environment.install_step_succeeded`.
    pub action: Option<String>,
    pub status: Option<String>,
    /// The event's detail (the seed's fields).
    pub detail: Option<Value>,
    pub position: Option<i64>,
    pub occurred_at: DateTime<Utc>,
    /// The log line, for `kind: "log"`.
    pub log: Option<views::LogLine>,
}

/// Live install progress.
#[derive(Default)]
pub struct EnvironmentSubscription;

#[Subscription]
impl EnvironmentSubscription {
    /// Install progress as it happens, of one task or (without `taskId`) of
    /// every task of the environment: every task and node-step event, and
    /// every log line.
    async fn install_task_progress(&self, ctx: &Context<'_>, environment: String, task_id: Option<Uuid>) -> BoxStream<'static, GqlResult<InstallProgress>> {
        let p = match principal(ctx) {
            Ok(p) => p.clone(),
            Err(e) => return refused(e),
        };
        let s = state(ctx).clone();
        let env_id = id_of("environment", &environment);
        match views::environment(&s.pool, &p, env_id).await {
            Ok(Some(_)) => {}
            Ok(None) => return refused(ApiError::new(ErrorCode::EnvironmentNotFound, format!("environment {environment} does not exist")).into_graphql()),
            Err(e) => return refused(gql(e, ctx)),
        }
        let (task, env) = (task_id.map(|t| t.to_string()), env_id.to_string());
        let events = BroadcastStream::new(s.runner.applied.subscribe()).filter_map(move |item| {
            let field = |e: &opspilot_eventstore::RecordedEvent, k: &str| e.detail.get(k).and_then(|v| v.as_str()).map(String::from);
            let mine = |e: &opspilot_eventstore::RecordedEvent| field(e, "environment_id").as_deref() == Some(env.as_str()) && task.as_ref().is_none_or(|t| field(e, "task_id").as_deref() == Some(t.as_str()));
            let out = item.ok().filter(|e| e.action.starts_with("environment.install_") && mine(e)).map(|e| InstallProgress {
                kind: "event".into(),
                task_id: field(&e, "task_id").and_then(|t| t.parse().ok()),
                action: Some(e.action.clone()),
                status: Some(e.status.clone()),
                position: Some(e.position),
                occurred_at: e.occurred_at,
                detail: Some(e.detail.clone()),
                log: None,
            });
            async move { out.map(Ok) }
        });
        let logs = BroadcastStream::new(s.commands.live_logs.subscribe()).filter_map(move |item| {
            let out = item.ok().filter(|l| l.environment_id == env_id && task_id.is_none_or(|t| l.task_id == t)).map(|l| InstallProgress {
                kind: "log".into(),
                task_id: Some(l.task_id),
                action: None,
                status: None,
                detail: None,
                position: None,
                occurred_at: l.at,
                log: Some(views::LogLine { step_index: l.step_index as i32, host_id: l.host_id, attempt: l.attempt as i32, seq: l.seq, stream: l.stream.to_string(), line: l.line, at: l.at }),
            });
            async move { out.map(Ok) }
        });
        futures::stream::select(events, logs).boxed()
    }
}
