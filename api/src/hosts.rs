//! Hosts: registration (key or password, sealed as a credential), host-key
//! scan and trust, connectivity check, edits — REST and GraphQL.

use std::collections::BTreeMap;

use async_graphql::{Context, InputObject, Json, Object};
use axum::extract::State;
use crate::edge::{Path, Query};
use axum::routing::{get, post};
use axum::Router;
use opspilot_commands::hosts::{HostPatch, NewHost};
use opspilot_domain::ErrorCode;
use opspilot_projections::environments as views;
use serde::Deserialize;

use crate::edge::{command_ctx, gql, id_of, meta, mutate, ok, principal, settled, state, ApiError, ApiResult, AppState, Body, CommandResult, GqlResult, Paging, RequestMeta};
use crate::page_type;

page_type!(HostPage, views::HostView);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hosts", get(list_hosts).post(register_host))
        .route("/hosts/{id}", get(get_host).patch(update_host).delete(delete_host))
        .route("/hosts/{id}/host-key/scan", post(scan_host_key))
        .route("/hosts/{id}/host-key/trust", post(trust_host_key))
        .route("/hosts/{id}/check", post(check_host))
}

/// A host to register: `credential_id` (id or name), or the `private_key` or `password`.
#[derive(Deserialize, InputObject)]
pub struct HostInput {
    pub name: String,
    pub project_id: String,
    pub ip: String,
    pub port: Option<u16>,
    pub ssh_user: String,
    pub auth: String,
    pub credential_id: Option<String>,
    pub private_key: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub labels: Option<Json<BTreeMap<String, String>>>,
}

impl From<HostInput> for NewHost {
    fn from(b: HostInput) -> Self {
        let secret = b.private_key.or(b.password);
        NewHost { name: b.name, project: b.project_id, ip: b.ip, port: b.port.unwrap_or(22), ssh_user: b.ssh_user, auth: b.auth, credential: b.credential_id, secret, labels: b.labels.map(|l| l.0).unwrap_or_default() }
    }
}

/// A change of how a host is reached or of its labels; what is absent stays.
#[derive(Deserialize, InputObject, Default)]
pub struct HostPatchInput {
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub ssh_user: Option<String>,
    pub auth: Option<String>,
    pub credential_id: Option<String>,
    pub private_key: Option<String>,
    pub password: Option<String>,
    pub labels: Option<Json<BTreeMap<String, String>>>,
}

impl From<HostPatchInput> for HostPatch {
    fn from(b: HostPatchInput) -> Self {
        let secret = b.private_key.or(b.password);
        HostPatch { ip: b.ip, port: b.port, ssh_user: b.ssh_user, auth: b.auth, credential: b.credential_id, secret, labels: b.labels.map(|l| l.0) }
    }
}

/// The fingerprint an admin trusts, as a scan showed it.
#[derive(Deserialize, InputObject)]
pub struct TrustInput {
    pub fingerprint: String,
}

async fn register_host(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<HostInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.register_host(&meta.command_context()?, b.into())).await?).await
}

async fn update_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<HostPatchInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.update_host(&meta.command_context()?, &id, b.into())).await?).await
}

async fn delete_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.delete_host(&meta.command_context()?, &id)).await?).await
}

async fn list_hosts(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(views::hosts(&s.pool, meta.principal()?, q.request()).await?))
}

async fn get_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let v = views::host_by_id(&s.pool, meta.principal()?, id_of("host", &id)).await?;
    Ok(ok(v.ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("host {id} does not exist")).in_lang(meta.lang))?))
}

async fn scan_host_key(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(s.run(meta.lang, s.commands.scan_host_key(&meta.command_context()?, &id)).await?))
}

async fn trust_host_key(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<TrustInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.trust_host_key(&meta.command_context()?, &id, &b.fingerprint)).await?).await
}

async fn check_host(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.check_host(&meta.command_context()?, &id)).await?).await
}

/// Host queries.
#[derive(Default)]
pub struct HostQuery;

#[Object]
impl HostQuery {
    /// Hosts the caller may see (never their credentials).
    async fn hosts(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<HostPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(views::hosts(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// One host (id or name).
    async fn host(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<views::HostView>> {
        views::host_by_id(&state(ctx).pool, principal(ctx)?, id_of("host", &id)).await.map_err(|e| gql(e, ctx))
    }
}

/// Host mutations.
#[derive(Default)]
pub struct HostMutation;

#[Object]
impl HostMutation {
    /// Registers a host; give `credentialId`, or the `privateKey` or `password`.
    async fn register_host(&self, ctx: &Context<'_>, input: HostInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.register_host(&command_ctx(ctx)?, input.into())).await
    }

    /// Changes how a host is reached or its labels; what is not given stays.
    async fn update_host(&self, ctx: &Context<'_>, host: String, input: HostPatchInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.update_host(&command_ctx(ctx)?, &host, input.into())).await
    }

    /// Removes a host from OpsPilot (refused while an environment or compose target uses it).
    async fn delete_host(&self, ctx: &Context<'_>, host: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.delete_host(&command_ctx(ctx)?, &host)).await
    }

    /// Reads the key a host presents now, to compare before trusting (records nothing).
    async fn scan_host_key(&self, ctx: &Context<'_>, host: String) -> GqlResult<Json<serde_json::Value>> {
        let v = state(ctx).run(meta(ctx).lang, state(ctx).commands.scan_host_key(&command_ctx(ctx)?, &host)).await.map_err(|e| e.into_graphql())?;
        Ok(Json(v))
    }

    /// An admin trusts (or re-trusts) a host key by the fingerprint a scan showed.
    async fn trust_host_key(&self, ctx: &Context<'_>, host: String, input: TrustInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.trust_host_key(&command_ctx(ctx)?, &host, &input.fingerprint)).await
    }

    /// Connects with the pinned key and records the outcome.
    async fn check_host(&self, ctx: &Context<'_>, host: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.check_host(&command_ctx(ctx)?, &host)).await
    }
}
