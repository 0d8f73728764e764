//! Cluster aggregate: a Kubernetes cluster OpsPilot can reach. External
//! clusters are imported (by kubeconfig, or endpoint + CA + token or client
//! certificate); the credentials live in the credentials store and events
//! carry only the credential id and fingerprint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};
use crate::event::{Aggregate, DomainEvent, EventStatus, Severity};
use crate::name::ResourceName;

/// How the cluster came to OpsPilot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    PlatformCreated,
    ExternalImported,
}

/// What an import established: connection facts the probe confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// `kubeconfig`, `cert_token` or `cert_key`.
    pub auth_type: String,
    pub endpoint: String,
    pub credential_id: Uuid,
    pub credential_fingerprint: String,
    pub server_version: String,
    pub namespaces_checked: Vec<String>,
    pub client_cert_expires_at: Option<DateTime<Utc>>,
    /// The certificates the connection carries (its CA, its client
    /// certificate): facts only, never key material.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertInfo>,
}

/// What OpsPilot may say about a certificate: no key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Stable name within the cluster, e.g. `apiserver`, `etcd/ca`, `client`.
    pub id: String,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// `sha256:<hex>` of the DER.
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub is_ca: bool,
}

impl CertInfo {
    /// Whole days from `now` until it expires (negative once expired).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        (self.not_after - now).num_days()
    }
}

/// What a cluster can be asked to do.
#[derive(Debug, Clone)]
pub enum ClusterCommand {
    /// Import an external cluster; with `replace`, give an imported cluster new credentials.
    Import { cluster_id: Uuid, name: ResourceName, project_id: Uuid, team_id: Uuid, labels: BTreeMap<String, String>, connection: Connection, replace: bool },
    /// Record the outcome of a connection test.
    RecordConnectionTest { ok: bool, server_version: Option<String>, permissions: BTreeMap<String, bool>, error_key: Option<String>, at: DateTime<Utc> },
    /// The scheduler saw a certificate within `threshold_days` of expiry;
    /// recorded once per certificate (serial) and threshold.
    RecordCertExpiring { cert: CertInfo, threshold_days: u32, at: DateTime<Utc> },
}

/// The thresholds (days ahead) at which an expiring certificate is recorded.
pub const CERT_EXPIRY_WARNINGS: [u32; 2] = [30, 7];

/// What a cluster records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail")]
pub enum ClusterEvent {
    #[serde(rename = "cluster.import_kubeconfig_requested")]
    ImportKubeconfigRequested { cluster_id: Uuid, name: ResourceName, endpoint: String },
    #[serde(rename = "cluster.import_kubeconfig_succeeded")]
    ImportKubeconfigSucceeded { cluster_id: Uuid, name: ResourceName, project_id: Uuid, team_id: Uuid, source_type: SourceType, labels: BTreeMap<String, String>, #[serde(flatten)] connection: Connection },
    #[serde(rename = "cluster.import_cert_requested")]
    ImportCertRequested { cluster_id: Uuid, name: ResourceName, endpoint: String },
    #[serde(rename = "cluster.import_cert_succeeded")]
    ImportCertSucceeded { cluster_id: Uuid, name: ResourceName, project_id: Uuid, team_id: Uuid, source_type: SourceType, labels: BTreeMap<String, String>, #[serde(flatten)] connection: Connection },
    #[serde(rename = "cluster.connection_test_succeeded")]
    ConnectionTestSucceeded { cluster_id: Uuid, server_version: String, permissions: BTreeMap<String, bool>, at: DateTime<Utc> },
    #[serde(rename = "cluster.connection_test_failed")]
    ConnectionTestFailed { cluster_id: Uuid, server_version: Option<String>, permissions: BTreeMap<String, bool>, error_key: String, at: DateTime<Utc> },
    #[serde(rename = "cluster.cert_expiring")]
    CertExpiring { cluster_id: Uuid, cert_id: String, subject: String, serial: String, not_after: DateTime<Utc>, days_left: i64, threshold_days: u32, at: DateTime<Utc> },
}

impl DomainEvent for ClusterEvent {
    fn status(&self) -> EventStatus {
        match self {
            ClusterEvent::ConnectionTestFailed { .. } => EventStatus::Failed,
            ClusterEvent::CertExpiring { .. } => EventStatus::Warning,
            ClusterEvent::ImportKubeconfigRequested { .. } | ClusterEvent::ImportCertRequested { .. } => EventStatus::Running,
            _ => EventStatus::Success,
        }
    }
    fn severity(&self) -> Severity {
        match self {
            ClusterEvent::ConnectionTestFailed { .. } => Severity::Medium,
            ClusterEvent::CertExpiring { threshold_days, .. } if *threshold_days <= 7 => Severity::High,
            ClusterEvent::CertExpiring { .. } => Severity::Medium,
            _ => Severity::Info,
        }
    }
}

/// A cluster's state as far as decisions need it.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub source_type: Option<SourceType>,
    pub credential_id: Option<Uuid>,
    /// (serial, threshold) pairs already recorded as expiring.
    pub expiry_warned: std::collections::BTreeSet<(String, u32)>,
}

impl Aggregate for Cluster {
    type Command = ClusterCommand;
    type Event = ClusterEvent;
    const KIND: &'static str = "cluster";

    fn decide(&self, command: ClusterCommand) -> Result<Vec<ClusterEvent>, DomainError> {
        match command {
            ClusterCommand::Import { cluster_id, name, project_id, team_id, labels, connection, replace } => {
                match (self.id.is_some(), replace) {
                    (true, false) => return Err(DomainError::new(ErrorCode::ResourceConflict, format!("cluster {name} already exists; update its connection instead"))),
                    (false, true) => return Err(DomainError::new(ErrorCode::ClusterNotFound, format!("cluster {name} does not exist"))),
                    _ => {}
                }
                if self.source_type == Some(SourceType::PlatformCreated) {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("cluster {name} was created by OpsPilot; its connection is managed")));
                }
                if self.project_id.is_some_and(|p| p != project_id) {
                    return Err(DomainError::new(ErrorCode::ResourceConflict, format!("cluster {name} belongs to another project")));
                }
                let endpoint = connection.endpoint.clone();
                let source_type = SourceType::ExternalImported;
                Ok(if connection.auth_type == "kubeconfig" {
                    vec![
                        ClusterEvent::ImportKubeconfigRequested { cluster_id, name: name.clone(), endpoint },
                        ClusterEvent::ImportKubeconfigSucceeded { cluster_id, name, project_id, team_id, source_type, labels, connection },
                    ]
                } else {
                    vec![
                        ClusterEvent::ImportCertRequested { cluster_id, name: name.clone(), endpoint },
                        ClusterEvent::ImportCertSucceeded { cluster_id, name, project_id, team_id, source_type, labels, connection },
                    ]
                })
            }
            ClusterCommand::RecordConnectionTest { ok, server_version, permissions, error_key, at } => {
                let cluster_id = self.id.ok_or_else(|| DomainError::new(ErrorCode::ClusterNotFound, "cluster does not exist"))?;
                Ok(vec![if ok {
                    ClusterEvent::ConnectionTestSucceeded { cluster_id, server_version: server_version.unwrap_or_default(), permissions, at }
                } else {
                    ClusterEvent::ConnectionTestFailed { cluster_id, server_version, permissions, error_key: error_key.unwrap_or_else(|| "cluster_connect_failed".into()), at }
                }])
            }
            ClusterCommand::RecordCertExpiring { cert, threshold_days, at } => {
                let cluster_id = self.id.ok_or_else(|| DomainError::new(ErrorCode::ClusterNotFound, "cluster does not exist"))?;
                let days_left = cert.days_left(at);
                if self.expiry_warned.contains(&(cert.serial.clone(), threshold_days)) || days_left >= i64::from(threshold_days) {
                    return Ok(vec![]);
                }
                Ok(vec![ClusterEvent::CertExpiring {
                    cluster_id,
                    cert_id: cert.id,
                    subject: cert.subject,
                    serial: cert.serial,
                    not_after: cert.not_after,
                    days_left,
                    threshold_days,
                    at,
                }])
            }
        }
    }

    fn evolve(mut self, event: &ClusterEvent) -> Self {
        match event {
            ClusterEvent::ImportKubeconfigSucceeded { cluster_id, project_id, team_id, source_type, connection, .. }
            | ClusterEvent::ImportCertSucceeded { cluster_id, project_id, team_id, source_type, connection, .. } => {
                self.id = Some(*cluster_id);
                self.credential_id = Some(connection.credential_id);
                self.project_id = Some(*project_id);
                self.team_id = Some(*team_id);
                self.source_type = Some(*source_type);
            }
            ClusterEvent::CertExpiring { serial, threshold_days, .. } => {
                self.expiry_warned.insert((serial.clone(), *threshold_days));
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::given;

    fn connection(auth_type: &str) -> Connection {
        Connection {
            auth_type: auth_type.into(),
            endpoint: "https://10.0.0.10:6443".into(),
            credential_id: Uuid::from_u128(3),
            credential_fingerprint: "hmac-sha256:ab".into(),
            server_version: "v1.31.14".into(),
            namespaces_checked: vec!["default".into()],
            client_cert_expires_at: None,
            certificates: vec![],
        }
    }

    fn import(auth_type: &str, project: u128) -> ClusterCommand {
        import_as(auth_type, project, false)
    }

    fn import_as(auth_type: &str, project: u128, replace: bool) -> ClusterCommand {
        ClusterCommand::Import {
            cluster_id: Uuid::from_u128(99),
            name: ResourceName::parse("name", "k8s-prod-external").unwrap(),
            project_id: Uuid::from_u128(project),
            team_id: Uuid::from_u128(7),
            labels: Default::default(),
            connection: connection(auth_type),
            replace,
        }
    }

    #[test]
    fn an_import_records_requested_then_succeeded_by_its_kind() {
        let events = Cluster::default().decide(import("cert_token", 11)).unwrap();
        let actions: Vec<String> = events.iter().map(|e| e.to_parts().0).collect();
        assert_eq!(actions, ["cluster.import_cert_requested", "cluster.import_cert_succeeded"]);
        let (_, detail) = events[1].to_parts();
        assert_eq!(detail["credential_fingerprint"], "hmac-sha256:ab");
        assert_eq!(detail["source_type"], "external_imported");
    }

    #[test]
    fn a_cluster_cannot_move_to_another_project_by_reimport() {
        let first = Cluster::default().decide(import("kubeconfig", 11)).unwrap();
        given::<Cluster>(first.clone()).when(import_as("kubeconfig", 12, true)).then_expect_error(ErrorCode::ResourceConflict);
        given::<Cluster>(first.clone()).when(import("kubeconfig", 11)).then_expect_error(ErrorCode::ResourceConflict);
        assert_eq!(given::<Cluster>(vec![]).when(import_as("kubeconfig", 11, true)).then_error_code(), Some(ErrorCode::ClusterNotFound));
    }

    fn cert(serial: &str, days: i64) -> CertInfo {
        CertInfo {
            id: "client".into(),
            subject: "CN=admin".into(),
            issuer: "CN=ca".into(),
            sans: vec![],
            serial: serial.into(),
            fingerprint: "sha256:00".into(),
            not_before: Utc::now() - chrono::Duration::days(300),
            not_after: Utc::now() + chrono::Duration::days(days) + chrono::Duration::hours(1),
            is_ca: false,
        }
    }

    #[test]
    fn an_expiring_certificate_is_recorded_once_per_threshold_and_again_after_renewal() {
        let imported = Cluster::default().decide(import("cert_key", 11)).unwrap();
        let expiring = |serial: &str, days, threshold| ClusterCommand::RecordCertExpiring { cert: cert(serial, days), threshold_days: threshold, at: Utc::now() };
        let first = given::<Cluster>(imported.clone()).when(expiring("01", 20, 30)).then_events();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].to_parts().1["days_left"], 20);
        let mut log = imported.clone();
        log.extend(first);
        assert!(given::<Cluster>(log.clone()).when(expiring("01", 19, 30)).then_events().is_empty(), "once per threshold");
        assert_eq!(given::<Cluster>(log.clone()).when(expiring("01", 6, 7)).then_events().len(), 1, "the 7-day warning still comes");
        assert!(given::<Cluster>(log.clone()).when(expiring("01", 20, 7)).then_events().is_empty(), "not before its threshold");
        assert_eq!(given::<Cluster>(log).when(expiring("02", 20, 30)).then_events().len(), 1, "a renewed certificate is a new one");
        assert_eq!(first_severity(&imported), Severity::High);
    }

    fn first_severity(imported: &[ClusterEvent]) -> Severity {
        given::<Cluster>(imported.to_vec())
            .when(ClusterCommand::RecordCertExpiring { cert: cert("09", 3), threshold_days: 7, at: Utc::now() })
            .then_events()[0]
            .severity()
    }

    #[test]
    fn connection_tests_need_an_existing_cluster() {
        given::<Cluster>(vec![])
            .when(ClusterCommand::RecordConnectionTest { ok: true, server_version: None, permissions: Default::default(), error_key: None, at: Utc::now() })
            .then_expect_error(ErrorCode::ClusterNotFound);
    }
}
