//! The global approval inbox: tickets of every scope type in one queue, their
//! decisions, assignment and comments — REST and GraphQL.

use opspilot_domain::rbac::Permission;
use async_graphql::{Context, InputObject, Object, SimpleObject, Subscription};
use axum::extract::State;
use crate::edge::{Path, Query};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::BoxStream;
use opspilot_domain::ErrorCode;
use opspilot_projections::audit_log::AuditEntry;
use opspilot_projections::inbox::{self, InboxQuery};
use opspilot_projections::PageRequest;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::edge::{
    command_ctx, gql, id_of, live, mutate, mutate_with_follow_ups, ok, principal, refused, settled, settled_with_follow_ups, state, ApiError, ApiResult, AppState, Body,
    CommandResult, GqlResult, RequestMeta,
};

pub use opspilot_projections::inbox::{InboxItem, InboxStats};

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/approvals/inbox", get(list))
        .route("/approvals/inbox/{ticket}", get(open_ticket))
        .route("/approvals/inbox/{ticket}/approve", post(approve_ticket))
        .route("/approvals/inbox/{ticket}/reject", post(reject_ticket))
        .route("/approvals/inbox/{ticket}/assign", post(assign_ticket))
        .route("/approvals/inbox/{ticket}/comment", post(comment_ticket))
}

/// A comma-separated list in a query string (`status=pending,approved`).
fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()))
}

/// The inbox filters of the seed (REST query parameters, GraphQL `filter`).
#[derive(Deserialize, InputObject, Default)]
pub struct InboxFilter {
    /// mine (default), pending or all.
    pub view: Option<String>,
    #[serde(default, deserialize_with = "comma_list")]
    pub status: Option<Vec<String>>,
    #[serde(default, deserialize_with = "comma_list")]
    pub scope_type: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub team_id: Option<String>,
    pub environment_id: Option<String>,
    pub runtime_type: Option<String>,
    pub risk_level: Option<String>,
    pub priority: Option<String>,
    pub assigned_to: Option<String>,
    pub requested_by: Option<String>,
    pub q: Option<String>,
    /// 15m, 1h or today.
    pub expiring: Option<String>,
    /// priority, expires_at, sla_due_at or created_at.
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

impl From<InboxFilter> for InboxQuery {
    fn from(f: InboxFilter) -> Self {
        InboxQuery {
            view: f.view,
            status: f.status.unwrap_or_default(),
            scope_type: f.scope_type.unwrap_or_default(),
            project_id: f.project_id.map(|v| id_of("project", &v)),
            team_id: f.team_id.map(|v| id_of("team", &v)),
            environment_id: f.environment_id,
            runtime_type: f.runtime_type,
            risk_level: f.risk_level,
            priority: f.priority,
            assigned_to: f.assigned_to.map(|v| id_of("user", &v)),
            requested_by: f.requested_by.map(|v| id_of("user", &v)),
            q: f.q,
            expiring: f.expiring,
            sort_by: f.sort_by,
            sort_order: f.sort_order,
        }
    }
}

/// A page of the inbox with its stats.
#[derive(SimpleObject)]
pub struct InboxPage {
    pub list: Vec<InboxItem>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub stats: InboxStats,
}

/// A decision's comment.
#[derive(Deserialize, InputObject, Default)]
pub struct DecisionInput {
    pub comment: Option<String>,
}

/// An assignment to an approver (id or name).
#[derive(Deserialize, InputObject)]
pub struct AssignInput {
    pub assigned_to: String,
    pub comment: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(flatten)]
    filter: InboxFilter,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn list(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<ListQuery>) -> ApiResult {
    let page = PageRequest::new(q.page, q.page_size);
    Ok(ok(inbox::list(&s.pool, meta.principal()?, &q.filter.into(), chrono::Utc::now(), page).await?))
}

async fn open_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>) -> ApiResult {
    // Opening a ticket is an inbox action (`viewed`).
    let h = s.run(meta.lang, s.commands.view_ticket(&meta.command_context()?, &ticket)).await?;
    s.settle(h.position).await;
    let (item, actions) = inbox::get(&s.pool, meta.principal()?, &ticket, chrono::Utc::now())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")).in_lang(meta.lang))?;
    Ok(ok(json!({ "item": item, "timeline": actions })))
}

async fn approve_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<DecisionInput>) -> ApiResult {
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.approve_ticket(&meta.command_context()?, &ticket, b.comment)).await?).await
}

async fn reject_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<DecisionInput>) -> ApiResult {
    settled_with_follow_ups(&s, s.run(meta.lang, s.commands.reject_ticket(&meta.command_context()?, &ticket, b.comment)).await?).await
}

async fn assign_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<AssignInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.assign_ticket(&meta.command_context()?, &ticket, &b.assigned_to, b.comment)).await?).await
}

async fn comment_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<DecisionInput>) -> ApiResult {
    let comment = b.comment.unwrap_or_default();
    settled(&s, s.run(meta.lang, s.commands.comment_ticket(&meta.command_context()?, &ticket, &comment)).await?).await
}

/// Inbox queries.
#[derive(Default)]
pub struct InboxQueryRoot;

#[Object]
impl InboxQueryRoot {
    /// The global approval inbox.
    async fn inbox(&self, ctx: &Context<'_>, filter: Option<InboxFilter>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<InboxPage> {
        let q: InboxQuery = filter.unwrap_or_default().into();
        let r = inbox::list(&state(ctx).pool, principal(ctx)?, &q, chrono::Utc::now(), PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(InboxPage { list: r.page.list, total: r.page.total, page: r.page.page, page_size: r.page.page_size, stats: r.stats })
    }
}

/// Inbox mutations.
#[derive(Default)]
pub struct InboxMutation;

#[Object]
impl InboxMutation {
    /// Approves a ticket of the inbox.
    async fn approve_ticket(&self, ctx: &Context<'_>, ticket: String, comment: Option<String>) -> GqlResult<CommandResult> {
        mutate_with_follow_ups(ctx, state(ctx).commands.approve_ticket(&command_ctx(ctx)?, &ticket, comment)).await
    }

    /// Rejects a ticket of the inbox.
    async fn reject_ticket(&self, ctx: &Context<'_>, ticket: String, comment: Option<String>) -> GqlResult<CommandResult> {
        mutate_with_follow_ups(ctx, state(ctx).commands.reject_ticket(&command_ctx(ctx)?, &ticket, comment)).await
    }

    /// Assigns a ticket to an approver (id or name).
    async fn assign_ticket(&self, ctx: &Context<'_>, ticket: String, input: AssignInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.assign_ticket(&command_ctx(ctx)?, &ticket, &input.assigned_to, input.comment)).await
    }

    /// Comments on a ticket.
    async fn comment_ticket(&self, ctx: &Context<'_>, ticket: String, comment: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.comment_ticket(&command_ctx(ctx)?, &ticket, &comment)).await
    }
}

/// Live inbox updates.
#[derive(Default)]
pub struct InboxSubscription;

#[Subscription]
impl InboxSubscription {
    /// Every change of the inbox the caller may see, live.
    async fn inbox_changed(&self, ctx: &Context<'_>) -> BoxStream<'static, GqlResult<AuditEntry>> {
        if let Err(e) = principal(ctx).and_then(|p| p.require(Permission::DeployReleaseRead).map_err(|e| gql(e, ctx))) {
            return refused(e);
        }
        live(ctx, |r| r.domain == "approval")
    }
}
