//! Releases on Kubernetes against the real control plane: catalog, and the
//! mandatory preview (render, server-side dry-run, diff against live objects).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use opspilot_tests::{env, eventually, DEMO_PASSWORD};
use std::time::Duration;
use serde_json::{json, Value};

use opspilot_tests::worlds::{svc_a_on_k8s, SvcAWorld as World, SVC_A_TEMPLATE as TEMPLATE};

/// The seed's world: proj-alpha, team-app, dev_user, an imported cluster,
/// svc-a (k8s) and target-k8s-prod in a fresh namespace.
async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(change: impl FnOnce(&mut opspilot_api::Config)) -> World {
    svc_a_on_k8s(change).await
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
    // A variable the template needs is missing: refused before the cluster is asked, and nothing is recorded.
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "production" }))).await;
    assert_eq!(a.error_key(), "validation_error");
    assert!(a.body["data"]["detail"].as_str().unwrap().contains("image_tag"), "{}", a.body);
    let admin = w.app.admin().await;
    let failed = w.app.rest("GET", "/api/v1/audit/events?action=release.preview_failed", Some(&admin), None).await;
    assert_eq!(failed.data()["total"], 0);

    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "staging", "variables": { "image_tag": "v1" } }))).await;
    assert_eq!(a.error_key(), "validation_error");
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(json!({ "service_id": "svc-zzz", "target_id": "target-k8s-prod", "env": "production" }))).await;
    assert_eq!(a.error_key(), "not_found");

    // An approver may read but not preview (apply permission).
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let a = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&approver), Some(preview_body("v1"))).await;
    assert_eq!(a.error_key(), "permission_denied");
}

async fn preview(w: &World, token: &str, tag: &str) -> Value {
    w.app.rest_with("POST", "/api/v1/deploy/releases/preview", Some(token), Some(preview_body(tag)), &[("x-opspilot-source", "deployment_ui")]).await.data().clone()
}

async fn apply(w: &World, token: &str, preview_ref: Option<&Value>, tag: &str) -> opspilot_tests::Answer {
    let mut body = preview_body(tag);
    if let Some(p) = preview_ref {
        body["preview_ref"] = p.clone();
    }
    body["confirm"] = json!(true);
    w.app.rest_with("POST", "/api/v1/deploy/releases/apply", Some(token), Some(body), &[("x-opspilot-source", "deployment_ui")]).await
}

async fn timeline(w: &World, token: &str, release_id: &str) -> Vec<String> {
    let t = w.app.rest("GET", &format!("/api/v1/deploy/releases/{release_id}/timeline"), Some(token), None).await;
    t.data()["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

async fn wait_status(w: &World, token: &str, release_id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = w.app.rest("GET", &format!("/api/v1/deploy/releases/{release_id}"), Some(token), None).await.body;
        if last["data"]["status"] == status {
            return last["data"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("release {release_id} never reached {status}: {last}");
}

#[tokio::test]
async fn main_path_preview_apply_approve_applied_and_the_cluster_runs_the_new_image() {
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let p = preview(&w, &w.dev, "v2.0.1").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v2.0.1").await;
    let applied = a.data().clone();
    assert_eq!(applied["status"], "pending_approval");
    assert_eq!(applied["approval_required"], true);
    let ticket = applied["approval_ticket"].as_str().unwrap().to_string();
    let release_id = applied["release_id"].as_str().unwrap().to_string();
    let view = wait_status(&w, &w.dev, &release_id, "pending_approval").await;
    assert_eq!(view["status_label_en"].as_str().map(|s| !s.is_empty()), Some(true));

    // The ticket is in the approver's default view, with the entry point it came from.
    let inbox = w.app.rest("GET", "/api/v1/approvals/inbox", Some(&approver), None).await;
    let item = inbox.data()["list"].as_array().unwrap().iter().find(|i| i["ticket"] == ticket.as_str()).cloned().expect("ticket in the inbox");
    assert_eq!((item["status"].as_str(), item["source"].as_str(), item["risk_level"].as_str(), item["priority"].as_str()), (Some("pending"), Some("deployment_ui"), Some("high"), Some("p1")));
    assert_eq!(inbox.data()["stats"]["pending"], 1);

    let ok = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&approver), Some(json!({ "comment": "approved for prod window" }))).await;
    ok.data();
    let done = wait_status(&w, &w.dev, &release_id, "applied").await;
    assert_eq!(done["approval_ticket"], ticket.as_str());

    let kube = env::kube_admin().await;
    let d = Api::<Deployment>::namespaced(kube, &w.namespace).get("svc-a").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image, "registry.invalid/svc-a:v2.0.1");
    assert_eq!(d.status.unwrap().available_replicas, Some(2));
    let fm = d.metadata.managed_fields.unwrap_or_default();
    assert!(fm.iter().any(|m| m.manager.as_deref() == Some("opspilot")), "server-side apply with field manager opspilot");

    let actions = timeline(&w, &w.dev, &release_id).await;
    assert_eq!(
        actions,
        [
            "release.draft_created", "release.previewed", "release.apply_requested", "release.pending_approval",
            "approval.ticket_created", "approval.ticket_approved", "release.approved", "release.applying",
            "k8s.deploy_apply_succeeded", "release.applied"
        ]
    );
    // The same timeline for the approver.
    assert_eq!(timeline(&w, &approver, &release_id).await, actions);
    let inbox = w.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&approver), None).await;
    assert_eq!(inbox.data()["item"]["status"], "approved");
    let acts: Vec<&str> = inbox.data()["timeline"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(acts, ["created", "approved", "viewed"], "opening the ticket is recorded");
}

#[tokio::test]
async fn a_rejected_release_never_applies_and_shows_the_comment() {
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let p = preview(&w, &w.dev, "v3").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v3").await;
    let release_id = a.data()["release_id"].as_str().unwrap().to_string();
    w.app.rest("POST", &format!("/api/v1/deploy/releases/{release_id}/reject"), Some(&approver), Some(json!({ "comment": "risk too high" }))).await.data();
    wait_status(&w, &w.dev, &release_id, "rejected").await;
    let t = w.app.rest("GET", &format!("/api/v1/deploy/releases/{release_id}/timeline"), Some(&w.dev), None).await;
    let list = t.data()["list"].as_array().unwrap();
    assert!(list.iter().all(|e| e["action"] != "release.applying"), "no applying event");
    assert!(list.iter().any(|e| e["action"] == "approval.ticket_rejected" && e["detail"]["comment"] == "risk too high"));
    let kube = env::kube_admin().await;
    assert!(Api::<Deployment>::namespaced(kube, &w.namespace).get_opt("svc-a").await.unwrap().is_none());
}

#[tokio::test]
async fn the_three_preview_negatives_and_a_preview_applies_once() {
    let w = world().await;
    let admin = w.app.admin().await;
    let a = apply(&w, &w.dev, None, "v1").await;
    assert_eq!((a.body["code"].as_i64(), a.error_key()), (Some(32001), "preview_required"));

    let p = preview(&w, &w.dev, "v1").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v2").await;
    assert_eq!((a.body["code"].as_i64(), a.error_key()), (Some(32003), "preview_mismatch"));
    let tickets = w.app.rest("GET", "/api/v1/approvals/inbox?view=all", Some(&admin), None).await;
    assert_eq!(tickets.data()["total"], 0, "no ticket without a valid preview");

    let first = apply(&w, &w.dev, Some(&p["preview_ref"]), "v1").await;
    first.data();
    let again = apply(&w, &w.dev, Some(&p["preview_ref"]), "v1").await;
    assert_eq!(again.error_key(), "release_state_invalid");

    // Expiry, with a short TTL.
    let short = opspilot_tests::spawn_app_with(|c| c.preview_ttl_seconds = 1).await;
    let w2 = World { app: short, dev: String::new(), namespace: w.namespace.clone() };
    let dev = {
        let admin = w2.app.admin().await;
        w2.app.demo_users().await;
        let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
        w2.app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await.data();
        w2.app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": TEMPLATE, "default_variables": { "replicas": "2" } }))).await.data();
        w2.app.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({ "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "production", "cluster_id": "k8s-prod-platform", "namespace": w.namespace }))).await.data();
        w2.app.login("dev_user", DEMO_PASSWORD).await
    };
    let p = preview(&w2, &dev, "v1").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let a = apply(&w2, &dev, Some(&p["preview_ref"]), "v1").await;
    assert_eq!((a.body["code"].as_i64(), a.error_key()), (Some(32002), "preview_expired"));
}

#[tokio::test]
async fn approvals_need_the_permission_never_the_requester_and_only_one_decision_wins() {
    let w = world().await;
    let admin = w.app.admin().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let p = preview(&w, &w.dev, "v4").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v4").await;
    let ticket = a.data()["approval_ticket"].as_str().unwrap().to_string();
    let release_id = a.data()["release_id"].as_str().unwrap().to_string();

    // The requester (an operator) may not approve: denied, audited, nothing changes.
    let denied = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&w.dev), Some(json!({}))).await;
    assert_eq!((denied.status, denied.body["code"].as_i64(), denied.error_key()), (403, Some(35008), "approval_permission_denied"));
    let audit = w.app.rest("GET", "/api/v1/audit/events?action=auth.permission_denied", Some(&admin), None).await;
    assert_eq!(audit.data()["list"][0]["detail"]["attempted"], "approval.approve");
    assert_eq!(wait_status(&w, &w.dev, &release_id, "pending_approval").await["status"], "pending_approval");

    // An admin's own request is not theirs to approve (four-eyes).
    let p2 = preview(&w, &admin, "v5").await;
    let a2 = apply(&w, &admin, Some(&p2["preview_ref"]), "v5").await;
    let own = a2.data()["approval_ticket"].as_str().unwrap().to_string();
    let self_approval = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{own}/approve"), Some(&admin), Some(json!({}))).await;
    assert_eq!(self_approval.error_key(), "approval_permission_denied");

    // Two approvers race: exactly one decision.
    let url = format!("/api/v1/approvals/inbox/{ticket}/approve");
    let (x, y) = tokio::join!(
        w.app.rest("POST", &url, Some(&admin), Some(json!({ "comment": "a" }))),
        w.app.rest("POST", &url, Some(&approver), Some(json!({ "comment": "b" })))
    );
    let wins = [&x, &y].iter().filter(|r| r.body["code"] == 1000).count();
    assert_eq!(wins, 1, "{:?} {:?}", x.body, y.body);
    let loser = if x.body["code"] == 1000 { &y } else { &x };
    assert_eq!(loser.error_key(), "approval_ticket_decided");
    let approved = w.app.rest("GET", &format!("/api/v1/audit/events?action=approval.ticket_approved&resource_id={ticket}"), Some(&admin), None).await;
    assert_eq!(approved.data()["total"], 1);
}

#[tokio::test]
async fn tickets_of_other_projects_are_invisible_and_untouchable() {
    let w = world().await;
    let admin = w.app.admin().await;
    w.app.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-beta" }))).await.data();
    w.app.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-beta", "project_id": "proj-beta" }))).await.data();
    w.app.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": "beta_approver", "password": DEMO_PASSWORD, "roles": ["approver"] }))).await.data();
    w.app.rest("POST", "/api/v1/teams/team-beta/members", Some(&admin), Some(json!({ "user_id": "beta_approver" }))).await.data();
    let beta = w.app.login("beta_approver", DEMO_PASSWORD).await;

    let p = preview(&w, &w.dev, "v6").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v6").await;
    let ticket = a.data()["approval_ticket"].as_str().unwrap().to_string();
    for view in ["mine", "pending", "all"] {
        let inbox = w.app.rest("GET", &format!("/api/v1/approvals/inbox?view={view}"), Some(&beta), None).await;
        assert_eq!(inbox.data()["total"], 0, "view {view}");
    }
    assert_eq!(w.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&beta), None).await.error_key(), "approval_ticket_not_found");
    let r = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&beta), Some(json!({}))).await;
    assert_eq!(r.error_key(), "approval_ticket_not_found");
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let mine = w.app.rest("GET", "/api/v1/approvals/inbox?q=dep-appr&risk_level=high&sort_by=created_at", Some(&approver), None).await;
    assert_eq!(mine.data()["total"], 1);
}

async fn approve(w: &World, approver: &str, ticket: &str) {
    w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(approver), Some(json!({ "comment": "ok" }))).await.data();
}

async fn image(w: &World) -> String {
    let kube = env::kube_admin().await;
    let d = Api::<Deployment>::namespaced(kube, &w.namespace).get("svc-a").await.unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap()
}

#[tokio::test]
async fn rollback_reapplies_the_previous_release_through_the_inbox() {
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let mut ids = Vec::new();
    let mut running = Value::Null;
    for tag in ["v1.0.0", "v2.0.0"] {
        let p = preview(&w, &w.dev, tag).await;
        // The side-by-side diff's left side: what the last applied release rendered.
        assert_eq!(p["current_manifest"], running, "{tag}");
        running = p["resolved_manifest"].clone();
        let a = apply(&w, &w.dev, Some(&p["preview_ref"]), tag).await;
        let id = a.data()["release_id"].as_str().unwrap().to_string();
        approve(&w, &approver, a.data()["approval_ticket"].as_str().unwrap()).await;
        wait_status(&w, &w.dev, &id, "applied").await;
        ids.push(id);
    }
    assert_eq!(image(&w).await, "registry.invalid/svc-a:v2.0.0");

    // The first release has nothing earlier to roll back to.
    let none = w.app.rest("POST", &format!("/api/v1/deploy/releases/{}/rollback", ids[0]), Some(&w.dev), Some(json!({}))).await;
    assert_eq!(none.error_key(), "release_state_invalid");

    let rb = w.app.rest("POST", &format!("/api/v1/deploy/releases/{}/rollback", ids[1]), Some(&w.dev), Some(json!({}))).await;
    let rb = rb.data().clone();
    assert_eq!((rb["status"].as_str(), rb["rollback_to"].as_str()), (Some("pending_approval"), Some(ids[0].as_str())));
    approve(&w, &approver, rb["approval_ticket"].as_str().unwrap()).await;
    wait_status(&w, &w.dev, &ids[1], "rolled_back").await;
    assert_eq!(image(&w).await, "registry.invalid/svc-a:v1.0.0", "the cluster runs the previous image again");
    let actions = timeline(&w, &w.dev, &ids[1]).await;
    let tail: Vec<&str> = actions.iter().map(String::as_str).skip_while(|a| *a != "release.rollback_requested").collect();
    assert_eq!(
        tail,
        [
            "release.rollback_requested", "release.pending_approval", "approval.ticket_created", "approval.ticket_approved", "release.approved",
            "release.applying", "k8s.deploy_apply_succeeded", "release.rollback_completed"
        ]
    );
}

#[tokio::test]
async fn tickets_expire_by_the_scheduler_and_the_release_with_them() {
    env::shared();
    let app = opspilot_tests::spawn_app_with(|c| {
        c.approval_ttl_seconds = Some(1);
        c.scheduler_interval_ms = 200;
    })
    .await;
    let (dev, approver) = app.demo_users().await;
    let admin = app.admin().await;
    let kube = env::kube_admin().await;
    let namespace = env::fresh_namespace(&kube).await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await.data();
    app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": TEMPLATE, "default_variables": { "replicas": "1" } }))).await.data();
    app.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({ "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "production", "cluster_id": "k8s-prod-platform", "namespace": namespace }))).await.data();
    let w = World { app, dev: dev.clone(), namespace };
    let p = preview(&w, &dev, "v9").await;
    let a = apply(&w, &dev, Some(&p["preview_ref"]), "v9").await;
    let ticket = a.data()["approval_ticket"].as_str().unwrap().to_string();
    let release_id = a.data()["release_id"].as_str().unwrap().to_string();

    // Assign and comment while it is pending.
    w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/assign"), Some(&approver), Some(json!({ "assigned_to": "approver_user", "comment": "oncall reviewer" }))).await.data();
    w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/comment"), Some(&dev), Some(json!({ "comment": "please look" }))).await.data();
    let assigned = w.app.rest("GET", "/api/v1/approvals/inbox?assigned_to=approver_user", Some(&approver), None).await;
    assert_eq!(assigned.data()["total"], 1);

    wait_status(&w, &dev, &release_id, "expired").await;
    let late = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&approver), Some(json!({}))).await;
    assert_eq!((late.body["code"].as_i64(), late.error_key()), (Some(35005), "approval_ticket_expired"));
    let detail = w.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&approver), None).await;
    assert_eq!(detail.data()["item"]["status"], "expired");
    let acts: Vec<&str> = detail.data()["timeline"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(acts[..4], ["created", "assigned", "commented", "expired"]);
    let expired = w.app.rest("GET", "/api/v1/audit/events?action=approval.ticket_expired", Some(&admin), None).await;
    assert_eq!(expired.data()["list"][0]["source"], "system_scheduler");
}

#[tokio::test]
async fn one_timeline_through_graphql_rest_and_replay_with_live_updates() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let input = json!({ "serviceId": "svc-a", "targetId": "target-k8s-prod", "env": "production", "strategy": "rolling", "variables": { "image_tag": "v7" } });
    let ai = |q: &str, vars: Value, token: &str| {
        let req = w.app.http.post(w.app.url("/graphql")).bearer_auth(token).header("x-opspilot-source", "ai_command_center").json(&json!({ "query": q, "variables": vars }));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let p = ai("mutation($i: ReleaseInput!) { previewRelease(input: $i) { result } }", json!({ "i": input }), &w.dev).await;
    let p = &p["data"]["previewRelease"]["result"];
    let release_id = p["release_id"].as_str().expect("preview through GraphQL").to_string();

    // Live: subscribe to the release's timeline before it moves on.
    let mut ws = opspilot_tests::ws_connect(&w.app, &w.dev).await;
    ws.next().await.unwrap().unwrap();
    let sub = json!({ "id": "t", "type": "subscribe", "payload": { "query": format!("subscription {{ timelineAppended(id: \"{release_id}\") {{ action source }} }}") } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut apply_input = input.clone();
    apply_input["previewRef"] = p["preview_ref"].clone();
    let a = ai("mutation($i: ApplyReleaseInput!) { applyRelease(input: $i) { result } }", json!({ "i": apply_input }), &w.dev).await;
    let ticket = a["data"]["applyRelease"]["result"]["approval_ticket"].as_str().expect("apply through GraphQL").to_string();
    let inbox = ai("{ inbox(filter: {view: \"mine\"}) { total stats { pending } list { ticket source status } } }", json!({}), &approver).await;
    assert_eq!(inbox["data"]["inbox"]["list"][0]["source"], "ai_command_center");
    assert_eq!(inbox["data"]["inbox"]["stats"]["pending"], 1);
    let ok = ai("mutation($t: String!) { approveTicket(ticket: $t, comment: \"go\") { result } }", json!({ "t": ticket }), &approver).await;
    assert!(ok["errors"].is_null(), "{ok}");
    wait_status(&w, &w.dev, &release_id, "applied").await;

    let mut live = Vec::new();
    while live.last().map(String::as_str) != Some("release.applied") {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await.expect("live update").unwrap().unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            live.push(v["payload"]["data"]["timelineAppended"]["action"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        live,
        [
            "release.apply_requested", "release.pending_approval", "approval.ticket_created", "approval.ticket_approved", "release.approved",
            "release.applying", "k8s.deploy_apply_succeeded", "release.applied"
        ]
    );

    let rest = w.app.rest("GET", &format!("/api/v1/deploy/releases/{release_id}/timeline"), Some(&w.dev), None).await;
    let from_rest: Vec<(i64, String)> = rest.data()["list"].as_array().unwrap().iter().map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().into())).collect();
    let g = ai(&format!("{{ releaseTimeline(id: \"{release_id}\") {{ position action }} }}"), json!({}), &approver).await;
    let from_gql: Vec<(i64, String)> = g["data"]["releaseTimeline"].as_array().unwrap().iter().map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().into())).collect();
    let mut from_replay: Vec<(i64, String)> = Vec::new();
    for stream in [format!("release-{release_id}"), format!("approval-{ticket}"), format!("k8s-release-{release_id}")] {
        let (code, out, err) = opspilot_tests::cli(&w.app.db.url, &["replay", "--stream", &stream], &[]);
        assert_eq!(code, 0, "{err}");
        from_replay.extend(out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).map(|e| (e["position"].as_i64().unwrap(), e["action"].as_str().unwrap().to_string())));
    }
    from_replay.retain(|(_, a)| a != "approval.ticket_viewed");
    from_replay.sort();
    assert_eq!(from_rest, from_gql);
    assert_eq!(from_rest, from_replay);
    assert_eq!(from_rest.len(), 10);
}

#[tokio::test]
async fn a_ticket_presented_for_another_release_is_a_scope_mismatch() {
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let admin = w.app.admin().await;
    let mut releases = Vec::new();
    for tag in ["v10", "v11"] {
        let p = preview(&w, &w.dev, tag).await;
        releases.push(apply(&w, &w.dev, Some(&p["preview_ref"]), tag).await.data().clone());
    }
    let (first, second) = (&releases[0], &releases[1]);
    let r = w.app.rest(
        "POST",
        &format!("/api/v1/deploy/releases/{}/approve", second["release_id"].as_str().unwrap()),
        Some(&approver),
        Some(json!({ "approval_ticket": first["approval_ticket"], "comment": "wrong ticket" })),
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_i64(), r.error_key()), (409, Some(35006), "approval_ticket_scope_mismatch"));
    let recorded = w.app.rest("GET", "/api/v1/audit/events?action=approval.ticket_scope_mismatch", Some(&admin), None).await;
    assert_eq!(recorded.data()["total"], 1);
    for rel in &releases {
        wait_status(&w, &w.dev, rel["release_id"].as_str().unwrap(), "pending_approval").await;
    }
}

#[tokio::test]
async fn the_approval_policy_is_configurable() {
    env::shared();
    // Only env "production" needs approval here, whatever the risk: staging goes straight on.
    let app = opspilot_tests::spawn_app_with(|c| c.approval_min_risk = "critical".into()).await;
    let (dev, _) = app.demo_users().await;
    let admin = app.admin().await;
    let kube = env::kube_admin().await;
    let namespace = env::fresh_namespace(&kube).await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    app.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-stage", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await.data();
    app.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": TEMPLATE, "default_variables": { "replicas": "1" }, "risk_level": "high" }))).await.data();
    app.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({ "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "staging", "cluster_id": "k8s-stage", "namespace": namespace }))).await.data();
    let w = World { app, dev: dev.clone(), namespace };
    let body = json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "staging", "variables": { "image_tag": "v1" } });
    let p = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&dev), Some(body.clone())).await.data().clone();
    let mut apply_body = body;
    apply_body["preview_ref"] = p["preview_ref"].clone();
    let a = w.app.rest("POST", "/api/v1/deploy/releases/apply", Some(&dev), Some(apply_body)).await;
    assert_eq!((a.data()["status"].as_str(), a.data()["approval_required"].as_bool()), (Some("applying"), Some(false)));
    wait_status(&w, &dev, a.data()["release_id"].as_str().unwrap(), "applied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_executing_when_opspilot_is_killed_is_executed_again_after_the_restart() {
    // Pods that can never be scheduled: the rollout waits until its deadline.
    const STUCK: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: svc-stuck }\nspec:\n  replicas: 1\n  selector: { matchLabels: { app: svc-stuck } }\n  template:\n    metadata: { labels: { app: svc-stuck } }\n    spec:\n      nodeSelector: { type: nowhere }\n      containers: [{ name: app, image: \"registry.invalid/svc-stuck:{{ image_tag }}\" }]\n";
    let kube = env::kube_admin().await;
    let namespace = env::fresh_namespace(&kube).await;
    let db = opspilot_tests::TestDb::new().await;
    let env_vars = [("OPSPILOT_ROLLOUT_DEADLINE_SECONDS", "5".to_string())];
    let mut server = opspilot_tests::Server::start(&db.url, &env_vars);
    let admin = server.admin().await;
    let s = &server;
    s.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-alpha" }))).await;
    s.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-app", "project_id": "proj-alpha" }))).await;
    let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
    s.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-stage", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await;
    s.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({ "name": "svc-stuck", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "manifest_template": STUCK, "risk_level": "low" }))).await;
    s.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({ "name": "target-stage", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s", "env": "staging", "cluster_id": "k8s-stage", "namespace": namespace }))).await;
    let params = json!({ "service_id": "svc-stuck", "target_id": "target-stage", "env": "staging", "variables": { "image_tag": "v1" } });
    let p = s.rest("POST", "/api/v1/deploy/releases/preview", Some(&admin), Some(params.clone())).await;
    let mut apply = params.clone();
    apply["preview_ref"] = p["preview_ref"].clone();
    let a = s.rest("POST", "/api/v1/deploy/releases/apply", Some(&admin), Some(apply)).await;
    assert_eq!(a["status"], "applying");
    let id = a["release_id"].as_str().unwrap().to_string();
    server.kill();

    let server = opspilot_tests::Server::start(&db.url, &env_vars);
    let admin = server.admin().await;
    let ended = eventually(Duration::from_secs(60), async || server.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&admin), None).await["status"] == "failed").await;
    assert!(ended, "the release stayed applying after the restart");
    let timeline = server.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&admin), None).await;
    let actions: Vec<&str> = timeline["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"k8s.deploy_apply_failed") && actions.ends_with(&["release.failed"]), "{actions:?}");
}

#[tokio::test]
async fn a_decision_recorded_in_the_inbox_but_never_handed_on_reaches_its_release() {
    use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, Approver, ScopeType, TicketBinding};
    use opspilot_domain::release::Release;
    use opspilot_domain::{stream_id_of, Aggregate};
    let w = world_with(|c| c.scheduler_interval_ms = 200).await;
    let p = w.app.rest("POST", "/api/v1/deploy/releases/preview", Some(&w.dev), Some(preview_body("v7"))).await.data().clone();
    let mut apply = preview_body("v7");
    apply["preview_ref"] = p["preview_ref"].clone();
    let a = w.app.rest("POST", "/api/v1/deploy/releases/apply", Some(&w.dev), Some(apply)).await.data().clone();
    let (id, ticket) = (a["release_id"].as_str().unwrap().to_string(), a["approval_ticket"].as_str().unwrap().to_string());

    // What OpsPilot leaves when it stops right after recording an approval:
    // the ticket says approved, the release still waits.
    let commands = &w.app.running.state.commands;
    let release_id: uuid::Uuid = id.parse().unwrap();
    let (release, _) = commands.load::<Release>(&stream_id_of::<Release>(release_id)).await.unwrap();
    let (t, _) = commands.load::<ApprovalTicket>(&stream_id_of::<ApprovalTicket>(&ticket)).await.unwrap();
    let approver = opspilot_commands::ids::id_for("user", "approver_user");
    let cmd = ApprovalCommand::Approve {
        approver: Approver { user_id: approver, has_permission: true, in_scope: true },
        binding: TicketBinding { scope_type: ScopeType::Release, scope_id: id.clone(), binding_hash: release.binding_hash.clone().unwrap() },
        comment: None,
        now: chrono::Utc::now(),
    };
    let ctx = opspilot_commands::CommandContext::system(opspilot_domain::Source::ApprovalInbox);
    commands.execute::<ApprovalTicket>(&ctx, "test", &stream_id_of::<ApprovalTicket>(&ticket), &t.scope().unwrap(), |s| s.decide(cmd.clone()), |_| json!({})).await.unwrap();
    assert_eq!(w.app.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&w.dev), None).await.data()["status"], "pending_approval");

    // The scheduler hands the decision on; the release runs.
    let applied = eventually(Duration::from_secs(60), async || w.app.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&w.dev), None).await.data()["status"] == "applied").await;
    assert!(applied, "the approved release never ran: {}", w.app.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&w.dev), None).await.body);
    let timeline = w.app.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&w.dev), None).await;
    let approved = timeline.data()["list"].as_array().unwrap().iter().filter(|e| e["action"] == "release.approved").count();
    assert_eq!(approved, 1, "delivered once: {}", timeline.body);
}

#[tokio::test]
async fn the_requester_withdraws_a_waiting_release_and_its_ticket_goes_with_it() {
    let w = world().await;
    let approver = w.app.login("approver_user", DEMO_PASSWORD).await;
    let p = preview(&w, &w.dev, "v8").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v8").await;
    let (id, ticket) = (a.data()["release_id"].as_str().unwrap().to_string(), a.data()["approval_ticket"].as_str().unwrap().to_string());

    let by_other = w.app.rest("POST", &format!("/api/v1/deploy/releases/{id}/cancel"), Some(&approver), Some(json!({}))).await;
    assert_eq!(by_other.error_key(), "permission_denied", "{}", by_other.body);
    let c = w.app.rest("POST", &format!("/api/v1/deploy/releases/{id}/cancel"), Some(&w.dev), Some(json!({ "reason": "wrong tag" }))).await;
    assert_eq!(c.data()["status"], "cancelled", "{}", c.body);
    let view = wait_status(&w, &w.dev, &id, "cancelled").await;
    assert_eq!(view["approval_ticket"], ticket.as_str());
    let item = w.app.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&approver), None).await;
    assert_eq!(item.data()["item"]["status"], "cancelled", "{}", item.body);
    let late = w.app.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&approver), Some(json!({}))).await;
    assert_eq!(late.error_key(), "approval_ticket_decided", "{}", late.body);
    let actions = timeline(&w, &w.dev, &id).await;
    assert!(actions.iter().any(|a| a == "approval.ticket_cancelled") && !actions.iter().any(|a| a == "release.applying"), "{actions:?}");
    let kube = env::kube_admin().await;
    assert!(Api::<Deployment>::namespaced(kube, &w.namespace).get_opt("svc-a").await.unwrap().is_none(), "nothing was applied");
    // Nothing waits any more.
    let again = w.app.rest("POST", &format!("/api/v1/deploy/releases/{id}/cancel"), Some(&w.dev), Some(json!({}))).await;
    assert_eq!(again.data()["status"], "cancelled", "withdrawing twice changes nothing: {}", again.body);
}

#[tokio::test]
async fn a_cancel_recorded_on_the_ticket_alone_reaches_its_release() {
    use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket};
    use opspilot_domain::{stream_id_of, Aggregate};
    let w = world_with(|c| c.scheduler_interval_ms = 200).await;
    let p = preview(&w, &w.dev, "v9").await;
    let a = apply(&w, &w.dev, Some(&p["preview_ref"]), "v9").await;
    let (id, ticket) = (a.data()["release_id"].as_str().unwrap().to_string(), a.data()["approval_ticket"].as_str().unwrap().to_string());
    // What OpsPilot leaves when it stops between cancelling the ticket and the release.
    let commands = &w.app.running.state.commands;
    let (t, _) = commands.load::<ApprovalTicket>(&stream_id_of::<ApprovalTicket>(&ticket)).await.unwrap();
    let cmd = ApprovalCommand::Cancel { by: opspilot_commands::ids::id_for("user", "dev_user"), reason: Some("wrong tag".into()), now: chrono::Utc::now() };
    let ctx = opspilot_commands::CommandContext::system(opspilot_domain::Source::ApprovalInbox);
    commands.execute::<ApprovalTicket>(&ctx, "test", &stream_id_of::<ApprovalTicket>(&ticket), &t.scope().unwrap(), |s| s.decide(cmd.clone()), |_| json!({})).await.unwrap();
    let view = wait_status(&w, &w.dev, &id, "cancelled").await;
    assert_eq!(view["status"], "cancelled");
    let t = w.app.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&w.dev), None).await;
    let ended = t.data()["list"].as_array().unwrap().iter().find(|e| e["detail"]["error_key"] == "release_cancelled").cloned().unwrap_or_else(|| panic!("{}", t.body));
    assert!(ended.to_string().contains("wrong tag"), "the reason is carried over: {ended}");
}
