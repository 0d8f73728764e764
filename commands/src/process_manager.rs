//! The process manager: the one place where one event leads to the next
//! step. It follows the log by a durable checkpoint (a row of
//! `projection_checkpoints`, like the projection runner), asks the domain's
//! pure [`policy::react`] what follows from each event, and dispatches it:
//! a decision to the release or environment a ticket was raised for, an
//! execution to the executor, a stop to a running install task.
//!
//! Executions run in the background while the follower moves on; the
//! durable checkpoint stays below the oldest execution still running, so a
//! restarted OpsPilot reads that event again and resumes it — restart-resume
//! is this follower catching up, nothing else. Whatever is delivered twice
//! that way changes nothing: decisions are no-ops on an aggregate that has
//! them, and an execution acts only while its release or task still asks for
//! it (see `run_release_execution`, `run_install`).
//!
//! AI sessions are followed the same way: a session's preview or
//! confirmation makes it follow that release, and the release's and its
//! tickets' later events are appended to the session (see `ai::follow`).
//!
//! One process runs one follower; the checkpoint row is where a later lease
//! across replicas goes.

use std::collections::BTreeMap;
use std::time::Duration;

use opspilot_domain::ai::session::{AiSession, AiSessionEvent};
use opspilot_domain::approval::ApprovalEvent;
use opspilot_domain::environment::{Environment, EnvironmentEvent};
use opspilot_domain::policy::{self, FollowUp, Trigger};
use opspilot_domain::release::{Release, ReleaseEvent};
use opspilot_domain::{stream_id_of, Aggregate, DomainEvent, Source};
use opspilot_eventstore::RecordedEvent;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;

use crate::{CommandContext, CommandError, Commands, DecideClone, Result};

/// The checkpoint row of the follower.
pub const CHECKPOINT: &str = "process_manager";

const BATCH: i64 = 500;

/// A running follower.
#[derive(Clone)]
pub struct FollowUps {
    /// The last position whose immediate follow-ups (decisions) are appended.
    pub reacted: watch::Receiver<i64>,
}

impl FollowUps {
    /// Waits until the follow-ups of every event up to `position` are
    /// appended (executions may still run). False on timeout.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let mut reacted = self.reacted.clone();
        tokio::time::timeout(timeout, reacted.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Starts the follower: woken by the NOTIFY hint, and by a poll every
/// `poll` in case a hint was lost.
pub fn spawn(commands: Commands, mut wake: watch::Receiver<i64>, poll: Duration) -> FollowUps {
    let (reacted_tx, reacted) = watch::channel(0i64);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
    tokio::spawn(
        async move {
            let mut follower = Follower { commands, running: BTreeMap::new(), done: done_tx, cursor: None };
            loop {
                while let Ok(position) = done_rx.try_recv() {
                    follower.finished(position);
                }
                let caught_up = match follower.step().await {
                    Ok(caught_up) => caught_up,
                    Err(e) => {
                        tracing::warn!(error = ?e, "process manager step failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Some(cursor) = follower.cursor {
                    reacted_tx.send_if_modified(|cur| std::mem::replace(cur, cursor) != cursor);
                }
                if reacted_tx.is_closed() {
                    return;
                }
                if !caught_up {
                    continue;
                }
                tokio::select! {
                    changed = wake.changed() => if changed.is_err() { tokio::time::sleep(poll).await },
                    Some(position) = done_rx.recv() => follower.finished(position),
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
        .instrument(tracing::info_span!("process_manager")),
    );
    FollowUps { reacted }
}

struct Follower {
    commands: Commands,
    /// Executions running now, by the position of the event that started them.
    running: BTreeMap<i64, usize>,
    done: mpsc::UnboundedSender<i64>,
    /// The last position reacted to; `None` until the checkpoint is read.
    cursor: Option<i64>,
}

impl Follower {
    fn finished(&mut self, position: i64) {
        if let Some(n) = self.running.get_mut(&position) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(&position);
            }
        }
    }

    /// Reacts to the next batch; true when the log has nothing more for now.
    async fn step(&mut self) -> Result<bool> {
        let pool = self.commands.store.pool().clone();
        let cursor = match self.cursor {
            Some(c) => c,
            None => {
                let c = pool.get().await.map_err(opspilot_eventstore::StoreError::from)?;
                c.execute("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&CHECKPOINT]).await.map_err(opspilot_eventstore::StoreError::from)?;
                let at: i64 = c.query_one("SELECT position FROM projection_checkpoints WHERE name = $1", &[&CHECKPOINT]).await.map_err(opspilot_eventstore::StoreError::from)?.get(0);
                self.cursor = Some(at);
                at
            }
        };
        let events = self.commands.store.read_all(cursor, BATCH).await?;
        for e in &events {
            self.react(e).await?;
            self.cursor = Some(e.position);
        }
        // Durable: below the oldest execution still running, so a restart resumes it.
        let reached = self.cursor.unwrap_or(cursor);
        let durable = self.running.keys().next().map(|p| p - 1).unwrap_or(reached).min(reached);
        let c = pool.get().await.map_err(opspilot_eventstore::StoreError::from)?;
        c.execute("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1 AND position <> $2", &[&CHECKPOINT, &durable])
            .await
            .map_err(opspilot_eventstore::StoreError::from)?;
        Ok((events.len() as i64) < BATCH)
    }

    /// The follow-ups of one event, dispatched. A follow-up the domain
    /// refuses is logged and dropped (the event asked for something no longer
    /// possible); a storage failure stops the batch, to be tried again.
    async fn react(&mut self, e: &RecordedEvent) -> Result<()> {
        let follow_ups = match trigger_of(e) {
            Parsed::Ticket(event) => {
                let environment_id = e.environment_id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
                policy::react(Trigger::Ticket { event: &event, environment_id })
            }
            Parsed::Release(event) => policy::react(Trigger::Release { event: &event, stream_version: e.stream_version }),
            Parsed::Environment(event) => policy::react(Trigger::Environment { event: &event }),
            Parsed::AiSession(event) => policy::react(Trigger::AiSession { event: &event }),
            Parsed::Nothing => Ok(vec![]),
        };
        let follow_ups = match follow_ups {
            Ok(f) => f,
            Err(refused) => {
                tracing::warn!(position = e.position, action = %e.action, error = %refused, "an event's follow-up cannot be addressed");
                return Ok(());
            }
        };
        for follow_up in follow_ups {
            match self.dispatch(e, follow_up).await {
                Ok(()) => {}
                Err(CommandError::Domain(refused)) => {
                    tracing::debug!(position = e.position, action = %e.action, error = %refused, "follow-up refused; nothing to do")
                }
                Err(store) => return Err(store),
            }
        }
        Ok(())
    }

    async fn dispatch(&mut self, e: &RecordedEvent, follow_up: FollowUp) -> Result<()> {
        // A follow-up is caused by its event and belongs to its correlation.
        let ctx = CommandContext {
            causation_id: Some(e.event_id),
            correlation_id: e.correlation_id,
            ..CommandContext::system(Source::parse(&e.source).unwrap_or(Source::SystemScheduler))
        };
        let c = &self.commands;
        match follow_up {
            FollowUp::Release { release_id, command } => {
                let stream = stream_id_of::<Release>(release_id);
                let (release, _) = c.load::<Release>(&stream).await?;
                let scope = c.release_scope(release_id, &release)?;
                c.execute::<Release>(&ctx, "release.follow_up", &stream, &scope, |s| s.decide_clone(&command), |_| json!({})).await?;
            }
            FollowUp::Environment { environment_id, command } => {
                let stream = stream_id_of::<Environment>(environment_id);
                let (env, _) = c.load::<Environment>(&stream).await?;
                let scope = crate::environments::env_scope(&env);
                c.execute::<Environment>(&ctx, "environment.follow_up", &stream, &scope, |s| s.decide_clone(&command), |_| json!({})).await?;
            }
            FollowUp::ExecuteRelease { release_id, execution } => {
                let (release, _) = c.load::<Release>(&stream_id_of::<Release>(release_id)).await?;
                if release.execution_due().is_none_or(|d| d.execution != execution) {
                    return Ok(());
                }
                let span = tracing::info_span!("release_execution", %release_id, execution);
                let me = c.clone();
                self.run_in_background(e.position, span, async move { me.run_release_execution(release_id, execution).await });
            }
            FollowUp::RunInstallTask { environment_id, task_id } => {
                let (env, _) = c.load::<Environment>(&stream_id_of::<Environment>(environment_id)).await?;
                if env.active.as_ref().is_none_or(|a| a.task_id != task_id) {
                    return Ok(());
                }
                let span = tracing::info_span!("install_task", %task_id, %environment_id);
                let me = c.clone();
                self.run_in_background(e.position, span, async move { me.run_install(environment_id, task_id).await });
            }
            FollowUp::StopInstallTask { task_id } => c.stop_install_task(task_id),
            FollowUp::FollowRelease { session_id, release_id } => c.follow_release(session_id, release_id).await?,
            FollowUp::TellSessions { release_id, observation } => c.tell_sessions(e, release_id, &observation).await?,
        }
        Ok(())
    }

    fn run_in_background(&mut self, position: i64, span: tracing::Span, work: impl std::future::Future<Output = Result<()>> + Send + 'static) {
        *self.running.entry(position).or_default() += 1;
        let done = self.done.clone();
        tokio::spawn(
            async move {
                if let Err(e) = work.await {
                    tracing::error!(error = ?e, "execution could not record its outcome; it resumes when OpsPilot starts again");
                }
                let _ = done.send(position);
            }
            .instrument(span),
        );
    }
}

/// An event as the policy reads it.
enum Parsed {
    Ticket(ApprovalEvent),
    Release(ReleaseEvent),
    Environment(EnvironmentEvent),
    AiSession(AiSessionEvent),
    Nothing,
}

/// Which aggregate's event this is, by its stream, parsed.
fn trigger_of(e: &RecordedEvent) -> Parsed {
    let of = |kind: &str| e.stream_id.strip_prefix(kind).is_some_and(|rest| rest.starts_with('-'));
    let parsed = if of(opspilot_domain::approval::ApprovalTicket::KIND) {
        ApprovalEvent::from_parts(&e.action, &e.detail).map(Parsed::Ticket)
    } else if of(Release::KIND) {
        ReleaseEvent::from_parts(&e.action, &e.detail).map(Parsed::Release)
    } else if of(Environment::KIND) {
        EnvironmentEvent::from_parts(&e.action, &e.detail).map(Parsed::Environment)
    } else if of(AiSession::KIND) {
        AiSessionEvent::from_parts(&e.action, &e.detail).map(Parsed::AiSession)
    } else {
        return Parsed::Nothing;
    };
    parsed.unwrap_or_else(|err| {
        tracing::error!(position = e.position, action = %e.action, error = %err, "an event of a followed stream does not read");
        Parsed::Nothing
    })
}
