//! The install task runner: executes a started task's plan, step by step,
//! the nodes of a step in parallel (bounded), one SSH session per host for
//! the whole task.
//!
//! Durability: every node-step attempt records its start and end on the
//! task's stream before the runner moves on, so a runner started again after
//! OpsPilot was killed (the process manager runs it again) skips the node-steps that
//! succeeded and re-runs the one that was interrupted — hooks are idempotent,
//! so a re-run is harmless. Log lines go to `install_task_logs` in batches
//! while the hook runs, and to live subscribers at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use opspilot_bundle::Bundle;
use opspilot_domain::environment::{Environment, EnvironmentCommand, InstallPlan, PlannedStep, TaskFailure, TaskPhase};
use opspilot_domain::host::Host;
use opspilot_domain::install_task::{parse_output_line, InstallTask, InstallTaskCommand, NodeStep, StepResult};
use opspilot_domain::{stream_id_of, Aggregate, DomainError, ErrorCode, EventScope};
use opspilot_ssh::{OutputLine, RemoteCommand, RunOptions, SshSession, Stream, UploadSource};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::environments::UPLOAD_STEP;
use crate::{CommandContext, Commands, DecideClone, Result};

/// Where the bundle lives on a node (`OPS_SCRIPT_ROOT`).
pub const SCRIPT_ROOT: &str = "/opt/opspilot/script";
/// Where a task's working directory lives on a node (`OPS_WORKDIR` = this/<task id>).
pub const TASKS_ROOT: &str = "/opt/opspilot/tasks";
/// How many files of the bundle go to one node at once.
const UPLOADS_AT_ONCE: usize = 4;
/// How much of stderr a failed step keeps in its event.
const STDERR_EXCERPT: usize = 2048;
/// How long a cancelled hook gets to be stopped on its host before the
/// attempt is given up locally.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// One hook output line, as live subscribers receive it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveLog {
    pub environment_id: Uuid,
    pub task_id: Uuid,
    pub step_index: u32,
    pub host_id: Uuid,
    pub attempt: u32,
    pub seq: i32,
    pub stream: &'static str,
    pub line: String,
    pub at: DateTime<Utc>,
}

/// What a task's runner shares among its node-steps.
struct TaskRun {
    environment_id: Uuid,
    task_id: Uuid,
    scope: EventScope,
    plan: InstallPlan,
    env: Environment,
    hosts: HashMap<Uuid, Host>,
    sessions: tokio::sync::Mutex<HashMap<Uuid, Arc<SshSession>>>,
    state: Mutex<InstallTask>,
    bundle: Bundle,
    /// Cancelled when someone cancels the task: running hooks are stopped on
    /// their hosts and nothing further starts.
    stop: CancellationToken,
}

impl TaskRun {
    fn cancelled(&self, step: Option<&PlannedStep>, host_id: Option<Uuid>) -> TaskFailure {
        failure(step, host_id, ErrorCode::InstallTaskCancelled, "the task was cancelled".into())
    }
}

/// The end of one node-step attempt.
struct AttemptEnd {
    exit_code: Option<i64>,
    stderr_tail: String,
    error: Option<DomainError>,
    outputs: BTreeMap<String, String>,
    log_lines: u64,
}

impl Commands {
    /// Runs a task while it is running and this process does not run it
    /// already: the process manager's follow-up of `install_started`, and of
    /// the same event again after a restart (the runner resumes at the first
    /// unfinished node-step).
    pub async fn run_install(&self, environment_id: Uuid, task_id: Uuid) -> Result<()> {
        if !self.running_tasks.lock().expect("running tasks").insert(task_id) {
            return Ok(());
        }
        let stop = CancellationToken::new();
        self.install_stops.lock().expect("install stops").insert(task_id, stop.clone());
        let outcome = self.run_install_task(environment_id, task_id, stop).await;
        self.install_stops.lock().expect("install stops").remove(&task_id);
        self.running_tasks.lock().expect("running tasks").remove(&task_id);
        outcome
    }

    /// Stops the task's hooks now if this process runs it (the process
    /// manager's follow-up of `install_cancel_requested`). A runner that
    /// starts later sees the recorded cancel before its first step.
    pub fn stop_install_task(&self, task_id: Uuid) {
        if let Some(stop) = self.install_stops.lock().expect("install stops").get(&task_id) {
            stop.cancel();
        }
    }

    /// Whether this process runs the task now.
    pub fn install_task_running(&self, task_id: Uuid) -> bool {
        self.running_tasks.lock().expect("running tasks").contains(&task_id)
    }

    async fn run_install_task(&self, environment_id: Uuid, task_id: Uuid, stop: CancellationToken) -> Result<()> {
        let stream = stream_id_of::<Environment>(environment_id);
        let (env, _) = self.load::<Environment>(&stream).await?;
        let Some(active) = env.active.clone().filter(|a| a.task_id == task_id && a.phase == TaskPhase::Running) else { return Ok(()) };
        // Cancelled while OpsPilot was down: it ends without running anything more.
        if active.cancel_requested {
            stop.cancel();
        }
        let started = Instant::now();
        let scope = EventScope {
            environment_id: Some(environment_id.to_string()),
            ..EventScope::resource("install_task", task_id).in_project(env.project_id.unwrap()).in_team(env.team_id.unwrap())
        };
        let failure = match self.prepare_run(&env, task_id, active.plan.clone(), scope.clone(), stop).await {
            Ok(run) => self.run_plan(Arc::new(run)).await,
            Err(e) => Some(failure(None, None, e.code(), e.to_string())),
        };
        let cmd = EnvironmentCommand::FinishTask { task_id, failure, duration_ms: started.elapsed().as_millis() as i64 };
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let env_scope = EventScope { resource_type: "environment".into(), resource_id: environment_id.to_string(), ..scope };
        self.execute::<Environment>(&ctx, "environment.install_finish", &stream, &env_scope, |s| s.decide_clone(&cmd), |_| json!({})).await?;
        Ok(())
    }

    async fn prepare_run(&self, env: &Environment, task_id: Uuid, plan: InstallPlan, scope: EventScope, stop: CancellationToken) -> Result<TaskRun> {
        let root = self.install.script_root.clone();
        let bundle = tokio::task::spawn_blocking(move || Bundle::load(&root)).await.map_err(|_| DomainError::new(ErrorCode::InternalError, "bundle load"))??;
        if bundle.index.bundle_version != plan.manifest_version {
            return Err(DomainError::new(ErrorCode::ArtifactVersionUnsupported, format!("the bundle is now {}, the task was planned for {}", bundle.index.bundle_version, plan.manifest_version)).into());
        }
        let hosts = self.hosts_of(env).await?.into_iter().map(|h| (h.id.unwrap(), h)).collect();
        let (state, _) = self.load::<InstallTask>(&stream_id_of::<InstallTask>(task_id)).await?;
        Ok(TaskRun {
            environment_id: env.id.unwrap(),
            task_id,
            scope,
            plan,
            env: env.clone(),
            hosts,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            state: Mutex::new(state),
            bundle,
            stop,
        })
    }

    async fn run_plan(&self, run: Arc<TaskRun>) -> Option<TaskFailure> {
        for step in run.plan.steps.clone() {
            if self.cancel_seen(&run).await {
                return Some(run.cancelled(Some(&step), None));
            }
            let todo: Vec<Uuid> = {
                let state = run.state.lock().expect("task state");
                step.host_ids.iter().copied().filter(|h| !state.succeeded(step.step_index, *h)).collect()
            };
            let failures: Vec<TaskFailure> = stream::iter(todo)
                .map(|host_id| {
                    let (run, step) = (run.clone(), step.clone());
                    async move { self.run_node_step(&run, &step, host_id).await }
                })
                .buffer_unordered(self.install.parallelism.max(1))
                .filter_map(|f| async move { f })
                .collect()
                .await;
            if let Some(f) = failures.into_iter().min_by_key(|f| f.host_id) {
                return Some(f);
            }
        }
        None
    }

    /// Whether the task was cancelled: by this process, or as recorded on the
    /// environment (by another process, or before a restart).
    async fn cancel_seen(&self, run: &TaskRun) -> bool {
        if run.stop.is_cancelled() {
            return true;
        }
        let recorded = self.load::<Environment>(&stream_id_of::<Environment>(run.environment_id)).await;
        if recorded.is_ok_and(|(e, _)| e.active.is_some_and(|a| a.task_id == run.task_id && a.cancel_requested)) {
            run.stop.cancel();
        }
        run.stop.is_cancelled()
    }

    /// Runs one node-step with its retries; `Some` when it failed for good.
    async fn run_node_step(&self, run: &TaskRun, step: &PlannedStep, host_id: Uuid) -> Option<TaskFailure> {
        // As recorded now, not as this runner last saw it: a node-step that
        // finished under another runner (before a restart) never runs again.
        match self.load::<InstallTask>(&stream_id_of::<InstallTask>(run.task_id)).await {
            Ok((recorded, _)) if recorded.succeeded(step.step_index, host_id) => return None,
            Ok(_) => {}
            Err(e) => return Some(failure(Some(step), Some(host_id), e.code(), e.to_string())),
        }
        // Attempts and failures made before a restart count too: a hook with
        // `maxRetries: 2` fails at most three times in all.
        let (mut attempt, mut failed) = {
            let state = run.state.lock().expect("task state");
            (state.next_attempt(step.step_index, host_id), state.failed_attempts(step.step_index, host_id))
        };
        loop {
            if run.stop.is_cancelled() {
                return Some(run.cancelled(Some(step), Some(host_id)));
            }
            let ns = NodeStep {
                environment_id: run.environment_id,
                task_id: run.task_id,
                action: run.plan.action.to_string(),
                runtime_type: run.plan.runtime_type.clone(),
                manifest_version: run.plan.manifest_version.clone(),
                step_name: step.step_name.clone(),
                step_index: step.step_index,
                host_id,
                attempt,
            };
            let started_at = Utc::now();
            if let Err(e) = self.task_fact(run, InstallTaskCommand::StartStep { step: ns.clone(), at: started_at }).await {
                return Some(failure(Some(step), Some(host_id), e.code(), e.to_string()));
            }
            let end = self.attempt(run, step, host_id, attempt).await;
            let ended_at = Utc::now();
            let result = StepResult {
                started_at,
                ended_at,
                duration_ms: (ended_at - started_at).num_milliseconds(),
                exit_code: end.exit_code,
                stderr_excerpt: excerpt(&end.stderr_tail),
                outputs: end.outputs,
                log_lines: end.log_lines,
            };
            let error = match (&end.error, end.exit_code) {
                // Stopped by a cancel: whatever the hook said, the step ends cancelled.
                (_, code) if run.stop.is_cancelled() && code != Some(0) => Some(DomainError::new(ErrorCode::InstallTaskCancelled, format!("{} was stopped: the task was cancelled", step.step_name))),
                (None, Some(0)) => None,
                (Some(e), _) => Some(e.clone()),
                (None, code) => {
                    let key = if step.step_name.starts_with("preflight") { ErrorCode::PreflightFailed } else { ErrorCode::ScriptHookExecFailed };
                    Some(DomainError::new(key, format!("{} exited with {}", step.step_name, code.map(|c| c.to_string()).unwrap_or_else(|| "no status".into()))))
                }
            };
            let Some(error) = error else {
                return match self.task_fact(run, InstallTaskCommand::SucceedStep { step: ns, result }).await {
                    Ok(()) => None,
                    Err(e) => Some(failure(Some(step), Some(host_id), e.code(), e.to_string())),
                };
            };
            failed += 1;
            let will_retry = failed <= step.max_retries && error.code != ErrorCode::InstallTaskCancelled;
            let stderr_excerpt = if result.stderr_excerpt.is_empty() { error.detail.clone() } else { result.stderr_excerpt.clone() };
            let exit_code = result.exit_code;
            let _ = self.task_fact(run, InstallTaskCommand::FailStep { step: ns, result: StepResult { stderr_excerpt: stderr_excerpt.clone(), ..result }, error_key: error.code, will_retry }).await;
            if !will_retry {
                return Some(TaskFailure {
                    step_name: Some(step.step_name.clone()),
                    step_index: Some(step.step_index),
                    host_id: Some(host_id),
                    exit_code,
                    stderr_excerpt,
                    error_key: error.code.key().into(),
                });
            }
            // A failed connection is opened anew for the retry.
            if matches!(error.code, ErrorCode::SshUnreachable | ErrorCode::SshAuthFailed | ErrorCode::SshHostKeyMismatch) {
                run.sessions.lock().await.remove(&host_id);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500 * u64::from(failed))) => {}
                _ = run.stop.cancelled() => {}
            }
            attempt += 1;
        }
    }

    /// Decides a node-step fact against the task's state and records it.
    async fn task_fact(&self, run: &TaskRun, cmd: InstallTaskCommand) -> Result<()> {
        let events = {
            let mut state = run.state.lock().expect("task state");
            let events = state.decide(cmd)?;
            *state = events.iter().fold(state.clone(), |s, e| s.evolve(e));
            events
        };
        if events.is_empty() {
            return Ok(());
        }
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        self.record(&ctx, &stream_id_of::<InstallTask>(run.task_id), &run.scope, &events).await?;
        Ok(())
    }

    async fn session(&self, run: &TaskRun, host_id: Uuid) -> std::result::Result<Arc<SshSession>, DomainError> {
        let mut sessions = run.sessions.lock().await;
        if let Some(s) = sessions.get(&host_id) {
            return Ok(s.clone());
        }
        let host = run.hosts.get(&host_id).ok_or_else(|| DomainError::new(ErrorCode::NotFound, format!("host {host_id} is not bound")))?;
        match self.connect_host(host).await {
            Ok(s) => {
                let s = Arc::new(s);
                sessions.insert(host_id, s.clone());
                Ok(s)
            }
            Err(e) => {
                let _ = self.record_host_failure(host, &e).await;
                Err(crate::hosts::ssh_error(e))
            }
        }
    }

    /// One attempt of a node-step: the upload step or a hook.
    async fn attempt(&self, run: &TaskRun, step: &PlannedStep, host_id: Uuid, attempt: u32) -> AttemptEnd {
        let mut log = LogSink::new(self, run.environment_id, run.task_id, step.step_index, host_id, attempt);
        let work = async {
            match self.session(run, host_id).await {
                Err(e) => Err(e),
                Ok(session) if step.step_name == UPLOAD_STEP && step.hook_path.is_empty() => self.upload_bundle(run, &session, host_id, &mut log).await,
                Ok(session) => self.run_hook(run, &session, step, host_id, attempt, &mut log).await,
            }
        };
        // A hook stops itself on a cancel (its process group is killed on the
        // host); an upload or connection in flight is dropped.
        let outcome = tokio::select! {
            biased;
            outcome = work => outcome,
            _ = async { run.stop.cancelled().await; tokio::time::sleep(CANCEL_GRACE).await } => Err(DomainError::new(ErrorCode::InstallTaskCancelled, "stopped: the task was cancelled")),
        };
        let (outputs, log_lines) = log.finish().await;
        match outcome {
            Ok((exit_code, stderr_tail)) => AttemptEnd { exit_code, stderr_tail, error: None, outputs, log_lines },
            Err(e) => AttemptEnd { exit_code: None, stderr_tail: String::new(), error: Some(e), outputs, log_lines },
        }
    }

    /// Puts the runtime's files under `OPS_SCRIPT_ROOT` (skipping files the
    /// node already has with the right sha256, verifying each upload on the
    /// node) and the task's `context.json` into `OPS_WORKDIR`.
    async fn upload_bundle(&self, run: &TaskRun, session: &SshSession, host_id: Uuid, log: &mut LogSink) -> std::result::Result<(Option<i64>, String), DomainError> {
        let runtime = if run.plan.runtime_type == "hybrid" { "compose" } else { run.plan.runtime_type.as_str() };
        let files = run.bundle.files_of(runtime)?;
        let (mut uploaded, mut unchanged, mut bytes) = (0u64, 0u64, 0u64);
        // A few files at a time: each upload is a probe and a transfer, mostly
        // waiting on the network; the session has channels to spare.
        let present: Vec<&opspilot_bundle::BundleFile> = files.iter().filter(|f| f.abs_path.exists()).collect();
        let mut outcomes = Vec::with_capacity(present.len());
        for chunk in present.chunks(UPLOADS_AT_ONCE) {
            outcomes.extend(futures::future::join_all(chunk.iter().map(|f| upload_file(session, f))).await);
        }
        for (f, out) in outcomes {
            let out = out.map_err(|e| DomainError::new(e.code(), format!("{}: {e}", f.rel_path)))?;
            if out.skipped {
                unchanged += 1;
            } else {
                uploaded += 1;
                bytes += out.bytes;
            }
            log.push(Stream::Stdout, format!("[INFO] file={} result={} sha256={}", f.rel_path, if out.skipped { "unchanged" } else { "uploaded" }, out.sha256));
        }
        let context = self.context_json(run, host_id);
        let workdir = format!("{TASKS_ROOT}/{}", run.task_id);
        session
            .upload(UploadSource::Bytes(serde_json::to_vec_pretty(&context).expect("context serializes")), &format!("{workdir}/context.json"), 0o600, None)
            .await
            .map_err(|e| DomainError::new(e.code(), format!("context.json: {e}")))?;
        log.push(Stream::Stdout, format!("[INFO] files_uploaded={uploaded} files_unchanged={unchanged} bytes_uploaded={bytes}"));
        Ok((Some(0), String::new()))
    }

    /// The inputs of hooks beyond the environment variables (SPEC §7).
    fn context_json(&self, run: &TaskRun, host_id: Uuid) -> serde_json::Value {
        let node = |id: &Uuid| {
            let h = run.hosts.get(id);
            let role = run.env.nodes.iter().find(|n| n.host_id == *id).map(|n| n.node_role.clone()).unwrap_or_default();
            json!({
                "host_id": id, "name": h.and_then(|h| h.name.clone()), "ip": h.and_then(|h| h.access.as_ref().map(|a| a.ip.clone())),
                "role": role, "labels": h.map(|h| h.labels.clone()).unwrap_or_default(),
            })
        };
        json!({
            "task_id": run.task_id, "environment_id": run.environment_id, "environment_name": run.env.name,
            "runtime_type": run.plan.runtime_type, "action": run.plan.action, "bundle_version": run.plan.manifest_version,
            "project_id": run.env.project_id, "team_id": run.env.team_id,
            "node": node(&host_id), "nodes": run.env.nodes.iter().map(|n| node(&n.host_id)).collect::<Vec<_>>(),
            "install_options": run.plan.install_options,
        })
    }

    async fn run_hook(&self, run: &TaskRun, session: &SshSession, step: &PlannedStep, host_id: Uuid, attempt: u32, log: &mut LogSink) -> std::result::Result<(Option<i64>, String), DomainError> {
        let host = run.hosts.get(&host_id);
        let workdir = format!("{TASKS_ROOT}/{}", run.task_id);
        let role = run.env.nodes.iter().find(|n| n.host_id == host_id).map(|n| n.node_role.clone()).unwrap_or_default();
        let env: BTreeMap<String, String> = [
            ("OPS_TASK_ID", run.task_id.to_string()),
            ("OPS_CLUSTER_ID", String::new()),
            ("OPS_ENVIRONMENT_ID", run.environment_id.to_string()),
            ("OPS_RUNTIME_TYPE", run.plan.runtime_type.clone()),
            ("OPS_PROJECT_ID", run.env.project_id.map(|p| p.to_string()).unwrap_or_default()),
            ("OPS_TEAM_ID", run.env.team_id.map(|p| p.to_string()).unwrap_or_default()),
            ("OPS_WORKDIR", workdir.clone()),
            ("OPS_SCRIPT_ROOT", SCRIPT_ROOT.to_string()),
            ("OPS_RETRY_ATTEMPT", attempt.to_string()),
            ("OPS_RETRY_MAX", step.max_retries.to_string()),
            ("OPS_NODE_IP", host.and_then(|h| h.access.as_ref().map(|a| a.ip.clone())).unwrap_or_default()),
            ("OPS_NODE_ROLE", role),
            ("OPS_ACTION", run.plan.action.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let cmd = RemoteCommand { argv: vec!["bash".into(), format!("{SCRIPT_ROOT}/{}", step.hook_path)], env, workdir: Some(workdir) };
        let shell = cmd.to_shell().map_err(|e| DomainError::new(e.code(), e.to_string()))?;
        let opts = RunOptions { timeout: Duration::from_secs(step.timeout_seconds), cancel: Some(run.stop.clone()), sudo: !session.is_root() };
        let outcome = session.run(&shell, &opts, &mut |l: OutputLine| log.push(l.stream, l.line)).await;
        match outcome {
            Ok(o) => Ok((o.exit_code.map(i64::from), o.stderr_tail)),
            Err(e) => Err(DomainError::new(if matches!(e, opspilot_ssh::SshError::Timeout(_)) { ErrorCode::ScriptHookExecFailed } else { e.code() }, format!("{}: {e}", step.step_name))),
        }
    }
}

/// One bundle file to `OPS_SCRIPT_ROOT` on a node, checked there.
async fn upload_file<'a>(session: &SshSession, f: &'a opspilot_bundle::BundleFile) -> (&'a opspilot_bundle::BundleFile, std::result::Result<opspilot_ssh::UploadOutcome, opspilot_ssh::SshError>) {
    let remote = format!("{SCRIPT_ROOT}/{}", f.rel_path);
    (f, session.upload(UploadSource::Path(f.abs_path.clone()), &remote, f.mode, Some(&f.sha256)).await)
}

fn failure(step: Option<&PlannedStep>, host_id: Option<Uuid>, code: ErrorCode, detail: String) -> TaskFailure {
    TaskFailure { step_name: step.map(|s| s.step_name.clone()), step_index: step.map(|s| s.step_index), host_id, exit_code: None, stderr_excerpt: detail, error_key: code.key().into() }
}

/// The last `STDERR_EXCERPT` bytes of stderr, cut at a character boundary.
fn excerpt(s: &str) -> String {
    let s = s.trim_end();
    if s.len() <= STDERR_EXCERPT {
        return s.to_string();
    }
    let mut start = s.len() - STDERR_EXCERPT;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Collects a node-step's lines: stored in batches by a writer task, sent to
/// live subscribers at once, and `[LEVEL] key=value` pairs kept as outputs.
struct LogSink {
    environment_id: Uuid,
    task_id: Uuid,
    step_index: u32,
    host_id: Uuid,
    attempt: u32,
    seq: i32,
    outputs: BTreeMap<String, String>,
    live: tokio::sync::broadcast::Sender<LiveLog>,
    tx: Option<mpsc::UnboundedSender<LiveLog>>,
    writer: tokio::task::JoinHandle<u64>,
}

impl LogSink {
    fn new(c: &Commands, environment_id: Uuid, task_id: Uuid, step_index: u32, host_id: Uuid, attempt: u32) -> LogSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<LiveLog>();
        let pool = c.store.pool().clone();
        let writer = tokio::spawn(async move {
            let mut stored = 0u64;
            let mut batch = Vec::with_capacity(500);
            while rx.recv_many(&mut batch, 500).await > 0 {
                match store_lines(&pool, &batch).await {
                    Ok(()) => stored += batch.len() as u64,
                    Err(e) => tracing::warn!(error = ?e, "log lines not stored"),
                }
                batch.clear();
            }
            stored
        });
        LogSink { environment_id, task_id, step_index, host_id, attempt, seq: 0, outputs: BTreeMap::new(), live: c.live_logs.clone(), tx: Some(tx), writer }
    }

    fn push(&mut self, stream: Stream, line: String) {
        self.seq += 1;
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        if stream == "stdout" {
            if let Some((_, pairs)) = parse_output_line(&line) {
                self.outputs.extend(pairs);
            }
        }
        let line = if line.contains('\0') { line.replace('\0', "") } else { line };
        let l = LiveLog { environment_id: self.environment_id, task_id: self.task_id, step_index: self.step_index, host_id: self.host_id, attempt: self.attempt, seq: self.seq, stream, line, at: Utc::now() };
        let _ = self.live.send(l.clone());
        if let Some(tx) = &self.tx {
            let _ = tx.send(l);
        }
    }

    async fn finish(mut self) -> (BTreeMap<String, String>, u64) {
        self.tx.take();
        let stored = (&mut self.writer).await.unwrap_or(0);
        (std::mem::take(&mut self.outputs), stored)
    }
}

async fn store_lines(pool: &opspilot_eventstore::Pool, lines: &[LiveLog]) -> std::result::Result<(), opspilot_eventstore::StoreError> {
    let Some(first) = lines.first() else { return Ok(()) };
    let c = pool.get().await?;
    let seqs: Vec<i32> = lines.iter().map(|l| l.seq).collect();
    let streams: Vec<&str> = lines.iter().map(|l| l.stream).collect();
    let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = lines.iter().map(|l| l.at).collect();
    c.execute(
        "INSERT INTO install_task_logs (task_id, step_index, host_id, attempt, seq, stream, line, at)
         SELECT $1, $2, $3, $4, s, st, l, a FROM unnest($5::int[], $6::text[], $7::text[], $8::timestamptz[]) AS t(s, st, l, a)
         ON CONFLICT DO NOTHING",
        &[&first.task_id, &(first.step_index as i32), &first.host_id, &(first.attempt as i32), &seqs, &streams, &texts, &ats],
    )
    .await?;
    Ok(())
}
