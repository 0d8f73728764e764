//! Credential aggregate: a secret (SSH key or password, kubeconfig, token,
//! client key, CA key, auth_pass) kept encrypted beside the event store. The
//! events know only its id, kind, name and a keyed fingerprint — never the secret.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent};
use crate::name::ResourceName;

/// The kinds of secret OpsPilot keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    SshPrivateKey,
    SshPassword,
    Kubeconfig,
    BearerToken,
    ClientKey,
    CaKey,
    KeepalivedAuthPass,
    Generic,
}

impl CredentialKind {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        serde_json::from_value(serde_json::Value::String(s.into()))
            .map_err(|_| DomainError::validation("kind", format!("unknown credential kind {s:?}")))
    }
}

/// What a credential can be asked to do.
#[derive(Debug, Clone)]
pub enum CredentialCommand {
    Store { credential_id: Uuid, name: ResourceName, kind: CredentialKind, fingerprint: String, project_id: Option<Uuid> },
    Delete,
}

/// What a credential records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum CredentialEvent {
    #[serde(rename = "credential.stored")]
    Stored { credential_id: Uuid, name: ResourceName, kind: CredentialKind, fingerprint: String, project_id: Option<Uuid> },
    #[serde(rename = "credential.deleted")]
    Deleted { credential_id: Uuid },
}

impl DomainEvent for CredentialEvent {}

/// A credential's state.
#[derive(Debug, Clone, Default)]
pub struct Credential {
    pub id: Option<Uuid>,
    pub deleted: bool,
}

impl Aggregate for Credential {
    type Command = CredentialCommand;
    type Event = CredentialEvent;
    const KIND: &'static str = "credential";

    fn decide(&self, command: CredentialCommand) -> Result<Vec<CredentialEvent>, DomainError> {
        match command {
            CredentialCommand::Store { credential_id, name, kind, fingerprint, project_id } => {
                if self.id.is_some() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, "credential already stored"));
                }
                Ok(vec![CredentialEvent::Stored { credential_id, name, kind, fingerprint, project_id }])
            }
            CredentialCommand::Delete => match self.id {
                Some(credential_id) if !self.deleted => Ok(vec![CredentialEvent::Deleted { credential_id }]),
                Some(_) => Ok(vec![]),
                None => Err(DomainError::new(ErrorCode::NotFound, "credential does not exist")),
            },
        }
    }

    fn evolve(mut self, event: &CredentialEvent) -> Self {
        match event {
            CredentialEvent::Stored { credential_id, .. } => self.id = Some(*credential_id),
            CredentialEvent::Deleted { .. } => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    #[test]
    fn a_credential_is_stored_once_and_deleted_once() {
        let id = Uuid::from_u128(5);
        let stored = CredentialEvent::Stored {
            credential_id: id,
            name: ResourceName::parse("n", "cp-1-key").unwrap(),
            kind: CredentialKind::SshPrivateKey,
            fingerprint: "hmac:00".into(),
            project_id: None,
        };
        given::<Credential>(vec![stored.clone()]).when(CredentialCommand::Delete).then_expect_events(vec![CredentialEvent::Deleted { credential_id: id }]);
        given::<Credential>(vec![stored, CredentialEvent::Deleted { credential_id: id }]).when(CredentialCommand::Delete).then_expect_events(vec![]);
    }

    #[test]
    fn unknown_kinds_are_refused() {
        assert_eq!(CredentialKind::parse("ssh_private_key").unwrap(), CredentialKind::SshPrivateKey);
        assert_eq!(CredentialKind::parse("pgp").unwrap_err().code, ErrorCode::ValidationError);
    }
}
