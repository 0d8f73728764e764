//! Reads authorize in one place: every query of both surfaces checks the read
//! permission and the project scope itself, so REST and GraphQL answer the
//! same refusal to a caller lacking the permission, and nothing of a foreign
//! project to a caller of another one.

use opspilot_tests::{env, TestApp, DEMO_PASSWORD};
use serde_json::{json, Value};

const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: {{ service }} }\ndata: { tag: \"{{ image_tag }}\" }\n";

/// proj-alpha with a cluster, a service, a target, a host, an environment
/// (env-a) and a release waiting in the inbox; a role-less user; an operator
/// of proj-beta.
struct World {
    app: TestApp,
    nobody: String,
    outsider: String,
    release: String,
    ticket: String,
    cluster: String,
}

async fn world() -> World {
    env::shared();
    let app = opspilot_tests::spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    let namespace = env::fresh_namespace(&env::kube_admin().await).await;
    let post = |path: &'static str, body: Value| {
        let (app, admin) = (&app, admin.clone());
        async move { app.rest("POST", path, Some(&admin), Some(body)).await.data().clone() }
    };
    post("/api/v1/clusters/import/kubeconfig", json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig })).await;
    post("/api/v1/deploy/services", json!({ "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": TEMPLATE, "risk_level": "high" })).await;
    post("/api/v1/deploy/targets", json!({ "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "production", "cluster_id": "k8s-prod-platform", "namespace": namespace })).await;
    post("/api/v1/hosts", json!({ "name": "host-a", "project_id": "proj-alpha", "ip": "127.0.0.1", "port": 22, "ssh_user": "ops", "auth": "password", "password": "not-a-real-one" })).await;
    post("/api/v1/environments", json!({ "name": "env-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "compose" })).await;
    let body = json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "production", "variables": { "image_tag": "v1" } });
    let p = app.rest("POST", "/api/v1/deploy/releases/preview", Some(&dev), Some(body.clone())).await.data().clone();
    let mut apply = body;
    apply["preview_ref"] = p["preview_ref"].clone();
    let a = app.rest("POST", "/api/v1/deploy/releases/apply", Some(&dev), Some(apply)).await.data().clone();

    post("/api/v1/users", json!({ "username": "nobody", "password": DEMO_PASSWORD, "roles": [] })).await;
    post("/api/v1/projects", json!({ "name": "proj-beta" })).await;
    post("/api/v1/teams", json!({ "name": "team-beta", "project_id": "proj-beta" })).await;
    post("/api/v1/users", json!({ "username": "outsider", "password": DEMO_PASSWORD, "roles": ["operator"] })).await;
    app.rest("POST", "/api/v1/teams/team-beta/members", Some(&admin), Some(json!({ "user_id": "outsider" }))).await.data();
    let cluster = app.rest("GET", "/api/v1/clusters/k8s-prod-platform", Some(&admin), None).await.data()["id"].as_str().unwrap().to_string();
    let (nobody, outsider) = (app.login("nobody", DEMO_PASSWORD).await, app.login("outsider", DEMO_PASSWORD).await);
    World {
        release: a["release_id"].as_str().unwrap().to_string(),
        ticket: a["approval_ticket"].as_str().unwrap().to_string(),
        cluster,
        nobody,
        outsider,
        app,
    }
}

/// Every REST read with an id of proj-alpha.
fn rest_reads(w: &World) -> Vec<String> {
    let (r, t, c) = (&w.release, &w.ticket, &w.cluster);
    let task = uuid::Uuid::new_v4();
    [
        "/api/v1/users".into(), "/api/v1/projects".into(), "/api/v1/teams".into(), "/api/v1/audit/events".into(),
        "/api/v1/deploy/services".into(), "/api/v1/deploy/targets".into(), format!("/api/v1/deploy/releases/{r}"),
        format!("/api/v1/deploy/releases/{r}/timeline"), "/api/v1/approvals/inbox".into(), format!("/api/v1/approvals/inbox/{t}"),
        "/api/v1/clusters".into(), format!("/api/v1/clusters/{c}"), format!("/api/v1/clusters/{c}/connection"),
        "/api/v1/hosts".into(), "/api/v1/hosts/host-a".into(), "/api/v1/environments".into(), "/api/v1/environments/env-a".into(),
        "/api/v1/environments/env-a/install/tasks".into(), format!("/api/v1/environments/env-a/install/tasks/{task}"),
        format!("/api/v1/environments/env-a/install/tasks/{task}/logs"), format!("/api/v1/environments/env-a/install/tasks/{task}/timeline"),
    ]
    .into()
}

/// Every GraphQL query with an id of proj-alpha.
fn graphql_reads(w: &World) -> Vec<String> {
    let (r, c) = (&w.release, &w.cluster);
    let task = uuid::Uuid::new_v4();
    [
        "{ users { total } }".into(), "{ projects { total } }".into(), "{ teams { total } }".into(), "{ auditEvents { total } }".into(),
        "{ services { total } }".into(), "{ targets { total } }".into(), format!("{{ release(id: \"{r}\") {{ id }} }}"),
        format!("{{ releaseTimeline(id: \"{r}\") {{ action }} }}"), "{ inbox { total } }".into(), "{ clusters { total } }".into(),
        format!("{{ cluster(id: \"{c}\") {{ id }} }}"), "{ hosts { total } }".into(), "{ host(id: \"host-a\") { id } }".into(),
        "{ environments { total } }".into(), "{ environment(id: \"env-a\") { id } }".into(), "{ installTasks(environment: \"env-a\") { total } }".into(),
        format!("{{ installTask(environment: \"env-a\", taskId: \"{task}\") {{ status }} }}"),
        format!("{{ installTaskLogs(environment: \"env-a\", taskId: \"{task}\") {{ line }} }}"),
        format!("{{ installTaskTimeline(environment: \"env-a\", taskId: \"{task}\") {{ action }} }}"),
    ]
    .into()
}

#[tokio::test]
async fn a_caller_without_read_permissions_is_refused_alike_on_both_surfaces() {
    let w = world().await;
    for path in rest_reads(&w) {
        let a = w.app.rest("GET", &path, Some(&w.nobody), None).await;
        assert_eq!(a.error_key(), "permission_denied", "GET {path}: {}", a.body);
    }
    for q in graphql_reads(&w) {
        let r = w.app.gql(Some(&w.nobody), &q, json!({})).await;
        assert_eq!(r["errors"][0]["extensions"]["error_key"], "permission_denied", "{q}: {r}");
    }
    // What needs no permission: the caller itself, its tokens, the dictionary.
    for path in ["/api/v1/auth/me", "/api/v1/auth/tokens", "/api/v1/errors"] {
        assert_eq!(w.app.rest("GET", path, Some(&w.nobody), None).await.body["code"], 1000, "{path}");
    }
    let r = w.app.gql(Some(&w.nobody), "{ me { username } apiTokens { id } errorDictionary { code } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn a_caller_of_another_project_sees_nothing_of_it_on_either_surface() {
    let w = world().await;
    let not_found = ["release_not_found", "approval_ticket_not_found", "cluster_not_found", "not_found", "environment_not_found", "install_task_not_found"];
    for path in rest_reads(&w) {
        let a = w.app.rest("GET", &path, Some(&w.outsider), None).await;
        if a.body["code"] == 1000 {
            let total = &a.data()["total"];
            assert!(total == 0 || path.ends_with("/users") || path.ends_with("/projects") || path.ends_with("/teams") || path.ends_with("/audit/events"), "GET {path} shows proj-alpha: {}", a.body);
        } else {
            assert!(not_found.contains(&a.error_key()), "GET {path}: {}", a.body);
        }
    }
    for q in graphql_reads(&w) {
        let r = w.app.gql(Some(&w.outsider), &q, json!({})).await;
        // Errors may echo the id the caller sent; the data holds nothing of proj-alpha.
        let text = r["data"].to_string();
        assert!(!text.contains(&w.release) && !text.contains(&w.cluster) && !text.contains("svc-a"), "{q}: {r}");
        if let Some(key) = r["errors"][0]["extensions"]["error_key"].as_str() {
            assert!(not_found.contains(&key), "{q}: {r}");
        }
    }
    // Lists of proj-alpha's resources are empty for the outsider.
    for q in ["{ services { total } }", "{ targets { total } }", "{ clusters { total } }", "{ hosts { total } }", "{ environments { total } }", "{ inbox(filter: {view: \"all\"}) { total } }"] {
        let r = w.app.gql(Some(&w.outsider), q, json!({})).await;
        let total = r["data"].as_object().and_then(|o| o.values().next()).map(|v| v["total"].clone());
        assert_eq!(total, Some(json!(0)), "{q}: {r}");
    }
}
