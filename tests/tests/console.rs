//! The web console end to end: the built console served by OpsPilot at `/`,
//! driven in Debian's Chromium by the scenarios of `web/e2e` against the real
//! test environments (the Kubernetes control plane, SSH hosts with Docker).
//! Each scenario saves screenshots under `web/e2e-artifacts/<scenario>` and
//! fails on any browser console error. The world is prepared here through the
//! API; what a user does happens in the browser; what the server then holds is
//! checked here again.

use std::path::PathBuf;
use std::time::Duration;

use opspilot_tests::env::{self, compose_bundle, host_fingerprint};
use opspilot_tests::worlds::svc_a_on_k8s;
use opspilot_tests::{TestApp, ADMIN_PASSWORD, DEMO_PASSWORD};
use serde_json::{json, Value};

fn web_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
}

/// The built console; the test command builds it (`npm run build` in web/).
fn console_dir() -> PathBuf {
    let dist = web_dir().join("dist");
    assert!(dist.join("index.html").is_file(), "web/dist is not built: run ./scripts/test.sh (or `npm ci && npm run build` in web/)");
    dist
}

/// Runs `node web/e2e/run.mjs <scenario>` with `params`; fails with its output.
async fn scenario(app: &TestApp, name: &str, mut params: Value) {
    params["base"] = json!(app.url("").trim_end_matches('/'));
    params["scenario"] = json!(name);
    params["artifacts"] = json!(std::env::var("OPSPILOT_E2E_ARTIFACTS").unwrap_or_else(|_| web_dir().join("e2e-artifacts").display().to_string()));
    let run = tokio::process::Command::new("node")
        .arg("e2e/run.mjs")
        .arg(name)
        .current_dir(web_dir())
        .env("OPSPILOT_E2E", params.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run).await.expect("the scenario finishes within 15 minutes").expect("node runs (installed by the test command)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scenario {name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    println!("{stdout}");
}

/// C-01 (AI → inbox → applied), C-04, C-05, C-02, a console release and C-06.
#[tokio::test]
async fn the_p0_cases_run_through_the_ai_panel_the_deployment_page_and_the_inbox() {
    let dist = console_dir();
    let w = svc_a_on_k8s(move |c| c.console_dir = Some(dist)).await;
    let admin = w.app.admin().await;

    // The console is served at / and a deep link falls back to it; the API does not.
    let page = w.app.http.get(w.app.url("/releases/00000000-0000-0000-0000-000000000000")).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.headers()["cache-control"].to_str().unwrap().to_string()), (200, "no-cache".to_string()));
    let html = page.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");
    // Hashed assets are cached for good.
    let asset = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("the page loads a script");
    let js = w.app.http.get(w.app.url(asset)).send().await.unwrap();
    assert_eq!(js.headers()["cache-control"], "public, max-age=31536000, immutable", "{asset}");
    assert!(js.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let missing = w.app.rest("GET", "/api/v1/no-such-route", Some(&admin), None).await;
    assert_eq!(missing.error_key(), "not_found");

    scenario(&w.app, "p0", json!({ "password": DEMO_PASSWORD })).await;

    // What the browser did is what the server holds: three releases of svc-a
    // in production, one rejected, one rolled back, one applied from the AI.
    let all = w.app.rest("GET", "/api/v1/deploy/releases?page_size=50", Some(&admin), None).await;
    let mut statuses: Vec<String> = all.data()["list"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_string()).collect();
    statuses.sort();
    assert_eq!(statuses, ["applied", "rejected", "rolled_back"], "{}", all.body);
    let refused = w.app.rest("GET", "/api/v1/audit/events?action=auth.permission_denied", Some(&admin), None).await;
    assert_eq!(refused.data()["list"][0]["detail"]["attempted"], "approval.approve", "C-04 is audited");
    let ai = w.app.rest("GET", "/api/v1/audit/events?action=release.previewed", Some(&admin), None).await;
    let sources: Vec<&str> = ai.data()["list"].as_array().unwrap().iter().map(|e| e["source"].as_str().unwrap()).collect();
    assert!(sources.contains(&"ai_command_center") && sources.contains(&"deployment_ui"), "{sources:?}");
}

/// C-03: the three preview negatives in the AI panel create no ticket.
#[tokio::test]
async fn the_three_preview_negatives_are_refused_in_the_ai_panel_and_raise_no_ticket() {
    let dist = console_dir();
    let w = svc_a_on_k8s(move |c| {
        c.console_dir = Some(dist);
        c.preview_ttl_seconds = 3;
    })
    .await;
    scenario(&w.app, "negatives", json!({ "password": DEMO_PASSWORD })).await;
    let admin = w.app.admin().await;
    let tickets = w.app.rest("GET", "/api/v1/approvals/inbox?view=all", Some(&admin), None).await;
    assert_eq!(tickets.data()["total"], 0, "{}", tickets.body);
    for key in ["preview_expired", "preview_mismatch", "preview_required"] {
        let audit = w.app.rest("GET", "/api/v1/audit/events?action=ai.action_refused&page_size=50", Some(&admin), None).await;
        assert!(audit.data()["list"].as_array().unwrap().iter().any(|e| e["detail"]["error_key"] == key), "{key} is audited");
    }
}

/// An environment installed while the browser watches every node-step and
/// its log lines, a host key compared before trusting, a cluster imported,
/// the audit chain verified.
#[tokio::test]
async fn an_install_is_watched_live_and_a_cluster_is_imported_from_the_console() {
    env::shared();
    let dist = console_dir();
    let key = env::bundle_public_key();
    let app = opspilot_tests::spawn_app_with(move |c| {
        c.console_dir = Some(dist);
        c.script_root = compose_bundle().to_path_buf();
        c.bundle_trusted_key = Some(key);
    })
    .await;
    app.demo_users().await;
    let admin = app.admin().await;
    // Host 0 of the test environment, registered with its key (trusted in the browser).
    let h = &env::shared()["hosts"][0];
    let private_key = std::fs::read_to_string(h["root"]["privateKeyPath"].as_str().unwrap()).unwrap();
    let body = json!({ "name": "web-host-0", "project_id": "proj-alpha", "ip": h["ip"], "port": 22, "ssh_user": "root", "auth": "key", "private_key": private_key });
    assert_eq!(app.rest("POST", "/api/v1/hosts", Some(&admin), Some(body)).await.data()["status"], "pending_trust");
    let env_body = json!({ "name": "web-compose", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "mode": "platform_managed", "region": "cn-hz" });
    app.rest("POST", "/api/v1/environments", Some(&admin), Some(env_body)).await.data();
    let nodes = json!({ "nodes": [{ "host_id": "web-host-0", "node_role": "compose_manager", "weight": 100 }] });
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();

    let run = scenario(
        &app,
        "operations",
        json!({ "password": ADMIN_PASSWORD, "host": "web-host-0", "fingerprint": host_fingerprint(0), "environment": "web-compose", "kubeconfig": kubeconfig }),
    );
    // The browser trusts the key first; the nodes are bound once the host is active.
    let bind = async {
        assert!(opspilot_tests::eventually(Duration::from_secs(300), async || {
            app.rest("GET", "/api/v1/hosts/web-host-0", Some(&admin), None).await.body["data"]["status"] == "active"
        }).await, "the browser trusts the host key");
        app.rest("PUT", "/api/v1/environments/web-compose/nodes", Some(&admin), Some(nodes)).await.data();
    };
    tokio::join!(run, bind);

    let envs = app.rest("GET", "/api/v1/environments/web-compose", Some(&admin), None).await;
    assert_eq!(envs.data()["status"], "ready", "{}", envs.body);
    let clusters = app.rest("GET", "/api/v1/clusters/k8s-from-console", Some(&admin), None).await;
    assert_eq!(clusters.data()["status"], "connected", "{}", clusters.body);

    // The host ends as fresh as it began.
    let p = app.rest("POST", "/api/v1/environments/web-compose/install/preview", Some(&admin), Some(json!({ "action": "rollback", "install_options": { "purge": "true" } }))).await;
    let t = app.rest("POST", "/api/v1/environments/web-compose/install/rollback", Some(&admin), Some(json!({ "preview_ref": p.data()["preview_ref"], "confirm": true }))).await;
    let task = t.data()["task_id"].as_str().unwrap().to_string();
    assert!(opspilot_tests::eventually(Duration::from_secs(600), async || {
        let s = app.rest("GET", &format!("/api/v1/environments/web-compose/install/tasks/{task}"), Some(&admin), None).await;
        s.body["data"]["status"] == "rolled_back"
    }).await, "the install is rolled back");
}
