//! Environment aggregate: where releases land, built from bound hosts by
//! install tasks (SPEC §8).
//!
//! An environment's stream holds what it is (created, updated, nodes bound)
//! and the life of its install tasks at task granularity: previewed,
//! requested, started, succeeded/failed, rollback started/succeeded/failed.
//! The per-node step facts of a task go to the task's own stream (see
//! `install_task`), so many nodes can report at once without contending for
//! this one.
//!
//! Decisions where the seed is silent:
//! - A task's actions are `preflight`, `install`, `upgrade`, `repair` and
//!   `rollback`; each is previewed and applied the same way. `rollback` runs
//!   the bundle's rollback hooks and records the `install_rollback_*` events.
//! - One task at a time per environment: a request while another waits for
//!   approval or runs is `environment_status_invalid`.
//! - An approval that ends without running the task ends it with
//!   `environment.install_failed` and the reason's `error_key`
//!   (`approval_rejected`, `approval_ticket_expired`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::approval::RiskLevel;
use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventStatus, Severity};
use crate::host::check_labels;
use crate::name::ResourceName;
use crate::release::ApprovalDecision;

/// Runtime types of an environment.
pub const RUNTIME_TYPES: &[&str] = &["k8s", "compose", "hybrid"];
/// How an environment came to be.
pub const MODES: &[&str] = &["platform_managed", "external_managed"];
/// Roles a node can have.
pub const NODE_ROLES: &[&str] = &["control_plane", "worker", "compose_manager", "compose_worker"];
/// What an install task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallAction {
    Preflight,
    Install,
    Upgrade,
    Repair,
    Rollback,
}

impl InstallAction {
    pub const ALL: [InstallAction; 5] = [InstallAction::Preflight, InstallAction::Install, InstallAction::Upgrade, InstallAction::Repair, InstallAction::Rollback];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallAction::Preflight => "preflight",
            InstallAction::Install => "install",
            InstallAction::Upgrade => "upgrade",
            InstallAction::Repair => "repair",
            InstallAction::Rollback => "rollback",
        }
    }

    /// Parses an action name, or a `validation_error` naming the known ones.
    pub fn parse(s: &str) -> Result<InstallAction, DomainError> {
        InstallAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| DomainError::validation("action", "one of preflight, install, upgrade, repair, rollback"))
    }
}

impl std::fmt::Display for InstallAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an environment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentStatus {
    #[default]
    Draft,
    Installing,
    Ready,
    Failed,
    Offline,
}

impl EnvironmentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentStatus::Draft => "draft",
            EnvironmentStatus::Installing => "installing",
            EnvironmentStatus::Ready => "ready",
            EnvironmentStatus::Failed => "failed",
            EnvironmentStatus::Offline => "offline",
        }
    }
}

/// The roles a runtime accepts.
pub fn roles_of(runtime_type: &str) -> &'static [&'static str] {
    match runtime_type {
        "k8s" => &["control_plane", "worker"],
        "compose" => &["compose_manager", "compose_worker"],
        _ => NODE_ROLES,
    }
}

/// A host bound into an environment with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBinding {
    pub host_id: Uuid,
    pub node_role: String,
    pub weight: u32,
}

/// One step of a task: a hook, run on the nodes its `runOn` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step_index: u32,
    pub step_name: String,
    /// Relative to the bundle root; empty for OpsPilot's own staging step.
    pub hook_path: String,
    pub run_on: String,
    pub host_ids: Vec<Uuid>,
    pub timeout_seconds: u64,
    pub max_retries: u32,
}

/// What a task will do, fixed by its preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallPlan {
    pub action: InstallAction,
    pub runtime_type: String,
    pub manifest_version: String,
    pub install_options: BTreeMap<String, String>,
    pub steps: Vec<PlannedStep>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub step_name: Option<String>,
    pub step_index: Option<u32>,
    pub host_id: Option<Uuid>,
    pub exit_code: Option<i64>,
    pub stderr_excerpt: String,
    pub error_key: String,
}

/// The environment's descriptive fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentFacts {
    pub region: String,
    pub labels: BTreeMap<String, String>,
    pub description: String,
}

/// What an environment can be asked to do.
#[derive(Debug, Clone)]
pub enum EnvironmentCommand {
    Create { environment_id: Uuid, name: ResourceName, project_id: Uuid, team_id: Uuid, runtime_type: String, mode: String, facts: EnvironmentFacts },
    Update { facts: EnvironmentFacts },
    BindNodes { nodes: Vec<NodeBinding> },
    PreviewInstall { preview_ref: String, plan: InstallPlan, binding_hash: String, expires_at: DateTime<Utc>, warnings: Vec<String>, now: DateTime<Utc> },
    RequestInstall { task_id: Uuid, preview_ref: String, presented_binding_hash: String, now: DateTime<Utc>, approval: ApprovalDecision },
    ApproveTask { ticket: String, by: Uuid },
    /// Rejected, expired or cancelled approval.
    EndPendingTask { ticket: String, error_key: ErrorCode, summary: String },
    /// The task finished; `failure` is `None` on success.
    FinishTask { task_id: Uuid, failure: Option<TaskFailure>, duration_ms: i64 },
    /// Someone stops a task: one waiting for approval ends at once, a running
    /// one is asked to stop (its runner ends it as cancelled).
    CancelTask { task_id: Uuid, by: Uuid, reason: String },
    /// Removes the environment from OpsPilot (nothing on its hosts changes).
    Delete,
}

/// What an environment records (the seed's `environment.*` dictionary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum EnvironmentEvent {
    #[serde(rename = "environment.created")]
    Created { environment_id: Uuid, name: ResourceName, project_id: Uuid, team_id: Uuid, runtime_type: String, mode: String, #[serde(flatten)] facts: EnvironmentFacts },
    #[serde(rename = "environment.updated")]
    Updated { environment_id: Uuid, #[serde(flatten)] facts: EnvironmentFacts },
    #[serde(rename = "environment.nodes_bound")]
    NodesBound { environment_id: Uuid, nodes: Vec<NodeBinding> },
    #[serde(rename = "environment.install_previewed")]
    InstallPreviewed {
        environment_id: Uuid,
        preview_ref: String,
        action: InstallAction,
        runtime_type: String,
        manifest_version: String,
        steps: Vec<String>,
        plan: InstallPlan,
        binding_hash: String,
        expires_at: DateTime<Utc>,
        warnings: Vec<String>,
    },
    #[serde(rename = "environment.install_requested")]
    InstallRequested {
        environment_id: Uuid,
        task_id: Uuid,
        preview_ref: String,
        action: InstallAction,
        runtime_type: String,
        manifest_version: String,
        approval_ticket: Option<String>,
        risk_level: Option<RiskLevel>,
        plan: InstallPlan,
    },
    #[serde(rename = "environment.install_started")]
    InstallStarted { environment_id: Uuid, task_id: Uuid, action: InstallAction, runtime_type: String, manifest_version: String, approval_ticket: Option<String>, approved_by: Option<Uuid> },
    #[serde(rename = "environment.install_succeeded")]
    InstallSucceeded { environment_id: Uuid, task_id: Uuid, action: InstallAction, runtime_type: String, manifest_version: String, duration_ms: i64 },
    #[serde(rename = "environment.install_failed")]
    InstallFailed { environment_id: Uuid, task_id: Uuid, action: InstallAction, runtime_type: String, manifest_version: String, #[serde(flatten)] failure: TaskFailure, duration_ms: i64 },
    #[serde(rename = "environment.install_rollback_started")]
    InstallRollbackStarted { environment_id: Uuid, task_id: Uuid, runtime_type: String, manifest_version: String, approval_ticket: Option<String>, approved_by: Option<Uuid> },
    #[serde(rename = "environment.install_rollback_succeeded")]
    InstallRollbackSucceeded { environment_id: Uuid, task_id: Uuid, runtime_type: String, manifest_version: String, duration_ms: i64 },
    #[serde(rename = "environment.install_rollback_failed")]
    InstallRollbackFailed { environment_id: Uuid, task_id: Uuid, runtime_type: String, manifest_version: String, #[serde(flatten)] failure: TaskFailure, duration_ms: i64 },
    /// A running task was asked to stop; the runner stops its hooks and ends
    /// it with `install_task_cancelled`.
    #[serde(rename = "environment.install_cancel_requested")]
    InstallCancelRequested { environment_id: Uuid, task_id: Uuid, action: InstallAction, requested_by: Uuid, reason: String },
    #[serde(rename = "environment.deleted")]
    Deleted { environment_id: Uuid, name: ResourceName },
}

impl DomainEvent for EnvironmentEvent {
    fn status(&self) -> EventStatus {
        match self {
            EnvironmentEvent::InstallRequested { .. } | EnvironmentEvent::InstallStarted { .. } | EnvironmentEvent::InstallRollbackStarted { .. } => EventStatus::Running,
            EnvironmentEvent::InstallFailed { .. } | EnvironmentEvent::InstallRollbackFailed { .. } => EventStatus::Failed,
            EnvironmentEvent::InstallPreviewed { warnings, .. } if !warnings.is_empty() => EventStatus::Warning,
            EnvironmentEvent::InstallCancelRequested { .. } => EventStatus::Warning,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            EnvironmentEvent::InstallRollbackFailed { .. } => Severity::Critical,
            EnvironmentEvent::InstallFailed { .. } => Severity::High,
            EnvironmentEvent::InstallRollbackStarted { .. } | EnvironmentEvent::InstallCancelRequested { .. } => Severity::Medium,
            _ => Severity::Info,
        }
    }
}

/// A preview waiting to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPreview {
    pub plan: InstallPlan,
    pub binding_hash: String,
    pub expires_at: DateTime<Utc>,
    pub consumed: bool,
}

/// Where the environment's current task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPhase {
    PendingApproval,
    Running,
}

/// The task an environment is busy with.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTask {
    pub task_id: Uuid,
    pub plan: InstallPlan,
    pub phase: TaskPhase,
    pub approval_ticket: Option<String>,
    /// Someone asked the running task to stop.
    pub cancel_requested: bool,
}

/// An environment as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub id: Option<Uuid>,
    pub name: Option<ResourceName>,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub runtime_type: String,
    pub mode: String,
    pub facts: Option<EnvironmentFacts>,
    pub nodes: Vec<NodeBinding>,
    pub status: EnvironmentStatus,
    pub previews: BTreeMap<String, PendingPreview>,
    pub active: Option<ActiveTask>,
    /// Tasks that ran, by id, with their plan (the task view and resume read it).
    pub tasks: BTreeMap<Uuid, InstallPlan>,
    /// A ticket decided for a task, so a redelivered decision is a no-op.
    pub decided_tickets: Vec<String>,
    pub deleted: bool,
}

impl Environment {
    fn existing(&self) -> Result<Uuid, DomainError> {
        self.id.filter(|_| !self.deleted).ok_or_else(|| DomainError::new(ErrorCode::EnvironmentNotFound, "environment does not exist"))
    }

    fn started(&self, environment_id: Uuid, task_id: Uuid, plan: &InstallPlan, approval_ticket: Option<String>, approved_by: Option<Uuid>) -> EnvironmentEvent {
        let (runtime_type, manifest_version) = (plan.runtime_type.clone(), plan.manifest_version.clone());
        if plan.action == InstallAction::Rollback {
            EnvironmentEvent::InstallRollbackStarted { environment_id, task_id, runtime_type, manifest_version, approval_ticket, approved_by }
        } else {
            EnvironmentEvent::InstallStarted { environment_id, task_id, action: plan.action, runtime_type, manifest_version, approval_ticket, approved_by }
        }
    }

    fn ended(environment_id: Uuid, task_id: Uuid, plan: &InstallPlan, failure: Option<TaskFailure>, duration_ms: i64) -> EnvironmentEvent {
        let (runtime_type, manifest_version, action) = (plan.runtime_type.clone(), plan.manifest_version.clone(), plan.action);
        match (action == InstallAction::Rollback, failure) {
            (false, None) => EnvironmentEvent::InstallSucceeded { environment_id, task_id, action, runtime_type, manifest_version, duration_ms },
            (false, Some(failure)) => EnvironmentEvent::InstallFailed { environment_id, task_id, action, runtime_type, manifest_version, failure, duration_ms },
            (true, None) => EnvironmentEvent::InstallRollbackSucceeded { environment_id, task_id, runtime_type, manifest_version, duration_ms },
            (true, Some(failure)) => EnvironmentEvent::InstallRollbackFailed { environment_id, task_id, runtime_type, manifest_version, failure, duration_ms },
        }
    }

    /// Which actions the status allows.
    fn allows(&self, action: InstallAction) -> bool {
        match action {
            InstallAction::Install | InstallAction::Preflight => true,
            InstallAction::Upgrade => self.status == EnvironmentStatus::Ready,
            InstallAction::Repair | InstallAction::Rollback => matches!(self.status, EnvironmentStatus::Ready | EnvironmentStatus::Failed | EnvironmentStatus::Offline),
        }
    }
}

fn check_nodes(runtime_type: &str, nodes: &[NodeBinding]) -> Result<(), DomainError> {
    let allowed = roles_of(runtime_type);
    let mut seen = std::collections::BTreeSet::new();
    for n in nodes {
        if !allowed.contains(&n.node_role.as_str()) {
            return Err(DomainError::new(
                ErrorCode::NodeRoleInvalid,
                format!("{} is not a role of a {runtime_type} environment; use {}", n.node_role, allowed.join(" or ")),
            ));
        }
        if !seen.insert(n.host_id) {
            return Err(DomainError::validation("nodes", format!("host {} is bound twice", n.host_id)));
        }
        if n.weight > 1000 {
            return Err(DomainError::validation("weight", "0 to 1000"));
        }
    }
    Ok(())
}

/// The nodes a runtime needs at least, checked at install preview.
pub fn check_node_counts(runtime_type: &str, nodes: &[NodeBinding]) -> Result<(), DomainError> {
    let count = |role: &str| nodes.iter().filter(|n| n.node_role == role).count();
    let missing = match runtime_type {
        "k8s" if count("control_plane") == 0 => Some("a k8s environment needs at least one control_plane node"),
        "compose" if count("compose_manager") == 0 => Some("a compose environment needs at least one compose_manager node"),
        "hybrid" if count("control_plane") == 0 || count("compose_manager") == 0 => Some("a hybrid environment needs a control_plane and a compose_manager node"),
        _ => None,
    };
    match missing {
        Some(m) => Err(DomainError::new(ErrorCode::InsufficientNodes, m)),
        None => Ok(()),
    }
}

impl Aggregate for Environment {
    type Command = EnvironmentCommand;
    type Event = EnvironmentEvent;
    const KIND: &'static str = "environment";

    fn decide(&self, command: EnvironmentCommand) -> Result<Vec<EnvironmentEvent>, DomainError> {
        match command {
            EnvironmentCommand::Create { environment_id, name, project_id, team_id, runtime_type, mode, facts } => {
                if self.id.is_some() && !self.deleted {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("environment {name} already exists")));
                }
                if !RUNTIME_TYPES.contains(&runtime_type.as_str()) {
                    return Err(DomainError::validation("runtime_type", "k8s, compose or hybrid"));
                }
                if !MODES.contains(&mode.as_str()) {
                    return Err(DomainError::validation("mode", "platform_managed or external_managed"));
                }
                check_facts(&facts)?;
                Ok(vec![EnvironmentEvent::Created { environment_id, name, project_id, team_id, runtime_type, mode, facts }])
            }
            EnvironmentCommand::Update { facts } => {
                let environment_id = self.existing()?;
                check_facts(&facts)?;
                if self.facts.as_ref() == Some(&facts) {
                    return Ok(vec![]);
                }
                Ok(vec![EnvironmentEvent::Updated { environment_id, facts }])
            }
            EnvironmentCommand::BindNodes { nodes } => {
                let environment_id = self.existing()?;
                if self.active.is_some() {
                    return Err(DomainError::new(ErrorCode::EnvironmentStatusInvalid, "nodes cannot change while a task waits or runs"));
                }
                check_nodes(&self.runtime_type, &nodes)?;
                if self.nodes == nodes {
                    return Ok(vec![]);
                }
                Ok(vec![EnvironmentEvent::NodesBound { environment_id, nodes }])
            }
            EnvironmentCommand::PreviewInstall { preview_ref, plan, binding_hash, expires_at, warnings, now } => {
                let environment_id = self.existing()?;
                if !self.allows(plan.action) {
                    return Err(DomainError::new(ErrorCode::EnvironmentStatusInvalid, format!("cannot {} an environment that is {}", plan.action, self.status.as_str())));
                }
                if expires_at <= now || binding_hash.len() != 64 || self.previews.contains_key(&preview_ref) {
                    return Err(DomainError::validation("preview", "a new preview_ref, a sha256 binding and a future expiry"));
                }
                Ok(vec![EnvironmentEvent::InstallPreviewed {
                    environment_id,
                    preview_ref,
                    action: plan.action,
                    runtime_type: plan.runtime_type.clone(),
                    manifest_version: plan.manifest_version.clone(),
                    steps: plan.steps.iter().map(|s| s.step_name.clone()).collect(),
                    plan,
                    binding_hash,
                    expires_at,
                    warnings,
                }])
            }
            EnvironmentCommand::RequestInstall { task_id, preview_ref, presented_binding_hash, now, approval } => {
                let environment_id = self.existing()?;
                let preview = self.previews.get(&preview_ref).ok_or_else(|| DomainError::new(ErrorCode::PreviewRequired, format!("{preview_ref} is not a preview of this environment")))?;
                if preview.consumed {
                    return Err(DomainError::new(ErrorCode::InstallTaskStateInvalid, format!("{preview_ref} was already applied; preview again")));
                }
                if now > preview.expires_at {
                    return Err(DomainError::new(ErrorCode::PreviewExpired, format!("preview expired at {}", preview.expires_at)));
                }
                if preview.binding_hash != presented_binding_hash {
                    return Err(DomainError::new(ErrorCode::PreviewMismatch, "nodes, bundle or options changed since the preview; preview again"));
                }
                if let Some(a) = &self.active {
                    return Err(DomainError::new(ErrorCode::EnvironmentStatusInvalid, format!("task {} is still {}", a.task_id, if a.phase == TaskPhase::Running { "running" } else { "waiting for approval" })));
                }
                if !self.allows(preview.plan.action) {
                    return Err(DomainError::new(ErrorCode::EnvironmentStatusInvalid, format!("cannot {} an environment that is {}", preview.plan.action, self.status.as_str())));
                }
                let plan = &preview.plan;
                let (ticket, risk_level) = match &approval {
                    ApprovalDecision::Required { ticket, risk_level } => (Some(ticket.clone()), Some(*risk_level)),
                    ApprovalDecision::NotRequired => (None, None),
                };
                let mut events = vec![EnvironmentEvent::InstallRequested {
                    environment_id,
                    task_id,
                    preview_ref,
                    action: plan.action,
                    runtime_type: plan.runtime_type.clone(),
                    manifest_version: plan.manifest_version.clone(),
                    approval_ticket: ticket.clone(),
                    risk_level,
                    plan: plan.clone(),
                }];
                if ticket.is_none() {
                    events.push(self.started(environment_id, task_id, plan, None, None));
                }
                Ok(events)
            }
            EnvironmentCommand::ApproveTask { ticket, by } => {
                let environment_id = self.existing()?;
                match &self.active {
                    Some(a) if a.phase == TaskPhase::PendingApproval && a.approval_ticket.as_deref() == Some(ticket.as_str()) => {
                        Ok(vec![self.started(environment_id, a.task_id, &a.plan, Some(ticket), Some(by))])
                    }
                    _ if self.decided_tickets.contains(&ticket) => Ok(vec![]),
                    _ => Err(DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, format!("no task of this environment waits for ticket {ticket}"))),
                }
            }
            EnvironmentCommand::EndPendingTask { ticket, error_key, summary } => {
                let environment_id = self.existing()?;
                match &self.active {
                    Some(a) if a.phase == TaskPhase::PendingApproval && a.approval_ticket.as_deref() == Some(ticket.as_str()) => {
                        let failure = TaskFailure { step_name: None, step_index: None, host_id: None, exit_code: None, stderr_excerpt: summary, error_key: error_key.key().into() };
                        Ok(vec![Self::ended(environment_id, a.task_id, &a.plan, Some(failure), 0)])
                    }
                    _ if self.decided_tickets.contains(&ticket) => Ok(vec![]),
                    _ => Err(DomainError::new(ErrorCode::ApprovalTicketScopeMismatch, format!("no task of this environment waits for ticket {ticket}"))),
                }
            }
            EnvironmentCommand::FinishTask { task_id, failure, duration_ms } => {
                let environment_id = self.existing()?;
                match &self.active {
                    Some(a) if a.task_id == task_id && a.phase == TaskPhase::Running => Ok(vec![Self::ended(environment_id, task_id, &a.plan, failure, duration_ms)]),
                    // Recorded already (a resumed runner finishing twice).
                    _ if self.tasks.contains_key(&task_id) && self.active.as_ref().is_none_or(|a| a.task_id != task_id) => Ok(vec![]),
                    _ => Err(DomainError::new(ErrorCode::InstallTaskStateInvalid, format!("task {task_id} is not running"))),
                }
            }
            EnvironmentCommand::CancelTask { task_id, by, reason } => {
                let environment_id = self.existing()?;
                match &self.active {
                    Some(a) if a.task_id == task_id && a.phase == TaskPhase::PendingApproval => {
                        let failure = TaskFailure { step_name: None, step_index: None, host_id: None, exit_code: None, stderr_excerpt: reason, error_key: ErrorCode::InstallTaskCancelled.key().into() };
                        Ok(vec![Self::ended(environment_id, task_id, &a.plan, Some(failure), 0)])
                    }
                    Some(a) if a.task_id == task_id && a.cancel_requested => Ok(vec![]),
                    Some(a) if a.task_id == task_id => Ok(vec![EnvironmentEvent::InstallCancelRequested { environment_id, task_id, action: a.plan.action, requested_by: by, reason }]),
                    _ if self.tasks.contains_key(&task_id) => Err(DomainError::new(ErrorCode::InstallTaskStateInvalid, format!("task {task_id} has ended already"))),
                    _ => Err(DomainError::new(ErrorCode::InstallTaskNotFound, format!("task {task_id} is not a task of this environment"))),
                }
            }
            EnvironmentCommand::Delete => {
                let environment_id = self.existing()?;
                if let Some(a) = &self.active {
                    return Err(DomainError::new(ErrorCode::EnvironmentStatusInvalid, format!("task {} still waits or runs", a.task_id)));
                }
                Ok(vec![EnvironmentEvent::Deleted { environment_id, name: self.name.clone().expect("existing environment has a name") }])
            }
        }
    }

    fn evolve(mut self, event: &EnvironmentEvent) -> Self {
        match event {
            EnvironmentEvent::Created { environment_id, name, project_id, team_id, runtime_type, mode, facts } => {
                // A name used again after a deletion starts afresh.
                self = Environment::default();
                self.id = Some(*environment_id);
                self.name = Some(name.clone());
                self.project_id = Some(*project_id);
                self.team_id = Some(*team_id);
                self.runtime_type = runtime_type.clone();
                self.mode = mode.clone();
                self.facts = Some(facts.clone());
            }
            EnvironmentEvent::Updated { facts, .. } => self.facts = Some(facts.clone()),
            EnvironmentEvent::NodesBound { nodes, .. } => self.nodes = nodes.clone(),
            EnvironmentEvent::InstallPreviewed { preview_ref, plan, binding_hash, expires_at, .. } => {
                self.previews.insert(preview_ref.clone(), PendingPreview { plan: plan.clone(), binding_hash: binding_hash.clone(), expires_at: *expires_at, consumed: false });
            }
            EnvironmentEvent::InstallRequested { task_id, preview_ref, approval_ticket, plan, .. } => {
                if let Some(p) = self.previews.get_mut(preview_ref) {
                    p.consumed = true;
                }
                self.tasks.insert(*task_id, plan.clone());
                self.active = Some(ActiveTask { task_id: *task_id, plan: plan.clone(), phase: TaskPhase::PendingApproval, approval_ticket: approval_ticket.clone(), cancel_requested: false });
            }
            EnvironmentEvent::InstallStarted { approval_ticket, .. } | EnvironmentEvent::InstallRollbackStarted { approval_ticket, .. } => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = TaskPhase::Running;
                }
                self.decided_tickets.extend(approval_ticket.clone());
                if !matches!(self.active.as_ref().map(|a| a.plan.action), Some(InstallAction::Preflight)) {
                    self.status = EnvironmentStatus::Installing;
                }
            }
            EnvironmentEvent::InstallSucceeded { action, .. } => {
                self.finish();
                if *action != InstallAction::Preflight {
                    self.status = EnvironmentStatus::Ready;
                }
            }
            EnvironmentEvent::InstallFailed { action, .. } => {
                let ran = self.active.as_ref().is_some_and(|a| a.phase == TaskPhase::Running);
                self.decided_tickets.extend(self.active.as_ref().and_then(|a| a.approval_ticket.clone()));
                self.finish();
                if ran && *action != InstallAction::Preflight {
                    self.status = EnvironmentStatus::Failed;
                }
            }
            EnvironmentEvent::InstallRollbackSucceeded { .. } => {
                self.finish();
                self.status = EnvironmentStatus::Draft;
            }
            EnvironmentEvent::InstallCancelRequested { .. } => {
                if let Some(a) = self.active.as_mut() {
                    a.cancel_requested = true;
                }
            }
            EnvironmentEvent::Deleted { .. } => self.deleted = true,
            EnvironmentEvent::InstallRollbackFailed { .. } => {
                let ran = self.active.as_ref().is_some_and(|a| a.phase == TaskPhase::Running);
                self.decided_tickets.extend(self.active.as_ref().and_then(|a| a.approval_ticket.clone()));
                self.finish();
                if ran {
                    self.status = EnvironmentStatus::Failed;
                }
            }
        }
        self
    }
}

impl Environment {
    fn finish(&mut self) {
        self.active = None;
    }
}

fn check_facts(facts: &EnvironmentFacts) -> Result<(), DomainError> {
    if facts.region.len() > 63 {
        return Err(DomainError::validation("region", "at most 63 characters"));
    }
    if facts.description.len() > 4096 {
        return Err(DomainError::validation("description", "at most 4 KiB"));
    }
    check_labels(&facts.labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn created(runtime: &str) -> EnvironmentEvent {
        EnvironmentEvent::Created {
            environment_id: Uuid::nil(),
            name: ResourceName::parse("name", "env-compose-prod").unwrap(),
            project_id: Uuid::nil(),
            team_id: Uuid::nil(),
            runtime_type: runtime.into(),
            mode: "platform_managed".into(),
            facts: EnvironmentFacts { region: "cn-hz".into(), labels: BTreeMap::new(), description: String::new() },
        }
    }

    fn plan(action: &str) -> InstallPlan {
        InstallPlan { action: InstallAction::parse(action).unwrap(), runtime_type: "compose".into(), manifest_version: "v1".into(), install_options: BTreeMap::new(), steps: vec![] }
    }

    fn previewed(action: &str) -> EnvironmentEvent {
        EnvironmentEvent::InstallPreviewed {
            environment_id: Uuid::nil(),
            preview_ref: "inst-prev-1".into(),
            action: InstallAction::parse(action).unwrap(),
            runtime_type: "compose".into(),
            manifest_version: "v1".into(),
            steps: vec![],
            plan: plan(action),
            binding_hash: "a".repeat(64),
            expires_at: t(600),
            warnings: vec![],
        }
    }

    fn request(hash: &str, now: i64) -> EnvironmentCommand {
        EnvironmentCommand::RequestInstall { task_id: Uuid::max(), preview_ref: "inst-prev-1".into(), presented_binding_hash: hash.into(), now: t(now), approval: ApprovalDecision::NotRequired }
    }

    #[test]
    fn roles_must_fit_the_runtime() {
        let n = |role: &str| vec![NodeBinding { host_id: Uuid::nil(), node_role: role.into(), weight: 100 }];
        given::<Environment>(vec![created("compose")]).when(EnvironmentCommand::BindNodes { nodes: n("control_plane") }).then_expect_error(ErrorCode::NodeRoleInvalid);
        given::<Environment>(vec![created("compose")]).when(EnvironmentCommand::BindNodes { nodes: n("boss") }).then_expect_error(ErrorCode::NodeRoleInvalid);
        assert_eq!(check_node_counts("compose", &n("compose_worker")).unwrap_err().code, ErrorCode::InsufficientNodes);
        assert!(check_node_counts("compose", &n("compose_manager")).is_ok());
    }

    #[test]
    fn apply_follows_the_preview_rules() {
        given::<Environment>(vec![created("compose")]).when(request(&"a".repeat(64), 1)).then_expect_error(ErrorCode::PreviewRequired);
        given::<Environment>(vec![created("compose"), previewed("install")]).when(request(&"a".repeat(64), 601)).then_expect_error(ErrorCode::PreviewExpired);
        given::<Environment>(vec![created("compose"), previewed("install")]).when(request(&"b".repeat(64), 1)).then_expect_error(ErrorCode::PreviewMismatch);
        let events = Environment::fold([created("compose"), previewed("install")].iter()).decide(request(&"a".repeat(64), 1)).unwrap();
        assert!(matches!(events[1], EnvironmentEvent::InstallStarted { .. }));
        let mut history = vec![created("compose"), previewed("install")];
        history.extend(events);
        given::<Environment>(history).when(request(&"a".repeat(64), 2)).then_expect_error(ErrorCode::InstallTaskStateInvalid);
    }

    #[test]
    fn a_finished_task_sets_the_status_and_frees_the_environment() {
        let mut history = vec![created("compose"), previewed("install")];
        let env = Environment::fold(history.iter());
        history.extend(env.decide(request(&"a".repeat(64), 1)).unwrap());
        assert_eq!(Environment::fold(history.iter()).status, EnvironmentStatus::Installing);
        let failure = TaskFailure { step_name: Some("install-compose.sh".into()), step_index: Some(2), host_id: None, exit_code: Some(3), stderr_excerpt: "boom".into(), error_key: "script_hook_exec_failed".into() };
        let done = Environment::fold(history.iter()).decide(EnvironmentCommand::FinishTask { task_id: Uuid::max(), failure: Some(failure), duration_ms: 5 }).unwrap();
        history.extend(done);
        let env = Environment::fold(history.iter());
        assert_eq!(env.status, EnvironmentStatus::Failed);
        assert!(env.active.is_none());
        // Finishing twice (a resumed runner) changes nothing.
        given::<Environment>(history).when(EnvironmentCommand::FinishTask { task_id: Uuid::max(), failure: None, duration_ms: 1 }).then_expect_events(vec![]);
    }

    #[test]
    fn a_deleted_environment_is_gone_and_its_name_can_be_used_again() {
        let deleted = EnvironmentEvent::Deleted { environment_id: Uuid::nil(), name: ResourceName::parse("name", "env-compose-prod").unwrap() };
        given::<Environment>(vec![created("compose"), deleted.clone()]).when(EnvironmentCommand::Delete).then_expect_error(ErrorCode::EnvironmentNotFound);
        given::<Environment>(vec![created("compose"), deleted.clone()]).when(EnvironmentCommand::BindNodes { nodes: vec![] }).then_expect_error(ErrorCode::EnvironmentNotFound);
        let env = Environment::fold([created("compose"), deleted, created("k8s")].iter());
        assert!(!env.deleted);
        assert_eq!(env.runtime_type, "k8s");
        let mut history = vec![created("compose"), previewed("install")];
        history.extend(Environment::fold(history.iter()).decide(request(&"a".repeat(64), 1)).unwrap());
        given::<Environment>(history).when(EnvironmentCommand::Delete).then_expect_error(ErrorCode::EnvironmentStatusInvalid);
    }

    #[test]
    fn an_approval_starts_the_task_and_a_rejection_ends_it() {
        let mut history = vec![created("compose"), previewed("install")];
        let approval = ApprovalDecision::Required { ticket: "inst-appr-1".into(), risk_level: RiskLevel::High };
        let cmd = EnvironmentCommand::RequestInstall { task_id: Uuid::max(), preview_ref: "inst-prev-1".into(), presented_binding_hash: "a".repeat(64), now: t(1), approval };
        history.extend(Environment::fold(history.iter()).decide(cmd).unwrap());
        assert_eq!(Environment::fold(history.iter()).status, EnvironmentStatus::Draft);
        given::<Environment>(history.clone()).when(EnvironmentCommand::ApproveTask { ticket: "other".into(), by: Uuid::nil() }).then_expect_error(ErrorCode::ApprovalTicketScopeMismatch);
        let ended = Environment::fold(history.iter())
            .decide(EnvironmentCommand::EndPendingTask { ticket: "inst-appr-1".into(), error_key: ErrorCode::ApprovalRejected, summary: "no".into() })
            .unwrap();
        history.extend(ended);
        let env = Environment::fold(history.iter());
        assert_eq!(env.status, EnvironmentStatus::Draft, "a task that never ran leaves the status alone");
        assert!(env.active.is_none());
    }
    #[test]
    fn a_cancel_ends_a_waiting_task_and_asks_a_running_one_to_stop() {
        let cancel = || EnvironmentCommand::CancelTask { task_id: Uuid::max(), by: Uuid::nil(), reason: "wrong window".into() };
        // Waiting for approval: ended at once, unrun.
        let mut waiting = vec![created("compose"), previewed("install")];
        let approval = ApprovalDecision::Required { ticket: "inst-appr-1".into(), risk_level: RiskLevel::High };
        let cmd = EnvironmentCommand::RequestInstall { task_id: Uuid::max(), preview_ref: "inst-prev-1".into(), presented_binding_hash: "a".repeat(64), now: t(1), approval };
        waiting.extend(Environment::fold(waiting.iter()).decide(cmd).unwrap());
        let ended = Environment::fold(waiting.iter()).decide(cancel()).unwrap();
        assert!(matches!(&ended[..], [EnvironmentEvent::InstallFailed { failure, .. }] if failure.error_key == "install_task_cancelled"), "{ended:?}");
        waiting.extend(ended);
        let env = Environment::fold(waiting.iter());
        assert!(env.active.is_none());
        assert_eq!(env.status, EnvironmentStatus::Draft);
        assert!(env.decided_tickets.contains(&"inst-appr-1".to_string()), "a late decision of the ticket changes nothing");
        given::<Environment>(waiting).when(cancel()).then_expect_error(ErrorCode::InstallTaskStateInvalid);

        // Running: asked to stop once; the runner ends it.
        let mut running = vec![created("compose"), previewed("install")];
        running.extend(Environment::fold(running.iter()).decide(request(&"a".repeat(64), 1)).unwrap());
        let asked = Environment::fold(running.iter()).decide(cancel()).unwrap();
        assert!(matches!(&asked[..], [EnvironmentEvent::InstallCancelRequested { reason, .. }] if reason == "wrong window"), "{asked:?}");
        running.extend(asked);
        assert!(Environment::fold(running.iter()).active.unwrap().cancel_requested);
        given::<Environment>(running).when(cancel()).then_expect_events(vec![]);

        let other = EnvironmentCommand::CancelTask { task_id: Uuid::nil(), by: Uuid::nil(), reason: String::new() };
        given::<Environment>(vec![created("compose")]).when(other).then_expect_error(ErrorCode::InstallTaskNotFound);
    }
}
