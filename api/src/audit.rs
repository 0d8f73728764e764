//! The audit explorer: the log's envelopes, scoped to the caller and
//! filtered, as pages and live — REST and GraphQL.

use opspilot_domain::rbac::Permission;
use async_graphql::{Context, InputObject, Object, Subscription};
use axum::extract::State;
use crate::edge::Query;
use axum::routing::get;
use axum::Router;
use futures::stream::{BoxStream, StreamExt};
use opspilot_projections::audit_log::{self, AuditFilter};
use opspilot_projections::PageRequest;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::edge::{gql, ok, principal, refused, state, ApiResult, AppState, GqlResult, RequestMeta};
use crate::page_type;

pub use opspilot_projections::audit_log::AuditEntry;

page_type!(AuditPage, AuditEntry);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/audit/events", get(audit_events)).route("/audit/verify", get(audit_verify))
}

/// Filters of the audit explorer; every field optional. REST takes them as
/// query parameters, GraphQL as `filter`.
#[derive(Deserialize, InputObject, Default)]
pub struct AuditFilterInput {
    pub domain: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor_id: Option<String>,
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub after_position: Option<i64>,
}

impl From<AuditFilterInput> for AuditFilter {
    fn from(f: AuditFilterInput) -> Self {
        AuditFilter {
            domain: f.domain,
            action: f.action,
            resource_type: f.resource_type,
            resource_id: f.resource_id,
            actor_id: f.actor_id,
            project_id: f.project_id,
            status: f.status,
            after_position: f.after_position,
        }
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(flatten)]
    filter: AuditFilterInput,
    order: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn audit_events(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<AuditQuery>) -> ApiResult {
    let ascending = q.order.as_deref() == Some("asc");
    let page = PageRequest::new(q.page, q.page_size);
    Ok(ok(audit_log::list(&s.pool, meta.principal()?, &q.filter.into(), ascending, page).await?))
}

/// What walking the hash chain found (the console's "verify the chain").
#[derive(serde::Serialize, async_graphql::SimpleObject)]
pub struct ChainCheck {
    pub checked: i64,
    pub head_position: i64,
    pub intact: bool,
    /// The first broken position and what is wrong there.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
}

async fn verify_chain(s: &AppState, p: &opspilot_domain::Principal) -> Result<ChainCheck, crate::error::ApiError> {
    p.require(Permission::AuditRead)?;
    let r = s.commands.store.verify_chain().await?;
    Ok(ChainCheck { checked: r.checked, head_position: r.head_position, intact: r.broken_at.is_none(), broken_at: r.broken_at.as_ref().map(|b| b.0), problem: r.broken_at.map(|b| b.1) })
}

async fn audit_verify(State(s): State<AppState>, meta: RequestMeta) -> ApiResult {
    Ok(ok(verify_chain(&s, meta.principal()?).await.map_err(|e| e.in_lang(meta.lang))?))
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQueryRoot;

#[Object]
impl AuditQueryRoot {
    /// The audit log, scoped to the caller, newest first unless `ascending`.
    async fn audit_events(&self, ctx: &Context<'_>, filter: Option<AuditFilterInput>, ascending: Option<bool>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<AuditPage> {
        let f: AuditFilter = filter.unwrap_or_default().into();
        let page = PageRequest::new(page, page_size);
        Ok(audit_log::list(&state(ctx).pool, principal(ctx)?, &f, ascending.unwrap_or(false), page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// Walks the whole log and checks positions, links and hashes.
    async fn audit_verify_chain(&self, ctx: &Context<'_>) -> GqlResult<ChainCheck> {
        verify_chain(state(ctx), principal(ctx)?).await.map_err(|e| gql(e, ctx))
    }
}

/// Live audit entries.
#[derive(Default)]
pub struct AuditSubscription;

#[Subscription]
impl AuditSubscription {
    /// Events as the read models apply them, scoped to the caller and filtered.
    async fn audit_events(&self, ctx: &Context<'_>, filter: Option<AuditFilterInput>) -> BoxStream<'static, GqlResult<AuditEntry>> {
        let p = match principal(ctx).and_then(|p| p.require(Permission::AuditRead).map(|_| p.clone()).map_err(|e| gql(e, ctx))) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let f: AuditFilter = filter.unwrap_or_default().into();
        BroadcastStream::new(state(ctx).runner.applied.subscribe())
            .filter_map(move |item| {
                let out = item.ok().map(|e| AuditEntry::from_event(&e)).filter(|row| audit_log::visible_to(&p, row.project_id.as_deref(), &row.actor_id) && f.matches(row));
                async move { out.map(Ok) }
            })
            .boxed()
    }
}
