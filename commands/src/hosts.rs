//! Hosts: registration (the login secret sealed as a credential), host-key
//! scan and trust by an admin, connectivity checks, and the SSH sessions
//! tasks and compose releases open.

use opspilot_domain::rbac::Permission;
use std::collections::BTreeMap;
use std::time::Duration;

use opspilot_domain::host::{Host, HostAccess, HostCommand};
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope, ResourceName};
use opspilot_ssh::{SshAuth, SshError, SshSession, SshTarget};
use serde_json::json;
use uuid::Uuid;

use crate::ids::{id_for, resolve};
use crate::{Beside, CommandContext, Commands, DecideClone, Handled, Result};

/// What a user registers (the seed's host fields).
#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub project: String,
    pub ip: String,
    pub port: u16,
    pub ssh_user: String,
    /// `key` or `password`.
    pub auth: String,
    /// An existing credential (id or name) holding the key or password...
    pub credential: Option<String>,
    /// ...or the secret itself, sealed as a new credential.
    pub secret: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What a user changes of a host; what is absent stays. A new `secret`
/// is sealed as a new credential; changing `auth` needs one (or `credential`).
#[derive(Debug, Clone, Default)]
pub struct HostPatch {
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub ssh_user: Option<String>,
    pub auth: Option<String>,
    pub credential: Option<String>,
    pub secret: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

fn host_scope(h: &Host) -> EventScope {
    let mut s = EventScope::resource("host", h.id.map(|i| i.to_string()).unwrap_or_default());
    s.project_id = h.project_id.map(|p| p.to_string());
    s
}

impl Commands {
    /// A host the caller may see; others do not exist for them.
    pub async fn visible_host(&self, ctx: &CommandContext, host: &str) -> Result<Host> {
        let id = resolve("host", host);
        let (h, _) = self.load::<Host>(&stream_id_of::<Host>(id)).await?;
        let p = ctx.principal()?;
        match h.project_id {
            Some(project) if h.exists() && p.sees_project(project) => Ok(h),
            _ => Err(DomainError::new(ErrorCode::NotFound, format!("host {host} does not exist")).into()),
        }
    }

    /// Registers a host (`host:manage`). No host key is trusted yet.
    pub async fn register_host(&self, ctx: &CommandContext, h: NewHost) -> Result<Handled> {
        self.authorize(ctx, Permission::HostManage, "host.register").await?;
        let name = ResourceName::parse("name", &h.name)?;
        let project_id = self.existing_project(&h.project).await?;
        ctx.principal()?.require_project(project_id)?;
        if !["key", "password"].contains(&h.auth.as_str()) {
            return Err(DomainError::validation("auth", "key or password").into());
        }
        let host_id = id_for("host", name.as_str());
        // A new secret is stored in the transaction of host.registered: a refused host leaves nothing behind.
        let (credential_id, beside) = self.host_credential(ctx, name.as_str(), &h.auth, h.credential.as_deref(), h.secret.as_deref(), &h.project).await?;
        let access = HostAccess { ip: h.ip.clone(), port: h.port, ssh_user: h.ssh_user.clone(), auth_type: h.auth.clone(), credential_id };
        let cmd = HostCommand::Register { host_id, name: name.clone(), project_id, access, labels: h.labels.clone() };
        let scope = EventScope::resource("host", host_id).in_project(project_id);
        let answer = json!({ "id": host_id, "name": name, "status": "pending_trust", "credential_id": credential_id });
        self.execute_beside::<Host>(ctx, "host.register", &stream_id_of::<Host>(host_id), &scope, |s| s.decide_clone(&cmd), |_| answer.clone(), &beside).await
    }

    /// Changes how a host is reached or its labels (`host:manage`). The pinned
    /// key stays: a different machine behind a new address is refused with
    /// `ssh_host_key_mismatch` until an admin trusts its key.
    pub async fn update_host(&self, ctx: &CommandContext, host: &str, patch: HostPatch) -> Result<Handled> {
        self.authorize(ctx, Permission::HostManage, "host.update").await?;
        let h = self.visible_host(ctx, host).await?;
        let id = h.id.expect("visible host has an id");
        let name = h.name.clone().expect("visible host has a name");
        let current = h.access.clone().expect("registered host has access");
        let auth = patch.auth.clone().unwrap_or_else(|| current.auth_type.clone());
        let mut access = HostAccess {
            ip: patch.ip.clone().unwrap_or(current.ip.clone()),
            port: patch.port.unwrap_or(current.port),
            ssh_user: patch.ssh_user.clone().unwrap_or(current.ssh_user.clone()),
            auth_type: auth.clone(),
            credential_id: current.credential_id,
        };
        let labels = patch.labels.clone().unwrap_or_else(|| h.labels.clone());
        if auth != current.auth_type && patch.credential.is_none() && patch.secret.is_none() {
            return Err(DomainError::validation("auth", format!("switching to {auth} needs its private_key/password or a credential_id")).into());
        }
        // A new secret is stored in the transaction of host.updated, or not at all.
        let beside;
        (access.credential_id, beside) = match (&patch.credential, &patch.secret) {
            (None, None) => (current.credential_id, Beside::default()),
            (Some(_), Some(_)) => return Err(DomainError::validation("credential_id", "give either credential_id or the private_key/password").into()),
            (credential, secret) => self.host_credential(ctx, name.as_str(), &auth, credential.as_deref(), secret.as_deref(), &h.project_id.expect("host project").to_string()).await?,
        };
        let cmd = HostCommand::Update { access: access.clone(), labels };
        let answer = json!({ "id": id, "name": name, "ip": access.ip, "port": access.port, "ssh_user": access.ssh_user, "auth": access.auth_type, "credential_id": access.credential_id });
        self.execute_beside::<Host>(ctx, "host.update", &stream_id_of::<Host>(id), &host_scope(&h), |s| s.decide_clone(&cmd), |_| answer.clone(), &beside).await
    }

    /// Removes a host from OpsPilot (`host:manage`); nothing on the machine
    /// changes. Refused while an environment or a compose target uses it.
    pub async fn delete_host(&self, ctx: &CommandContext, host: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::HostManage, "host.delete").await?;
        let h = self.visible_host(ctx, host).await?;
        let id = h.id.expect("visible host has an id");
        let c = self.store.pool().get().await.map_err(opspilot_eventstore::StoreError::from)?;
        let user = c
            .query_opt(
                "SELECT 'environment ' || e.name FROM environment_nodes n JOIN environments e ON e.id = n.environment_id WHERE n.host_id = $1
                 UNION ALL SELECT 'compose target ' || name FROM catalog_targets WHERE compose->>'host_id' = $2 LIMIT 1",
                &[&id, &id.to_string()],
            )
            .await
            .map_err(opspilot_eventstore::StoreError::from)?;
        if let Some(row) = user {
            let by: String = row.get(0);
            return Err(DomainError::new(ErrorCode::ResourceConflict, format!("{by} uses this host: unbind it first")).into());
        }
        self.execute::<Host>(ctx, "host.delete", &stream_id_of::<Host>(id), &host_scope(&h), |s| s.decide_clone(&HostCommand::Delete), |_| json!({ "id": id, "deleted": true })).await
    }

    /// The credential of a host's login: an existing one (id or name), or the
    /// secret sealed as a new one, to be stored beside the host's event.
    async fn host_credential(&self, ctx: &CommandContext, name: &str, auth: &str, credential: Option<&str>, secret: Option<&str>, project: &str) -> Result<(Uuid, Beside)> {
        let kind = match auth {
            "key" => "ssh_private_key",
            "password" => "ssh_password",
            _ => return Err(DomainError::validation("auth", "key or password").into()),
        };
        match (credential, secret) {
            (Some(c), None) => {
                let id = resolve("credential", c);
                if self.vault.get(id).await?.is_none() {
                    return Err(DomainError::validation("credential_id", format!("credential {c} does not exist")).into());
                }
                Ok((id, Beside::default()))
            }
            (None, Some(secret)) => {
                if auth == "key" && !secret.contains("PRIVATE KEY-----") {
                    return Err(DomainError::validation("private_key", "an OpenSSH or PKCS#8 private key in PEM form, without a passphrase").into());
                }
                let prepared = self.prepare_credential(ctx, &format!("host-{name}-ssh"), kind, secret, Some(project)).await?;
                Ok((prepared.id, prepared.beside()?))
            }
            _ => Err(DomainError::validation("credential_id", "give either credential_id or the private_key/password").into()),
        }
    }

    /// Shows the key a host presents now, for an admin to compare with the
    /// machine's real key before trusting it. Records nothing.
    pub async fn scan_host_key(&self, ctx: &CommandContext, host: &str) -> Result<serde_json::Value> {
        self.authorize(ctx, Permission::HostRead, "host.scan").await?;
        let h = self.visible_host(ctx, host).await?;
        let access = h.access.clone().expect("registered host has access");
        let presented = opspilot_ssh::scan_host_key(&access.ip, access.port, self.ssh_connect_timeout).await.map_err(ssh_error)?;
        Ok(json!({
            "host_id": h.id, "presented_fingerprint": presented, "trusted_fingerprint": h.pinned_fingerprint,
            "matches": h.pinned_fingerprint.as_deref() == Some(presented.as_str()),
        }))
    }

    /// An admin trusts (or re-trusts) a host key by its fingerprint.
    pub async fn trust_host_key(&self, ctx: &CommandContext, host: &str, fingerprint: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::HostManage, "host.trust_key").await?;
        let h = self.visible_host(ctx, host).await?;
        let p = ctx.principal()?.clone();
        let cmd = HostCommand::TrustHostKey { fingerprint: fingerprint.trim().to_string(), by: p.user_id, is_admin: p.is_admin() };
        let id = h.id.expect("visible host has an id");
        let answer = json!({ "host_id": id, "fingerprint": fingerprint.trim(), "status": "active" });
        let handled = self.execute::<Host>(ctx, "host.trust_key", &stream_id_of::<Host>(id), &host_scope(&h), |s| s.decide_clone(&cmd), |_| answer.clone()).await;
        if let Err(e) = &handled {
            if e.code() == ErrorCode::PermissionDenied {
                if let crate::CommandError::Domain(d) = e {
                    self.deny(ctx, "host.trust_key", "admin", d).await?;
                }
            }
        }
        handled
    }

    /// Connects to a host and records the outcome (`host.connectivity_checked`).
    pub async fn check_host(&self, ctx: &CommandContext, host: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::HostRead, "host.check").await?;
        let h = self.visible_host(ctx, host).await?;
        let outcome = match self.connect_host(&h).await {
            Ok(session) => session.exec("uname -srm", Duration::from_secs(10)).await.map(|o| o.stdout.trim().to_string()),
            Err(e) => Err(e),
        };
        let (error_key, presented, summary) = match &outcome {
            Ok(uname) => (None, None, uname.clone()),
            Err(e) => (Some(e.code()), presented_of(e), e.to_string()),
        };
        let id = h.id.expect("visible host has an id");
        let cmd = HostCommand::RecordCheck { error_key, presented_fingerprint: presented.clone(), summary: summary.clone(), at: ctx.now };
        let answer = json!({
            "host_id": id, "reachable": outcome.is_ok(), "error_key": error_key.map(|e| e.key()), "presented_fingerprint": presented,
            "summary": summary,
        });
        self.execute::<Host>(ctx, "host.check", &stream_id_of::<Host>(id), &host_scope(&h), |s| s.decide_clone(&cmd), |_| answer.clone()).await
    }

    /// Records what a task or release learnt of a host when connecting failed.
    pub(crate) async fn record_host_failure(&self, h: &Host, e: &SshError) -> Result<()> {
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let id = h.id.expect("loaded host has an id");
        let cmd = HostCommand::RecordCheck { error_key: Some(e.code()), presented_fingerprint: presented_of(e), summary: e.to_string(), at: ctx.now };
        self.execute::<Host>(&ctx, "host.check", &stream_id_of::<Host>(id), &host_scope(h), |s| s.decide_clone(&cmd), |_| json!({})).await?;
        Ok(())
    }

    /// The SSH target of a host: address, login secret, pinned key. A host
    /// without a trusted key cannot be reached (`ssh_host_key_mismatch`).
    pub(crate) async fn ssh_target(&self, h: &Host) -> Result<SshTarget> {
        let access = h.access.clone().ok_or_else(|| DomainError::new(ErrorCode::NotFound, "host does not exist"))?;
        let name = h.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        let pinned = h.pinned_fingerprint.clone().ok_or_else(|| {
            DomainError::new(ErrorCode::SshHostKeyMismatch, format!("no host key of {name} is trusted yet: scan it and have an admin trust it"))
        })?;
        let secret = self.vault.get(access.credential_id).await?.ok_or_else(|| DomainError::new(ErrorCode::SshAuthFailed, format!("the credential of {name} is gone")))?;
        let secret = String::from_utf8(secret).map_err(|_| DomainError::new(ErrorCode::SshAuthFailed, "the stored secret is not text"))?;
        let auth = if access.auth_type == "password" { SshAuth::Password(secret) } else { SshAuth::PrivateKey(secret) };
        Ok(SshTarget { address: access.ip, port: access.port, user: access.ssh_user, auth, pinned_fingerprint: pinned, connect_timeout: self.ssh_connect_timeout })
    }

    /// Opens an authenticated session to a host.
    pub(crate) async fn connect_host(&self, h: &Host) -> std::result::Result<SshSession, SshError> {
        let target = match self.ssh_target(h).await {
            Ok(t) => t,
            Err(e) => {
                let pinned = h.pinned_fingerprint.clone().unwrap_or_else(|| "nothing".into());
                return Err(match e.code() {
                    ErrorCode::SshHostKeyMismatch => SshError::HostKeyMismatch { address: h.access.as_ref().map(|a| a.ip.clone()).unwrap_or_default(), pinned, presented: String::new() },
                    _ => SshError::AuthFailed { address: h.access.as_ref().map(|a| a.ip.clone()).unwrap_or_default(), user: h.access.as_ref().map(|a| a.ssh_user.clone()).unwrap_or_default() },
                });
            }
        };
        SshSession::connect(&target).await
    }
}

/// The key a host presented, when a pin refused it.
fn presented_of(e: &SshError) -> Option<String> {
    match e {
        SshError::HostKeyMismatch { presented, .. } if !presented.is_empty() => Some(presented.clone()),
        _ => None,
    }
}

/// An SSH failure as a dictionary error.
pub(crate) fn ssh_error(e: SshError) -> DomainError {
    DomainError::new(e.code(), e.to_string())
}
