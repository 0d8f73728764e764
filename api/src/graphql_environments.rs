//! GraphQL for hosts, environments and install tasks: the read models as
//! typed objects (the fields REST answers, in camelCase), and a subscription
//! streaming a task's step events and log lines as they happen.

use std::collections::BTreeMap;

use async_graphql::{Context, InputObject, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::environments::{InstallPreviewRequest, NewEnvironment, NodeRequest};
use opspilot_commands::hosts::{HostPatch, NewHost};
use opspilot_projections::environments as views;
use opspilot_projections::PageRequest;
use serde_json::Value;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::graphql::{command_ctx, meta, page_type, principal, settled, state, CommandResult};

type GqlResult<T> = async_graphql::Result<T>;

fn id_of(kind: &str, s: &str) -> Uuid {
    opspilot_commands::ids::resolve(kind, s)
}

page_type!(HostPage, views::HostView);
page_type!(EnvironmentPage, views::EnvironmentView);
page_type!(InstallTaskPage, views::TaskView);

fn read_err(e: opspilot_eventstore::StoreError) -> async_graphql::Error {
    crate::error::ApiError::from(e).into_graphql()
}

/// Queries of hosts, environments and tasks.
#[derive(Default)]
pub struct EnvironmentQuery;

#[Object]
impl EnvironmentQuery {
    /// Hosts the caller may see (never their credentials).
    async fn hosts(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<HostPage> {
        Ok(views::hosts(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(read_err)?.into())
    }

    /// One host (id or name).
    async fn host(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<views::HostView>> {
        views::host_by_id(&state(ctx).pool, principal(ctx)?, id_of("host", &id)).await.map_err(read_err)
    }

    /// Environments the caller may see, with their nodes.
    async fn environments(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<EnvironmentPage> {
        Ok(views::environments(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(read_err)?.into())
    }

    /// One environment (id or name).
    async fn environment(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<views::EnvironmentView>> {
        views::environment(&state(ctx).pool, principal(ctx)?, id_of("environment", &id)).await.map_err(read_err)
    }

    /// The install tasks of an environment, newest first (without node detail).
    async fn install_tasks(&self, ctx: &Context<'_>, environment: String, page: Option<i64>, page_size: Option<i64>) -> GqlResult<InstallTaskPage> {
        Ok(views::tasks(&state(ctx).pool, principal(ctx)?, id_of("environment", &environment), PageRequest::new(page, page_size)).await.map_err(read_err)?.into())
    }

    /// One install task with its steps and node attempts.
    async fn install_task(&self, ctx: &Context<'_>, environment: String, task_id: Uuid) -> GqlResult<Option<views::TaskView>> {
        views::task(&state(ctx).pool, principal(ctx)?, id_of("environment", &environment), task_id).await.map_err(read_err)
    }

    /// The stored log lines of a task (optionally of one step and host), in order.
    async fn install_task_logs(&self, ctx: &Context<'_>, environment: String, task_id: Uuid, step_index: Option<i32>, host_id: Option<Uuid>, limit: Option<i64>) -> GqlResult<Vec<views::LogLine>> {
        // Visibility follows the task.
        if views::task(&state(ctx).pool, principal(ctx)?, id_of("environment", &environment), task_id).await.map_err(read_err)?.is_none() {
            return Err(crate::error::ApiError::new(opspilot_domain::ErrorCode::InstallTaskNotFound, format!("task {task_id} does not exist")).into_graphql());
        }
        views::logs(&state(ctx).pool, task_id, step_index, host_id, limit.unwrap_or(5000).clamp(1, 50_000)).await.map_err(read_err)
    }
}

/// A node binding.
#[derive(InputObject)]
pub struct NodeInput {
    pub host: String,
    pub node_role: String,
    pub weight: Option<u32>,
}

/// Mutations of hosts and environments.
#[derive(Default)]
pub struct EnvironmentMutation;

#[Object]
impl EnvironmentMutation {
    /// Registers a host; give `credential` (id or name) or the `secret` (private key or password).
    #[allow(clippy::too_many_arguments)]
    async fn register_host(
        &self,
        ctx: &Context<'_>,
        name: String,
        project: String,
        ip: String,
        port: Option<u16>,
        ssh_user: String,
        auth: String,
        credential: Option<String>,
        secret: Option<String>,
        labels: Option<Json<BTreeMap<String, String>>>,
    ) -> GqlResult<CommandResult> {
        let h = NewHost { name, project, ip, port: port.unwrap_or(22), ssh_user, auth, credential, secret, labels: labels.map(|l| l.0).unwrap_or_default() };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.register_host(&command_ctx(ctx)?, h)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Changes how a host is reached or its labels; what is not given stays.
    #[allow(clippy::too_many_arguments)]
    async fn update_host(
        &self,
        ctx: &Context<'_>,
        host: String,
        ip: Option<String>,
        port: Option<u16>,
        ssh_user: Option<String>,
        auth: Option<String>,
        credential: Option<String>,
        secret: Option<String>,
        labels: Option<Json<BTreeMap<String, String>>>,
    ) -> GqlResult<CommandResult> {
        let p = HostPatch { ip, port, ssh_user, auth, credential, secret, labels: labels.map(|l| l.0) };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.update_host(&command_ctx(ctx)?, &host, p)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Removes a host from OpsPilot (refused while an environment or compose target uses it).
    async fn delete_host(&self, ctx: &Context<'_>, host: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.delete_host(&command_ctx(ctx)?, &host)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// An admin trusts (or re-trusts) a host key by the fingerprint a scan showed.
    async fn trust_host_key(&self, ctx: &Context<'_>, host: String, fingerprint: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.trust_host_key(&command_ctx(ctx)?, &host, &fingerprint)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Creates an environment.
    #[allow(clippy::too_many_arguments)]
    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        name: String,
        project: String,
        team: String,
        runtime_type: String,
        mode: Option<String>,
        region: Option<String>,
        labels: Option<Json<BTreeMap<String, String>>>,
        description: Option<String>,
    ) -> GqlResult<CommandResult> {
        let n = NewEnvironment {
            name,
            project,
            team,
            runtime_type,
            mode: mode.unwrap_or_else(|| "platform_managed".into()),
            region: region.unwrap_or_default(),
            labels: labels.map(|l| l.0).unwrap_or_default(),
            description: description.unwrap_or_default(),
        };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.create_environment(&command_ctx(ctx)?, n)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Binds hosts to an environment with roles.
    async fn bind_nodes(&self, ctx: &Context<'_>, environment: String, nodes: Vec<NodeInput>) -> GqlResult<CommandResult> {
        let nodes = nodes.into_iter().map(|n| NodeRequest { host: n.host, node_role: n.node_role, weight: n.weight }).collect();
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.bind_nodes(&command_ctx(ctx)?, &environment, nodes)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Previews an install task (action: preflight, install, upgrade, repair or rollback).
    async fn preview_install(&self, ctx: &Context<'_>, environment: String, action: Option<String>, install_options: Option<Json<BTreeMap<String, String>>>) -> GqlResult<CommandResult> {
        let r = InstallPreviewRequest { action, install_options: install_options.map(|o| o.0).unwrap_or_default(), ..Default::default() };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.preview_install(&command_ctx(ctx)?, &environment, r)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Applies a previewed install task.
    async fn apply_install(&self, ctx: &Context<'_>, environment: String, preview_ref: Option<String>, confirm: bool) -> GqlResult<CommandResult> {
        let h = state(ctx)
            .run(meta(ctx).lang, state(ctx).commands.apply_install(&command_ctx(ctx)?, &environment, preview_ref.as_deref(), confirm, false))
            .await
            .map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Cancels a task: one waiting in the inbox ends at once (its ticket is
    /// cancelled); a running one has its hooks stopped on the hosts and ends
    /// with `install_task_cancelled`.
    async fn cancel_install(&self, ctx: &Context<'_>, environment: String, task_id: Uuid, reason: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.cancel_install(&command_ctx(ctx)?, &environment, task_id, reason)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
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
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let s = state(ctx).clone();
        let env_id = id_of("environment", &environment);
        let visible = views::environment(&s.pool, &p, env_id).await.ok().flatten().is_some();
        if !visible {
            let e = crate::error::ApiError::new(opspilot_domain::ErrorCode::EnvironmentNotFound, format!("environment {environment} does not exist")).into_graphql();
            return futures::stream::once(async move { Err(e) }).boxed();
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
