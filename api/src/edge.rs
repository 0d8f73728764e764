//! Plumbing every capability module shares and none of them owns: the JSON
//! body extractor, paging, answering a command once its effect is readable,
//! and the GraphQL context helpers. It imports no capability.

use async_graphql::{Context, Json, SimpleObject};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::Response;
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::{CommandContext, CommandError, Handled};
use opspilot_domain::{ErrorCode, Principal};
use opspilot_projections::audit_log::{self, AuditEntry};
use opspilot_projections::PageRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

pub use crate::error::{ok, ApiError};
pub use crate::state::{AppState, RequestMeta};

/// What a REST handler answers.
pub type ApiResult = Result<Response, ApiError>;

/// What a resolver answers.
pub type GqlResult<T> = async_graphql::Result<T>;

/// A JSON body whose rejection is a dictionary `validation_error`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError::new(ErrorCode::ValidationError, "request body too large or unreadable")),
            Err(e) => Err(ApiError::new(ErrorCode::ValidationError, e.body_text())),
        }
    }
}

/// `?page=&page_size=` of every list.
#[derive(Deserialize)]
pub struct Paging {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

impl Paging {
    /// The bounded page asked for.
    pub fn request(&self) -> PageRequest {
        PageRequest::new(self.page, self.page_size)
    }
}

/// Ids or names in paths and arguments: names resolve like everywhere else.
pub fn id_of(kind: &str, s: &str) -> Uuid {
    opspilot_commands::ids::resolve(kind, s)
}

/// The answer of a command: its result, once the projections have caught up
/// with it (read-your-writes).
pub async fn settled(s: &AppState, h: Handled) -> ApiResult {
    s.settle(h.position).await;
    Ok(ok(h.result))
}

/// The answer of a command whose effect is a follow-up (a decided ticket
/// moves its release on): once the follow-ups are appended and readable.
pub async fn settled_with_follow_ups(s: &AppState, h: Handled) -> ApiResult {
    s.settle_follow_ups(h.position).await;
    Ok(ok(h.result))
}

/// What a mutation did: its answer and the log position it reached.
#[derive(SimpleObject)]
pub struct CommandResult {
    pub position: i64,
    pub result: Json<Value>,
}

/// The server state of a resolver.
pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The request of a resolver.
pub fn meta<'a>(ctx: &Context<'a>) -> &'a RequestMeta {
    ctx.data_unchecked::<RequestMeta>()
}

/// The caller, or `unauthenticated`.
pub fn principal<'a>(ctx: &Context<'a>) -> GqlResult<&'a Principal> {
    meta(ctx).principal().map_err(|e| e.into_graphql())
}

/// A dictionary error in the caller's language.
pub fn gql(e: impl Into<ApiError>, ctx: &Context<'_>) -> async_graphql::Error {
    e.into().in_lang(meta(ctx).lang).into_graphql()
}

/// A command context for the caller.
pub fn command_ctx(ctx: &Context<'_>) -> GqlResult<CommandContext> {
    meta(ctx).command_context().map_err(|e| e.into_graphql())
}

/// Runs a command for a resolver and answers it once readable.
pub async fn mutate(ctx: &Context<'_>, command: impl std::future::Future<Output = Result<Handled, CommandError>>) -> GqlResult<CommandResult> {
    let h = state(ctx).run(meta(ctx).lang, command).await.map_err(|e| e.into_graphql())?;
    state(ctx).settle(h.position).await;
    Ok(CommandResult { position: h.position, result: Json(h.result) })
}

/// Like [`mutate`], for a command whose effect is a follow-up.
pub async fn mutate_with_follow_ups(ctx: &Context<'_>, command: impl std::future::Future<Output = Result<Handled, CommandError>>) -> GqlResult<CommandResult> {
    let h = state(ctx).run(meta(ctx).lang, command).await.map_err(|e| e.into_graphql())?;
    state(ctx).settle_follow_ups(h.position).await;
    Ok(CommandResult { position: h.position, result: Json(h.result) })
}

/// Events as the read models apply them, scoped to the caller and kept by `keep`.
pub fn live(ctx: &Context<'_>, keep: impl Fn(&AuditEntry) -> bool + Send + Sync + 'static) -> BoxStream<'static, GqlResult<AuditEntry>> {
    let p = match principal(ctx) {
        Ok(p) => p.clone(),
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let rx = state(ctx).runner.applied.subscribe();
    BroadcastStream::new(rx)
        .filter_map(move |item| {
            let out = item.ok().map(|e| AuditEntry::from_event(&e)).filter(|row| audit_log::visible_to(&p, row.project_id.as_deref(), &row.actor_id) && keep(row));
            async move { out.map(Ok) }
        })
        .boxed()
}

/// A stream that only says why it cannot start.
pub fn refused<T: Send + 'static>(e: async_graphql::Error) -> BoxStream<'static, GqlResult<T>> {
    futures::stream::once(async move { Err(e) }).boxed()
}

/// A GraphQL page of `$item`, made from a read-model page of anything that
/// converts into `$item`.
#[macro_export]
macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// A page of results.
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            pub list: Vec<$item>,
            pub total: i64,
            pub page: i64,
            pub page_size: i64,
        }
        impl<S: Into<$item>> From<opspilot_projections::Page<S>> for $name {
            fn from(p: opspilot_projections::Page<S>) -> Self {
                $name { list: p.list.into_iter().map(Into::into).collect(), total: p.total, page: p.page, page_size: p.page_size }
            }
        }
    };
}
