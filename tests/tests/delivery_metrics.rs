//! Delivery metrics against a log with known releases, failures and
//! rollbacks: release frequency, lead time, change failure rate and time to
//! restore per bucket, over REST and GraphQL, scoped to what the caller sees.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use opspilot_domain::approval::RiskLevel;
use opspilot_domain::release::{Operation, ReleaseEvent, ReleaseRef};
use opspilot_domain::{ActorType, DomainEvent, EventScope, Source};
use opspilot_eventstore::{EventMeta, EventStore, ExpectedVersion, NewEvent};
use opspilot_tests::{spawn_app_on, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

/// One release of the log: its ref and the project it belongs to.
struct R {
    r: ReleaseRef,
    project: Uuid,
    version: i64,
}

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
}

impl R {
    fn new(project: Uuid, service: Uuid, target: Uuid, env: &str) -> R {
        let r = ReleaseRef {
            release_id: Uuid::new_v4(),
            service_id: service,
            target_id: target,
            runtime_type: "k8s".into(),
            env: env.into(),
            strategy: "rolling".into(),
            preview_ref: Some(format!("pv_{}", Uuid::new_v4().simple())),
        };
        R { r, project, version: 0 }
    }

    /// Appends one event of this release, recorded at `when`.
    async fn record(&mut self, store: &EventStore, when: DateTime<Utc>, event: ReleaseEvent) {
        let (action, detail) = event.to_parts();
        let scope = EventScope::resource("deployment_release", self.r.release_id).in_project(self.project);
        let e = NewEvent { event_id: Uuid::new_v4(), action, schema_version: 1, scope, status: event.status(), severity: event.severity(), detail };
        let meta = EventMeta { actor_id: "tester".into(), actor_type: ActorType::User, source: Source::DeploymentUi, occurred_at: when, correlation_id: Uuid::new_v4(), causation_id: None };
        let expected = if self.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(self.version) };
        store.append(&opspilot_domain::stream_id_of::<opspilot_domain::release::Release>(self.r.release_id), expected, &[e], &meta, None).await.expect("append");
        self.version += 1;
    }

    async fn previewed(&mut self, store: &EventStore, when: DateTime<Utc>) {
        let e = ReleaseEvent::Previewed {
            release: self.r.clone(),
            project_id: self.project,
            team_id: Uuid::nil(),
            environment_id: None,
            variables: BTreeMap::new(),
            binding_hash: "h".into(),
            artifact_digest: "sha256:0".into(),
            expires_at: when + chrono::Duration::minutes(30),
            warnings: vec![],
        };
        self.record(store, when, e).await;
    }

    async fn applying(&mut self, store: &EventStore, when: DateTime<Utc>, operation: Operation) {
        let e = ReleaseEvent::Applying { release: self.r.clone(), operation, approval_ticket: None, target_artifact_release_id: None };
        self.record(store, when, e).await;
    }

    async fn applied(&mut self, store: &EventStore, when: DateTime<Utc>) {
        self.record(store, when, ReleaseEvent::Applied { release: self.r.clone(), summary: "ok".into() }).await;
    }

    async fn failed(&mut self, store: &EventStore, when: DateTime<Utc>, error_key: &str) {
        let e = ReleaseEvent::Failed { release: self.r.clone(), error_key: error_key.into(), summary: "no".into(), approval_ticket: None };
        self.record(store, when, e).await;
    }

    /// Previewed, then applied `lead` minutes later (apply ran just before).
    async fn deploy(&mut self, store: &EventStore, previewed: DateTime<Utc>, lead_minutes: i64) {
        self.previewed(store, previewed).await;
        let applied = previewed + chrono::Duration::minutes(lead_minutes);
        self.applying(store, applied - chrono::Duration::minutes(1), Operation::Apply).await;
        self.applied(store, applied).await;
    }
}

/// The known log, written before OpsPilot starts (so no follow-up acts on it):
///
/// project P, staging, service S on target T:
/// - R1 previewed 11-01 10:00, applied 11:00 (lead 1 h);
/// - R2 previewed 12:00, apply ran and failed 12:20;
/// - R3 previewed 13:20, applied 14:20 (lead 1 h): restores R2 after 2 h;
/// - R4 previewed 11-02 09:00, applied 09:30 (lead 30 min), rollback
///   requested 10:00, completed 10:15: a failure restored after 15 min;
/// - R5 previewed 11:00, its approval expired before it ran: counts nowhere.
///
/// and, to be filtered away: R6 in project P production (11-03), R7 in
/// another project Q (11-03).
async fn known_log(db: &TestDb) -> (Uuid, Uuid) {
    let store = EventStore::new(opspilot_eventstore::pool(&db.url, 4).unwrap());
    let (p, q, s, t) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut r1 = R::new(p, s, t, "staging");
    r1.deploy(&store, at(1, 10, 0), 60).await;
    let mut r2 = R::new(p, s, t, "staging");
    r2.previewed(&store, at(1, 12, 0)).await;
    r2.applying(&store, at(1, 12, 10), Operation::Apply).await;
    r2.failed(&store, at(1, 12, 20), "rollout_failed").await;
    let mut r3 = R::new(p, s, t, "staging");
    r3.deploy(&store, at(1, 13, 20), 60).await;
    let mut r4 = R::new(p, s, t, "staging");
    r4.deploy(&store, at(2, 9, 0), 30).await;
    let e = ReleaseEvent::RollbackRequested { release: r4.r.clone(), by: Uuid::nil(), target_artifact_release_id: r3.r.release_id };
    r4.record(&store, at(2, 10, 0), e).await;
    r4.applying(&store, at(2, 10, 1), Operation::Rollback).await;
    let e = ReleaseEvent::RollbackCompleted { release: r4.r.clone(), target_artifact_release_id: r3.r.release_id, summary: "ok".into() };
    r4.record(&store, at(2, 10, 15), e).await;
    let mut r5 = R::new(p, s, t, "staging");
    r5.previewed(&store, at(2, 11, 0)).await;
    let e = ReleaseEvent::PendingApproval { release: r5.r.clone(), approval_ticket: "apv_1".into(), risk_level: RiskLevel::High, operation: Operation::Apply };
    r5.record(&store, at(2, 11, 1), e).await;
    r5.failed(&store, at(2, 13, 0), "approval_ticket_expired").await;
    let mut r6 = R::new(p, s, t, "production");
    r6.deploy(&store, at(3, 9, 0), 10).await;
    let mut r7 = R::new(q, Uuid::new_v4(), Uuid::new_v4(), "staging");
    r7.deploy(&store, at(3, 9, 0), 10).await;
    (p, q)
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

#[tokio::test]
async fn delivery_metrics_of_a_known_log_over_rest_and_graphql() {
    let db = TestDb::new().await;
    let (p, q) = known_log(&db).await;
    let app = spawn_app_on(db, |_| {}).await;
    let admin = app.admin().await;
    let head = app.running.state.commands.store.head().await.unwrap();
    app.running.state.settle(head).await;

    let path = format!("/api/v1/metrics/delivery?project_id={p}&env=staging&from=2026-11-01T00:00:00Z&to=2026-11-04T00:00:00Z&bucket=day");
    let m = app.rest("GET", &path, Some(&admin), None).await.data().clone();
    let days = m["buckets"].as_array().unwrap();
    assert_eq!(days.iter().map(|b| b["start"].as_str().unwrap().to_string()).collect::<Vec<_>>(), ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]);
    // 11-01: R1 and R3 deployed, R2 failed and restored by R3 two hours later.
    let d1 = &days[0];
    assert_eq!((d1["deployments"].as_i64(), d1["finished"].as_i64(), d1["failures"].as_i64(), d1["restored"].as_i64()), (Some(2), Some(3), Some(1), Some(1)), "{d1}");
    assert!((num(&d1["change_failure_rate"]).unwrap() - 1.0 / 3.0).abs() < 1e-9, "{d1}");
    assert_eq!((num(&d1["lead_time_p50_seconds"]), num(&d1["lead_time_avg_seconds"])), (Some(3600.0), Some(3600.0)), "{d1}");
    assert_eq!(num(&d1["time_to_restore_p50_seconds"]), Some(7200.0), "{d1}");
    // 11-02: R4 deployed and rolled back (restored 15 min later); R5 never ran.
    let d2 = &days[1];
    assert_eq!((d2["deployments"].as_i64(), d2["finished"].as_i64(), d2["failures"].as_i64(), d2["restored"].as_i64()), (Some(1), Some(1), Some(1), Some(1)), "{d2}");
    assert_eq!((num(&d2["change_failure_rate"]), num(&d2["lead_time_p50_seconds"]), num(&d2["time_to_restore_p50_seconds"])), (Some(1.0), Some(1800.0), Some(900.0)), "{d2}");
    // 11-03: nothing in staging (R6 is production, R7 another project).
    let d3 = &days[2];
    assert_eq!((d3["deployments"].as_i64(), d3["finished"].as_i64()), (Some(0), Some(0)), "{d3}");
    assert!(d3["change_failure_rate"].is_null() && d3["lead_time_p50_seconds"].is_null(), "{d3}");
    // Totals over the window.
    let t = &m["totals"];
    assert_eq!((t["deployments"].as_i64(), t["finished"].as_i64(), t["failures"].as_i64(), t["restored"].as_i64()), (Some(3), Some(4), Some(2), Some(2)), "{t}");
    assert_eq!((num(&t["change_failure_rate"]), num(&t["lead_time_p50_seconds"]), num(&t["lead_time_avg_seconds"])), (Some(0.5), Some(3600.0), Some(3000.0)), "{t}");
    assert_eq!((num(&t["time_to_restore_p50_seconds"]), num(&t["time_to_restore_avg_seconds"])), (Some(4050.0), Some(4050.0)), "{t}");

    // Hours: R1 at 11:00 and R3 at 14:20 on 11-01.
    let path = format!("/api/v1/metrics/delivery?project_id={p}&env=staging&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&bucket=hour");
    let hours = app.rest("GET", &path, Some(&admin), None).await.data()["buckets"].as_array().unwrap().clone();
    assert_eq!(hours.len(), 24);
    let deployed: Vec<usize> = hours.iter().enumerate().filter(|(_, b)| b["deployments"].as_i64() == Some(1)).map(|(i, _)| i).collect();
    assert_eq!(deployed, [11, 14]);

    // Every env of P, in one week bucket: R6 joins; another project's R7 does not.
    let query = "query($p: UUID, $from: DateTime, $to: DateTime) { deliveryMetrics(projectId: $p, from: $from, to: $to, bucket: \"week\") { bucket totals { deployments failures changeFailureRate } buckets { start deployments } } }";
    let g = app.gql(Some(&admin), query, json!({ "p": p, "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z" })).await;
    let dm = &g["data"]["deliveryMetrics"];
    assert_eq!((dm["bucket"].as_str(), dm["totals"]["deployments"].as_i64(), dm["totals"]["failures"].as_i64()), (Some("week"), Some(4), Some(2)), "{g}");
    // Weeks start on Monday (2026-10-26 and 2026-11-02), cut in UTC.
    let weeks: Vec<(&str, i64)> = dm["buckets"].as_array().unwrap().iter().map(|b| (b["start"].as_str().unwrap(), b["deployments"].as_i64().unwrap())).collect();
    assert_eq!(weeks, [("2026-10-26T00:00:00+00:00", 2), ("2026-11-02T00:00:00+00:00", 2)], "{g}");
    // No project: every project the admin sees (Q's R7 included).
    let g = app.gql(Some(&admin), query, json!({ "p": null, "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z" })).await;
    assert_eq!(g["data"]["deliveryMetrics"]["totals"]["deployments"].as_i64(), Some(5), "{g}");

    // A project member sees only their projects: Q and P are not theirs.
    let (dev, _) = app.demo_users().await;
    let refused = app.rest("GET", &format!("/api/v1/metrics/delivery?project_id={q}"), Some(&dev), None).await;
    assert_eq!(refused.error_key(), "project_scope_denied", "{:?}", refused.body);
    let mine = app.rest("GET", "/api/v1/metrics/delivery?from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z", Some(&dev), None).await;
    assert_eq!(mine.data()["totals"]["deployments"].as_i64(), Some(0), "{:?}", mine.body);

    // Bad windows are refused with the dictionary's validation error.
    for bad in ["bucket=minute", "from=yesterday", "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&bucket=hour", "project_id=x"] {
        let a = app.rest("GET", &format!("/api/v1/metrics/delivery?{bad}"), Some(&admin), None).await;
        assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{bad}: {:?}", a.body);
    }
    let a = app.rest("GET", "/api/v1/metrics/delivery", None, None).await;
    assert_eq!(a.error_key(), "unauthenticated");
}
