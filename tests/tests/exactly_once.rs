//! Exactly once, one timeline: whatever is delivered twice — a replayed
//! request, a redelivered decision, the whole log after a restart — appends
//! nothing and touches no cluster, and a restart in the middle finishes the
//! work once. Against the real control plane, the real binary and PostgreSQL.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use opspilot_commands::Commands;
use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, Approver, ScopeType, TicketBinding};
use opspilot_domain::k8s::K8sEvent;
use opspilot_domain::release::{Release, ReleaseCommand};
use opspilot_domain::{stream_id_of, Aggregate, EventScope, Source};
use opspilot_tests::{env, eventually, Server, TestDb, DEMO_PASSWORD};
use serde_json::{json, Value};
use std::time::Duration;

const TEMPLATE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ service }}
  labels: { app: {{ service }} }
spec:
  replicas: 1
  selector: { matchLabels: { app: {{ service }} } }
  template:
    metadata: { labels: { app: {{ service }} } }
    spec:
      nodeSelector: { type: {{ node_type }} }
      tolerations: [{ key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule }]
      containers:
      - name: app
        image: registry.invalid/{{ service }}:{{ image_tag }}
"#;

/// OpsPilot as a process on a database the test keeps, with svc-a on a
/// production target in a fresh namespace (approval needed) and the demo
/// requester and approver.
struct Stage {
    db: TestDb,
    server: Server,
    namespace: String,
    dev: String,
    approver: String,
    env_vars: Vec<(&'static str, String)>,
}

impl Stage {
    async fn new(env_vars: Vec<(&'static str, String)>) -> Stage {
        env::shared();
        let db = TestDb::new().await;
        let server = Server::start(&db.url, &env_vars);
        let admin = server.admin().await;
        let s = &server;
        s.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-alpha" }))).await;
        s.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-app", "project_id": "proj-alpha" }))).await;
        for (user, role) in [("dev_user", "operator"), ("approver_user", "approver")] {
            s.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": user, "password": DEMO_PASSWORD, "roles": [role] }))).await;
            s.rest("POST", "/api/v1/teams/team-app/members", Some(&admin), Some(json!({ "user_id": user }))).await;
        }
        let kube = env::kube_admin().await;
        let namespace = env::fresh_namespace(&kube).await;
        let kubeconfig = std::fs::read_to_string(env::shared()["k8s"]["adminKubeconfig"].as_str().unwrap()).unwrap();
        s.rest("POST", "/api/v1/clusters/import/kubeconfig", Some(&admin), Some(json!({ "name": "k8s-prod-platform", "project_id": "proj-alpha", "team_id": "team-app", "kubeconfig": kubeconfig }))).await;
        s.rest("POST", "/api/v1/deploy/services", Some(&admin), Some(json!({
            "name": "svc-a", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
            "manifest_template": TEMPLATE, "default_variables": { "node_type": "kwok" }, "risk_level": "high"
        }))).await;
        s.rest("POST", "/api/v1/deploy/targets", Some(&admin), Some(json!({
            "name": "target-k8s-prod", "project_id": "proj-alpha", "team_id": "team-app", "runtime_type": "k8s",
            "env": "production", "cluster_id": "k8s-prod-platform", "namespace": namespace
        }))).await;
        let login = |u: &str| s.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": u, "password": DEMO_PASSWORD })));
        let dev = login("dev_user").await["token"].as_str().unwrap().to_string();
        let approver = login("approver_user").await["token"].as_str().unwrap().to_string();
        Stage { db, server, namespace, dev, approver, env_vars }
    }

    /// Kills OpsPilot (SIGKILL) and starts it again on the same database.
    async fn restart(&mut self, while_down: impl AsyncFnOnce(&Commands)) {
        self.server.kill();
        while_down(&self.commands()).await;
        self.server = Server::start(&self.db.url, &self.env_vars);
        self.server.admin().await;
        let login = |u: &str| self.server.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": u, "password": DEMO_PASSWORD })));
        self.dev = login("dev_user").await["token"].as_str().unwrap().to_string();
        self.approver = login("approver_user").await["token"].as_str().unwrap().to_string();
    }

    /// The command handlers over the database, as the test's own hands.
    fn commands(&self) -> Commands {
        let pool = opspilot_eventstore::pool(&self.db.url, 2).unwrap();
        Commands::new(pool, opspilot_eventstore::MasterKey::from_base64(opspilot_tests::test_master_key()).unwrap())
    }

    /// Previews and applies svc-a at `tag` as dev_user: answers (release id, apply answer).
    async fn release(&self, tag: &str, variables: Value) -> (String, Value) {
        let mut vars = json!({ "image_tag": tag });
        vars.as_object_mut().unwrap().extend(variables.as_object().cloned().unwrap_or_default());
        let body = json!({ "service_id": "svc-a", "target_id": "target-k8s-prod", "env": "production", "strategy": "rolling", "variables": vars });
        let p = self.server.rest("POST", "/api/v1/deploy/releases/preview", Some(&self.dev), Some(body.clone())).await;
        let mut apply = body;
        apply["preview_ref"] = p["preview_ref"].clone();
        let a = self.server.rest("POST", "/api/v1/deploy/releases/apply", Some(&self.dev), Some(apply)).await;
        (a["release_id"].as_str().unwrap().to_string(), a)
    }

    async fn status_becomes(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        let reached = eventually(Duration::from_secs(90), async || {
            last = self.server.rest("GET", &format!("/api/v1/deploy/releases/{id}"), Some(&self.dev), None).await;
            last["status"] == status
        })
        .await;
        assert!(reached, "release {id} never became {status}: {last}");
        last
    }

    async fn timeline(&self, id: &str) -> Vec<String> {
        let t = self.server.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&self.dev), None).await;
        t["list"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
    }

    async fn image(&self) -> String {
        let d = Api::<Deployment>::namespaced(env::kube_admin().await, &self.namespace).get("svc-a").await.unwrap();
        d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap()
    }

    /// Events of the release flow (logins and the like left out).
    async fn flow_events(&self) -> i64 {
        let c = self.db.client().await;
        c.query_one("SELECT count(*) FROM events WHERE domain IN ('release', 'approval', 'k8s', 'compose')", &[]).await.unwrap().get(0)
    }

    /// Waits until the process manager's durable checkpoint has passed the log head.
    async fn follow_ups_caught_up(&self) {
        let c = self.db.client().await;
        let caught_up = eventually(Duration::from_secs(60), async || {
            let head: i64 = c.query_one("SELECT position FROM event_log_head", &[]).await.unwrap().get(0);
            let at: Option<i64> = c.query_opt("SELECT position FROM projection_checkpoints WHERE name = 'process_manager'", &[]).await.unwrap().map(|r| r.get(0));
            at.is_some_and(|p| p >= head)
        })
        .await;
        assert!(caught_up, "the process manager did not catch up with the log");
    }
}

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

/// Approves `ticket` straight into the log, as approver_user, as OpsPilot
/// would record it in the inbox.
async fn record_approval(commands: &Commands, ticket: &str, release_id: &str) {
    let (t, _) = commands.load::<ApprovalTicket>(&stream_id_of::<ApprovalTicket>(ticket)).await.unwrap();
    let (r, _) = commands.load::<Release>(&stream_id_of::<Release>(release_id.parse::<uuid::Uuid>().unwrap())).await.unwrap();
    let approver = opspilot_commands::ids::id_for("user", "approver_user");
    let cmd = ApprovalCommand::Approve {
        approver: Approver { user_id: approver, has_permission: true, in_scope: true },
        binding: TicketBinding { scope_type: ScopeType::Release, scope_id: release_id.to_string(), binding_hash: r.binding_hash.unwrap() },
        comment: Some("approved while OpsPilot was down".into()),
        now: chrono::Utc::now(),
    };
    let ctx = opspilot_commands::CommandContext::system(Source::ApprovalInbox);
    commands.execute::<ApprovalTicket>(&ctx, "test", &stream_id_of::<ApprovalTicket>(ticket), &t.scope().unwrap(), |s| s.decide(cmd.clone()), |_| json!({})).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_approve_answers_the_first_result_and_deploys_once() {
    let stage = Stage::new(vec![]).await;
    let (id, a) = stage.release("v1", json!({})).await;
    let ticket = a["approval_ticket"].as_str().unwrap().to_string();
    let approve = || {
        reqwest::Client::new()
            .post(format!("{}/api/v1/approvals/inbox/{ticket}/approve", stage.server.base))
            .bearer_auth(&stage.approver)
            .header("idempotency-key", "approve-once")
            .json(&json!({ "comment": "go" }))
    };
    let first: Value = approve().send().await.unwrap().json().await.unwrap();
    assert_eq!(first["code"], 1000, "{first}");
    stage.status_becomes(&id, "applied").await;
    let events = stage.flow_events().await;

    let again: Value = approve().send().await.unwrap().json().await.unwrap();
    assert_eq!(again, first, "the replay answers the first result");
    stage.follow_ups_caught_up().await;
    assert_eq!(stage.flow_events().await, events, "the replay appended nothing");
    let actions = stage.timeline(&id).await;
    assert_eq!((count(&actions, "k8s.deploy_apply_succeeded"), count(&actions, "release.applied")), (1, 1), "{actions:?}");
    assert_eq!(actions.last().map(String::as_str), Some("release.applied"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_and_an_execution_delivered_twice_change_nothing() {
    let stage = Stage::new(vec![]).await;
    let (id, a) = stage.release("v1", json!({})).await;
    let ticket = a["approval_ticket"].as_str().unwrap().to_string();
    stage.server.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&stage.approver), Some(json!({}))).await;
    stage.status_becomes(&id, "applied").await;
    stage.follow_ups_caught_up().await;
    let events = stage.flow_events().await;

    // What the process manager would dispatch again for the same events.
    let commands = stage.commands();
    let release_id: uuid::Uuid = id.parse().unwrap();
    let stream = stream_id_of::<Release>(release_id);
    let (release, _) = commands.load::<Release>(&stream).await.unwrap();
    let execution = release.last_finished_execution.expect("the execution is recorded as finished");
    let ctx = opspilot_commands::CommandContext::system(Source::ApprovalInbox);
    let by = opspilot_commands::ids::id_for("user", "approver_user");
    let scope = EventScope::resource("deployment_release", release_id);
    let again = ReleaseCommand::Approve { ticket: ticket.clone(), by };
    commands.execute::<Release>(&ctx, "test", &stream, &scope, |s| s.decide(again.clone()), |_| json!({})).await.unwrap();
    commands.run_release_execution(release_id, execution).await.unwrap();
    let late = ReleaseCommand::Applied { execution, summary: "late".into() };
    commands.execute::<Release>(&ctx, "test", &stream, &scope, |s| s.decide(late.clone()), |_| json!({})).await.unwrap();

    assert_eq!(stage.flow_events().await, events, "nothing was appended");
    let actions = stage.timeline(&id).await;
    assert_eq!((count(&actions, "release.approved"), count(&actions, "k8s.deploy_apply_succeeded")), (1, 1), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_recorded_just_before_a_kill_is_executed_once_after_the_restart() {
    let mut stage = Stage::new(vec![]).await;
    let (id, a) = stage.release("v3", json!({})).await;
    let ticket = a["approval_ticket"].as_str().unwrap().to_string();
    // OpsPilot dies right after the inbox recorded the approval: nothing followed it yet.
    stage.restart(async |commands| record_approval(commands, &ticket, &id).await).await;
    stage.status_becomes(&id, "applied").await;
    stage.follow_ups_caught_up().await;
    let actions = stage.timeline(&id).await;
    assert_eq!((count(&actions, "release.approved"), count(&actions, "release.applying"), count(&actions, "k8s.deploy_apply_succeeded")), (1, 1, 1), "{actions:?}");
    assert_eq!(stage.image().await, "registry.invalid/svc-a:v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_recorded_before_a_kill_is_not_produced_again() {
    // Pods that are never scheduled: the rollout watch waits, so the kill lands after the apply.
    let mut stage = Stage::new(vec![("OPSPILOT_ROLLOUT_DEADLINE_SECONDS", "300".into())]).await;
    let (id, a) = stage.release("v4", json!({ "node_type": "nowhere" })).await;
    let ticket = a["approval_ticket"].as_str().unwrap().to_string();
    stage.server.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&stage.approver), Some(json!({}))).await;
    stage.status_becomes(&id, "applying").await;
    let kube = env::kube_admin().await;
    let applied = eventually(Duration::from_secs(60), async || Api::<Deployment>::namespaced(kube.clone(), &stage.namespace).get_opt("svc-a").await.is_ok_and(|d| d.is_some())).await;
    assert!(applied, "the execution applied the Deployment");

    // Killed after the apply's fact and before the release's outcome.
    let release_id: uuid::Uuid = id.parse().unwrap();
    stage
        .restart(async |commands| {
            let (release, _) = commands.load::<Release>(&stream_id_of::<Release>(release_id)).await.unwrap();
            let due = release.execution_due().expect("still applying");
            let fact = K8sEvent::DeployApplySucceeded { release_id, cluster_id: None, operation: "apply".into(), summary: "recorded before the kill".into(), execution: Some(due.execution) };
            let spec = release.spec.as_ref().expect("a previewed release has a spec");
            let scope = EventScope::resource("deployment_release", release_id).in_project(spec.project_id).in_team(spec.team_id);
            let ctx = opspilot_commands::CommandContext::system(Source::SystemScheduler);
            commands.record(&ctx, &format!("k8s-release-{release_id}"), &scope, &[fact]).await.unwrap();
        })
        .await;
    let done = stage.status_becomes(&id, "applied").await;
    assert_eq!(done["last_summary"], "recorded before the kill", "the outcome is the recorded fact's");
    let actions = stage.timeline(&id).await;
    assert_eq!((count(&actions, "k8s.deploy_apply_succeeded"), count(&actions, "k8s.deploy_apply_failed")), (1, 0), "no second apply: {actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_log_delivered_again_keeps_the_newer_release_on_the_cluster() {
    let mut stage = Stage::new(vec![]).await;
    for tag in ["v1", "v2"] {
        let (id, a) = stage.release(tag, json!({})).await;
        let ticket = a["approval_ticket"].as_str().unwrap().to_string();
        stage.server.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&stage.approver), Some(json!({}))).await;
        stage.status_becomes(&id, "applied").await;
    }
    stage.follow_ups_caught_up().await;
    let events = stage.flow_events().await;
    assert_eq!(stage.image().await, "registry.invalid/svc-a:v2");

    // Every decision and every execution is delivered again, the old release's first.
    let db = stage.db.client().await;
    stage.restart(async |_| {
        db.execute("UPDATE projection_checkpoints SET position = 0 WHERE name = 'process_manager'", &[]).await.unwrap();
    })
    .await;
    stage.follow_ups_caught_up().await;
    assert_eq!(stage.flow_events().await, events, "redelivery appended nothing");
    assert_eq!(stage.image().await, "registry.invalid/svc-a:v2", "the cluster keeps the newer image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_timeline_holds_every_event_of_its_ticket_on_every_surface() {
    let stage = Stage::new(vec![]).await;
    let (id, a) = stage.release("v5", json!({})).await;
    let ticket = a["approval_ticket"].as_str().unwrap().to_string();
    let s = &stage.server;
    s.rest("GET", &format!("/api/v1/approvals/inbox/{ticket}"), Some(&stage.approver), None).await;
    s.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/comment"), Some(&stage.approver), Some(json!({ "comment": "checking the window" }))).await;
    s.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/assign"), Some(&stage.approver), Some(json!({ "assigned_to": "approver_user" }))).await;
    s.rest("POST", &format!("/api/v1/approvals/inbox/{ticket}/approve"), Some(&stage.approver), Some(json!({}))).await;
    stage.status_becomes(&id, "applied").await;

    let actions = stage.timeline(&id).await;
    for a in ["approval.ticket_created", "approval.ticket_viewed", "approval.ticket_commented", "approval.ticket_assigned", "approval.ticket_approved"] {
        assert_eq!(count(&actions, a), 1, "{a} in {actions:?}");
    }
    let rest = s.rest("GET", &format!("/api/v1/deploy/releases/{id}/timeline"), Some(&stage.dev), None).await;
    let positions = |list: &Value| list.as_array().unwrap().iter().map(|e| e["position"].as_i64().unwrap()).collect::<Vec<_>>();
    let q = json!({ "query": format!("{{ releaseTimeline(id: \"{id}\") {{ position action }} }}") });
    let g: Value = reqwest::Client::new().post(format!("{}/graphql", s.base)).bearer_auth(&stage.approver).json(&q).send().await.unwrap().json().await.unwrap();
    let from_rest = positions(&rest["list"]);
    assert_eq!(from_rest, positions(&g["data"]["releaseTimeline"]), "{g}");
    assert!(from_rest.windows(2).all(|w| w[0] < w[1]), "log order");
}
