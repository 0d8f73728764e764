//! Hostile input: every shape a hostile caller sends is refused with a
//! dictionary error, leaves the log and the vault as they were, and the
//! server keeps answering.

use opspilot_tests::{env, TestApp};
use serde_json::{json, Value};

const TEMPLATE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ service }}\n  annotations:\n    note: \"{{ note }}\"\nspec:\n  replicas: 1\n  selector: { matchLabels: { app: {{ service }} } }\n  template:\n    metadata: { labels: { app: {{ service }} } }\n    spec:\n      containers:\n      - name: app\n        image: registry.invalid/{{ service }}:{{ image_tag }}\n";

/// What a refused request must leave unchanged.
async fn footprint(app: &TestApp) -> (i64, i64) {
    let c = app.db.client().await;
    let events: i64 = c.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    let credentials: i64 = c.query_one("SELECT count(*) FROM credentials", &[]).await.unwrap().get(0);
    (events, credentials)
}

async fn healthy(app: &TestApp) {
    let r = app.http.get(app.url("/healthz")).send().await.expect("the server still answers");
    assert_eq!(r.status(), 200);
}

/// Sends a raw GraphQL body.
async fn gql_raw(app: &TestApp, token: Option<&str>, body: String) -> Value {
    let mut req = app.http.post(app.url("/graphql")).header("content-type", "application/json").body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let text = req.send().await.expect("graphql answers").text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("GraphQL answered no JSON: {text}"))
}

fn gql_error_key(v: &Value) -> &str {
    v["errors"][0]["extensions"]["error_key"].as_str().unwrap_or_else(|| panic!("no dictionary extensions: {v}"))
}

/// Every string leaf of `body`, as a JSON pointer.
fn string_leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(at),
        Value::Object(m) => m.iter().for_each(|(k, v)| string_leaves(v, format!("{at}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| string_leaves(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

#[tokio::test]
async fn graphql_shapes_that_crashed_or_stalled_the_server_are_refused_and_it_keeps_answering() {
    let app = opspilot_tests::spawn_app().await;
    let deep = format!("{{ me(x: {}1{}) {{ id }} }}", "[".repeat(3000), "]".repeat(3000));
    let v = app.gql(None, &deep, json!({})).await;
    assert_eq!(gql_error_key(&v), "validation_error");
    let deeper = format!("{{ me(x: {}1{}) {{ id }} }}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(gql_error_key(&app.gql(None, &deeper, json!({})).await), "unauthenticated", "too big to read without a token");
    let admin = app.admin().await;
    assert_eq!(gql_error_key(&app.gql(Some(&admin), &deeper, json!({})).await), "validation_error");
    // Deep JSON variables, deep selection sets.
    let vars = format!("{{\"query\":\"{{ me {{ id }} }}\",\"variables\":{{\"x\":{}1{}}}}}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(gql_error_key(&gql_raw(&app, None, vars).await), "validation_error");
    healthy(&app).await;

    let mut bomb = String::from("query { ...f0 }\n");
    for i in 0..30 {
        bomb.push_str(&format!("fragment f{i} on Query {{ ...f{} ...f{} }}\n", i + 1, i + 1));
    }
    bomb.push_str("fragment f30 on Query { __typename }\n");
    for token in [None, Some(admin.as_str())] {
        let v = app.gql(token, &bomb, json!({})).await;
        assert_eq!(gql_error_key(&v), "validation_error", "{v}");
        assert!(v["errors"][0]["extensions"]["detail"].as_str().unwrap().contains("costs"), "{v}");
    }
    let aliases: String = (0..50_000).map(|i| format!("a{i}: __typename ")).collect();
    let v = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(gql_error_key(&v), "unauthenticated", "an anonymous request is small");
    let v = app.gql(Some(&admin), &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(gql_error_key(&v), "validation_error", "aliases count in the cost");
    let few: String = (0..1200).map(|i| format!("a{i}:__typename ")).collect();
    assert_eq!(gql_error_key(&app.gql(Some(&admin), &format!("{{ {few} }}"), json!({})).await), "validation_error", "1200 aliases cost 1200");
    healthy(&app).await;
}

#[tokio::test]
async fn graphql_without_a_token_answers_only_login_and_every_error_carries_dictionary_extensions() {
    let app = opspilot_tests::spawn_app().await;
    assert_eq!(gql_error_key(&app.gql(None, "{ __typename }", json!({})).await), "unauthenticated");
    assert_eq!(gql_error_key(&app.gql(None, "{ __schema { types { name } } }", json!({})).await), "unauthenticated");
    assert_eq!(gql_error_key(&app.gql(None, "mutation { login(input: {username: \"admin\", password: \"x\"}) { token } createProject(input: {name: \"p\"}) { position } }", json!({})).await), "unauthenticated");
    let login = app.gql(None, "mutation($i: LoginInput!) { login(input: $i) { token } }", json!({ "i": { "username": "admin", "password": opspilot_tests::ADMIN_PASSWORD } })).await;
    let token = login["data"]["login"]["token"].as_str().unwrap_or_else(|| panic!("{login}")).to_string();
    assert!(app.gql(Some(&token), "{ __schema { queryType { name } } }", json!({})).await["data"]["__schema"]["queryType"]["name"].is_string());

    // Syntax, unknown fields, wrong argument types, batches, bodies that are not JSON.
    for q in ["{ me { id ", "{ nosuchfield }", "{ users(page: \"x\") { total } }", "query A { me { id } } query B { me { id } }"] {
        let v = app.gql(Some(&token), q, json!({})).await;
        assert_eq!(gql_error_key(&v), "validation_error", "{q}: {v}");
    }
    let batch = gql_raw(&app, Some(&token), json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]).to_string()).await;
    assert_eq!(gql_error_key(&batch), "validation_error");
    assert_eq!(gql_error_key(&gql_raw(&app, Some(&token), "{not json".into()).await), "validation_error");

    let public = opspilot_tests::spawn_app_with(|c| c.graphql_public_schema = true).await;
    assert!(public.gql(None, "{ __schema { queryType { name } } }", json!({})).await["data"]["__schema"].is_object());
    assert_eq!(gql_error_key(&public.gql(None, "{ me { id } }", json!({})).await), "unauthenticated");
}

#[tokio::test]
async fn rest_rejections_are_dictionary_envelopes() {
    let app = opspilot_tests::spawn_app().await;
    let admin = app.admin().await;
    for path in [
        "/api/v1/users?page=abc",
        "/api/v1/users?page=9223372036854775807",
        "/api/v1/users?page=99999999999999999999999",
        "/api/v1/users?page_size=0",
        "/api/v1/users?q=a%00b",
        "/api/v1/approvals/inbox?q=a%00b",
    ] {
        let a = app.rest("GET", path, Some(&admin), None).await;
        assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{path}: {:?}", a.body);
    }
    // A path segment that must be a UUID.
    let a = app.rest("DELETE", "/api/v1/auth/tokens/not-a-uuid", Some(&admin), None).await;
    assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{:?}", a.body);
    assert_eq!(app.rest("GET", "/api/v1/deploy/releases/not-a-uuid", Some(&admin), None).await.error_key(), "release_not_found");
    let a = app.rest("DELETE", "/api/v1/projects", Some(&admin), None).await;
    assert_eq!((a.status, a.error_key()), (405, "validation_error"));
    let a = app.rest("GET", "/api/v1/no/such/route", Some(&admin), None).await;
    assert_eq!((a.status, a.error_key()), (404, "not_found"));
    let r = app.http.post(app.url("/api/v1/projects")).bearer_auth(&admin).header("content-type", "application/json").body("{\"name\":").send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["error_key"], "validation_error");
    let big = "x".repeat(2 * 1024 * 1024);
    let a = app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "p", "description": big }))).await;
    assert_eq!((a.status, a.error_key()), (413, "validation_error"));
    // Forged and expired-looking tokens.
    for t in ["forged", "Bearer x", &"a".repeat(5000)] {
        assert_eq!(app.rest("GET", "/api/v1/auth/me", Some(t), None).await.error_key(), "unauthenticated");
    }
    // A real token past its expiry is refused on both surfaces.
    let expiring = app.login("admin", opspilot_tests::ADMIN_PASSWORD).await;
    assert_eq!(app.rest("GET", "/api/v1/auth/me", Some(&expiring), None).await.status, 200);
    app.db.client().await.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL", &[]).await.unwrap();
    assert_eq!(app.rest("GET", "/api/v1/auth/me", Some(&expiring), None).await.error_key(), "unauthenticated");
    assert_eq!(gql_error_key(&app.gql(Some(&expiring), "{ me { id } }", json!({})).await), "unauthenticated");
    let admin = app.admin().await;
    // Traversal strings in ids: not found or refused, never a storage failure.
    for id in ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a%00b", "'%20OR%201=1--"] {
        for path in [format!("/api/v1/hosts/{id}"), format!("/api/v1/clusters/{id}"), format!("/api/v1/environments/{id}"), format!("/api/v1/approvals/inbox/{id}")] {
            let a = app.rest("GET", &path, Some(&admin), None).await;
            assert!(a.error_key().ends_with("not_found") || a.error_key() == "validation_error", "{path}: {:?}", a.body);
        }
    }
    healthy(&app).await;
}

#[tokio::test]
async fn every_text_field_of_every_mutation_refuses_nul_control_characters_and_wrong_types_and_changes_nothing() {
    let app = opspilot_tests::spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let requests: Vec<(&str, &str, Value)> = vec![
        ("POST", "/api/v1/auth/login", json!({ "username": "admin", "password": "x" })),
        ("POST", "/api/v1/projects", json!({ "name": "p-new", "description": "a project" })),
        ("POST", "/api/v1/teams", json!({ "name": "t-new", "project_id": "proj-alpha" })),
        ("POST", "/api/v1/users", json!({ "username": "u-new", "password": "a-long-password-1", "roles": ["operator"] })),
        ("POST", "/api/v1/teams/team-app/members", json!({ "user_id": "admin" })),
        ("POST", "/api/v1/credentials", json!({ "name": "c-new", "project_id": "proj-alpha", "kind": "ssh_password", "secret": "s3cret" })),
        ("POST", "/api/v1/hosts", json!({ "name": "h-new", "project_id": "proj-alpha", "ip": "127.0.0.1", "port": 22, "ssh_user": "ops", "auth": "password", "password": "pw", "labels": { "zone": "a" } })),
        ("POST", "/api/v1/environments", json!({ "name": "e-new", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose", "labels": { "tier": "dev" } })),
        ("POST", "/api/v1/deploy/services", json!({ "name": "s-new", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": "kind: X", "risk_level": "low" })),
        ("POST", "/api/v1/deploy/releases/preview", json!({ "service_id": "svc-a", "target_id": "t", "env": "production", "variables": { "image_tag": "v1" } })),
        ("POST", "/api/v1/approvals/inbox/apr-x/comment", json!({ "comment": "looks fine" })),
    ];
    for (method, path, body) in &requests {
        let mut leaves = Vec::new();
        string_leaves(body, String::new(), &mut leaves);
        for leaf in &leaves {
            for bad in [json!("a\u{0}b"), json!("a\u{1b}[31mb"), json!("a\u{7f}b"), json!(7), json!({ "nested": [] })] {
                let mut b = body.clone();
                *b.pointer_mut(leaf).unwrap() = bad.clone();
                let token = if *path == "/api/v1/auth/login" { None } else { Some(admin.as_str()) };
                let before = footprint(&app).await;
                let a = app.rest(method, path, token, Some(b)).await;
                assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{method} {path} {leaf}={bad}: {:?}", a.body);
                assert_eq!(footprint(&app).await, before, "{method} {path} {leaf}={bad} left something behind");
            }
        }
    }
    // The same through GraphQL: variables and inline literals.
    for (q, vars) in [
        ("mutation($i: ProjectInput!) { createProject(input: $i) { position } }", json!({ "i": { "name": "p\u{0}x" } })),
        ("mutation { createProject(input: {name: \"p\\u0000x\"}) { position } }", json!({})),
        ("mutation($c: String!) { commentTicket(ticket: \"apr-x\", comment: $c) { position } }", json!({ "c": "a\u{0}" })),
    ] {
        let before = footprint(&app).await;
        let v = app.gql(Some(&dev), q, vars).await;
        assert_eq!(gql_error_key(&v), "validation_error", "{q}: {v}");
        assert_eq!(footprint(&app).await, before);
    }
    healthy(&app).await;
}

#[tokio::test]
async fn a_variable_can_change_a_value_but_never_the_manifest_and_a_refused_preview_records_nothing() {
    env::shared();
    let app = opspilot_tests::spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    let namespace = env::fresh_namespace(&env::kube_admin().await).await;
    for (path, body) in [
        ("/api/v1/clusters/import/kubeconfig", json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig })),
        ("/api/v1/deploy/services", json!({ "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": TEMPLATE, "default_variables": { "note": "none" }, "risk_level": "low" })),
        ("/api/v1/deploy/targets", json!({ "name": "target-k8s-dev", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "dev", "cluster_id": "k8s-prod-platform", "namespace": namespace })),
    ] {
        app.rest("POST", path, Some(&admin), Some(body)).await.data();
    }
    let preview = |vars: Value| {
        let (app, dev) = (&app, dev.clone());
        async move { app.rest("POST", "/api/v1/deploy/releases/preview", Some(&dev), Some(json!({ "service_id": "svc-a", "target_id": "target-k8s-dev", "env": "dev", "variables": vars }))).await }
    };
    let cases = [
        (json!({ "image_tag": "v1\n        securityContext:\n          privileged: true" }), "variables.image_tag"),
        (json!({ "image_tag": "v1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra" }), "variables.image_tag"),
        (json!({ "image_tag": "$(id)" }), "variables.image_tag"),
        (json!({ "image_tag": "`;rm -rf /`" }), "variables.image_tag"),
        (json!({ "image_tag": "v1", "note": "x\"\n    evil: \"y" }), "variables.note"),
        (json!({ "image_tag": "v1", "note": "a\n  labels: { owned: yes }" }), "variables.note"),
    ];
    for (vars, field) in cases {
        let before = footprint(&app).await;
        let a = preview(vars.clone()).await;
        assert_eq!(a.error_key(), "validation_error", "{vars}: {:?}", a.body);
        assert!(a.body["data"]["detail"].as_str().unwrap().starts_with(field), "{vars}: {:?}", a.body);
        assert_eq!(footprint(&app).await, before, "{vars}: a refused preview left something behind");
    }
    // A value with quotes, colons and hashes is still just a value.
    let ok = preview(json!({ "image_tag": "v1", "note": "a: b # c, 'd'" })).await;
    let manifest = ok.data()["resolved_manifest"].as_str().unwrap();
    assert!(manifest.contains("note: \"a: b # c, 'd'\""), "{manifest}");
    assert!(ok.data()["variables_schema"].as_object().is_some_and(|m| m.is_empty()));

    // Typed variables where the catalog declares them, shown in the preview.
    let typed = TEMPLATE.replace("replicas: 1", "replicas: {{ replicas }}");
    let schema = json!({ "image_tag": { "type": "image_tag" }, "replicas": { "type": "integer", "min": 1, "max": 5 }, "note": { "type": "enum", "values": ["blue", "green"] } });
    app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-typed", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": typed, "default_variables": { "note": "blue", "replicas": "1" }, "variables_schema": schema, "risk_level": "low" }))).await.data();
    let bad_default = app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-typed-2", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": typed, "default_variables": { "replicas": "many" }, "variables_schema": schema }))).await;
    assert!(bad_default.body["data"]["detail"].as_str().unwrap().starts_with("variables.replicas"), "{:?}", bad_default.body);
    let typed_preview = |vars: Value| {
        let (app, dev) = (&app, dev.clone());
        async move { app.rest("POST", "/api/v1/deploy/releases/preview", Some(&dev), Some(json!({ "service_id": "svc-typed", "target_id": "target-k8s-dev", "env": "dev", "variables": vars }))).await }
    };
    for (vars, field) in [
        (json!({ "image_tag": "v1", "replicas": "2; rm -rf /" }), "variables.replicas"),
        (json!({ "image_tag": "v1", "replicas": "9" }), "variables.replicas"),
        (json!({ "image_tag": "v1", "note": "red" }), "variables.note"),
        (json!({ "image_tag": "v1", "undeclared": "x" }), "variables.undeclared"),
    ] {
        let before = footprint(&app).await;
        let a = typed_preview(vars.clone()).await;
        assert!(a.body["data"]["detail"].as_str().is_some_and(|d| d.starts_with(field)), "{vars}: {:?}", a.body);
        assert_eq!(footprint(&app).await, before);
    }
    let good = typed_preview(json!({ "image_tag": "v2", "replicas": "3", "note": "green" })).await;
    assert_eq!(good.data()["variables_schema"]["replicas"]["type"], "integer");
    assert!(good.data()["resolved_manifest"].as_str().unwrap().contains("replicas: 3"));

    // GraphQL previews go through the same guard.
    let v = app.gql(Some(&dev), "mutation($i: ReleaseInput!) { previewRelease(input: $i) { position } }", json!({ "i": { "serviceId": "svc-a", "targetId": "target-k8s-dev", "env": "dev", "variables": { "image_tag": "$(id)" } } })).await;
    assert_eq!(gql_error_key(&v), "validation_error", "{v}");
}

#[tokio::test]
async fn a_secret_is_stored_in_the_transaction_of_its_event_so_a_repeat_or_refusal_keeps_none() {
    let app = opspilot_tests::spawn_app().await;
    app.demo_users().await;
    let admin = app.admin().await;
    let body = json!({ "name": "c-once", "project_id": "proj-alpha", "kind": "ssh_password", "secret": "s3cret" });
    let before = footprint(&app).await;
    let first = app.rest_with("POST", "/api/v1/credentials", Some(&admin), Some(body.clone()), &[("idempotency-key", "k-1")]).await;
    let again = app.rest_with("POST", "/api/v1/credentials", Some(&admin), Some(body.clone()), &[("idempotency-key", "k-1")]).await;
    assert_eq!(first.data()["id"], again.data()["id"]);
    let after = footprint(&app).await;
    assert_eq!(after.1, before.1 + 1, "one sealed secret for one acknowledged store");
    // Refused after validation (an unknown project): no event, no secret.
    let refused = app.rest("POST", "/api/v1/credentials", Some(&admin), Some(json!({ "name": "c-two", "project_id": "proj-nope", "kind": "ssh_password", "secret": "s3cret" }))).await;
    assert!(refused.error_key().ends_with("not_found"), "{:?}", refused.body);
    assert_eq!(footprint(&app).await, after);
}

#[tokio::test]
async fn a_host_registered_with_its_secret_stores_both_in_one_transaction_and_a_refused_one_neither() {
    let app = opspilot_tests::spawn_app().await;
    app.demo_users().await;
    let admin = app.admin().await;
    let body = json!({ "name": "h-once", "project_id": "proj-alpha", "ip": "127.0.0.1", "port": 22, "ssh_user": "ops", "auth": "password", "password": "pw" });
    let before = footprint(&app).await;
    let first = app.rest("POST", "/api/v1/hosts", Some(&admin), Some(body.clone())).await;
    assert_eq!(first.data()["status"], "pending_trust", "{:?}", first.body);
    assert_eq!(footprint(&app).await, (before.0 + 2, before.1 + 1), "credential.stored, host.registered and one sealed secret");
    let c = app.db.client().await;
    let rows = c.query("SELECT action, position, correlation_id FROM events ORDER BY position DESC LIMIT 2", &[]).await.unwrap();
    let (newest, older) = (&rows[0], &rows[1]);
    assert_eq!((older.get::<_, String>(0).as_str(), newest.get::<_, String>(0).as_str()), ("credential.stored", "host.registered"));
    assert_eq!(newest.get::<_, i64>(1), older.get::<_, i64>(1) + 1);
    assert_eq!(newest.get::<_, uuid::Uuid>(2), older.get::<_, uuid::Uuid>(2), "one command, one append");

    // The same name again, with a new secret: refused, and the secret is not kept.
    let after = footprint(&app).await;
    let again = app.rest("POST", "/api/v1/hosts", Some(&admin), Some(json!({ "name": "h-once", "project_id": "proj-alpha", "ip": "127.0.0.2", "port": 22, "ssh_user": "ops", "auth": "password", "password": "other" }))).await;
    assert!(again.status >= 400, "{:?}", again.body);
    assert_eq!(footprint(&app).await, after);

    // A new secret on update lands with host.updated, or (refused) not at all.
    let id = first.data()["id"].as_str().unwrap().to_string();
    let bad = app.rest("PATCH", &format!("/api/v1/hosts/{id}"), Some(&admin), Some(json!({ "auth": "key", "private_key": "not a key" }))).await;
    assert_eq!(bad.error_key(), "validation_error", "{:?}", bad.body);
    assert_eq!(footprint(&app).await, after);
    let ok = app.rest("PATCH", &format!("/api/v1/hosts/{id}"), Some(&admin), Some(json!({ "password": "rotated" }))).await;
    assert_ne!(ok.data()["credential_id"], first.data()["credential_id"], "{:?}", ok.body);
    assert_eq!(footprint(&app).await, (after.0 + 2, after.1 + 1));
}

#[tokio::test]
async fn a_deep_document_over_the_websocket_is_refused_and_the_server_keeps_answering() {
    use futures::SinkExt;
    let app = opspilot_tests::spawn_app().await;
    let admin = app.admin().await;
    let mut ws = opspilot_tests::ws_connect(&app, &admin).await;
    assert_eq!(opspilot_tests::next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    let deep = format!("subscription {{ auditEvents(filter: {}{{domain: \"x\"}}{}) {{ action }} }}", "[".repeat(5000), "]".repeat(5000));
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": deep } });
    ws.send(tokio_tungstenite::tungstenite::Message::text(sub.to_string())).await.unwrap();
    let answer = opspilot_tests::next_json(&mut ws).await.expect("an answer");
    assert_eq!(answer["payload"]["errors"][0]["extensions"]["error_key"], "validation_error", "{answer}");
    assert!(answer["payload"]["errors"][0]["extensions"]["detail"].as_str().unwrap().contains("nested deeper"), "{answer}");
    let mut bomb = String::from("subscription { ...f0 }\n");
    for i in 0..30 {
        bomb.push_str(&format!("fragment f{i} on Subscription {{ ...f{} ...f{} }}\n", i + 1, i + 1));
    }
    bomb.push_str("fragment f30 on Subscription { auditEvents { action } }\n");
    ws.send(tokio_tungstenite::tungstenite::Message::text(json!({ "id": "2", "type": "subscribe", "payload": { "query": bomb } }).to_string())).await.unwrap();
    let answer = loop {
        let m = opspilot_tests::next_json(&mut ws).await.expect("an answer");
        if m["id"] == "2" {
            break m;
        }
    };
    assert!(answer["payload"]["errors"][0]["extensions"]["detail"].as_str().is_some_and(|d| d.contains("costs")), "{answer}");
    healthy(&app).await;
}

/// Every REST route but logout (it takes no input), with its path parameters as `{}`.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/auth/me"), ("GET", "/auth/tokens"), ("POST", "/auth/tokens"), ("DELETE", "/auth/tokens/{}"),
    ("GET", "/projects"), ("POST", "/projects"), ("GET", "/teams"), ("POST", "/teams"), ("POST", "/teams/{}/members"),
    ("GET", "/users"), ("POST", "/users"), ("POST", "/users/{}/roles"), ("DELETE", "/users/{}/roles/{}"), ("PUT", "/users/{}/password"),
    ("GET", "/credentials"), ("POST", "/credentials"), ("GET", "/errors"), ("GET", "/audit/events"),
    ("GET", "/deploy/services"), ("POST", "/deploy/services"), ("GET", "/deploy/targets"), ("POST", "/deploy/targets"),
    ("GET", "/ai/sessions"), ("GET", "/ai/sessions/{}"), ("POST", "/ai/sessions/{}/messages"), ("POST", "/ai/sessions/{}/confirm"), ("GET", "/ai/sessions/{}/events"),
    ("GET", "/clusters"), ("POST", "/clusters/import/kubeconfig"), ("POST", "/clusters/import/cert"), ("GET", "/clusters/{}"),
    ("POST", "/clusters/{}/connect/test"), ("GET", "/clusters/{}/connection"), ("PUT", "/clusters/{}/connection"),
    ("GET", "/environments"), ("POST", "/environments"), ("GET", "/environments/{}"), ("PATCH", "/environments/{}"), ("DELETE", "/environments/{}"),
    ("PUT", "/environments/{}/nodes"), ("POST", "/environments/{}/install/preview"), ("POST", "/environments/{}/install/apply"),
    ("POST", "/environments/{}/install/rollback"), ("GET", "/environments/{}/install/tasks"), ("GET", "/environments/{}/install/tasks/{}"),
    ("GET", "/environments/{}/install/tasks/{}/logs"), ("GET", "/environments/{}/install/tasks/{}/timeline"), ("POST", "/environments/{}/install/tasks/{}/cancel"),
    ("POST", "/environments/{}/health/check"), ("GET", "/deploy/targets/{}/compose/ps"), ("GET", "/deploy/targets/{}/compose/logs"),
    ("GET", "/hosts"), ("POST", "/hosts"), ("GET", "/hosts/{}"), ("PATCH", "/hosts/{}"), ("DELETE", "/hosts/{}"),
    ("POST", "/hosts/{}/host-key/scan"), ("POST", "/hosts/{}/host-key/trust"), ("POST", "/hosts/{}/check"),
    ("GET", "/approvals/inbox"), ("GET", "/approvals/inbox/{}"), ("POST", "/approvals/inbox/{}/approve"), ("POST", "/approvals/inbox/{}/reject"),
    ("POST", "/approvals/inbox/{}/assign"), ("POST", "/approvals/inbox/{}/comment"),
    ("POST", "/deploy/releases/preview"), ("POST", "/deploy/releases/apply"), ("GET", "/deploy/releases/{}"), ("POST", "/deploy/releases/{}/approve"),
    ("POST", "/deploy/releases/{}/reject"), ("GET", "/deploy/releases/{}/timeline"), ("POST", "/deploy/releases/{}/rollback"), ("POST", "/deploy/releases/{}/cancel"),
];

#[tokio::test]
async fn every_route_refuses_nul_in_its_path_and_body_and_changes_nothing() {
    let app = opspilot_tests::spawn_app().await;
    app.demo_users().await;
    let admin = app.admin().await;
    for (method, route) in ROUTES {
        let before = footprint(&app).await;
        if route.contains("{}") {
            let path = format!("/api/v1{}", route.replace("{}", "a%00b"));
            let a = app.rest(method, &path, Some(&admin), None).await;
            assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{method} {path}: {:?}", a.body);
            assert!(a.body["data"]["detail"].as_str().unwrap().contains("control character"), "{method} {path}: {:?}", a.body);
            // Traversal and injection strings in an id: a dictionary refusal (or, for a list under
            // a parent that does not exist, an empty list), never a storage failure.
            for id in ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "'%20OR%201=1--", "%24(id)"] {
                let path = format!("/api/v1{}", route.replace("{}", id));
                let a = app.rest(method, &path, Some(&admin), None).await;
                let refused = a.status >= 400 && a.body["data"]["error_key"].is_string();
                let empty = a.status == 200 && *method == "GET" && a.body["data"]["total"] == 0;
                assert!(a.status < 500 && (refused || empty), "{method} {path}: {:?}", a.body);
            }
        }
        if *method != "GET" && *method != "DELETE" {
            let path = format!("/api/v1{}", route.replace("{}", "00000000-0000-0000-0000-000000000000"));
            let body = json!({ "name": "n\u{0}", "comment": "c\u{0}", "reason": "r\u{0}", "labels": { "k": "v\u{0}" } });
            let a = app.rest(method, &path, Some(&admin), Some(body)).await;
            // A route that reads a body refuses it; one that takes none answers for its path alone.
            assert!(a.status < 500 && a.body["data"]["error_key"].is_string() && a.error_key() != "internal_error", "{method} {path}: {:?}", a.body);
            if a.status == 422 {
                assert!(a.body["data"]["detail"].as_str().unwrap().contains("control character"), "{method} {path}: {:?}", a.body);
            }
        }
        let after = footprint(&app).await;
        assert_eq!(after.1, before.1, "{method} {route} stored a secret");
        assert_eq!(after.0, before.0, "{method} {route} appended events");
    }
    // A new AI session takes only optional fields: a NUL in them is refused, and so is one in a message.
    let before = footprint(&app).await;
    let a = app.rest("POST", "/api/v1/ai/sessions", Some(&admin), Some(json!({ "title": "t\u{0}" }))).await;
    assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{:?}", a.body);
    assert_eq!(footprint(&app).await, before);
    let session = app.rest("POST", "/api/v1/ai/sessions", Some(&admin), Some(json!({}))).await.data()["session_id"].as_str().unwrap().to_string();
    let before = footprint(&app).await;
    let a = app.rest("POST", &format!("/api/v1/ai/sessions/{session}/messages"), Some(&admin), Some(json!({ "text": "发布\u{0}" }))).await;
    assert_eq!((a.status, a.error_key()), (422, "validation_error"), "{:?}", a.body);
    assert_eq!(footprint(&app).await, before, "a refused message records nothing");
    healthy(&app).await;
}
