//! The accounts read model: projects, teams, members, users, API tokens and
//! credential metadata — and the principal a token acts as.

use opspilot_domain::rbac::Permission;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::FutureExt;
use opspilot_domain::{Principal, Role};
use opspilot_eventstore::{RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::runner::Projection;
use crate::ReadError;

/// The accounts projection.
pub const PROJECTION: Projection = Projection {
    name: "accounts",
    tables: &["accounts_projects", "accounts_teams", "accounts_team_members", "accounts_users", "accounts_api_tokens", "accounts_credentials"],
    apply: |tx, e| apply(tx, e).boxed(),
};

fn uuid(d: &Value, k: &str) -> Option<Uuid> {
    d.get(k).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok())
}

fn text<'a>(d: &'a Value, k: &str) -> &'a str {
    d.get(k).and_then(|v| v.as_str()).unwrap_or_default()
}

async fn apply(tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let d = &e.detail;
    let at = e.occurred_at;
    match e.action.as_str() {
        "project.created" => {
            tx.execute(
                "INSERT INTO accounts_projects (id, name, description, created_at, position) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                &[&uuid(d, "project_id"), &text(d, "name"), &text(d, "description"), &at, &e.position],
            )
            .await?;
        }
        "team.created" => {
            tx.execute(
                "INSERT INTO accounts_teams (id, name, project_id, created_at, position) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                &[&uuid(d, "team_id"), &text(d, "name"), &uuid(d, "project_id"), &at, &e.position],
            )
            .await?;
        }
        "team.member_added" => {
            tx.execute(
                "INSERT INTO accounts_team_members (team_id, user_id, added_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                &[&uuid(d, "team_id"), &uuid(d, "user_id"), &at],
            )
            .await?;
        }
        "team.member_removed" => {
            tx.execute("DELETE FROM accounts_team_members WHERE team_id = $1 AND user_id = $2", &[&uuid(d, "team_id"), &uuid(d, "user_id")])
                .await?;
        }
        "user.created" => {
            let roles: Vec<String> =
                d.get("roles").and_then(|r| r.as_array()).map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
            tx.execute(
                "INSERT INTO accounts_users (id, username, display_name, roles, created_at, updated_at, position)
                 VALUES ($1,$2,$3,$4,$5,$5,$6) ON CONFLICT DO NOTHING",
                &[&uuid(d, "user_id"), &text(d, "username"), &text(d, "display_name"), &roles, &at, &e.position],
            )
            .await?;
        }
        "user.role_granted" => {
            tx.execute(
                "UPDATE accounts_users SET roles = array_append(array_remove(roles, $2), $2), updated_at = $3 WHERE id = $1",
                &[&uuid(d, "user_id"), &text(d, "role"), &at],
            )
            .await?;
        }
        "user.role_revoked" => {
            tx.execute("UPDATE accounts_users SET roles = array_remove(roles, $2), updated_at = $3 WHERE id = $1", &[&uuid(d, "user_id"), &text(d, "role"), &at])
                .await?;
        }
        "user.disabled" => {
            tx.execute("UPDATE accounts_users SET disabled = true, updated_at = $2 WHERE id = $1", &[&uuid(d, "user_id"), &at]).await?;
        }
        "auth.api_token_issued" => {
            let expires_at: Option<DateTime<Utc>> = d.get("expires_at").and_then(|v| serde_json::from_value(v.clone()).ok());
            tx.execute(
                "INSERT INTO accounts_api_tokens (id, user_id, name, fingerprint, expires_at, created_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
                &[&uuid(d, "token_id"), &uuid(d, "user_id"), &text(d, "name"), &text(d, "fingerprint"), &expires_at, &at],
            )
            .await?;
        }
        "auth.api_token_revoked" => {
            tx.execute("UPDATE accounts_api_tokens SET revoked = true WHERE id = $1", &[&uuid(d, "token_id")]).await?;
        }
        "credential.stored" => {
            tx.execute(
                "INSERT INTO accounts_credentials (id, name, kind, fingerprint, project_id, created_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
                &[&uuid(d, "credential_id"), &text(d, "name"), &text(d, "kind"), &text(d, "fingerprint"), &uuid(d, "project_id"), &at],
            )
            .await?;
        }
        "credential.deleted" => {
            tx.execute("UPDATE accounts_credentials SET deleted = true WHERE id = $1", &[&uuid(d, "credential_id")]).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The principal a user acts as, or None for unknown or disabled users.
pub async fn principal_for(pool: &Pool, user_id: Uuid, api_token_id: Option<Uuid>) -> Result<Option<Principal>, StoreError> {
    let c = pool.get().await?;
    let stmt = c
        .prepare_cached(
            "SELECT u.username, u.roles,
                    coalesce(array_agg(DISTINCT m.team_id) FILTER (WHERE m.team_id IS NOT NULL), '{}') AS teams,
                    coalesce(array_agg(DISTINCT t.project_id) FILTER (WHERE t.project_id IS NOT NULL), '{}') AS projects
             FROM accounts_users u
             LEFT JOIN accounts_team_members m ON m.user_id = u.id
             LEFT JOIN accounts_teams t ON t.id = m.team_id
             WHERE u.id = $1 AND NOT u.disabled
             GROUP BY u.username, u.roles",
        )
        .await?;
    let Some(row) = c.query_opt(&stmt, &[&user_id]).await? else { return Ok(None) };
    let roles: Vec<String> = row.get(1);
    let teams: Vec<Uuid> = row.get(2);
    let projects: Vec<Uuid> = row.get(3);
    Ok(Some(Principal {
        user_id,
        username: row.get(0),
        roles: roles.iter().filter_map(|r| Role::parse(r).ok()).collect(),
        team_ids: teams.into_iter().collect(),
        project_ids: projects.into_iter().collect(),
        api_token_id,
    }))
}

/// A user as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "User"))]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub team_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Users visible to `p` (admins: all; others: those sharing a team, and
/// themselves), optionally filtered by a substring and a role.
pub async fn list_users(pool: &Pool, p: &Principal, q: Option<&str>, role: Option<&str>, page: PageRequest) -> Result<Page<UserView>, ReadError> {
    p.require(Permission::IdentityRead)?;
    let c = pool.get().await?;
    let teams: Vec<Uuid> = p.team_ids.iter().copied().collect();
    let q = q.map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")));
    let filter = "($1 OR u.id = $2 OR EXISTS (SELECT 1 FROM accounts_team_members m WHERE m.user_id = u.id AND m.team_id = ANY($3)))
                  AND ($4::text IS NULL OR u.username ILIKE $4 OR u.display_name ILIKE $4)
                  AND ($5::text IS NULL OR $5 = ANY(u.roles))";
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&p.is_admin(), &p.user_id, &teams, &q, &role];
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM accounts_users u WHERE {filter}"), &args).await?.get(0);
    let rows = c
        .query(
            &format!(
                "SELECT u.id, u.username, u.display_name, u.roles, u.disabled, u.created_at,
                        coalesce((SELECT array_agg(team_id ORDER BY team_id) FROM accounts_team_members m WHERE m.user_id = u.id), '{{}}')
                 FROM accounts_users u WHERE {filter} ORDER BY u.username LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &args,
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| UserView { id: r.get(0), username: r.get(1), display_name: r.get(2), roles: r.get(3), disabled: r.get(4), created_at: r.get(5), team_ids: r.get(6) })
        .collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}

/// A project as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Project"))]
pub struct ProjectView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// Projects visible to `p`.
pub async fn list_projects(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<ProjectView>, ReadError> {
    p.require(Permission::IdentityRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let filter = "($1 OR id = ANY($2))";
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM accounts_projects WHERE {filter}"), &[&p.is_admin(), &ids]).await?.get(0);
    let rows = c
        .query(
            &format!("SELECT id, name, description, created_at FROM accounts_projects WHERE {filter} ORDER BY name LIMIT {} OFFSET {}", page.page_size, page.offset()),
            &[&p.is_admin(), &ids],
        )
        .await?;
    let list = rows.iter().map(|r| ProjectView { id: r.get(0), name: r.get(1), description: r.get(2), created_at: r.get(3) }).collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}

/// A team as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Team"))]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Teams visible to `p`, optionally of one project.
pub async fn list_teams(pool: &Pool, p: &Principal, project_id: Option<Uuid>, page: PageRequest) -> Result<Page<TeamView>, ReadError> {
    p.require(Permission::IdentityRead)?;
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let filter = "($1 OR t.project_id = ANY($2)) AND ($3::uuid IS NULL OR t.project_id = $3)";
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&p.is_admin(), &ids, &project_id];
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM accounts_teams t WHERE {filter}"), &args).await?.get(0);
    let rows = c
        .query(
            &format!(
                "SELECT t.id, t.name, t.project_id, t.created_at,
                        coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM accounts_team_members m WHERE m.team_id = t.id), '{{}}')
                 FROM accounts_teams t WHERE {filter} ORDER BY t.name LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &args,
        )
        .await?;
    let list = rows.iter().map(|r| TeamView { id: r.get(0), name: r.get(1), project_id: r.get(2), created_at: r.get(3), member_ids: r.get(4) }).collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}

/// An API token as listed (never the token).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "ApiToken"))]
pub struct ApiTokenView {
    pub id: Uuid,
    pub name: String,
    pub fingerprint: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

/// The caller's own API tokens.
pub async fn list_api_tokens(pool: &Pool, p: &Principal) -> Result<Vec<ApiTokenView>, ReadError> {
    let c = pool.get().await?;
    let rows = c
        .query("SELECT id, name, fingerprint, expires_at, revoked, created_at FROM accounts_api_tokens WHERE user_id = $1 ORDER BY created_at", &[&p.user_id])
        .await?;
    Ok(rows.iter().map(|r| ApiTokenView { id: r.get(0), name: r.get(1), fingerprint: r.get(2), expires_at: r.get(3), revoked: r.get(4), created_at: r.get(5) }).collect())
}

/// Credential metadata as listed (never the secret).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Credential"))]
pub struct CredentialView {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub fingerprint: String,
    pub project_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Credentials visible to `p`: admins all; others those of their projects.
pub async fn list_credentials(pool: &Pool, p: &Principal, page: PageRequest) -> Result<Page<CredentialView>, ReadError> {
    let c = pool.get().await?;
    let ids: Vec<Uuid> = p.project_ids.iter().copied().collect();
    let filter = "NOT deleted AND ($1 OR project_id = ANY($2))";
    let total: i64 = c.query_one(&format!("SELECT count(*) FROM accounts_credentials WHERE {filter}"), &[&p.is_admin(), &ids]).await?.get(0);
    let rows = c
        .query(
            &format!(
                "SELECT id, name, kind, fingerprint, project_id, created_at FROM accounts_credentials WHERE {filter} ORDER BY created_at LIMIT {} OFFSET {}",
                page.page_size,
                page.offset()
            ),
            &[&p.is_admin(), &ids],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| CredentialView { id: r.get(0), name: r.get(1), kind: r.get(2), fingerprint: r.get(3), project_id: r.get(4), created_at: r.get(5) })
        .collect();
    Ok(Page { list, total, page: page.page, page_size: page.page_size })
}
