//! Auth and accounts: login, the caller, API tokens, projects, teams, users,
//! roles, passwords, credentials and the error dictionary — REST and GraphQL.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use axum::extract::State;
use crate::edge::{Path, Query};
use axum::routing::{delete, get, post, put};
use axum::Router;
use chrono::{DateTime, Utc};
use opspilot_commands::identity::NewUser;
use opspilot_domain::{ErrorCode, Principal, DICTIONARY};
use opspilot_projections::accounts;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::edge::{command_ctx, gql, id_of, meta, mutate, ok, principal, settled, state, ApiError, ApiResult, AppState, Body, CommandResult, GqlResult, Paging, RequestMeta};
use crate::page_type;

pub use opspilot_projections::accounts::{ApiTokenView as ApiToken, CredentialView as Credential, ProjectView as Project, TeamView as Team, UserView as User};

page_type!(UserPage, User);
page_type!(ProjectPage, Project);
page_type!(TeamPage, Team);
page_type!(CredentialPage, Credential);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/tokens", get(list_tokens).post(issue_token))
        .route("/auth/tokens/{id}", delete(revoke_token))
        .route("/projects", get(list_projects).post(create_project))
        .route("/teams", get(list_teams).post(create_team))
        .route("/teams/{team}/members", post(add_member))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user}/roles", post(grant_role))
        .route("/users/{user}/roles/{role}", delete(revoke_role))
        .route("/users/{user}/password", put(change_password))
        .route("/credentials", get(list_credentials).post(store_credential))
        .route("/errors", get(errors))
}

/// Logging in.
#[derive(Deserialize, InputObject)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
}

/// A new project.
#[derive(Deserialize, InputObject)]
pub struct ProjectInput {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A new team in a project (id or name).
#[derive(Deserialize, InputObject)]
pub struct TeamInput {
    pub name: String,
    pub project_id: String,
}

/// A member to add (id or name).
#[derive(Deserialize, InputObject)]
pub struct MemberInput {
    pub user_id: String,
}

/// A new local account.
#[derive(Deserialize, InputObject)]
pub struct NewUserInput {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    #[serde(default)]
    #[graphql(default)]
    pub roles: Vec<String>,
}

/// A role to grant.
#[derive(Deserialize, InputObject)]
pub struct RoleInput {
    pub role: String,
}

/// A new password.
#[derive(Deserialize, InputObject)]
pub struct PasswordInput {
    pub password: String,
}

/// An API token to issue.
#[derive(Deserialize, InputObject)]
pub struct TokenInput {
    pub name: String,
    pub expires_in_days: Option<i64>,
}

/// A secret to seal and store.
#[derive(Deserialize, InputObject)]
pub struct CredentialInput {
    pub name: String,
    pub kind: String,
    pub secret: String,
    pub project_id: Option<String>,
}

/// A login session.
#[derive(SimpleObject)]
pub struct Session {
    pub token: String,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// A freshly issued API token: the token is shown this once.
#[derive(SimpleObject)]
pub struct IssuedApiToken {
    pub id: Uuid,
    pub name: String,
    pub token: String,
    pub fingerprint: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The caller.
#[derive(SimpleObject)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub team_ids: Vec<Uuid>,
    pub project_ids: Vec<Uuid>,
}

impl Me {
    fn of(p: &Principal) -> Me {
        let mut permissions: Vec<String> = p.roles.iter().flat_map(|r| r.permissions().iter().map(|s| s.to_string())).collect();
        permissions.sort();
        permissions.dedup();
        Me {
            id: p.user_id,
            username: p.username.clone(),
            roles: p.roles.iter().map(|r| r.as_str().to_string()).collect(),
            permissions,
            team_ids: p.team_ids.iter().copied().collect(),
            project_ids: p.project_ids.iter().copied().collect(),
        }
    }
}

/// One row of the error dictionary.
#[derive(SimpleObject)]
pub struct ErrorEntry {
    pub code: u32,
    pub error_key: String,
    pub http_status: u16,
    pub msg: String,
    pub hint_en: String,
    pub hint_zh: String,
}

async fn do_login(s: &AppState, meta: &RequestMeta, b: &LoginInput) -> Result<Session, ApiError> {
    s.check_login_rate(meta.ip, &b.username).map_err(|e| e.in_lang(meta.lang))?;
    let ctx = opspilot_commands::CommandContext::system(meta.source);
    let session = s.run(meta.lang, s.commands.login(&ctx, &b.username, &b.password)).await?;
    Ok(Session { token: session.token, user_id: session.user_id, expires_at: session.expires_at })
}

async fn login(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<LoginInput>) -> ApiResult {
    let session = do_login(&s, &meta, &b).await?;
    Ok(ok(json!({ "token": session.token, "user_id": session.user_id, "expires_at": session.expires_at })))
}

async fn logout(State(s): State<AppState>, meta: RequestMeta) -> ApiResult {
    let (_, token_id) = meta.caller.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no bearer token"))?;
    s.commands.logout(*token_id).await?;
    Ok(ok(json!({ "logged_out": true })))
}

async fn me(meta: RequestMeta) -> ApiResult {
    Ok(ok(me_json(meta.principal()?)))
}

async fn list_tokens(State(s): State<AppState>, meta: RequestMeta) -> ApiResult {
    Ok(ok(json!({ "list": accounts::list_api_tokens(&s.pool, meta.principal()?).await? })))
}

async fn issue_token(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TokenInput>) -> ApiResult {
    let (issued, position) = s.run(meta.lang, s.commands.issue_api_token(&meta.command_context()?, &b.name, b.expires_in_days)).await?;
    s.settle(position).await;
    Ok(ok(issued))
}

async fn revoke_token(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<Uuid>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.revoke_api_token(&meta.command_context()?, id)).await?).await
}

async fn list_projects(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(accounts::list_projects(&s.pool, meta.principal()?, q.request()).await?))
}

async fn create_project(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ProjectInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_project(&meta.command_context()?, &b.name, b.description.as_deref().unwrap_or(""))).await?).await
}

#[derive(Deserialize)]
struct TeamQuery {
    project_id: Option<String>,
    #[serde(default, deserialize_with = "crate::edge::page_number")]
    page: Option<i64>,
    #[serde(default, deserialize_with = "crate::edge::page_size")]
    page_size: Option<i64>,
}

async fn list_teams(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<TeamQuery>) -> ApiResult {
    let project = q.project_id.as_deref().map(|p| id_of("project", p));
    Ok(ok(accounts::list_teams(&s.pool, meta.principal()?, project, opspilot_projections::PageRequest::new(q.page, q.page_size)).await?))
}

async fn create_team(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TeamInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_team(&meta.command_context()?, &b.name, &b.project_id)).await?).await
}

async fn add_member(State(s): State<AppState>, meta: RequestMeta, Path(team): Path<String>, Body(b): Body<MemberInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.add_team_member(&meta.command_context()?, &team, &b.user_id)).await?).await
}

#[derive(Deserialize)]
struct UserQuery {
    q: Option<String>,
    role: Option<String>,
    #[serde(default, deserialize_with = "crate::edge::page_number")]
    page: Option<i64>,
    #[serde(default, deserialize_with = "crate::edge::page_size")]
    page_size: Option<i64>,
}

async fn list_users(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<UserQuery>) -> ApiResult {
    let page = opspilot_projections::PageRequest::new(q.page, q.page_size);
    Ok(ok(accounts::list_users(&s.pool, meta.principal()?, q.q.as_deref(), q.role.as_deref(), page).await?))
}

fn new_user(b: NewUserInput) -> NewUser {
    NewUser { username: b.username, display_name: b.display_name, password: b.password, roles: b.roles }
}

async fn create_user(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<NewUserInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_user(&meta.command_context()?, new_user(b))).await?).await
}

async fn grant_role(State(s): State<AppState>, meta: RequestMeta, Path(user): Path<String>, Body(b): Body<RoleInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.grant_role(&meta.command_context()?, &user, &b.role)).await?).await
}

async fn revoke_role(State(s): State<AppState>, meta: RequestMeta, Path((user, role)): Path<(String, String)>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.revoke_role(&meta.command_context()?, &user, &role)).await?).await
}

async fn change_password(State(s): State<AppState>, meta: RequestMeta, Path(user): Path<String>, Body(b): Body<PasswordInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.change_password(&meta.command_context()?, &user, &b.password)).await?).await
}

async fn list_credentials(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(accounts::list_credentials(&s.pool, meta.principal()?, q.request()).await?))
}

async fn store_credential(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<CredentialInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.store_credential(&meta.command_context()?, &b.name, &b.kind, &b.secret, b.project_id.as_deref())).await?).await
}

async fn errors() -> ApiResult {
    Ok(ok(json!({ "list": DICTIONARY })))
}

/// Account queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Me> {
        Ok(Me::of(principal(ctx)?))
    }

    /// Users visible to the caller.
    async fn users(&self, ctx: &Context<'_>, q: Option<String>, role: Option<String>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<UserPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(accounts::list_users(&state(ctx).pool, principal(ctx)?, q.as_deref(), role.as_deref(), page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// Projects visible to the caller.
    async fn projects(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ProjectPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(accounts::list_projects(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// Teams visible to the caller, optionally of one project (id or name).
    async fn teams(&self, ctx: &Context<'_>, project: Option<String>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<TeamPage> {
        let project = project.as_deref().map(|p| id_of("project", p));
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(accounts::list_teams(&state(ctx).pool, principal(ctx)?, project, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// The caller's API tokens.
    async fn api_tokens(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiToken>> {
        accounts::list_api_tokens(&state(ctx).pool, principal(ctx)?).await.map_err(|e| gql(e, ctx))
    }

    /// Credentials visible to the caller (metadata only).
    async fn credentials(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<CredentialPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(accounts::list_credentials(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// The error dictionary.
    async fn error_dictionary(&self) -> Vec<ErrorEntry> {
        DICTIONARY
            .iter()
            .map(|e| ErrorEntry { code: e.code, error_key: e.key.into(), http_status: e.http_status, msg: e.msg.into(), hint_en: e.hint_en.into(), hint_zh: e.hint_zh.into() })
            .collect()
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Logs in; answers a bearer token.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> GqlResult<Session> {
        do_login(state(ctx), meta(ctx), &input).await.map_err(|e| e.into_graphql())
    }

    /// Ends the caller's session (or revokes the token used).
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let (_, token_id) = meta(ctx).caller.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no bearer token").into_graphql())?;
        state(ctx).run(meta(ctx).lang, state(ctx).commands.logout(*token_id)).await.map_err(|e| e.into_graphql())?;
        Ok(true)
    }

    /// Creates a project.
    async fn create_project(&self, ctx: &Context<'_>, input: ProjectInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_project(&command_ctx(ctx)?, &input.name, input.description.as_deref().unwrap_or(""))).await
    }

    /// Creates a team in a project (id or name).
    async fn create_team(&self, ctx: &Context<'_>, input: TeamInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_team(&command_ctx(ctx)?, &input.name, &input.project_id)).await
    }

    /// Adds a user to a team (ids or names).
    async fn add_team_member(&self, ctx: &Context<'_>, team: String, input: MemberInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.add_team_member(&command_ctx(ctx)?, &team, &input.user_id)).await
    }

    /// Creates a local account.
    async fn create_user(&self, ctx: &Context<'_>, input: NewUserInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_user(&command_ctx(ctx)?, new_user(input))).await
    }

    /// Grants a role.
    async fn grant_role(&self, ctx: &Context<'_>, user: String, input: RoleInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.grant_role(&command_ctx(ctx)?, &user, &input.role)).await
    }

    /// Revokes a role.
    async fn revoke_role(&self, ctx: &Context<'_>, user: String, role: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.revoke_role(&command_ctx(ctx)?, &user, &role)).await
    }

    /// Sets a new password (own, or any with `identity:manage`).
    async fn change_password(&self, ctx: &Context<'_>, user: String, input: PasswordInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.change_password(&command_ctx(ctx)?, &user, &input.password)).await
    }

    /// Issues an API token for the caller; the token is shown once.
    async fn issue_api_token(&self, ctx: &Context<'_>, input: TokenInput) -> GqlResult<IssuedApiToken> {
        let (t, position) = state(ctx).run(meta(ctx).lang, state(ctx).commands.issue_api_token(&command_ctx(ctx)?, &input.name, input.expires_in_days)).await.map_err(|e| e.into_graphql())?;
        state(ctx).settle(position).await;
        Ok(IssuedApiToken { id: t.id, name: t.name, token: t.token, fingerprint: t.fingerprint, expires_at: t.expires_at })
    }

    /// Revokes an API token.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.revoke_api_token(&command_ctx(ctx)?, id)).await
    }

    /// Seals and stores a secret; answers its id and fingerprint only.
    async fn store_credential(&self, ctx: &Context<'_>, input: CredentialInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.store_credential(&command_ctx(ctx)?, &input.name, &input.kind, &input.secret, input.project_id.as_deref())).await
    }
}

/// The caller as REST answers it.
fn me_json(p: &Principal) -> Value {
    let me = Me::of(p);
    json!({
        "id": me.id, "username": me.username, "roles": me.roles, "permissions": me.permissions,
        "team_ids": me.team_ids, "project_ids": me.project_ids, "api_token_id": p.api_token_id,
    })
}
