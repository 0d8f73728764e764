//! Compose releases: the release lifecycle of SPEC §2 on a Docker Compose
//! host. Preview renders the compose file, has the host validate it
//! (`docker compose config`) and diffs it against the deployed one; apply
//! uploads it, keeps the previous file and runs `up -d`; rollback re-applies
//! the previous release's file. Facts go to `compose-release-<id>`.

use opspilot_domain::rbac::Permission;
use std::time::Duration;

use opspilot_domain::catalog::{ComposePlacement, DeployTarget};
use opspilot_domain::compose::{ComposeEvent, ComposeFact, ComposeService};
use opspilot_domain::host::Host;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope};
use opspilot_ssh::{RunOptions, SshSession};
use serde_json::json;
use uuid::Uuid;

use crate::releases::Resolved;
use crate::{CommandContext, Commands, Result};

/// The compose file's name inside the project directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";

/// Runs a command (through sudo for non-root users) and answers its stdout,
/// or a dictionary error: a missing docker or compose plugin is
/// `compose_binary_missing`, an engine that does not answer
/// `compose_host_unhealthy`.
pub(crate) async fn run_checked(session: &SshSession, cmd: &str, timeout: Duration) -> std::result::Result<String, DomainError> {
    let opts = RunOptions { timeout, cancel: None, sudo: !session.is_root() };
    let mut stdout = String::new();
    let out = session
        .run(cmd, &opts, &mut |l: opspilot_ssh::OutputLine| {
            if l.stream == opspilot_ssh::Stream::Stdout {
                stdout.push_str(&l.line);
                stdout.push('\n');
            }
        })
        .await
        .map_err(|e| DomainError::new(e.code(), e.to_string()))?;
    if out.exit_code == Some(0) {
        return Ok(stdout);
    }
    let err = out.stderr_tail.trim().to_string();
    let first_line = err.lines().next().unwrap_or_default();
    // Without the compose plugin the docker CLI reads `compose`'s flags as its
    // own ("unknown flag: --short", "unknown shorthand flag: 'p' in -p") and
    // prints its whole help; the first line is what matters.
    let plugin_missing = ["is not a docker command", "unknown command", "unknown flag", "unknown shorthand flag"].iter().any(|m| first_line.contains(m));
    if out.exit_code == Some(127) || err.contains("docker: command not found") || plugin_missing {
        return Err(DomainError::new(ErrorCode::ComposeBinaryMissing, format!("docker or its compose plugin is missing: {first_line}")));
    }
    let code = if err.contains("Cannot connect to the Docker daemon") || err.contains("Is the docker daemon running") { ErrorCode::ComposeHostUnhealthy } else { ErrorCode::ValidationError };
    Err(DomainError::new(code, if err.is_empty() { format!("exit status {:?}", out.exit_code) } else { err }))
}

fn q(s: &str) -> String {
    opspilot_ssh::quote(s).expect("paths and names are validated")
}

/// Where a compose target's files are.
pub(crate) struct ComposeSite {
    pub placement: ComposePlacement,
    pub host: Host,
}

impl ComposeSite {
    fn file(&self) -> String {
        format!("{}/{COMPOSE_FILE}", self.placement.project_dir)
    }
    fn compose(&self, file: &str, args: &str) -> String {
        format!("docker compose -p {} -f {} {args}", q(&self.placement.project_name), q(file))
    }
    fn fact(&self, release_id: Uuid, target_id: Uuid, operation: &str, error_key: &str, summary: String) -> ComposeFact {
        ComposeFact {
            release_id,
            environment_id: self.placement.environment_id,
            target_id,
            host_id: self.host.id.unwrap_or_default(),
            project_name: self.placement.project_name.clone(),
            compose_file: self.file(),
            operation: operation.into(),
            error_key: error_key.into(),
            summary,
            execution: None,
        }
    }
}

impl Commands {
    /// The host and project of a compose target.
    pub(crate) async fn compose_site(&self, target: &DeployTarget) -> Result<ComposeSite> {
        let placement = target.compose.clone().ok_or_else(|| DomainError::validation("target_id", "the target has no compose placement"))?;
        let (host, _) = self.load::<Host>(&stream_id_of::<Host>(placement.host_id)).await?;
        if !host.exists() {
            return Err(DomainError::new(ErrorCode::NotFound, "the target's host does not exist").into());
        }
        Ok(ComposeSite { placement, host })
    }

    async fn compose_session(&self, site: &ComposeSite) -> Result<SshSession> {
        match self.connect_host(&site.host).await {
            Ok(s) => Ok(s),
            Err(e) => {
                self.record_host_failure(&site.host, &e).await?;
                Err(crate::hosts::ssh_error(e).into())
            }
        }
    }

    /// Checks a rendered compose file on its host; answers the diff against
    /// the deployed file. Records `compose.preflight_*` and `compose.config_rendered`.
    pub(crate) async fn check_compose_preview(&self, ctx: &CommandContext, release_id: Uuid, scope: &EventScope, resolved: &Resolved, rendered: &str) -> Result<serde_json::Value> {
        let site = self.compose_site(&resolved.target).await?;
        let target_id = resolved.spec.target_id;
        let stream = format!("compose-release-{release_id}");
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Mapping>(rendered).map_err(|e| e.to_string()).and_then(|m| {
            if m.contains_key("services") {
                Ok(())
            } else {
                Err("the compose file has no services".to_string())
            }
        }) {
            return Err(DomainError::validation("manifest_template", format!("the rendered compose file is not valid: {e}")).into());
        }
        self.compose_project_free(&resolved.target, &site).await?;
        let checked = async {
            let session = self.compose_session(&site).await?;
            let dir = format!("{}/.opspilot", site.placement.project_dir);
            let candidate = format!("{dir}/preview-{release_id}.yml");
            session
                .upload(opspilot_ssh::UploadSource::Bytes(rendered.as_bytes().to_vec()), &candidate, 0o644, None)
                .await
                .map_err(|e| DomainError::new(e.code(), e.to_string()))?;
            run_checked(&session, &site.compose(&candidate, "config -q"), Duration::from_secs(60)).await?;
            let deployed = run_checked(&session, &format!("cat {} 2>/dev/null || true", q(&site.file())), Duration::from_secs(30)).await?;
            let _ = run_checked(&session, &format!("rm -f {}", q(&candidate)), Duration::from_secs(30)).await;
            Ok::<String, crate::CommandError>(deployed)
        }
        .await;
        let deployed = match checked {
            Ok(d) => d,
            Err(e) => {
                let fact = site.fact(release_id, target_id, "apply", e.code().key(), e.to_string());
                self.record(ctx, &stream, scope, &[ComposeEvent::PreflightFailed(fact)]).await?;
                return Err(e);
            }
        };
        // The deployed file comes back line by line; compare whole lines.
        let rendered_lines = if rendered.ends_with('\n') { rendered.to_string() } else { format!("{rendered}\n") };
        let diff = similar::TextDiff::from_lines(deployed.as_str(), rendered_lines.as_str()).unified_diff().header("deployed", "rendered").to_string();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(rendered.as_bytes()));
        let facts = [
            ComposeEvent::PreflightSucceeded(site.fact(release_id, target_id, "apply", "", "docker compose config accepted the file".into())),
            ComposeEvent::ConfigRendered { fact: site.fact(release_id, target_id, "apply", "", format!("{} bytes", rendered.len())), sha256: sha },
        ];
        self.record(ctx, &stream, scope, &facts).await?;
        Ok(json!({ "host": site.host.name, "project_name": site.placement.project_name, "compose_file": site.file(), "diff": diff, "changed": deployed != rendered_lines }))
    }

    /// Another target using the same project on the same host is a conflict.
    async fn compose_project_free(&self, target: &DeployTarget, site: &ComposeSite) -> Result<()> {
        let c = self.store.pool().get().await.map_err(opspilot_eventstore::StoreError::from)?;
        let clash = c
            .query_opt(
                "SELECT name FROM catalog_targets WHERE runtime_type = 'compose' AND id <> $1
                 AND compose->>'host_id' = $2 AND compose->>'project_name' = $3 LIMIT 1",
                &[&target.id, &site.placement.host_id.to_string(), &site.placement.project_name],
            )
            .await
            .map_err(opspilot_eventstore::StoreError::from)?;
        if let Some(row) = clash {
            let other: String = row.get(0);
            return Err(DomainError::new(ErrorCode::ComposeProjectConflict, format!("target {other} already uses project {} on this host", site.placement.project_name)).into());
        }
        Ok(())
    }

    /// Puts `rendered` in place of the project's compose file (the previous one
    /// kept as `docker-compose.yml.prev`) and runs `up -d`; then collects `ps`.
    /// Records the `compose.*` facts; answers a summary.
    /// Uploads the file and runs `up -d` for the release's `execution`; its
    /// facts carry the execution, so a restarted executor finds the outcome.
    pub(crate) async fn compose_up(&self, release_id: Uuid, execution: i64, scope: &EventScope, target: &DeployTarget, rendered: &str, rollback: bool) -> Result<String> {
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let site = self.compose_site(target).await?;
        let target_id = target.id.unwrap_or_default();
        let stream = format!("compose-release-{release_id}");
        let op = if rollback { "rollback" } else { "apply" };
        let fact = |error_key: &str, summary: String| ComposeFact { execution: Some(execution), ..site.fact(release_id, target_id, op, error_key, summary) };
        let started = fact("", format!("docker compose up -d in {}", site.placement.project_dir));
        self.record(&ctx, &stream, scope, &[if rollback { ComposeEvent::RollbackStarted(started) } else { ComposeEvent::UpStarted(started) }]).await?;
        let outcome = async {
            let session = self.compose_session(&site).await?;
            let file = site.file();
            let next = format!("{file}.next");
            session
                .upload(opspilot_ssh::UploadSource::Bytes(rendered.as_bytes().to_vec()), &next, 0o644, None)
                .await
                .map_err(|e| DomainError::new(e.code(), e.to_string()))?;
            let swap = format!("if [ -f {f} ]; then cp -f {f} {f}.prev; fi && mv -f {n} {f}", f = q(&file), n = q(&next));
            run_checked(&session, &swap, Duration::from_secs(30)).await?;
            let up = run_checked(&session, &site.compose(&file, "up -d --remove-orphans"), Duration::from_secs(300)).await;
            if let Err(e) = up {
                let code = if matches!(e.code, ErrorCode::ValidationError) { ErrorCode::ComposeUpFailed } else { e.code };
                return Err(DomainError::new(code, e.detail).into());
            }
            let services = self.compose_services(&session, &site).await?;
            Ok::<Vec<ComposeService>, crate::CommandError>(services)
        }
        .await;
        match outcome {
            Ok(services) => {
                let not_running: Vec<&ComposeService> = services.iter().filter(|s| s.state != "running").collect();
                let summary = format!("{} service container(s) running in project {}", services.len(), site.placement.project_name);
                let mut facts = vec![ComposeEvent::PsCollected { fact: fact("", summary.clone()), services: services.clone() }];
                if !not_running.is_empty() || services.is_empty() {
                    let why = format!("not running after up: {}", not_running.iter().map(|s| format!("{} ({})", s.name, s.status)).collect::<Vec<_>>().join(", "));
                    let key = if rollback { ErrorCode::ComposeRollbackFailed } else { ErrorCode::ComposeUpFailed };
                    let fact = fact(key.key(), why.clone());
                    facts.push(if rollback { ComposeEvent::RollbackFailed(fact) } else { ComposeEvent::UpFailed(fact) });
                    self.record(&ctx, &stream, scope, &facts).await?;
                    return Err(DomainError::new(key, why).into());
                }
                let done = fact("", "docker compose up -d completed".into());
                facts.push(if rollback { ComposeEvent::RollbackSucceeded(done) } else { ComposeEvent::UpSucceeded(done) });
                self.record(&ctx, &stream, scope, &facts).await?;
                Ok(summary)
            }
            Err(e) => {
                let key = match (rollback, e.code()) {
                    (true, ErrorCode::ComposeUpFailed) => ErrorCode::ComposeRollbackFailed,
                    (_, c) => c,
                };
                let fact = fact(key.key(), e.to_string());
                self.record(&ctx, &stream, scope, &[if rollback { ComposeEvent::RollbackFailed(fact) } else { ComposeEvent::UpFailed(fact) }]).await?;
                Err(DomainError::new(key, e.to_string()).into())
            }
        }
    }

    async fn compose_services(&self, session: &SshSession, site: &ComposeSite) -> Result<Vec<ComposeService>> {
        let out = run_checked(session, &site.compose(&site.file(), "ps -a --format json"), Duration::from_secs(60))
            .await
            .map_err(|e| DomainError::new(if e.code == ErrorCode::ValidationError { ErrorCode::ComposePsFailed } else { e.code }, e.detail))?;
        // Compose prints one JSON object per line (older versions: one array).
        let mut values: Vec<serde_json::Value> = Vec::new();
        for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Array(a)) => values.extend(a),
                Ok(v) => values.push(v),
                Err(e) => return Err(DomainError::new(ErrorCode::ComposePsFailed, format!("unreadable ps output: {e}")).into()),
            }
        }
        let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        Ok(values.iter().map(|v| ComposeService { service: s(v, "Service"), name: s(v, "Name"), state: s(v, "State"), status: s(v, "Status"), image: s(v, "Image") }).collect())
    }

    /// `docker compose ps` of a compose target, now.
    pub async fn compose_ps(&self, ctx: &CommandContext, target: &str) -> Result<serde_json::Value> {
        let (t, site) = self.visible_compose_target(ctx, target).await?;
        let session = self.compose_session(&site).await?;
        let services = self.compose_services(&session, &site).await?;
        Ok(json!({ "target_id": t.id, "project_name": site.placement.project_name, "host": site.host.name, "services": services }))
    }

    /// The last `tail` log lines of a compose target's services.
    pub async fn compose_logs(&self, ctx: &CommandContext, target: &str, service: Option<&str>, tail: u32) -> Result<serde_json::Value> {
        let (t, site) = self.visible_compose_target(ctx, target).await?;
        if let Some(s) = service {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                return Err(DomainError::validation("service", "a compose service name").into());
            }
        }
        let session = self.compose_session(&site).await?;
        let args = format!("logs --no-color --tail {} {}", tail.clamp(1, 5000), service.map(q).unwrap_or_default());
        let out = run_checked(&session, &site.compose(&site.file(), &args), Duration::from_secs(60))
            .await
            .map_err(|e| DomainError::new(if e.code == ErrorCode::ValidationError { ErrorCode::ComposePsFailed } else { e.code }, e.detail))?;
        Ok(json!({ "target_id": t.id, "project_name": site.placement.project_name, "lines": out.lines().collect::<Vec<_>>() }))
    }

    async fn visible_compose_target(&self, ctx: &CommandContext, target: &str) -> Result<(DeployTarget, ComposeSite)> {
        self.authorize(ctx, Permission::DeployReleaseRead, "compose.read").await?;
        let id = crate::ids::resolve("deploy_target", target);
        let (t, _) = self.load::<DeployTarget>(&stream_id_of::<DeployTarget>(id)).await?;
        if !t.project_id.is_some_and(|p| ctx.principal().map(|pr| pr.sees_project(p)).unwrap_or(false)) || t.runtime_type != "compose" {
            return Err(DomainError::new(ErrorCode::NotFound, format!("compose target {target} does not exist")).into());
        }
        let site = self.compose_site(&t).await?;
        Ok((t, site))
    }
}
