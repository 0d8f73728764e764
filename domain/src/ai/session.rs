//! The AI session aggregate: one conversation of one user, recorded as the
//! seed's event sequence (`intent_detected` … `timeline_synced`) beside the
//! user's and the assistant's messages. The session holds the runtime
//! context keys, so a session reopened later (or on another replica) knows
//! where it stands; it confirms a preview at most once, and it takes each
//! observed release or ticket event once, by log position.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode, Lang};
use crate::event::{Aggregate, DomainEvent, EventStatus, Severity};

/// The language a session answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SessionLang {
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl SessionLang {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "zh-CN" | "zh" | "zh-cn" => Ok(SessionLang::ZhCn),
            "en" | "en-US" | "en-us" => Ok(SessionLang::En),
            _ => Err(DomainError::validation("lang", "zh-CN or en")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SessionLang::ZhCn => "zh-CN",
            SessionLang::En => "en",
        }
    }
    pub fn dictionary(self) -> Lang {
        match self {
            SessionLang::ZhCn => Lang::ZhCn,
            SessionLang::En => Lang::En,
        }
    }
}

/// What the user is about to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pending {
    /// A release preview: apply it (`release` scope).
    Release { preview_ref: String, release_id: Uuid, expires_at: DateTime<Utc> },
    /// A rollback of an applied release to the one before it.
    Rollback { release_id: Uuid, confirm_ref: String },
    /// An install preview of an environment.
    Install { preview_ref: String, environment_id: Uuid, expires_at: DateTime<Utc> },
}

impl Pending {
    /// The reference the user confirms.
    pub fn reference(&self) -> &str {
        match self {
            Pending::Release { preview_ref, .. } | Pending::Install { preview_ref, .. } => preview_ref,
            Pending::Rollback { confirm_ref, .. } => confirm_ref,
        }
    }
}

/// What a session can be asked to do.
#[derive(Debug, Clone)]
pub enum AiSessionCommand {
    Start { session_id: Uuid, owner: Uuid, project_id: Option<Uuid>, team_id: Option<Uuid>, lang: SessionLang, title: String },
    /// Facts the command layer observed while serving the user (messages,
    /// intents, resolutions, preview results, answers).
    Record(Vec<AiSessionEvent>),
    /// The user confirms `reference`: refused unless it is what waits for
    /// confirmation; a reference confirmed before asks for nothing.
    Confirm { reference: String, release_id: Option<Uuid> },
    /// A release or ticket event seen by the process manager at `position`.
    Observe { position: i64, events: Vec<AiSessionEvent> },
}

/// What a session records (`ai.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum AiSessionEvent {
    #[serde(rename = "ai.session_started")]
    Started { session_id: Uuid, owner: Uuid, project_id: Option<Uuid>, team_id: Option<Uuid>, lang: SessionLang, title: String },
    #[serde(rename = "ai.user_message")]
    UserMessage { session_id: Uuid, text: String },
    #[serde(rename = "ai.assistant_message")]
    AssistantMessage {
        session_id: Uuid,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        choices: Vec<String>,
        #[serde(default, skip_serializing_if = "Value::is_null")]
        data: Value,
    },
    #[serde(rename = "ai.intent_detected")]
    IntentDetected { session_id: Uuid, intent: String, params: Value, missing: Vec<String>, confidence: f32, engine: String },
    #[serde(rename = "ai.param_resolution")]
    ParamResolution {
        session_id: Uuid,
        intent: String,
        resolved: Value,
        missing: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        question: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        choices: Vec<String>,
    },
    #[serde(rename = "ai.preview_started")]
    PreviewStarted { session_id: Uuid, kind: String, draft: Value },
    #[serde(rename = "ai.preview_result")]
    PreviewResult {
        session_id: Uuid,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preview_ref: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
        checks_passed: usize,
        blocking: usize,
        warnings: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_key: Option<String>,
        text: String,
    },
    #[serde(rename = "ai.user_confirmation_required")]
    ConfirmationRequired { session_id: Uuid, pending: Pending, text: String },
    #[serde(rename = "ai.apply_requested")]
    ApplyRequested { session_id: Uuid, reference: String, #[serde(default, skip_serializing_if = "Option::is_none")] release_id: Option<Uuid>, operation: String },
    #[serde(rename = "ai.approval_required")]
    ApprovalRequired { session_id: Uuid, release_id: Uuid, approval_ticket: String, text: String },
    #[serde(rename = "ai.approval_status_changed")]
    ApprovalStatusChanged {
        session_id: Uuid,
        release_id: Uuid,
        approval_ticket: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        text: String,
    },
    #[serde(rename = "ai.release_status_changed")]
    ReleaseStatusChanged {
        session_id: Uuid,
        release_id: Uuid,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_key: Option<String>,
        text: String,
    },
    #[serde(rename = "ai.timeline_synced")]
    TimelineSynced { session_id: Uuid, release_id: Uuid, status: String },
    /// A guard rail or a refused action: audited like every refusal.
    #[serde(rename = "ai.action_refused")]
    ActionRefused { session_id: Uuid, intent: String, error_key: String, text: String },
    /// The user dropped the draft, question or confirmation waiting.
    #[serde(rename = "ai.cancelled")]
    Cancelled { session_id: Uuid, text: String },
    #[serde(rename = "ai.observed")]
    Observed { session_id: Uuid, position: i64 },
}

impl DomainEvent for AiSessionEvent {
    fn status(&self) -> EventStatus {
        match self {
            AiSessionEvent::ActionRefused { .. } => EventStatus::Warning,
            AiSessionEvent::PreviewResult { ok: false, .. } => EventStatus::Failed,
            AiSessionEvent::ReleaseStatusChanged { status, .. } if status == "failed" || status == "rollback_failed" => EventStatus::Failed,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            AiSessionEvent::ActionRefused { .. } => Severity::Medium,
            _ => Severity::Info,
        }
    }
}

/// A session's state: its owner and the runtime context keys of the seed.
#[derive(Debug, Clone, Default)]
pub struct AiSession {
    pub id: Option<Uuid>,
    pub owner: Option<Uuid>,
    pub lang: SessionLang,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub title: String,
    /// The release the current draft was previewed as.
    pub release_draft_id: Option<Uuid>,
    pub preview_ref: Option<String>,
    pub preview_expires_at: Option<DateTime<Utc>>,
    pub approval_ticket: Option<String>,
    pub release_id: Option<Uuid>,
    pub environment_id: Option<Uuid>,
    /// The resolved parameters of the draft being worked on, for a re-preview.
    pub draft: Option<Value>,
    /// A question waiting for an answer: the intent it is for and what it has.
    pub asking: Option<(String, Value)>,
    /// What waits for the user's confirmation.
    pub pending: Option<Pending>,
    /// Confirmed references and the release each one applied.
    pub confirmed: BTreeMap<String, Option<Uuid>>,
    /// The last release status seen, by release.
    pub release_status: BTreeMap<Uuid, String>,
    /// The last log position observed by the process manager.
    pub observed: i64,
    pub events: usize,
}

impl AiSession {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }
}

impl Aggregate for AiSession {
    type Command = AiSessionCommand;
    type Event = AiSessionEvent;
    const KIND: &'static str = "ai_session";

    fn decide(&self, command: AiSessionCommand) -> Result<Vec<AiSessionEvent>, DomainError> {
        match command {
            AiSessionCommand::Start { session_id, owner, project_id, team_id, lang, title } => {
                if self.exists() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, "session already started"));
                }
                Ok(vec![AiSessionEvent::Started { session_id, owner, project_id, team_id, lang, title }])
            }
            AiSessionCommand::Record(events) => {
                self.require()?;
                // An approval already recorded (e.g. by the follower) is not recorded twice.
                Ok(events
                    .into_iter()
                    .filter(|e| !matches!(e, AiSessionEvent::ApprovalRequired { approval_ticket, .. } if self.approval_ticket.as_ref() == Some(approval_ticket)))
                    .collect())
            }
            AiSessionCommand::Confirm { reference, release_id } => {
                let id = self.require()?;
                if self.confirmed.contains_key(&reference) {
                    return Ok(vec![]);
                }
                let operation = match &self.pending {
                    Some(p) if p.reference() == reference => match p {
                        Pending::Release { .. } => "apply",
                        Pending::Rollback { .. } => "rollback",
                        Pending::Install { .. } => "install",
                    },
                    _ => return Err(DomainError::new(ErrorCode::PreviewMismatch, format!("{reference} is not what waits for confirmation in this session"))),
                };
                Ok(vec![AiSessionEvent::ApplyRequested { session_id: id, reference, release_id, operation: operation.into() }])
            }
            AiSessionCommand::Observe { position, events } => {
                let id = self.require()?;
                if position <= self.observed {
                    return Ok(vec![]);
                }
                let mut out: Vec<AiSessionEvent> = events
                    .into_iter()
                    .filter(|e| match e {
                        AiSessionEvent::ApprovalRequired { approval_ticket, .. } => self.approval_ticket.as_ref() != Some(approval_ticket),
                        AiSessionEvent::ReleaseStatusChanged { release_id, status, .. } => self.release_status.get(release_id) != Some(status),
                        _ => true,
                    })
                    .collect();
                // Nothing new (the session recorded it itself): nothing to remember either.
                if !out.is_empty() {
                    out.push(AiSessionEvent::Observed { session_id: id, position });
                }
                Ok(out)
            }
        }
    }

    fn evolve(mut self, event: &AiSessionEvent) -> Self {
        self.events += 1;
        match event {
            AiSessionEvent::Started { session_id, owner, project_id, team_id, lang, title } => {
                self.id = Some(*session_id);
                self.owner = Some(*owner);
                self.project_id = *project_id;
                self.team_id = *team_id;
                self.lang = *lang;
                self.title = title.clone();
            }
            AiSessionEvent::ParamResolution { intent, resolved, missing, .. } => {
                if missing.is_empty() {
                    self.asking = None;
                    if intent == "release" {
                        self.draft = Some(resolved.clone());
                    }
                } else {
                    self.asking = Some((intent.clone(), resolved.clone()));
                }
            }
            AiSessionEvent::PreviewResult { ok: true, release_id, environment_id, preview_ref, expires_at, .. } => {
                if release_id.is_some() {
                    self.release_draft_id = *release_id;
                }
                if environment_id.is_some() {
                    self.environment_id = *environment_id;
                }
                self.preview_ref = preview_ref.clone();
                self.preview_expires_at = *expires_at;
            }
            AiSessionEvent::ConfirmationRequired { pending, .. } => self.pending = Some(pending.clone()),
            AiSessionEvent::ApplyRequested { reference, release_id, .. } => {
                self.confirmed.insert(reference.clone(), *release_id);
                self.pending = None;
                if release_id.is_some() {
                    self.release_id = *release_id;
                }
            }
            AiSessionEvent::ApprovalRequired { release_id, approval_ticket, .. } => {
                self.release_id = Some(*release_id);
                self.approval_ticket = Some(approval_ticket.clone());
            }
            AiSessionEvent::ReleaseStatusChanged { release_id, status, .. } => {
                self.release_status.insert(*release_id, status.clone());
            }
            AiSessionEvent::Observed { position, .. } => self.observed = *position,
            AiSessionEvent::Cancelled { .. } => {
                self.pending = None;
                self.asking = None;
                self.draft = None;
            }
            AiSessionEvent::AssistantMessage { .. }
            | AiSessionEvent::UserMessage { .. }
            | AiSessionEvent::IntentDetected { .. }
            | AiSessionEvent::PreviewStarted { .. }
            | AiSessionEvent::PreviewResult { ok: false, .. }
            | AiSessionEvent::ApprovalStatusChanged { .. }
            | AiSessionEvent::TimelineSynced { .. }
            | AiSessionEvent::ActionRefused { .. } => {}
        }
        self
    }
}

impl AiSession {
    fn require(&self) -> Result<Uuid, DomainError> {
        self.id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, "session does not exist"))
    }

    /// Whether a question or a confirmation waits for the user.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some() || self.asking.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    const S: Uuid = Uuid::from_u128(1);
    const R: Uuid = Uuid::from_u128(2);

    fn started() -> AiSessionEvent {
        AiSessionEvent::Started { session_id: S, owner: Uuid::from_u128(9), project_id: None, team_id: None, lang: SessionLang::ZhCn, title: "t".into() }
    }

    fn waiting() -> Vec<AiSessionEvent> {
        let pending = Pending::Release { preview_ref: "prv-1".into(), release_id: R, expires_at: Utc::now() };
        vec![started(), AiSessionEvent::ConfirmationRequired { session_id: S, pending, text: String::new() }]
    }

    #[test]
    fn a_preview_is_confirmed_once_and_only_the_one_waiting() {
        let asked = AiSessionEvent::ApplyRequested { session_id: S, reference: "prv-1".into(), release_id: Some(R), operation: "apply".into() };
        given::<AiSession>(waiting()).when(AiSessionCommand::Confirm { reference: "prv-1".into(), release_id: Some(R) }).then_expect_events(vec![asked.clone()]);
        let mut done = waiting();
        done.push(asked);
        given::<AiSession>(done).when(AiSessionCommand::Confirm { reference: "prv-1".into(), release_id: Some(R) }).then_expect_events(vec![]);
        let e = AiSession::fold(&waiting()).decide(AiSessionCommand::Confirm { reference: "prv-0".into(), release_id: None }).unwrap_err();
        assert_eq!(e.code, ErrorCode::PreviewMismatch);
    }

    #[test]
    fn an_observed_position_is_taken_once_and_a_status_is_not_repeated() {
        let changed = AiSessionEvent::ReleaseStatusChanged { session_id: S, release_id: R, status: "applied".into(), error_key: None, text: String::new() };
        let first = AiSession::fold(&[started()]).decide(AiSessionCommand::Observe { position: 7, events: vec![changed.clone()] }).unwrap();
        assert_eq!(first.len(), 2);
        let mut history = vec![started()];
        history.extend(first);
        let s = AiSession::fold(&history);
        assert!(s.decide(AiSessionCommand::Observe { position: 7, events: vec![changed.clone()] }).unwrap().is_empty());
        assert!(s.decide(AiSessionCommand::Observe { position: 8, events: vec![changed] }).unwrap().is_empty(), "a status already said is not said again");
    }
}
