//! Plumbing every capability module shares and none of them owns: the JSON
//! body extractor, paging, answering a command once its effect is readable,
//! and the GraphQL context helpers. It imports no capability.

use async_graphql::{Context, Json, SimpleObject};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use futures::stream::{BoxStream, StreamExt};
use opspilot_commands::{CommandContext, CommandError, Handled};
use opspilot_domain::{ErrorCode, Principal};
use opspilot_projections::audit_log::{self, AuditEntry};
use opspilot_projections::page::{MAX_PAGE, MAX_PAGE_SIZE};
use opspilot_projections::PageRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

pub use crate::error::{ok, ApiError};
use crate::graphql_edge;
pub use crate::state::{AppState, RequestMeta};

/// What a REST handler answers.
pub type ApiResult = Result<Response, ApiError>;

/// What a resolver answers.
pub type GqlResult<T> = async_graphql::Result<T>;

/// A JSON body: nesting bounded before parsing, NUL and control characters
/// refused in every string, and every rejection a dictionary `validation_error`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |d: String| ApiError::new(ErrorCode::ValidationError, d);
        let is_json = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(invalid("body: send JSON with Content-Type: application/json".into()));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| invalid("body: too large or unreadable".into()))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("body: not UTF-8".into()))?;
        graphql_edge::check_nesting("body", text, graphql_edge::MAX_NESTING)?;
        let value: Value = serde_json::from_str(text).map_err(|e| invalid(format!("body: not JSON: {e}")))?;
        graphql_edge::check_text(&value, "")?;
        serde_path_to_error::deserialize(value).map(Body).map_err(|e| {
            let at = e.path().to_string();
            invalid(format!("{}: {}", if at == "." { "body".to_string() } else { at }, e.into_inner()))
        })
    }
}

/// Query parameters: NUL and control characters refused, and a parameter
/// that does not parse is a `validation_error` naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            graphql_edge::check_str(&k, &k)?;
            graphql_edge::check_str(&k, &v)?;
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let at = e.path().to_string();
            ApiError::new(ErrorCode::ValidationError, format!("{at}: {}", e.into_inner()))
        })
    }
}

/// Path segments: a segment that does not parse (a non-UUID id) is a
/// `validation_error` naming it; NUL and control characters are refused.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state).await.map_err(|e| ApiError::new(ErrorCode::ValidationError, e.body_text()))?;
        for (k, v) in raw.iter() {
            graphql_edge::check_str(k, v)?;
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::new(ErrorCode::ValidationError, format!("path: {}", e.body_text()))),
        }
    }
}

/// `?page=&page_size=` of every list.
#[derive(Deserialize)]
pub struct Paging {
    #[serde(default, deserialize_with = "page_number")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "page_size")]
    pub page_size: Option<i64>,
}

fn in_range<'de, D: serde::Deserializer<'de>>(d: D, max: i64) -> Result<Option<i64>, D::Error> {
    let v: Option<i64> = Option::deserialize(d)?;
    match v {
        Some(n) if !(1..=max).contains(&n) => Err(serde::de::Error::custom(format!("must be between 1 and {max}"))),
        other => Ok(other),
    }
}

/// `page`: 1 to [`MAX_PAGE`].
pub fn page_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    in_range(d, MAX_PAGE)
}

/// `page_size`: 1 to [`MAX_PAGE_SIZE`].
pub fn page_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    in_range(d, MAX_PAGE_SIZE)
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
