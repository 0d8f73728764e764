//! Host aggregate: a Linux machine OpsPilot reaches over SSH (SPEC §7).
//!
//! Host keys are pinned. Registering a host trusts nothing: a host is
//! `pending_trust` until an admin trusts the fingerprint they were shown (a
//! scan), and a host presenting another key later is refused with
//! `ssh_host_key_mismatch` until an admin trusts the new one. OpsPilot never
//! accepts a key on its own.
//!
//! The login secret (private key or password) is a credential; events carry
//! its id only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventStatus, Severity};
use crate::name::ResourceName;

/// How a host's login is authenticated.
pub const AUTH_TYPES: &[&str] = &["key", "password"];

/// What the last check (or trust) says of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Registered; no host key trusted yet.
    #[default]
    PendingTrust,
    Active,
    Unreachable,
    AuthFailed,
    /// The host presented a key other than the pinned one.
    KeyMismatch,
}

impl HostStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::PendingTrust => "pending_trust",
            HostStatus::Active => "active",
            HostStatus::Unreachable => "unreachable",
            HostStatus::AuthFailed => "auth_failed",
            HostStatus::KeyMismatch => "key_mismatch",
        }
    }
}

/// How to reach a host and log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAccess {
    pub ip: String,
    pub port: u16,
    pub ssh_user: String,
    /// `key` or `password`.
    pub auth_type: String,
    pub credential_id: Uuid,
}

impl HostAccess {
    fn check(&self) -> Result<(), DomainError> {
        if self.ip.parse::<IpAddr>().is_err() {
            return Err(DomainError::validation("ip", "an IPv4 or IPv6 address"));
        }
        if self.port == 0 {
            return Err(DomainError::validation("port", "1 to 65535"));
        }
        let user_ok = (1..=32).contains(&self.ssh_user.len())
            && self.ssh_user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && self.ssh_user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
        if !user_ok {
            return Err(DomainError::validation("ssh_user", "a Unix user name: lowercase letters, digits, '_', '-', '.'"));
        }
        if !AUTH_TYPES.contains(&self.auth_type.as_str()) {
            return Err(DomainError::validation("auth", "key or password"));
        }
        Ok(())
    }
}

/// Labels: free text is allowed in values (they are data, never shell), but
/// sizes are bounded.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if labels.len() > 64 {
        return Err(DomainError::validation("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > 63 || k.chars().any(|c| c.is_control()) {
            return Err(DomainError::validation("labels", "keys are 1-63 characters without control characters"));
        }
        if v.len() > 1024 {
            return Err(DomainError::validation("labels", format!("the value of {k} exceeds 1 KiB")));
        }
    }
    Ok(())
}

/// An OpenSSH `SHA256:<base64>` fingerprint.
pub fn check_fingerprint(fp: &str) -> Result<(), DomainError> {
    let ok = fp.strip_prefix("SHA256:").is_some_and(|b| b.len() == 43 && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::validation("fingerprint", "the host key fingerprint as SHA256:<43 base64 characters> (what a scan shows)"))
    }
}

/// What a host can be asked to do.
#[derive(Debug, Clone)]
pub enum HostCommand {
    Register { host_id: Uuid, name: ResourceName, project_id: Uuid, access: HostAccess, labels: BTreeMap<String, String> },
    Update { access: HostAccess, labels: BTreeMap<String, String> },
    /// An admin trusts the fingerprint they were shown.
    TrustHostKey { fingerprint: String, by: Uuid, is_admin: bool },
    /// The outcome of a connectivity check (or of a connection a task made).
    RecordCheck { error_key: Option<ErrorCode>, presented_fingerprint: Option<String>, summary: String, at: DateTime<Utc> },
    /// Removes the host from OpsPilot (nothing on the machine changes); the
    /// caller has checked no environment or compose target uses it.
    Delete,
}

/// What a host records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum HostEvent {
    #[serde(rename = "host.registered")]
    Registered { host_id: Uuid, name: ResourceName, project_id: Uuid, #[serde(flatten)] access: HostAccess, labels: BTreeMap<String, String> },
    #[serde(rename = "host.updated")]
    Updated { host_id: Uuid, #[serde(flatten)] access: HostAccess, labels: BTreeMap<String, String> },
    /// The fingerprint is pinned; `previous_fingerprint` is set on a re-trust.
    #[serde(rename = "host.key_trusted")]
    KeyTrusted { host_id: Uuid, fingerprint: String, previous_fingerprint: Option<String>, by: Uuid },
    /// The host is gone from OpsPilot; a host registered again under the
    /// name starts afresh, with no key trusted.
    #[serde(rename = "host.deleted")]
    Deleted { host_id: Uuid, name: ResourceName },
    #[serde(rename = "host.connectivity_checked")]
    ConnectivityChecked { host_id: Uuid, status: HostStatus, error_key: Option<String>, presented_fingerprint: Option<String>, summary: String, at: DateTime<Utc> },
}

impl DomainEvent for HostEvent {
    fn status(&self) -> EventStatus {
        match self {
            HostEvent::ConnectivityChecked { status: HostStatus::Active, .. } => EventStatus::Success,
            HostEvent::ConnectivityChecked { .. } => EventStatus::Failed,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            // A changed host key may be an attack.
            HostEvent::ConnectivityChecked { status: HostStatus::KeyMismatch, .. } => Severity::High,
            HostEvent::ConnectivityChecked { status: HostStatus::Active, .. } => Severity::Info,
            HostEvent::ConnectivityChecked { .. } => Severity::Medium,
            HostEvent::KeyTrusted { previous_fingerprint: Some(_), .. } => Severity::Medium,
            _ => Severity::Info,
        }
    }
}

/// A host as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub id: Option<Uuid>,
    pub name: Option<ResourceName>,
    pub project_id: Option<Uuid>,
    pub access: Option<HostAccess>,
    pub labels: BTreeMap<String, String>,
    pub pinned_fingerprint: Option<String>,
    pub status: HostStatus,
    pub deleted: bool,
}

impl Host {
    fn existing(&self) -> Result<Uuid, DomainError> {
        self.id.filter(|_| !self.deleted).ok_or_else(|| DomainError::new(ErrorCode::NotFound, "host does not exist"))
    }

    /// Whether the host exists (registered and not deleted).
    pub fn exists(&self) -> bool {
        self.existing().is_ok()
    }
}

impl Aggregate for Host {
    type Command = HostCommand;
    type Event = HostEvent;
    const KIND: &'static str = "host";

    fn decide(&self, command: HostCommand) -> Result<Vec<HostEvent>, DomainError> {
        match command {
            HostCommand::Register { host_id, name, project_id, access, labels } => {
                if self.exists() {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("host {name} already exists")));
                }
                access.check()?;
                check_labels(&labels)?;
                Ok(vec![HostEvent::Registered { host_id, name, project_id, access, labels }])
            }
            HostCommand::Update { access, labels } => {
                let host_id = self.existing()?;
                access.check()?;
                check_labels(&labels)?;
                if self.access.as_ref() == Some(&access) && self.labels == labels {
                    return Ok(vec![]);
                }
                Ok(vec![HostEvent::Updated { host_id, access, labels }])
            }
            HostCommand::TrustHostKey { fingerprint, by, is_admin } => {
                let host_id = self.existing()?;
                if !is_admin {
                    return Err(DomainError::new(ErrorCode::PermissionDenied, "only an admin trusts host keys"));
                }
                check_fingerprint(&fingerprint)?;
                if self.pinned_fingerprint.as_deref() == Some(fingerprint.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![HostEvent::KeyTrusted { host_id, fingerprint, previous_fingerprint: self.pinned_fingerprint.clone(), by }])
            }
            HostCommand::RecordCheck { error_key, presented_fingerprint, summary, at } => {
                let host_id = self.existing()?;
                let status = match error_key {
                    None => HostStatus::Active,
                    Some(ErrorCode::SshAuthFailed) => HostStatus::AuthFailed,
                    Some(ErrorCode::SshHostKeyMismatch) if self.pinned_fingerprint.is_none() => HostStatus::PendingTrust,
                    Some(ErrorCode::SshHostKeyMismatch) => HostStatus::KeyMismatch,
                    Some(_) => HostStatus::Unreachable,
                };
                if status == HostStatus::Active && self.pinned_fingerprint.is_none() {
                    return Err(DomainError::new(ErrorCode::SshHostKeyMismatch, "no host key is trusted for this host"));
                }
                Ok(vec![HostEvent::ConnectivityChecked { host_id, status, error_key: error_key.map(|e| e.key().to_string()), presented_fingerprint, summary, at }])
            }
            HostCommand::Delete => {
                let host_id = self.existing()?;
                Ok(vec![HostEvent::Deleted { host_id, name: self.name.clone().expect("existing host has a name") }])
            }
        }
    }

    fn evolve(mut self, event: &HostEvent) -> Self {
        match event {
            HostEvent::Registered { host_id, name, project_id, access, labels } => {
                self = Host::default();
                self.id = Some(*host_id);
                self.name = Some(name.clone());
                self.project_id = Some(*project_id);
                self.access = Some(access.clone());
                self.labels = labels.clone();
            }
            HostEvent::Updated { access, labels, .. } => {
                self.access = Some(access.clone());
                self.labels = labels.clone();
            }
            HostEvent::KeyTrusted { fingerprint, .. } => {
                self.pinned_fingerprint = Some(fingerprint.clone());
                self.status = HostStatus::Active;
            }
            HostEvent::ConnectivityChecked { status, .. } => self.status = *status,
            HostEvent::Deleted { .. } => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    const FP: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const FP2: &str = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn access() -> HostAccess {
        HostAccess { ip: "10.0.0.11".into(), port: 22, ssh_user: "root".into(), auth_type: "key".into(), credential_id: Uuid::nil() }
    }

    fn registered() -> HostEvent {
        HostEvent::Registered { host_id: Uuid::nil(), name: ResourceName::parse("name", "cp-1").unwrap(), project_id: Uuid::nil(), access: access(), labels: BTreeMap::new() }
    }

    #[test]
    fn registering_trusts_no_key() {
        let h = Host::fold([registered()].iter());
        assert_eq!(h.status, HostStatus::PendingTrust);
        assert!(h.pinned_fingerprint.is_none());
    }

    #[test]
    fn only_an_admin_trusts_a_key_and_a_fingerprint_is_required() {
        given::<Host>(vec![registered()]).when(HostCommand::TrustHostKey { fingerprint: FP.into(), by: Uuid::nil(), is_admin: false }).then_expect_error(ErrorCode::PermissionDenied);
        given::<Host>(vec![registered()]).when(HostCommand::TrustHostKey { fingerprint: "yes".into(), by: Uuid::nil(), is_admin: true }).then_expect_error(ErrorCode::ValidationError);
        given::<Host>(vec![registered()])
            .when(HostCommand::TrustHostKey { fingerprint: FP.into(), by: Uuid::nil(), is_admin: true })
            .then_expect_events(vec![HostEvent::KeyTrusted { host_id: Uuid::nil(), fingerprint: FP.into(), previous_fingerprint: None, by: Uuid::nil() }]);
    }

    #[test]
    fn a_re_trust_names_the_previous_key() {
        let trusted = HostEvent::KeyTrusted { host_id: Uuid::nil(), fingerprint: FP.into(), previous_fingerprint: None, by: Uuid::nil() };
        given::<Host>(vec![registered(), trusted.clone()])
            .when(HostCommand::TrustHostKey { fingerprint: FP2.into(), by: Uuid::nil(), is_admin: true })
            .then_expect_events(vec![HostEvent::KeyTrusted { host_id: Uuid::nil(), fingerprint: FP2.into(), previous_fingerprint: Some(FP.into()), by: Uuid::nil() }]);
        given::<Host>(vec![registered(), trusted]).when(HostCommand::TrustHostKey { fingerprint: FP.into(), by: Uuid::nil(), is_admin: true }).then_expect_events(vec![]);
    }

    #[test]
    fn a_changed_key_marks_the_host_until_re_trusted() {
        let trusted = HostEvent::KeyTrusted { host_id: Uuid::nil(), fingerprint: FP.into(), previous_fingerprint: None, by: Uuid::nil() };
        let at = DateTime::<Utc>::default();
        let check = HostCommand::RecordCheck { error_key: Some(ErrorCode::SshHostKeyMismatch), presented_fingerprint: Some(FP2.into()), summary: "changed".into(), at };
        let events = Host::fold([registered(), trusted].iter()).decide(check).unwrap();
        assert!(matches!(events[0], HostEvent::ConnectivityChecked { status: HostStatus::KeyMismatch, .. }));
    }

    #[test]
    fn a_deleted_host_is_gone_and_registered_again_trusts_nothing() {
        let trusted = HostEvent::KeyTrusted { host_id: Uuid::nil(), fingerprint: FP.into(), previous_fingerprint: None, by: Uuid::nil() };
        let deleted = HostEvent::Deleted { host_id: Uuid::nil(), name: ResourceName::parse("name", "cp-1").unwrap() };
        given::<Host>(vec![registered(), trusted.clone(), deleted.clone()]).when(HostCommand::Delete).then_expect_error(ErrorCode::NotFound);
        given::<Host>(vec![registered(), trusted.clone(), deleted.clone()]).when(HostCommand::Update { access: access(), labels: BTreeMap::new() }).then_expect_error(ErrorCode::NotFound);
        let again = Host::fold([registered(), trusted, deleted, registered()].iter());
        assert!(again.exists());
        assert_eq!((again.status, again.pinned_fingerprint), (HostStatus::PendingTrust, None), "the old trust does not carry over");
    }

    #[test]
    fn bad_access_is_refused() {
        let mut a = access();
        a.ip = "10.0.0.300".into();
        let cmd = HostCommand::Register { host_id: Uuid::nil(), name: ResourceName::parse("name", "h1").unwrap(), project_id: Uuid::nil(), access: a, labels: BTreeMap::new() };
        given::<Host>(vec![]).when(cmd).then_expect_error(ErrorCode::ValidationError);
        let mut a = access();
        a.ssh_user = "root; rm -rf /".into();
        let cmd = HostCommand::Register { host_id: Uuid::nil(), name: ResourceName::parse("name", "h1").unwrap(), project_id: Uuid::nil(), access: a, labels: BTreeMap::new() };
        given::<Host>(vec![]).when(cmd).then_expect_error(ErrorCode::ValidationError);
    }
}
