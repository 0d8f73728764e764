//! OpsPilot through its public doors: REST envelope, GraphQL, subscriptions,
//! accounts and RBAC, scoping, guards.

use std::time::Duration;

use futures::SinkExt;
use opspilot_tests::{next_json, spawn_app, spawn_app_with, ws_connect, DEMO_PASSWORD};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn login_gives_a_bearer_token_through_rest_and_graphql() {
    let app = spawn_app().await;
    let bad = app.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": "admin", "password": "wrong-password" }))).await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body["code"], 36009);
    assert_eq!(bad.error_key(), "unauthenticated");
    let unknown = app.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": "ghost", "password": "wrong-password" }))).await;
    assert_eq!(unknown.body, bad.body, "unknown user and wrong password answer alike");

    let token = app.admin().await;
    let me = app.rest("GET", "/api/v1/auth/me", Some(&token), None).await;
    assert_eq!(me.data()["username"], "admin");
    assert!(me.data()["permissions"].as_array().unwrap().contains(&json!("deploy:release:approve")));

    let r = app.gql(None, r#"mutation { login(input: {username: "admin", password: "admin-password-1"}) { token } }"#, json!({})).await;
    let gql_token = r["data"]["login"]["token"].as_str().expect("token").to_string();
    let r = app.gql(Some(&gql_token), "{ me { username roles } }", json!({})).await;
    assert_eq!(r["data"]["me"], json!({ "username": "admin", "roles": ["admin"] }));

    // Logging out ends the session.
    app.rest("POST", "/api/v1/auth/logout", Some(&token), None).await.data();
    assert_eq!(app.rest("GET", "/api/v1/auth/me", Some(&token), None).await.error_key(), "unauthenticated");
    assert_eq!(app.rest("GET", "/api/v1/auth/me", None, None).await.error_key(), "unauthenticated");
}

#[tokio::test]
async fn a_denied_mutation_changes_nothing_and_is_audited() {
    let app = spawn_app().await;
    let (dev, approver) = app.demo_users().await;
    let admin = app.admin().await;
    let before = app.rest("GET", "/api/v1/projects", Some(&admin), None).await.data()["total"].clone();

    let denied = app.rest("POST", "/api/v1/projects", Some(&dev), Some(json!({ "name": "rogue" }))).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["code"], 36001);
    assert_eq!(denied.error_key(), "permission_denied");
    assert!(!denied.body["data"]["hint"].as_str().unwrap().is_empty());

    let r = app.gql(Some(&approver), r#"mutation { createUser(input: {username: "x_user", password: "password-123", roles: ["admin"]}) { position } }"#, json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["error_key"], "permission_denied");
    assert_eq!(r["errors"][0]["extensions"]["code"], 36001);

    assert_eq!(app.rest("GET", "/api/v1/projects", Some(&admin), None).await.data()["total"], before);
    let audit = app.rest("GET", "/api/v1/audit/events?action=auth.permission_denied&order=asc", Some(&admin), None).await;
    let list = audit.data()["list"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["detail"]["attempted"], "project.create");
    assert_eq!(list[0]["detail"]["permission"], "identity:manage");
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[1]["detail"]["attempted"], "user.create");
}

#[tokio::test]
async fn reads_are_scoped_to_the_callers_projects_and_teams() {
    let app = spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-beta" }))).await.data();
    app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-beta", "project_id": "proj-beta" }))).await.data();
    app.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": "beta_user", "password": DEMO_PASSWORD, "roles": ["operator"] }))).await.data();
    app.rest("POST", "/api/v1/teams/team-beta/members", Some(&admin), Some(json!({ "user_id": "beta_user" }))).await.data();
    app.rest("POST", "/api/v1/credentials", Some(&admin), Some(json!({ "name": "beta-key", "kind": "ssh_password", "secret": "s3", "project_id": "proj-beta" }))).await.data();

    let names = |v: &Value, k: &str| -> Vec<String> { v["list"].as_array().unwrap().iter().map(|i| i[k].as_str().unwrap().to_string()).collect() };
    let projects = app.rest("GET", "/api/v1/projects", Some(&dev), None).await;
    assert_eq!(names(projects.data(), "name"), vec!["proj-alpha"]);
    let teams = app.rest("GET", "/api/v1/teams", Some(&dev), None).await;
    assert_eq!(names(teams.data(), "name"), vec!["team-app"]);
    let users = app.rest("GET", "/api/v1/users", Some(&dev), None).await;
    assert_eq!(names(users.data(), "username"), vec!["approver_user", "dev_user"]);
    assert_eq!(app.rest("GET", "/api/v1/credentials", Some(&dev), None).await.data()["total"], 0);

    // The audit log shows dev_user nothing of proj-beta; admin sees it.
    let beta_id = app.rest("GET", "/api/v1/projects", Some(&admin), None).await.data()["list"]
        .as_array().unwrap().iter().find(|p| p["name"] == "proj-beta").unwrap()["id"].as_str().unwrap().to_string();
    let q = format!("/api/v1/audit/events?project_id={beta_id}");
    assert_eq!(app.rest("GET", &q, Some(&dev), None).await.data()["total"], 0);
    assert!(app.rest("GET", &q, Some(&admin), None).await.data()["total"].as_i64().unwrap() >= 3);
    let r = app.gql(Some(&dev), "{ projects { list { name } total } }", json!({})).await;
    assert_eq!(r["data"]["projects"], json!({ "list": [{ "name": "proj-alpha" }], "total": 1 }));
}

#[tokio::test]
async fn bad_input_gets_a_dictionary_error_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let head = app.running.state.commands.store.head().await.unwrap();
    for body in [json!({ "name": "a b c" }), json!({ "name": "$(reboot)" }), json!({ "nam": "x" })] {
        let a = app.rest("POST", "/api/v1/projects", Some(&admin), Some(body)).await;
        assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{:?}", a.body);
    }
    let a = app.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": "u_x", "password": "password-1", "roles": ["root"] }))).await;
    assert_eq!(a.error_key(), "validation_error");
    assert!(a.body["data"]["detail"].as_str().unwrap().contains("role"));
    let a = app.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": "u_x", "password": "short", "roles": [] }))).await;
    assert_eq!(a.error_key(), "validation_error");
    let a = app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "t-x", "project_id": "no-such-project" }))).await;
    assert_eq!(a.error_key(), "not_found");
    let resp = app.http.post(app.url("/api/v1/projects")).bearer_auth(&admin).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["data"]["error_key"], "validation_error");
    assert_eq!(app.running.state.commands.store.head().await.unwrap(), head, "nothing was appended");

    // Creating twice is a conflict; the hint follows Accept-Language.
    app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "dup" }))).await.data();
    let a = app.rest_with("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "dup" })), &[("accept-language", "zh-CN")]).await;
    assert_eq!((a.status, a.body["code"].as_i64().unwrap()), (409, 36005));
    assert_eq!(a.body["data"]["hint"], "资源冲突（已存在或已被修改），请刷新后重试");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_result() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let body = json!({ "name": "cp-1-key", "kind": "ssh_private_key", "secret": "-----BEGIN KEY----- xyz" });
    let h = [("idempotency-key", "req-42")];
    let first = app.rest_with("POST", "/api/v1/credentials", Some(&admin), Some(body.clone()), &h).await;
    let second = app.rest_with("POST", "/api/v1/credentials", Some(&admin), Some(body.clone()), &h).await;
    assert_eq!(first.data(), second.data());
    assert_eq!(app.rest("GET", "/api/v1/credentials", Some(&admin), None).await.data()["total"], 1);
    let c = app.db.client().await;
    let n: i64 = c.query_one("SELECT count(*) FROM credentials", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "no orphaned sealed record");
    let third = app.rest("POST", "/api/v1/credentials", Some(&admin), Some(body)).await;
    assert_ne!(third.data()["id"], first.data()["id"], "without the key it is a new command");
}

#[tokio::test]
async fn api_tokens_authenticate_automation_until_revoked() {
    let app = spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let issued = app.rest("POST", "/api/v1/auth/tokens", Some(&dev), Some(json!({ "name": "ci-bot", "expires_in_days": 30 }))).await;
    let token = issued.data()["token"].as_str().unwrap().to_string();
    let id = issued.data()["id"].as_str().unwrap().to_string();
    let me = app.rest("GET", "/api/v1/auth/me", Some(&token), None).await;
    assert_eq!(me.data()["username"], "dev_user");
    let listed = app.rest("GET", "/api/v1/auth/tokens", Some(&token), None).await;
    assert_eq!(listed.data()["list"][0]["name"], "ci-bot");
    assert!(!listed.body.to_string().contains(&token), "the token is shown once only");

    // What the token does is recorded as done by an API token.
    app.rest("POST", "/api/v1/auth/tokens", Some(&token), Some(json!({ "name": "nested" }))).await.data();
    let admin = app.admin().await;
    let ev = app.rest("GET", "/api/v1/audit/events?action=auth.api_token_issued", Some(&admin), None).await;
    assert_eq!(ev.data()["list"][0]["actor_type"], "api_token");

    app.rest("DELETE", &format!("/api/v1/auth/tokens/{id}"), Some(&dev), None).await.data();
    assert_eq!(app.rest("GET", "/api/v1/auth/me", Some(&token), None).await.error_key(), "unauthenticated");
}

#[tokio::test]
async fn the_committed_sdl_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/schema.graphql")).expect("api/schema.graphql is committed");
    let code = opspilot_api::schema::sdl();
    assert!(committed == code, "api/schema.graphql differs from the code: run `opspilot schema > api/schema.graphql`");
}

#[tokio::test]
async fn guards_refuse_deep_queries_complex_queries_big_bodies_and_login_floods() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut deep = String::from("name");
    for _ in 0..15 {
        deep = format!("ofType {{ {deep} }}");
    }
    let r = app.gql(Some(&admin), &format!("{{ __schema {{ types {{ fields {{ type {{ {deep} }} }} }} }} }}"), json!({})).await;
    assert!(r["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("nested too deep"), "{r}");
    assert_eq!(r["errors"][0]["extensions"]["error_key"], "validation_error", "{r}");

    let wide: String = (0..1100).map(|i| format!("a{i}: errorDictionary {{ code }} ")).collect();
    let r = app.gql(Some(&admin), &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["error_key"], "validation_error", "{}", r["errors"][0]);
    assert!(r["errors"][0]["extensions"]["detail"].as_str().unwrap().contains("costs 2200 fields"), "{}", r["errors"][0]);

    let big = "x".repeat(2 * 1024 * 1024);
    let a = app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "p-big", "description": big }))).await;
    assert_eq!((a.status, a.error_key()), (413, "validation_error"));

    let mut last = None;
    for _ in 0..12 {
        last = Some(app.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": "dev_user", "password": "guessing-1" }))).await);
    }
    let last = last.unwrap();
    assert_eq!((last.status, last.body["code"].as_i64().unwrap(), last.error_key()), (429, 36007, "rate_limited"));
}

#[tokio::test]
async fn cors_is_closed_unless_origins_are_configured() {
    let preflight = |app: &opspilot_tests::TestApp| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", "https://console.example")
            .header("access-control-request-method", "POST")
            .send()
    };
    let closed = spawn_app().await;
    let r = preflight(&closed).await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let open = spawn_app_with(|c| c.cors_origins = vec!["https://console.example".into()]).await;
    let r = preflight(&open).await.unwrap();
    assert_eq!(r.headers().get("access-control-allow-origin").unwrap(), "https://console.example");
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let app = spawn_app().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    app.admin().await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("opspilot_projection_lag_events{projection=\"accounts\"}"), "{text}");
    assert!(text.contains("opspilot_projection_lag_events{projection=\"audit_log\"}"));
    assert!(text.contains("opspilot_http_requests_total{method=\"POST\",path=\"/api/v1/auth/login\",status=\"200\"} 1"));
    let gi = app.http.get(app.url("/graphiql")).send().await.unwrap().text().await.unwrap();
    assert!(gi.contains("graphiql"));
    let errors = app.rest("GET", "/api/v1/errors", None, None).await;
    assert!(errors.data()["list"].as_array().unwrap().iter().any(|e| e["code"] == 32001 && e["key"] == "preview_required"));
}

#[tokio::test]
async fn subscriptions_check_the_token_in_connection_init_and_stream_scoped_events() {
    let app = spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;

    let mut bad = ws_connect(&app, "not-a-token").await;
    let first = next_json(&mut bad).await;
    assert!(first.is_none() || first.as_ref().unwrap()["type"] != "connection_ack", "{first:?}");

    let mut ws = ws_connect(&app, &dev).await;
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { auditEvents(filter: {domain: \"team\"}) { action resourceType detail } }" } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A team in another project is invisible; one in the caller's project streams.
    app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-other" }))).await.data();
    app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-other", "project_id": "proj-other" }))).await.data();
    app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-two", "project_id": "proj-alpha" }))).await.data();
    let msg = next_json(&mut ws).await.expect("an event arrives");
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["payload"]["data"]["auditEvents"]["action"], "team.created");
    assert_eq!(msg["payload"]["data"]["auditEvents"]["detail"]["name"], "team-two");
}
