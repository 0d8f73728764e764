//! Command handlers. Each one authorizes the caller, loads the aggregate from
//! its stream, asks the pure `decide`, and appends what it decided — retrying
//! on a version conflict (safe, because deciding again on fresh state is pure)
//! and answering a repeated idempotency key with the first result.

pub mod ai;
pub mod approvals;
pub mod auth;
pub mod catalog;
pub mod clusters;
pub mod compose;
pub mod context;
pub mod credentials;
pub mod environments;
pub mod hosts;
pub mod identity;
pub mod ids;
pub mod install_runner;
pub mod process_manager;
pub mod releases;
pub mod scheduler;

use opspilot_domain::rbac::Permission;
use opspilot_domain::{Aggregate, DomainError, DomainEvent, ErrorCode, EventScope};
use opspilot_eventstore::{
    AppendOutcome, EventStore, ExpectedVersion, IdempotencyRecord, MasterKey, NewEvent, StoreError, StreamAppend, Vault,
};
use serde_json::Value;
use uuid::Uuid;

pub use context::CommandContext;

/// Why a command did not happen.
#[derive(thiserror::Error)]
pub enum CommandError {
    /// Refused for a reason in the error dictionary; nothing changed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The storage edge failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl std::fmt::Debug for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Domain(e) => write!(f, "{e}"),
            CommandError::Store(e) => write!(f, "{e:?}"),
        }
    }
}

impl CommandError {
    /// The dictionary code a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            CommandError::Domain(e) => e.code,
            CommandError::Store(StoreError::Conflict { .. }) => ErrorCode::ResourceConflict,
            CommandError::Store(_) => ErrorCode::InternalError,
        }
    }
}

/// Shorthand.
pub type Result<T, E = CommandError> = std::result::Result<T, E>;

/// What a handled command produced.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The command's answer (the first answer, for a repeated idempotency key).
    pub result: Value,
    /// Log position a read must reach to see the effect (read-your-writes).
    pub position: i64,
}

/// The services command handlers use.
#[derive(Clone)]
pub struct Commands {
    pub store: EventStore,
    pub vault: Vault,
    pub secrets: opspilot_eventstore::secrets::Secrets,
    /// How long a release preview may be applied (SPEC §2: 30 minutes by default).
    pub preview_ttl: chrono::Duration,
    /// Overrides the ticket expiry derived from risk (for tests and small teams).
    pub ticket_ttl_override: Option<chrono::Duration>,
    /// When a release or rollback needs approval.
    pub approval_policy: ApprovalPolicy,
    /// Where install tasks find the bundle, and how wide they fan out.
    pub install: environments::InstallSettings,
    /// How long an SSH connection may take to open.
    pub ssh_connect_timeout: std::time::Duration,
    /// Hook output lines as they arrive, for live subscribers.
    pub live_logs: tokio::sync::broadcast::Sender<install_runner::LiveLog>,
    /// How long a Kubernetes rollout may take before the release fails.
    pub rollout_deadline: std::time::Duration,
    /// Install tasks and release executions this process runs now.
    pub running_tasks: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
    /// The stop switch of every install task this process runs.
    pub install_stops: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Uuid, tokio_util::sync::CancellationToken>>>,
}

/// When a release needs approval: its env is one of `envs`, or its risk is at
/// least `min_risk` (default: env production, or risk high or above).
#[derive(Debug, Clone)]
pub struct ApprovalPolicy {
    pub envs: Vec<String>,
    pub min_risk: opspilot_domain::approval::RiskLevel,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy { envs: vec!["production".into()], min_risk: opspilot_domain::approval::RiskLevel::High }
    }
}

impl ApprovalPolicy {
    /// True when a release to `env` at `risk` needs a ticket.
    pub fn requires(&self, env: &str, risk: opspilot_domain::approval::RiskLevel) -> bool {
        self.envs.iter().any(|e| e == env) || risk >= self.min_risk
    }
}

const CONFLICT_RETRIES: usize = 5;

impl Commands {
    /// Builds the handlers over a migrated database.
    pub fn new(pool: opspilot_eventstore::Pool, master: MasterKey) -> Self {
        Commands {
            store: EventStore::new(pool.clone()),
            vault: Vault::new(master, pool.clone()),
            secrets: opspilot_eventstore::secrets::Secrets::new(pool),
            preview_ttl: chrono::Duration::minutes(30),
            ticket_ttl_override: None,
            approval_policy: ApprovalPolicy::default(),
            install: environments::InstallSettings::default(),
            ssh_connect_timeout: std::time::Duration::from_secs(10),
            rollout_deadline: releases::ROLLOUT_DEADLINE,
            live_logs: tokio::sync::broadcast::channel(8192).0,
            running_tasks: Default::default(),
            install_stops: Default::default(),
        }
    }

    /// Loads an aggregate and its stream version.
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<(A, i64)> {
        let recorded = self.store.read_stream(stream).await?;
        let version = recorded.last().map(|e| e.stream_version).unwrap_or(0);
        let mut state = A::default();
        for e in &recorded {
            let ev = A::Event::from_parts(&e.action, &e.detail).map_err(|err| {
                DomainError::new(ErrorCode::InternalError, format!("event {} of {stream} unreadable: {err}", e.position))
            })?;
            state = state.evolve(&ev);
        }
        Ok((state, version))
    }

    /// Runs one command against one aggregate: decide on current state,
    /// append with optimistic concurrency, retry on conflict, honour the
    /// idempotency key. `answer` turns the decided events into the result.
    pub async fn execute<A: Aggregate>(
        &self,
        ctx: &CommandContext,
        command_name: &str,
        stream: &str,
        scope: &EventScope,
        decide: impl Fn(&A) -> std::result::Result<Vec<A::Event>, DomainError>,
        answer: impl Fn(&[A::Event]) -> Value,
    ) -> Result<Handled> {
        self.execute_beside::<A>(ctx, command_name, stream, scope, decide, answer, &Beside::default()).await
    }

    /// Like [`Commands::execute`], appending `beside` (new streams and the
    /// secrets they announce) in the same transaction, before the command's
    /// own events: all of it is stored, or nothing; a refused or repeated
    /// command stores none of it.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute_beside<A: Aggregate>(
        &self,
        ctx: &CommandContext,
        command_name: &str,
        stream: &str,
        scope: &EventScope,
        decide: impl Fn(&A) -> std::result::Result<Vec<A::Event>, DomainError>,
        answer: impl Fn(&[A::Event]) -> Value,
        beside: &Beside,
    ) -> Result<Handled> {
        let idem_key = ctx.idempotency_key.as_ref().map(|k| format!("{}:{command_name}:{k}", ctx.actor_id()));
        if let Some(key) = &idem_key {
            if let Some((result, position)) = self.store.idempotent_result(key).await? {
                return Ok(Handled { result, position });
            }
        }
        let mut attempt = 0;
        loop {
            let (state, version) = self.load::<A>(stream).await?;
            let events = decide(&state)?;
            let result = answer(&events);
            let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
            let new_events: Vec<NewEvent> = events.iter().map(|e| new_event(e, scope)).collect();
            let idem = idem_key.as_ref().map(|key| IdempotencyRecord { key: key.clone(), command: command_name.into(), result: result.clone() });
            let mut appends: Vec<StreamAppend> =
                beside.streams.iter().map(|(s, events)| StreamAppend { stream_id: s, expected: ExpectedVersion::NoStream, events }).collect();
            appends.push(StreamAppend { stream_id: stream, expected, events: &new_events });
            match self.store.append_streams(&appends, &ctx.meta(), idem.as_ref(), &beside.secrets).await {
                Ok(AppendOutcome::Appended { last_position, .. }) => return Ok(Handled { result, position: last_position }),
                Ok(AppendOutcome::AlreadyHandled { result, position }) => return Ok(Handled { result, position }),
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Appends facts that decide nothing (logins, denials) to `stream`.
    pub async fn record<E: DomainEvent>(&self, ctx: &CommandContext, stream: &str, scope: &EventScope, events: &[E]) -> Result<i64> {
        let new_events: Vec<NewEvent> = events.iter().map(|e| new_event(e, scope)).collect();
        Ok(self.store.append(stream, ExpectedVersion::Any, &new_events, &ctx.meta(), None).await?.position())
    }

    /// Refuses unless the caller holds `permission`; a refusal is recorded as
    /// an `auth.permission_denied` event and changes nothing else.
    pub async fn authorize(&self, ctx: &CommandContext, permission: Permission, attempted: &str) -> Result<()> {
        let principal = ctx.principal()?;
        if let Err(e) = principal.require(permission) {
            self.deny(ctx, attempted, permission, &e).await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// Records a denial (permission or scope) for the caller.
    pub async fn deny(&self, ctx: &CommandContext, attempted: &str, permission: impl std::fmt::Display, error: &DomainError) -> Result<()> {
        let principal = ctx.principal()?;
        let event = opspilot_domain::security::SecurityEvent::PermissionDenied {
            user_id: principal.user_id,
            attempted: attempted.into(),
            permission: permission.to_string(),
            error_key: error.code.key().into(),
            reason: error.detail.clone(),
        };
        let scope = EventScope::resource("user", principal.user_id);
        self.record(ctx, &format!("security-{}", principal.user_id), &scope, &[event]).await?;
        Ok(())
    }
}

/// What a command appends beside its own stream, in its transaction: the
/// events of new streams (e.g. the credential a host registration seals) and
/// the secrets they announce.
#[derive(Debug, Default)]
pub struct Beside {
    pub streams: Vec<(String, Vec<NewEvent>)>,
    pub secrets: Vec<opspilot_eventstore::SealedSecret>,
}

pub(crate) fn new_event<E: DomainEvent>(e: &E, scope: &EventScope) -> NewEvent {
    let (action, detail) = e.to_parts();
    NewEvent {
        event_id: Uuid::new_v4(),
        action,
        schema_version: E::SCHEMA_VERSION,
        scope: scope.clone(),
        status: e.status(),
        severity: e.severity(),
        detail,
    }
}

/// Lets handlers decide with a borrowed command (`decide` takes it by value,
/// and a retried command is decided again).
pub(crate) trait DecideClone: Aggregate {
    fn decide_clone(&self, cmd: &Self::Command) -> std::result::Result<Vec<Self::Event>, DomainError>;
}

impl<A: Aggregate> DecideClone for A
where
    A::Command: Clone,
{
    fn decide_clone(&self, cmd: &Self::Command) -> std::result::Result<Vec<Self::Event>, DomainError> {
        self.decide(cmd.clone())
    }
}
