//! Environments over SSH, against the real test hosts: hosts with pinned
//! keys, the signed bundle, install tasks (including a SIGKILL of OpsPilot in
//! the middle of one), Docker Compose installed on a fresh host, and compose
//! releases of svc-b through the inbox.
//!
//! Hosts: index 3 gets Compose installed and serves svc-b; index 2 is the
//! kill-and-resume install; index 1 takes the SSH faults (stopped, wrong key,
//! rotated host key); index 0 the hook failure, metacharacters and approvals;
//! the systemd host gets the engine as a systemd unit.
//! Every install is rolled back so the hosts end as fresh as they began.

use std::path::Path;
use std::time::Duration;

use opspilot_tests::env::{self, bundle_copy, compose_bundle, host_fault, host_fingerprint, in_container, on_host, resign};
use opspilot_tests::{eventually, spawn_app_with, ws_connect, Server, TestApp};
use serde_json::{json, Value};

const TASK_DEADLINE: Duration = Duration::from_secs(600);

/// Tests of this file run in parallel; those that run tasks on the same host
/// take its lock, so one task's files never meet another's.
static HOST_LOCKS: [tokio::sync::Mutex<()>; 4] = [const { tokio::sync::Mutex::const_new(()) }; 4];

struct Site {
    app: TestApp,
    admin: String,
    dev: String,
    approver: String,
}

async fn site(bundle: &Path) -> Site {
    site_with(bundle, |_| {}).await
}

async fn site_with(bundle: &Path, change: impl FnOnce(&mut opspilot_api::Config)) -> Site {
    let key = env::bundle_public_key();
    let bundle = bundle.to_path_buf();
    let app = spawn_app_with(move |c| {
        c.script_root = bundle;
        c.bundle_trusted_key = Some(key);
        change(c);
    })
    .await;
    let (dev, approver) = app.demo_users().await;
    let admin = app.admin().await;
    Site { app, admin, dev, approver }
}

impl Site {
    /// Registers test host `i` (root with its key, or `ops` with its key),
    /// checks the scan shows the key the host really has, and trusts it.
    async fn add_host(&self, name: &str, i: usize, as_root: bool, labels: Value) {
        self.add_host_entry(name, &env::shared()["hosts"][i], &host_fingerprint(i), as_root, labels).await
    }

    /// Registers the host `h` of env.json, whose key now has `fingerprint`.
    async fn add_host_entry(&self, name: &str, h: &Value, fingerprint: &str, as_root: bool, labels: Value) {
        let (user, key_path) = if as_root { ("root", h["root"]["privateKeyPath"].as_str().unwrap()) } else { ("ops", h["nonRoot"]["privateKeyPath"].as_str().unwrap()) };
        let key = std::fs::read_to_string(key_path).unwrap();
        let body = json!({ "name": name, "project_id": "proj-alpha", "ip": h["ip"], "port": 22, "ssh_user": user, "auth": "key", "private_key": key, "labels": labels });
        let created = self.app.rest("POST", "/api/v1/hosts", Some(&self.admin), Some(body)).await;
        assert_eq!(created.data()["status"], "pending_trust");
        let scan = self.app.rest("POST", &format!("/api/v1/hosts/{name}/host-key/scan"), Some(&self.admin), None).await;
        let presented = scan.data()["presented_fingerprint"].as_str().unwrap().to_string();
        assert_eq!(presented, fingerprint, "the scan shows the key the host has");
        assert_eq!(scan.data()["matches"], false, "nothing is trusted before an admin says so");
        let trusted = self.app.rest("POST", &format!("/api/v1/hosts/{name}/host-key/trust"), Some(&self.admin), Some(json!({ "fingerprint": presented }))).await;
        assert_eq!(trusted.data()["status"], "active");
    }

    async fn compose_env(&self, name: &str, hosts: &[&str], labels: Value) {
        let body = json!({ "name": name, "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "mode": "platform_managed", "region": "cn-hz", "labels": labels });
        assert_eq!(self.app.rest("POST", "/api/v1/environments", Some(&self.admin), Some(body)).await.data()["status"], "draft");
        let nodes: Vec<Value> = hosts.iter().map(|h| json!({ "host_id": h, "node_role": "compose_manager", "weight": 100 })).collect();
        self.app.rest("PUT", &format!("/api/v1/environments/{name}/nodes"), Some(&self.admin), Some(json!({ "nodes": nodes }))).await.data();
    }

    async fn preview(&self, env: &str, body: Value) -> Value {
        self.app.rest("POST", &format!("/api/v1/environments/{env}/install/preview"), Some(&self.admin), Some(body)).await.data().clone()
    }

    async fn apply(&self, env: &str, preview_ref: &str) -> Value {
        self.app.rest("POST", &format!("/api/v1/environments/{env}/install/apply"), Some(&self.admin), Some(json!({ "preview_ref": preview_ref, "confirm": true }))).await.data().clone()
    }

    /// Waits for a task to end; answers its detail.
    async fn finished_task(&self, env: &str, task_id: &str) -> Value {
        wait_task(&self.app.url(""), &self.admin, env, task_id).await
    }

    /// Previews and applies the rollback of an environment, waits for it.
    async fn roll_back_install(&self, env: &str) -> Value {
        // purge: the compose projects' files go too, the host ends fresh.
        let p = self.preview(env, json!({ "action": "rollback", "install_options": { "purge": "true" } })).await;
        let t = self.app.rest("POST", &format!("/api/v1/environments/{env}/install/rollback"), Some(&self.admin), Some(json!({ "preview_ref": p["preview_ref"], "confirm": true }))).await;
        let task_id = t.data()["task_id"].as_str().unwrap().to_string();
        self.finished_task(env, &task_id).await
    }
}

async fn wait_task(base: &str, token: &str, env: &str, task_id: &str) -> Value {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/environments/{env}/install/tasks/{task_id}");
    let deadline = tokio::time::Instant::now() + TASK_DEADLINE;
    loop {
        if let Ok(r) = http.get(&url).bearer_auth(token).send().await {
            if let Ok(v) = r.json::<Value>().await {
                let status = v["data"]["status"].as_str().unwrap_or_default().to_string();
                if ["succeeded", "failed", "rolled_back"].contains(&status.as_str()) {
                    return v["data"].clone();
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "task {task_id} did not finish in time");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn step<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name} in {task}"))
}

async fn page(ip: &str, port: u16) -> Option<String> {
    let r = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap().get(format!("http://{ip}:{port}/")).send().await.ok()?;
    r.text().await.ok()
}

async fn release_status(s: &Site, id: &str) -> String {
    s.app.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&s.dev), None).await.data()["status"].as_str().unwrap_or_default().to_string()
}

/// Previews and applies a svc-b release as dev_user, approves it as
/// approver_user in the inbox, waits for `applied`; answers (release id, preview).
async fn ship_svc_b(s: &Site, message: &str) -> (String, Value) {
    ship_svc_b_expecting(s, json!({ "message": message }), "applied").await
}

async fn ship_svc_b_expecting(s: &Site, variables: Value, expected: &str) -> (String, Value) {
    let params = json!({ "service_id": "svc-b", "target_id": "target-compose-prod", "env": "production", "variables": variables });
    let preview = s.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&s.dev), Some(params.clone())).await.data().clone();
    assert_eq!(preview["runtime"], "compose");
    let mut apply = params.clone();
    apply["preview_ref"] = preview["preview_ref"].clone();
    let applied = s.app.rest("POST", "/api/v1/deploy/releases/apply", Some(&s.dev), Some(apply)).await.data().clone();
    assert_eq!(applied["status"], "pending_approval", "production compose releases wait in the inbox");
    let ticket = applied["approval_ticket"].as_str().unwrap().to_string();
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({ "comment": "ok" }))).await.data();
    let id = applied["release_id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(180), async || ["applied", "failed"].contains(&release_status(s, &id).await.as_str())).await, "release {id} did not end");
    assert_eq!(release_status(s, &id).await, expected, "timeline: {}", s.app.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&s.dev), None).await.body);
    (id, preview)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compose_is_installed_on_a_fresh_host_and_repaired_and_svc_b_is_released_upgraded_and_rolled_back() {
    let s = site(compose_bundle()).await;
    let ip = env::shared()["hosts"][3]["ip"].as_str().unwrap().to_string();
    env::make_fresh(env::shared()["hosts"][3]["container"].as_str().unwrap());
    assert_eq!(on_host(3, "command -v dockerd; ls /opt/opspilot/compose 2>/dev/null"), "", "host 4 is not fresh");
    // Inputs full of shell syntax: they are data and must run nothing.
    let evil = "$(touch /tmp/pwned-label) `touch /tmp/pwned-tick` ' \" ;touch /tmp/pwned-semi\nnext";
    s.add_host("compose-1", 3, true, json!({ "note": evil })).await;
    s.compose_env("env-compose-prod", &["compose-1"], json!({ "owner": evil })).await;

    let p = s.preview("env-compose-prod", json!({ "runtime_type": "compose", "script_root": "script", "install_options": { "note": evil } })).await;
    assert_eq!(p["steps"], json!(["upload-bundle", "preflight.sh", "install-compose.sh", "post-install-verify.sh"]));
    let codes: Vec<&str> = p["checks"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["artifacts_ok", "ssh_ok", "roles_ok"]);
    let t = s.apply("env-compose-prod", p["preview_ref"].as_str().unwrap()).await;
    assert_eq!(t["status"], "running");
    let task = s.finished_task("env-compose-prod", t["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for st in task["steps"].as_array().unwrap() {
        assert_eq!(st["status"], "succeeded", "{st}");
        let node = &st["nodes"][0];
        assert_eq!(node["exit_code"], 0);
        assert!(node["duration_ms"].as_i64().unwrap() >= 0 && node["log_lines"].as_i64().unwrap() > 0, "{node}");
    }
    assert!(step(&task, "install-compose.sh")["nodes"][0]["outputs"]["docker_version"].is_string(), "structured outputs are kept: {task}");
    let logs = s.app.rest("GET", &format!("/api/v1/environments/env-compose-prod/install/tasks/{}/logs?step_index=2", t["task_id"].as_str().unwrap()), Some(&s.admin), None).await;
    assert!(logs.data()["list"].as_array().unwrap().iter().any(|l| l["line"].as_str().unwrap().starts_with("[INFO]")), "hook lines are stored: {}", logs.body);
    let env_view = s.app.rest("GET", "/api/v1/environments/env-compose-prod", Some(&s.dev), None).await;
    assert_eq!(env_view.data()["status"], "ready");
    let health = s.app.rest("POST", "/api/v1/environments/env-compose-prod/health/check", Some(&s.dev), None).await;
    assert_eq!(health.data()["healthy"], true, "{}", health.body);
    assert!(health.data()["nodes"][0]["compose_version"].is_string());

    // Somebody deletes the compose plugin: the health check names it.
    on_host(3, "rm /usr/local/lib/docker/cli-plugins/docker-compose");
    let health = s.app.rest("POST", "/api/v1/environments/env-compose-prod/health/check", Some(&s.dev), None).await;
    assert_eq!((health.data()["healthy"].as_bool(), health.data()["nodes"][0]["reachable"].as_bool()), (Some(false), Some(true)), "{}", health.body);
    assert_eq!(health.data()["nodes"][0]["error_key"], "compose_binary_missing", "{}", health.body);
    // Then the engine dies (the bracket keeps pkill from matching its own shell).
    on_host(3, "pkill -KILL -f '[d]ockerd-supervisor'; pkill -KILL -x dockerd; true");
    let health = s.app.rest("POST", "/api/v1/environments/env-compose-prod/health/check", Some(&s.dev), None).await;
    assert_eq!(health.data()["nodes"][0]["error_key"], "compose_host_unhealthy", "{}", health.body);
    // A repair puts back what is missing and starts the engine again.
    let p = s.preview("env-compose-prod", json!({ "action": "repair" })).await;
    assert_eq!(p["steps"], json!(["upload-bundle", "preflight.sh", "install-compose.sh", "post-install-verify.sh"]));
    let r = s.apply("env-compose-prod", p["preview_ref"].as_str().unwrap()).await;
    let repair = s.finished_task("env-compose-prod", r["task_id"].as_str().unwrap()).await;
    assert_eq!((repair["status"].as_str(), repair["action"].as_str()), (Some("succeeded"), Some("repair")), "{repair}");
    assert_eq!(step(&repair, "install-compose.sh")["nodes"][0]["outputs"]["changed"], "true", "the plugin was put back: {repair}");
    let health = s.app.rest("POST", "/api/v1/environments/env-compose-prod/health/check", Some(&s.dev), None).await;
    assert_eq!(health.data()["healthy"], true, "repaired: {}", health.body);
    // An upgrade with the same bundle finds everything in place and changes nothing.
    let p = s.preview("env-compose-prod", json!({ "action": "upgrade" })).await;
    let u = s.apply("env-compose-prod", p["preview_ref"].as_str().unwrap()).await;
    let upgrade = s.finished_task("env-compose-prod", u["task_id"].as_str().unwrap()).await;
    assert_eq!((upgrade["status"].as_str(), upgrade["action"].as_str()), (Some("succeeded"), Some("upgrade")), "{upgrade}");
    assert_eq!(step(&upgrade, "install-compose.sh")["nodes"][0]["outputs"]["changed"], "false", "{upgrade}");
    assert_eq!(s.app.rest("GET", "/api/v1/environments/env-compose-prod", Some(&s.dev), None).await.data()["status"], "ready");
    // The context reached the host verbatim, and nothing ran.
    let context = on_host(3, &format!("cat /opt/opspilot/tasks/{}/context.json", t["task_id"].as_str().unwrap()));
    let context: Value = serde_json::from_str(&context).expect("context.json is JSON");
    assert_eq!(context["node"]["labels"]["note"], evil);
    assert_eq!(context["install_options"]["note"], evil);
    assert_eq!(on_host(3, "ls /tmp/pwned-* 2>/dev/null; ls / | grep pwned"), "", "an input executed something");

    // svc-b: a compose service released through the inbox.
    let svc = json!({
        "name": "svc-b", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "risk_level": "medium",
        "manifest_template": "services:\n  web:\n    image: {{ image }}\n    pull_policy: never\n    network_mode: host\n    command: [\"sh\", \"-c\", \"busybox mkdir -p /tmp/www && echo '{{ message }}' > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www\"]\n",
        "default_variables": { "message": "svc-b v1", "image": "opspilot-busybox:1" },
    });
    s.app.rest("POST", "/api/v1/deploy/services", Some(&s.admin), Some(svc)).await.data();
    let target = json!({ "name": "target-compose-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "env": "production", "environment_id": "env-compose-prod", "host_id": "compose-1", "project_name": "svc-b-prod" });
    s.app.rest("POST", "/api/v1/deploy/targets", Some(&s.admin), Some(target)).await.data();

    let (v1, preview) = ship_svc_b(&s, "svc-b v1").await;
    assert!(preview["diff"]["diff"].as_str().unwrap().contains("+services:"), "the first diff adds the whole file: {preview}");
    assert!(eventually(Duration::from_secs(30), async || page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v1"))).await, "svc-b v1 serves its page");

    let (v2, preview) = ship_svc_b(&s, "svc-b v2").await;
    let diff = preview["diff"]["diff"].as_str().unwrap();
    assert!(diff.contains("-") && diff.contains("svc-b v2"), "the upgrade's diff shows the change: {diff}");
    assert!(eventually(Duration::from_secs(30), async || page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v2"))).await, "svc-b v2 serves its page");

    // An image the host does not have: the file is valid, `up` fails, v2 keeps serving.
    let (broken, _) = ship_svc_b_expecting(&s, json!({ "message": "broken", "image": "opspilot-missing:9" }), "failed").await;
    let timeline = s.app.rest("GET", &format!("/api/v1/deploy/releases/{broken}/timeline"), Some(&s.dev), None).await;
    let up_failed = timeline.data()["list"].as_array().unwrap().iter().find(|e| e["action"] == "compose.up_failed").cloned().unwrap_or_else(|| panic!("{}", timeline.body));
    assert_eq!(up_failed["detail"]["error_key"], "compose_up_failed");
    assert!(page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v2")), "the running version stays");

    let ps = s.app.rest("GET", "/api/v1/deploy/targets/target-compose-prod/compose/ps", Some(&s.dev), None).await;
    let services = ps.data()["services"].as_array().unwrap().clone();
    assert_eq!(services.len(), 1, "{}", ps.body);
    assert_eq!(services[0]["state"], "running");
    let logs = s.app.rest("GET", "/api/v1/deploy/targets/target-compose-prod/compose/logs?tail=20", Some(&s.dev), None).await;
    assert!(logs.data()["lines"].is_array(), "{}", logs.body);
    // A project file somebody broke on the host: ps says so (the rollback
    // below uploads v1's file again).
    on_host(3, "cp /opt/opspilot/compose/svc-b-prod/docker-compose.yml /tmp/svc-b.yml && echo 'services: [' > /opt/opspilot/compose/svc-b-prod/docker-compose.yml");
    let ps = s.app.rest("GET", "/api/v1/deploy/targets/target-compose-prod/compose/ps", Some(&s.dev), None).await;
    assert_eq!(ps.error_key(), "compose_ps_failed", "{}", ps.body);
    on_host(3, "mv /tmp/svc-b.yml /opt/opspilot/compose/svc-b-prod/docker-compose.yml");

    // Rollback of v2 through the inbox: v1's file is back.
    let rb = s.app.rest("POST", &format!("/api/v1/deploy/releases/{v2}/rollback"), Some(&s.dev), Some(json!({}))).await;
    assert_eq!(rb.data()["rollback_to"], v1.as_str());
    let ticket = rb.data()["approval_ticket"].as_str().unwrap().to_string();
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({}))).await.data();
    assert!(eventually(Duration::from_secs(120), async || release_status(&s, &v2).await == "rolled_back").await, "rollback did not complete: {}", release_status(&s, &v2).await);
    assert!(eventually(Duration::from_secs(30), async || page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v1"))).await, "v1 serves again after the rollback");
    let timeline = s.app.rest("GET", &format!("/api/v1/deploy/releases/{v2}/timeline"), Some(&s.dev), None).await;
    let actions: Vec<String> = timeline.data()["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for a in ["compose.preflight_succeeded", "compose.config_rendered", "compose.up_started", "compose.up_succeeded", "compose.ps_collected", "compose.rollback_started", "compose.rollback_succeeded", "release.rollback_completed"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from the timeline: {actions:?}");
    }

    // A rollback whose previous image is gone from the host fails with its
    // own error, and the running version stays.
    on_host(3, "docker tag opspilot-busybox:1 opspilot-busybox:old");
    ship_svc_b_expecting(&s, json!({ "message": "svc-b v3", "image": "opspilot-busybox:old" }), "applied").await;
    let (v4, _) = ship_svc_b(&s, "svc-b v4").await;
    on_host(3, "docker rmi opspilot-busybox:old");
    let rb = s.app.rest("POST", &format!("/api/v1/deploy/releases/{v4}/rollback"), Some(&s.dev), Some(json!({}))).await;
    let ticket = rb.data()["approval_ticket"].as_str().unwrap().to_string();
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({}))).await.data();
    assert!(eventually(Duration::from_secs(120), async || release_status(&s, &v4).await == "rollback_failed").await, "{}", release_status(&s, &v4).await);
    let timeline = s.app.rest("GET", &format!("/api/v1/deploy/releases/{v4}/timeline"), Some(&s.dev), None).await;
    let failed = timeline.data()["list"].as_array().unwrap().iter().find(|e| e["action"] == "compose.rollback_failed").cloned().unwrap_or_else(|| panic!("{}", timeline.body));
    assert_eq!(failed["detail"]["error_key"], "compose_rollback_failed", "{failed}");
    assert!(page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v4")), "v4 keeps serving");

    // Seed path 11: the same compose release said to the AI command center —
    // preview on the host, confirmation, the inbox, compose up; the inbox and
    // the deployment page show the session's release.
    let ai = s.app.rest("POST", "/api/v1/ai/sessions", Some(&s.dev), Some(json!({ "lang": "zh-CN" }))).await.data()["session_id"].as_str().unwrap().to_string();
    // An install preview said to a session acts with the user's own rights: the
    // operator may not install; the admin's preview reaches the hosts and waits
    // for a confirmation, and "取消" drops it.
    let pre = s.app.rest("POST", &format!("/api/v1/ai/sessions/{ai}/messages"), Some(&s.dev), Some(json!({ "text": "预检 env-compose-prod" }))).await;
    let pre = pre.data()["events"].as_array().unwrap().clone();
    let result = pre.iter().find(|e| e["action"] == "ai.preview_result").unwrap_or_else(|| panic!("{pre:?}"));
    assert_eq!((result["detail"]["ok"].as_bool(), result["detail"]["error_key"].as_str()), (Some(false), Some("permission_denied")), "{result}");
    let admin_ai = s.app.rest("POST", "/api/v1/ai/sessions", Some(&s.admin), Some(json!({ "lang": "en" }))).await.data()["session_id"].as_str().unwrap().to_string();
    let pre = s.app.rest("POST", &format!("/api/v1/ai/sessions/{admin_ai}/messages"), Some(&s.admin), Some(json!({ "text": "preflight env-compose-prod" }))).await;
    let pre = pre.data()["events"].as_array().unwrap().clone();
    let ask = pre.iter().find(|e| e["action"] == "ai.user_confirmation_required").unwrap_or_else(|| panic!("{pre:?}"));
    assert_eq!(ask["detail"]["pending"]["kind"], "install", "{ask}");
    let dropped = s.app.rest("POST", &format!("/api/v1/ai/sessions/{admin_ai}/messages"), Some(&s.admin), Some(json!({ "text": "cancel" }))).await;
    assert!(dropped.data()["events"].as_array().unwrap().iter().any(|e| e["action"] == "ai.cancelled"), "{}", dropped.body);
    let said = s.app.rest("POST", &format!("/api/v1/ai/sessions/{ai}/messages"), Some(&s.dev), Some(json!({ "text": "把 svc-b 发布到生产" }))).await;
    let said = said.data()["events"].as_array().unwrap().clone();
    let result = said.iter().find(|e| e["action"] == "ai.preview_result").unwrap_or_else(|| panic!("{said:?}"));
    assert_eq!(result["detail"]["ok"], true, "{result}");
    let confirmed = s.app.rest("POST", &format!("/api/v1/ai/sessions/{ai}/messages"), Some(&s.dev), Some(json!({ "text": "确认" }))).await;
    let required = confirmed.data()["events"].as_array().unwrap().iter().find(|e| e["action"] == "ai.approval_required").cloned().unwrap_or_else(|| panic!("{}", confirmed.body));
    let (ticket, v5) = (required["detail"]["approval_ticket"].as_str().unwrap().to_string(), required["detail"]["release_id"].as_str().unwrap().to_string());
    let item = s.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&s.approver), None).await;
    assert_eq!((item.data()["item"]["source"].as_str(), item.data()["item"]["runtime_type"].as_str()), (Some("ai_command_center"), Some("compose")));
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({}))).await.data();
    assert!(eventually(Duration::from_secs(180), async || release_status(&s, &v5).await == "applied").await, "{}", release_status(&s, &v5).await);
    assert!(eventually(Duration::from_secs(30), async || page(&ip, 8080).await.is_some_and(|p| p.contains("svc-b v1"))).await, "the AI's release serves");
    let session = s.app.rest("GET", &format!("/api/v1/ai/sessions/{ai}"), Some(&s.dev), None).await;
    let in_session: Vec<&str> = session.data()["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(eventually(Duration::from_secs(30), async || {
        let v = s.app.rest("GET", &format!("/api/v1/ai/sessions/{ai}"), Some(&s.dev), None).await;
        v.data()["events"].as_array().unwrap().iter().any(|e| e["action"] == "ai.timeline_synced" && e["detail"]["status"] == "applied")
    })
    .await, "the session hears the compose release ended: {in_session:?}");
    let timeline = s.app.rest("GET", &format!("/api/v1/deploy/releases/{v5}/timeline"), Some(&s.dev), None).await;
    let on_page: Vec<&str> = timeline.data()["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["ai.preview_result", "ai.apply_requested", "compose.up_succeeded", "release.applied", "ai.release_status_changed"] {
        assert!(on_page.contains(&a), "{a} on the deployment timeline: {on_page:?}");
    }

    // Uninstall: the rollback hooks leave the host fresh.
    on_host(3, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; true");
    let task = s.roll_back_install("env-compose-prod").await;
    assert_eq!(task["status"], "rolled_back", "{task}");
    assert_eq!(s.app.rest("GET", "/api/v1/environments/env-compose-prod", Some(&s.dev), None).await.data()["status"], "draft");
    assert_eq!(on_host(3, "command -v dockerd || pgrep -x dockerd || ls /opt/opspilot/compose 2>/dev/null || echo gone").trim(), "gone");
    // OpsPilot's staged bundle and task records stay on the host; the test tidies them.
    on_host(3, "rm -rf /opt/opspilot");
    assert!(page(&ip, 8080).await.is_none(), "nothing serves after the uninstall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_systemd_host_the_engine_is_an_enabled_unit_that_systemd_restarts_and_the_rollback_removes_it() {
    let s = site(compose_bundle()).await;
    let h = &env::shared()["systemdHost"];
    let on = |script: &str| in_container(h["container"].as_str().unwrap(), script);
    assert_eq!(on("ps -p 1 -o comm="), "systemd\n", "the host runs systemd as PID 1");
    env::make_fresh(h["container"].as_str().unwrap());
    assert_eq!(on("command -v dockerd; systemctl cat opspilot-dockerd.service 2>/dev/null"), "", "the systemd host is not fresh");
    // The non-root user, through sudo: systemctl needs root.
    s.add_host_entry("sd-1", h, h["hostKey"]["fingerprint"].as_str().unwrap(), false, json!({})).await;
    s.compose_env("env-systemd", &["sd-1"], json!({})).await;
    let p = s.preview("env-systemd", json!({})).await;
    let t = s.apply("env-systemd", p["preview_ref"].as_str().unwrap()).await;
    let task = s.finished_task("env-systemd", t["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(step(&task, "install-compose.sh")["nodes"][0]["outputs"]["init"], "systemd", "{task}");
    assert_eq!(on("systemctl is-enabled opspilot-dockerd.service; systemctl is-active opspilot-dockerd.service"), "enabled\nactive\n");
    let health = || async { s.app.rest("POST", "/api/v1/environments/env-systemd/health/check", Some(&s.dev), None).await.data()["healthy"] == json!(true) };
    assert!(health().await, "the engine answers");

    // The engine dies: systemd starts it again, nobody has to repair.
    let before = on("systemctl show -p MainPID --value opspilot-dockerd.service");
    on("kill -KILL $(systemctl show -p MainPID --value opspilot-dockerd.service)");
    assert!(
        eventually(Duration::from_secs(60), async || {
            let now = on("systemctl show -p MainPID --value opspilot-dockerd.service");
            now != before && now.trim() != "0" && health().await
        })
        .await,
        "systemd did not bring the engine back: {}",
        on("systemctl status --no-pager opspilot-dockerd.service")
    );

    let task = s.roll_back_install("env-systemd").await;
    assert_eq!(task["status"], "rolled_back", "{task}");
    assert_eq!(on("systemctl cat opspilot-dockerd.service >/dev/null 2>&1 && echo unit-left; pgrep -x dockerd && echo dockerd-left; command -v dockerd; true"), "");
    on("rm -rf /opt/opspilot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_bundle_is_refused_at_preview_with_its_error() {
    let cases: [(&str, &dyn Fn(&Path), &str); 4] = [
        ("missing", &|d: &Path| std::fs::remove_file(d.join("bin/linux-amd64/docker-compose")).unwrap(), "artifact_missing"),
        (
            "flipped",
            &|d: &Path| {
                let f = d.join("bin/linux-amd64/runc");
                let mut bytes = std::fs::read(&f).unwrap();
                bytes[1000] ^= 0x01;
                std::fs::remove_file(&f).unwrap();
                std::fs::write(&f, bytes).unwrap();
            },
            "artifact_checksum_mismatch",
        ),
        (
            "signature",
            &|d: &Path| {
                let f = d.join("checksums/SHA256SUMS");
                let text = std::fs::read_to_string(&f).unwrap().replacen('0', "1", 1);
                std::fs::remove_file(&f).unwrap();
                std::fs::write(&f, text).unwrap();
            },
            "artifact_checksum_mismatch",
        ),
        (
            "traversal",
            &|d: &Path| {
                let f = d.join("manifests/index.yaml");
                let text = std::fs::read_to_string(&f).unwrap().replacen("path: hooks/preflight.sh", "path: ../../../../etc/passwd", 1);
                std::fs::remove_file(&f).unwrap();
                std::fs::write(&f, text).unwrap();
            },
            "artifact_manifest_missing",
        ),
    ];
    for (tag, break_it, expected) in cases {
        let dir = bundle_copy(tag);
        break_it(&dir);
        let s = site(&dir).await;
        s.add_host("bundle-host", 0, true, json!({})).await;
        s.compose_env("env-bundle", &["bundle-host"], json!({})).await;
        let a = s.app.rest("POST", "/api/v1/environments/env-bundle/install/preview", Some(&s.admin), Some(json!({}))).await;
        assert_eq!(a.error_key(), expected, "{tag}: {}", a.body);
        assert!(a.body["data"]["hint"].as_str().is_some_and(|h| !h.is_empty()), "{tag}: the error carries a hint");
        let tasks = s.app.rest("GET", "/api/v1/environments/env-bundle/install/tasks", Some(&s.admin), None).await;
        assert_eq!(tasks.data()["total"], 0, "{tag}: nothing ran");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_faults_are_refused_with_their_errors_and_a_changed_host_key_needs_an_admin() {
    let _host = HOST_LOCKS[1].lock().await;
    let s = site(compose_bundle()).await;
    s.add_host("fault-host", 1, true, json!({})).await;
    s.compose_env("env-faults", &["fault-host"], json!({})).await;
    assert!(s.preview("env-faults", json!({ "action": "preflight" })).await["preview_ref"].is_string());

    // Wrong key: the ops user's key offered as root.
    let h = &env::shared()["hosts"][1];
    let wrong = std::fs::read_to_string(h["nonRoot"]["privateKeyPath"].as_str().unwrap()).unwrap();
    let body = json!({ "name": "wrong-key", "project_id": "proj-alpha", "ip": h["ip"], "ssh_user": "root", "auth": "key", "private_key": wrong });
    s.app.rest("POST", "/api/v1/hosts", Some(&s.admin), Some(body)).await.data();
    s.app.rest("POST", "/api/v1/hosts/wrong-key/host-key/trust", Some(&s.admin), Some(json!({ "fingerprint": host_fingerprint(1) }))).await.data();
    s.compose_env("env-wrong-key", &["wrong-key"], json!({})).await;
    let a = s.app.rest("POST", "/api/v1/environments/env-wrong-key/install/preview", Some(&s.admin), Some(json!({}))).await;
    assert_eq!(a.error_key(), "ssh_auth_failed", "{}", a.body);
    assert_eq!(s.app.rest("GET", "/api/v1/hosts/wrong-key", Some(&s.admin), None).await.data()["status"], "auth_failed");

    // Only an admin trusts keys.
    let denied = s.app.rest("POST", "/api/v1/hosts/fault-host/host-key/trust", Some(&s.dev), Some(json!({ "fingerprint": host_fingerprint(1) }))).await;
    assert_eq!(denied.error_key(), "permission_denied");

    // The host key changes: refused until an admin trusts the new key.
    let old = host_fingerprint(1);
    host_fault("rotate-hostkey", 1);
    let new = host_fingerprint(1);
    assert_ne!(old, new);
    let check = s.app.rest("POST", "/api/v1/hosts/fault-host/check", Some(&s.admin), None).await;
    assert_eq!(check.data()["reachable"], false);
    assert_eq!(check.data()["error_key"], "ssh_host_key_mismatch");
    assert_eq!(check.data()["presented_fingerprint"], new.as_str());
    let a = s.app.rest("POST", "/api/v1/environments/env-faults/install/preview", Some(&s.admin), Some(json!({}))).await;
    assert_eq!(a.error_key(), "ssh_host_key_mismatch", "{}", a.body);
    let host = s.app.rest("GET", "/api/v1/hosts/fault-host", Some(&s.admin), None).await;
    assert_eq!(host.data()["status"], "key_mismatch");
    assert_eq!(host.data()["host_key_fingerprint"], old.as_str(), "the old pin stays until an admin acts");
    s.app.rest("POST", "/api/v1/hosts/fault-host/host-key/trust", Some(&s.admin), Some(json!({ "fingerprint": new }))).await.data();
    assert_eq!(s.app.rest("POST", "/api/v1/hosts/fault-host/check", Some(&s.admin), None).await.data()["reachable"], true);

    // The host stops: unreachable.
    host_fault("stop", 1);
    let a = s.app.rest("POST", "/api/v1/environments/env-faults/install/preview", Some(&s.admin), Some(json!({}))).await;
    host_fault("start", 1);
    assert_eq!(a.error_key(), "ssh_unreachable", "{}", a.body);
    assert_eq!(s.app.rest("GET", "/api/v1/hosts/fault-host", Some(&s.admin), None).await.data()["status"], "unreachable");
    let audit = s.app.rest("GET", "/api/v1/audit/events?action=host.connectivity_checked", Some(&s.admin), None).await;
    assert!(audit.data()["total"].as_i64().unwrap() >= 3, "every failed contact is recorded: {}", audit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_is_edited_and_removed_and_registered_again_it_trusts_no_key() {
    let _host = HOST_LOCKS[1].lock().await;
    let s = site(compose_bundle()).await;
    s.add_host("edit-host", 1, true, json!({ "rack": "a1" })).await;
    let patch = |body: Value| s.app.rest("PATCH", "/api/v1/hosts/edit-host", Some(&s.admin), Some(body));
    let check = || async { s.app.rest("POST", "/api/v1/hosts/edit-host/check", Some(&s.admin), None).await.data().clone() };
    let host = || async { s.app.rest("GET", "/api/v1/hosts/edit-host", Some(&s.admin), None).await.data().clone() };

    // A wrong port, then the right one and new labels.
    assert_eq!(patch(json!({ "port": 2222 })).await.data()["port"], 2222);
    assert_eq!(check().await["error_key"], "ssh_unreachable");
    assert_eq!(host().await["status"], "unreachable");
    patch(json!({ "port": 22, "labels": { "rack": "b2" } })).await.data();
    assert_eq!(check().await["reachable"], true);
    assert_eq!((host().await["labels"]["rack"].as_str(), host().await["status"].as_str()), (Some("b2"), Some("active")));

    // Another login: the ops user with its key, sealed as a new credential.
    let before = host().await["credential_id"].clone();
    let ops_key = std::fs::read_to_string(env::shared()["hosts"][1]["nonRoot"]["privateKeyPath"].as_str().unwrap()).unwrap();
    patch(json!({ "ssh_user": "ops", "private_key": ops_key })).await.data();
    assert_ne!(host().await["credential_id"], before, "a new secret is a new credential");
    assert_eq!(check().await["reachable"], true, "ops logs in with its key");
    assert!(!s.app.rest("GET", "/api/v1/audit/events?action=host.updated", Some(&s.admin), None).await.body.to_string().contains("PRIVATE KEY"), "no secret in events");
    // Bad changes are refused and change nothing.
    assert_eq!(patch(json!({ "auth": "password" })).await.error_key(), "validation_error");
    assert_eq!(patch(json!({ "ip": "10.0.0.300" })).await.error_key(), "validation_error");
    assert_eq!((host().await["ssh_user"].as_str(), host().await["auth_type"].as_str()), (Some("ops"), Some("key")));

    // In use: refused; unused: gone. A machine serves one environment.
    s.compose_env("env-edit", &["edit-host"], json!({})).await;
    s.app.rest("POST", "/api/v1/environments", Some(&s.admin), Some(json!({ "name": "env-other", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose" }))).await.data();
    let twice = s.app.rest("PUT", "/api/v1/environments/env-other/nodes", Some(&s.admin), Some(json!({ "nodes": [{ "host_id": "edit-host", "node_role": "compose_manager" }] }))).await;
    assert_eq!(twice.error_key(), "resource_conflict", "{}", twice.body);
    assert!(twice.body.to_string().contains("env-edit"), "the error names the environment that has the host: {}", twice.body);
    let refused = s.app.rest("DELETE", "/api/v1/hosts/edit-host", Some(&s.admin), None).await;
    assert_eq!(refused.error_key(), "resource_conflict", "{}", refused.body);
    s.app.rest("DELETE", "/api/v1/environments/env-edit", Some(&s.admin), None).await.data();
    s.app.rest("DELETE", "/api/v1/hosts/edit-host", Some(&s.admin), None).await.data();
    assert_eq!(s.app.rest("GET", "/api/v1/hosts/edit-host", Some(&s.admin), None).await.error_key(), "not_found");
    assert_eq!(s.app.rest("POST", "/api/v1/hosts/edit-host/check", Some(&s.admin), None).await.error_key(), "not_found");

    // Registered again under the name: the key trusted before is not.
    let h = &env::shared()["hosts"][1];
    let key = std::fs::read_to_string(h["root"]["privateKeyPath"].as_str().unwrap()).unwrap();
    let again = s.app.rest("POST", "/api/v1/hosts", Some(&s.admin), Some(json!({ "name": "edit-host", "project_id": "proj-alpha", "ip": h["ip"], "ssh_user": "root", "auth": "key", "private_key": key }))).await;
    assert_eq!(again.data()["status"], "pending_trust");
    assert_eq!(check().await["error_key"], "ssh_host_key_mismatch", "nothing is trusted for the new registration");
    assert_eq!(host().await["host_key_fingerprint"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_hook_fails_its_step_with_exit_code_and_stderr_and_approvals_gate_installs() {
    let dir = bundle_copy("failing-hook");
    let hook = dir.join("hooks/preflight.sh");
    std::fs::remove_file(&hook).unwrap();
    std::fs::write(&hook, "#!/usr/bin/env bash\nset -euo pipefail\necho \"[INFO] check=disk result=failed attempt=$OPS_RETRY_ATTEMPT of=$OPS_RETRY_MAX\"\necho 'boom: the disk is on fire' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // One retry for this hook: the index decides.
    let index = dir.join("manifests/index.yaml");
    let text = std::fs::read_to_string(&index).unwrap();
    let at = text.find("name: preflight.sh").unwrap();
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen("retryable: false", "retryable: true", 1).replacen("maxRetries: 0", "maxRetries: 1", 1);
    std::fs::remove_file(&index).unwrap();
    std::fs::write(&index, format!("{head}{tail}")).unwrap();
    resign(&dir);
    let _host = HOST_LOCKS[0].lock().await;
    let s = site(&dir).await;
    // As the ops user: every command goes through sudo -n.
    s.add_host("hook-host", 0, false, json!({})).await;
    s.compose_env("env-hook", &["hook-host"], json!({ "tier": "prod" })).await;

    // tier=prod: the task waits in the inbox; a rejection ends it unrun.
    let p = s.preview("env-hook", json!({ "action": "preflight" })).await;
    assert_eq!(p["steps"], json!(["upload-bundle", "preflight.sh"]));
    let t = s.apply("env-hook", p["preview_ref"].as_str().unwrap()).await;
    assert_eq!(t["status"], "pending_approval");
    let ticket = t["approval_ticket"].as_str().unwrap().to_string();
    let inbox = s.app.rest("GET", "/api/v1/approvals/inbox?view=pending&scope_type=install", Some(&s.approver), None).await;
    assert!(inbox.data()["list"].as_array().unwrap().iter().any(|i| i["ticket"] == ticket.as_str()), "{}", inbox.body);
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/reject"), Some(&s.approver), Some(json!({ "comment": "not today" }))).await.data();
    let task = s.finished_task("env-hook", t["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["error_key"], "approval_rejected");
    assert_eq!(task["started_at"], Value::Null, "a rejected task never ran");

    // Approved: it runs, and the hook's failure is recorded with its exit code and stderr.
    let p = s.preview("env-hook", json!({ "action": "preflight" })).await;
    let t = s.apply("env-hook", p["preview_ref"].as_str().unwrap()).await;
    let ticket = t["approval_ticket"].as_str().unwrap().to_string();
    s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({}))).await.data();
    let task = s.finished_task("env-hook", t["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error_key"], "preflight_failed");
    assert_eq!(step(&task, "upload-bundle")["status"], "succeeded");
    let attempts = step(&task, "preflight.sh")["nodes"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 2, "the hook is retried once, as its definition says: {attempts:?}");
    assert_eq!(attempts[0]["status"], "retrying");
    assert_eq!(attempts[0]["outputs"]["attempt"], "0");
    let failed = &attempts[1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["outputs"]["attempt"], "1");
    assert_eq!(failed["outputs"]["of"], "1");
    assert_eq!(failed["exit_code"], 3);
    assert!(failed["stderr_excerpt"].as_str().unwrap().contains("the disk is on fire"), "{failed}");
    assert_eq!(failed["outputs"]["check"], "disk");
    let events = s.app.rest("GET", "/api/v1/audit/events?action=environment.install_failed", Some(&s.admin), None).await;
    let detail = &events.data()["list"][0]["detail"];
    assert_eq!(detail["step_name"], "preflight.sh");
    assert_eq!(detail["exit_code"], 3);
    assert_eq!(detail["error_key"], "preflight_failed");
    assert_eq!(s.app.rest("GET", "/api/v1/environments/env-hook", Some(&s.admin), None).await.data()["status"], "draft", "a preflight leaves the status alone");
    on_host(0, "rm -rf /opt/opspilot");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_stops_a_running_hook_on_its_host_and_ends_a_waiting_task_with_its_ticket() {
    let dir = bundle_copy("slow-hook");
    let hook = dir.join("hooks/preflight.sh");
    std::fs::remove_file(&hook).unwrap();
    // Sleeps 311 s, or install_options.sleep seconds.
    let script = r#"#!/usr/bin/env bash
echo '[INFO] check=slow result=waiting'
s=$(grep -o '"sleep": *"[0-9]*"' "$OPS_WORKDIR/context.json" | grep -o '[0-9]*"$' | tr -d '"')
sleep "${s:-311}"
echo '[INFO] check=slow result=ok'
"#;
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    resign(&dir);
    let _host = HOST_LOCKS[0].lock().await;
    let s = site(&dir).await;
    s.add_host("cancel-host", 0, false, json!({})).await;
    s.compose_env("env-cancel", &["cancel-host"], json!({})).await;

    // Running: the hook is stopped on the host, nothing after it starts.
    let p = s.preview("env-cancel", json!({ "action": "install" })).await;
    let t = s.apply("env-cancel", p["preview_ref"].as_str().unwrap()).await;
    let task_id = t["task_id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(60), async || !on_host(0, "pgrep -f '[s]leep 311'").is_empty()).await, "the slow hook never started");
    let by_dev = s.app.rest("POST", &format!("/api/v1/environments/env-cancel/install/tasks/{task_id}/cancel"), Some(&s.dev), Some(json!({}))).await;
    assert_eq!(by_dev.error_key(), "permission_denied", "operators do not stop installs: {}", by_dev.body);
    let c = s.app.rest("POST", &format!("/api/v1/environments/env-cancel/install/tasks/{task_id}/cancel"), Some(&s.admin), Some(json!({ "reason": "wrong window" }))).await;
    assert_eq!(c.data()["status"], "cancelling", "{}", c.body);
    let task = s.finished_task("env-cancel", &task_id).await;
    assert_eq!((task["status"].as_str(), task["error_key"].as_str()), (Some("failed"), Some("install_task_cancelled")), "{task}");
    let stopped = &step(&task, "preflight.sh")["nodes"][0];
    assert_eq!(stopped["error_key"], "install_task_cancelled", "{task}");
    assert_eq!(stopped["outputs"]["result"], "waiting", "the lines before the stop are kept: {task}");
    assert_eq!(step(&task, "install-compose.sh")["nodes"], json!([]), "nothing after the cancelled step ran: {task}");
    assert_eq!(on_host(0, "pgrep -f '[s]leep 311'"), "", "the hook's process is gone from the host");
    assert_eq!(s.app.rest("GET", "/api/v1/environments/env-cancel", Some(&s.admin), None).await.data()["status"], "failed", "a cut-short install leaves the environment to repair or roll back");
    let asked = s.app.rest("GET", "/api/v1/audit/events?action=environment.install_cancel_requested", Some(&s.admin), None).await;
    assert_eq!(asked.data()["list"][0]["detail"]["reason"], "wrong window", "{}", asked.body);
    let again = s.app.rest("POST", &format!("/api/v1/environments/env-cancel/install/tasks/{task_id}/cancel"), Some(&s.admin), Some(json!({}))).await;
    assert_eq!(again.error_key(), "install_task_state_invalid", "{}", again.body);

    // A cancel recorded where the runner does not live (another process, or
    // while OpsPilot was down): the runner reads it before its next step.
    let p = s.preview("env-cancel", json!({ "action": "install", "install_options": { "sleep": "4" } })).await;
    let t = s.apply("env-cancel", p["preview_ref"].as_str().unwrap()).await;
    let task_id = t["task_id"].as_str().unwrap().to_string();
    let url = format!("/api/v1/environments/env-cancel/install/tasks/{task_id}");
    assert!(eventually(Duration::from_secs(60), async || step(s.app.rest("GET", &url, Some(&s.admin), None).await.data(), "preflight.sh")["status"] == "running").await);
    s.app.running.state.commands.install_stops.lock().unwrap().remove(&task_id.parse().unwrap());
    let c = s.app.rest("POST", &format!("{url}/cancel"), Some(&s.admin), Some(json!({}))).await;
    assert_eq!(c.data()["status"], "cancelling", "{}", c.body);
    let task = s.finished_task("env-cancel", &task_id).await;
    assert_eq!(task["error_key"], "install_task_cancelled", "{task}");
    assert_eq!(step(&task, "preflight.sh")["nodes"][0]["status"], "succeeded", "the step under way ran to its end: {task}");
    assert_eq!(step(&task, "install-compose.sh")["nodes"], json!([]), "the next step never started: {task}");

    // Waiting in the inbox: ends unrun, and the ticket is cancelled with it.
    s.app.rest("DELETE", "/api/v1/environments/env-cancel", Some(&s.admin), None).await.data();
    s.compose_env("env-cancel-prod", &["cancel-host"], json!({ "tier": "prod" })).await;
    let p = s.preview("env-cancel-prod", json!({ "action": "preflight" })).await;
    let t = s.apply("env-cancel-prod", p["preview_ref"].as_str().unwrap()).await;
    let (task_id, ticket) = (t["task_id"].as_str().unwrap().to_string(), t["approval_ticket"].as_str().unwrap().to_string());
    let c = s.app.rest("POST", &format!("/api/v1/environments/env-cancel-prod/install/tasks/{task_id}/cancel"), Some(&s.admin), Some(json!({}))).await;
    assert_eq!(c.data()["status"], "failed", "{}", c.body);
    let task = s.finished_task("env-cancel-prod", &task_id).await;
    assert_eq!((task["error_key"].as_str(), &task["started_at"]), (Some("install_task_cancelled"), &Value::Null), "{task}");
    let item = s.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&s.approver), None).await;
    assert_eq!(item.data()["item"]["status"], "cancelled", "{}", item.body);
    let late = s.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&s.approver), Some(json!({}))).await;
    assert_eq!(late.error_key(), "approval_ticket_decided", "a cancelled ticket cannot be approved: {}", late.body);
    on_host(0, "rm -rf /opt/opspilot");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_apply_follows_the_preview_rules() {
    let s = site_with(compose_bundle(), |c| c.preview_ttl_seconds = 2).await;
    s.add_host("rules-host", 0, true, json!({})).await;
    s.add_host("rules-host-2", 1, true, json!({})).await;
    s.compose_env("env-rules", &["rules-host"], json!({})).await;
    let apply = |pref: Value, confirm: bool| {
        let s = &s;
        async move { s.app.rest("POST", "/api/v1/environments/env-rules/install/apply", Some(&s.admin), Some(json!({ "preview_ref": pref, "confirm": confirm }))).await }
    };
    assert_eq!(apply(Value::Null, true).await.error_key(), "preview_required");
    assert_eq!(apply(json!("inst-prev-nothing"), true).await.error_key(), "preview_required");
    let p = s.preview("env-rules", json!({ "action": "preflight" })).await;
    assert_eq!(apply(p["preview_ref"].clone(), false).await.error_key(), "validation_error");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(apply(p["preview_ref"].clone(), true).await.error_key(), "preview_expired");
    let p = s.preview("env-rules", json!({ "action": "preflight" })).await;
    let nodes = json!({ "nodes": [{ "host_id": "rules-host", "node_role": "compose_manager" }, { "host_id": "rules-host-2", "node_role": "compose_worker" }] });
    s.app.rest("PUT", "/api/v1/environments/env-rules/nodes", Some(&s.admin), Some(nodes)).await.data();
    assert_eq!(apply(p["preview_ref"].clone(), true).await.error_key(), "preview_mismatch");
    let bad = s.app.rest("PUT", "/api/v1/environments/env-rules/nodes", Some(&s.admin), Some(json!({ "nodes": [{ "host_id": "rules-host", "node_role": "control_plane" }] }))).await;
    assert_eq!(bad.error_key(), "node_role_invalid");
    s.app.rest("PUT", "/api/v1/environments/env-rules/nodes", Some(&s.admin), Some(json!({ "nodes": [{ "host_id": "rules-host", "node_role": "compose_worker" }] }))).await.data();
    let few = s.app.rest("POST", "/api/v1/environments/env-rules/install/preview", Some(&s.admin), Some(json!({}))).await;
    assert_eq!(few.error_key(), "insufficient_nodes");
    let tasks = s.app.rest("GET", "/api/v1/environments/env-rules/install/tasks", Some(&s.admin), None).await;
    assert_eq!(tasks.data()["total"], 0, "no refused apply created a task");
    let denied = s.app.rest("POST", "/api/v1/environments/env-rules/install/preview", Some(&s.dev), Some(json!({}))).await;
    assert_eq!(denied.error_key(), "permission_denied");

    // A refused host leaves nothing behind, not even its secret.
    let credentials = || async { s.app.rest("GET", "/api/v1/credentials", Some(&s.admin), None).await.data()["list"].as_array().unwrap().len() };
    let before = credentials().await;
    let bad = json!({ "name": "bad-ip", "project_id": "proj-alpha", "ip": "10.0.0.300", "ssh_user": "root", "auth": "password", "password": "secret" });
    assert_eq!(s.app.rest("POST", "/api/v1/hosts", Some(&s.admin), Some(bad)).await.error_key(), "validation_error");
    let twice = json!({ "name": "rules-host", "project_id": "proj-alpha", "ip": "10.0.0.1", "ssh_user": "root", "auth": "password", "password": "secret" });
    assert_eq!(s.app.rest("POST", "/api/v1/hosts", Some(&s.admin), Some(twice)).await.error_key(), "resource_conflict");
    assert_eq!(credentials().await, before);

    // Deleting: refused while a compose target uses the environment, then gone.
    let t = json!({ "name": "target-rules", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "env": "staging", "environment_id": "env-rules", "host_id": "rules-host" });
    s.app.rest("POST", "/api/v1/deploy/targets", Some(&s.admin), Some(t)).await.data();
    assert_eq!(s.app.rest("DELETE", "/api/v1/environments/env-rules", Some(&s.admin), None).await.error_key(), "resource_conflict");
    s.compose_env("env-spare", &[], json!({})).await;
    assert_eq!(s.app.rest("DELETE", "/api/v1/environments/env-spare", Some(&s.admin), None).await.data()["deleted"], true);
    assert_eq!(s.app.rest("GET", "/api/v1/environments/env-spare", Some(&s.admin), None).await.error_key(), "environment_not_found");
    assert_eq!(s.app.rest("PUT", "/api/v1/environments/env-spare/nodes", Some(&s.admin), Some(json!({ "nodes": [] }))).await.error_key(), "environment_not_found");
}

fn serve(db_url: &str, bundle: &Path) -> Server {
    Server::start(db_url, &[("OPSPILOT_SCRIPT_ROOT", bundle.display().to_string()), ("OPSPILOT_BUNDLE_TRUSTED_KEY", env::bundle_public_key())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_install_survives_sigkill_of_opspilot_and_finished_node_steps_do_not_run_again() {
    // A verify hook that takes a few seconds: the moment to kill OpsPilot.
    let dir = bundle_copy("slow-verify");
    let hook = dir.join("hooks/post-install-verify.sh");
    let text = std::fs::read_to_string(&hook).unwrap().replacen("set -euo pipefail\n", "set -euo pipefail\nsleep 6\n", 1);
    std::fs::remove_file(&hook).unwrap();
    std::fs::write(&hook, text).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    resign(&dir);

    let db = opspilot_tests::TestDb::new().await;
    let mut server = serve(&db.url, &dir);
    let admin = server.admin().await;
    let b = &server;
    b.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-alpha" }))).await;
    b.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-app", "project_id": "proj-alpha" }))).await;
    let h = &env::shared()["hosts"][2];
    let key = std::fs::read_to_string(h["root"]["privateKeyPath"].as_str().unwrap()).unwrap();
    b.rest("POST", "/api/v1/hosts", Some(&admin), Some(json!({ "name": "resume-host", "project_id": "proj-alpha", "ip": h["ip"], "ssh_user": "root", "auth": "key", "private_key": key }))).await;
    b.rest("POST", "/api/v1/hosts/resume-host/host-key/trust", Some(&admin), Some(json!({ "fingerprint": host_fingerprint(2) }))).await;
    b.rest("POST", "/api/v1/environments", Some(&admin), Some(json!({ "name": "env-resume", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose" }))).await;
    b.rest("PUT", "/api/v1/environments/env-resume/nodes", Some(&admin), Some(json!({ "nodes": [{ "host_id": "resume-host", "node_role": "compose_manager" }] }))).await;
    let p = b.rest("POST", "/api/v1/environments/env-resume/install/preview", Some(&admin), Some(json!({}))).await;
    let t = b.rest("POST", "/api/v1/environments/env-resume/install/apply", Some(&admin), Some(json!({ "preview_ref": p["preview_ref"], "confirm": true }))).await;
    let task_id = t["task_id"].as_str().unwrap().to_string();
    let task_url = format!("/api/v1/environments/env-resume/install/tasks/{task_id}");

    // Kill it while the verify step runs.
    let verifying = eventually(Duration::from_secs(300), async || {
        let v = b.rest("GET", &task_url, Some(&admin), None).await;
        step(&v, "post-install-verify.sh")["status"] == "running"
    })
    .await;
    assert!(verifying, "the verify step never started");
    server.kill();

    let mut server = serve(&db.url, &dir);
    let admin = server.admin().await;
    let task = wait_task(&server.base, &admin, "env-resume", &task_id).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let started = db
        .client()
        .await
        .query("SELECT detail->>'step_name', count(*) FROM events WHERE action = 'environment.install_step_started' AND detail->>'task_id' = $1 GROUP BY 1", &[&task_id])
        .await
        .unwrap();
    let count = |name: &str| started.iter().find(|r| r.get::<_, String>(0) == name).map(|r| r.get::<_, i64>(1)).unwrap_or(0);
    assert_eq!(count("upload-bundle"), 1, "finished node-steps are not run again");
    assert_eq!(count("preflight.sh"), 1);
    assert_eq!(count("install-compose.sh"), 1);
    assert_eq!(count("post-install-verify.sh"), 2, "the interrupted step runs again");

    // Uninstall, so the host is fresh again.
    let b = &server;
    let p = b.rest("POST", "/api/v1/environments/env-resume/install/preview", Some(&admin), Some(json!({ "action": "rollback", "install_options": { "purge": "true" } }))).await;
    let t = b.rest("POST", "/api/v1/environments/env-resume/install/rollback", Some(&admin), Some(json!({ "preview_ref": p["preview_ref"], "confirm": true }))).await;
    let task = wait_task(&b.base, &admin, "env-resume", t["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "rolled_back", "{task}");
    assert_eq!(on_host(2, "command -v dockerd || ls /opt/opspilot/compose 2>/dev/null || echo gone").trim(), "gone");
    on_host(2, "rm -rf /opt/opspilot");
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphql_runs_an_install_with_live_progress_and_compose_errors_name_their_cause() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let _host = HOST_LOCKS[0].lock().await;
    let s = site(compose_bundle()).await;
    s.add_host("gql-host", 0, true, json!({})).await;
    let created = s.app.gql(Some(&s.admin), r#"mutation { createEnvironment(input: {name: "env-gql", projectId: "proj-alpha", teamId: "team-app", runtimeType: "compose"}) { result } }"#, json!({})).await;
    assert!(created["errors"].is_null(), "{created}");
    let bound = s.app.gql(Some(&s.admin), r#"mutation { bindNodes(environment: "env-gql", input: {nodes: [{hostId: "gql-host", nodeRole: "compose_manager"}]}) { result } }"#, json!({})).await;
    assert!(bound["errors"].is_null(), "{bound}");
    let preview = s.app.gql(Some(&s.admin), r#"mutation { previewInstall(environment: "env-gql", input: {action: "preflight"}) { result } }"#, json!({})).await;
    let preview_ref = preview["data"]["previewInstall"]["result"]["preview_ref"].as_str().unwrap_or_else(|| panic!("{preview}")).to_string();

    // Subscribe to the environment's install progress, then start the task.
    let mut ws = ws_connect(&s.app, &s.admin).await;
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"));
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { installTaskProgress(environment: \"env-gql\") { kind taskId action log { stepIndex line } } }" } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applied = s.app.gql(Some(&s.admin), "mutation($p: String) { applyInstall(environment: \"env-gql\", input: {previewRef: $p, confirm: true}) { result } }", json!({ "p": preview_ref })).await;
    let task_id = applied["data"]["applyInstall"]["result"]["task_id"].as_str().unwrap_or_else(|| panic!("{applied}")).to_string();
    let (mut saw_log, mut saw_step) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(saw_log && saw_step) && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await else { break };
        let v: Value = serde_json::from_str(&t).unwrap();
        let item = &v["payload"]["data"]["installTaskProgress"];
        saw_log |= item["kind"] == "log" && item["log"]["line"].as_str().is_some_and(|l| !l.is_empty());
        saw_step |= item["kind"] == "event" && item["action"] == "environment.install_step_succeeded";
    }
    assert!(saw_log && saw_step, "live log lines and step events arrive over the subscription (log {saw_log}, step {saw_step})");
    let task = s.finished_task("env-gql", &task_id).await;
    assert_eq!(task["status"], "succeeded", "the real preflight passes on a fresh host: {task}");
    let q = s
        .app
        .gql(
            Some(&s.admin),
            "query($t: UUID!) { installTask(environment: \"env-gql\", taskId: $t) { action status steps { name status nodes { exitCode outputs logLines } } }
               installTaskLogs(environment: \"env-gql\", taskId: $t, stepIndex: 1) { line stream }
               environment(id: \"env-gql\") { status nodes { hostName nodeRole } }
               host(id: \"gql-host\") { status hostKeyFingerprint } }",
            json!({ "t": task_id }),
        )
        .await;
    let task = &q["data"]["installTask"];
    assert_eq!((task["action"].as_str(), task["status"].as_str()), (Some("preflight"), Some("succeeded")), "{q}");
    assert_eq!(task["steps"][1]["name"], "preflight.sh", "{q}");
    assert_eq!(task["steps"][1]["nodes"][0]["exitCode"], 0, "{q}");
    assert!(task["steps"][1]["nodes"][0]["outputs"]["preflight_summary"].is_string(), "{q}");
    let lines = q["data"]["installTaskLogs"].as_array().unwrap_or_else(|| panic!("{q}"));
    assert_eq!(lines.len() as i64, task["steps"][1]["nodes"][0]["logLines"].as_i64().unwrap(), "every line the step counted is stored: {q}");
    assert_eq!(q["data"]["environment"]["nodes"], json!([{ "hostName": "gql-host", "nodeRole": "compose_manager" }]), "{q}");
    assert_eq!(q["data"]["environment"]["status"], "draft", "a preflight leaves the environment as it was: {q}");
    assert_eq!(q["data"]["host"]["status"], "active", "{q}");
    assert_eq!(q["data"]["host"]["hostKeyFingerprint"].as_str(), Some(host_fingerprint(0).as_str()), "{q}");

    // Compose on a host without Docker: the preview names the missing binary.
    let svc = json!({ "name": "svc-c", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "manifest_template": "services:\n  web:\n    image: opspilot-busybox:1\n" });
    s.app.rest("POST", "/api/v1/deploy/services", Some(&s.admin), Some(svc)).await.data();
    for name in ["target-c1", "target-c2"] {
        let t = json!({ "name": name, "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "env": "staging", "environment_id": "env-gql", "project_name": "same-project" });
        s.app.rest("POST", "/api/v1/deploy/targets", Some(&s.admin), Some(t)).await.data();
    }
    let params = |t: &str| json!({ "service_id": "svc-c", "target_id": t, "env": "staging" });
    let a = s.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&s.dev), Some(params("target-c1"))).await;
    assert_eq!(a.error_key(), "compose_project_conflict", "{}", a.body);
    let missing_target = json!({ "name": "target-c3", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "env": "staging", "environment_id": "env-gql", "project_name": "svc-c-staging" });
    s.app.rest("POST", "/api/v1/deploy/targets", Some(&s.admin), Some(missing_target)).await.data();
    let a = s.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&s.dev), Some(params("target-c3"))).await;
    assert_eq!(a.error_key(), "compose_binary_missing", "{}", a.body);
    let failed = s.app.rest("GET", "/api/v1/audit/events?action=compose.preflight_failed", Some(&s.admin), None).await;
    assert_eq!(failed.data()["list"][0]["detail"]["error_key"], "compose_binary_missing");
    on_host(0, "rm -rf /opt/opspilot");
}
