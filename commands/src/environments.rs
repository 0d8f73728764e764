//! Environments: create, bind nodes, preview and apply install tasks (with
//! approval where the policy says), and health checks (SPEC §8).
//!
//! An install preview checks the bundle (presence, checksums, signature,
//! versions), reaches every node over SSH with its pinned key, checks roles
//! and counts, and fixes the plan: OpsPilot's own `upload-bundle` step, then
//! the bundle's hooks for the action filtered by `runOn`. The apply must
//! present the preview; a change of nodes, bundle or options since makes it
//! `preview_mismatch`.

use opspilot_domain::rbac::Permission;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use opspilot_bundle::Bundle;
use opspilot_domain::preview::PreviewRef;
use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, RiskLevel, ScopeType, TicketBinding};
use opspilot_domain::environment::{check_node_counts, Environment, EnvironmentCommand, EnvironmentFacts, InstallAction, InstallPlan, NodeBinding, PlannedStep, TaskPhase};
use opspilot_domain::host::Host;
use opspilot_domain::release::ApprovalDecision;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope, ResourceName};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::{id_for, resolve};
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// The name of OpsPilot's own first step of every task.
pub const UPLOAD_STEP: &str = "upload-bundle";

/// Where install tasks find their bundle and how they fan out.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// The bundle root (the `script/` directory).
    pub script_root: PathBuf,
    /// When set, a bundle must be signed by this ed25519 key.
    pub trusted_bundle_key: Option<[u8; 32]>,
    /// How many nodes run a step at once.
    pub parallelism: usize,
    /// Environments whose label `tier` is one of these need an approved ticket to install.
    pub approval_tiers: Vec<String>,
}

impl Default for InstallSettings {
    fn default() -> Self {
        InstallSettings { script_root: PathBuf::from("script"), trusted_bundle_key: None, parallelism: 64, approval_tiers: vec!["prod".into(), "production".into()] }
    }
}

/// What a user creates (the seed's environment payload).
#[derive(Debug, Clone)]
pub struct NewEnvironment {
    pub name: String,
    pub project: String,
    pub team: String,
    pub runtime_type: String,
    pub mode: String,
    pub region: String,
    pub labels: BTreeMap<String, String>,
    pub description: String,
}

/// A node as a user binds it.
#[derive(Debug, Clone)]
pub struct NodeRequest {
    pub host: String,
    pub node_role: String,
    pub weight: Option<u32>,
}

/// What a user previews (the seed's install preview payload).
#[derive(Debug, Clone, Default)]
pub struct InstallPreviewRequest {
    /// preflight | install | upgrade | repair | rollback (default install).
    pub action: Option<String>,
    pub runtime_type: Option<String>,
    pub manifest_version: Option<String>,
    pub install_options: BTreeMap<String, String>,
}

pub(crate) fn env_scope(e: &Environment) -> EventScope {
    let id = e.id.expect("existing environment");
    EventScope { environment_id: Some(id.to_string()), ..EventScope::resource("environment", id).in_project(e.project_id.unwrap()).in_team(e.team_id.unwrap()) }
}

impl Commands {
    /// An environment the caller may see.
    pub async fn visible_environment(&self, ctx: &CommandContext, env: &str) -> Result<Environment> {
        let id = resolve("environment", env);
        let (e, _) = self.load::<Environment>(&stream_id_of::<Environment>(id)).await?;
        match e.project_id {
            Some(p) if !e.deleted && ctx.principal()?.sees_project(p) => Ok(e),
            _ => Err(DomainError::new(ErrorCode::EnvironmentNotFound, format!("environment {env} does not exist")).into()),
        }
    }

    /// Creates an environment (`environment:manage`), status draft.
    pub async fn create_environment(&self, ctx: &CommandContext, n: NewEnvironment) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentManage, "environment.create").await?;
        let name = ResourceName::parse("name", &n.name)?;
        let project_id = self.existing_project(&n.project).await?;
        let team_id = resolve("team", &n.team);
        ctx.principal()?.require_project(project_id)?;
        let environment_id = id_for("environment", name.as_str());
        let facts = EnvironmentFacts { region: n.region, labels: n.labels, description: n.description };
        let cmd = EnvironmentCommand::Create { environment_id, name: name.clone(), project_id, team_id, runtime_type: n.runtime_type.clone(), mode: n.mode.clone(), facts };
        let scope = EventScope { environment_id: Some(environment_id.to_string()), ..EventScope::resource("environment", environment_id).in_project(project_id).in_team(team_id) };
        self.execute::<Environment>(ctx, "environment.create", &stream_id_of::<Environment>(environment_id), &scope, |s| s.decide_clone(&cmd), |_| {
            json!({ "id": environment_id, "name": name, "status": "draft", "runtime_type": n.runtime_type, "mode": n.mode, "created_at": ctx.now })
        })
        .await
    }

    /// Changes region, labels or description.
    pub async fn update_environment(&self, ctx: &CommandContext, env: &str, facts: EnvironmentFacts) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentManage, "environment.update").await?;
        let e = self.visible_environment(ctx, env).await?;
        let cmd = EnvironmentCommand::Update { facts };
        let id = e.id.unwrap();
        self.execute::<Environment>(ctx, "environment.update", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| json!({ "id": id })).await
    }

    /// Removes an environment that runs no task and that no compose target
    /// uses. What was installed on its hosts stays: roll it back first.
    pub async fn delete_environment(&self, ctx: &CommandContext, env: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentManage, "environment.delete").await?;
        let e = self.visible_environment(ctx, env).await?;
        let id = e.id.unwrap();
        let c = self.store.pool().get().await.map_err(opspilot_eventstore::StoreError::from)?;
        let used = c
            .query_opt("SELECT name FROM catalog_targets WHERE compose->>'environment_id' = $1 LIMIT 1", &[&id.to_string()])
            .await
            .map_err(opspilot_eventstore::StoreError::from)?;
        if let Some(row) = used {
            let target: String = row.get(0);
            return Err(DomainError::new(ErrorCode::ResourceConflict, format!("target {target} deploys to this environment")).into());
        }
        let cmd = EnvironmentCommand::Delete;
        self.execute::<Environment>(ctx, "environment.delete", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| json!({ "id": id, "deleted": true })).await
    }

    /// Binds hosts with roles (`PUT /environments/:id/nodes`).
    pub async fn bind_nodes(&self, ctx: &CommandContext, env: &str, nodes: Vec<NodeRequest>) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentManage, "environment.bind_nodes").await?;
        let e = self.visible_environment(ctx, env).await?;
        let mut bindings = Vec::with_capacity(nodes.len());
        for n in nodes {
            let h = self.visible_host(ctx, &n.host).await?;
            if h.project_id != e.project_id {
                return Err(DomainError::validation("host_id", format!("host {} belongs to another project", n.host)).into());
            }
            bindings.push(NodeBinding { host_id: h.id.unwrap(), node_role: n.node_role, weight: n.weight.unwrap_or(100) });
        }
        let id = e.id.unwrap();
        // A machine serves one environment: two would install over each other.
        let host_ids: Vec<Uuid> = bindings.iter().map(|b| b.host_id).collect();
        let c = self.store.pool().get().await.map_err(opspilot_eventstore::StoreError::from)?;
        let taken = c
            .query_opt(
                "SELECT h.name, e.name FROM environment_nodes n JOIN environments e ON e.id = n.environment_id JOIN hosts h ON h.id = n.host_id
                 WHERE n.host_id = ANY($1) AND n.environment_id <> $2 LIMIT 1",
                &[&host_ids, &id],
            )
            .await
            .map_err(opspilot_eventstore::StoreError::from)?;
        if let Some(row) = taken {
            let (host, other): (String, String) = (row.get(0), row.get(1));
            return Err(DomainError::new(ErrorCode::ResourceConflict, format!("host {host} is a node of environment {other}; unbind it there first")).into());
        }
        let cmd = EnvironmentCommand::BindNodes { nodes: bindings.clone() };
        self.execute::<Environment>(ctx, "environment.bind_nodes", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| {
            json!({ "id": id, "nodes": bindings })
        })
        .await
    }

    /// Loads and verifies the bundle for a runtime (the full check: signature, every checksum).
    pub(crate) fn verified_bundle(&self, runtime: &str) -> std::result::Result<Bundle, DomainError> {
        let bundle = Bundle::load(&self.install.script_root)?;
        bundle.runtime(runtime)?;
        let opts = opspilot_bundle::VerifyOptions { runtime: Some(runtime.to_string()), trusted_public_key: self.install.trusted_bundle_key };
        bundle.verify(&opts, &|_| {})?;
        Ok(bundle)
    }

    /// The plan of an action: the upload step, then the hooks of the action
    /// (rollback hooks for `rollback`, the preflight hook for `preflight`,
    /// the install hooks otherwise), each on the nodes its `runOn` selects.
    fn plan(&self, bundle: &Bundle, e: &Environment, action: InstallAction, install_options: BTreeMap<String, String>) -> std::result::Result<(InstallPlan, Vec<String>), DomainError> {
        let runtime = bundle.runtime(&e.runtime_type)?;
        let all_hosts: Vec<Uuid> = e.nodes.iter().map(|n| n.host_id).collect();
        let mut warnings = Vec::new();
        let mut steps = vec![PlannedStep {
            step_index: 0,
            step_name: UPLOAD_STEP.into(),
            hook_path: String::new(),
            run_on: "all".into(),
            host_ids: all_hosts.clone(),
            timeout_seconds: 1800,
            max_retries: 1,
        }];
        let hooks = runtime.hooks.iter().filter(|h| {
            let rollback = h.phase.as_deref() == Some("rollback");
            match action {
                InstallAction::Rollback => rollback,
                InstallAction::Preflight => !rollback && h.name.starts_with("preflight"),
                InstallAction::Install | InstallAction::Upgrade | InstallAction::Repair => !rollback,
            }
        });
        for h in hooks {
            let host_ids: Vec<Uuid> = match h.run_on.as_str() {
                "all" => all_hosts.clone(),
                role => e.nodes.iter().filter(|n| n.node_role == role).map(|n| n.host_id).collect(),
            };
            if host_ids.is_empty() {
                warnings.push(format!("{} runs on {} and no node has that role: skipped", h.name, h.run_on));
                continue;
            }
            steps.push(PlannedStep {
                step_index: steps.len() as u32,
                step_name: h.name.clone(),
                hook_path: h.path.clone(),
                run_on: h.run_on.clone(),
                host_ids,
                timeout_seconds: h.timeout_seconds.max(1),
                max_retries: if h.retryable { h.max_retries } else { 0 },
            });
        }
        if steps.len() == 1 {
            return Err(DomainError::new(ErrorCode::ScriptHookMissing, format!("the bundle has no {action} hook for {}", e.runtime_type)));
        }
        let plan = InstallPlan { action, runtime_type: e.runtime_type.clone(), manifest_version: bundle.index.bundle_version.clone(), install_options, steps };
        Ok((plan, warnings))
    }

    /// The binding of an install preview: action, plan, nodes, options and the
    /// bundle's signed checksum list.
    fn install_binding(&self, e: &Environment, plan: &InstallPlan, bundle: &Bundle) -> Result<String> {
        let sums = std::fs::read(bundle.root.join(&bundle.index.checksums.path)).map_err(|_| DomainError::new(ErrorCode::ArtifactManifestMissing, "checksums file unreadable"))?;
        let canonical = json!({ "environment_id": e.id, "nodes": e.nodes, "plan": plan, "checksums": hex::encode(Sha256::digest(&sums)) });
        Ok(hex::encode(Sha256::digest(canonical.to_string().as_bytes())))
    }

    /// Connects to every node at once; each failure is recorded on its host.
    /// Answers the sessions' uname for the checks, or the first failure.
    async fn reach_nodes(&self, e: &Environment) -> Result<Vec<(Uuid, String)>> {
        let hosts = self.hosts_of(e).await?;
        let results: Vec<(Host, std::result::Result<String, opspilot_ssh::SshError>)> = stream::iter(hosts)
            .map(|h| async move {
                let r = match self.connect_host(&h).await {
                    Ok(s) => s.exec("uname -m", Duration::from_secs(15)).await.map(|o| o.stdout.trim().to_string()),
                    Err(e) => Err(e),
                };
                (h, r)
            })
            .buffer_unordered(self.install.parallelism.max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        let mut ok = Vec::new();
        for (h, r) in results {
            match r {
                Ok(arch) => ok.push((h.id.unwrap(), arch)),
                Err(err) => {
                    self.record_host_failure(&h, &err).await?;
                    failures.push((h.name.as_ref().map(|n| n.to_string()).unwrap_or_default(), err));
                }
            }
        }
        if let Some((_, first)) = failures.first() {
            let all: Vec<String> = failures.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            return Err(DomainError::new(first.code(), all.join("; ")).into());
        }
        Ok(ok)
    }

    pub(crate) async fn hosts_of(&self, e: &Environment) -> Result<Vec<Host>> {
        let mut hosts = Vec::with_capacity(e.nodes.len());
        for n in &e.nodes {
            let (h, _) = self.load::<Host>(&stream_id_of::<Host>(n.host_id)).await?;
            hosts.push(h);
        }
        Ok(hosts)
    }

    /// Previews an install task (mandatory before apply).
    pub async fn preview_install(&self, ctx: &CommandContext, env: &str, r: InstallPreviewRequest) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentInstall, "environment.install_preview").await?;
        let e = self.visible_environment(ctx, env).await?;
        let action = r.action.as_deref().map(InstallAction::parse).transpose()?.unwrap_or(InstallAction::Install);
        if let Some(rt) = &r.runtime_type {
            if rt != &e.runtime_type {
                return Err(DomainError::validation("runtime_type", format!("the environment's runtime is {}", e.runtime_type)).into());
            }
        }
        check_node_counts(&e.runtime_type, &e.nodes)?;
        let runtime = if e.runtime_type == "hybrid" { "compose".to_string() } else { e.runtime_type.clone() };
        let me = self.clone();
        let bundle = tokio::task::spawn_blocking(move || me.verified_bundle(&runtime)).await.map_err(|_| DomainError::new(ErrorCode::InternalError, "bundle check"))??;
        if let Some(v) = &r.manifest_version {
            if v != &bundle.index.bundle_version {
                return Err(DomainError::new(ErrorCode::ArtifactVersionUnsupported, format!("the bundle is {}, not {v}", bundle.index.bundle_version)).into());
            }
        }
        let (plan, mut warnings) = self.plan(&bundle, &e, action, r.install_options.clone())?;
        let reached = self.reach_nodes(&e).await?;
        let wrong_arch: Vec<String> = reached.iter().filter(|(_, a)| a != "x86_64").map(|(h, a)| format!("{h} is {a}")).collect();
        if !wrong_arch.is_empty() {
            return Err(DomainError::new(ErrorCode::ArtifactVersionUnsupported, format!("the bundle is for linux/amd64; {}", wrong_arch.join(", "))).into());
        }
        if r.install_options.keys().any(|k| k.is_empty() || k.len() > 63) {
            return Err(DomainError::validation("install_options", "names of 1-63 characters").into());
        }
        warnings.extend(bundle_warnings(&bundle));
        let binding_hash = self.install_binding(&e, &plan, &bundle)?;
        let preview_ref = PreviewRef::Install(Uuid::new_v4()).to_string();
        let expires_at = ctx.now + self.preview_ttl;
        let checks = json!([
            { "level": "info", "code": "artifacts_ok", "message": format!("bundle {} verified: signature, checksums, sizes", bundle.index.bundle_version) },
            { "level": "info", "code": "ssh_ok", "message": format!("all {} node(s) reachable with their pinned host keys", reached.len()) },
            { "level": "info", "code": "roles_ok", "message": "node roles and counts fit the runtime" },
        ]);
        let steps: Vec<String> = plan.steps.iter().map(|s| s.step_name.clone()).collect();
        let answer = json!({
            "preview_id": preview_ref, "preview_ref": preview_ref, "checks": checks, "warnings": warnings, "steps": steps,
            "plan": plan, "action": action, "manifest_version": plan.manifest_version, "expires_at": expires_at,
        });
        let cmd = EnvironmentCommand::PreviewInstall { preview_ref: preview_ref.clone(), plan, binding_hash, expires_at, warnings: warnings.clone(), now: ctx.now };
        let id = e.id.unwrap();
        self.execute::<Environment>(ctx, "environment.install_preview", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| answer.clone()).await
    }

    /// Applies a previewed task; `rollback_only` is the rollback endpoint's
    /// guard that the preview's action is a rollback.
    pub async fn apply_install(&self, ctx: &CommandContext, env: &str, preview_ref: Option<&str>, confirm: bool, rollback_only: bool) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentInstall, "environment.install_apply").await?;
        let e = self.visible_environment(ctx, env).await?;
        let pref = PreviewRef::parse(preview_ref.unwrap_or_default())?;
        pref.install()?;
        let pref = pref.to_string();
        let pref = pref.as_str();
        if !confirm {
            return Err(DomainError::validation("confirm", "confirm the previewed task with confirm: true").into());
        }
        let preview = e.previews.get(pref).ok_or_else(|| DomainError::new(ErrorCode::PreviewRequired, format!("{pref} is not a preview of this environment")))?;
        if rollback_only && preview.plan.action != InstallAction::Rollback {
            return Err(DomainError::validation("preview_ref", "preview the rollback (action: rollback) first").into());
        }
        // What the preview would be now: the same plan over today's nodes and bundle.
        let presented = match Bundle::load(&self.install.script_root) {
            Ok(bundle) => match self.plan(&bundle, &e, preview.plan.action, preview.plan.install_options.clone()) {
                Ok((plan, _)) => self.install_binding(&e, &plan, &bundle).unwrap_or_default(),
                Err(_) => String::new(),
            },
            Err(_) => String::new(),
        };
        let task_id = Uuid::new_v4();
        let needs_approval = e.facts.as_ref().and_then(|f| f.labels.get("tier")).is_some_and(|t| self.install.approval_tiers.iter().any(|a| a == t));
        let risk = RiskLevel::High;
        let ticket = format!("inst-appr-{}", &task_id.simple().to_string()[..12]);
        let approval = if needs_approval { ApprovalDecision::Required { ticket: ticket.clone(), risk_level: risk } } else { ApprovalDecision::NotRequired };
        let cmd = EnvironmentCommand::RequestInstall { task_id, preview_ref: pref.to_string(), presented_binding_hash: presented.clone(), now: ctx.now, approval };
        let id = e.id.unwrap();
        let answer = json!({
            "task_id": task_id, "environment_id": id, "status": if needs_approval { "pending_approval" } else { "running" },
            "approval_required": needs_approval, "approval_ticket": if needs_approval { json!(ticket) } else { serde_json::Value::Null },
        });
        let handled = self.execute::<Environment>(ctx, "environment.install_apply", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| answer.clone()).await?;
        if handled.result["task_id"] != json!(task_id) {
            return Ok(handled);
        }
        if needs_approval {
            let p = ctx.principal()?.clone();
            let create = ApprovalCommand::Create {
                ticket: ticket.clone(),
                binding: TicketBinding { scope_type: ScopeType::Install, scope_id: task_id.to_string(), binding_hash: presented },
                project_id: e.project_id.unwrap(),
                team_id: e.team_id.unwrap(),
                environment_id: Some(id.to_string()),
                runtime_type: e.runtime_type.clone(),
                risk_level: risk,
                priority: risk.default_priority(),
                requested_by: p.user_id,
                required_permission: Permission::DeployReleaseApprove,
                source: ctx.source,
                summary: format!("{} {} on {}", preview.plan.action, e.runtime_type, e.name.as_ref().map(|n| n.to_string()).unwrap_or_default()),
                detail: json!({ "environment_id": id, "task_id": task_id, "preview_ref": pref, "action": preview.plan.action, "steps": preview.plan.steps.iter().map(|s| &s.step_name).collect::<Vec<_>>() }),
                now: ctx.now,
                expires_at: ctx.now + self.ticket_ttl(risk),
            };
            let tscope = EventScope { environment_id: Some(id.to_string()), ..EventScope::resource("approval_ticket", &ticket).in_project(e.project_id.unwrap()).in_team(e.team_id.unwrap()) };
            let h = self
                .execute::<ApprovalTicket>(ctx, "approval_create", &stream_id_of::<ApprovalTicket>(&ticket), &tscope, |s| s.decide_clone(&create), |_| answer.clone())
                .await?;
            return Ok(Handled { result: handled.result, position: h.position });
        }
        // `environment.install_started` is recorded: the process manager runs it.
        Ok(handled)
    }

    /// Cancels a task: one waiting in the inbox ends at once (its ticket is
    /// cancelled first, so the inbox never offers it again); a running one is
    /// asked to stop, and its runner stops the hooks on the hosts and ends it
    /// with `install_task_cancelled`. What already ran stays on the hosts.
    pub async fn cancel_install(&self, ctx: &CommandContext, env: &str, task_id: Uuid, reason: Option<String>) -> Result<Handled> {
        self.authorize(ctx, Permission::EnvironmentInstall, "environment.install_cancel").await?;
        let e = self.visible_environment(ctx, env).await?;
        let id = e.id.unwrap();
        let by = ctx.principal()?.user_id;
        let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).unwrap_or_else(|| "cancelled".into());
        if reason.len() > 1024 {
            return Err(DomainError::validation("reason", "at most 1024 bytes").into());
        }
        let waiting_ticket = e.active.as_ref().filter(|a| a.task_id == task_id && a.phase == TaskPhase::PendingApproval).and_then(|a| a.approval_ticket.clone());
        if let Some(ticket) = &waiting_ticket {
            let t = self.ticket(ticket).await?;
            let scope = t.scope().ok_or_else(|| DomainError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")))?;
            let cancel = ApprovalCommand::Cancel { by, reason: Some(reason.clone()), now: ctx.now };
            // The task ends as the follow-up of its cancelled ticket.
            let answer = json!({ "task_id": task_id, "environment_id": id, "status": "failed" });
            return self.execute::<ApprovalTicket>(ctx, "approval.cancel", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cancel), |_| answer.clone()).await;
        }
        let cmd = EnvironmentCommand::CancelTask { task_id, by, reason };
        let answer = json!({ "task_id": task_id, "environment_id": id, "status": "cancelling" });
        // The runner's hooks are stopped as the follow-up of the recorded request.
        self.execute::<Environment>(ctx, "environment.install_cancel", &stream_id_of::<Environment>(id), &env_scope(&e), |s| s.decide_clone(&cmd), |_| answer.clone()).await
    }

    /// Checks every node of an environment now: SSH with the pinned key and,
    /// for compose, the Docker engine and the compose plugin.
    pub async fn health_check(&self, ctx: &CommandContext, env: &str) -> Result<serde_json::Value> {
        self.authorize(ctx, Permission::EnvironmentRead, "environment.health_check").await?;
        let e = self.visible_environment(ctx, env).await?;
        let hosts = self.hosts_of(&e).await?;
        let compose = e.runtime_type != "k8s";
        let results: Vec<serde_json::Value> = stream::iter(hosts)
            .map(|h| async move {
                let name = h.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let session = match self.connect_host(&h).await {
                    Ok(s) => s,
                    Err(err) => {
                        let _ = self.record_host_failure(&h, &err).await;
                        return json!({ "host_id": h.id, "host": name, "healthy": false, "reachable": false, "error_key": err.code().key(), "message": err.to_string() });
                    }
                };
                if !compose {
                    return json!({ "host_id": h.id, "host": name, "healthy": true, "reachable": true });
                }
                let probe = "docker version --format '{{.Server.Version}}' && docker compose version --short";
                let out = crate::compose::run_checked(&session, probe, Duration::from_secs(30)).await;
                match out {
                    Ok(o) => {
                        let mut lines = o.lines();
                        json!({ "host_id": h.id, "host": name, "healthy": true, "reachable": true, "docker_version": lines.next(), "compose_version": lines.next() })
                    }
                    Err(err) => json!({ "host_id": h.id, "host": name, "healthy": false, "reachable": true, "error_key": err.code.key(), "message": err.detail }),
                }
            })
            .buffer_unordered(self.install.parallelism.max(1))
            .collect()
            .await;
        let healthy = !results.is_empty() && results.iter().all(|r| r["healthy"] == json!(true));
        Ok(json!({ "environment_id": e.id, "healthy": healthy, "status": e.status.as_str(), "nodes": results, "checked_at": ctx.now }))
    }
}

fn bundle_warnings(bundle: &Bundle) -> Vec<String> {
    if bundle.index.generated_at.is_none() {
        vec!["the bundle index has no generatedAt".to_string()]
    } else {
        vec![]
    }
}
