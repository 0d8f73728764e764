//! Cluster certificates: what OpsPilot holds or placed for each cluster, with
//! expiry, and the fleet-wide view of what expires soon — REST and GraphQL.

use async_graphql::{Context, Object};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use opspilot_domain::{DomainError, ErrorCode};
use opspilot_projections::cluster_certs::{self, CertificateView, MAX_WITHIN_DAYS};
use opspilot_projections::clusters;
use serde::Deserialize;
use serde_json::json;

use crate::edge::{gql, id_of, ok, principal, state, ApiError, ApiResult, AppState, GqlResult, Path, Query, RequestMeta};

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/clusters/{id}/certs", get(cluster_certs)).route("/certs/expiring", get(expiring_certs))
}

/// `?within_days=N` (default 30).
#[derive(Deserialize)]
struct ExpiringParams {
    within_days: Option<String>,
}

fn within_days(v: Option<&str>) -> Result<i64, DomainError> {
    let Some(v) = v else { return Ok(30) };
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|d| (0..=MAX_WITHIN_DAYS).contains(d))
        .ok_or_else(|| DomainError::validation("within_days", format!("{v:?} is not a whole number of days from 0 to {MAX_WITHIN_DAYS}")))
}

async fn cluster_certs(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let p = meta.principal()?;
    let cluster = clusters::get(&s.pool, p, id_of("cluster", &id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ClusterNotFound, format!("cluster {id} does not exist")).in_lang(meta.lang))?;
    let list = cluster_certs::of_cluster(&s.pool, p, cluster.id, Utc::now()).await?;
    Ok(ok(json!({ "cluster_id": cluster.id, "source_type": cluster.source_type, "list": list })))
}

async fn expiring_certs(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<ExpiringParams>) -> ApiResult {
    let days = within_days(q.within_days.as_deref()).map_err(|e| ApiError::from(e).in_lang(meta.lang))?;
    let list = cluster_certs::expiring(&s.pool, meta.principal()?, days, Utc::now()).await?;
    Ok(ok(json!({ "within_days": days, "total": list.len(), "list": list })))
}

/// Certificate queries.
#[derive(Default)]
pub struct CertQuery;

#[Object]
impl CertQuery {
    /// The certificates of one cluster (id or name), soonest expiry first.
    async fn cluster_certificates(&self, ctx: &Context<'_>, id: String) -> GqlResult<Vec<CertificateView>> {
        cluster_certs::of_cluster(&state(ctx).pool, principal(ctx)?, id_of("cluster", &id), Utc::now()).await.map_err(|e| gql(e, ctx))
    }

    /// Certificates of every visible cluster expiring within `withinDays`
    /// (default 30, at most 3650; expired ones included), soonest first.
    async fn expiring_certificates(&self, ctx: &Context<'_>, within_days: Option<i64>) -> GqlResult<Vec<CertificateView>> {
        let days = self::within_days(within_days.map(|d| d.to_string()).as_deref()).map_err(|e| gql(e, ctx))?;
        cluster_certs::expiring(&state(ctx).pool, principal(ctx)?, days, Utc::now()).await.map_err(|e| gql(e, ctx))
    }
}
