//! Releases on Kubernetes against the real control plane: catalog, and the
//! mandatory preview (render, server-side dry-run, diff against live objects).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use opspilot_tests::{env, spawn_app, TestApp, DEMO_PASSWORD};
use serde_json::{json, Value};

const TEMPLATE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ service }}
  labels: { app: {{ service }} }
spec:
  replicas: {{ replicas }}
  selector: { matchLabels: { app: {{ service }} } }
  template:
    metadata: { labels: { app: {{ service }} } }
    spec:
      nodeSelector: { type: kwok }
      tolerations: [{ key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule }]
      containers:
      - name: app
        image: registry.invalid/{{ service }}:{{ image_tag }}
"#;

struct World {
    app: TestApp,
    dev: String,
    namespace: String,
}

/// The seed's world: proj-alpha, team-app, dev_user, an imported cluster,
/// svc-a (k8s) and target-k8s-prod in a fresh namespace.
async fn world() -> World {
    env::shared();
    let app = spawn_app().await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let kube = env::kube_admin().await;
    let namespace = env::fresh_namespace(&kube).await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await.data();
    app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({
        "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
        "manifest_template": TEMPLATE, "default_variables": { "replicas": "2" }, "risk_level": "high"
    }))).await.data();
    app.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({
        "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
        "env": "production", "cluster_id": "k8s-prod-platform", "namespace": namespace
    }))).await.data();
    World { app, dev, namespace }
}

fn preview_body(tag: &str) -> Value {
    json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "production", "strategy": "rolling", "variables": { "image_tag": tag } })
}

#[tokio::test]
async fn a_preview_renders_dry_runs_and_diffs_against_the_live_objects() {
    let w = world().await;
    let a = w.app.rest_with("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(preview_body("v2.0.1")), &[("x-opspilot-source", "deployment_ui")]).await;
    let p = a.data().clone();
    assert!(p["preview_ref"].as_str().unwrap().starts_with("rel-prev-"));
    assert!(p["resolved_manifest"].as_str().unwrap().contains("registry.invalid/svc-a:v2.0.1"));
    assert_eq!(p["runtime"], "k8s");
    assert_eq!(p["risk_level"], "high");
    assert_eq!(p["diff"][0]["change"], "create");
    assert_eq!(p["checks"][1]["code"], "dry_run_ok");
    assert!(p["expires_at"].is_string());

    // The dry-run changed nothing in the cluster.
    let kube = env::kube_admin().await;
    let deployments: Api<Deployment> = Api::namespaced(kube, &w.namespace);
    assert!(deployments.get_opt("svc-a").await.unwrap().is_none());

    // The release's timeline starts with the preview, from the entry point used.
    let admin = w.app.admin().await;
    let release_id = p["release_id"].as_str().unwrap();
    let tl = w.app.rest("GET", &format!("/api/v1/audit/events?resource_id={release_id}&order=asc"), Some(&admin), None).await;
    let list = tl.data()["list"].as_array().unwrap().clone();
    let actions: Vec<&str> = list.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["release.draft_created", "release.previewed"]);
    assert_eq!(list[1]["source"], "deployment_ui");
    assert_eq!(list[1]["detail"]["preview_ref"], p["preview_ref"]);
    assert_eq!(list[1]["detail"]["variables"]["image_tag"], "v2.0.1");

    // Against a live v1 the diff names the image change.
    let live: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "svc-a", "labels": { "app": "svc-a" } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "svc-a" } },
            "template": {
                "metadata": { "labels": { "app": "svc-a" } },
                "spec": {
                    "nodeSelector": { "type": "kwok" },
                    "tolerations": [{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }],
                    "containers": [{ "name": "app", "image": "registry.invalid/svc-a:v1.0.0" }]
                }
            }
        }
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &live).await.unwrap();
    let again = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(preview_body("v2.0.1"))).await;
    let diff = &again.data()["diff"][0];
    assert_eq!(diff["change"], "update");
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("-      - image: registry.invalid/svc-a:v1.0.0") && text.contains("+      - image: registry.invalid/svc-a:v2.0.1"), "{text}");
}

#[tokio::test]
async fn bad_previews_are_refused_with_dictionary_errors() {
    let w = world().await;
    // A variable the template needs is missing: refused, and the failed attempt is recorded.
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "production" }))).await;
    assert_eq!(a.error_key(), "validation_error");
    assert!(a.body["data"]["detail"].as_str().unwrap().contains("image_tag"), "{}", a.body);
    let admin = w.app.admin().await;
    let failed = w.app.rest("GET", "/api/v1/audit/events?action=release.preview_failed", Some(&admin), None).await;
    assert_eq!(failed.data()["total"], 1);

    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "staging", "variables": { "image_tag": "v1" } }))).await;
    assert_eq!(a.error_key(), "validation_error");
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-zzz", "target_id": "target-k8s-prod", "env": "production" }))).await;
    assert_eq!(a.error_key(), "not_found");

    // An approver may read but not preview (apply permission).
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&approver), Some(preview_body("v1"))).await;
    assert_eq!(a.error_key(), "permission_denied");
}
