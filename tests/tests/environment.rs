//! Smoke tests of the real test environments: a Deployment becomes Available
//! through kube-rs on the loopback control plane (kwok nodes), commands run on
//! three SSH hosts with their host keys pinned, and the harness's own smoke
//! script (nested Docker, compose, signed bundle, host-key rotation) passes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use kube::api::{Api, PostParams};
use opspilot_ssh::{scan_host_key, SshAuth, SshError, SshSession};
use opspilot_tests::env;
use serde_json::json;

#[tokio::test]
async fn a_deployment_created_through_kube_rs_becomes_available_on_kwok_nodes() {
    let client = env::kube_admin().await;
    let ns = env::fresh_namespace(&client).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "svc-a" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "svc-a" } },
            "template": {
                "metadata": { "labels": { "app": "svc-a" } },
                "spec": {
                    "nodeSelector": { "type": "kwok" },
                    "tolerations": [{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }],
                    "containers": [{ "name": "app", "image": "registry.invalid/svc-a:v1" }]
                }
            }
        }
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &d).await.expect("deployment created");
    let available = opspilot_tests::eventually(Duration::from_secs(90), async || {
        let d = deployments.get("svc-a").await.unwrap();
        let status = d.status.unwrap_or_default();
        status.available_replicas == Some(2)
            && status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Available" && c.status == "True")
    })
    .await;
    assert!(available, "svc-a did not become Available: {:?}", deployments.get("svc-a").await.unwrap().status);
}

#[tokio::test]
async fn the_limited_token_may_list_namespaces_but_not_deployments() {
    let limited = env::kube_client(env::shared()["k8s"]["limitedKubeconfig"].as_str().unwrap()).await;
    let can = async |verb: &str, resource: &str, group: &str| {
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({
            "spec": { "resourceAttributes": { "verb": verb, "resource": resource, "group": group } }
        }))
        .unwrap();
        let api: Api<SelfSubjectAccessReview> = Api::all(limited.clone());
        api.create(&PostParams::default(), &review).await.expect("review answered").status.expect("status").allowed
    };
    assert!(can("list", "namespaces", "").await);
    assert!(!can("list", "deployments", "apps").await);
    assert!(!can("patch", "deployments", "apps").await);
}

#[tokio::test]
async fn commands_run_on_three_hosts_with_their_pinned_host_keys() {
    let env = env::shared();
    let mut names = Vec::new();
    for i in 0..3 {
        let root = SshSession::connect(&env::ssh_target(i, true)).await.expect("root logs in with its key");
        let out = root.exec("hostname && id -u", Duration::from_secs(20)).await.unwrap();
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        names.push(out.stdout.lines().next().unwrap().to_string());
        assert_eq!(out.stdout.lines().nth(1), Some("0"));

        let ops = SshSession::connect(&env::ssh_target(i, false)).await.expect("ops logs in with its password");
        let out = ops.exec("id -un && sudo -n id -u", Duration::from_secs(20)).await.unwrap();
        assert_eq!(out.stdout, "ops\n0\n", "{out:?}");
        let failing = ops.exec("echo oops >&2; exit 3", Duration::from_secs(20)).await.unwrap();
        assert_eq!((failing.exit_code, failing.stderr.as_str()), (Some(3), "oops\n"));
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "three distinct hosts: {names:?}");

    // The key a host presents is the one env.json recorded.
    let h0 = &env["hosts"][0];
    let presented = scan_host_key(h0["ip"].as_str().unwrap(), 22, Duration::from_secs(10)).await.unwrap();
    assert_eq!(presented, h0["hostKey"]["fingerprint"].as_str().unwrap());

    // A host whose key differs from the pin is refused, naming both keys.
    let mut wrong_pin = env::ssh_target(1, true);
    wrong_pin.pinned_fingerprint = h0["hostKey"]["fingerprint"].as_str().unwrap().into();
    match SshSession::connect(&wrong_pin).await {
        Err(e @ SshError::HostKeyMismatch { .. }) => {
            assert_eq!(e.code(), opspilot_domain::ErrorCode::SshHostKeyMismatch);
            let SshError::HostKeyMismatch { presented, .. } = e else { unreachable!() };
            assert_eq!(presented, env["hosts"][1]["hostKey"]["fingerprint"].as_str().unwrap());
        }
        other => panic!("a changed host key was accepted: {:?}", other.map(|s| s.user)),
    }

    let mut bad_password = env::ssh_target(2, false);
    bad_password.auth = SshAuth::Password("not-the-password".into());
    let err = SshSession::connect(&bad_password).await.err().expect("wrong password refused");
    assert_eq!(err.code(), opspilot_domain::ErrorCode::SshAuthFailed, "{err}");

    let mut closed_port = env::ssh_target(2, true);
    closed_port.port = 2;
    let err = SshSession::connect(&closed_port).await.err().expect("closed port refused");
    assert_eq!(err.code(), opspilot_domain::ErrorCode::SshUnreachable, "{err}");
}

#[tokio::test]
async fn the_harness_smoke_script_passes() {
    env::shared();
    let out = std::process::Command::new(env::env_dir().join("smoke.sh")).output().expect("smoke.sh runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tests/env/smoke.sh failed:\n{text}");
    for part in ["nested", "verify", "rotat"] {
        assert!(text.to_lowercase().contains(part), "smoke output lacks {part}:\n{text}");
    }
}
