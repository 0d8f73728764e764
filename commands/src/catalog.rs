//! Services and deploy targets.

use opspilot_domain::rbac::Permission;
use std::collections::BTreeMap;

use opspilot_domain::approval::RiskLevel;
use opspilot_domain::catalog::{ComposePlacement, DeployTarget, Service, ServiceCommand, TargetCommand, VariableSpec};
use opspilot_domain::cluster::Cluster;
use opspilot_domain::identity::team::Team;
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope, ResourceName};
use serde_json::json;
use uuid::Uuid;

use crate::ids::{id_for, resolve};
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// A new service.
#[derive(Debug, Clone)]
pub struct NewService {
    pub name: String,
    pub project: String,
    pub team: String,
    pub runtime_type: String,
    pub manifest_template: String,
    pub default_variables: BTreeMap<String, String>,
    /// Declared variable types (empty: any variable, untyped).
    pub variables_schema: BTreeMap<String, VariableSpec>,
    pub risk_level: Option<String>,
}

/// A new deploy target.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub name: String,
    pub project: String,
    pub team: String,
    pub runtime_type: String,
    pub env: String,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// Compose targets: the environment, optionally the host (default: its
    /// first compose_manager), the project name and directory.
    pub environment: Option<String>,
    pub host: Option<String>,
    pub project_name: Option<String>,
    pub project_dir: Option<String>,
}

impl Commands {
    /// Resolves a project and one of its teams, and checks the caller's scope.
    async fn placement(&self, ctx: &CommandContext, attempted: &str, project: &str, team: &str) -> Result<(Uuid, Uuid)> {
        let project_id = self.existing_project(project).await?;
        let team_id = resolve("team", team);
        let (t, _) = self.load::<Team>(&stream_id_of::<Team>(team_id)).await?;
        if t.project_id != Some(project_id) {
            return Err(DomainError::validation("team_id", format!("team {team} is not a team of project {project}")).into());
        }
        if let Err(e) = ctx.principal()?.require_project(project_id) {
            self.deny(ctx, attempted, Permission::CatalogManage, &e).await?;
            return Err(e.into());
        }
        Ok((project_id, team_id))
    }

    /// Registers a service with its manifest template (`catalog:manage`).
    pub async fn create_service(&self, ctx: &CommandContext, s: NewService) -> Result<Handled> {
        self.authorize(ctx, Permission::CatalogManage, "service.create").await?;
        let name = ResourceName::parse("name", &s.name)?;
        let (project_id, team_id) = self.placement(ctx, "service.create", &s.project, &s.team).await?;
        let risk_level = match s.risk_level.as_deref() {
            Some(r) => RiskLevel::parse(r)?,
            None => RiskLevel::Medium,
        };
        let id = id_for("service", name.as_str());
        let cmd = ServiceCommand::Create {
            service_id: id,
            name: name.clone(),
            project_id,
            team_id,
            runtime_type: s.runtime_type,
            manifest_template: s.manifest_template,
            default_variables: s.default_variables,
            variables_schema: s.variables_schema,
            risk_level,
        };
        let scope = EventScope::resource("service", id).in_project(project_id).in_team(team_id);
        self.execute::<Service>(ctx, "create_service", &stream_id_of::<Service>(id), &scope, |st| st.decide_clone(&cmd), |_| json!({ "id": id, "name": name }))
            .await
    }

    /// Registers a deploy target (`catalog:manage`); a k8s target names a cluster of the same project.
    pub async fn create_target(&self, ctx: &CommandContext, t: NewTarget) -> Result<Handled> {
        self.authorize(ctx, Permission::CatalogManage, "deploy_target.create").await?;
        let name = ResourceName::parse("name", &t.name)?;
        let (project_id, team_id) = self.placement(ctx, "deploy_target.create", &t.project, &t.team).await?;
        let cluster_id = match &t.cluster {
            Some(c) => {
                let id = resolve("cluster", c);
                let (cluster, _) = self.load::<Cluster>(&stream_id_of::<Cluster>(id)).await?;
                if cluster.project_id != Some(project_id) {
                    return Err(DomainError::new(ErrorCode::ClusterNotFound, format!("cluster {c} is not a cluster of project {}", t.project)).into());
                }
                Some(id)
            }
            None => None,
        };
        let compose = match &t.environment {
            Some(env) if t.runtime_type == "compose" => {
                let e = self.visible_environment(ctx, env).await?;
                if e.project_id != Some(project_id) || e.runtime_type == "k8s" {
                    return Err(DomainError::validation("environment_id", format!("{env} is not a compose environment of project {}", t.project)).into());
                }
                let host_id = match &t.host {
                    Some(h) => crate::ids::resolve("host", h),
                    None => e.nodes.iter().find(|n| n.node_role == "compose_manager").map(|n| n.host_id).ok_or_else(|| {
                        DomainError::new(ErrorCode::InsufficientNodes, format!("{env} has no compose_manager node; bind one or name the host"))
                    })?,
                };
                if !e.nodes.iter().any(|n| n.host_id == host_id) {
                    return Err(DomainError::validation("host_id", format!("the host is not a node of {env}")).into());
                }
                let project_name = t.project_name.clone().unwrap_or_else(|| name.to_string().to_lowercase().replace('.', "-"));
                let project_dir = t.project_dir.clone().unwrap_or_else(|| format!("/opt/opspilot/compose/{project_name}"));
                Some(ComposePlacement { environment_id: e.id.unwrap(), host_id, project_name, project_dir })
            }
            _ => None,
        };
        let id = id_for("deploy_target", name.as_str());
        let cmd = TargetCommand::Create { target_id: id, name: name.clone(), project_id, team_id, runtime_type: t.runtime_type, env: t.env, cluster_id, namespace: t.namespace, compose };
        let scope = EventScope::resource("deploy_target", id).in_project(project_id).in_team(team_id);
        self.execute::<DeployTarget>(ctx, "create_target", &stream_id_of::<DeployTarget>(id), &scope, |st| st.decide_clone(&cmd), |_| json!({ "id": id, "name": name }))
            .await
    }
}
