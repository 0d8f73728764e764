//! The AI command center: the intent engine on its own (sentences/s, p99,
//! accuracy on both corpora), and with a database and the test cluster, a
//! session from `aiSend` to `preview_result`.

use std::time::Instant;

use anyhow::Context;
use opspilot_domain::ai::intent::parse;
use opspilot_eventstore::MasterKey;
use serde_json::{json, Value};

fn corpus(name: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?)
}

/// `opspilot-bench ai [DATABASE_URL]`.
pub async fn main(args: &[String]) -> anyhow::Result<()> {
    println!("## AI intent engine (built-in, one core)");
    println!("| corpus | sentences | intent accuracy | exact (intent + params) | sentences/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    for name in ["ai_corpus.jsonl", "ai_corpus_heldout.jsonl"] {
        let cases = corpus(name)?;
        let (mut intents, mut exact) = (0, 0);
        for c in &cases {
            let p = parse(c["text"].as_str().unwrap_or_default());
            if p.intent.as_str() == c["intent"] {
                intents += 1;
                exact += usize::from(serde_json::to_value(&p.params)? == c["params"]);
            }
        }
        let mut lat = Vec::with_capacity(cases.len() * 50);
        let started = Instant::now();
        for _ in 0..50 {
            for c in &cases {
                let t = Instant::now();
                std::hint::black_box(parse(c["text"].as_str().unwrap_or_default()));
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = cases.len() as f64;
        println!(
            "| {name} | {} | {:.1}% | {:.1}% | {rate:.0} | {:.1} µs | {:.1} µs |",
            cases.len(), 100.0 * intents as f64 / n, 100.0 * exact as f64 / n, crate::pct(&lat, 0.5), crate::pct(&lat, 0.99)
        );
    }
    let Some(url) = args.first() else { return Ok(()) };

    let pool = opspilot_eventstore::pool(url, 16)?;
    opspilot_eventstore::migrate(&pool).await?;
    let mut config = opspilot_api::Config::for_database(url, MasterKey::generate());
    config.admin_password = Some("bench-admin-pw".into());
    config.ai_messages_per_minute = 100_000;
    let running = opspilot_api::start(config).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let login: Value = http.post(format!("{base}/api/v1/auth/login")).json(&json!({ "username": "admin", "password": "bench-admin-pw" })).send().await?.json().await?;
    let token = login["data"]["token"].as_str().context("admin login")?.to_string();
    crate::bench_catalog(&http, &base, &token).await?;
    let session: Value = http.post(format!("{base}/api/v1/ai/sessions")).bearer_auth(&token).json(&json!({ "lang": "en", "project_id": "bench-proj" })).send().await?.json().await?;
    let id = session["data"]["session_id"].as_str().context("session")?.to_string();
    let mut lat = Vec::new();
    for i in 0..30 {
        let started = Instant::now();
        let r: Value = http
            .post(format!("{base}/api/v1/ai/sessions/{id}/messages"))
            .bearer_auth(&token)
            .json(&json!({ "text": format!("deploy bench-svc to staging with tag ai{i}") }))
            .send()
            .await?
            .json()
            .await?;
        lat.push(started.elapsed().as_secs_f64() * 1000.0);
        let ok = r["data"]["events"].as_array().is_some_and(|e| e.iter().any(|e| e["action"] == "ai.preview_result" && e["detail"]["ok"] == true));
        anyhow::ensure!(ok, "no successful preview: {r}");
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("\n## AI session: aiSend → preview_result recorded (parse, resolve, preview with dry-run on the test cluster, read-your-writes)");
    println!("p50 {:.0} ms, p99 {:.0} ms over {} sentences", crate::pct(&lat, 0.5), crate::pct(&lat, 0.99), lat.len());
    Ok(())
}
