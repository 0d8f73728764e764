//! Projects, teams and users.

use opspilot_domain::rbac::Permission;
use opspilot_domain::identity::project::{Project, ProjectCommand};
use opspilot_domain::identity::team::{Team, TeamCommand};
use opspilot_domain::identity::user::{User, UserCommand};
use opspilot_domain::{stream_id_of, DomainError, ErrorCode, EventScope, ResourceName, Role};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::auth::{hash_password, validate_password};
use crate::ids::{id_for, resolve};
use crate::{CommandContext, Commands, DecideClone, Handled, Result};

/// Input of `create_user`.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub roles: Vec<String>,
}

impl Commands {
    /// Creates a project (`identity:manage`).
    pub async fn create_project(&self, ctx: &CommandContext, name: &str, description: &str) -> Result<Handled> {
        if ctx.principal.is_some() {
            self.authorize(ctx, Permission::IdentityManage, "project.create").await?;
        }
        let name = ResourceName::parse("name", name)?;
        let id = id_for("project", name.as_str());
        let scope = EventScope::resource("project", id).in_project(id);
        let cmd = ProjectCommand::Create { project_id: id, name: name.clone(), description: description.to_string() };
        self.execute::<Project>(ctx, "create_project", &stream_id_of::<Project>(id), &scope, |s| s.decide_clone(&cmd), |_| {
            json!({ "id": id, "name": name })
        })
        .await
    }

    /// Creates a team inside an existing project (`identity:manage`).
    pub async fn create_team(&self, ctx: &CommandContext, name: &str, project: &str) -> Result<Handled> {
        if ctx.principal.is_some() {
            self.authorize(ctx, Permission::IdentityManage, "team.create").await?;
        }
        let name = ResourceName::parse("name", name)?;
        let project_id = self.existing_project(project).await?;
        let id = id_for("team", name.as_str());
        let scope = EventScope::resource("team", id).in_project(project_id).in_team(id);
        let cmd = TeamCommand::Create { team_id: id, name: name.clone(), project_id };
        self.execute::<Team>(ctx, "create_team", &stream_id_of::<Team>(id), &scope, |s| s.decide_clone(&cmd), |_| {
            json!({ "id": id, "name": name, "project_id": project_id })
        })
        .await
    }

    /// Adds a user to a team (`identity:manage`).
    pub async fn add_team_member(&self, ctx: &CommandContext, team: &str, user: &str) -> Result<Handled> {
        if ctx.principal.is_some() {
            self.authorize(ctx, Permission::IdentityManage, "team.add_member").await?;
        }
        let team_id = resolve("team", team);
        let user_id = self.existing_user(user).await?;
        let (state, _) = self.load::<Team>(&stream_id_of::<Team>(team_id)).await?;
        let project_id = state.project_id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, format!("team {team} does not exist")))?;
        let scope = EventScope::resource("team", team_id).in_project(project_id).in_team(team_id);
        let cmd = TeamCommand::AddMember { user_id };
        self.execute::<Team>(ctx, "add_team_member", &stream_id_of::<Team>(team_id), &scope, |s| s.decide_clone(&cmd), |_| {
            json!({ "team_id": team_id, "user_id": user_id })
        })
        .await
    }

    /// Creates a local account with roles and a password (`identity:manage`).
    pub async fn create_user(&self, ctx: &CommandContext, input: NewUser) -> Result<Handled> {
        if ctx.principal.is_some() {
            self.authorize(ctx, Permission::IdentityManage, "user.create").await?;
        }
        let username = ResourceName::parse("username", &input.username)?;
        validate_password(&input.password)?;
        let roles = input.roles.iter().map(|r| Role::parse(r)).collect::<Result<BTreeSet<_>, _>>()?;
        let id = id_for("user", username.as_str());
        let display_name = input.display_name.clone().filter(|d| !d.trim().is_empty()).unwrap_or_else(|| username.to_string());
        let cmd = UserCommand::Create { user_id: id, username: username.clone(), display_name, roles };
        let scope = EventScope::resource("user", id);
        let handled = self
            .execute::<User>(ctx, "create_user", &stream_id_of::<User>(id), &scope, |s| s.decide_clone(&cmd), |_| {
                json!({ "id": id, "username": username })
            })
            .await?;
        // The hash is written after the account exists; a retry of the same
        // command (idempotency key) lands here again and rewrites the same password.
        self.secrets.set_password_hash(id, &hash_password(&input.password)?).await?;
        Ok(handled)
    }

    /// Grants a role (`identity:manage`).
    pub async fn grant_role(&self, ctx: &CommandContext, user: &str, role: &str) -> Result<Handled> {
        self.change_roles(ctx, user, role, true).await
    }

    /// Revokes a role (`identity:manage`).
    pub async fn revoke_role(&self, ctx: &CommandContext, user: &str, role: &str) -> Result<Handled> {
        self.change_roles(ctx, user, role, false).await
    }

    async fn change_roles(&self, ctx: &CommandContext, user: &str, role: &str, grant: bool) -> Result<Handled> {
        self.authorize(ctx, Permission::IdentityManage, if grant { "user.grant_role" } else { "user.revoke_role" }).await?;
        let role = Role::parse(role)?;
        let id = self.existing_user(user).await?;
        let cmd = if grant { UserCommand::GrantRole { role } } else { UserCommand::RevokeRole { role } };
        let scope = EventScope::resource("user", id);
        self.execute::<User>(ctx, "change_roles", &stream_id_of::<User>(id), &scope, |s| s.decide_clone(&cmd), |_| {
            json!({ "user_id": id, "role": role })
        })
        .await
    }

    /// Resolves a project reference that must exist.
    pub async fn existing_project(&self, project: &str) -> Result<Uuid> {
        let id = resolve("project", project);
        let (state, _) = self.load::<Project>(&stream_id_of::<Project>(id)).await?;
        state.id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, format!("project {project} does not exist")).into())
    }

    /// Resolves a user reference that must exist.
    pub async fn existing_user(&self, user: &str) -> Result<Uuid> {
        let id = resolve("user", user);
        let (state, _) = self.load::<User>(&stream_id_of::<User>(id)).await?;
        state.id.ok_or_else(|| DomainError::new(ErrorCode::NotFound, format!("user {user} does not exist")).into())
    }
}
