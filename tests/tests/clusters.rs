//! External cluster import against the real control plane of tests/env: by
//! kubeconfig, by token and by client certificate, each valid and invalid;
//! a token with too few rights is refused naming the missing verbs.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use opspilot_tests::{env, spawn_app, TestApp};
use serde_json::{json, Value};

fn read(path_key: &str) -> String {
    std::fs::read_to_string(env::shared()["k8s"][path_key].as_str().unwrap()).unwrap()
}

fn endpoint() -> String {
    env::shared()["k8s"]["apiserverUrl"].as_str().unwrap().to_string()
}

async fn setup() -> (TestApp, String) {
    env::shared();
    let app = spawn_app().await;
    app.demo_users().await;
    let admin = app.admin().await;
    (app, admin)
}

fn placement(name: &str) -> Value {
    json!({ "name": name, "project_id": "proj-alpha", "team_id": "team-app" })
}

fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    base
}

/// A service-account token that may do what a release needs (cluster-admin).
async fn release_token() -> String {
    let client = env::kube_admin().await;
    let ns = env::fresh_namespace(&client).await;
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "opspilot" } })).unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": format!("opspilot-{ns}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "kind": "ServiceAccount", "name": "opspilot", "namespace": ns }]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone()).create(&PostParams::default(), &binding).await.unwrap();
    let req: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(json!({ "spec": { "expirationSeconds": 3600 } })).unwrap();
    let answer: Value = sas.create_subresource("token", "opspilot", &PostParams::default(), serde_json::to_vec(&req).unwrap()).await.unwrap();
    answer["status"]["token"].as_str().expect("token issued").to_string()
}

#[tokio::test]
async fn import_by_kubeconfig_connects_probes_and_stores_only_a_reference() {
    let (app, admin) = setup().await;
    let kubeconfig = read("adminKubeconfig");
    let a = app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(with(placement("k8s-prod-external"), json!({ "kubeconfig": kubeconfig })))).await;
    let data = a.data().clone();
    assert_eq!(data["server_version"], env::shared()["k8s"]["version"]);
    assert!(data["namespaces"].as_array().unwrap().contains(&json!("kube-system")));

    let conn = app.rest("GET", "/api/v1/clusters/k8s-prod-external/connection", Some(&admin), None).await;
    let c = &conn.data()["connection"];
    assert_eq!((c["auth_type"].as_str(), c["endpoint"].as_str(), c["source_type"].as_str()), (Some("kubeconfig"), Some(endpoint().as_str()), Some("external_imported")));
    assert!(c["credential_fingerprint"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(c["client_cert_expires_at"].is_string(), "client certificate expiry is shown");
    let key_line = read("adminClientKey").lines().nth(1).unwrap().to_string();
    assert!(!conn.body.to_string().contains(&key_line));

    let events = app.rest("GET", "/api/v1/audit/events?domain=cluster&order=asc", Some(&admin), None).await;
    let actions: Vec<&str> = events.data()["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["cluster.import_kubeconfig_requested", "cluster.import_kubeconfig_succeeded"]);
    assert!(!events.body.to_string().contains(&key_line), "no key material in events");

    // Reusing the stored credentials.
    let t = app.rest("POST", "/api/v1/clusters/k8s-prod-external/connect/test", Some(&admin), Some(json!({ "check_permissions": true }))).await;
    assert_eq!(t.data()["reachable"], true);
    assert_eq!(t.data()["permissions"]["list namespaces"], true);
    assert_eq!(t.data()["permissions"]["patch deployments.apps"], true);
    let again = app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(with(placement("k8s-prod-external"), json!({ "kubeconfig": kubeconfig })))).await;
    assert_eq!(again.error_key(), "resource_conflict");

    // The seed's fault sample: invalid content; and a kubeconfig pointing at local files.
    let bad = app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(with(placement("k8s-bad"), json!({ "kubeconfig": "invalid-content" })))).await;
    assert_eq!((bad.status, bad.body["code"].as_i64().unwrap(), bad.error_key()), (422, 33003, "kubeconfig_invalid"));
    let with_files = kubeconfig.replace("certificate-authority-data:", "certificate-authority: /etc/shadow\n    x-ignored:");
    let bad = app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(with(placement("k8s-bad"), json!({ "kubeconfig": with_files })))).await;
    assert_eq!(bad.error_key(), "kubeconfig_invalid", "{}", bad.body);
    let listed = app.rest("GET", "/api/v1/clusters", Some(&admin), None).await;
    assert_eq!(listed.data()["total"], 1, "failed imports store nothing");
}

#[tokio::test]
async fn import_by_token_needs_the_verbs_a_release_uses() {
    let (app, admin) = setup().await;
    let ca = read("caFile");
    let limited = env::shared()["k8s"]["limitedToken"].as_str().unwrap().to_string();
    let cert = |token: &str| json!({ "endpoint": endpoint(), "auth_type": "cert_token", "ca_cert": ca, "token": token });

    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-limited"), cert(&limited)))).await;
    assert_eq!((a.status, a.body["code"].as_i64().unwrap(), a.error_key()), (403, 33007, "cluster_permission_insufficient"));
    let detail = a.body["data"]["detail"].as_str().unwrap();
    assert!(detail.contains("list deployments.apps") && detail.contains("patch deployments.apps"), "{detail}");
    assert!(!detail.contains("list namespaces"), "the limited user may list namespaces: {detail}");

    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-bogus"), cert("not-a-real-token")))).await;
    assert_eq!(a.error_key(), "cluster_connect_failed", "{}", a.body);
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-http"), json!({ "endpoint": "http://127.0.0.1:16443", "ca_cert": ca, "token": "x" })))).await;
    assert_eq!(a.error_key(), "endpoint_invalid");

    let token = release_token().await;
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-token"), cert(&token)))).await;
    assert_eq!(a.data()["auth_type"], "cert_token");
    let listed = app.rest("GET", "/api/v1/clusters", Some(&admin), None).await;
    assert_eq!(listed.data()["list"][0]["name"], "k8s-token");
    assert_eq!(listed.data()["total"], 1);
    let events = app.rest("GET", "/api/v1/audit/events?domain=cluster", Some(&admin), None).await;
    assert!(!events.body.to_string().contains(&token));
    assert_eq!(events.data()["list"][0]["action"], "cluster.import_cert_succeeded");
}

#[tokio::test]
async fn import_by_client_certificate_and_its_negatives() {
    let (app, admin) = setup().await;
    let ca = read("caFile");
    let (crt, key) = (read("adminClientCert"), read("adminClientKey"));
    let body = |crt: &str| json!({ "endpoint": endpoint(), "auth_type": "cert_key", "ca_cert": ca, "client_cert": crt, "client_key": key });

    let bad_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-cert"), body(bad_pem)))).await;
    assert_eq!((a.body["code"].as_i64().unwrap(), a.error_key()), (33004, "certificate_invalid"));
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-cert"), json!({ "endpoint": endpoint(), "auth_type": "cert_key", "ca_cert": ca })))).await;
    assert_eq!(a.error_key(), "validation_error");

    // dev_user (operator) may not import at all; the denial is audited.
    let dev = app.login("dev_user", opspilot_tests::DEMO_PASSWORD).await;
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&dev), Some(with(placement("k8s-cert"), body(&crt)))).await;
    assert_eq!(a.error_key(), "permission_denied");

    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(with(placement("k8s-cert"), body(&crt)))).await;
    assert_eq!(a.data()["auth_type"], "cert_key");
    let r = app.gql(Some(&dev), "{ clusters { total list { name connection { authType endpoint } } } }", json!({})).await;
    assert_eq!(r["data"]["clusters"]["total"], 1, "dev_user sees the cluster of proj-alpha");
    assert_eq!(r["data"]["clusters"]["list"][0]["connection"]["authType"], "cert_key", "{r}");
    let t = app.gql(Some(&dev), r#"mutation { testClusterConnection(id: "k8s-cert") { result } }"#, json!({})).await;
    assert_eq!(t["data"]["testClusterConnection"]["result"]["reachable"], true, "{t}");
}
