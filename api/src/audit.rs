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
    Router::new().route("/audit/events", get(audit_events))
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
