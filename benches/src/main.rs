//! `opspilot-bench DATABASE_URL`: measures, on an empty database, the figures
//! the README reports. Run through `./scripts/bench.sh`.
//! `opspilot-bench fanout DATABASE_URL [...]`: the fan-out benchmark (OpsPilot
//! vs Ansible on N SSH hosts), see `fanout.rs`; run through `./scripts/bench-fanout.sh`.

mod ai;
mod console;
mod fanout;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use opspilot_domain::{ActorType, EventScope, EventStatus, Severity, Source};
use opspilot_eventstore::{EventMeta, EventStore, ExpectedVersion, MasterKey, NewEvent, Pool};
use serde_json::json;
use uuid::Uuid;

fn meta() -> EventMeta {
    EventMeta { actor_id: "bench".into(), actor_type: ActorType::System, source: Source::ApiDirect, occurred_at: Utc::now(), correlation_id: Uuid::new_v4(), causation_id: None }
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        action: "bench.recorded".into(),
        schema_version: 1,
        scope: EventScope::resource("bench", n).in_project(Uuid::nil()),
        status: EventStatus::Success,
        severity: Severity::Info,
        detail: json!({ "n": n, "summary": "a typical small detail object", "env": "production" }),
    }
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Appends `total` events with `writers` concurrent tasks in batches of `batch`; events/s.
async fn append_rate(store: &EventStore, writers: usize, batch: usize, total: usize) -> anyhow::Result<f64> {
    let per_writer = total / writers / batch;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let events: Vec<NewEvent> = (0..batch).map(|k| event(i * batch + k)).collect();
                store.append(&format!("bench-{w}-{batch}-{}", Uuid::new_v4()), ExpectedVersion::NoStream, &events, &meta(), None).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_writer * batch * writers) as f64 / started.elapsed().as_secs_f64())
}

/// The same rows inserted with a plain multi-row INSERT into an identical
/// table without the log's lock, chain or checks; events/s.
async fn raw_rate(pool: &Pool, writers: usize, batch: usize, total: usize) -> anyhow::Result<f64> {
    let per_writer = total / writers / batch;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let c = pool.get().await?;
            for _ in 0..per_writer {
                let m = meta();
                let stream = format!("raw-{w}-{}", Uuid::new_v4());
                let ids: Vec<Uuid> = (0..batch).map(|_| Uuid::new_v4()).collect();
                let versions: Vec<i64> = (1..=batch as i64).collect();
                let details: Vec<serde_json::Value> = (0..batch).map(|n| event(n).detail).collect();
                let hashes: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; 32]).collect();
                c.execute(
                    "INSERT INTO bench_raw (position, event_id, stream_id, stream_version, domain, action, schema_version, resource_type, resource_id,
                        project_id, actor_id, actor_type, source, status, severity, occurred_at, correlation_id, detail, prev_hash, hash)
                     SELECT nextval('bench_raw_seq'), e, $1, v, 'bench', 'bench.recorded', 1, 'bench', v::text, $2, 'bench', 'system', 'api_direct',
                        'success', 'info', $3, $4, d, h, h FROM unnest($5::uuid[], $6::bigint[], $7::jsonb[], $8::bytea[]) AS t(e, v, d, h)",
                    &[&stream, &Uuid::nil().to_string(), &m.occurred_at, &m.correlation_id, &ids, &versions, &details, &hashes],
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_writer * batch * writers) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fanout") {
        return fanout::main(&args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("console") {
        return console::main(&args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("ai") {
        return ai::main(&args[1..]).await;
    }
    let url = std::env::args().nth(1).context("usage: opspilot-bench DATABASE_URL (an empty database)")?;
    let pool = opspilot_eventstore::pool(&url, 24)?;
    opspilot_eventstore::migrate(&pool).await?;
    let c = pool.get().await?;
    c.batch_execute(
        "DROP TABLE IF EXISTS bench_raw; DROP SEQUENCE IF EXISTS bench_raw_seq;
         CREATE SEQUENCE bench_raw_seq;
         CREATE TABLE bench_raw (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);",
    )
    .await?;
    drop(c);
    let store = EventStore::new(pool.clone());

    println!("## Append throughput (events/s)");
    println!("| writers | batch | event store | raw INSERT | store / raw |");
    println!("|---|---|---|---|---|");
    for (writers, batch, total) in [(1, 1, 2000), (8, 1, 4000), (1, 100, 20000), (8, 100, 40000)] {
        let s = append_rate(&store, writers, batch, total).await?;
        let r = raw_rate(&pool, writers, batch, total).await?;
        println!("| {writers} | {batch} | {s:.0} | {r:.0} | {:.2} |", s / r);
    }

    // A server on this database for the end-to-end figures.
    let mut config = opspilot_api::Config::for_database(&url, MasterKey::generate());
    config.admin_password = Some("bench-admin-pw".into());
    config.login_attempts_per_minute = 1000;
    config.ai_messages_per_minute = 100_000;
    let running = opspilot_api::start(config).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let login: serde_json::Value = http.post(format!("{base}/api/v1/auth/login")).json(&json!({ "username": "admin", "password": "bench-admin-pw" })).send().await?.json().await?;
    let token = login["data"]["token"].as_str().context("admin login")?.to_string();

    let mut lat = Vec::new();
    for i in 0..300 {
        let q = json!({ "query": "mutation($n: String!) { createProject(input: {name: $n}) { position } }", "variables": { "n": format!("bench-{i}-{}", Uuid::new_v4().simple()) } });
        let started = Instant::now();
        let r: serde_json::Value = http.post(format!("{base}/graphql")).bearer_auth(&token).json(&q).send().await?.json().await?;
        lat.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r["errors"].is_null(), "{r}");
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("\n## One command end to end through GraphQL (createProject, includes read-your-writes wait)");
    println!("p50 {:.2} ms, p99 {:.2} ms over {} requests", pct(&lat, 0.5), pct(&lat, 0.99), lat.len());

    // Projection lag at a steady 1,000 events/s for 10 s (10 events every 10 ms).
    let mut rx = running.state.runner.applied.subscribe();
    let collector = tokio::spawn(async move {
        let mut lags = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && lags.len() < 10_000 {
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Ok(e)) if e.action == "bench.lag" => lags.push((Utc::now() - e.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1000.0),
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        lags
    });
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..1000 {
        tick.tick().await;
        let events: Vec<NewEvent> = (0..10).map(|k| NewEvent { action: "bench.lag".into(), ..event(i * 10 + k) }).collect();
        let store = store.clone();
        tokio::spawn(async move { store.append("bench-lag", ExpectedVersion::Any, &events, &meta(), None).await });
    }
    let mut lags = collector.await?;
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("\n## Projection lag at a steady 1,000 events/s (append → applied by every projection)");
    println!("p50 {:.1} ms, p99 {:.1} ms over {} events", pct(&lags, 0.5), pct(&lags, 0.99), lags.len());

    let head = store.head().await?;
    println!("\n## Rebuild from zero ({head} events in the log)");
    for p in opspilot_projections::all() {
        let started = Instant::now();
        let n = opspilot_projections::runner::rebuild(&pool, &p).await?;
        println!("{}: {:.0} events/s", p.name, n as f64 / started.elapsed().as_secs_f64());
    }
    release_bench(&http, &base, &token).await?;
    inbox_bench(&pool).await?;
    Ok(())
}

/// bench-proj, bench-team, the test cluster as bench-cluster, bench-svc (k8s,
/// low risk) and bench-target (staging) in a fresh namespace.
pub(crate) async fn bench_catalog(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    let env_json = "/var/cache/opspilot-env/run/env.json";
    let text = std::fs::read_to_string(env_json).with_context(|| format!("{env_json}: no test cluster (run tests/env/envctl up, or scripts/bench.sh)"))?;
    let env: serde_json::Value = serde_json::from_str(&text)?;
    let kubeconfig_path = env["k8s"]["adminKubeconfig"].as_str().context("env.json: adminKubeconfig")?;
    let ns = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let status = std::process::Command::new(env["binaries"]["kubectl"].as_str().context("env.json: kubectl")?)
        .args(["--kubeconfig", kubeconfig_path, "create", "namespace", &ns])
        .output()?;
    anyhow::ensure!(status.status.success(), "kubectl create namespace failed");
    let post = async |path: &str, body: serde_json::Value| -> anyhow::Result<serde_json::Value> {
        let v: serde_json::Value = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await?.json().await?;
        anyhow::ensure!(v["code"] == 1000, "{path}: {v}");
        Ok(v["data"].clone())
    };
    post("/api/v1/projects", json!({ "name": "bench-proj" })).await?;
    post("/api/v1/teams", json!({ "name": "bench-team", "project_id": "bench-proj" })).await?;
    post("/api/v1/clusters/import/kubeconfig", json!({ "name": "bench-cluster", "project_id": "bench-proj", "team_id": "bench-team", "kubeconfig": std::fs::read_to_string(kubeconfig_path)? })).await?;
    let template = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: bench }\nspec:\n  replicas: 1\n  selector: { matchLabels: { app: bench } }\n  template:\n    metadata: { labels: { app: bench } }\n    spec:\n      nodeSelector: { type: kwok }\n      tolerations: [{ key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule }]\n      containers: [{ name: app, image: 'registry.invalid/bench:{{ image_tag }}' }]\n";
    post("/api/v1/deploy/services", json!({ "name": "bench-svc", "project_id": "bench-proj", "team_id": "bench-team", "runtime_type": "k8s", "manifest_template": template, "risk_level": "low" })).await?;
    post("/api/v1/deploy/targets", json!({ "name": "bench-target", "project_id": "bench-proj", "team_id": "bench-team", "runtime_type": "k8s", "env": "staging", "cluster_id": "bench-cluster", "namespace": ns })).await?;
    Ok(())
}

/// Preview and apply latency against the test cluster of tests/env
/// (`scripts/bench.sh` brings it up).
async fn release_bench(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    bench_catalog(http, base, token).await?;
    let post = async |path: &str, body: serde_json::Value| -> anyhow::Result<serde_json::Value> {
        let v: serde_json::Value = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await?.json().await?;
        anyhow::ensure!(v["code"] == 1000, "{path}: {v}");
        Ok(v["data"].clone())
    };
    let (mut preview_ms, mut apply_ms) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let params = json!({ "service_id": "bench-svc", "target_id": "bench-target", "env": "staging", "variables": { "image_tag": format!("v{i}") } });
        let started = Instant::now();
        let p = post("/api/v1/deploy/releases/preview", params.clone()).await?;
        preview_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let mut body = params;
        body["preview_ref"] = p["preview_ref"].clone();
        let started = Instant::now();
        let a = post("/api/v1/deploy/releases/apply", body).await?;
        let id = a["release_id"].as_str().context("release id")?.to_string();
        loop {
            let r: serde_json::Value = http.get(format!("{base}/api/v1/deploy/releases/{id}")).bearer_auth(token).send().await?.json().await?;
            match r["data"]["status"].as_str() {
                Some("applied") => break,
                Some("failed") => anyhow::bail!("bench release failed: {r}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        apply_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    preview_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    apply_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("\n## Preview and apply against the test cluster (loopback control plane, kwok nodes; 10 releases, no approval)");
    println!("preview (render + dry-run + diff): p50 {:.0} ms, p99 {:.0} ms", pct(&preview_ms, 0.5), pct(&preview_ms, 0.99));
    println!("apply to applied (server-side apply + rollout watch): p50 {:.0} ms, p99 {:.0} ms", pct(&apply_ms, 0.5), pct(&apply_ms, 0.99));
    Ok(())
}

/// Inbox `mine` query latency with 100k and 1M tickets in the read model
/// (rows generated straight into the projection table: this measures the query).
async fn inbox_bench(pool: &Pool) -> anyhow::Result<()> {
    use opspilot_projections::inbox::{self, InboxQuery};
    use opspilot_projections::PageRequest;
    println!("\n## Inbox `mine` query (50 projects, 1 in 5 tickets pending; a team member's default view, page of 20)");
    println!("| tickets | p50 | p99 | admin `pending` p50 | admin `pending` p99 |");
    println!("|---|---|---|---|---|");
    let projects: Vec<Uuid> = (0..50).map(|i| Uuid::from_u128(0x5000 + i)).collect();
    for n in [100_000i64, 1_000_000] {
        let c = pool.get().await?;
        c.batch_execute("TRUNCATE approval_inbox_items").await?;
        c.execute(
            "INSERT INTO approval_inbox_items (ticket, scope_type, scope_id, project_id, team_id, runtime_type, risk_level, priority, status,
                requested_by, required_role, source, summary, detail, expires_at, sla_due_at, created_at, updated_at)
             SELECT 'dep-appr-' || g, 'release', g::text, ($2::uuid[])[1 + g % 50], ($2::uuid[])[1 + g % 50], 'k8s',
                (ARRAY['low','medium','high','critical'])[1 + g % 4], (ARRAY['p3','p2','p1','p0'])[1 + g % 4],
                CASE WHEN g % 5 = 0 THEN 'pending' ELSE (ARRAY['approved','rejected','expired'])[1 + g % 3] END,
                gen_random_uuid(), 'deploy:release:approve', 'deployment_ui', 'release svc-' || (g % 300) || ' v' || g, '{}',
                now() + (g % 7200) * interval '1 second', now() + (g % 3600) * interval '1 second' - interval '30 minutes',
                now() - (g % 86400) * interval '1 second', now()
             FROM generate_series(1, $1::bigint) g",
            &[&n, &projects],
        )
        .await?;
        c.batch_execute("ANALYZE approval_inbox_items").await?;
        drop(c);
        let member = opspilot_domain::Principal {
            user_id: Uuid::new_v4(),
            username: "approver".into(),
            roles: [opspilot_domain::Role::Approver].into(),
            team_ids: [projects[7]].into(),
            project_ids: [projects[7]].into(),
            api_token_id: None,
        };
        let admin = opspilot_domain::Principal { roles: [opspilot_domain::Role::Admin].into(), ..member.clone() };
        let measure = async |p: &opspilot_domain::Principal, view: &str| -> anyhow::Result<(f64, f64)> {
            let q = InboxQuery { view: Some(view.into()), ..Default::default() };
            let mut lat = Vec::new();
            for _ in 0..100 {
                let started = Instant::now();
                inbox::list(pool, p, &q, Utc::now(), PageRequest::new(None, None)).await?;
                lat.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            Ok((pct(&lat, 0.5), pct(&lat, 0.99)))
        };
        let (m50, m99) = measure(&member, "mine").await?;
        let (a50, a99) = measure(&admin, "pending").await?;
        println!("| {n} | {m50:.1} ms | {m99:.1} ms | {a50:.1} ms | {a99:.1} ms |");
    }
    pool.get().await?.batch_execute("TRUNCATE approval_inbox_items").await?;
    Ok(())
}
