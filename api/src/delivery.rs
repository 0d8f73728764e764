//! Delivery metrics (release frequency, lead time, change failure rate, time
//! to restore) from the `delivery` projection — REST and GraphQL.

use async_graphql::{Context, Object};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use opspilot_domain::{DomainError, ErrorCode};
use opspilot_projections::delivery::{self, Bucket, DeliveryMetrics, DeliveryQuery};
use serde::Deserialize;
use uuid::Uuid;

use crate::edge::{gql, ok, principal, state, ApiResult, AppState, GqlResult, Query, RequestMeta};
use crate::error::ApiError;

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics/delivery", get(delivery_metrics))
}

/// The window asked for; `to` defaults to now, `from` to 30 days before
/// `to`, `bucket` to `day`.
#[derive(Deserialize, Default)]
struct DeliveryParams {
    project_id: Option<String>,
    env: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

fn moment(field: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, DomainError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| DomainError::new(ErrorCode::ValidationError, format!("{field}: {s:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z")))
    })
    .transpose()
}

impl DeliveryParams {
    fn query(&self) -> Result<DeliveryQuery, DomainError> {
        let project_id = self
            .project_id
            .as_deref()
            .map(|s| Uuid::parse_str(s).map_err(|_| DomainError::new(ErrorCode::ValidationError, format!("project_id: {s:?} is not a UUID"))))
            .transpose()?;
        let to = moment("to", self.to.as_deref())?.unwrap_or_else(Utc::now);
        let from = moment("from", self.from.as_deref())?.unwrap_or(to - Duration::days(30));
        let bucket = Bucket::parse(self.bucket.as_deref().unwrap_or("day"))?;
        Ok(DeliveryQuery { project_id, env: self.env.clone().filter(|e| !e.is_empty()), from, to, bucket })
    }
}

async fn delivery_metrics(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<DeliveryParams>) -> ApiResult {
    let query = q.query().map_err(|e| ApiError::from(e).in_lang(meta.lang))?;
    Ok(ok(delivery::metrics(&s.pool, meta.principal()?, &query).await?))
}

/// Delivery queries.
#[derive(Default)]
pub struct DeliveryQueryRoot;

#[Object]
impl DeliveryQueryRoot {
    /// The four delivery measures of the releases the caller may read, per
    /// bucket (`hour`, `day`, `week`; default `day`) of `[from, to)` (default
    /// the last 30 days), optionally one project's and one env's.
    async fn delivery_metrics(&self, ctx: &Context<'_>, project_id: Option<Uuid>, env: Option<String>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, bucket: Option<String>) -> GqlResult<DeliveryMetrics> {
        let params = DeliveryParams {
            project_id: project_id.map(|p| p.to_string()),
            env,
            from: from.map(|d| d.to_rfc3339()),
            to: to.map(|d| d.to_rfc3339()),
            bucket,
        };
        let query = params.query().map_err(|e| gql(e, ctx))?;
        delivery::metrics(&state(ctx).pool, principal(ctx)?, &query).await.map_err(|e| gql(e, ctx))
    }
}
