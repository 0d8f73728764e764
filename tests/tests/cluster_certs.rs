//! Certificates of imported clusters against the real control plane of
//! tests/env: the listing shows the CA and client certificate with the
//! not_after openssl reads from the same files, the fleet view filters by
//! days ahead, and the scheduler records `cluster.cert_expiring` once per
//! threshold for a client certificate that expires in 20 days.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opspilot_tests::{env, eventually, spawn_app_with, TestApp, DEMO_PASSWORD};
use serde_json::{json, Value};

fn k8s(key: &str) -> String {
    env::shared()["k8s"][key].as_str().unwrap().to_string()
}

/// `notAfter` of a PEM file as openssl prints it, parsed.
fn openssl_not_after(path: &str) -> DateTime<Utc> {
    let out = Command::new("openssl").args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", path]).output().expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let iso = text.trim().trim_start_matches("notAfter=");
    DateTime::parse_from_str(iso, "%Y-%m-%d %H:%M:%S%#z").map(|d| d.with_timezone(&Utc)).unwrap_or_else(|e| panic!("{iso}: {e}"))
}

/// A client certificate in `system:masters`, signed by the test cluster's CA, valid `days`.
fn short_lived_client(dir: &std::path::Path, days: u32) -> (String, String, String) {
    let pki = std::path::Path::new(&k8s("pkiDir")).to_path_buf();
    let (key, csr, crt) = (dir.join("short.key"), dir.join("short.csr"), dir.join("short.crt"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    run(&["req", "-new", "-key", key.to_str().unwrap(), "-subj", "/O=system:masters/CN=short-lived", "-out", csr.to_str().unwrap()]);
    let ext = dir.join("client.ext");
    std::fs::write(&ext, "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509", "-req", "-extfile", ext.to_str().unwrap(), "-in", csr.to_str().unwrap(), "-CA", pki.join("ca.crt").to_str().unwrap(), "-CAkey", pki.join("ca.key").to_str().unwrap(),
        "-CAcreateserial", "-CAserial", dir.join("ca.srl").to_str().unwrap(), "-days", &days.to_string(), "-out", crt.to_str().unwrap(),
    ]);
    (std::fs::read_to_string(&crt).unwrap(), std::fs::read_to_string(&key).unwrap(), crt.to_str().unwrap().to_string())
}

async fn setup() -> (TestApp, String) {
    env::shared();
    let app = spawn_app_with(|c| c.scheduler_interval_ms = 200).await;
    app.demo_users().await;
    let admin = app.admin().await;
    (app, admin)
}

fn cert<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|c| c["cert_id"] == id).unwrap_or_else(|| panic!("{id} missing from {list}"))
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_imported_clusters_certificates_are_listed_with_the_real_expiry_and_found_by_days_ahead() {
    let (app, admin) = setup().await;
    let kubeconfig = std::fs::read_to_string(k8s("adminKubeconfig")).unwrap();
    let a = app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-certs", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await;
    let cluster_id = a.data()["cluster_id"].as_str().expect("imported").to_string();

    let mut listed = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), async || {
            listed = app.rest("GET", &format!("/api/v1/clusters/{cluster_id}/certs"), Some(&admin), None).await.data().clone();
            listed["list"].as_array().is_some_and(|l| l.len() == 2)
        })
        .await,
        "CA and client certificate listed: {listed}"
    );
    let pki = k8s("pkiDir");
    let (ca, client) = (cert(&listed["list"], "ca"), cert(&listed["list"], "client"));
    assert_eq!(at(&ca["not_after"]), openssl_not_after(&format!("{pki}/ca.crt")));
    assert_eq!(at(&client["not_after"]), openssl_not_after(&format!("{pki}/admin.crt")));
    assert_eq!((ca["is_ca"].as_bool(), client["is_ca"].as_bool()), (Some(true), Some(false)));
    assert_eq!(ca["origin"], "imported");
    assert!(client["subject"].as_str().unwrap().contains("CN=admin"), "{client}");
    assert_eq!(client["issuer"], ca["subject"], "who issued it");
    assert!(client["days_left"].as_i64().unwrap() > 300);
    assert!(!listed.to_string().contains("PRIVATE KEY"), "no key material");

    // The fleet view: the client certificate (one year) is within 400 days, not within 30.
    let soon = app.rest("GET", "/api/v1/certs/expiring?within_days=400", Some(&admin), None).await;
    assert!(soon.data()["list"].as_array().unwrap().iter().any(|c| c["cluster_id"] == cluster_id.as_str() && c["cert_id"] == "client"), "{:?}", soon.data());
    let later = app.rest("GET", "/api/v1/certs/expiring?within_days=30", Some(&admin), None).await;
    assert!(!later.data()["list"].as_array().unwrap().iter().any(|c| c["cluster_id"] == cluster_id.as_str()), "{:?}", later.data());
    let gql = app.gql(Some(&admin), "query($id: String!) { clusterCertificates(id: $id) { certId notAfter daysLeft origin } }", json!({ "id": cluster_id })).await;
    assert_eq!(gql["data"]["clusterCertificates"].as_array().map(|l| l.len()), Some(2), "{gql}");

    // Bad input names the field and changes nothing.
    for bad in ["-1", "abc", "99999"] {
        let r = app.rest("GET", &format!("/api/v1/certs/expiring?within_days={bad}"), Some(&admin), None).await;
        assert_eq!(r.error_key(), "validation_error", "{bad}");
    }
    let missing = app.rest("GET", "/api/v1/clusters/no-such-cluster/certs", Some(&admin), None).await;
    assert_eq!(missing.error_key(), "cluster_not_found");
    // A member of another project sees nothing of it.
    app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-beta" }))).await.data();
    app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-beta", "project_id": "proj-beta" }))).await.data();
    app.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": "beta_user", "password": DEMO_PASSWORD, "roles": ["operator"] }))).await.data();
    app.rest("POST", "/api/v1/teams/team-beta/members", Some(&admin), Some(json!({ "user_id": "beta_user" }))).await.data();
    let beta = app.login("beta_user", DEMO_PASSWORD).await;
    let fleet = app.rest("GET", "/api/v1/certs/expiring?within_days=3650", Some(&beta), None).await;
    assert_eq!(fleet.data()["total"], 0, "{:?}", fleet.data());
    let hidden = app.rest("GET", &format!("/api/v1/clusters/{cluster_id}/certs"), Some(&beta), None).await;
    assert_eq!(hidden.error_key(), "cluster_not_found");
}

#[tokio::test]
async fn a_client_certificate_expiring_in_twenty_days_is_recorded_once_at_the_thirty_day_threshold() {
    let (app, admin) = setup().await;
    let dir = std::env::temp_dir().join(format!("opspilot-certs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_pem, key_pem, crt_path) = short_lived_client(&dir, 20);
    let ca_pem = std::fs::read_to_string(format!("{}/ca.crt", k8s("pkiDir"))).unwrap();
    let body = json!({
        "name": "k8s-short-lived", "project_id": "proj-alpha", "team_id": "team-app",
        "endpoint": k8s("apiserverUrl"), "auth_type": "cert_key", "ca_cert": ca_pem, "client_cert": cert_pem, "client_key": key_pem,
    });
    let a = app.rest("POST", "/api/v1/clusters/import/cert", Some(&admin), Some(body)).await;
    let cluster_id = a.data()["cluster_id"].as_str().unwrap_or_else(|| panic!("imported: {:?}", a.data())).to_string();

    let path = format!("/api/v1/audit/events?action=cluster.cert_expiring&resource_id={cluster_id}");
    let mut events = vec![];
    assert!(
        eventually(Duration::from_secs(15), async || {
            events = app.rest("GET", &path, Some(&admin), None).await.data()["list"].as_array().cloned().unwrap_or_default();
            !events.is_empty()
        })
        .await,
        "the scheduler records the certificate as expiring"
    );
    // Several more scheduler rounds: still exactly one, at 30 days (not yet 7).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = app.rest("GET", &path, Some(&admin), None).await.data()["list"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{events:?}");
    let d = &events[0]["detail"];
    assert_eq!((d["cert_id"].as_str(), d["threshold_days"].as_i64()), (Some("client"), Some(30)), "{d}");
    assert!((19..=20).contains(&d["days_left"].as_i64().unwrap()), "{d}");
    assert_eq!(at(&d["not_after"]), openssl_not_after(&crt_path));
    assert_eq!(events[0]["source"], "system_scheduler");

    let soon = app.rest("GET", "/api/v1/certs/expiring?within_days=30", Some(&admin), None).await;
    assert!(soon.data()["list"].as_array().unwrap().iter().any(|c| c["cluster_id"] == cluster_id.as_str() && c["cert_id"] == "client"));
    let _ = std::fs::remove_dir_all(dir);
}
