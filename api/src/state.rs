//! Shared server state and the per-request caller.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use opspilot_commands::process_manager::FollowUps;
use opspilot_commands::{CommandContext, CommandError, Commands};
use opspilot_domain::{ErrorCode, Lang, Principal, Source};
use opspilot_eventstore::secrets::Secrets;
use opspilot_eventstore::Pool;
use opspilot_projections::{accounts, RunnerHandle};
use uuid::Uuid;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub commands: Commands,
    pub secrets: Secrets,
    pub runner: RunnerHandle,
    /// The process manager: follow-ups of decisions, executions.
    pub follow_ups: FollowUps,
    pub metrics: Arc<Metrics>,
    pub login_limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// AI command center messages per user.
    pub ai_limiter: Arc<DefaultKeyedRateLimiter<uuid::Uuid>>,
}

/// How long a mutation waits for its effect to reach the read models.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(10);

impl AppState {
    /// Builds the state.
    pub fn new(pool: Pool, commands: Commands, runner: RunnerHandle, follow_ups: FollowUps, metrics: Arc<Metrics>, login_attempts_per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(login_attempts_per_minute.max(1)).expect("max(1) is non-zero");
        AppState {
            secrets: Secrets::new(pool.clone()),
            pool,
            commands,
            runner,
            follow_ups,
            metrics,
            login_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            ai_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(30).expect("non-zero")))),
        }
    }

    /// Sets how many AI messages a user may send per minute.
    pub fn with_ai_rate(mut self, per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("max(1) is non-zero");
        self.ai_limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(n)));
        self
    }

    /// Refuses with `rate_limited` when this client or this username tried too often.
    pub fn check_login_rate(&self, ip: Option<IpAddr>, username: &str) -> Result<(), ApiError> {
        let keys = [format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default()), format!("user:{username}")];
        for k in keys {
            if self.login_limiter.check_key(&k).is_err() {
                return Err(ApiError::new(ErrorCode::RateLimited, "too many login attempts"));
            }
        }
        Ok(())
    }

    /// Waits until the read models include `position`, so the caller's next
    /// query sees its own write.
    pub async fn settle(&self, position: i64) {
        if !self.runner.wait_for(position, READ_YOUR_WRITES_TIMEOUT).await {
            tracing::warn!(position, "read models did not reach the write in time");
        }
    }

    /// Waits until the follow-ups of `position` are appended (a decided
    /// ticket has moved its release on) and the read models include them.
    pub async fn settle_follow_ups(&self, position: i64) {
        if !self.follow_ups.wait_for(position, READ_YOUR_WRITES_TIMEOUT).await {
            tracing::warn!(position, "follow-ups did not happen in time");
        }
        match self.commands.store.head().await {
            Ok(head) => self.settle(head).await,
            Err(_) => self.settle(position).await,
        }
    }

    /// Awaits a command and maps its refusal to the client's language. A
    /// refusal may itself be recorded (a denial, a failed preview): it is
    /// settled like a write, so the caller's next query sees it.
    pub async fn run<T>(&self, lang: Lang, command: impl std::future::Future<Output = Result<T, CommandError>>) -> Result<T, ApiError> {
        match command.await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Ok(head) = self.commands.store.head().await {
                    self.settle(head).await;
                }
                Err(ApiError::from(e).in_lang(lang))
            }
        }
    }

    /// Resolves a bearer token to the principal it acts as.
    pub async fn principal_for_token(&self, token: &str) -> Result<Option<(Principal, Uuid)>, ApiError> {
        let Some(rec) = self.secrets.find_token(token, chrono::Utc::now()).await? else { return Ok(None) };
        let api_token = (rec.kind == "api").then_some(rec.token_id);
        Ok(accounts::principal_for(&self.pool, rec.user_id, api_token).await?.map(|p| (p, rec.token_id)))
    }
}

/// What every request carries besides its body: entry point, idempotency
/// key, hint language, and the authenticated caller if any.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub source: Source,
    pub idempotency_key: Option<String>,
    pub lang: Lang,
    pub caller: Option<(Principal, Uuid)>,
    pub ip: Option<IpAddr>,
}

impl RequestMeta {
    /// Reads the headers (`X-OpsPilot-Source`, `Idempotency-Key`, `Accept-Language`,
    /// `Authorization: Bearer`).
    pub async fn from_headers(state: &AppState, headers: &HeaderMap, ip: Option<IpAddr>) -> Result<RequestMeta, ApiError> {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let lang = Lang::from_accept_language(h("accept-language").as_deref());
        let source = match h("x-opspilot-source") {
            Some(s) => Source::parse(&s).filter(|s| *s != Source::SystemScheduler).ok_or_else(|| {
                ApiError::new(ErrorCode::ValidationError, format!("X-OpsPilot-Source {s:?} is not an entry point")).in_lang(lang)
            })?,
            None => Source::ApiDirect,
        };
        let caller = match h("authorization") {
            Some(v) => {
                let token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or("").trim().to_string();
                match state.principal_for_token(&token).await? {
                    Some(c) => Some(c),
                    None => return Err(ApiError::new(ErrorCode::Unauthenticated, "token unknown, expired or revoked").in_lang(lang)),
                }
            }
            None => None,
        };
        Ok(RequestMeta { source, idempotency_key: h("idempotency-key"), lang, caller, ip })
    }

    /// The caller, or `unauthenticated`.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.caller.as_ref().map(|(p, _)| p).ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no bearer token").in_lang(self.lang))
    }

    /// A command context for the caller.
    pub fn command_context(&self) -> Result<CommandContext, ApiError> {
        Ok(CommandContext::user(self.principal()?.clone(), self.source).with_idempotency_key(self.idempotency_key.clone()))
    }
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        RequestMeta::from_headers(state, &parts.headers, ip).await
    }
}
