//! The event store against a real PostgreSQL: atomic appends, version
//! conflicts, idempotency, a follower that never skips, tamper detection,
//! upcasting and projection rebuilds.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use opspilot_domain::{ActorType, EventScope, EventStatus, Severity, Source};
use opspilot_eventstore::{AppendOutcome, EventMeta, EventStore, ExpectedVersion, IdempotencyRecord, NewEvent, StoreError, StreamAppend};
use opspilot_tests::{spawn_app, TestDb};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

fn meta() -> EventMeta {
    EventMeta {
        actor_id: "tester".into(),
        actor_type: ActorType::User,
        source: Source::ApiDirect,
        occurred_at: Utc::now(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

fn event(action: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        action: action.into(),
        schema_version: 1,
        scope: EventScope::resource("thing", n),
        status: EventStatus::Success,
        severity: Severity::Info,
        detail: json!({ "n": n, "text": "héllo \"quoted\"", "nested": { "b": 2, "a": [1.5, null, true] } }),
    }
}

async fn store(db: &TestDb) -> EventStore {
    EventStore::new(opspilot_eventstore::pool(&db.url, 16).unwrap())
}

#[tokio::test]
async fn appends_are_atomic_and_versioned_and_a_stale_writer_gets_a_conflict() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let out = s.append("thing-1", ExpectedVersion::NoStream, &[event("thing.made", 1), event("thing.changed", 2)], &meta(), None).await.unwrap();
    assert_eq!(out, AppendOutcome::Appended { first_position: 1, last_position: 2, stream_version: 2 });

    // A writer that still believes the stream is new is refused and appends nothing.
    let err = s.append("thing-1", ExpectedVersion::NoStream, &[event("thing.made", 3)], &meta(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: 2, .. }), "{err:?}");
    let err = s.append("thing-1", ExpectedVersion::Exact(1), &[event("thing.changed", 3)], &meta(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert_eq!(s.head().await.unwrap(), 2);

    let read = s.read_stream("thing-1").await.unwrap();
    assert_eq!(read.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(read[0].domain, "thing");
    assert_eq!(read[0].detail["nested"]["a"][0], 1.5);
}

#[tokio::test]
async fn an_append_to_several_streams_keeps_all_or_none_of_them() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    s.append("thing-2", ExpectedVersion::NoStream, &[event("thing.made", 1)], &meta(), None).await.unwrap();
    // The second stream is stale: the first one is not created either.
    let a = [event("thing.made", 2)];
    let b = [event("thing.changed", 3)];
    let stale = [StreamAppend { stream_id: "thing-1", expected: ExpectedVersion::NoStream, events: &a }, StreamAppend { stream_id: "thing-2", expected: ExpectedVersion::NoStream, events: &b }];
    let err = s.append_streams(&stale, &meta(), None, &[]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict { stream_id, .. } if stream_id == "thing-2"), "{err:?}");
    assert_eq!(s.head().await.unwrap(), 1);
    assert!(s.read_stream("thing-1").await.unwrap().is_empty());

    let fresh = [StreamAppend { stream_id: "thing-1", expected: ExpectedVersion::NoStream, events: &a }, StreamAppend { stream_id: "thing-2", expected: ExpectedVersion::Exact(1), events: &b }];
    let out = s.append_streams(&fresh, &meta(), None, &[]).await.unwrap();
    assert_eq!(out, AppendOutcome::Appended { first_position: 2, last_position: 3, stream_version: 2 });
    assert_eq!(s.read_stream("thing-1").await.unwrap()[0].position, 2);
    assert_eq!(s.read_stream("thing-2").await.unwrap().iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.verify_chain().await.unwrap().broken_at, None);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let idem = IdempotencyRecord { key: "u1:create:abc".into(), command: "create".into(), result: json!({ "id": 1 }) };
    let first = s.append("thing-9", ExpectedVersion::Any, &[event("thing.made", 1)], &meta(), Some(&idem)).await.unwrap();
    let again = IdempotencyRecord { result: json!({ "id": 2 }), ..idem.clone() };
    let second = s.append("thing-9", ExpectedVersion::Any, &[event("thing.made", 2)], &meta(), Some(&again)).await.unwrap();
    assert_eq!(second, AppendOutcome::AlreadyHandled { result: json!({ "id": 1 }), position: first.position() });
    assert_eq!(s.head().await.unwrap(), 1);
}

#[tokio::test]
async fn a_follower_sees_every_event_exactly_once_while_writers_commit_out_of_order() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    const WRITERS: i64 = 8;
    const PER_WRITER: i64 = 40;

    let follower = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut checkpoint = 0;
            while (seen.len() as i64) < WRITERS * PER_WRITER {
                for e in s.read_all(checkpoint, 100).await.unwrap() {
                    checkpoint = e.position;
                    seen.push((e.position, e.detail["writer"].as_i64().unwrap(), e.detail["n"].as_i64().unwrap()));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = opspilot_eventstore::pool(&db.url, 2).unwrap();
        let s = EventStore::new(pool.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                // A random delay inside another transaction that holds no lock,
                // plus random batch shapes, so commits interleave unpredictably.
                let delay = rand::thread_rng().gen_range(0..4);
                let c = pool.get().await.unwrap();
                c.simple_query(&format!("SELECT pg_sleep({delay} / 1000.0)")).await.unwrap();
                let mut ev = event("thing.made", n);
                ev.detail = json!({ "writer": w, "n": n });
                s.append(&format!("writer-{w}"), ExpectedVersion::Any, &[ev], &meta(), None).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), follower).await.expect("follower finished").unwrap();
    assert_eq!(seen.len() as i64, WRITERS * PER_WRITER);
    let unique: HashSet<(i64, i64)> = seen.iter().map(|(_, w, n)| (*w, *n)).collect();
    assert_eq!(unique.len(), seen.len(), "an event was seen twice");
    let positions: Vec<i64> = seen.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(positions, (1..=WRITERS * PER_WRITER).collect::<Vec<_>>(), "positions are gapless and in order");
    // Within a writer, order is preserved.
    for w in 0..WRITERS {
        let ns: Vec<i64> = seen.iter().filter(|(_, ww, _)| *ww == w).map(|(_, _, n)| *n).collect();
        assert_eq!(ns, (0..PER_WRITER).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn audit_verify_detects_an_edited_row_a_deleted_row_and_a_removed_tail() {
    for tamper in ["edit", "delete_middle", "delete_tail"] {
        let db = TestDb::new().await;
        let s = store(&db).await;
        for n in 1..=5 {
            s.append(&format!("thing-{n}"), ExpectedVersion::NoStream, &[event("thing.made", n)], &meta(), None).await.unwrap();
        }
        let clean = s.verify_chain().await.unwrap();
        assert_eq!((clean.checked, clean.broken_at.clone()), (5, None));

        let c = db.client().await;
        // The trigger refuses changes; a tampering superuser switches it off first.
        assert!(c.batch_execute("UPDATE events SET detail = '{}' WHERE position = 3").await.is_err(), "events must be immutable");
        c.batch_execute("ALTER TABLE events DISABLE TRIGGER events_no_update").await.unwrap();
        let expected_at = match tamper {
            "edit" => {
                c.batch_execute(r#"UPDATE events SET detail = jsonb_set(detail, '{n}', '99') WHERE position = 3"#).await.unwrap();
                3
            }
            "delete_middle" => {
                c.batch_execute("DELETE FROM events WHERE position = 3").await.unwrap();
                3
            }
            _ => {
                c.batch_execute("DELETE FROM events WHERE position = 5").await.unwrap();
                5
            }
        };
        let report = s.verify_chain().await.unwrap();
        let (at, why) = report.broken_at.unwrap_or_else(|| panic!("{tamper} was not detected"));
        assert_eq!(at, expected_at, "{tamper}: {why}");
    }
}

#[tokio::test]
async fn an_old_version_event_in_the_store_is_upcast_when_read() {
    let app = spawn_app().await;
    let c = app.db.client().await;
    // A user.created stored by an older OpsPilot (schema v1: a single `role`),
    // appended through the store so the hash chain stays intact.
    let s = store(&app.db).await;
    let id = opspilot_commands::ids::id_for("user", "legacy_user");
    let v1 = NewEvent {
        event_id: Uuid::new_v4(),
        action: "user.created".into(),
        schema_version: 1,
        scope: EventScope::resource("user", id),
        status: EventStatus::Success,
        severity: Severity::Info,
        detail: json!({ "user_id": id, "username": "legacy_user", "role": "approver" }),
    };
    s.append(&format!("user-{id}"), ExpectedVersion::NoStream, &[v1], &meta(), None).await.unwrap();
    let stored: serde_json::Value = c.query_one("SELECT detail FROM events WHERE stream_id = $1", &[&format!("user-{id}")]).await.unwrap().get(0);
    assert_eq!(stored["role"], "approver", "the row itself is never rewritten");

    let read = s.read_stream(&format!("user-{id}")).await.unwrap();
    assert_eq!(read[0].schema_version, 2);
    assert_eq!(read[0].detail["roles"], json!(["approver"]));
    assert_eq!(read[0].detail["display_name"], "legacy_user");

    // The read model built from it knows the role too.
    let admin = app.admin().await;
    let a = app.rest("GET", "/api/v1/users?q=legacy", Some(&admin), None).await;
    let ok = opspilot_tests::eventually(Duration::from_secs(5), async || {
        let a = app.rest("GET", "/api/v1/users?q=legacy", Some(&admin), None).await;
        a.data()["list"][0]["roles"] == json!(["approver"])
    })
    .await;
    assert!(ok, "{:?}", a);
    assert!(s.verify_chain().await.unwrap().broken_at.is_none());
}

#[tokio::test]
async fn a_rebuilt_projection_is_identical_to_the_live_one() {
    let app = spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    app.rest("POST", "/api/v1/users/dev_user/roles", Some(&admin), Some(json!({ "role": "approver" }))).await.data();
    app.rest("DELETE", "/api/v1/users/dev_user/roles/approver", Some(&admin), None).await.data();
    app.rest("POST", "/api/v1/auth/tokens", Some(&dev), Some(json!({ "name": "ci" }))).await.data();
    app.rest("POST", "/api/v1/credentials", Some(&admin), Some(json!({ "name": "cp-1-key", "kind": "ssh_private_key", "secret": "k" }))).await.data();
    // A denial is an event too.
    app.rest("POST", "/api/v1/projects", Some(&dev), Some(json!({ "name": "nope" }))).await;

    let head = app.running.state.commands.store.head().await.unwrap();
    assert!(app.running.state.runner.wait_for(head, Duration::from_secs(10)).await);
    let c = app.db.client().await;
    let snapshot = async |c: &tokio_postgres::Client| {
        let mut out = Vec::new();
        for p in opspilot_projections::all() {
            for t in p.tables {
                let rows = c.query(&format!("SELECT to_jsonb(t)::text FROM {t} t ORDER BY 1"), &[]).await.unwrap();
                out.push((t.to_string(), rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()));
            }
        }
        out
    };
    let live = snapshot(&c).await;
    assert!(live.iter().any(|(t, rows)| t == "accounts_users" && rows.len() == 3));
    for p in opspilot_projections::all() {
        let n = opspilot_projections::runner::rebuild(app.running.state.commands.store.pool(), &p).await.unwrap();
        assert_eq!(n, head);
    }
    assert_eq!(snapshot(&c).await, live);
}
