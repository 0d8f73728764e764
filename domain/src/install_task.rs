//! InstallTask aggregate: the node-steps of one install task, on the task's
//! own stream (`install_task-<id>`). Each node-step (one hook on one node,
//! per attempt) records when it started and how it ended: duration, exit
//! code, stderr excerpt, the hook's structured `[LEVEL] key=value` outputs and
//! a reference to its log lines, which are stored beside the log (their volume
//! does not belong in events).
//!
//! The state answers the question a resumed runner asks: which node-steps
//! have succeeded (never run again) and which attempt comes next.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventStatus, Severity};

/// Which node-step an event is about, and the facts every step event carries
/// (the seed's environment/install detail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStep {
    pub environment_id: Uuid,
    pub task_id: Uuid,
    pub action: String,
    pub runtime_type: String,
    pub manifest_version: String,
    pub step_name: String,
    pub step_index: u32,
    pub host_id: Uuid,
    /// 0 for the first run, then 1.. for retries.
    pub attempt: u32,
}

/// How a node-step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub exit_code: Option<i64>,
    pub stderr_excerpt: String,
    /// `key=value` pairs the hook printed on `[LEVEL]` lines (later wins).
    pub outputs: BTreeMap<String, String>,
    /// How many log lines were stored for this attempt.
    pub log_lines: u64,
}

/// What the task's runner reports.
#[derive(Debug, Clone)]
pub enum InstallTaskCommand {
    StartStep { step: NodeStep, at: DateTime<Utc> },
    SucceedStep { step: NodeStep, result: StepResult },
    FailStep { step: NodeStep, result: StepResult, error_key: ErrorCode, will_retry: bool },
}

/// What a task's stream records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum InstallTaskEvent {
    #[serde(rename = "environment.install_step_started")]
    StepStarted { #[serde(flatten)] step: NodeStep, started_at: DateTime<Utc> },
    #[serde(rename = "environment.install_step_succeeded")]
    StepSucceeded { #[serde(flatten)] step: NodeStep, #[serde(flatten)] result: StepResult },
    #[serde(rename = "environment.install_step_failed")]
    StepFailed { #[serde(flatten)] step: NodeStep, #[serde(flatten)] result: StepResult, error_key: String, will_retry: bool },
}

impl DomainEvent for InstallTaskEvent {
    fn status(&self) -> EventStatus {
        match self {
            InstallTaskEvent::StepStarted { .. } => EventStatus::Running,
            InstallTaskEvent::StepSucceeded { .. } => EventStatus::Success,
            InstallTaskEvent::StepFailed { will_retry: true, .. } => EventStatus::Warning,
            InstallTaskEvent::StepFailed { .. } => EventStatus::Failed,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            InstallTaskEvent::StepFailed { will_retry: false, .. } => Severity::High,
            InstallTaskEvent::StepFailed { .. } => Severity::Low,
            _ => Severity::Info,
        }
    }
}

/// Where one node-step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStepStatus {
    Running,
    Succeeded,
    /// Failed; `will_retry` says whether another attempt follows.
    Failed { will_retry: bool },
}

/// The node-steps of a task.
#[derive(Debug, Clone, Default)]
pub struct InstallTask {
    /// `(step_index, host_id)` → (status, attempts made so far).
    pub node_steps: BTreeMap<(u32, Uuid), (NodeStepStatus, u32)>,
    /// `(step_index, host_id)` → attempts that ended failed. An attempt cut
    /// short by a restart of OpsPilot has no end and is not counted, so the
    /// retry budget of a hook spans restarts without charging them.
    pub failures: BTreeMap<(u32, Uuid), u32>,
}

impl InstallTask {
    /// Whether the node-step succeeded already (a resumed runner skips it).
    pub fn succeeded(&self, step_index: u32, host_id: Uuid) -> bool {
        matches!(self.node_steps.get(&(step_index, host_id)), Some((NodeStepStatus::Succeeded, _)))
    }
    /// The attempt number the next run of the node-step gets.
    pub fn next_attempt(&self, step_index: u32, host_id: Uuid) -> u32 {
        self.node_steps.get(&(step_index, host_id)).map(|(_, n)| *n).unwrap_or(0)
    }
    /// How many attempts of the node-step ended failed so far.
    pub fn failed_attempts(&self, step_index: u32, host_id: Uuid) -> u32 {
        self.failures.get(&(step_index, host_id)).copied().unwrap_or(0)
    }
    /// Whether the node-step failed for good.
    pub fn failed_for_good(&self, step_index: u32, host_id: Uuid) -> bool {
        matches!(self.node_steps.get(&(step_index, host_id)), Some((NodeStepStatus::Failed { will_retry: false }, _)))
    }
}

impl Aggregate for InstallTask {
    type Command = InstallTaskCommand;
    type Event = InstallTaskEvent;
    const KIND: &'static str = "install_task";

    fn decide(&self, command: InstallTaskCommand) -> Result<Vec<InstallTaskEvent>, DomainError> {
        let done = |s: &NodeStep| DomainError::new(ErrorCode::InstallTaskStateInvalid, format!("{} on {} already succeeded", s.step_name, s.host_id));
        match command {
            InstallTaskCommand::StartStep { step, at } => {
                if self.succeeded(step.step_index, step.host_id) {
                    return Err(done(&step));
                }
                Ok(vec![InstallTaskEvent::StepStarted { step, started_at: at }])
            }
            InstallTaskCommand::SucceedStep { step, result } => {
                if self.succeeded(step.step_index, step.host_id) {
                    return Ok(vec![]);
                }
                Ok(vec![InstallTaskEvent::StepSucceeded { step, result }])
            }
            InstallTaskCommand::FailStep { step, result, error_key, will_retry } => {
                if self.succeeded(step.step_index, step.host_id) {
                    return Err(done(&step));
                }
                Ok(vec![InstallTaskEvent::StepFailed { step, result, error_key: error_key.key().into(), will_retry }])
            }
        }
    }

    fn evolve(mut self, event: &InstallTaskEvent) -> Self {
        let (step, status) = match event {
            InstallTaskEvent::StepStarted { step, .. } => (step, NodeStepStatus::Running),
            InstallTaskEvent::StepSucceeded { step, .. } => (step, NodeStepStatus::Succeeded),
            InstallTaskEvent::StepFailed { step, will_retry, .. } => (step, NodeStepStatus::Failed { will_retry: *will_retry }),
        };
        let entry = self.node_steps.entry((step.step_index, step.host_id)).or_insert((status, 0));
        entry.0 = status;
        entry.1 = entry.1.max(step.attempt + 1);
        if let InstallTaskEvent::StepFailed { step, .. } = event {
            *self.failures.entry((step.step_index, step.host_id)).or_insert(0) += 1;
        }
        self
    }
}

/// Reads the structured outputs of a hook's log line: `[LEVEL] key=value ...`.
/// Values run to the next space; a value may be double-quoted to hold spaces.
pub fn parse_output_line(line: &str) -> Option<(String, Vec<(String, String)>)> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (level, rest) = rest.split_once(']')?;
    if level.is_empty() || !level.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let mut pairs = Vec::new();
    let mut chars = rest.trim().chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim().to_string();
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let v: String = chars.by_ref().take_while(|c| *c != '"').collect();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            v
        } else {
            chars.by_ref().take_while(|c| *c != ' ').collect()
        };
        let valid_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if valid_key {
            pairs.push((key, value));
        }
    }
    Some((level.to_string(), pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn step(attempt: u32) -> NodeStep {
        NodeStep {
            environment_id: Uuid::nil(),
            task_id: Uuid::nil(),
            action: "install".into(),
            runtime_type: "compose".into(),
            manifest_version: "v1".into(),
            step_name: "install-compose.sh".into(),
            step_index: 2,
            host_id: Uuid::nil(),
            attempt,
        }
    }

    fn result() -> StepResult {
        let at = DateTime::<Utc>::default();
        StepResult { started_at: at, ended_at: at, duration_ms: 0, exit_code: Some(0), stderr_excerpt: String::new(), outputs: BTreeMap::new(), log_lines: 0 }
    }

    #[test]
    fn a_succeeded_node_step_is_never_started_again() {
        let history = vec![InstallTaskEvent::StepStarted { step: step(0), started_at: DateTime::default() }, InstallTaskEvent::StepSucceeded { step: step(0), result: result() }];
        given::<InstallTask>(history).when(InstallTaskCommand::StartStep { step: step(1), at: DateTime::default() }).then_expect_error(ErrorCode::InstallTaskStateInvalid);
    }

    #[test]
    fn retries_count_attempts() {
        let history = [
            InstallTaskEvent::StepStarted { step: step(0), started_at: DateTime::default() },
            InstallTaskEvent::StepFailed { step: step(0), result: result(), error_key: "script_hook_exec_failed".into(), will_retry: true },
        ];
        let t = InstallTask::fold(history.iter());
        assert_eq!(t.next_attempt(2, Uuid::nil()), 1);
        assert_eq!(t.failed_attempts(2, Uuid::nil()), 1);
        assert!(!t.failed_for_good(2, Uuid::nil()));
        assert!(!t.succeeded(2, Uuid::nil()));
    }

    #[test]
    fn an_attempt_cut_short_by_a_restart_is_not_a_failure() {
        let history = [
            InstallTaskEvent::StepStarted { step: step(0), started_at: DateTime::default() },
            InstallTaskEvent::StepFailed { step: step(0), result: result(), error_key: "script_hook_exec_failed".into(), will_retry: true },
            InstallTaskEvent::StepStarted { step: step(1), started_at: DateTime::default() },
        ];
        let t = InstallTask::fold(history.iter());
        assert_eq!(t.next_attempt(2, Uuid::nil()), 2, "attempt numbers keep counting");
        assert_eq!(t.failed_attempts(2, Uuid::nil()), 1, "only the attempt that ended failed counts against the retries");
    }

    #[test]
    fn output_lines_are_parsed() {
        let (level, pairs) = parse_output_line("[INFO] check=vip_bind result=ok active_node=10.0.0.11").unwrap();
        assert_eq!(level, "INFO");
        assert_eq!(pairs, vec![("check".into(), "vip_bind".into()), ("result".into(), "ok".into()), ("active_node".into(), "10.0.0.11".into())]);
        let (_, pairs) = parse_output_line(r#"[WARN] summary="disk low" free_gb=3"#).unwrap();
        assert_eq!(pairs, vec![("summary".into(), "disk low".into()), ("free_gb".into(), "3".into())]);
        assert!(parse_output_line("plain text").is_none());
    }
}
