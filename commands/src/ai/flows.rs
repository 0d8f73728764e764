//! What the session does for each intent. Every mutation goes through the
//! same command the console uses, with the user's own permissions; a
//! refusal is recorded in the session (`ai.action_refused`) with the
//! dictionary's hint, and the user gets the next step.

use opspilot_domain::ai::intent::{Intent, Params};
use opspilot_domain::ai::messages::Msg;
use opspilot_domain::ai::session::{AiSession, AiSessionEvent, Pending, SessionLang};
use opspilot_domain::approval::RiskLevel;
use opspilot_domain::{DomainError, ErrorCode, DICTIONARY};
use opspilot_projections::page::PageRequest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::resolve::{same_env, SeenService};
use crate::releases::{ApplyRequest, PreviewRequest};
use crate::{CommandContext, CommandError, Commands, Result};

fn read<T>(r: std::result::Result<T, opspilot_projections::ReadError>) -> Result<T> {
    r.map_err(|e| match e {
        opspilot_projections::ReadError::Refused(d) => CommandError::Domain(d),
        opspilot_projections::ReadError::Store(s) => CommandError::Store(s),
    })
}

fn zh(s: &AiSession) -> bool {
    s.lang == SessionLang::ZhCn
}

/// A draft: the release parameters resolved so far (names, as the catalog spells them).
#[derive(Debug, Clone, Default)]
struct Draft {
    service_id: Option<String>,
    target_id: Option<String>,
    env: Option<String>,
    strategy: Option<String>,
    variables: BTreeMap<String, String>,
    release_id: Option<String>,
}

impl Draft {
    fn from_value(v: Option<Value>) -> Draft {
        let v = v.unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let variables = v.get("variables").and_then(|x| serde_json::from_value(x.clone()).ok()).unwrap_or_default();
        Draft { service_id: text("service_id"), target_id: text("target_id"), env: text("env"), strategy: text("strategy"), variables, release_id: text("release_id") }
    }
    /// What the sentence says overrides what the draft had; a new service or env drops the target.
    fn overlay(mut self, p: &Params) -> Draft {
        if p.service_id.is_some() && p.service_id != self.service_id {
            self.service_id = p.service_id.clone();
            self.target_id = None;
        }
        if p.env.is_some() && p.env != self.env {
            self.env = p.env.clone();
            self.target_id = None;
        }
        if p.target_id.is_some() {
            self.target_id = p.target_id.clone();
        }
        if p.strategy.is_some() {
            self.strategy = p.strategy.clone();
        }
        self.variables.extend(p.variables.clone());
        if p.release_id.is_some() {
            self.release_id = p.release_id.clone();
        }
        self
    }
    fn to_value(&self) -> Value {
        json!({ "service_id": self.service_id, "target_id": self.target_id, "env": self.env, "strategy": self.strategy, "variables": self.variables, "release_id": self.release_id })
    }
}

/// What a resolution still lacks: the API name, the question and the choices.
struct Ask {
    missing: &'static str,
    question: (&'static str, &'static str),
    choices: Vec<String>,
}

impl Commands {
    /// The service a draft names, or the question to ask.
    async fn resolve_service(&self, ctx: &CommandContext, d: &Draft) -> Result<std::result::Result<SeenService, Ask>> {
        let services = self.seen_services(ctx.principal()?).await?;
        let found = d.service_id.as_ref().and_then(|n| services.iter().find(|s| s.name.eq_ignore_ascii_case(n)));
        Ok(match found {
            Some(s) => Ok(s.clone()),
            None => Err(Ask { missing: "service_id", question: ("哪个服务？", "which service?"), choices: services.iter().take(10).map(|s| s.name.clone()).collect() }),
        })
    }

    /// Records the resolution; asks when something is missing. True when complete.
    async fn resolution(&self, ctx: &CommandContext, s: &AiSession, intent: &str, d: &Draft, ask: Option<Ask>) -> Result<bool> {
        let id = s.id.expect("session");
        let (missing, question, choices) = match &ask {
            Some(a) => (vec![a.missing.to_string()], Some(if zh(s) { a.question.0 } else { a.question.1 }.to_string()), a.choices.clone()),
            None => (vec![], None, vec![]),
        };
        let event = AiSessionEvent::ParamResolution { session_id: id, intent: intent.into(), resolved: d.to_value(), missing, question: question.clone(), choices: choices.clone() };
        self.note(ctx, s, vec![event]).await?;
        if let Some(q) = question {
            self.say(ctx, s, Msg::Ask { what: &q }, choices, Value::Null).await?;
            return Ok(false);
        }
        Ok(true)
    }

    pub(super) async fn release_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params, base: Option<Value>) -> Result<()> {
        let mut d = Draft::from_value(base).overlay(p);
        let service = match self.resolve_service(ctx, &d).await? {
            Ok(svc) => svc,
            Err(ask) => {
                self.resolution(ctx, s, "release", &d, Some(ask)).await?;
                return Ok(());
            }
        };
        d.service_id = Some(service.name.clone());
        let targets = self.seen_targets(&service).await?;
        let candidates: Vec<_> = targets
            .iter()
            .filter(|t| d.target_id.as_ref().is_none_or(|n| t.name.eq_ignore_ascii_case(n)))
            .filter(|t| d.env.as_ref().is_none_or(|e| same_env(&t.env, e)))
            .collect();
        let ask = match candidates.as_slice() {
            [one] => {
                d.target_id = Some(one.name.clone());
                d.env = Some(one.env.clone());
                None
            }
            [] | [_, _, ..] if d.env.is_none() => {
                let mut envs: Vec<String> = targets.iter().map(|t| t.env.clone()).collect();
                envs.dedup();
                Some(Ask { missing: "env", question: ("发布到哪个环境？", "to which environment?"), choices: envs })
            }
            _ => Some(Ask {
                missing: "target_id",
                question: ("发布到哪个目标？", "to which target?"),
                choices: targets.iter().filter(|t| d.env.as_ref().is_none_or(|e| same_env(&t.env, e))).map(|t| t.name.clone()).collect(),
            }),
        };
        if self.resolution(ctx, s, "release", &d, ask).await? {
            let s = self.own_session(ctx, s.id.expect("session")).await?;
            Box::pin(self.preview_draft(ctx, &s)).await?;
        }
        Ok(())
    }

    /// Previews the session's draft and asks for confirmation.
    pub(super) async fn preview_draft(&self, ctx: &CommandContext, s: &AiSession) -> Result<()> {
        let id = s.id.expect("session");
        let d = Draft::from_value(s.draft.clone());
        self.note(ctx, s, vec![AiSessionEvent::PreviewStarted { session_id: id, kind: "release".into(), draft: d.to_value() }]).await?;
        let req = PreviewRequest {
            service: d.service_id.clone().unwrap_or_default(),
            target: d.target_id.clone().unwrap_or_default(),
            env: d.env.clone().unwrap_or_default(),
            strategy: d.strategy.clone(),
            variables: d.variables.clone(),
        };
        match Box::pin(self.preview_release(ctx, &req)).await {
            Ok(h) => {
                let r = &h.result;
                let release_id = r["release_id"].as_str().and_then(|x| Uuid::parse_str(x).ok()).expect("a preview names its release");
                let preview_ref = r["preview_ref"].as_str().unwrap_or_default().to_string();
                let expires_at = serde_json::from_value(r["expires_at"].clone()).unwrap_or(ctx.now);
                let warnings: Vec<String> = serde_json::from_value(r["warnings"].clone()).unwrap_or_default();
                let passed = r["checks"].as_array().map(|c| c.len()).unwrap_or_default();
                let risk = r["risk_level"].as_str().and_then(|x| RiskLevel::parse(x).ok()).unwrap_or(RiskLevel::Medium);
                let approval = self.approval_policy.requires(&req.env, risk);
                let ok = Msg::PreviewOk { passed, blocking: 0, approval };
                let result = AiSessionEvent::PreviewResult {
                    session_id: id, ok: true, release_id: Some(release_id), environment_id: None, preview_ref: Some(preview_ref.clone()),
                    expires_at: Some(expires_at), checks_passed: passed, blocking: 0, warnings, error_key: None, text: opspilot_domain::ai::messages::text(s.lang, &ok),
                };
                let pending = Pending::Release { preview_ref, release_id, expires_at };
                let confirm = AiSessionEvent::ConfirmationRequired { session_id: id, pending, text: opspilot_domain::ai::messages::text(s.lang, &ok) };
                self.note(ctx, s, vec![result, confirm]).await?;
            }
            Err(e) => {
                self.note(ctx, s, vec![preview_failed(s, &e)]).await?;
            }
        }
        Ok(())
    }

    /// Back to the preview step (the seed's failure branches).
    pub(super) async fn repreview(&self, ctx: &CommandContext, s: &AiSession) -> Result<()> {
        let s = self.own_session(ctx, s.id.expect("session")).await?;
        if s.draft.is_some() {
            Box::pin(self.preview_draft(ctx, &s)).await
        } else {
            self.say(ctx, &s, Msg::Ask { what: if zh(&s) { "要发布哪个服务到哪个环境？" } else { "which service, to which environment?" } }, vec![], Value::Null).await.map(drop)
        }
    }

    pub(super) async fn apply_confirmed(&self, ctx: &CommandContext, s: &AiSession, release_id: Uuid, reference: &str) -> Result<()> {
        let d = Draft::from_value(s.draft.clone());
        let params = PreviewRequest {
            service: d.service_id.unwrap_or_default(),
            target: d.target_id.unwrap_or_default(),
            env: d.env.unwrap_or_default(),
            strategy: d.strategy,
            variables: d.variables,
        };
        match Box::pin(self.apply_release(ctx, &ApplyRequest { preview_ref: Some(reference.to_string()), params })).await {
            Ok(h) => self.after_submit(ctx, s, release_id, &h.result).await,
            Err(e) => {
                self.refuse(ctx, s, "apply", &e).await?;
                let branch = match e.code() {
                    ErrorCode::PreviewExpired => Some(Msg::PreviewExpired),
                    ErrorCode::PreviewMismatch => Some(Msg::PreviewMismatch),
                    ErrorCode::PreviewRequired => Some(Msg::PreviewRequired),
                    _ => None,
                };
                if let Some(msg) = branch {
                    self.say(ctx, s, msg, vec![], Value::Null).await?;
                    Box::pin(self.repreview(ctx, s)).await?;
                }
                Ok(())
            }
        }
    }

    /// After an apply or rollback was accepted: the ticket it waits for, if any.
    async fn after_submit(&self, ctx: &CommandContext, s: &AiSession, release_id: Uuid, result: &Value) -> Result<()> {
        if let Some(ticket) = result["approval_ticket"].as_str() {
            let id = s.id.expect("session");
            let text = opspilot_domain::ai::messages::text(s.lang, &Msg::ApprovalPending { ticket });
            self.note(ctx, s, vec![AiSessionEvent::ApprovalRequired { session_id: id, release_id, approval_ticket: ticket.into(), text }]).await?;
        }
        Ok(())
    }

    pub(super) async fn rollback_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params, base: Option<Value>) -> Result<()> {
        let id = s.id.expect("session");
        let mut d = Draft::from_value(base).overlay(p);
        let principal = ctx.principal()?.clone();
        let release = match d.release_id.as_deref().and_then(|r| Uuid::parse_str(r).ok()) {
            Some(r) => read(opspilot_projections::releases::get(self.store.pool(), &principal, r).await)?.map(|v| (v.id, v.env)),
            None => {
                let service = match self.resolve_service(ctx, &d).await? {
                    Ok(svc) => svc,
                    Err(ask) => {
                        self.resolution(ctx, s, "rollback", &d, Some(ask)).await?;
                        return Ok(());
                    }
                };
                d.service_id = Some(service.name.clone());
                self.latest_release(&principal, service.id, d.env.as_deref(), Some("applied")).await?.map(|(r, _, env)| (r, env))
            }
        };
        let Some((release_id, env)) = release else {
            let e = DomainError::new(ErrorCode::ReleaseStateInvalid, "no applied release of that service and environment to roll back").into();
            self.refuse(ctx, s, "rollback", &e).await?;
            return Ok(());
        };
        d.release_id = Some(release_id.to_string());
        d.env = Some(env.clone());
        self.resolution(ctx, s, "rollback", &d, None).await?;
        let confirm_ref = format!("rbk-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let service = d.service_id.clone().unwrap_or_else(|| release_id.to_string());
        let text = opspilot_domain::ai::messages::text(s.lang, &Msg::ConfirmRollback { service: &service, env: &env });
        self.note(ctx, s, vec![AiSessionEvent::ConfirmationRequired { session_id: id, pending: Pending::Rollback { release_id, confirm_ref }, text }]).await?;
        Ok(())
    }

    pub(super) async fn rollback_confirmed(&self, ctx: &CommandContext, s: &AiSession, release_id: Uuid) -> Result<()> {
        match Box::pin(self.rollback_release(ctx, release_id)).await {
            Ok(h) => self.after_submit(ctx, s, release_id, &h.result).await,
            Err(e) => self.refuse(ctx, s, "rollback", &e).await.map(drop),
        }
    }

    pub(super) async fn status_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params) -> Result<()> {
        let principal = ctx.principal()?.clone();
        let label = |status: &str| {
            let st = opspilot_domain::release::ReleaseStatus::parse(status).ok();
            st.map(|x| if zh(s) { x.label_zh() } else { x.label_en() }.to_string()).unwrap_or_else(|| status.to_string())
        };
        if let Some(task) = p.task_id.as_deref().and_then(|t| Uuid::parse_str(t).ok()) {
            let c = self.store.pool().get().await.map_err(opspilot_eventstore::StoreError::from)?;
            let row = c
                .query_opt("SELECT status FROM install_tasks WHERE id = $1 AND ($2 OR project_id = ANY($3))", &[&task, &principal.is_admin(), &principal.project_ids.iter().copied().collect::<Vec<_>>()])
                .await
                .map_err(opspilot_eventstore::StoreError::from)?;
            let subject = format!("task {task}");
            return match row {
                Some(r) => self.say(ctx, s, Msg::Status { subject: &subject, label: &r.get::<_, String>(0) }, vec![], json!({ "task_id": task })).await.map(drop),
                None => self.say(ctx, s, Msg::NotFound { what: &subject }, vec![], Value::Null).await.map(drop),
            };
        }
        let found = match p.release_id.as_deref().and_then(|r| Uuid::parse_str(r).ok()) {
            Some(r) => read(opspilot_projections::releases::get(self.store.pool(), &principal, r).await)?.map(|v| (v.id, v.status, format!("release {}", v.id))),
            None => {
                let d = Draft::from_value(None).overlay(p);
                match self.resolve_service(ctx, &d).await? {
                    Ok(svc) => self.latest_release(&principal, svc.id, p.env.as_deref(), None).await?.map(|(r, st, env)| (r, st, format!("{} ({env})", svc.name))),
                    Err(ask) => {
                        self.resolution(ctx, s, "status", &d, Some(ask)).await?;
                        return Ok(());
                    }
                }
            }
        };
        match found {
            Some((release_id, status, subject)) => {
                self.say(ctx, s, Msg::Status { subject: &subject, label: &label(&status) }, vec![], json!({ "release_id": release_id, "status": status })).await?;
            }
            None => {
                let what = p.release_id.clone().or(p.service_id.clone()).unwrap_or_default();
                self.say(ctx, s, Msg::NotFound { what: &what }, vec![], Value::Null).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn my_approvals_flow(&self, ctx: &CommandContext, s: &AiSession) -> Result<()> {
        let principal = ctx.principal()?.clone();
        let q = opspilot_projections::inbox::InboxQuery { view: Some("mine".into()), status: vec!["pending".into()], ..Default::default() };
        let page = read(opspilot_projections::inbox::list(self.store.pool(), &principal, &q, ctx.now, PageRequest::new(None, Some(10))).await)?;
        let list: Vec<Value> = page.page.list.iter().map(|t| json!({ "ticket": t.ticket, "summary": t.summary, "risk_level": t.risk_level, "expires_at": t.expires_at, "source": t.source })).collect();
        let names = page.page.list.iter().map(|t| format!("{} ({})", t.ticket, t.summary)).collect::<Vec<_>>().join("; ");
        self.say(ctx, s, Msg::Approvals { count: page.page.list.len(), list: &names }, page.page.list.iter().map(|t| t.ticket.clone()).collect(), json!({ "tickets": list })).await?;
        Ok(())
    }

    pub(super) async fn decide_flow(&self, ctx: &CommandContext, s: &AiSession, intent: Intent, p: &Params) -> Result<()> {
        let approve = intent == Intent::Approve;
        let Some(ticket) = p.ticket.clone() else {
            let d = Draft::default();
            let ask = Ask { missing: "ticket", question: ("哪个审批票据？", "which ticket?"), choices: vec![] };
            self.resolution(ctx, s, intent.as_str(), &d, Some(ask)).await?;
            return Ok(());
        };
        // Always through the inbox's own commands: four-eyes and permissions as there.
        let decided = if approve { self.approve_ticket(ctx, &ticket, p.comment.clone()).await } else { self.reject_ticket(ctx, &ticket, p.comment.clone()).await };
        match decided {
            Ok(_) => self.say(ctx, s, Msg::Decided { ticket: &ticket, approved: approve }, vec![], json!({ "ticket": ticket })).await.map(drop),
            Err(e) => self.refuse(ctx, s, intent.as_str(), &e).await.map(drop),
        }
    }

    pub(super) async fn install_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params) -> Result<()> {
        let id = s.id.expect("session");
        let Some(name) = p.environment_id.clone() else {
            let ask = Ask { missing: "environment_id", question: ("哪个环境？", "which environment?"), choices: vec![] };
            self.resolution(ctx, s, "install_preview", &Draft::default(), Some(ask)).await?;
            return Ok(());
        };
        let action = p.action.clone().unwrap_or_else(|| "install".into());
        self.note(ctx, s, vec![AiSessionEvent::PreviewStarted { session_id: id, kind: "install".into(), draft: json!({ "environment_id": name, "action": action }) }]).await?;
        let previewed = match self.visible_environment(ctx, &name).await {
            Ok(env) => {
                let req = crate::environments::InstallPreviewRequest { action: Some(action.clone()), runtime_type: None, manifest_version: None, install_options: Default::default() };
                Box::pin(self.preview_install(ctx, &name, req)).await.map(|h| (env.id.expect("visible environment"), h))
            }
            Err(e) => Err(e),
        };
        match previewed {
            Ok((environment_id, h)) => {
                let preview_ref = h.result["preview_ref"].as_str().unwrap_or_default().to_string();
                let expires_at = serde_json::from_value(h.result["expires_at"].clone()).unwrap_or(ctx.now);
                let steps = h.result["steps"].as_array().map(|a| a.len()).unwrap_or_default();
                let text = opspilot_domain::ai::messages::text(s.lang, &Msg::ConfirmInstall { action: &action, environment: &name, steps });
                let result = AiSessionEvent::PreviewResult {
                    session_id: id, ok: true, release_id: None, environment_id: Some(environment_id), preview_ref: Some(preview_ref.clone()), expires_at: Some(expires_at),
                    checks_passed: h.result["checks"].as_array().map(|a| a.len()).unwrap_or_default(), blocking: 0,
                    warnings: serde_json::from_value(h.result["warnings"].clone()).unwrap_or_default(), error_key: None, text: text.clone(),
                };
                let confirm = AiSessionEvent::ConfirmationRequired { session_id: id, pending: Pending::Install { preview_ref, environment_id, expires_at }, text };
                self.note(ctx, s, vec![result, confirm]).await?;
            }
            Err(e) => {
                self.note(ctx, s, vec![preview_failed(s, &e)]).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn install_confirmed(&self, ctx: &CommandContext, s: &AiSession, environment_id: Uuid, reference: &str) -> Result<()> {
        match Box::pin(self.apply_install(ctx, &environment_id.to_string(), Some(reference), true, false)).await {
            Ok(h) => {
                let task = h.result["task_id"].as_str().unwrap_or_default().to_string();
                self.say(ctx, s, Msg::InstallStarted { task: &task }, vec![], h.result.clone()).await.map(drop)
            }
            Err(e) => self.refuse(ctx, s, "install", &e).await.map(drop),
        }
    }

    pub(super) async fn explain_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params) -> Result<()> {
        let entry = match (p.error_code, p.error_key.as_deref()) {
            (Some(code), _) => DICTIONARY.iter().find(|e| e.code == code),
            (None, Some(key)) => ErrorCode::from_key(key).map(|c| c.entry()),
            (None, None) => None,
        };
        match entry {
            Some(e) => {
                let hint = ErrorCode::from_key(e.key).map(|c| c.hint(s.lang.dictionary())).unwrap_or(e.hint_en);
                self.say(ctx, s, Msg::Explain { code: e.code, key: e.key, hint }, vec![], json!({ "code": e.code, "error_key": e.key, "http_status": e.http_status })).await?;
            }
            None => {
                let what = p.error_code.map(|c| c.to_string()).or(p.error_key.clone()).unwrap_or_default();
                self.say(ctx, s, Msg::ExplainUnknown { what: &what }, vec![], Value::Null).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn cancel_flow(&self, ctx: &CommandContext, s: &AiSession, p: &Params) -> Result<()> {
        let id = s.id.expect("session");
        let named = p.release_id.as_deref().and_then(|r| Uuid::parse_str(r).ok());
        if named.is_none() && (s.is_waiting() || s.draft.is_some()) {
            let text = opspilot_domain::ai::messages::text(s.lang, &Msg::Cancelled);
            self.note(ctx, s, vec![AiSessionEvent::Cancelled { session_id: id, text }]).await?;
            return Ok(());
        }
        let waiting = s.release_id.filter(|r| s.release_status.get(r).is_none_or(|st| st == "pending_approval"));
        match named.or(waiting) {
            Some(release_id) => match self.cancel_release(ctx, release_id, Some("cancelled from the AI command center".into())).await {
                Ok(_) => self.say(ctx, s, Msg::Cancelled, vec![], json!({ "release_id": release_id })).await.map(drop),
                Err(e) => self.refuse(ctx, s, "cancel", &e).await.map(drop),
            },
            None => self.say(ctx, s, Msg::NothingToCancel, vec![], Value::Null).await.map(drop),
        }
    }
}

/// A preview (release or install) that did not pass, as the session records it.
fn preview_failed(s: &AiSession, e: &CommandError) -> AiSessionEvent {
    let (key, hint) = super::said_error(s.lang, e);
    AiSessionEvent::PreviewResult {
        session_id: s.id.expect("session"),
        ok: false,
        release_id: None,
        environment_id: None,
        preview_ref: None,
        expires_at: None,
        checks_passed: 0,
        blocking: 1,
        warnings: vec![],
        error_key: Some(key.into()),
        text: opspilot_domain::ai::messages::text(s.lang, &Msg::PreviewFailed { hint: &hint }),
    }
}
