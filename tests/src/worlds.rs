//! Worlds several test files start from.

use serde_json::json;

use crate::{env, TestApp};

/// svc-a's template: a Deployment scheduled on the control plane's kwok nodes.
pub const SVC_A_TEMPLATE: &str = r#"apiVersion: apps/v1
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

/// The seed's k8s world.
pub struct SvcAWorld {
    pub app: TestApp,
    /// dev_user's token.
    pub dev: String,
    pub namespace: String,
}

/// proj-alpha, team-app, dev_user and approver_user, the test cluster
/// imported as k8s-prod-platform, svc-a (k8s, risk high) and
/// target-k8s-prod (env production) in a fresh namespace.
pub async fn svc_a_on_k8s(change: impl FnOnce(&mut opspilot_api::Config)) -> SvcAWorld {
    env::shared();
    let app = crate::spawn_app_with(change).await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let kube = env::kube_admin().await;
    let namespace = env::fresh_namespace(&kube).await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await.data();
    app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({
        "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
        "manifest_template": SVC_A_TEMPLATE, "default_variables": { "replicas": "2" }, "risk_level": "high"
    }))).await.data();
    app.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({
        "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
        "env": "production", "cluster_id": "k8s-prod-platform", "namespace": namespace
    }))).await.data();
    SvcAWorld { app, dev, namespace }
}
