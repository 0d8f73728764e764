//! The AI command center: sessions, messages, confirmations and the live
//! session event stream — REST (with SSE) and GraphQL.

use std::convert::Infallible;

use async_graphql::{Context, InputObject, Json, Object, SimpleObject, Subscription};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::ai::context;
use opspilot_domain::ai::session::AiSession;
use opspilot_domain::{stream_id_of, ErrorCode, Principal};
use opspilot_projections::ai_sessions::{self, SessionSummary};
use opspilot_projections::audit_log::AuditEntry;
use opspilot_projections::timelines::{self, Subject};
use opspilot_projections::PageRequest;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::edge::{command_ctx, gql, ok, principal, state, ApiError, ApiResult, AppState, Body, CommandResult, GqlResult, Path, Query, RequestMeta};

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ai/sessions", post(start_session).get(list_sessions))
        .route("/ai/sessions/{id}", get(get_session))
        .route("/ai/sessions/{id}/messages", post(send_message))
        .route("/ai/sessions/{id}/confirm", post(confirm))
        .route("/ai/sessions/{id}/events", get(session_events))
}

/// A new session.
#[derive(Deserialize, InputObject, Default)]
pub struct AiSessionInput {
    /// zh-CN (default) or en.
    pub lang: Option<String>,
    /// The project the session works in (id or name); the caller's only project by default.
    pub project_id: Option<String>,
    pub title: Option<String>,
}

#[derive(Deserialize)]
struct MessageInput {
    text: String,
}

#[derive(Deserialize)]
struct ConfirmInput {
    preview_ref: String,
}

#[derive(Deserialize)]
struct Paging {
    page: Option<i64>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

/// One event of a session.
#[derive(SimpleObject, Clone)]
pub struct AiSessionEventView {
    pub position: i64,
    pub action: String,
    pub detail: Json<Value>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

impl From<&AuditEntry> for AiSessionEventView {
    fn from(e: &AuditEntry) -> Self {
        AiSessionEventView { position: e.position, action: e.action.clone(), detail: Json(e.detail.clone()), occurred_at: e.occurred_at }
    }
}

/// A session: its context keys, every event, and the timeline of its release.
#[derive(SimpleObject)]
pub struct AiSessionView {
    pub id: Uuid,
    pub context: Json<Value>,
    pub events: Vec<AiSessionEventView>,
    /// The release's one timeline (the same list the deployment page and the inbox show).
    pub timeline: Vec<AuditEntry>,
}

/// The session's events after `after`, read from the log.
async fn events_after(s: &AppState, id: Uuid, after: i64) -> Result<Vec<AuditEntry>, ApiError> {
    let events = s.commands.store.read_stream(&stream_id_of::<AiSession>(id)).await.map_err(opspilot_commands::CommandError::from)?;
    Ok(events.iter().filter(|e| e.position > after).map(AuditEntry::from_event).collect())
}

async fn session_view(s: &AppState, meta: &RequestMeta, id: Uuid) -> Result<AiSessionView, ApiError> {
    let session = s.run(meta.lang, s.commands.own_session(&meta.command_context()?, id)).await?;
    let events = events_after(s, id, 0).await?;
    // Events come from the log, the timeline from its projection: wait until the
    // projection holds the session's last event, so both parts of the view agree.
    if let Some(last) = events.last() {
        s.settle(last.position).await;
    }
    let timeline = match session.release_id.or(session.release_draft_id) {
        Some(r) => timelines::timeline(&s.pool, meta.principal()?, Subject::Release, &r.to_string()).await?,
        None => vec![],
    };
    Ok(AiSessionView { id, context: Json(context(&session)), events: events.iter().map(Into::into).collect(), timeline })
}

/// Refuses with `rate_limited` when the caller sends messages faster than allowed.
fn check_rate(s: &AppState, p: &Principal) -> Result<(), ApiError> {
    s.ai_limiter.check_key(&p.user_id).map_err(|_| ApiError::new(ErrorCode::RateLimited, "too many AI messages; wait a little"))
}

async fn start_session(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<AiSessionInput>) -> ApiResult {
    let h = s.run(meta.lang, s.commands.start_ai_session(&meta.command_context()?, b.lang.as_deref(), b.project_id.as_deref(), b.title.as_deref())).await?;
    s.settle(h.position).await;
    Ok(ok(h.result))
}

async fn list_sessions(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(ai_sessions::list(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

async fn get_session(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<Uuid>) -> ApiResult {
    let v = session_view(&s, &meta, id).await?;
    let events: Vec<Value> = v.events.iter().map(|e| json!({ "position": e.position, "action": e.action, "detail": e.detail.0, "occurred_at": e.occurred_at })).collect();
    Ok(ok(json!({ "session_id": id, "context": v.context.0, "events": events, "timeline": v.timeline })))
}

async fn send_message(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<Uuid>, Body(b): Body<MessageInput>) -> ApiResult {
    check_rate(&s, meta.principal()?)?;
    let h = s.run(meta.lang, s.commands.ai_send(&meta.command_context()?, id, &b.text)).await?;
    s.settle(h.position).await;
    Ok(ok(h.result))
}

async fn confirm(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<Uuid>, Body(b): Body<ConfirmInput>) -> ApiResult {
    check_rate(&s, meta.principal()?)?;
    let h = s.run(meta.lang, s.commands.ai_confirm(&meta.command_context()?, id, &b.preview_ref)).await?;
    s.settle(h.position).await;
    Ok(ok(h.result))
}

/// The session's events after `after` (or `Last-Event-ID`), then live, as
/// `text/event-stream`: a client that reconnects with the last position it
/// saw misses nothing and sees nothing twice.
async fn session_events(State(s): State<AppState>, meta: RequestMeta, headers: axum::http::HeaderMap, Path(id): Path<Uuid>, Query(q): Query<After>) -> Result<axum::response::Response, ApiError> {
    s.run(meta.lang, s.commands.own_session(&meta.command_context()?, id)).await?;
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let after = q.after.or(resumed).unwrap_or(0).max(0);
    let stream = session_stream(&s, id, after).await?.map(|e| {
        let data = json!({ "position": e.position, "action": e.action, "detail": e.detail, "occurred_at": e.occurred_at });
        Ok::<_, Infallible>(Event::default().id(e.position.to_string()).event(e.action.clone()).data(data.to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Backlog after `after`, then live events of the session, in order, once each.
async fn session_stream(s: &AppState, id: Uuid, after: i64) -> Result<BoxStream<'static, AuditEntry>, ApiError> {
    // Subscribe before reading the backlog, so nothing falls between the two.
    let rx = s.runner.applied.subscribe();
    let backlog = events_after(s, id, after).await?;
    let seen = backlog.last().map(|e| e.position).unwrap_or(after);
    let stream_id = stream_id_of::<AiSession>(id);
    let live = BroadcastStream::new(rx).filter_map(move |item| {
        let keep = item.ok().filter(|e| e.stream_id == stream_id && e.position > seen).map(|e| AuditEntry::from_event(&e));
        async move { keep }
    });
    Ok(futures::stream::iter(backlog).chain(live).boxed())
}

/// AI queries.
#[derive(Default)]
pub struct AiQuery;

#[Object]
impl AiQuery {
    /// One of the caller's sessions, with its context keys, events and release timeline.
    async fn ai_session(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<AiSessionView> {
        let meta = ctx.data_unchecked::<RequestMeta>();
        session_view(state(ctx), meta, id).await.map_err(|e| gql(e, ctx))
    }

    /// The caller's sessions, most recently active first.
    async fn ai_sessions(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<Vec<SessionSummary>> {
        let r = ai_sessions::list(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.list)
    }
}

/// AI mutations.
#[derive(Default)]
pub struct AiMutation;

#[Object]
impl AiMutation {
    /// Opens a session.
    async fn ai_start_session(&self, ctx: &Context<'_>, input: Option<AiSessionInput>) -> GqlResult<CommandResult> {
        let i = input.unwrap_or_default();
        crate::edge::mutate(ctx, state(ctx).commands.start_ai_session(&command_ctx(ctx)?, i.lang.as_deref(), i.project_id.as_deref(), i.title.as_deref())).await
    }

    /// Sends a sentence to a session; answers the session events it caused.
    async fn ai_send(&self, ctx: &Context<'_>, session_id: Uuid, text: String) -> GqlResult<CommandResult> {
        check_rate(state(ctx), principal(ctx)?).map_err(|e| gql(e, ctx))?;
        crate::edge::mutate(ctx, state(ctx).commands.ai_send(&command_ctx(ctx)?, session_id, &text)).await
    }

    /// Confirms the preview (or rollback) waiting in a session; confirming it again applies nothing.
    async fn ai_confirm(&self, ctx: &Context<'_>, session_id: Uuid, preview_ref: String) -> GqlResult<CommandResult> {
        check_rate(state(ctx), principal(ctx)?).map_err(|e| gql(e, ctx))?;
        crate::edge::mutate(ctx, state(ctx).commands.ai_confirm(&command_ctx(ctx)?, session_id, &preview_ref)).await
    }
}

/// Live session events.
#[derive(Default)]
pub struct AiSubscription;

#[Subscription]
impl AiSubscription {
    /// A session's events after `after` (0: all), then live.
    async fn ai_session_events(&self, ctx: &Context<'_>, session_id: Uuid, after: Option<i64>) -> BoxStream<'static, GqlResult<AiSessionEventView>> {
        let s = state(ctx).clone();
        let meta = ctx.data_unchecked::<RequestMeta>().clone();
        let opened = async move {
            let cctx = meta.command_context()?;
            s.run(meta.lang, s.commands.own_session(&cctx, session_id)).await?;
            session_stream(&s, session_id, after.unwrap_or(0).max(0)).await
        };
        match opened.await {
            Ok(stream) => stream.map(|e| Ok(AiSessionEventView::from(&e))).boxed(),
            Err(e) => futures::stream::once(async move { Err(e.into_graphql()) }).boxed(),
        }
    }
}
