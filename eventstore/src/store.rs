//! Appending to and reading from the log.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use opspilot_domain::{ActorType, EventScope, EventStatus, Severity, Source};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::StoreError;

/// The NOTIFY channel that wakes readers. Only a hint: readers re-read by checkpoint.
pub const NOTIFY_CHANNEL: &str = "opspilot_events";

/// What the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the version (for streams of independent facts).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version.
    Exact(i64),
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub action: String,
    pub schema_version: i32,
    pub scope: EventScope,
    pub status: EventStatus,
    pub severity: Severity,
    pub detail: Value,
}

/// One stream's part of an append ([`EventStore::append_streams`]).
#[derive(Debug, Clone, Copy)]
pub struct StreamAppend<'a> {
    pub stream_id: &'a str,
    pub expected: ExpectedVersion,
    pub events: &'a [NewEvent],
}

/// Who, from where, when and why — shared by the events of one append.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub actor_id: String,
    pub actor_type: ActorType,
    pub source: Source,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

/// The idempotency record written with an append.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// Already scoped by the caller (e.g. `<actor>:<key>`).
    pub key: String,
    pub command: String,
    pub result: Value,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// The events were appended; positions are inclusive.
    Appended { first_position: i64, last_position: i64, stream_version: i64 },
    /// The idempotency key was handled before: its first result, nothing appended.
    AlreadyHandled { result: Value, position: i64 },
}

impl AppendOutcome {
    /// The log position a reader must reach to see this command's effect.
    pub fn position(&self) -> i64 {
        match self {
            AppendOutcome::Appended { last_position, .. } => *last_position,
            AppendOutcome::AlreadyHandled { position, .. } => *position,
        }
    }
}

/// An event as read back: the SPEC §4 envelope plus stream, version, position,
/// correlation, causation and schema version. Old schema versions are upcast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub domain: String,
    pub action: String,
    pub schema_version: i32,
    pub resource_type: String,
    pub resource_id: String,
    pub environment_id: Option<String>,
    pub project_id: Option<String>,
    pub team_id: Option<String>,
    pub actor_id: String,
    pub actor_type: String,
    pub source: String,
    pub status: String,
    pub severity: String,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub detail: Value,
    pub hash: String,
}

const COLUMNS: &str = "position, event_id, stream_id, stream_version, domain, action, schema_version, resource_type, \
     resource_id, environment_id, project_id, team_id, actor_id, actor_type, source, status, severity, occurred_at, \
     correlation_id, causation_id, detail, prev_hash, hash";

/// A stored row before upcasting, as the hash chain sees it.
struct RawRow {
    event: RecordedEvent,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

fn raw_row(row: &Row) -> RawRow {
    let hash: Vec<u8> = row.get("hash");
    RawRow {
        event: RecordedEvent {
            position: row.get("position"),
            event_id: row.get("event_id"),
            stream_id: row.get("stream_id"),
            stream_version: row.get("stream_version"),
            domain: row.get("domain"),
            action: row.get("action"),
            schema_version: row.get("schema_version"),
            resource_type: row.get("resource_type"),
            resource_id: row.get("resource_id"),
            environment_id: row.get("environment_id"),
            project_id: row.get("project_id"),
            team_id: row.get("team_id"),
            actor_id: row.get("actor_id"),
            actor_type: row.get("actor_type"),
            source: row.get("source"),
            status: row.get("status"),
            severity: row.get("severity"),
            occurred_at: row.get("occurred_at"),
            correlation_id: row.get("correlation_id"),
            causation_id: row.get("causation_id"),
            detail: row.get("detail"),
            hash: hex::encode(&hash),
        },
        prev_hash: row.get("prev_hash"),
        hash,
    }
}

/// The stored form of `ev` at `position`, before its hash is known.
fn recorded(position: i64, stream_id: &str, stream_version: i64, ev: &NewEvent, meta: &EventMeta, occurred_at: DateTime<Utc>) -> RecordedEvent {
    RecordedEvent {
        position,
        event_id: ev.event_id,
        stream_id: stream_id.to_string(),
        stream_version,
        domain: ev.action.split('.').next().unwrap_or_default().to_string(),
        action: ev.action.clone(),
        schema_version: ev.schema_version,
        resource_type: ev.scope.resource_type.clone(),
        resource_id: ev.scope.resource_id.clone(),
        environment_id: ev.scope.environment_id.clone(),
        project_id: ev.scope.project_id.clone(),
        team_id: ev.scope.team_id.clone(),
        actor_id: meta.actor_id.clone(),
        actor_type: meta.actor_type.as_str().to_string(),
        source: meta.source.as_str().to_string(),
        status: ev.status.as_str().to_string(),
        severity: ev.severity.as_str().to_string(),
        occurred_at,
        correlation_id: meta.correlation_id,
        causation_id: meta.causation_id,
        detail: ev.detail.clone(),
        hash: String::new(),
    }
}

fn upcast(mut e: RecordedEvent) -> RecordedEvent {
    let (v, d) = opspilot_domain::upcast::upcast(&e.action, e.schema_version, std::mem::take(&mut e.detail));
    e.schema_version = v;
    e.detail = d;
    e
}

/// The chain link: sha256 over the previous hash and a canonical JSON of every
/// stored field. Timestamps are hashed at the microsecond precision stored.
pub(crate) fn chain_hash(prev: &[u8], e: &RecordedEvent) -> Vec<u8> {
    let canonical = json!([
        e.position, e.event_id, e.stream_id, e.stream_version, e.domain, e.action, e.schema_version,
        e.resource_type, e.resource_id, e.environment_id, e.project_id, e.team_id, e.actor_id, e.actor_type,
        e.source, e.status, e.severity, e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        e.correlation_id, e.causation_id, e.detail,
    ]);
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.to_string().as_bytes());
    h.finalize().to_vec()
}

/// Truncates to what `timestamptz` stores, so the hash survives a round trip.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).expect("timestamp in range")
}

/// Result of `audit verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    pub checked: i64,
    pub head_position: i64,
    /// The first problem found, if any: position and what is wrong.
    pub broken_at: Option<(i64, String)>,
}

/// The event store.
#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
}

impl EventStore {
    /// Wraps a pool whose database has been migrated.
    pub fn new(pool: Pool) -> Self {
        EventStore { pool }
    }

    /// The pool, for adapters that keep tables beside the log.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Appends `events` to `stream_id` atomically if the stream is at `expected`.
    /// With an idempotency record, a key seen before returns its first result
    /// and appends nothing.
    pub async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        meta: &EventMeta,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_with_secrets(stream_id, expected, events, meta, idempotency, &[]).await
    }

    /// Like [`EventStore::append`], storing `secrets` in the same transaction:
    /// the secrets are kept only if the events are.
    pub async fn append_with_secrets(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        meta: &EventMeta,
        idempotency: Option<&IdempotencyRecord>,
        secrets: &[crate::vault::SealedSecret],
    ) -> Result<AppendOutcome, StoreError> {
        self.append_streams(&[StreamAppend { stream_id, expected, events }], meta, idempotency, secrets).await
    }

    /// Appends to several streams in one transaction: every stream's expected
    /// version is checked, then all events (in the order given) and `secrets`
    /// are stored together or not at all. The outcome's `stream_version` is
    /// the last stream's.
    pub async fn append_streams(
        &self,
        appends: &[StreamAppend<'_>],
        meta: &EventMeta,
        idempotency: Option<&IdempotencyRecord>,
        secrets: &[crate::vault::SealedSecret],
    ) -> Result<AppendOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The head row lock serializes appends: positions are gapless and commit in order.
        let head = tx.query_one("SELECT position, hash FROM event_log_head WHERE id FOR UPDATE", &[]).await?;
        let mut position: i64 = head.get(0);
        let mut prev_hash: Vec<u8> = head.get(1);

        if let Some(idem) = idempotency {
            if let Some(row) = tx.query_opt("SELECT result, position FROM idempotency_keys WHERE key = $1", &[&idem.key]).await? {
                return Ok(AppendOutcome::AlreadyHandled { result: row.get(0), position: row.get(1) });
            }
        }

        let mut currents = Vec::with_capacity(appends.len());
        for a in appends {
            let current: i64 = tx
                .query_one("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", &[&a.stream_id])
                .await?
                .get(0);
            let ok = match a.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current == 0,
                ExpectedVersion::Exact(v) => current == v,
            };
            if !ok {
                return Err(StoreError::Conflict { stream_id: a.stream_id.to_string(), expected: a.expected, actual: current });
            }
            currents.push(current);
        }
        let last_version = currents.last().copied().unwrap_or(0);
        if appends.iter().all(|a| a.events.is_empty()) {
            return Ok(AppendOutcome::Appended { first_position: position, last_position: position, stream_version: last_version });
        }

        let occurred_at = to_micros(meta.occurred_at);
        let first_position = position + 1;
        let mut rows: Vec<(RecordedEvent, Vec<u8>, Vec<u8>)> = Vec::new();
        for (a, current) in appends.iter().zip(&currents) {
            for (i, ev) in a.events.iter().enumerate() {
                position += 1;
                let e = recorded(position, a.stream_id, current + 1 + i as i64, ev, meta, occurred_at);
                let hash = chain_hash(&prev_hash, &e);
                rows.push((e, std::mem::replace(&mut prev_hash, hash.clone()), hash));
            }
        }
        insert_rows(&tx, &rows).await?;
        for secret in secrets {
            secret.insert(&tx).await?;
        }
        tx.execute("UPDATE event_log_head SET position = $1, hash = $2 WHERE id", &[&position, &prev_hash]).await?;
        if let Some(idem) = idempotency {
            tx.execute(
                "INSERT INTO idempotency_keys (key, command, result, position) VALUES ($1, $2, $3, $4)",
                &[&idem.key, &idem.command, &idem.result, &position],
            )
            .await?;
        }
        tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &position.to_string()]).await?;
        tx.commit().await?;
        let stream_version = last_version + appends.last().map_or(0, |a| a.events.len() as i64);
        Ok(AppendOutcome::Appended { first_position, last_position: position, stream_version })
    }

    /// All events of a stream, in order, upcast.
    pub async fn read_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version");
        let rows = client.query(&sql, &[&stream_id]).await?;
        Ok(rows.iter().map(|r| upcast(raw_row(r).event)).collect())
    }

    /// Up to `limit` events after `position`, in log order, upcast.
    pub async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        read_all_with(&**client, after, limit).await
    }

    /// The position of the last appended event.
    pub async fn head(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.query_one("SELECT position FROM event_log_head WHERE id", &[]).await?.get(0))
    }

    /// The first result of an idempotency key, if it was handled.
    pub async fn idempotent_result(&self, key: &str) -> Result<Option<(Value, i64)>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("SELECT result, position FROM idempotency_keys WHERE key = $1", &[&key])
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    /// Walks the whole log and checks positions, links and hashes, and that
    /// the head matches the last row (a deleted tail is detected too).
    pub async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        let client = self.pool.get().await?;
        let head = client.query_one("SELECT position, hash FROM event_log_head WHERE id", &[]).await?;
        let head_position: i64 = head.get(0);
        let head_hash: Vec<u8> = head.get(1);
        let mut prev = vec![0u8; 32];
        let mut expected_position = 1i64;
        let mut checked = 0i64;
        let sql = format!("SELECT {COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT 5000");
        loop {
            let rows = client.query(&sql, &[&expected_position]).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let raw = raw_row(row);
                let p = raw.event.position;
                let broken = |why: String| Ok(ChainReport { checked, head_position, broken_at: Some((p, why)) });
                if p != expected_position {
                    let why = format!("position {expected_position} is missing (next row is {p})");
                    return Ok(ChainReport { checked, head_position, broken_at: Some((expected_position, why)) });
                }
                if raw.prev_hash != prev {
                    return broken("link to the previous event is broken (a row before it was changed or removed)".into());
                }
                if chain_hash(&prev, &raw.event) != raw.hash {
                    return broken("row content does not match its hash (the row was edited)".into());
                }
                prev = raw.hash;
                expected_position += 1;
                checked += 1;
            }
        }
        let last = expected_position - 1;
        if last != head_position || (checked > 0 && prev != head_hash) {
            return Ok(ChainReport {
                checked,
                head_position,
                broken_at: Some((last + 1, format!("the log ends at {last} but its head says {head_position}: events were removed"))),
            });
        }
        Ok(ChainReport { checked, head_position, broken_at: None })
    }
}

/// Reads a page of the log on a given connection or transaction (used by the
/// projection runner inside its own transaction).
pub async fn read_all_with(
    client: &impl tokio_postgres::GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2");
    let rows = client.query(&sql, &[&after, &limit]).await?;
    Ok(rows.iter().map(|r| upcast(raw_row(r).event)).collect())
}

async fn insert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[(RecordedEvent, Vec<u8>, Vec<u8>)],
) -> Result<(), StoreError> {
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    let position = col!(|r| r.0.position);
    let event_id = col!(|r| r.0.event_id);
    let stream_id = col!(|r| r.0.stream_id.clone());
    let stream_version = col!(|r| r.0.stream_version);
    let domain = col!(|r| r.0.domain.clone());
    let action = col!(|r| r.0.action.clone());
    let schema_version = col!(|r| r.0.schema_version);
    let resource_type = col!(|r| r.0.resource_type.clone());
    let resource_id = col!(|r| r.0.resource_id.clone());
    let environment_id = col!(|r| r.0.environment_id.clone());
    let project_id = col!(|r| r.0.project_id.clone());
    let team_id = col!(|r| r.0.team_id.clone());
    let actor_id = col!(|r| r.0.actor_id.clone());
    let actor_type = col!(|r| r.0.actor_type.clone());
    let source = col!(|r| r.0.source.clone());
    let status = col!(|r| r.0.status.clone());
    let severity = col!(|r| r.0.severity.clone());
    let occurred_at = col!(|r| r.0.occurred_at);
    let correlation_id = col!(|r| r.0.correlation_id);
    let causation_id = col!(|r| r.0.causation_id);
    let detail = col!(|r| r.0.detail.clone());
    let prev_hash = col!(|r| r.1.clone());
    let hash = col!(|r| r.2.clone());
    let sql = format!(
        "INSERT INTO events ({COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], \
         $5::text[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
         $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::uuid[], $20::uuid[], $21::jsonb[], \
         $22::bytea[], $23::bytea[])"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(
        &stmt,
        &[
            &position, &event_id, &stream_id, &stream_version, &domain, &action, &schema_version, &resource_type,
            &resource_id, &environment_id, &project_id, &team_id, &actor_id, &actor_type, &source, &status, &severity,
            &occurred_at, &correlation_id, &causation_id, &detail, &prev_hash, &hash,
        ],
    )
    .await?;
    Ok(())
}
