//! Releases: preview renders the service's template for a target, checks it
//! against the cluster (server-side dry-run and a diff against live objects)
//! and records the preview a later apply must present.

use opspilot_domain::preview::PreviewRef;
use opspilot_domain::rbac::Permission;
use std::collections::BTreeMap;

use opspilot_domain::catalog::{DeployTarget, Service};
use opspilot_domain::compose::ComposeEvent;
use opspilot_domain::k8s::K8sEvent;
use opspilot_domain::DomainEvent;
use opspilot_domain::release::{Release, ReleaseCommand, ReleaseSpec};
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::resolve;
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// What a user asks to preview (the seed's preview payload).
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub service: String,
    pub target: String,
    pub env: String,
    pub strategy: Option<String>,
    pub variables: BTreeMap<String, String>,
}

/// The binding of a preview: sha256 over the canonical parameters and the
/// rendered artifact. An apply whose parameters or artifact differ has a
/// different hash (`preview_mismatch`).
pub fn binding_hash(spec: &ReleaseSpec, rendered: &str) -> String {
    let canonical = json!({
        "service_id": spec.service_id, "target_id": spec.target_id, "env": spec.env,
        "strategy": spec.strategy, "variables": spec.variables,
    });
    let mut h = Sha256::new();
    h.update(canonical.to_string().as_bytes());
    h.update(b"\n");
    h.update(rendered.as_bytes());
    hex::encode(h.finalize())
}

/// One check shown with a preview.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub level: &'static str,
    pub code: String,
    pub message: String,
}

/// A resolved request: the spec, the template and where it goes.
pub(crate) struct Resolved {
    pub spec: ReleaseSpec,
    pub service: Service,
    pub target: DeployTarget,
}

impl Commands {
    /// Resolves service and target (ids or names), checks scope and runtime permission.
    pub(crate) async fn resolve_release(&self, ctx: &CommandContext, attempted: &str, r: &PreviewRequest) -> Result<Resolved> {
        self.authorize(ctx, Permission::DeployReleaseApply, attempted).await?;
        let service_id = resolve("service", &r.service);
        let target_id = resolve("deploy_target", &r.target);
        let (service, _) = self.load::<Service>(&stream_id_of::<Service>(service_id)).await?;
        let (target, _) = self.load::<DeployTarget>(&stream_id_of::<DeployTarget>(target_id)).await?;
        let principal = ctx.principal()?;
        let visible = |p: Option<Uuid>| p.is_some_and(|p| principal.sees_project(p));
        if !visible(service.project_id) {
            return Err(DomainError::new(ErrorCode::NotFound, format!("service {} does not exist", r.service)).into());
        }
        if !visible(target.project_id) {
            return Err(DomainError::new(ErrorCode::NotFound, format!("target {} does not exist", r.target)).into());
        }
        if service.project_id != target.project_id {
            return Err(DomainError::validation("target_id", "the target belongs to another project than the service").into());
        }
        if service.runtime_type != target.runtime_type {
            return Err(DomainError::validation("target_id", format!("service runs on {}, target on {}", service.runtime_type, target.runtime_type)).into());
        }
        if r.env != target.env {
            return Err(DomainError::validation("env", format!("target {} is for env {}", r.target, target.env)).into());
        }
        self.authorize(ctx, Permission::apply_on(&service.runtime_type)?, attempted).await?;
        let spec = ReleaseSpec {
            service_id,
            target_id,
            project_id: service.project_id.expect("visible service has a project"),
            team_id: service.team_id.expect("visible service has a team"),
            environment_id: target.compose.as_ref().map(|c| c.environment_id.to_string()),
            runtime_type: service.runtime_type.clone(),
            env: r.env.clone(),
            strategy: r.strategy.clone().unwrap_or_else(|| "rolling".into()),
            variables: r.variables.clone(),
        };
        Ok(Resolved { spec, service, target })
    }

    /// Renders the artifact: the service's defaults, overridden by the request's
    /// variables, plus `service`, `namespace` and `env`.
    pub(crate) fn render(&self, resolved: &Resolved) -> std::result::Result<String, DomainError> {
        opspilot_domain::catalog::check_variables(&resolved.service.variables_schema, &resolved.spec.variables)?;
        let mut vars = resolved.service.default_variables.clone();
        vars.extend(resolved.spec.variables.clone());
        vars.insert("service".into(), resolved.service.name.as_ref().map(|n| n.to_string()).unwrap_or_default());
        vars.insert("namespace".into(), resolved.target.namespace.clone().unwrap_or_default());
        vars.insert("env".into(), resolved.spec.env.clone());
        opspilot_k8s::manifest::render(&resolved.service.manifest_template, &vars)
    }

    /// Previews a release (mandatory before apply). Answers the seed's
    /// `preview_ref, resolved_manifest, checks, warnings, runtime, expires_at`,
    /// plus `release_id`, `diff`, `risk_level` and `current_manifest` (what the
    /// last applied release of the service on the target rendered, or null).
    pub async fn preview_release(&self, ctx: &CommandContext, r: &PreviewRequest) -> Result<Handled> {
        let resolved = self.resolve_release(ctx, "release.preview", r).await?;
        // Input is checked before any cluster or host is asked: a refused
        // variable or template writes nothing.
        let rendered = self.render(&resolved)?;
        let objects = match resolved.spec.runtime_type.as_str() {
            "compose" => None,
            _ => Some(opspilot_k8s::manifest::parse_objects(&rendered, resolved.target.namespace.as_deref().unwrap_or_default())?),
        };
        let release_id = Uuid::new_v4();
        let scope = EventScope::resource("deployment_release", release_id).in_project(resolved.spec.project_id).in_team(resolved.spec.team_id);
        let stream = stream_id_of::<Release>(release_id);

        let checked = match &objects {
            None => self.check_compose_preview(ctx, release_id, &scope, &resolved, &rendered).await.map(|diff| {
                let checks = vec![
                    Check { level: "info", code: "render_ok".into(), message: "compose file rendered".into() },
                    Check { level: "info", code: "compose_config_ok".into(), message: "docker compose config accepted the file on the host".into() },
                ];
                (diff, checks)
            }),
            Some(objects) => self.dry_run_k8s_preview(ctx, &resolved, objects).await.map(|previews| {
                let checks = vec![
                    Check { level: "info", code: "render_ok".into(), message: format!("{} object(s) rendered", previews.len()) },
                    Check { level: "info", code: "dry_run_ok".into(), message: "server-side dry-run apply accepted every object".into() },
                ];
                (json!(previews), checks)
            }),
        };
        let (diff, checks) = match checked {
            Ok(v) => v,
            Err(e) => {
                // The failed attempt is part of the record; the caller gets the reason.
                let code = e.code();
                let summary = match &e {
                    crate::CommandError::Domain(d) => d.detail.clone(),
                    crate::CommandError::Store(_) => "storage failure".into(),
                };
                let cmd = ReleaseCommand::PreviewFailed { release_id, spec: resolved.spec.clone(), error_key: code, summary };
                self.execute::<Release>(ctx, "release_preview_failed", &stream, &scope, |s| s.decide_clone(&cmd), |_| json!({})).await?;
                return Err(e);
            }
        };
        let digest = opspilot_eventstore::artifacts::put(self.store.pool(), &rendered).await?;
        let hash = binding_hash(&resolved.spec, &rendered);
        let expires_at = ctx.now + self.preview_ttl;
        let mut warnings = Vec::new();
        if rendered.contains(":latest") {
            warnings.push("an image uses the tag latest: the release is not reproducible".to_string());
        }
        let risk = resolved.service.risk_level.map(|r| r.as_str()).unwrap_or("medium");
        let pref = PreviewRef::Release(release_id);
        // What runs there now, for the side-by-side diff: the artifact of the
        // release of this service and target applied last (none at first).
        let current = opspilot_projections::release_history::previous_applied(self.store.pool(), resolved.spec.service_id, resolved.spec.target_id, release_id).await?;
        let current_manifest = match current {
            Some(previous) => self.artifact_text(previous).await.ok(),
            None => None,
        };
        let cmd = ReleaseCommand::Preview {
            release_id,
            spec: resolved.spec.clone(),
            preview_ref: pref.to_string(),
            binding_hash: hash,
            artifact_digest: digest,
            expires_at,
            warnings: warnings.clone(),
            now: ctx.now,
        };
        let answer = json!({
            "preview_ref": pref, "release_id": release_id, "resolved_manifest": rendered, "checks": checks,
            "warnings": warnings, "runtime": resolved.spec.runtime_type, "expires_at": expires_at,
            "diff": diff, "risk_level": risk, "variables_schema": resolved.service.variables_schema,
            "current_manifest": current_manifest,
        });
        self.execute::<Release>(ctx, "release_preview", &stream, &scope, |s| s.decide_clone(&cmd), |_| answer.clone()).await
    }

    /// Server-side dry run of a k8s preview's objects on the target's cluster.
    async fn dry_run_k8s_preview(&self, ctx: &CommandContext, resolved: &Resolved, objects: &[kube::api::DynamicObject]) -> Result<Vec<opspilot_k8s::manifest::ObjectPreview>> {
        let cluster = resolved.target.cluster_id.map(|c| c.to_string()).unwrap_or_default();
        let client = self.cluster_client(ctx, &cluster).await?;
        Ok(opspilot_k8s::manifest::dry_run(&client, objects).await?)
    }
}

/// What a failure says on the release's outcome.
fn why(e: &crate::CommandError) -> String {
    match e {
        crate::CommandError::Domain(d) => d.detail.clone(),
        crate::CommandError::Store(_) => "storage failure".into(),
    }
}

/// What a user confirms (the seed's apply payload).
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub preview_ref: Option<String>,
    pub params: PreviewRequest,
}

/// How long a rollout may take before the release is failed (default).
pub const ROLLOUT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

impl Commands {
    /// The envelope scope of a release's events.
    pub(crate) fn release_scope(&self, release_id: Uuid, r: &Release) -> Result<EventScope> {
        let spec = r.spec.as_ref().ok_or_else(|| DomainError::new(ErrorCode::ReleaseNotFound, format!("release {release_id} does not exist")))?;
        Ok(EventScope::resource("deployment_release", release_id).in_project(spec.project_id).in_team(spec.team_id))
    }

    /// Applies a previewed release. The preview must exist, be unexpired and
    /// match the parameters exactly; the approval policy (env production, or
    /// risk high or above) decides between a ticket in the inbox and starting now.
    pub async fn apply_release(&self, ctx: &CommandContext, req: &ApplyRequest) -> Result<Handled> {
        let pref = PreviewRef::parse(req.preview_ref.as_deref().unwrap_or_default())?;
        let release_id = pref.release()?;
        let stream = stream_id_of::<Release>(release_id);
        let (release, _) = self.load::<Release>(&stream).await?;
        let previewed = release.spec.clone().ok_or_else(|| DomainError::new(ErrorCode::PreviewRequired, format!("{pref} is not a preview")))?;
        let resolved = self.resolve_release(ctx, "release.apply", &req.params).await?;
        let principal = ctx.principal()?.clone();
        if !principal.sees_project(previewed.project_id) {
            return Err(DomainError::new(ErrorCode::PreviewRequired, format!("{pref} is not a preview")).into());
        }
        // Parameters that no longer render, or render differently, do not match the preview.
        let presented = match self.render(&resolved) {
            Ok(rendered) => binding_hash(&resolved.spec, &rendered),
            Err(_) => String::from("unrenderable"),
        };
        let risk = resolved.service.risk_level.unwrap_or(opspilot_domain::approval::RiskLevel::Medium);
        let needs_approval = self.approval_policy.requires(&resolved.spec.env, risk);
        let ticket = format!("dep-appr-{}", &release_id.simple().to_string()[..12]);
        let approval = if needs_approval {
            opspilot_domain::release::ApprovalDecision::Required { ticket: ticket.clone(), risk_level: risk }
        } else {
            opspilot_domain::release::ApprovalDecision::NotRequired
        };
        let cmd = ReleaseCommand::Apply { presented_binding_hash: presented.clone(), now: ctx.now, approval };
        let scope = self.release_scope(release_id, &release)?;
        let answer = json!({
            "release_id": release_id,
            "status": if needs_approval { "pending_approval" } else { "applying" },
            "approval_required": needs_approval,
            "approval_ticket": if needs_approval { json!(ticket) } else { serde_json::Value::Null },
            "lifecycle_state": "preview",
        });
        let handled = self.execute::<Release>(ctx, "release_apply", &stream, &scope, |s| s.decide_clone(&cmd), |_| answer.clone()).await?;
        if handled.result["release_id"] != json!(release_id) {
            return Ok(handled);
        }
        if needs_approval {
            use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, ScopeType, TicketBinding};
            let service_name = resolved.service.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            let tag = resolved.spec.variables.get("image_tag").cloned().unwrap_or_default();
            let create = ApprovalCommand::Create {
                ticket: ticket.clone(),
                binding: TicketBinding { scope_type: ScopeType::Release, scope_id: release_id.to_string(), binding_hash: presented },
                project_id: resolved.spec.project_id,
                team_id: resolved.spec.team_id,
                environment_id: None,
                runtime_type: resolved.spec.runtime_type.clone(),
                risk_level: risk,
                priority: risk.default_priority(),
                requested_by: principal.user_id,
                required_permission: Permission::DeployReleaseApprove,
                source: ctx.source,
                summary: format!("{} release {service_name} {tag}", resolved.spec.env).trim().to_string(),
                detail: json!({ "release_id": release_id, "preview_ref": pref, "service": service_name, "target": resolved.target.name, "variables": resolved.spec.variables }),
                now: ctx.now,
                expires_at: ctx.now + self.ticket_ttl(risk),
            };
            let tscope = EventScope::resource("approval_ticket", &ticket).in_project(resolved.spec.project_id).in_team(resolved.spec.team_id);
            let h = self
                .execute::<ApprovalTicket>(ctx, "approval_create", &stream_id_of::<ApprovalTicket>(&ticket), &tscope, |s| s.decide_clone(&create), |_| answer.clone())
                .await?;
            return Ok(Handled { result: handled.result, position: h.position });
        }
        // `release.applying` is recorded: the process manager executes it.
        Ok(handled)
    }

    /// Runs the release's execution that started at stream version
    /// `execution`, if it is still due; called by the process manager.
    /// Does nothing when this process runs that release already.
    pub async fn run_release_execution(&self, release_id: Uuid, execution: i64) -> Result<()> {
        if !self.running_tasks.lock().expect("running").insert(release_id) {
            return Ok(());
        }
        let outcome = self.execute_release(release_id, execution).await;
        self.running_tasks.lock().expect("running").remove(&release_id);
        outcome
    }

    /// Server-side apply (or `compose up -d`) of the artifact, then the
    /// rollout watch; records the fact and the release's outcome. Acts only
    /// while the release still asks for this execution, and never produces an
    /// outcome twice: one recorded before a restart is taken as it is.
    async fn execute_release(&self, release_id: Uuid, execution: i64) -> Result<()> {
        let stream = stream_id_of::<Release>(release_id);
        let (release, _) = self.load::<Release>(&stream).await?;
        let Some(due) = release.execution_due().filter(|d| d.execution == execution) else {
            tracing::debug!(%release_id, execution, "nothing due: the execution is over or superseded");
            return Ok(());
        };
        let scope = self.release_scope(release_id, &release)?;
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let rollback = due.operation == opspilot_domain::release::Operation::Rollback;
        let spec = release.spec.as_ref().expect("scoped release has a spec");
        let (target, _) = self.load::<DeployTarget>(&stream_id_of::<DeployTarget>(spec.target_id)).await?;
        let outcome = match self.recorded_outcome(release_id, &spec.runtime_type, execution).await? {
            Some(outcome) => outcome,
            None if spec.runtime_type == "compose" => {
                let up = match self.artifact_text(due.artifact_of).await {
                    Ok(rendered) => self.compose_up(release_id, execution, &scope, &target, &rendered, rollback).await,
                    Err(e) => Err(e),
                };
                up.map_err(|e| why(&e))
            }
            None => {
                let applied = self.apply_artifact(release_id, due.artifact_of).await;
                let (operation, cluster_id) = (if rollback { "rollback" } else { "apply" }.to_string(), target.cluster_id);
                let fact = match &applied {
                    Ok(summary) => K8sEvent::DeployApplySucceeded { release_id, cluster_id, operation, summary: summary.clone(), execution: Some(execution) },
                    Err(e) => K8sEvent::DeployApplyFailed { release_id, cluster_id, operation, error_key: e.code().key().into(), summary: why(e), execution: Some(execution) },
                };
                self.record(&ctx, &format!("k8s-release-{release_id}"), &scope, &[fact]).await?;
                applied.map_err(|e| why(&e))
            }
        };
        let cmd = match (outcome, rollback) {
            (Ok(summary), false) => ReleaseCommand::Applied { execution, summary },
            (Err(summary), false) => ReleaseCommand::Failed { execution, error_key: ErrorCode::ReleaseApplyFailed, summary },
            (Ok(summary), true) => ReleaseCommand::RollbackCompleted { execution, summary },
            (Err(summary), true) => ReleaseCommand::RollbackFailed { execution, error_key: ErrorCode::ReleaseRollbackFailed, summary },
        };
        self.execute::<Release>(&ctx, "release_outcome", &stream, &scope, |s| s.decide_clone(&cmd), |_| json!({})).await?;
        Ok(())
    }

    /// The outcome of `execution` as its fact recorded it, if it was recorded
    /// (OpsPilot stopped between the fact and the release's outcome).
    async fn recorded_outcome(&self, release_id: Uuid, runtime_type: &str, execution: i64) -> Result<Option<std::result::Result<String, String>>> {
        let of_execution = |e: Option<i64>| e == Some(execution);
        if runtime_type == "compose" {
            let facts = self.store.read_stream(&format!("compose-release-{release_id}")).await?;
            return Ok(facts.iter().rev().find_map(|f| match ComposeEvent::from_parts(&f.action, &f.detail).ok()? {
                ComposeEvent::UpSucceeded(f) | ComposeEvent::RollbackSucceeded(f) if of_execution(f.execution) => Some(Ok(f.summary)),
                ComposeEvent::UpFailed(f) | ComposeEvent::RollbackFailed(f) if of_execution(f.execution) => Some(Err(f.summary)),
                _ => None,
            }));
        }
        let facts = self.store.read_stream(&format!("k8s-release-{release_id}")).await?;
        Ok(facts.iter().rev().find_map(|f| match K8sEvent::from_parts(&f.action, &f.detail).ok()? {
            K8sEvent::DeployApplySucceeded { summary, execution: e, .. } if of_execution(e) => Some(Ok(summary)),
            K8sEvent::DeployApplyFailed { summary, execution: e, .. } if of_execution(e) => Some(Err(summary)),
            _ => None,
        }))
    }

    /// The rendered artifact a release previewed.
    async fn artifact_text(&self, release_id: Uuid) -> Result<String> {
        let events = self.store.read_stream(&stream_id_of::<Release>(release_id)).await?;
        let digest = events
            .iter()
            .rev()
            .find_map(|e| (e.action == "release.previewed").then(|| e.detail["artifact_digest"].as_str().map(String::from)).flatten())
            .ok_or_else(|| DomainError::new(ErrorCode::ReleaseApplyFailed, "the release has no previewed artifact"))?;
        Ok(opspilot_eventstore::artifacts::get(self.store.pool(), &digest)
            .await?
            .ok_or_else(|| DomainError::new(ErrorCode::ReleaseApplyFailed, "the previewed artifact is missing"))?)
    }

    /// Applies the previewed artifact of `artifact_of` to the target of `release_id`.
    async fn apply_artifact(&self, release_id: Uuid, artifact_of: Uuid) -> Result<String> {
        let rendered = self.artifact_text(artifact_of).await?;
        let (release, _) = self.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
        let spec = release.spec.ok_or_else(|| DomainError::new(ErrorCode::ReleaseNotFound, "release has no spec"))?;
        let (target, _) = self.load::<DeployTarget>(&stream_id_of::<DeployTarget>(spec.target_id)).await?;
        let ns = target.namespace.unwrap_or_default();
        let objects = opspilot_k8s::manifest::parse_objects(&rendered, &ns)?;
        let client = self.cluster_client_by_id(target.cluster_id.ok_or_else(|| DomainError::new(ErrorCode::ClusterNotFound, "target has no cluster"))?).await?;
        opspilot_k8s::manifest::apply(&client, &objects).await?;
        opspilot_k8s::manifest::wait_rollout(&client, &objects, self.rollout_deadline).await?;
        Ok(format!("{} object(s) applied and rolled out in {ns}", objects.len()))
    }
}

impl Commands {
    /// Rolls an applied release back: re-applies the artifact of the last
    /// release of the same service and target that was applied before it,
    /// through the inbox when the approval policy says so.
    /// A release the caller may see, with its spec; others do not exist for them.
    async fn visible_release(&self, ctx: &CommandContext, release_id: Uuid) -> Result<(Release, ReleaseSpec, opspilot_domain::Principal)> {
        let (release, _) = self.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
        let missing = || DomainError::new(ErrorCode::ReleaseNotFound, format!("release {release_id} does not exist"));
        let spec = release.spec.clone().ok_or_else(missing)?;
        let principal = ctx.principal()?.clone();
        if !principal.sees_project(spec.project_id) {
            return Err(missing().into());
        }
        Ok((release, spec, principal))
    }

    /// Withdraws a release (or its rollback) while it waits for approval:
    /// its ticket is cancelled first, so the inbox never offers it again, then
    /// the release ends `cancelled` (a withdrawn rollback leaves the applied
    /// release as it was). The requester or an admin may; a release no longer
    /// waiting is `release_state_invalid`.
    pub async fn cancel_release(&self, ctx: &CommandContext, release_id: Uuid, reason: Option<String>) -> Result<Handled> {
        self.authorize(ctx, Permission::DeployReleaseApply, "release.cancel").await?;
        let stream = stream_id_of::<Release>(release_id);
        let (release, _, principal) = self.visible_release(ctx, release_id).await?;
        let waiting = release.approval_ticket.clone().filter(|_| release.status == opspilot_domain::release::ReleaseStatus::PendingApproval);
        if let Some(ticket) = &waiting {
            use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket};
            let t = self.ticket(ticket).await?;
            let requested_by = t.facts.as_ref().map(|f| f.requested_by);
            if requested_by != Some(principal.user_id) && !principal.is_admin() {
                return Err(DomainError::new(ErrorCode::PermissionDenied, "only the requester or an admin may withdraw a release").into());
            }
            let scope = t.scope().ok_or_else(|| DomainError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")))?;
            let cancel = ApprovalCommand::Cancel { by: principal.user_id, reason: reason.clone(), now: ctx.now };
            // The release ends as the follow-up of its cancelled ticket.
            let answer = json!({ "release_id": release_id, "status": "cancelled" });
            return self.execute::<ApprovalTicket>(ctx, "approval.cancel", &stream_id_of::<ApprovalTicket>(ticket), &scope, |s| s.decide_clone(&cancel), |_| answer.clone()).await;
        }
        // Nothing waits: withdrawn already (no change), or too late.
        let cmd = ReleaseCommand::Cancel { reason };
        let scope = self.release_scope(release_id, &release)?;
        self.execute::<Release>(ctx, "release.cancel", &stream, &scope, |s| s.decide_clone(&cmd), |_| json!({ "release_id": release_id, "status": "cancelled" })).await
    }

    pub async fn rollback_release(&self, ctx: &CommandContext, release_id: Uuid) -> Result<Handled> {
        self.authorize(ctx, Permission::DeployReleaseApply, "release.rollback").await?;
        let stream = stream_id_of::<Release>(release_id);
        let (release, spec, principal) = self.visible_release(ctx, release_id).await?;
        self.authorize(ctx, Permission::apply_on(&spec.runtime_type)?, "release.rollback").await?;
        let previous = opspilot_projections::release_history::previous_applied(self.store.pool(), spec.service_id, spec.target_id, release_id)
            .await?
            .ok_or_else(|| DomainError::new(ErrorCode::ReleaseStateInvalid, "no earlier release of this service and target was applied: nothing to roll back to"))?;
        let (service, _) = self.load::<Service>(&stream_id_of::<Service>(spec.service_id)).await?;
        let risk = service.risk_level.unwrap_or(opspilot_domain::approval::RiskLevel::Medium);
        let needs_approval = self.approval_policy.requires(&spec.env, risk);
        let ticket = format!("dep-rbk-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let approval = if needs_approval {
            opspilot_domain::release::ApprovalDecision::Required { ticket: ticket.clone(), risk_level: risk }
        } else {
            opspilot_domain::release::ApprovalDecision::NotRequired
        };
        let cmd = ReleaseCommand::RequestRollback { by: principal.user_id, target_artifact_release_id: previous, approval };
        let scope = self.release_scope(release_id, &release)?;
        let answer = json!({
            "release_id": release_id, "rollback_to": previous,
            "status": if needs_approval { "pending_approval" } else { "rolling_back" },
            "approval_required": needs_approval,
            "approval_ticket": if needs_approval { json!(ticket) } else { serde_json::Value::Null },
        });
        let handled = self.execute::<Release>(ctx, "release_rollback", &stream, &scope, |s| s.decide_clone(&cmd), |_| answer.clone()).await?;
        if handled.result["release_id"] != json!(release_id) {
            return Ok(handled);
        }
        if needs_approval {
            use opspilot_domain::approval::{ApprovalCommand, ApprovalTicket, ScopeType, TicketBinding};
            let create = ApprovalCommand::Create {
                ticket: ticket.clone(),
                binding: TicketBinding { scope_type: ScopeType::Release, scope_id: release_id.to_string(), binding_hash: release.binding_hash.clone().unwrap_or_default() },
                project_id: spec.project_id,
                team_id: spec.team_id,
                environment_id: None,
                runtime_type: spec.runtime_type.clone(),
                risk_level: risk,
                priority: risk.default_priority(),
                requested_by: principal.user_id,
                required_permission: Permission::DeployReleaseApprove,
                source: ctx.source,
                summary: format!("{} rollback {}", spec.env, service.name.as_ref().map(|n| n.to_string()).unwrap_or_default()),
                detail: json!({ "release_id": release_id, "rollback_to": previous, "operation": "rollback" }),
                now: ctx.now,
                expires_at: ctx.now + self.ticket_ttl(risk),
            };
            let tscope = EventScope::resource("approval_ticket", &ticket).in_project(spec.project_id).in_team(spec.team_id);
            let h = self
                .execute::<ApprovalTicket>(ctx, "approval_create", &stream_id_of::<ApprovalTicket>(&ticket), &tscope, |s| s.decide_clone(&create), |_| answer.clone())
                .await?;
            return Ok(Handled { result: handled.result, position: h.position });
        }
        // `release.applying` is recorded: the process manager executes it.
        Ok(handled)
    }
}
