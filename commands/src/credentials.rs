//! Storing secrets: sealed in the credentials table, announced by an event
//! that carries only the id, kind, name and keyed fingerprint.

use opspilot_domain::rbac::Permission;
use opspilot_domain::credential::{Credential, CredentialCommand, CredentialKind};
use opspilot_domain::{stream_id_of, DomainError, EventScope, ResourceName};
use serde_json::json;
use uuid::Uuid;

use crate::{CommandContext, Commands, DecideClone, Handled, Result};

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
        // The sealed secret lands in the transaction of its event: refused,
        // repeated or interrupted, nothing is left behind.
        let sealed = self.vault.prepare(id, &kind_name, secret.as_bytes());
        let fingerprint = sealed.fingerprint.clone();
        let cmd = CredentialCommand::Store { credential_id: id, name: name.clone(), kind, fingerprint: fingerprint.clone(), project_id };
        let mut scope = EventScope::resource("credential", id);
        scope.project_id = project_id.map(|p| p.to_string());
        self.execute_sealing::<Credential>(
            ctx,
            "store_credential",
            &stream_id_of::<Credential>(id),
            &scope,
            |s| s.decide_clone(&cmd),
            |_| json!({ "id": id, "name": name, "kind": kind, "fingerprint": fingerprint }),
            std::slice::from_ref(&sealed),
        )
        .await
    }
}
