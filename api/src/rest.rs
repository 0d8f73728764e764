//! REST under `/api/v1`, in the seed's envelope. Handlers translate: they call
//! commands or read projections and map errors through the dictionary.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use opspilot_commands::identity::NewUser;
use opspilot_domain::{ErrorCode, DICTIONARY};
use opspilot_projections::audit_log::{self, AuditFilter};
use opspilot_commands::catalog::{NewService, NewTarget};
use opspilot_commands::clusters::{CertParts, ClusterPlacement};
use opspilot_commands::releases::{ApplyRequest, PreviewRequest};
use opspilot_projections::inbox::{self, InboxQuery};
use opspilot_projections::{accounts, catalog, clusters, releases, PageRequest};
use std::collections::BTreeMap;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ok, ApiError};
use crate::state::{AppState, RequestMeta};

/// A JSON body whose rejection is a dictionary `validation_error`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError::new(ErrorCode::ValidationError, "request body too large or unreadable")),
            Err(e) => Err(ApiError::new(ErrorCode::ValidationError, e.body_text())),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// The answer of a command: its result, once the projections have caught up
/// with it (read-your-writes).
pub(crate) async fn settled(s: &AppState, h: opspilot_commands::Handled) -> ApiResult {
    s.settle(h.position).await;
    Ok(ok(h.result))
}

/// The `/api/v1` routes.
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
        .route("/audit/events", get(audit_events))
        .route("/deploy/services", get(list_services).post(create_service))
        .route("/deploy/targets", get(list_targets).post(create_target))
        .route("/deploy/releases/preview", post(preview_release))
        .route("/deploy/releases/apply", post(apply_release))
        .route("/deploy/releases/{id}", get(get_release))
        .route("/deploy/releases/{id}/approve", post(approve_release))
        .route("/deploy/releases/{id}/reject", post(reject_release))
        .route("/deploy/releases/{id}/timeline", get(release_timeline))
        .route("/deploy/releases/{id}/rollback", post(rollback_release))
        .route("/deploy/releases/{id}/cancel", post(cancel_release))
        .route("/approvals/inbox/{ticket}/assign", post(assign_ticket))
        .route("/approvals/inbox/{ticket}/comment", post(comment_ticket))
        .route("/approvals/inbox", get(inbox))
        .route("/approvals/inbox/{ticket}", get(inbox_ticket))
        .route("/approvals/inbox/{ticket}/approve", post(approve_ticket))
        .route("/approvals/inbox/{ticket}/reject", post(reject_ticket))
        .route("/clusters", get(list_clusters))
        .route("/clusters/import/kubeconfig", post(import_kubeconfig))
        .route("/clusters/import/cert", post(import_cert))
        .route("/clusters/{id}", get(get_cluster))
        .route("/clusters/{id}/connect/test", post(test_connection))
        .route("/clusters/{id}/connection", get(get_connection).put(put_connection))
        .route("/errors", get(errors))
        .merge(crate::rest_environments::routes())
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<LoginBody>) -> ApiResult {
    s.check_login_rate(meta.ip, &b.username).map_err(|e| e.in_lang(meta.lang))?;
    let ctx = opspilot_commands::CommandContext::system(meta.source);
    let session = s.run(meta.lang, s.commands.login(&ctx, &b.username, &b.password)).await?;
    Ok(ok(json!({ "token": session.token, "user_id": session.user_id, "expires_at": session.expires_at })))
}

async fn logout(State(s): State<AppState>, meta: RequestMeta) -> ApiResult {
    let (_, token_id) = meta.caller.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no bearer token"))?;
    s.commands.logout(*token_id).await?;
    Ok(ok(json!({ "logged_out": true })))
}

async fn me(meta: RequestMeta) -> ApiResult {
    let p = meta.principal()?;
    Ok(ok(crate::graphql::me_json(p)))
}

async fn list_tokens(State(s): State<AppState>, meta: RequestMeta) -> ApiResult {
    Ok(ok(json!({ "list": accounts::list_api_tokens(&s.pool, meta.principal()?).await? })))
}

#[derive(Deserialize)]
struct TokenBody {
    name: String,
    expires_in_days: Option<i64>,
}

async fn issue_token(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TokenBody>) -> ApiResult {
    let ctx = meta.command_context()?;
    let (issued, position) = s.run(meta.lang, s.commands.issue_api_token(&ctx, &b.name, b.expires_in_days)).await?;
    s.settle(position).await;
    Ok(ok(issued))
}

async fn revoke_token(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<Uuid>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.revoke_api_token(&meta.command_context()?, id)).await?).await
}

/// `?page=&page_size=` of every list.
#[derive(Deserialize)]
pub(crate) struct Paging {
    pub(crate) page: Option<i64>,
    pub(crate) page_size: Option<i64>,
}

async fn list_projects(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(accounts::list_projects(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

#[derive(Deserialize)]
struct ProjectBody {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_project(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ProjectBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_project(&meta.command_context()?, &b.name, &b.description)).await?).await
}

#[derive(Deserialize)]
struct TeamQuery {
    project_id: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn list_teams(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<TeamQuery>) -> ApiResult {
    let project = q.project_id.as_deref().map(|p| opspilot_commands::ids::resolve("project", p));
    Ok(ok(accounts::list_teams(&s.pool, meta.principal()?, project, PageRequest::new(q.page, q.page_size)).await?))
}

#[derive(Deserialize)]
struct TeamBody {
    name: String,
    project_id: String,
}

async fn create_team(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TeamBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_team(&meta.command_context()?, &b.name, &b.project_id)).await?).await
}

#[derive(Deserialize)]
struct MemberBody {
    user_id: String,
}

async fn add_member(State(s): State<AppState>, meta: RequestMeta, Path(team): Path<String>, Body(b): Body<MemberBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.add_team_member(&meta.command_context()?, &team, &b.user_id)).await?).await
}

#[derive(Deserialize)]
struct UserQuery {
    q: Option<String>,
    role: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn list_users(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<UserQuery>) -> ApiResult {
    let p = meta.principal()?;
    Ok(ok(accounts::list_users(&s.pool, p, q.q.as_deref(), q.role.as_deref(), PageRequest::new(q.page, q.page_size)).await?))
}

#[derive(Deserialize)]
struct UserBody {
    username: String,
    display_name: Option<String>,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<UserBody>) -> ApiResult {
    let input = NewUser { username: b.username, display_name: b.display_name, password: b.password, roles: b.roles };
    settled(&s, s.run(meta.lang, s.commands.create_user(&meta.command_context()?, input)).await?).await
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn grant_role(State(s): State<AppState>, meta: RequestMeta, Path(user): Path<String>, Body(b): Body<RoleBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.grant_role(&meta.command_context()?, &user, &b.role)).await?).await
}

async fn revoke_role(State(s): State<AppState>, meta: RequestMeta, Path((user, role)): Path<(String, String)>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.revoke_role(&meta.command_context()?, &user, &role)).await?).await
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn change_password(State(s): State<AppState>, meta: RequestMeta, Path(user): Path<String>, Body(b): Body<PasswordBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.change_password(&meta.command_context()?, &user, &b.password)).await?).await
}

async fn list_credentials(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(accounts::list_credentials(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

#[derive(Deserialize)]
struct CredentialBody {
    name: String,
    kind: String,
    secret: String,
    project_id: Option<String>,
}

async fn store_credential(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<CredentialBody>) -> ApiResult {
    let h = s.run(meta.lang, s.commands.store_credential(&meta.command_context()?, &b.name, &b.kind, &b.secret, b.project_id.as_deref())).await?;
    settled(&s, h).await
}

#[derive(Deserialize)]
struct AuditQuery {
    domain: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    actor_id: Option<String>,
    project_id: Option<String>,
    status: Option<String>,
    after_position: Option<i64>,
    order: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn audit_events(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<AuditQuery>) -> ApiResult {
    let p = meta.principal()?;
    p.require("audit:read").map_err(ApiError::from)?;
    let f = AuditFilter {
        domain: q.domain,
        action: q.action,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        actor_id: q.actor_id,
        project_id: q.project_id,
        status: q.status,
        after_position: q.after_position,
    };
    let ascending = q.order.as_deref() == Some("asc");
    Ok(ok(audit_log::list(&s.pool, p, &f, ascending, PageRequest::new(q.page, q.page_size)).await?))
}

async fn list_clusters(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(clusters::list(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

async fn find_cluster(s: &AppState, meta: &RequestMeta, id: &str) -> Result<clusters::ClusterView, ApiError> {
    let p = meta.principal()?;
    p.require("cluster:read").map_err(ApiError::from)?;
    clusters::get(&s.pool, p, opspilot_commands::ids::resolve("cluster", id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ClusterNotFound, format!("cluster {id} does not exist")).in_lang(meta.lang))
}

async fn get_cluster(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(find_cluster(&s, &meta, &id).await?))
}

async fn get_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let c = find_cluster(&s, &meta, &id).await?;
    Ok(ok(json!({ "cluster_id": c.id, "connection": c.connection })))
}

#[derive(Deserialize)]
struct ImportKubeconfigBody {
    name: String,
    project_id: String,
    team_id: String,
    kubeconfig: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

async fn import_kubeconfig(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ImportKubeconfigBody>) -> ApiResult {
    let placement = ClusterPlacement { name: b.name, project: b.project_id, team: b.team_id, labels: b.labels };
    settled(&s, s.run(meta.lang, s.commands.import_cluster_kubeconfig(&meta.command_context()?, &placement, &b.kubeconfig)).await?).await
}

#[derive(Deserialize, Default)]
struct CertBody {
    #[serde(default)]
    endpoint: String,
    auth_type: Option<String>,
    #[serde(default)]
    ca_cert: String,
    token: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
}

impl CertBody {
    fn parts(self) -> Result<CertParts, ApiError> {
        let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self.auth_type.as_deref() {
            Some("cert_token") if !nonempty(&self.token) => return Err(ApiError::new(ErrorCode::ValidationError, "auth_type cert_token needs token")),
            Some("cert_key") if !(nonempty(&self.client_cert) && nonempty(&self.client_key)) => {
                return Err(ApiError::new(ErrorCode::ValidationError, "auth_type cert_key needs client_cert and client_key"))
            }
            Some("cert_token") | Some("cert_key") | None => {}
            Some(other) => return Err(ApiError::new(ErrorCode::ValidationError, format!("auth_type {other:?}: use cert_token or cert_key"))),
        }
        let keep = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(CertParts { endpoint: self.endpoint, ca_cert: self.ca_cert, token: keep(self.token), client_cert: keep(self.client_cert), client_key: keep(self.client_key) })
    }
}

#[derive(Deserialize)]
struct ImportCertBody {
    name: String,
    project_id: String,
    team_id: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(flatten)]
    cert: CertBody,
}

async fn import_cert(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ImportCertBody>) -> ApiResult {
    let placement = ClusterPlacement { name: b.name, project: b.project_id, team: b.team_id, labels: b.labels };
    let parts = b.cert.parts().map_err(|e| e.in_lang(meta.lang))?;
    settled(&s, s.run(meta.lang, s.commands.import_cluster_cert(&meta.command_context()?, &placement, &parts)).await?).await
}

#[derive(Deserialize)]
struct ConnectionBody {
    kubeconfig: Option<String>,
    #[serde(flatten)]
    cert: CertBody,
}

async fn put_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<ConnectionBody>) -> ApiResult {
    let ctx = meta.command_context()?;
    let parts = if b.kubeconfig.is_some() { None } else { Some(b.cert.parts().map_err(|e| e.in_lang(meta.lang))?) };
    settled(&s, s.run(meta.lang, s.commands.update_cluster_connection(&ctx, &id, b.kubeconfig.as_deref(), parts.as_ref())).await?).await
}

async fn test_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.test_cluster_connection(&meta.command_context()?, &id)).await?).await
}

async fn list_services(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(catalog::services(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

async fn list_targets(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(catalog::targets(&s.pool, meta.principal()?, PageRequest::new(q.page, q.page_size)).await?))
}

#[derive(Deserialize)]
struct ServiceBody {
    name: String,
    project_id: String,
    team_id: String,
    runtime_type: String,
    manifest_template: String,
    #[serde(default)]
    default_variables: BTreeMap<String, String>,
    risk_level: Option<String>,
}

async fn create_service(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ServiceBody>) -> ApiResult {
    let input = NewService {
        name: b.name,
        project: b.project_id,
        team: b.team_id,
        runtime_type: b.runtime_type,
        manifest_template: b.manifest_template,
        default_variables: b.default_variables,
        risk_level: b.risk_level,
    };
    settled(&s, s.run(meta.lang, s.commands.create_service(&meta.command_context()?, input)).await?).await
}

#[derive(Deserialize)]
struct TargetBody {
    name: String,
    project_id: String,
    team_id: String,
    runtime_type: String,
    env: String,
    cluster_id: Option<String>,
    namespace: Option<String>,
    environment_id: Option<String>,
    host_id: Option<String>,
    project_name: Option<String>,
    project_dir: Option<String>,
}

async fn create_target(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TargetBody>) -> ApiResult {
    let input = NewTarget {
        name: b.name,
        project: b.project_id,
        team: b.team_id,
        runtime_type: b.runtime_type,
        env: b.env,
        cluster: b.cluster_id,
        namespace: b.namespace,
        environment: b.environment_id,
        host: b.host_id,
        project_name: b.project_name,
        project_dir: b.project_dir,
    };
    settled(&s, s.run(meta.lang, s.commands.create_target(&meta.command_context()?, input)).await?).await
}

#[derive(Deserialize)]
struct PreviewBody {
    service_id: String,
    target_id: String,
    env: String,
    strategy: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

async fn preview_release(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<PreviewBody>) -> ApiResult {
    let r = PreviewRequest { service: b.service_id, target: b.target_id, env: b.env, strategy: b.strategy, variables: b.variables };
    settled(&s, s.run(meta.lang, s.commands.preview_release(&meta.command_context()?, &r)).await?).await
}

#[derive(Deserialize)]
struct ApplyBody {
    preview_ref: Option<String>,
    service_id: String,
    target_id: String,
    env: String,
    strategy: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

async fn apply_release(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ApplyBody>) -> ApiResult {
    let req = ApplyRequest {
        preview_ref: b.preview_ref,
        params: PreviewRequest { service: b.service_id, target: b.target_id, env: b.env, strategy: b.strategy, variables: b.variables },
    };
    settled(&s, s.run(meta.lang, s.commands.apply_release(&meta.command_context()?, &req)).await?).await
}

async fn find_release(s: &AppState, meta: &RequestMeta, id: &str) -> Result<releases::ReleaseView, ApiError> {
    let p = meta.principal()?;
    p.require("deploy:release:read").map_err(ApiError::from)?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::new(ErrorCode::ReleaseNotFound, format!("release {id} does not exist")))?;
    releases::get(&s.pool, p, id).await?.ok_or_else(|| ApiError::new(ErrorCode::ReleaseNotFound, format!("release {id} does not exist")).in_lang(meta.lang))
}

async fn get_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(find_release(&s, &meta, &id).await?))
}

#[derive(Deserialize, Default)]
struct CommentBody {
    comment: Option<String>,
}

async fn release_ticket(s: &AppState, meta: &RequestMeta, id: &str) -> Result<String, ApiError> {
    let r = find_release(s, meta, id).await?;
    r.approval_ticket.ok_or_else(|| ApiError::new(ErrorCode::ApprovalTicketNotFound, format!("release {id} has no approval ticket")).in_lang(meta.lang))
}

#[derive(Deserialize, Default)]
struct ApproveReleaseBody {
    comment: Option<String>,
    /// The ticket the approver means; one raised for another release is refused.
    approval_ticket: Option<String>,
}

async fn approve_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(body): Body<ApproveReleaseBody>) -> ApiResult {
    let r = find_release(&s, &meta, &id).await?;
    let ticket = match body.approval_ticket {
        Some(t) => t,
        None => release_ticket(&s, &meta, &id).await?,
    };
    settled(&s, s.run(meta.lang, s.commands.approve_ticket_for_release(&meta.command_context()?, &ticket, r.id, body.comment)).await?).await
}

async fn reject_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(body): Body<CommentBody>) -> ApiResult {
    let ticket = release_ticket(&s, &meta, &id).await?;
    decide(&s, &meta, &ticket, body.comment, false).await
}

async fn approve_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(body): Body<CommentBody>) -> ApiResult {
    decide(&s, &meta, &ticket, body.comment, true).await
}

async fn reject_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(body): Body<CommentBody>) -> ApiResult {
    decide(&s, &meta, &ticket, body.comment, false).await
}

async fn decide(s: &AppState, meta: &RequestMeta, ticket: &str, comment: Option<String>, approve: bool) -> ApiResult {
    let ctx = meta.command_context()?;
    let h = if approve {
        s.run(meta.lang, s.commands.approve_ticket(&ctx, ticket, comment)).await?
    } else {
        s.run(meta.lang, s.commands.reject_ticket(&ctx, ticket, comment)).await?
    };
    settled(s, h).await
}

async fn release_timeline(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let r = find_release(&s, &meta, &id).await?;
    let list = audit_log::release_timeline(&s.pool, meta.principal()?, &r.id.to_string()).await?;
    Ok(ok(json!({ "total": list.len(), "list": list })))
}

#[derive(Deserialize, Default)]
struct InboxParams {
    view: Option<String>,
    status: Option<String>,
    scope_type: Option<String>,
    project_id: Option<String>,
    team_id: Option<String>,
    environment_id: Option<String>,
    runtime_type: Option<String>,
    risk_level: Option<String>,
    priority: Option<String>,
    assigned_to: Option<String>,
    requested_by: Option<String>,
    q: Option<String>,
    expiring: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn inbox(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<InboxParams>) -> ApiResult {
    use opspilot_commands::ids::resolve;
    let p = meta.principal()?;
    let many = |v: Option<String>| v.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    let query = InboxQuery {
        view: q.view,
        status: many(q.status),
        scope_type: many(q.scope_type),
        project_id: q.project_id.map(|v| resolve("project", &v)),
        team_id: q.team_id.map(|v| resolve("team", &v)),
        environment_id: q.environment_id,
        runtime_type: q.runtime_type,
        risk_level: q.risk_level,
        priority: q.priority,
        assigned_to: q.assigned_to.map(|v| resolve("user", &v)),
        requested_by: q.requested_by.map(|v| resolve("user", &v)),
        q: q.q,
        expiring: q.expiring,
        sort_by: q.sort_by,
        sort_order: q.sort_order,
    };
    Ok(ok(inbox::list(&s.pool, p, &query, chrono::Utc::now(), PageRequest::new(q.page, q.page_size)).await?))
}

async fn rollback_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let r = find_release(&s, &meta, &id).await?;
    settled(&s, s.run(meta.lang, s.commands.rollback_release(&meta.command_context()?, r.id)).await?).await
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

async fn cancel_release(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(body): Body<ReasonBody>) -> ApiResult {
    let r = find_release(&s, &meta, &id).await?;
    settled(&s, s.run(meta.lang, s.commands.cancel_release(&meta.command_context()?, r.id, body.reason)).await?).await
}

#[derive(Deserialize)]
struct AssignBody {
    assigned_to: String,
    comment: Option<String>,
}

async fn assign_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<AssignBody>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.assign_ticket(&meta.command_context()?, &ticket, &b.assigned_to, b.comment)).await?).await
}

async fn comment_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>, Body(b): Body<CommentBody>) -> ApiResult {
    let comment = b.comment.unwrap_or_default();
    settled(&s, s.run(meta.lang, s.commands.comment_ticket(&meta.command_context()?, &ticket, &comment)).await?).await
}

async fn inbox_ticket(State(s): State<AppState>, meta: RequestMeta, Path(ticket): Path<String>) -> ApiResult {
    // Opening a ticket is an inbox action (`viewed`).
    let h = s.run(meta.lang, s.commands.view_ticket(&meta.command_context()?, &ticket)).await?;
    s.settle(h.position).await;
    let (item, actions) = inbox::get(&s.pool, meta.principal()?, &ticket, chrono::Utc::now())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ApprovalTicketNotFound, format!("ticket {ticket} does not exist")).in_lang(meta.lang))?;
    Ok(ok(json!({ "item": item, "timeline": actions })))
}

async fn errors() -> ApiResult {
    Ok(ok(json!({ "list": DICTIONARY })))
}
