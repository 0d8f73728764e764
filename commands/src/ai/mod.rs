//! The AI command center: a sentence becomes the same commands as the
//! console — parameter resolution, a mandatory preview, the user's explicit
//! confirmation, the inbox — issued with the user's own identity and
//! permissions and `source=ai_command_center`. Every step is an event of the
//! session (`ai.*`); the session id is the correlation id of everything it
//! issues. What happens later to a release (decisions, outcomes) reaches the
//! session through the process manager (`follow.rs`), watched or not.

mod flows;
pub mod follow;
mod resolve;

use opspilot_domain::ai::intent::{self, Intent, Parsed};
use opspilot_domain::ai::messages::{text, Msg};
use opspilot_domain::ai::session::{AiSession, AiSessionCommand, AiSessionEvent, Pending, SessionLang};
use opspilot_domain::{stream_id_of, Aggregate, DomainError, ErrorCode, EventScope, Source};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{CommandContext, CommandError, Commands, Handled, Result};

/// The longest message a user may send.
pub const MAX_MESSAGE: usize = 2000;

/// A session's scope on the envelope: its project, so the audit log and the
/// timeline show it to whoever may see that project.
pub(crate) fn session_scope(s: &AiSession) -> EventScope {
    let mut scope = EventScope::resource("ai_session", s.id.map(|i| i.to_string()).unwrap_or_default());
    scope.project_id = s.project_id.map(|p| p.to_string());
    scope.team_id = s.team_id.map(|t| t.to_string());
    scope
}

/// Words that confirm what waits for confirmation.
fn affirmative(t: &str) -> bool {
    let t = t.trim().trim_end_matches(['!', '！', '.', '。']).to_lowercase();
    ["确认", "确认发布", "确认回滚", "确定", "是", "好", "好的", "可以", "提交", "提交审批", "执行", "yes", "y", "ok", "confirm", "go", "go ahead", "do it", "submit"].contains(&t.as_str())
}

impl Commands {
    /// The session as its owner sees it; anyone else is told it does not exist.
    pub async fn own_session(&self, ctx: &CommandContext, session_id: Uuid) -> Result<AiSession> {
        let (s, _) = self.load::<AiSession>(&stream_id_of::<AiSession>(session_id)).await?;
        let p = ctx.principal()?;
        if !s.exists() || s.owner != Some(p.user_id) {
            return Err(DomainError::new(ErrorCode::NotFound, format!("session {session_id} does not exist")).into());
        }
        Ok(s)
    }

    /// The context the session's commands run in: the user, the AI source,
    /// the session as correlation.
    fn ai_ctx(ctx: &CommandContext, session_id: Uuid) -> CommandContext {
        CommandContext { source: Source::AiCommandCenter, correlation_id: session_id, idempotency_key: None, ..ctx.clone() }
    }

    /// Opens a session for the caller, in `lang` (zh-CN by default) and the
    /// caller's project (the only one, or the one named).
    pub async fn start_ai_session(&self, ctx: &CommandContext, lang: Option<&str>, project: Option<&str>, title: Option<&str>) -> Result<Handled> {
        let p = ctx.principal()?.clone();
        let lang = lang.map(SessionLang::parse).transpose()?.unwrap_or_default();
        let project_id = match project {
            Some(name) => {
                let id = self.existing_project(name).await?;
                p.require_project(id)?;
                Some(id)
            }
            None if p.project_ids.len() == 1 => p.project_ids.iter().next().copied(),
            None => None,
        };
        let team_id = if p.team_ids.len() == 1 { p.team_ids.iter().next().copied() } else { None };
        let title = title.unwrap_or("").trim().to_string();
        opspilot_domain::text::check("title", &title, 200)?;
        let session_id = Uuid::new_v4();
        let ctx = Self::ai_ctx(ctx, session_id);
        let cmd = AiSessionCommand::Start { session_id, owner: p.user_id, project_id, team_id, lang, title };
        let mut scope = EventScope::resource("ai_session", session_id);
        scope.project_id = project_id.map(|i| i.to_string());
        scope.team_id = team_id.map(|i| i.to_string());
        self.execute::<AiSession>(&ctx, "ai.start", &stream_id_of::<AiSession>(session_id), &scope, |s| s.decide(cmd.clone()), |_| {
            json!({ "session_id": session_id, "lang": lang.as_str(), "project_id": project_id })
        })
        .await
    }

    /// Appends facts to the session.
    pub(crate) async fn note(&self, ctx: &CommandContext, s: &AiSession, events: Vec<AiSessionEvent>) -> Result<i64> {
        let id = s.id.expect("an existing session");
        let cmd = AiSessionCommand::Record(events);
        Ok(self.execute::<AiSession>(ctx, "ai.record", &stream_id_of::<AiSession>(id), &session_scope(s), |st| st.decide(cmd.clone()), |_| json!({})).await?.position)
    }

    /// Says `msg` in the session's language.
    pub(crate) async fn say(&self, ctx: &CommandContext, s: &AiSession, msg: Msg<'_>, choices: Vec<String>, data: Value) -> Result<i64> {
        let id = s.id.expect("an existing session");
        self.note(ctx, s, vec![AiSessionEvent::AssistantMessage { session_id: id, text: text(s.lang, &msg), choices, data }]).await
    }

    /// Records a refusal (audited) and tells the user why, with the dictionary's hint.
    pub(crate) async fn refuse(&self, ctx: &CommandContext, s: &AiSession, intent: &str, e: &CommandError) -> Result<i64> {
        let id = s.id.expect("an existing session");
        let (key, said) = said_error(s.lang, e);
        self.note(ctx, s, vec![AiSessionEvent::ActionRefused { session_id: id, intent: intent.into(), error_key: key.into(), text: said }]).await
    }

    /// One user message: recorded, understood, and acted on.
    pub async fn ai_send(&self, ctx: &CommandContext, session_id: Uuid, message: &str) -> Result<Handled> {
        opspilot_domain::text::check("text", message, MAX_MESSAGE)?;
        if message.trim().is_empty() {
            return Err(DomainError::validation("text", "say something").into());
        }
        let s = self.own_session(ctx, session_id).await?;
        let ctx = Self::ai_ctx(ctx, session_id);
        let before = s.events as i64;
        self.note(&ctx, &s, vec![AiSessionEvent::UserMessage { session_id, text: message.to_string() }]).await?;
        let s = self.own_session(&ctx, session_id).await?;
        if let Some(p) = s.pending.as_ref().filter(|_| affirmative(message)) {
            let reference = p.reference().to_string();
            Box::pin(self.confirm_pending(&ctx, &s, &reference)).await?;
        } else {
            let parsed = intent::parse(message);
            Box::pin(self.act(&ctx, &s, parsed)).await?;
        }
        self.session_reply(session_id, before).await
    }

    /// The user confirms `reference` (a preview_ref, or the rollback's
    /// confirm_ref). Confirming the same reference again applies nothing.
    pub async fn ai_confirm(&self, ctx: &CommandContext, session_id: Uuid, reference: &str) -> Result<Handled> {
        opspilot_domain::text::check("preview_ref", reference, 200)?;
        let s = self.own_session(ctx, session_id).await?;
        let ctx = Self::ai_ctx(ctx, session_id);
        let before = s.events as i64;
        Box::pin(self.confirm_pending(&ctx, &s, reference)).await?;
        self.session_reply(session_id, before).await
    }

    /// The session's events from its `after`-th on, as the answer of a call.
    async fn session_reply(&self, session_id: Uuid, after: i64) -> Result<Handled> {
        let events = self.store.read_stream(&stream_id_of::<AiSession>(session_id)).await?;
        let position = events.last().map(|e| e.position).unwrap_or_default();
        let (s, _) = self.load::<AiSession>(&stream_id_of::<AiSession>(session_id)).await?;
        let new: Vec<Value> = events
            .iter()
            .filter(|e| e.stream_version > after)
            .map(|e| json!({ "position": e.position, "action": e.action, "detail": e.detail, "occurred_at": e.occurred_at }))
            .collect();
        Ok(Handled { result: json!({ "session_id": session_id, "events": new, "context": context(&s) }), position })
    }

    /// Acts on a parsed sentence: answers a question asked before, or starts a new intent.
    async fn act(&self, ctx: &CommandContext, s: &AiSession, parsed: Parsed) -> Result<()> {
        let id = s.id.expect("session");
        let mut parsed = parsed;
        // An answer to a question, or a change to the draft ("镜像改成 v2"), continues that intent.
        let continues = parsed.intent == Intent::Unknown && parsed.guard.is_none();
        let mut base: Option<Value> = None;
        if continues {
            let again = intent::parse_fragment(&parsed);
            if let Some((asked, partial)) = s.asking.clone().filter(|_| again.is_some()) {
                parsed.intent = match asked.as_str() {
                    "rollback" => Intent::Rollback,
                    "status" => Intent::Status,
                    _ => Intent::Release,
                };
                base = Some(partial);
                parsed.params = again.unwrap_or_default();
            } else if let (Some(draft), Some(change)) = (s.draft.clone(), again) {
                parsed.intent = Intent::Release;
                base = Some(draft);
                parsed.params = change;
            }
        }
        let detected = AiSessionEvent::IntentDetected {
            session_id: id,
            intent: parsed.intent.as_str().into(),
            params: serde_json::to_value(&parsed.params).expect("params serialize"),
            missing: parsed.missing.iter().map(|m| m.to_string()).collect(),
            confidence: parsed.confidence,
            engine: "builtin".into(),
        };
        self.note(ctx, s, vec![detected]).await?;
        match parsed.intent {
            Intent::Unknown if parsed.guard.is_some() => {
                let refused = DomainError::new(ErrorCode::PermissionDenied, "secret material is never shown; ask for its reference id").into();
                self.refuse(ctx, s, "secret_material", &refused).await?;
                self.say(ctx, s, Msg::SecretRefused, vec![], Value::Null).await?;
            }
            Intent::Unknown => {
                self.say(ctx, s, Msg::Unknown, vec![], Value::Null).await?;
            }
            Intent::Help => {
                self.say(ctx, s, Msg::Help, vec![], Value::Null).await?;
            }
            Intent::Release => Box::pin(self.release_flow(ctx, s, &parsed.params, base)).await?,
            Intent::Rollback => Box::pin(self.rollback_flow(ctx, s, &parsed.params, base)).await?,
            Intent::Status => Box::pin(self.status_flow(ctx, s, &parsed.params)).await?,
            Intent::MyApprovals => Box::pin(self.my_approvals_flow(ctx, s)).await?,
            Intent::Approve | Intent::Reject => Box::pin(self.decide_flow(ctx, s, parsed.intent, &parsed.params)).await?,
            Intent::InstallPreview => Box::pin(self.install_flow(ctx, s, &parsed.params)).await?,
            Intent::Explain => Box::pin(self.explain_flow(ctx, s, &parsed.params)).await?,
            Intent::Cancel => Box::pin(self.cancel_flow(ctx, s, &parsed.params)).await?,
        }
        Ok(())
    }

    /// Confirms what waits, or takes the failure branch the seed describes.
    async fn confirm_pending(&self, ctx: &CommandContext, s: &AiSession, reference: &str) -> Result<()> {
        let id = s.id.expect("session");
        if s.confirmed.contains_key(reference) {
            // Confirmed before: nothing runs again; the session already follows what it started.
            return Ok(());
        }
        let pending = match s.pending.clone() {
            Some(p) if p.reference() == reference => p,
            other => {
                // Nothing previewed, or another preview than the one waiting.
                let code = if other.is_none() { ErrorCode::PreviewRequired } else { ErrorCode::PreviewMismatch };
                self.refuse(ctx, s, "confirm", &DomainError::new(code, format!("{reference} is not the preview waiting for confirmation")).into()).await?;
                let msg = if code == ErrorCode::PreviewRequired { Msg::PreviewRequired } else { Msg::PreviewMismatch };
                self.say(ctx, s, msg, vec![], Value::Null).await?;
                return Box::pin(self.repreview(ctx, s)).await;
            }
        };
        if let Pending::Release { expires_at, .. } | Pending::Install { expires_at, .. } = &pending {
            if *expires_at <= ctx.now {
                self.refuse(ctx, s, "confirm", &DomainError::new(ErrorCode::PreviewExpired, format!("{reference} expired at {expires_at}")).into()).await?;
                self.say(ctx, s, Msg::PreviewExpired, vec![], Value::Null).await?;
                return Box::pin(self.repreview(ctx, s)).await;
            }
        }
        let release_id = match &pending {
            Pending::Release { release_id, .. } | Pending::Rollback { release_id, .. } => Some(*release_id),
            Pending::Install { .. } => None,
        };
        let cmd = AiSessionCommand::Confirm { reference: reference.to_string(), release_id };
        self.execute::<AiSession>(ctx, "ai.confirm", &stream_id_of::<AiSession>(id), &session_scope(s), |st| st.decide(cmd.clone()), |_| json!({})).await?;
        let s = self.own_session(ctx, id).await?;
        // The apply is idempotent per reference too: a retried confirmation after a crash applies once.
        let actx = CommandContext { idempotency_key: Some(format!("ai:{id}:{reference}")), ..ctx.clone() };
        match pending {
            Pending::Release { release_id, .. } => Box::pin(self.apply_confirmed(&actx, &s, release_id, reference)).await,
            Pending::Rollback { release_id, .. } => Box::pin(self.rollback_confirmed(&actx, &s, release_id)).await,
            Pending::Install { environment_id, .. } => Box::pin(self.install_confirmed(&actx, &s, environment_id, reference)).await,
        }
    }
}

/// An error as the session says it: its dictionary key, and
/// `key (code): detail. hint` in the session's language.
pub(crate) fn said_error(lang: SessionLang, e: &CommandError) -> (&'static str, String) {
    match e {
        CommandError::Domain(d) => (d.code.key(), describe(lang, d.code, &d.detail)),
        CommandError::Store(_) => (ErrorCode::InternalError.key(), describe(lang, ErrorCode::InternalError, "storage failure")),
    }
}

/// `key (code): detail. hint`, the hint in `lang`.
pub(crate) fn describe(lang: SessionLang, code: ErrorCode, detail: &str) -> String {
    format!("{} ({}): {detail}. {}", code.key(), code.entry().code, code.hint(lang.dictionary()))
}

/// The seed's runtime context keys of a session.
pub fn context(s: &AiSession) -> Value {
    json!({
        "release_draft_id": s.release_draft_id, "preview_ref": s.preview_ref, "preview_expires_at": s.preview_expires_at,
        "approval_ticket": s.approval_ticket, "release_id": s.release_id, "environment_id": s.environment_id,
        "project_id": s.project_id, "team_id": s.team_id, "pending": s.pending, "draft": s.draft,
        "lang": s.lang.as_str(), "owner": s.owner,
    })
}
