//! Clusters OpsPilot imports: by kubeconfig, or by endpoint + CA + token or
//! client certificate; connection test and credential rotation — REST and GraphQL.

use std::collections::BTreeMap;

use async_graphql::{Context, InputObject, Json, Object};
use axum::extract::State;
use crate::edge::{Path, Query};
use axum::routing::{get, post};
use axum::Router;
use opspilot_commands::clusters::{CertParts, ClusterPlacement};
use opspilot_domain::ErrorCode;
use opspilot_projections::clusters::{self, ClusterView};
use serde::Deserialize;
use serde_json::json;

use crate::edge::{command_ctx, gql, id_of, mutate, ok, principal, settled, state, ApiError, ApiResult, AppState, Body, CommandResult, GqlResult, Paging, RequestMeta};
use crate::page_type;

pub use opspilot_projections::clusters::ClusterView as Cluster;

page_type!(ClusterPage, Cluster);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters", get(list_clusters))
        .route("/clusters/import/kubeconfig", post(import_kubeconfig))
        .route("/clusters/import/cert", post(import_cert))
        .route("/clusters/{id}", get(get_cluster))
        .route("/clusters/{id}/connect/test", post(test_connection))
        .route("/clusters/{id}/connection", get(get_connection).put(put_connection))
}

/// An import by kubeconfig (raw or base64).
#[derive(Deserialize, InputObject)]
pub struct ImportKubeconfigInput {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    pub kubeconfig: String,
    #[serde(default)]
    pub labels: Option<Json<BTreeMap<String, String>>>,
}

/// Certificate credentials: a token (`cert_token`), or a client certificate
/// and key (`cert_key`).
#[derive(Deserialize, InputObject, Default)]
pub struct CertInput {
    #[serde(default)]
    #[graphql(default)]
    pub endpoint: String,
    pub auth_type: Option<String>,
    #[serde(default)]
    #[graphql(default)]
    pub ca_cert: String,
    pub token: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl CertInput {
    /// The parts, checked against `auth_type`.
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

/// An import by endpoint + CA + credentials.
#[derive(Deserialize, InputObject)]
pub struct ImportCertInput {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    #[serde(default)]
    pub labels: Option<Json<BTreeMap<String, String>>>,
    #[serde(flatten)]
    #[graphql(flatten)]
    pub cert: CertInput,
}

/// New connection credentials: a kubeconfig, or certificate credentials.
#[derive(Deserialize, InputObject)]
pub struct ConnectionInput {
    pub kubeconfig: Option<String>,
    #[serde(flatten)]
    #[graphql(flatten)]
    pub cert: CertInput,
}

fn placement(name: String, project: String, team: String, labels: Option<Json<BTreeMap<String, String>>>) -> ClusterPlacement {
    ClusterPlacement { name, project, team, labels: labels.map(|l| l.0).unwrap_or_default() }
}

async fn find_cluster(s: &AppState, meta: &RequestMeta, id: &str) -> Result<ClusterView, ApiError> {
    clusters::get(&s.pool, meta.principal()?, id_of("cluster", id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ClusterNotFound, format!("cluster {id} does not exist")).in_lang(meta.lang))
}

async fn list_clusters(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(clusters::list(&s.pool, meta.principal()?, q.request()).await?))
}

async fn get_cluster(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    Ok(ok(find_cluster(&s, &meta, &id).await?))
}

async fn get_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    let c = find_cluster(&s, &meta, &id).await?;
    Ok(ok(json!({ "cluster_id": c.id, "connection": c.connection })))
}

async fn import_kubeconfig(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ImportKubeconfigInput>) -> ApiResult {
    let p = placement(b.name, b.project_id, b.team_id, b.labels);
    settled(&s, s.run(meta.lang, s.commands.import_cluster_kubeconfig(&meta.command_context()?, &p, &b.kubeconfig)).await?).await
}

async fn import_cert(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ImportCertInput>) -> ApiResult {
    let parts = b.cert.parts().map_err(|e| e.in_lang(meta.lang))?;
    let p = placement(b.name, b.project_id, b.team_id, b.labels);
    settled(&s, s.run(meta.lang, s.commands.import_cluster_cert(&meta.command_context()?, &p, &parts)).await?).await
}

async fn put_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>, Body(b): Body<ConnectionInput>) -> ApiResult {
    let parts = if b.kubeconfig.is_some() { None } else { Some(b.cert.parts().map_err(|e| e.in_lang(meta.lang))?) };
    settled(&s, s.run(meta.lang, s.commands.update_cluster_connection(&meta.command_context()?, &id, b.kubeconfig.as_deref(), parts.as_ref())).await?).await
}

async fn test_connection(State(s): State<AppState>, meta: RequestMeta, Path(id): Path<String>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.test_cluster_connection(&meta.command_context()?, &id)).await?).await
}

/// Cluster queries.
#[derive(Default)]
pub struct ClusterQuery;

#[Object]
impl ClusterQuery {
    /// Clusters visible to the caller.
    async fn clusters(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ClusterPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(clusters::list(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// One cluster (id or name).
    async fn cluster(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<Cluster>> {
        clusters::get(&state(ctx).pool, principal(ctx)?, id_of("cluster", &id)).await.map_err(|e| gql(e, ctx))
    }
}

/// Cluster mutations.
#[derive(Default)]
pub struct ClusterMutation;

#[Object]
impl ClusterMutation {
    /// Imports an external cluster by kubeconfig (raw or base64); connects and probes first.
    async fn import_cluster_kubeconfig(&self, ctx: &Context<'_>, input: ImportKubeconfigInput) -> GqlResult<CommandResult> {
        let p = placement(input.name, input.project_id, input.team_id, input.labels);
        mutate(ctx, state(ctx).commands.import_cluster_kubeconfig(&command_ctx(ctx)?, &p, &input.kubeconfig)).await
    }

    /// Imports an external cluster by endpoint + CA + token or client certificate and key.
    async fn import_cluster_cert(&self, ctx: &Context<'_>, input: ImportCertInput) -> GqlResult<CommandResult> {
        let parts = input.cert.parts().map_err(|e| gql(e, ctx))?;
        let p = placement(input.name, input.project_id, input.team_id, input.labels);
        mutate(ctx, state(ctx).commands.import_cluster_cert(&command_ctx(ctx)?, &p, &parts)).await
    }

    /// Replaces a cluster's connection credentials (connected and probed first).
    async fn update_cluster_connection(&self, ctx: &Context<'_>, id: String, input: ConnectionInput) -> GqlResult<CommandResult> {
        let parts = if input.kubeconfig.is_some() { None } else { Some(input.cert.parts().map_err(|e| gql(e, ctx))?) };
        mutate(ctx, state(ctx).commands.update_cluster_connection(&command_ctx(ctx)?, &id, input.kubeconfig.as_deref(), parts.as_ref())).await
    }

    /// Connects with a cluster's stored credentials and records the outcome.
    async fn test_cluster_connection(&self, ctx: &Context<'_>, id: String) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.test_cluster_connection(&command_ctx(ctx)?, &id)).await
    }
}
