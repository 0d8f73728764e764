//! Roles, permissions and the principal a request acts as (SPEC §6).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::error::{DomainError, ErrorCode};

/// Every permission OpsPilot checks. The wire names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "deploy:release:read")]
    DeployReleaseRead,
    #[serde(rename = "deploy:release:apply")]
    DeployReleaseApply,
    #[serde(rename = "deploy:release:approve")]
    DeployReleaseApprove,
    #[serde(rename = "deploy:k8s:apply")]
    DeployK8sApply,
    #[serde(rename = "deploy:compose:apply")]
    DeployComposeApply,
    #[serde(rename = "host:read")]
    HostRead,
    #[serde(rename = "host:manage")]
    HostManage,
    #[serde(rename = "environment:read")]
    EnvironmentRead,
    #[serde(rename = "environment:manage")]
    EnvironmentManage,
    #[serde(rename = "environment:install")]
    EnvironmentInstall,
    #[serde(rename = "cluster:read")]
    ClusterRead,
    #[serde(rename = "cluster:manage")]
    ClusterManage,
    #[serde(rename = "cert:rotate")]
    CertRotate,
    #[serde(rename = "network_entry:manage")]
    NetworkEntryManage,
    #[serde(rename = "credential:manage")]
    CredentialManage,
    #[serde(rename = "identity:read")]
    IdentityRead,
    #[serde(rename = "identity:manage")]
    IdentityManage,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "catalog:manage")]
    CatalogManage,
}

use Permission::*;

/// Every permission, in the contract's order.
pub const PERMISSIONS: &[Permission] = &[DeployReleaseRead, DeployReleaseApply, DeployReleaseApprove, DeployK8sApply, DeployComposeApply, HostRead, HostManage, EnvironmentRead, EnvironmentManage, EnvironmentInstall, ClusterRead, ClusterManage, CertRotate, NetworkEntryManage, CredentialManage, IdentityRead, IdentityManage, AuditRead, CatalogManage];

impl Permission {
    /// The wire name, e.g. `deploy:release:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployReleaseRead => "deploy:release:read",
            DeployReleaseApply => "deploy:release:apply",
            DeployReleaseApprove => "deploy:release:approve",
            DeployK8sApply => "deploy:k8s:apply",
            DeployComposeApply => "deploy:compose:apply",
            HostRead => "host:read",
            HostManage => "host:manage",
            EnvironmentRead => "environment:read",
            EnvironmentManage => "environment:manage",
            EnvironmentInstall => "environment:install",
            ClusterRead => "cluster:read",
            ClusterManage => "cluster:manage",
            CertRotate => "cert:rotate",
            NetworkEntryManage => "network_entry:manage",
            CredentialManage => "credential:manage",
            IdentityRead => "identity:read",
            IdentityManage => "identity:manage",
            AuditRead => "audit:read",
            CatalogManage => "catalog:manage",
        }
    }

    /// The permission to apply releases on a runtime (`k8s`, `compose`), as `deploy:<runtime>:apply`.
    pub fn apply_on(runtime_type: &str) -> Result<Permission, DomainError> {
        match runtime_type {
            "k8s" => Ok(DeployK8sApply),
            "compose" => Ok(DeployComposeApply),
            other => Err(DomainError::validation("runtime_type", format!("unknown runtime type {other:?}"))),
        }
    }

    /// The permission a wire name names, if any.
    pub fn parse(s: &str) -> Option<Permission> {
        PERMISSIONS.iter().copied().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Operator,
    Approver,
    Admin,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 3] = [Role::Operator, Role::Approver, Role::Admin];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name, or a `validation_error` naming the known roles.
    pub fn parse(s: &str) -> Result<Role, DomainError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::validation("role", format!("unknown role {s:?}; known: operator, approver, admin")))
    }

    /// The permissions the role grants. Operators apply but never approve;
    /// approvers approve but never apply; admins may do everything.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Role::Operator => &[
                DeployReleaseRead,
                DeployReleaseApply,
                DeployK8sApply,
                DeployComposeApply,
                HostRead,
                EnvironmentRead,
                ClusterRead,
                IdentityRead,
                AuditRead,
            ],
            Role::Approver => &[
                DeployReleaseRead,
                DeployReleaseApprove,
                HostRead,
                EnvironmentRead,
                ClusterRead,
                IdentityRead,
                AuditRead,
            ],
            Role::Admin => PERMISSIONS,
        }
    }
}

/// Who a request acts as, with what it may see. Built by the API layer from
/// the token and the accounts projection; every command and query takes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: String,
    pub roles: BTreeSet<Role>,
    pub team_ids: BTreeSet<Uuid>,
    pub project_ids: BTreeSet<Uuid>,
    /// Set when the request authenticated with an API token.
    pub api_token_id: Option<Uuid>,
}

impl Principal {
    /// True for admins, who see every project.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// True when one of the principal's roles grants the permission.
    pub fn has(&self, permission: Permission) -> bool {
        self.roles.iter().any(|r| r.permissions().contains(&permission))
    }

    /// Refuses with `permission_denied` unless the permission is held.
    pub fn require(&self, permission: Permission) -> Result<(), DomainError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(DomainError::new(ErrorCode::PermissionDenied, format!("missing permission {permission}")))
        }
    }

    /// True when the principal may act inside the project.
    pub fn sees_project(&self, project_id: Uuid) -> bool {
        self.is_admin() || self.project_ids.contains(&project_id)
    }

    /// Refuses with `project_scope_denied` unless the project is the principal's.
    pub fn require_project(&self, project_id: Uuid) -> Result<(), DomainError> {
        if self.sees_project(project_id) {
            Ok(())
        } else {
            Err(DomainError::new(ErrorCode::ProjectScopeDenied, format!("project {project_id} is not yours")))
        }
    }

    /// Refuses with `team_scope_denied` unless the team is the principal's.
    pub fn require_team(&self, team_id: Uuid) -> Result<(), DomainError> {
        if self.is_admin() || self.team_ids.contains(&team_id) {
            Ok(())
        } else {
            Err(DomainError::new(ErrorCode::TeamScopeDenied, format!("team {team_id} is not yours")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            user_id: Uuid::nil(),
            username: "u".into(),
            roles: roles.iter().copied().collect(),
            team_ids: Default::default(),
            project_ids: Default::default(),
            api_token_id: None,
        }
    }

    #[test]
    fn operators_apply_but_never_approve_and_approvers_the_reverse() {
        let op = principal(&[Role::Operator]);
        assert!(op.has(Permission::DeployReleaseApply));
        assert_eq!(op.require(Permission::DeployReleaseApprove).unwrap_err().code, ErrorCode::PermissionDenied);
        let ap = principal(&[Role::Approver]);
        assert!(ap.has(Permission::DeployReleaseApprove));
        assert!(!ap.has(Permission::DeployReleaseApply));
    }

    #[test]
    fn admins_hold_every_permission_and_see_every_project() {
        let admin = principal(&[Role::Admin]);
        assert!(PERMISSIONS.iter().all(|p| admin.has(*p)));
        assert!(admin.sees_project(Uuid::from_u128(7)));
        assert!(!principal(&[Role::Operator]).sees_project(Uuid::from_u128(7)));
    }

    #[test]
    fn role_permissions_are_all_known() {
        for r in Role::ALL {
            for p in r.permissions() {
                assert!(PERMISSIONS.contains(p), "{p} is not a known permission");
            }
        }
    }
}
