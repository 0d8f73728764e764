//! The projection runner: for each projection, read the log after its durable
//! checkpoint, apply the events and move the checkpoint in the same
//! transaction. The checkpoint row is locked while a batch is applied, so two
//! runners (two replicas, or a rebuild) never apply the same batch.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use futures::future::BoxFuture;
use opspilot_eventstore::{store::read_all_with, RecordedEvent, StoreError};
use tokio::sync::{broadcast, watch};

/// Applies one event to a projection's tables inside the runner's transaction.
pub type ApplyFn = for<'a> fn(&'a Transaction<'a>, &'a RecordedEvent) -> BoxFuture<'a, Result<(), StoreError>>;

/// A read model: a name, the tables it owns, and how an event changes them.
#[derive(Clone, Copy)]
pub struct Projection {
    pub name: &'static str,
    pub tables: &'static [&'static str],
    pub apply: ApplyFn,
}

const BATCH: i64 = 500;

/// Applies the next batch to every projection in one transaction: the
/// checkpoint rows are locked (in name order, so runners never deadlock),
/// each projection gets the events after its own checkpoint, and all
/// checkpoints move together. Returns the events read.
pub async fn step_all(pool: &Pool, projections: &[Projection]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut ordered: Vec<&Projection> = projections.iter().collect();
    ordered.sort_by_key(|p| p.name);
    let mut checkpoints = Vec::with_capacity(ordered.len());
    for p in &ordered {
        tx.execute("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&p.name]).await?;
        let c: i64 = tx.query_one("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", &[&p.name]).await?.get(0);
        checkpoints.push(c);
    }
    let lowest = checkpoints.iter().copied().min().unwrap_or(0);
    let events = read_all_with(&*tx, lowest, BATCH).await?;
    let Some(last) = events.last().map(|e| e.position) else { return Ok(events) };
    // Apply in the runner's order (the audit log last), each from its own checkpoint.
    for p in projections {
        let idx = ordered.iter().position(|o| o.name == p.name).expect("same set");
        for e in events.iter().filter(|e| e.position > checkpoints[idx]) {
            (p.apply)(&tx, e).await?;
        }
        if last > checkpoints[idx] {
            tx.execute("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1", &[&p.name, &last]).await?;
        }
    }
    tx.commit().await?;
    Ok(events)
}

/// Drops everything a projection owns and replays the whole log into it, in
/// one transaction: readers see the old state until the new one is complete.
/// Returns the number of events replayed.
pub async fn rebuild(pool: &Pool, projection: &Projection) -> Result<i64, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&projection.name]).await?;
    tx.query_one("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", &[&projection.name]).await?;
    for table in projection.tables {
        tx.batch_execute(&format!("TRUNCATE {table}")).await?;
    }
    let mut position = 0i64;
    let mut count = 0i64;
    loop {
        let events = read_all_with(&*tx, position, 2000).await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            (projection.apply)(&tx, e).await?;
        }
        count += events.len() as i64;
        position = events.last().map(|e| e.position).unwrap_or(position);
    }
    tx.execute("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1", &[&projection.name, &position])
        .await?;
    tx.commit().await?;
    Ok(count)
}

/// The lowest checkpoint over `projections` (what every read model has reached).
pub async fn lowest_checkpoint(pool: &Pool, projections: &[Projection]) -> Result<i64, StoreError> {
    let names: Vec<&str> = projections.iter().map(|p| p.name).collect();
    let client = pool.get().await?;
    let rows = client.query("SELECT name, position FROM projection_checkpoints WHERE name = ANY($1)", &[&names]).await?;
    if rows.len() < names.len() {
        return Ok(0);
    }
    Ok(rows.iter().map(|r| r.get::<_, i64>(1)).min().unwrap_or(0))
}

/// A running set of projections.
#[derive(Clone)]
pub struct RunnerHandle {
    /// The lowest checkpoint this runner has seen committed.
    pub reached: watch::Receiver<i64>,
    /// Every event, once the projections have applied it: live updates.
    pub applied: broadcast::Sender<Arc<RecordedEvent>>,
    pool: Pool,
    projections: Arc<Vec<Projection>>,
}

impl RunnerHandle {
    /// Waits until every projection has applied `position` (read-your-writes).
    /// Polls the durable checkpoints too, so it works when another replica runs
    /// the projections. Returns false on timeout.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reached = self.reached.clone();
        loop {
            if *reached.borrow() >= position {
                return true;
            }
            if lowest_checkpoint(&self.pool, &self.projections).await.map(|c| c >= position).unwrap_or(false) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = tokio::time::timeout((deadline - now).min(Duration::from_millis(50)), reached.changed()).await;
        }
    }

    /// The projections this runner keeps.
    pub fn projections(&self) -> &[Projection] {
        &self.projections
    }
}

/// Starts one task that keeps every projection caught up: woken by the
/// NOTIFY hint, and by a poll every `poll` in case a hint was lost.
pub fn spawn(pool: Pool, projections: Vec<Projection>, mut wake: watch::Receiver<i64>, poll: Duration) -> RunnerHandle {
    let (reached_tx, reached) = watch::channel(0i64);
    let (applied, _) = broadcast::channel(4096);
    let handle = RunnerHandle { reached, applied: applied.clone(), pool: pool.clone(), projections: Arc::new(projections) };
    let projections = handle.projections.clone();
    tokio::spawn(async move {
        loop {
            let mut failed = false;
            loop {
                match step_all(&pool, &projections).await {
                    Ok(events) if events.is_empty() => break,
                    Ok(events) => {
                        if let Some(last) = events.last().map(|e| e.position) {
                            // Committed for every projection: reads see it, live updates may go out.
                            reached_tx.send_if_modified(|cur| {
                                let newer = last > *cur;
                                if newer {
                                    *cur = last;
                                }
                                newer
                            });
                        }
                        for e in events {
                            let _ = applied.send(Arc::new(e));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = ?e, "projection step failed; retrying");
                        failed = true;
                        break;
                    }
                }
            }
            if reached_tx.is_closed() {
                return;
            }
            let pause = if failed { Duration::from_secs(1) } else { poll };
            if let Ok(Err(_)) = tokio::time::timeout(pause, wake.changed()).await {
                // The wake-up hint is gone; keep polling.
                tokio::time::sleep(pause).await;
            }
        }
    });
    handle
}

/// Every durable checkpoint by name: the projections' and the followers'.
pub async fn checkpoints(pool: &Pool) -> Result<Vec<(String, i64)>, StoreError> {
    let c = pool.get().await?;
    let rows = c.query("SELECT name, position FROM projection_checkpoints ORDER BY name", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
