//! Releases: preview (mandatory, with TTL) → apply → approval → execution →
//! rollback, the release view and its one timeline — REST and GraphQL.

use std::collections::BTreeMap;

use async_graphql::{Context, InputObject, Json, Object, Subscription};
use axum::extract::State;
use crate::edge::Path;
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::releases::{ApplyRequest, PreviewRequest};
use opspilot_domain::ErrorCode;
use opspilot_projections::audit_log::{self, AuditEntry};
use opspilot_projections::releases::{self, ReleaseView};
use opspilot_projections::timelines::{self, Subject};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::edge::{
    command_ctx, gql, live, mutate, mutate_with_follow_ups, ok, principal, refused, settled, settled_with_follow_ups, state, ApiError, ApiResult, AppState, Body,
    CommandResult, GqlResult, RequestMeta,
};

pub use opspilot_projections::releases::ReleaseView as Release;

crate::page_type!(ReleasePage, Release);

/// Which releases a list shows (REST query parameters; GraphQL arguments).
#[derive(Deserialize, Default)]
struct ReleaseListQuery {
    mine: Option<bool>,
    /// Comma-separated statuses.
    status: Option<String>,
    project_id: Option<Uuid>,
    service_id: Option<Uuid>,
    page: Option<i64>,
    page_size: Option<i64>,
}

fn release_filter(mine: Option<bool>, statuses: Vec<String>, project_id: Option<Uuid>, service_id: Option<Uuid>) -> Result<releases::ReleaseFilter, ApiError> {
    for s in &statuses {
        opspilot_domain::release::ReleaseStatus::parse(s).map_err(ApiError::from)?;
    }
    Ok(releases::ReleaseFilter { mine: mine.unwrap_or(false), statuses, project_id, service_id })
}

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deploy/releases", get(list_releases))
        .route("/deploy/releases/preview", post(preview_release))
        .route("/deploy/releases/apply", post(apply_release))
        .route("/deploy/releases/{id}", get(get_release))
        .route("/deploy/releases/{id}/approve", post(approve_release))
        .route("/deploy/releases/{id}/reject", post(reject_release))
        .route("/deploy/releases/{id}/timeline", get(release_timeline))
        .route("/deploy/releases/{id}/rollback", post(rollback_release))
        .route("/deploy/releases/{id}/cancel", post(cancel_release))
}

/// What to preview (the seed's preview payload; ids or names).
#[derive(Deserialize, InputObject, Clone)]
pub struct ReleaseInput {
    pub service_id: String,
    pub target_id: String,
    pub env: String,
    pub strategy: Option<String>,
    #[serde(default)]
    pub variables: Option<Json<BTreeMap<String, String>>>,
}

impl From<ReleaseInput> for PreviewRequest {
    fn from(r: ReleaseInput) -> Self {
        PreviewRequest { service: r.service_id, target: r.target_id, env: r.env, strategy: r.strategy, variables: r.variables.map(|v| v.0).unwrap_or_default() }
    }
}

/// What to apply: the preview's reference and exactly its parameters.
#[derive(Deserialize, InputObject)]
pub struct ApplyReleaseInput {
    pub preview_ref: Option<String>,
    #[serde(flatten)]
    #[graphql(flatten)]
    pub release: ReleaseInput,
}

impl From<ApplyReleaseInput> for ApplyRequest {
    fn from(a: ApplyReleaseInput) -> Self {
        ApplyRequest { preview_ref: a.preview_ref, params: a.release.into() }
    }
}

/// An approval of a release's ticket.
#[derive(Deserialize, InputObject, Default)]
pub struct ApproveReleaseInput {
    pub comment: Option<String>,
    /// The ticket the approver means; one raised for another release is refused.
    pub approval_ticket: Option<String>,
}

/// A comment on a decision.
#[derive(Deserialize, InputObject, Default)]
pub struct CommentInput {
    pub comment: Option<String>,
}

/// Why something is withdrawn.
#[derive(Deserialize, InputObject, Default)]
pub struct ReasonInput {
    pub reason: Option<String>,
}

fn release_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::new(ErrorCode::ReleaseNotFound, format!("release {id} does not exist")))
}

async fn find_release(s: &AppState, meta: &RequestMeta, id: Uuid) -> Result<ReleaseView, ApiError> {
    releases::get(&s.pool, meta.principal()?, id).await?.ok_or_else(|| ApiError::new(ErrorCode::ReleaseNotFound, format!("release {id} does not exist")).in_lang(meta.lang))
}

/// The ticket a decision on a release names: the one given, or the release's own.
async fn ticket_of(s: &AppState, meta: &RequestMeta, id: Uuid, given: Option<String>) -> Result<(Uuid, String), ApiError> {
    let r = find_release(s, meta, id).await?;
    let ticket = match given {
        Some(t) => t,
        None => r.approval_ticket.ok_or_else(|| ApiError::new(ErrorCode::ApprovalTicketNotFound, format!("release {id} has no approval ticket")).in_lang(meta.lang))?,
    };
    Ok((r.id, ticket))
}

/// A release's one timeline, as every surface shows it.
pub async fn timeline_of(s: &AppState, meta: &RequestMeta, id: Uuid) -> Result<Vec<AuditEntry>, ApiError> {
    let r = find_release(s, meta, id).await?;
    Ok(timelines::timeline(&s.pool, meta.principal()?, Subject::Release, &r.id.to_string()).await?)
}

async fn list_releases(State(s): State<AppState>, meta: RequestMeta, crate::edge::Query(q): crate::edge::Query<ReleaseListQuery>) -> ApiResult {
    let statuses = q.status.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let f = release_filter(q.mine, statuses, q.project_id, q.service_id).map_err(|e| e.in_lang(meta.lang))?;
    Ok(ok(releases::list(&s.pool, meta.principal()?, &f, opspilot_projections::PageRequest::new(q.page, q.page_size)).await?))
}

async fn preview_release(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ReleaseInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.preview_release(&meta.command_context()?, &b.into())).await?).await
}

async fn apply_release(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ApplyReleaseInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.apply_release(&meta.command_context()?, &b.into())).await?).await
}

async fn get_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(find_release(&s, &meta, release_id(&id)?).await?))
}

async fn approve_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<ApproveReleaseInput>) -> ApiResult {
    let (id, ticket) = ticket_of(&s, &meta, release_id(&id)?, b.approval_ticket).await?;
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.approve_ticket_for_release(&meta.command_context()?, &ticket, id, b.comment)).await?).await
}

async fn reject_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<CommentInput>) -> ApiResult {
    let (_, ticket) = ticket_of(&s, &meta, release_id(&id)?, None).await?;
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.reject_ticket(&meta.command_context()?, &ticket, b.comment)).await?).await
}

async fn release_timeline(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let list = timeline_of(&s, &meta, release_id(&id)?).await?;
    Ok(ok(json!({ "total": list.len(), "list": list })))
}

async fn rollback_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let r = find_release(&s, &meta, release_id(&id)?).await?;
    settled(&s, s.run(meta.lang, s.commands.rollback_release(&meta.command_context()?, r.id)).await?).await
}

async fn cancel_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<ReasonInput>) -> ApiResult {
    let r = find_release(&s, &meta, release_id(&id)?).await?;
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.cancel_release(&meta.command_context()?, r.id, b.reason)).await?).await
}

/// Release queries.
#[derive(Default)]
pub struct ReleaseQuery;

#[Object]
impl ReleaseQuery {
    /// Releases visible to the caller, most recently changed first: only the
    /// caller's own with `mine`, of some statuses, of one project or service.
    async fn releases(&self, ctx: &Context<'_>, mine: Option<bool>, status: Option<Vec<String>>, project_id: Option<Uuid>, service_id: Option<Uuid>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ReleasePage> {
        let f = release_filter(mine, status.unwrap_or_default(), project_id, service_id).map_err(|e| gql(e, ctx))?;
        Ok(releases::list(&state(ctx).pool, principal(ctx)?, &f, opspilot_projections::PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// One release (visible to the caller).
    async fn release(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<Option<Release>> {
        releases::get(&state(ctx).pool, principal(ctx)?, id).await.map_err(|e| gql(e, ctx))
    }

    /// A release's timeline: its events, its execution facts and every event
    /// of its tickets, in log order.
    async fn release_timeline(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<Vec<AuditEntry>> {
        timeline_of(state(ctx), crate::edge::meta(ctx), id).await.map_err(|e| gql(e, ctx))
    }
}

/// Release mutations.
#[derive(Default)]
pub struct ReleaseMutation;

#[Object]
impl ReleaseMutation {
    /// Previews a release (mandatory before apply).
    async fn preview_release(&self, ctx: &Context<'_>, input: ReleaseInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.preview_release(&command_ctx(ctx)?, &input.into())).await
    }

    /// Applies a previewed release (the parameters must match the preview).
    async fn apply_release(&self, ctx: &Context<'_>, input: ApplyReleaseInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.apply_release(&command_ctx(ctx)?, &input.into())).await
    }

    /// Approves the ticket of a release (its own, or the one named, which must be its own).
    async fn approve_release(&self, ctx: &Context<'_>, id: Uuid, input: Option<ApproveReleaseInput>) -> GqlResult<CommandResult> {
        let input = input.unwrap_or_default();
        let (id, ticket) = ticket_of(state(ctx), crate::edge::meta(ctx), id, input.approval_ticket).await.map_err(|e| gql(e, ctx))?;
        mutate_with_follow_ups(ctx, state(ctx).commands.approve_ticket_for_release(&command_ctx(ctx)?, &ticket, id, input.comment)).await
    }

    /// Rejects the ticket of a release.
    async fn reject_release(&self, ctx: &Context<'_>, id: Uuid, input: Option<CommentInput>) -> GqlResult<CommandResult> {
        let (_, ticket) = ticket_of(state(ctx), crate::edge::meta(ctx), id, None).await.map_err(|e| gql(e, ctx))?;
        mutate_with_follow_ups(ctx, state(ctx).commands.reject_ticket(&command_ctx(ctx)?, &ticket, input.unwrap_or_default().comment)).await
    }

    /// Withdraws a release (or its rollback) waiting for approval; its ticket is cancelled.
    async fn cancel_release(&self, ctx: &Context<'_>, id: Uuid, reason: Option<String>) -> GqlResult<CommandResult> {
        mutate_with_follow_ups(ctx, state(ctx).commands.cancel_release(&command_ctx(ctx)?, id, reason)).await
    }

    /// Rolls an applied release back to the previous one.
    async fn rollback_release(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.rollback_release(&command_ctx(ctx)?, id)).await
    }
}

/// Live release updates.
#[derive(Default)]
pub struct ReleaseSubscription;

#[Subscription]
impl ReleaseSubscription {
    /// A release's status changes (its own events), live.
    async fn release_status_changed(&self, ctx: &Context<'_>, id: Uuid) -> BoxStream<'static, GqlResult<AuditEntry>> {
        if let Err(e) = principal(ctx).and_then(|p| p.require(timelines::read_permission(Subject::Release)).map_err(|e| gql(e, ctx))) {
            return refused(e);
        }
        let id = id.to_string();
        live(ctx, move |r| r.resource_type == "deployment_release" && r.resource_id == id)
    }

    /// Appends to a release's timeline, live: the same entries, in the same
    /// order, as `releaseTimeline` lists.
    async fn timeline_appended(&self, ctx: &Context<'_>, id: Uuid) -> BoxStream<'static, GqlResult<AuditEntry>> {
        let p = match principal(ctx).and_then(|p| p.require(timelines::read_permission(Subject::Release)).map(|_| p.clone()).map_err(|e| gql(e, ctx))) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let (pool, id) = (state(ctx).pool.clone(), id.to_string());
        BroadcastStream::new(state(ctx).runner.applied.subscribe())
            .filter_map(move |item| {
                let (pool, id, p) = (pool.clone(), id.clone(), p.clone());
                async move {
                    let e = item.ok()?;
                    let entry = AuditEntry::from_event(&e);
                    if !audit_log::visible_to(&p, entry.project_id.as_deref(), &entry.actor_id) {
                        return None;
                    }
                    timelines::contains(&pool, Subject::Release, &id, e.position).await.ok()?.then_some(Ok(entry))
                }
            })
            .boxed()
    }
}
