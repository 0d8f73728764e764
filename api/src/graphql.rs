//! GraphQL: queries read projections, mutations call commands, subscriptions
//! stream what the projections just applied. The SDL is committed at
//! `api/schema.graphql`; a test fails when code and file differ.

use async_graphql::{Context, InputObject, Json, MergedObject, MergedSubscription, Object, Schema, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use opspilot_commands::identity::NewUser;
use opspilot_domain::{ErrorCode, Principal};
use opspilot_projections::audit_log::{self, AuditFilter};
use opspilot_commands::clusters::{CertParts, ClusterPlacement};
use opspilot_commands::releases::{ApplyRequest, PreviewRequest};
use opspilot_projections::inbox::{self, InboxQuery};
use opspilot_projections::{accounts, clusters, releases, PageRequest};
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::{AppState, RequestMeta};

/// The schema type.
pub type OpsSchema = Schema<Query, Mutation, Subscription>;

/// The query root: the core queries and those of environments.
#[derive(MergedObject, Default)]
pub struct Query(CoreQuery, crate::graphql_environments::EnvironmentQuery);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(CoreMutation, crate::graphql_environments::EnvironmentMutation);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct Subscription(CoreSubscription, crate::graphql_environments::EnvironmentSubscription);

/// Builds the schema with the depth and complexity guards.
pub fn schema(max_depth: usize, max_complexity: usize) -> OpsSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).limit_depth(max_depth).limit_complexity(max_complexity).finish()
}

/// The SDL as committed.
pub fn sdl() -> String {
    schema(12, 1000).sdl()
}

type GqlResult<T> = async_graphql::Result<T>;

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub(crate) fn meta<'a>(ctx: &Context<'a>) -> &'a RequestMeta {
    ctx.data_unchecked::<RequestMeta>()
}

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> GqlResult<&'a Principal> {
    meta(ctx).principal().map_err(|e| e.into_graphql())
}

fn gql(e: impl Into<ApiError>, ctx: &Context<'_>) -> async_graphql::Error {
    e.into().in_lang(meta(ctx).lang).into_graphql()
}

/// The caller as JSON (shared with REST `/auth/me`).
pub fn me_json(p: &Principal) -> Value {
    let mut perms: Vec<&str> = p.roles.iter().flat_map(|r| r.permissions().iter().copied()).collect();
    perms.sort();
    perms.dedup();
    json!({
        "id": p.user_id, "username": p.username, "roles": p.roles, "permissions": perms,
        "team_ids": p.team_ids, "project_ids": p.project_ids, "api_token_id": p.api_token_id,
    })
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

// The read models are the GraphQL objects (derived behind the projections'
// `graphql` feature), under the names clients know.
pub use opspilot_projections::accounts::{ApiTokenView as ApiToken, CredentialView as Credential, ProjectView as Project, TeamView as Team, UserView as User};
pub use opspilot_projections::audit_log::AuditEntry;
pub use opspilot_projections::inbox::{InboxItem, InboxStats};
pub use opspilot_projections::releases::ReleaseView as Release;

/// A GraphQL page of `$item`, made from a read-model page of anything that
/// converts into `$item`.
macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// A page of results.
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            pub list: Vec<$item>,
            pub total: i64,
            pub page: i64,
            pub page_size: i64,
        }
        impl<S: Into<$item>> From<opspilot_projections::Page<S>> for $name {
            fn from(p: opspilot_projections::Page<S>) -> Self {
                $name { list: p.list.into_iter().map(Into::into).collect(), total: p.total, page: p.page, page_size: p.page_size }
            }
        }
    };
}
pub(crate) use page_type;
page_type!(UserPage, User);
page_type!(ProjectPage, Project);
page_type!(TeamPage, Team);
page_type!(CredentialPage, Credential);
page_type!(AuditPage, AuditEntry);

/// Filters of the audit explorer.
#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    pub domain: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor_id: Option<String>,
    pub project_id: Option<String>,
    pub status: Option<String>,
    pub after_position: Option<i64>,
}

impl From<AuditFilterInput> for AuditFilter {
    fn from(f: AuditFilterInput) -> Self {
        AuditFilter {
            domain: f.domain,
            action: f.action,
            resource_type: f.resource_type,
            resource_id: f.resource_id,
            actor_id: f.actor_id,
            project_id: f.project_id,
            status: f.status,
            after_position: f.after_position,
        }
    }
}

pub use opspilot_projections::clusters::ClusterView as Cluster;

page_type!(ClusterPage, Cluster);

/// Credentials of a certificate import: a token, or a client certificate and key.
#[derive(InputObject, Default)]
pub struct ClusterCertInput {
    pub endpoint: String,
    pub ca_cert: String,
    pub token: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// A page of the inbox with its stats.
#[derive(SimpleObject)]
pub struct InboxPage {
    pub list: Vec<InboxItem>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub stats: InboxStats,
}

/// The inbox filters of the seed.
#[derive(InputObject, Default)]
pub struct InboxFilter {
    /// mine (default), pending or all.
    pub view: Option<String>,
    pub status: Option<Vec<String>>,
    pub scope_type: Option<Vec<String>>,
    pub project: Option<String>,
    pub team: Option<String>,
    pub environment_id: Option<String>,
    pub runtime_type: Option<String>,
    pub risk_level: Option<String>,
    pub priority: Option<String>,
    pub assigned_to: Option<String>,
    pub requested_by: Option<String>,
    pub q: Option<String>,
    /// 15m, 1h or today.
    pub expiring: Option<String>,
    /// priority, expires_at, sla_due_at or created_at.
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

/// What to preview or apply (names or ids).
#[derive(InputObject)]
pub struct ReleaseInput {
    pub service: String,
    pub target: String,
    pub env: String,
    pub strategy: Option<String>,
    pub variables: Option<Json<std::collections::BTreeMap<String, String>>>,
}

impl ReleaseInput {
    fn request(self) -> PreviewRequest {
        PreviewRequest { service: self.service, target: self.target, env: self.env, strategy: self.strategy, variables: self.variables.map(|v| v.0).unwrap_or_default() }
    }
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

/// What a command did: its answer and the log position it reached.
#[derive(SimpleObject)]
pub struct CommandResult {
    pub position: i64,
    pub result: Json<Value>,
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

/// New account input.
#[derive(InputObject)]
pub struct NewUserInput {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub roles: Vec<String>,
}

/// Queries: read models only.
/// Core queries.
#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Me> {
        let p = principal(ctx)?;
        let v = me_json(p);
        Ok(Me {
            id: p.user_id,
            username: p.username.clone(),
            roles: p.roles.iter().map(|r| r.as_str().to_string()).collect(),
            permissions: serde_json::from_value(v["permissions"].clone()).unwrap_or_default(),
            team_ids: p.team_ids.iter().copied().collect(),
            project_ids: p.project_ids.iter().copied().collect(),
        })
    }

    /// Users visible to the caller.
    async fn users(&self, ctx: &Context<'_>, q: Option<String>, role: Option<String>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<UserPage> {
        let p = principal(ctx)?;
        let r = accounts::list_users(&state(ctx).pool, p, q.as_deref(), role.as_deref(), PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// Projects visible to the caller.
    async fn projects(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ProjectPage> {
        let r = accounts::list_projects(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// Teams visible to the caller, optionally of one project (id or name).
    async fn teams(&self, ctx: &Context<'_>, project: Option<String>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<TeamPage> {
        let project = project.as_deref().map(|p| opspilot_commands::ids::resolve("project", p));
        let r = accounts::list_teams(&state(ctx).pool, principal(ctx)?, project, PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// The caller's API tokens.
    async fn api_tokens(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiToken>> {
        let r = accounts::list_api_tokens(&state(ctx).pool, principal(ctx)?).await.map_err(|e| gql(e, ctx))?;
        Ok(r)
    }

    /// Credentials visible to the caller (metadata only).
    async fn credentials(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<CredentialPage> {
        let r = accounts::list_credentials(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// The audit log, scoped to the caller, newest first unless `ascending`.
    async fn audit_events(&self, ctx: &Context<'_>, filter: Option<AuditFilterInput>, ascending: Option<bool>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<AuditPage> {
        let p = principal(ctx)?;
        p.require("audit:read").map_err(|e| gql(e, ctx))?;
        let f: AuditFilter = filter.unwrap_or_default().into();
        let r = audit_log::list(&state(ctx).pool, p, &f, ascending.unwrap_or(false), PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// Clusters visible to the caller.
    async fn clusters(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ClusterPage> {
        let r = clusters::list(&state(ctx).pool, principal(ctx)?, PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(r.into())
    }

    /// One cluster (id or name).
    async fn cluster(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<Cluster>> {
        let c = clusters::get(&state(ctx).pool, principal(ctx)?, opspilot_commands::ids::resolve("cluster", &id)).await.map_err(|e| gql(e, ctx))?;
        Ok(c)
    }

    /// One release (visible to the caller).
    async fn release(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<Option<Release>> {
        let r = releases::get(&state(ctx).pool, principal(ctx)?, id).await.map_err(|e| gql(e, ctx))?;
        Ok(r)
    }

    /// A release's timeline: its events and its tickets', in log order.
    async fn release_timeline(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<Vec<AuditEntry>> {
        let list = audit_log::release_timeline(&state(ctx).pool, principal(ctx)?, &id.to_string()).await.map_err(|e| gql(e, ctx))?;
        Ok(list)
    }

    /// The global approval inbox.
    async fn inbox(&self, ctx: &Context<'_>, filter: Option<InboxFilter>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<InboxPage> {
        use opspilot_commands::ids::resolve;
        let f = filter.unwrap_or_default();
        let q = InboxQuery {
            view: f.view,
            status: f.status.unwrap_or_default(),
            scope_type: f.scope_type.unwrap_or_default(),
            project_id: f.project.map(|v| resolve("project", &v)),
            team_id: f.team.map(|v| resolve("team", &v)),
            environment_id: f.environment_id,
            runtime_type: f.runtime_type,
            risk_level: f.risk_level,
            priority: f.priority,
            assigned_to: f.assigned_to.map(|v| resolve("user", &v)),
            requested_by: f.requested_by.map(|v| resolve("user", &v)),
            q: f.q,
            expiring: f.expiring,
            sort_by: f.sort_by,
            sort_order: f.sort_order,
        };
        let r = inbox::list(&state(ctx).pool, principal(ctx)?, &q, Utc::now(), PageRequest::new(page, page_size)).await.map_err(|e| gql(e, ctx))?;
        Ok(InboxPage {
            list: r.page.list,
            total: r.page.total,
            page: r.page.page,
            page_size: r.page.page_size,
            stats: r.stats,
        })
    }

    /// The error dictionary.
    async fn error_dictionary(&self) -> Vec<ErrorEntry> {
        opspilot_domain::DICTIONARY
            .iter()
            .map(|e| ErrorEntry { code: e.code, error_key: e.key.into(), http_status: e.http_status, msg: e.msg.into(), hint_en: e.hint_en.into(), hint_zh: e.hint_zh.into() })
            .collect()
    }
}

/// Mutations: commands.
/// Core mutations.
#[derive(Default)]
pub struct CoreMutation;

pub(crate) async fn settled(ctx: &Context<'_>, h: opspilot_commands::Handled) -> CommandResult {
    state(ctx).settle(h.position).await;
    CommandResult { position: h.position, result: Json(h.result) }
}

pub(crate) fn command_ctx(ctx: &Context<'_>) -> GqlResult<opspilot_commands::CommandContext> {
    meta(ctx).command_context().map_err(|e| e.into_graphql())
}

#[Object]
impl CoreMutation {
    /// Logs in; answers a bearer token.
    async fn login(&self, ctx: &Context<'_>, username: String, password: String) -> GqlResult<Session> {
        let s = state(ctx);
        let m = meta(ctx);
        s.check_login_rate(m.ip, &username).map_err(|e| gql(e, ctx))?;
        let c = opspilot_commands::CommandContext::system(m.source);
        let session = s.run(m.lang, s.commands.login(&c, &username, &password)).await.map_err(|e| e.into_graphql())?;
        Ok(Session { token: session.token, user_id: session.user_id, expires_at: session.expires_at })
    }

    /// Ends the caller's session (or revokes the token used).
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let (_, token_id) = meta(ctx).caller.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no bearer token").into_graphql())?;
        state(ctx).run(meta(ctx).lang, state(ctx).commands.logout(*token_id)).await.map_err(|e| e.into_graphql())?;
        Ok(true)
    }

    /// Creates a project.
    async fn create_project(&self, ctx: &Context<'_>, name: String, description: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.create_project(&command_ctx(ctx)?, &name, description.as_deref().unwrap_or(""))).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Creates a team in a project (id or name).
    async fn create_team(&self, ctx: &Context<'_>, name: String, project: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.create_team(&command_ctx(ctx)?, &name, &project)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Adds a user to a team (ids or names).
    async fn add_team_member(&self, ctx: &Context<'_>, team: String, user: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.add_team_member(&command_ctx(ctx)?, &team, &user)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Creates a local account.
    async fn create_user(&self, ctx: &Context<'_>, input: NewUserInput) -> GqlResult<CommandResult> {
        let input = NewUser { username: input.username, display_name: input.display_name, password: input.password, roles: input.roles };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.create_user(&command_ctx(ctx)?, input)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Grants a role.
    async fn grant_role(&self, ctx: &Context<'_>, user: String, role: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.grant_role(&command_ctx(ctx)?, &user, &role)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Revokes a role.
    async fn revoke_role(&self, ctx: &Context<'_>, user: String, role: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.revoke_role(&command_ctx(ctx)?, &user, &role)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Sets a new password (own, or any with `identity:manage`).
    async fn change_password(&self, ctx: &Context<'_>, user: String, password: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.change_password(&command_ctx(ctx)?, &user, &password)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Issues an API token for the caller; the token is shown once.
    async fn issue_api_token(&self, ctx: &Context<'_>, name: String, expires_in_days: Option<i64>) -> GqlResult<IssuedApiToken> {
        let (t, position) = state(ctx).run(meta(ctx).lang, state(ctx).commands.issue_api_token(&command_ctx(ctx)?, &name, expires_in_days)).await.map_err(|e| e.into_graphql())?;
        state(ctx).settle(position).await;
        Ok(IssuedApiToken { id: t.id, name: t.name, token: t.token, fingerprint: t.fingerprint, expires_at: t.expires_at })
    }

    /// Revokes an API token.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.revoke_api_token(&command_ctx(ctx)?, id)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Imports an external cluster by kubeconfig (raw or base64); connects and probes first.
    async fn import_cluster_kubeconfig(&self, ctx: &Context<'_>, name: String, project: String, team: String, kubeconfig: String) -> GqlResult<CommandResult> {
        let placement = ClusterPlacement { name, project, team, labels: Default::default() };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.import_cluster_kubeconfig(&command_ctx(ctx)?, &placement, &kubeconfig)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Imports an external cluster by endpoint + CA + token or client certificate and key.
    async fn import_cluster_cert(&self, ctx: &Context<'_>, name: String, project: String, team: String, cert: ClusterCertInput) -> GqlResult<CommandResult> {
        let placement = ClusterPlacement { name, project, team, labels: Default::default() };
        let parts = CertParts { endpoint: cert.endpoint, ca_cert: cert.ca_cert, token: cert.token, client_cert: cert.client_cert, client_key: cert.client_key };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.import_cluster_cert(&command_ctx(ctx)?, &placement, &parts)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Connects with a cluster's stored credentials and records the outcome.
    async fn test_cluster_connection(&self, ctx: &Context<'_>, id: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.test_cluster_connection(&command_ctx(ctx)?, &id)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Previews a release (mandatory before apply).
    async fn preview_release(&self, ctx: &Context<'_>, input: ReleaseInput) -> GqlResult<CommandResult> {
        let r = input.request();
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.preview_release(&command_ctx(ctx)?, &r)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Applies a previewed release (the parameters must match the preview).
    async fn apply_release(&self, ctx: &Context<'_>, preview_ref: Option<String>, input: ReleaseInput) -> GqlResult<CommandResult> {
        let req = ApplyRequest { preview_ref, params: input.request() };
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.apply_release(&command_ctx(ctx)?, &req)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Rolls an applied release back to the previous one.
    /// Withdraws a release (or its rollback) waiting for approval; its ticket is cancelled.
    async fn cancel_release(&self, ctx: &Context<'_>, id: Uuid, reason: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.cancel_release(&command_ctx(ctx)?, id, reason)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    async fn rollback_release(&self, ctx: &Context<'_>, id: Uuid) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.rollback_release(&command_ctx(ctx)?, id)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Approves a ticket of the inbox.
    async fn approve_ticket(&self, ctx: &Context<'_>, ticket: String, comment: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.approve_ticket(&command_ctx(ctx)?, &ticket, comment)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Rejects a ticket of the inbox.
    async fn reject_ticket(&self, ctx: &Context<'_>, ticket: String, comment: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.reject_ticket(&command_ctx(ctx)?, &ticket, comment)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Assigns a ticket to an approver (id or name).
    async fn assign_ticket(&self, ctx: &Context<'_>, ticket: String, assignee: String, comment: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.assign_ticket(&command_ctx(ctx)?, &ticket, &assignee, comment)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Comments on a ticket.
    async fn comment_ticket(&self, ctx: &Context<'_>, ticket: String, comment: String) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.comment_ticket(&command_ctx(ctx)?, &ticket, &comment)).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }

    /// Seals and stores a secret; answers its id and fingerprint only.
    async fn store_credential(&self, ctx: &Context<'_>, name: String, kind: String, secret: String, project: Option<String>) -> GqlResult<CommandResult> {
        let h = state(ctx).run(meta(ctx).lang, state(ctx).commands.store_credential(&command_ctx(ctx)?, &name, &kind, &secret, project.as_deref())).await.map_err(|e| e.into_graphql())?;
        Ok(settled(ctx, h).await)
    }
}

/// Live updates.
#[derive(Default)]
pub struct CoreSubscription;

fn live(ctx: &Context<'_>, keep: impl Fn(&AuditEntry) -> bool + Send + Sync + 'static) -> BoxStream<'static, GqlResult<AuditEntry>> {
    let p = match principal(ctx) {
        Ok(p) => p.clone(),
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let rx = state(ctx).runner.applied.subscribe();
    BroadcastStream::new(rx)
        .filter_map(move |item| {
            let out = item.ok().map(|e| AuditEntry::from_event(&e)).filter(|row| audit_log::visible_to(&p, row.project_id.as_deref(), &row.actor_id) && keep(row));
            async move { out.map(Ok) }
        })
        .boxed()
}

#[Subscription]
impl CoreSubscription {
    /// A release's status changes (its own events), live.
    async fn release_status_changed(&self, ctx: &Context<'_>, id: Uuid) -> BoxStream<'static, GqlResult<AuditEntry>> {
        let id = id.to_string();
        live(ctx, move |r| r.resource_type == "deployment_release" && r.resource_id == id)
    }

    /// Appends to a release's timeline (release and ticket events), live.
    async fn timeline_appended(&self, ctx: &Context<'_>, id: Uuid) -> BoxStream<'static, GqlResult<AuditEntry>> {
        let id = id.to_string();
        live(ctx, move |r| {
            (r.resource_type == "deployment_release" && r.resource_id == id) || (r.resource_type == "approval_ticket" && r.detail.get("scope_id").and_then(|v| v.as_str()) == Some(id.as_str()))
        })
    }

    /// Every change of the inbox the caller may see, live.
    async fn inbox_changed(&self, ctx: &Context<'_>) -> BoxStream<'static, GqlResult<AuditEntry>> {
        live(ctx, |r| r.domain == "approval")
    }

    /// Events as the read models apply them, scoped to the caller and filtered.
    async fn audit_events(&self, ctx: &Context<'_>, filter: Option<AuditFilterInput>) -> BoxStream<'static, GqlResult<AuditEntry>> {
        let p = match principal(ctx).and_then(|p| p.require("audit:read").map(|_| p.clone()).map_err(|e| gql(e, ctx))) {
            Ok(p) => p,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let f: AuditFilter = filter.unwrap_or_default().into();
        let rx = state(ctx).runner.applied.subscribe();
        BroadcastStream::new(rx)
            .filter_map(move |item| {
                let out = item
                    .ok()
                    .map(|e| AuditEntry::from_event(&e))
                    .filter(|row| audit_log::visible_to(&p, row.project_id.as_deref(), &row.actor_id) && f.matches(row));
                async move { out.map(Ok) }
            })
            .boxed()
    }
}
