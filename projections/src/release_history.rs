//! Every applied release of a service on a target, in log order: what a
//! rollback re-applies is the last one applied before the release it rolls back.

use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_eventstore::{RecordedEvent, StoreError};
use uuid::Uuid;

use crate::runner::Projection;

/// The release_history projection.
pub const PROJECTION: Projection = Projection { name: "release_history", tables: &["release_history"], apply: |tx, e| apply(tx, e).boxed() };

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    if e.action != "release.applied" {
        return Ok(());
    }
    let id = |k: &str| e.detail.get(k).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
    let (Some(release_id), Some(service_id), Some(target_id)) = (id("release_id"), id("service_id"), id("target_id")) else { return Ok(()) };
    tx.execute(
        "INSERT INTO release_history (release_id, service_id, target_id, applied_position) VALUES ($1, $2, $3, $4)
         ON CONFLICT (release_id) DO UPDATE SET applied_position = EXCLUDED.applied_position",
        &[&release_id, &service_id, &target_id, &e.position],
    )
    .await?;
    Ok(())
}

/// The release of the same service and target applied last before `release_id`
/// was (or before now, if it never was).
pub async fn previous_applied(pool: &Pool, service_id: Uuid, target_id: Uuid, release_id: Uuid) -> Result<Option<Uuid>, StoreError> {
    let c = pool.get().await?;
    let row = c
        .query_opt(
            "SELECT release_id FROM release_history
             WHERE service_id = $1 AND target_id = $2 AND release_id <> $3
               AND applied_position < coalesce((SELECT applied_position FROM release_history WHERE release_id = $3), 9223372036854775807)
             ORDER BY applied_position DESC LIMIT 1",
            &[&service_id, &target_id, &release_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
