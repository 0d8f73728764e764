//! Storing secrets: sealed in the credentials table, announced by an event
//! that carries only the id, kind, name and keyed fingerprint.

use opspilot_domain::credential::{Credential, CredentialCommand, CredentialKind};
use opspilot_domain::rbac::Permission;
use opspilot_domain::{stream_id_of, Aggregate, DomainError, EventScope, ResourceName};
use opspilot_eventstore::SealedSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{new_event, Beside, CommandContext, Commands, DecideClone, Handled, Result};

/// A credential checked and sealed, not yet stored: its event and sealed
/// secret go into the transaction of whichever command stores it.
pub(crate) struct PreparedCredential {
    pub id: Uuid,
    stream: String,
    scope: EventScope,
    cmd: CredentialCommand,
    sealed: SealedSecret,
    answer: Value,
}

impl PreparedCredential {
    /// The credential's new stream and its secret, for a command that stores
    /// it beside its own events.
    pub fn beside(&self) -> Result<Beside> {
        let events = Credential::default().decide(self.cmd.clone())?;
        let events = events.iter().map(|e| new_event(e, &self.scope)).collect();
        Ok(Beside { streams: vec![(self.stream.clone(), events)], secrets: vec![self.sealed.clone()] })
    }
}

impl Commands {
    /// Seals and stores a secret (`credential:manage`); answers id and fingerprint.
    pub async fn store_credential(
        &self,
        ctx: &CommandContext,
        name: &str,
        kind: &str,
        secret: &str,
        project: Option<&str>,
    ) -> Result<Handled> {
        let p = self.prepare_credential(ctx, name, kind, secret, project).await?;
        // The sealed secret lands in the transaction of its event: refused,
        // repeated or interrupted, nothing is left behind.
        let beside = Beside { streams: Vec::new(), secrets: vec![p.sealed.clone()] };
        self.execute_beside::<Credential>(ctx, "store_credential", &p.stream, &p.scope, |s| s.decide_clone(&p.cmd), |_| p.answer.clone(), &beside).await
    }

    /// Checks and seals a new credential (`credential:manage`) without
    /// storing it.
    pub(crate) async fn prepare_credential(
        &self,
        ctx: &CommandContext,
        name: &str,
        kind: &str,
        secret: &str,
        project: Option<&str>,
    ) -> Result<PreparedCredential> {
        self.authorize(ctx, Permission::CredentialManage, "credential.store").await?;
        let name = ResourceName::parse("name", name)?;
        let kind = CredentialKind::parse(kind)?;
        if secret.is_empty() || secret.len() > 1024 * 1024 {
            return Err(DomainError::validation("secret", "give 1 byte to 1 MiB of secret material").into());
        }
        let project_id = match project {
            Some(p) => Some(self.existing_project(p).await?),
            None => None,
        };
        let id = Uuid::new_v4();
        let kind_name = serde_json::to_value(kind).expect("kind serializes").as_str().unwrap_or_default().to_string();
        let sealed = self.vault.prepare(id, &kind_name, secret.as_bytes());
        let fingerprint = sealed.fingerprint.clone();
        let cmd = CredentialCommand::Store { credential_id: id, name: name.clone(), kind, fingerprint: fingerprint.clone(), project_id };
        let mut scope = EventScope::resource("credential", id);
        scope.project_id = project_id.map(|p| p.to_string());
        let answer = json!({ "id": id, "name": name, "kind": kind, "fingerprint": fingerprint });
        Ok(PreparedCredential { id, stream: stream_id_of::<Credential>(id), scope, cmd, sealed, answer })
    }
}
