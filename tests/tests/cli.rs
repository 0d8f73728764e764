//! The real `opspilot` binary: serve (with its log captured), migrate,
//! demo-data, user create, replay, audit verify, projections rebuild — and
//! a scan proving secrets reach no event, no table in clear and no log line.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opspilot_tests::{cli, opspilot_bin, test_master_key, TestDb};
use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
    stdout: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(db: &TestDb, env: &[(&str, &str)]) -> Server {
    let dir = std::env::temp_dir().join(format!("opspilot-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let log = dir.join("server.log");
    let stdout = dir.join("stdout.log");
    let mut cmd = Command::new(opspilot_bin());
    cmd.arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("OPSPILOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPSPILOT_DATA_DIR", dir.join("data"))
        .env("OPSPILOT_LOG", "debug")
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("opspilot serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = opspilot_tests::eventually(Duration::from_secs(30), async || {
        http.get(format!("{base}/readyz")).send().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(ready, "server did not become ready: {}", std::fs::read_to_string(&log).unwrap_or_default());
    Server { child, base, log, stdout }
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut r = reqwest::Client::new().post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap().json().await.unwrap()
}

async fn get(base: &str, path: &str, token: &str) -> Value {
    reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn secrets_never_reach_events_tables_or_the_log() {
    let db = TestDb::new().await;
    let admin_pw = "admin-secret-pw-81723";
    let server = serve(&db, &[("OPSPILOT_ADMIN_PASSWORD", admin_pw), ("OPSPILOT_MASTER_KEY", test_master_key())]).await;
    let base = &server.base;
    let admin = post(base, "/api/v1/auth/login", None, json!({ "username": "admin", "password": admin_pw })).await["data"]["token"].as_str().unwrap().to_string();

    let ssh_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----";
    let ssh_pw = "Ssh-Passw0rd-4471-unique";
    let kube_token = "eyJhbGciOiJSUzI1NiJ9.kube-token-payload-99812.sig";
    let user_pw = "User-Passw0rd-5521-unique";
    for (name, kind, secret) in [("cp-1-key", "ssh_private_key", ssh_key), ("cp-1-pw", "ssh_password", ssh_pw), ("prod-token", "bearer_token", kube_token)] {
        let r = post(base, "/api/v1/credentials", Some(&admin), json!({ "name": name, "kind": kind, "secret": secret })).await;
        assert_eq!(r["code"], 1000, "{r}");
        assert!(r["data"]["fingerprint"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert!(!r.to_string().contains(secret));
    }
    let r = post(base, "/api/v1/users", Some(&admin), json!({ "username": "sec_user", "password": user_pw, "roles": ["operator"] })).await;
    assert_eq!(r["code"], 1000, "{r}");
    let user = post(base, "/api/v1/auth/login", None, json!({ "username": "sec_user", "password": user_pw })).await["data"]["token"].as_str().unwrap().to_string();
    let api_token = post(base, "/api/v1/auth/tokens", Some(&user), json!({ "name": "bot" })).await["data"]["token"].as_str().unwrap().to_string();
    // A few reads that would echo secrets if anything leaked.
    let listed = get(base, "/api/v1/credentials", &admin).await;
    assert_eq!(listed["data"]["total"], 3);
    let audit = get(base, "/api/v1/audit/events?page_size=200", &admin).await;
    let mut secrets = vec![ssh_key, ssh_pw, kube_token, user_pw, admin_pw, api_token.as_str(), user.as_str(), admin.as_str()];
    secrets.push("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUtc2VjcmV0LWtleS1tYXRlcmlhbA");
    for s in &secrets {
        assert!(!listed.to_string().contains(s) && !audit.to_string().contains(s), "an API answer shows a secret");
    }

    // Every row of every table, as text: events, projections, and the tables
    // beside the log (which hold only ciphertext and hashes).
    let c = db.client().await;
    let tables: Vec<String> = c
        .query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.contains(&"events".to_string()) && tables.contains(&"credentials".to_string()));
    let mut rows_scanned = 0;
    for t in &tables {
        for row in c.query(&format!("SELECT to_jsonb(x)::text FROM {t} x"), &[]).await.unwrap() {
            let text: String = row.get(0);
            rows_scanned += 1;
            for s in &secrets {
                assert!(!text.contains(s), "table {t} holds a secret in clear: {text}");
            }
        }
    }
    assert!(rows_scanned > 20);
    let stored: Vec<u8> = c.query_one("SELECT ciphertext FROM credentials LIMIT 1", &[]).await.unwrap().get(0);
    assert!(!stored.is_empty());

    let (log_path, stdout_path) = (server.log.clone(), server.stdout.clone());
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap() + &std::fs::read_to_string(&stdout_path).unwrap();
    assert!(log.contains("OpsPilot listening"), "the log was captured");
    for s in &secrets {
        assert!(!log.contains(s), "the server log shows a secret");
    }
}

#[tokio::test]
async fn first_start_generates_the_admin_password_and_the_master_key_file_once() {
    let db = TestDb::new().await;
    let server = serve(&db, &[]).await;
    let out = std::fs::read_to_string(&server.stdout).unwrap();
    let pw = out.split("generated password: ").nth(1).expect("password printed").trim().to_string();
    let r = post(&server.base, "/api/v1/auth/login", None, json!({ "username": "admin", "password": pw })).await;
    assert_eq!(r["code"], 1000);
    let data_dir = server.log.parent().unwrap().join("data");
    let key = data_dir.join("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("master.key"), "the key file's path is logged");
    assert!(!log.contains(&pw), "the generated password is printed, not logged");
    drop(server);

    // A second start on the same database prints no password.
    let again = serve(&db, &[]).await;
    assert!(!std::fs::read_to_string(&again.stdout).unwrap().contains("generated password"));
}

#[tokio::test]
async fn demo_data_user_create_replay_verify_and_rebuild_work_from_the_command_line() {
    let db = TestDb::new().await;
    let (code, out, err) = cli(&db.url, &["migrate"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("migrations applied"));

    let (code, _, err) = cli(&db.url, &["demo-data"], &[]);
    assert_ne!(code, 0, "demo-data needs a password");
    assert!(err.contains("OPSPILOT_DEMO_PASSWORD"));
    opspilot_tests::env::shared();
    let kubeconfig = opspilot_tests::env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let (code, out, err) = cli(&db.url, &["demo-data"], &[("OPSPILOT_DEMO_PASSWORD", "demo-password-1"), ("OPSPILOT_DEMO_KUBECONFIG", &kubeconfig)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("proj-alpha") && out.contains("svc-a") && out.contains("target-k8s-prod"), "{out}");
    }
    let (code, _, err) = cli(&db.url, &["user", "create", "--username", "ops_lead", "--role", "approver", "--team", "team-app"], &[("OPSPILOT_USER_PASSWORD", "lead-password-1")]);
    assert_eq!(code, 0, "{err}");

    // The server sees what the CLI wrote.
    let server = serve(&db, &[("OPSPILOT_ADMIN_PASSWORD", "unused-admin-pw"), ("OPSPILOT_MASTER_KEY", test_master_key())]).await;
    let dev = post(&server.base, "/api/v1/auth/login", None, json!({ "username": "dev_user", "password": "demo-password-1" })).await;
    let dev = dev["data"]["token"].as_str().expect("dev_user logs in").to_string();
    let lead = post(&server.base, "/api/v1/auth/login", None, json!({ "username": "ops_lead", "password": "lead-password-1" })).await;
    assert_eq!(lead["code"], 1000);
    let names_of = |v: &Value| v["data"]["list"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let targets = get(&server.base, "/api/v1/deploy/targets", &dev).await;
    assert_eq!(names_of(&targets), ["target-compose-prod", "target-k8s-prod"]);
    let services = get(&server.base, "/api/v1/deploy/services", &dev).await;
    assert_eq!(names_of(&services), ["svc-a", "svc-b"]);
    let hosts = get(&server.base, "/api/v1/hosts", &dev).await;
    assert_eq!(names_of(&hosts), ["compose-1", "cp-1", "wk-1", "wk-2"]);
    assert_eq!(hosts["data"]["list"][0]["status"], "pending_trust", "demo hosts wait for an admin to trust their keys");
    let env = get(&server.base, "/api/v1/environments/env-compose-prod", &dev).await;
    assert_eq!(env["data"]["runtime_type"], "compose");
    assert_eq!(env["data"]["nodes"][0]["host_name"], "compose-1");
    assert_eq!(env["data"]["nodes"][0]["node_role"], "compose_manager");
    let users = get(&server.base, "/api/v1/users", &dev).await;
    let names: Vec<&str> = users["data"]["list"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["approver_user", "dev_user", "ops_lead"]);

    // Replay of the whole log, of a stream, and from a position.
    let (code, all, _) = cli(&db.url, &["replay"], &[]);
    assert_eq!(code, 0);
    let all: Vec<Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let positions: Vec<i64> = all.iter().map(|e| e["position"].as_i64().unwrap()).collect();
    assert_eq!(positions, (1..=all.len() as i64).collect::<Vec<_>>());
    let (_, tail, _) = cli(&db.url, &["replay", "--from", "3"], &[]);
    assert_eq!(tail.lines().count(), all.len() - 3);
    let team_stream = all.iter().find(|e| e["action"] == "team.created").unwrap()["stream_id"].as_str().unwrap().to_string();
    let (_, team, _) = cli(&db.url, &["replay", "--stream", &team_stream], &[]);
    let team: Vec<Value> = team.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(team.iter().map(|e| e["action"].as_str().unwrap()).collect::<Vec<_>>(), vec!["team.created", "team.member_added", "team.member_added", "team.member_added"]);

    // The audit log through REST and GraphQL says the same as the replay.
    let admin = post(&server.base, "/api/v1/auth/login", None, json!({ "username": "admin", "password": "demo-password-1" })).await["data"]["token"].as_str().unwrap().to_string();
    let rest = get(&server.base, &format!("/api/v1/audit/events?order=asc&page_size=200&resource_id={}", team[0]["resource_id"].as_str().unwrap()), &admin).await;
    let gql: Value = reqwest::Client::new()
        .post(format!("{}/graphql", server.base))
        .bearer_auth(&admin)
        .json(&json!({ "query": "query($r: String) { auditEvents(filter: {resourceId: $r}, ascending: true) { list { position action actorId detail } } }", "variables": { "r": team[0]["resource_id"] } }))
        .send().await.unwrap().json().await.unwrap();
    let from_rest: Vec<(i64, String, Value)> = rest["data"]["list"].as_array().unwrap().iter().map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().into(), e["detail"].clone())).collect();
    let from_gql: Vec<(i64, String, Value)> = gql["data"]["auditEvents"]["list"].as_array().unwrap().iter().map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().into(), e["detail"].clone())).collect();
    let from_replay: Vec<(i64, String, Value)> = team.iter().map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().into(), e["detail"].clone())).collect();
    assert_eq!(from_rest, from_replay);
    assert_eq!(from_gql, from_replay);

    let (code, out, _) = cli(&db.url, &["projections", "rebuild"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("rebuilt accounts") && out.contains("rebuilt audit_log"), "{out}");
    let (code, _, err) = cli(&db.url, &["projections", "rebuild", "nope"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown projection"));

    let (code, out, _) = cli(&db.url, &["audit", "verify"], &[]);
    assert_eq!(code, 0, "{out}");
    let c = db.client().await;
    c.batch_execute("ALTER TABLE events DISABLE TRIGGER events_no_update; UPDATE events SET actor_id = 'someone-else' WHERE position = 2").await.unwrap();
    let (code, out, _) = cli(&db.url, &["audit", "verify"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("edited"), "{out}");
}
