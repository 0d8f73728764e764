//! Delivery metrics from the event log: release frequency, lead time
//! (first preview → applied), change failure rate and time to restore, per
//! project and env, bucketed by hour, day or week.
//!
//! Definitions (the console's Home charts say the same):
//! - a deployment is a release that reached `release.applied`;
//! - a change failure is a release whose apply ran (`release.applying` of an
//!   apply) and failed, or one that was applied and later rolled back; a
//!   release whose approval expired or was cancelled never ran and counts
//!   for nothing;
//! - the change failure rate of a bucket is its failures over the releases
//!   that finished in it (applied or failed);
//! - a failure is restored when the same service on the same target and env
//!   runs a good release again: a later release applied, or its rollback
//!   completed. Time to restore runs from the failure (the failed apply, or
//!   the rollback request) to that moment.

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::rbac::Permission;
use opspilot_domain::release::{Operation, ReleaseEvent};
use opspilot_domain::{DomainError, DomainEvent, ErrorCode, Principal};
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use uuid::Uuid;

use crate::runner::Projection;
use crate::ReadError;

/// The delivery projection.
pub const PROJECTION: Projection = Projection { name: "delivery", tables: &["delivery_releases"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    if e.domain != "release" {
        return Ok(());
    }
    let Ok(event) = ReleaseEvent::from_parts(&e.action, &e.detail) else { return Ok(()) };
    let at = e.occurred_at;
    let set = |column: &'static str, only_first: bool| {
        let value = if only_first { format!("coalesce({column}, $2)") } else { "$2".to_string() };
        format!("UPDATE delivery_releases SET {column} = {value} WHERE release_id = $1")
    };
    match &event {
        ReleaseEvent::DraftCreated { release, project_id, .. } | ReleaseEvent::Previewed { release, project_id, .. } => {
            let previewed = matches!(event, ReleaseEvent::Previewed { .. }).then_some(at);
            tx.execute(
                "INSERT INTO delivery_releases (release_id, project_id, env, service_id, target_id, first_previewed_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (release_id) DO UPDATE SET first_previewed_at = coalesce(delivery_releases.first_previewed_at, EXCLUDED.first_previewed_at)",
                &[&release.release_id, project_id, &release.env, &release.service_id, &release.target_id, &previewed],
            )
            .await?;
        }
        ReleaseEvent::Applying { release, operation: Operation::Apply, .. } => {
            tx.execute(&set("applying_at", false), &[&release.release_id, &at]).await?;
        }
        ReleaseEvent::Applied { release, .. } => {
            tx.execute(&set("applied_at", true), &[&release.release_id, &at]).await?;
            restore(tx, &release.service_id, &release.target_id, &release.env, at).await?;
        }
        ReleaseEvent::Failed { release, .. } => {
            // Only an apply that ran fails a change.
            tx.execute("UPDATE delivery_releases SET failed_at = $2 WHERE release_id = $1 AND applying_at IS NOT NULL AND applied_at IS NULL", &[&release.release_id, &at]).await?;
        }
        ReleaseEvent::RollbackRequested { release, .. } => {
            tx.execute(&set("rollback_requested_at", true), &[&release.release_id, &at]).await?;
        }
        ReleaseEvent::RollbackCompleted { release, .. } => {
            tx.execute(&set("rolled_back_at", true), &[&release.release_id, &at]).await?;
            restore(tx, &release.service_id, &release.target_id, &release.env, at).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The service on its target runs a good release again: every failure of it
/// not yet restored is restored now.
async fn restore(tx: &Transaction<'_>, service_id: &Uuid, target_id: &Uuid, env: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE delivery_releases SET restored_at = $4
         WHERE service_id = $1 AND target_id = $2 AND env = $3 AND restored_at IS NULL
           AND (failed_at IS NOT NULL OR rollback_requested_at IS NOT NULL)",
        &[service_id, target_id, &env, &at],
    )
    .await?;
    Ok(())
}

/// How wide one bucket of the series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    Week,
}

impl Bucket {
    /// `hour`, `day` or `week`.
    pub fn parse(s: &str) -> Result<Bucket, DomainError> {
        match s {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            other => Err(DomainError::new(ErrorCode::ValidationError, format!("bucket: {other:?} is not one of hour, day, week"))),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }
    fn width(self) -> Duration {
        match self {
            Bucket::Hour => Duration::hours(1),
            Bucket::Day => Duration::days(1),
            Bucket::Week => Duration::weeks(1),
        }
    }
}

/// At most this many buckets in one answer.
pub const MAX_BUCKETS: i64 = 1000;

/// What the delivery charts ask for.
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub project_id: Option<Uuid>,
    pub env: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Bucket,
}

/// The four measures over one span of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "DeliveryBucket"))]
pub struct DeliveryBucket {
    pub start: DateTime<Utc>,
    /// Releases applied.
    pub deployments: i64,
    /// Releases that finished (applied or failed).
    pub finished: i64,
    /// Finished releases that failed or were rolled back.
    pub failures: i64,
    /// `failures / finished`, none when nothing finished.
    pub change_failure_rate: Option<f64>,
    /// Median seconds from a release's first preview to its apply.
    pub lead_time_p50_seconds: Option<f64>,
    pub lead_time_avg_seconds: Option<f64>,
    /// Failures of the bucket restored so far.
    pub restored: i64,
    /// Median seconds from a failure to its restore.
    pub time_to_restore_p50_seconds: Option<f64>,
    pub time_to_restore_avg_seconds: Option<f64>,
}

/// The series and its totals.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "DeliveryMetrics"))]
pub struct DeliveryMetrics {
    pub project_id: Option<Uuid>,
    pub env: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: String,
    pub totals: DeliveryBucket,
    pub buckets: Vec<DeliveryBucket>,
}

/// The measures of the releases `p` may read.
pub async fn metrics(pool: &Pool, p: &Principal, q: &DeliveryQuery) -> Result<DeliveryMetrics, ReadError> {
    p.require(Permission::DeployReleaseRead)?;
    if let Some(project) = q.project_id {
        p.require_project(project)?;
    }
    if q.to <= q.from {
        return Err(DomainError::new(ErrorCode::ValidationError, "to: must be after from").into());
    }
    let count = (q.to - q.from).num_seconds() / q.bucket.width().num_seconds() + 1;
    if count > MAX_BUCKETS {
        return Err(DomainError::new(ErrorCode::ValidationError, format!("bucket: {count} {}s between from and to, at most {MAX_BUCKETS}; choose a wider bucket", q.bucket.as_str())).into());
    }
    let c = pool.get().await?;
    let projects: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let unit = q.bucket.as_str();
    // Buckets are cut in UTC.
    let series = format!(
        "(SELECT s AT TIME ZONE 'UTC', (s + interval '1 {unit}') AT TIME ZONE 'UTC'
          FROM generate_series(date_trunc('{unit}', $5::timestamptz AT TIME ZONE 'UTC'), $6::timestamptz AT TIME ZONE 'UTC' - interval '1 microsecond', interval '1 {unit}') s)"
    );
    let rows = c.query(&measures_sql(&series), &[&p.is_admin(), &projects, &q.project_id, &q.env, &q.from, &q.to]).await?;
    let buckets: Vec<DeliveryBucket> = rows.iter().map(bucket_of).collect();
    // The totals are the same measures over one bucket spanning [from, to).
    let totals = c.query_one(&measures_sql("(SELECT $5::timestamptz, $6::timestamptz)"), &[&p.is_admin(), &projects, &q.project_id, &q.env, &q.from, &q.to]).await?;
    Ok(DeliveryMetrics {
        project_id: q.project_id,
        env: q.env.clone(),
        from: q.from,
        to: q.to,
        bucket: q.bucket.as_str().to_string(),
        totals: bucket_of(&totals),
        buckets,
    })
}

/// The measures of every bucket `[b.start, b.stop)` of `series`, each release
/// placed by the moment that counts for the measure: its apply (deployments,
/// lead time), its outcome (failure rate), its failure (time to restore).
/// Parameters: $1 admin, $2 visible projects, $3 project, $4 env, $5 from, $6 to.
fn measures_sql(series: &str) -> String {
    let within = |moment: &str| format!("{moment} >= b.start AND {moment} < b.stop AND {moment} >= $5 AND {moment} < $6");
    let applied = within("applied_at");
    let outcome = within("coalesce(applied_at, failed_at)");
    let failure = within("coalesce(failed_at, rollback_requested_at)");
    let lead = "extract(epoch FROM applied_at - first_previewed_at)";
    let restore = "extract(epoch FROM restored_at - coalesce(failed_at, rollback_requested_at))";
    format!(
        "WITH r AS (
            SELECT * FROM delivery_releases
            WHERE ($1 OR project_id = ANY($2)) AND ($3::uuid IS NULL OR project_id = $3) AND ($4::text IS NULL OR env = $4)
         )
         SELECT b.start,
            (SELECT count(*) FROM r WHERE {applied}),
            (SELECT count(*) FROM r WHERE {outcome}),
            (SELECT count(*) FROM r WHERE {outcome} AND (failed_at IS NOT NULL OR rollback_requested_at IS NOT NULL)),
            (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {lead})::float8 FROM r WHERE {applied}),
            (SELECT avg({lead})::float8 FROM r WHERE {applied}),
            (SELECT count(*) FROM r WHERE restored_at IS NOT NULL AND {failure}),
            (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {restore})::float8 FROM r WHERE restored_at IS NOT NULL AND {failure}),
            (SELECT avg({restore})::float8 FROM r WHERE restored_at IS NOT NULL AND {failure})
         FROM {series} AS b(start, stop) ORDER BY b.start"
    )
}

fn bucket_of(r: &tokio_postgres::Row) -> DeliveryBucket {
    let finished: i64 = r.get(2);
    let failures: i64 = r.get(3);
    DeliveryBucket {
        start: r.get(0),
        deployments: r.get(1),
        finished,
        failures,
        change_failure_rate: (finished > 0).then(|| failures as f64 / finished as f64),
        lead_time_p50_seconds: r.get(4),
        lead_time_avg_seconds: r.get(5),
        restored: r.get(6),
        time_to_restore_p50_seconds: r.get(7),
        time_to_restore_avg_seconds: r.get(8),
    }
}
