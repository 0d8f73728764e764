//! External clusters: validate what the user pasted, connect and probe before
//! anything is stored, then keep the kubeconfig sealed in the credentials
//! store and record the import.

use opspilot_domain::rbac::Permission;
use std::collections::BTreeMap;
use std::time::Duration;

use opspilot_domain::cluster::{Cluster, ClusterCommand, Connection};
use opspilot_domain::identity::team::Team;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope, ResourceName};
use opspilot_k8s::ValidKubeconfig;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ids::{id_for, resolve};
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an imported cluster belongs.
#[derive(Debug, Clone)]
pub struct ClusterPlacement {
    pub name: String,
    pub project: String,
    pub team: String,
    pub labels: BTreeMap<String, String>,
}

/// The credentials of a certificate import.
#[derive(Debug, Clone, Default)]
pub struct CertParts {
    pub endpoint: String,
    pub ca_cert: String,
    pub token: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl CertParts {
    /// Validates the parts into a kubeconfig.
    pub fn validate(&self) -> std::result::Result<ValidKubeconfig, DomainError> {
        opspilot_k8s::kubeconfig_from_parts(&self.endpoint, &self.ca_cert, self.token.as_deref(), self.client_cert.as_deref(), self.client_key.as_deref())
    }
}

impl Commands {
    /// Imports a cluster by full kubeconfig (raw or base64).
    pub async fn import_cluster_kubeconfig(&self, ctx: &CommandContext, placement: &ClusterPlacement, kubeconfig: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::ClusterManage, "cluster.import").await?;
        let valid = opspilot_k8s::validate_kubeconfig(kubeconfig)?;
        self.import_cluster(ctx, placement, valid, false).await
    }

    /// Imports a cluster by endpoint + CA + token, or endpoint + CA + client certificate and key.
    pub async fn import_cluster_cert(&self, ctx: &CommandContext, placement: &ClusterPlacement, parts: &CertParts) -> Result<Handled> {
        self.authorize(ctx, Permission::ClusterManage, "cluster.import").await?;
        let valid = parts.validate()?;
        self.import_cluster(ctx, placement, valid, false).await
    }

    /// Gives an imported cluster new credentials (kubeconfig, or certificate parts),
    /// probed like an import; the cluster keeps its id, name, project and team.
    pub async fn update_cluster_connection(&self, ctx: &CommandContext, cluster: &str, kubeconfig: Option<&str>, parts: Option<&CertParts>) -> Result<Handled> {
        self.authorize(ctx, Permission::ClusterManage, "cluster.update_connection").await?;
        let valid = match (kubeconfig, parts) {
            (Some(k), None) => opspilot_k8s::validate_kubeconfig(k)?,
            (None, Some(p)) => p.validate()?,
            _ => return Err(DomainError::validation("kubeconfig", "give either a kubeconfig or endpoint + ca_cert + token / client_cert + client_key").into()),
        };
        let (state, cluster_id, _) = self.visible_cluster(ctx, cluster).await?;
        let name = self.cluster_name(cluster_id).await?;
        let placement = ClusterPlacement {
            name,
            project: state.project_id.map(|p| p.to_string()).unwrap_or_default(),
            team: state.team_id.map(|t| t.to_string()).unwrap_or_default(),
            labels: BTreeMap::new(),
        };
        self.import_cluster(ctx, &placement, valid, true).await
    }

    async fn cluster_name(&self, cluster_id: Uuid) -> Result<String> {
        let events = self.store.read_stream(&stream_id_of::<Cluster>(cluster_id)).await?;
        events
            .iter()
            .rev()
            .find_map(|e| e.detail.get("name").and_then(|n| n.as_str()).map(String::from))
            .ok_or_else(|| DomainError::new(ErrorCode::ClusterNotFound, "cluster does not exist").into())
    }

    async fn import_cluster(&self, ctx: &CommandContext, placement: &ClusterPlacement, valid: ValidKubeconfig, replace: bool) -> Result<Handled> {
        let name = ResourceName::parse("name", &placement.name)?;
        let project_id = self.existing_project(&placement.project).await?;
        let team_id = resolve("team", &placement.team);
        let (team, _) = self.load::<Team>(&stream_id_of::<Team>(team_id)).await?;
        if team.project_id != Some(project_id) {
            return Err(DomainError::validation("team_id", format!("team {} is not a team of project {}", placement.team, placement.project)).into());
        }
        let principal = ctx.principal()?;
        if let Err(e) = principal.require_project(project_id) {
            self.deny(ctx, "cluster.import", Permission::ClusterManage, &e).await?;
            return Err(e.into());
        }

        // Connect and probe before anything is stored.
        let client = opspilot_k8s::client(&valid.text, CONNECT_TIMEOUT).await?;
        let probe = opspilot_k8s::probe(&client).await?;
        let missing = probe.missing();
        if !missing.is_empty() {
            return Err(DomainError::new(ErrorCode::ClusterPermissionInsufficient, format!("missing: {}", missing.join(", "))).into());
        }

        let cluster_id = id_for("cluster", name.as_str());
        let credential_id = Uuid::new_v4();
        let fingerprint = self.vault.put(credential_id, "kubeconfig", valid.text.as_bytes()).await?;
        let connection = Connection {
            auth_type: valid.auth_type.as_str().into(),
            endpoint: valid.endpoint.clone(),
            credential_id,
            credential_fingerprint: fingerprint,
            server_version: probe.server_version.clone(),
            namespaces_checked: probe.namespaces.iter().take(20).cloned().collect(),
            client_cert_expires_at: valid.client_cert_expires_at,
            certificates: valid.certificates.clone(),
        };
        let cmd = ClusterCommand::Import { cluster_id, name: name.clone(), project_id, team_id, labels: placement.labels.clone(), connection, replace };
        let scope = EventScope::resource("cluster", cluster_id).in_project(project_id).in_team(team_id);
        let answer = json!({
            "cluster_id": cluster_id, "name": name, "endpoint": valid.endpoint, "auth_type": valid.auth_type.as_str(),
            "server_version": probe.server_version, "namespaces": probe.namespaces,
        });
        let handled = self
            .execute::<Cluster>(ctx, "import_cluster", &stream_id_of::<Cluster>(cluster_id), &scope, |s| s.decide_clone(&cmd), |_| answer.clone())
            .await;
        if handled.as_ref().map(|h| h.result["cluster_id"] != json!(cluster_id)).unwrap_or(true) {
            self.vault.delete(credential_id).await?;
        }
        handled
    }

    /// Loads a cluster the caller may see, with its stream scope.
    async fn visible_cluster(&self, ctx: &CommandContext, cluster: &str) -> Result<(Cluster, Uuid, EventScope)> {
        let cluster_id = resolve("cluster", cluster);
        let (state, _) = self.load::<Cluster>(&stream_id_of::<Cluster>(cluster_id)).await?;
        let (Some(project_id), Some(team_id)) = (state.project_id, state.team_id) else {
            return Err(DomainError::new(ErrorCode::ClusterNotFound, format!("cluster {cluster} does not exist")).into());
        };
        if !ctx.principal()?.sees_project(project_id) {
            return Err(DomainError::new(ErrorCode::ClusterNotFound, format!("cluster {cluster} does not exist")).into());
        }
        let scope = EventScope::resource("cluster", cluster_id).in_project(project_id).in_team(team_id);
        Ok((state, cluster_id, scope))
    }

    /// A kube client for a cluster the caller may see (its stored credentials).
    pub async fn cluster_client(&self, ctx: &CommandContext, cluster: &str) -> Result<kube::Client> {
        let (state, _, _) = self.visible_cluster(ctx, cluster).await?;
        self.client_for(&state).await
    }

    /// A kube client for a cluster by id, for OpsPilot's own work (execution
    /// of an approved release), where the caller was checked when it was asked.
    pub(crate) async fn cluster_client_by_id(&self, cluster_id: Uuid) -> Result<kube::Client> {
        let (state, _) = self.load::<Cluster>(&stream_id_of::<Cluster>(cluster_id)).await?;
        self.client_for(&state).await
    }

    async fn client_for(&self, state: &Cluster) -> Result<kube::Client> {
        let credential_id = state.credential_id.ok_or_else(|| DomainError::new(ErrorCode::ClusterConnectionNotFound, "no stored connection"))?;
        let secret = self.vault.get(credential_id).await?.ok_or_else(|| DomainError::new(ErrorCode::ClusterConnectionNotFound, "stored connection is gone"))?;
        let text = String::from_utf8(secret).map_err(|_| DomainError::new(ErrorCode::KubeconfigInvalid, "stored kubeconfig is not text"))?;
        Ok(opspilot_k8s::client(&text, CONNECT_TIMEOUT).await?)
    }

    /// Connects with the stored credentials and records the outcome; answers
    /// the seed's `{reachable, server_version, permissions}`.
    pub async fn test_cluster_connection(&self, ctx: &CommandContext, cluster: &str) -> Result<Handled> {
        self.authorize(ctx, Permission::ClusterRead, "cluster.connection_test").await?;
        let (_, cluster_id, scope) = self.visible_cluster(ctx, cluster).await?;
        let outcome = match self.cluster_client(ctx, cluster).await {
            Ok(client) => opspilot_k8s::probe(&client).await.map_err(crate::CommandError::from),
            Err(e) => Err(e),
        };
        let (ok, version, permissions, error_key) = match &outcome {
            Ok(p) => {
                let perms: BTreeMap<String, bool> = p.permissions.iter().map(|c| (c.label(), c.allowed)).collect();
                let ok = p.missing().is_empty();
                (ok, Some(p.server_version.clone()), perms, (!ok).then(|| "cluster_permission_insufficient".to_string()))
            }
            Err(e) => (false, None, BTreeMap::new(), Some(e.code().key().to_string())),
        };
        let cmd = ClusterCommand::RecordConnectionTest { ok, server_version: version.clone(), permissions: permissions.clone(), error_key: error_key.clone(), at: ctx.now };
        let detail: Value = match &outcome {
            Err(crate::CommandError::Domain(d)) => json!(d.detail),
            _ => Value::Null,
        };
        let answer = json!({ "cluster_id": cluster_id, "reachable": version.is_some(), "server_version": version, "permissions": permissions, "error_key": error_key, "detail": detail });
        self.execute::<Cluster>(ctx, "test_cluster_connection", &stream_id_of::<Cluster>(cluster_id), &scope, |s| s.decide_clone(&cmd), |_| answer.clone()).await
    }
}

impl Commands {
    /// Records `cluster.cert_expiring` for each certificate crossing a warning
    /// threshold (30 and 7 days ahead); run by the scheduler. Recording twice
    /// (another replica, a retry) records once. Answers how many were recorded.
    pub async fn record_expiring_certificates(&self, due: &[opspilot_projections::cluster_certs::DueWarning]) -> Result<usize> {
        let ctx = CommandContext::system(opspilot_domain::Source::SystemScheduler);
        let mut n = 0;
        for w in due {
            let (state, _) = self.load::<Cluster>(&stream_id_of::<Cluster>(w.cluster_id)).await?;
            let (Some(project_id), Some(team_id)) = (state.project_id, state.team_id) else { continue };
            let scope = EventScope::resource("cluster", w.cluster_id).in_project(project_id).in_team(team_id);
            let cmd = ClusterCommand::RecordCertExpiring { cert: w.cert.clone(), threshold_days: w.threshold_days, at: ctx.now };
            let handled = self
                .execute::<Cluster>(&ctx, "cluster.record_cert_expiring", &stream_id_of::<Cluster>(w.cluster_id), &scope, |s| s.decide_clone(&cmd), |events| json!({ "recorded": events.len() }))
                .await?;
            n += handled.result["recorded"].as_u64().unwrap_or(0) as usize;
        }
        Ok(n)
    }
}
