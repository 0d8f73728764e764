//! The release catalog: services and deploy targets — REST and GraphQL.

use std::collections::BTreeMap;

use opspilot_domain::catalog::VariableSpec;

use async_graphql::{Context, InputObject, Json, Object};
use axum::extract::State;
use crate::edge::Query;
use axum::routing::get;
use axum::Router;
use opspilot_commands::catalog::{NewService, NewTarget};
use opspilot_projections::catalog;
use serde::Deserialize;

use crate::edge::{command_ctx, gql, mutate, ok, principal, settled, state, ApiResult, AppState, Body, CommandResult, GqlResult, Paging, RequestMeta};
use crate::page_type;

pub use opspilot_projections::catalog::{ServiceView as Service, TargetView as Target};

page_type!(ServicePage, Service);
page_type!(TargetPage, Target);

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/deploy/services", get(list_services).post(create_service)).route("/deploy/targets", get(list_targets).post(create_target))
}

/// A new service (admins): its manifest template and default variables.
#[derive(Deserialize, InputObject)]
pub struct ServiceInput {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    pub runtime_type: String,
    pub manifest_template: String,
    #[serde(default)]
    pub default_variables: Option<Json<BTreeMap<String, String>>>,
    /// Declared variable types, e.g. `{"replicas": {"type": "integer", "min": 1}}`.
    #[serde(default)]
    pub variables_schema: Option<Json<BTreeMap<String, VariableSpec>>>,
    pub risk_level: Option<String>,
}

impl From<ServiceInput> for NewService {
    fn from(b: ServiceInput) -> Self {
        NewService {
            name: b.name,
            project: b.project_id,
            team: b.team_id,
            runtime_type: b.runtime_type,
            manifest_template: b.manifest_template,
            default_variables: b.default_variables.map(|v| v.0).unwrap_or_default(),
            variables_schema: b.variables_schema.map(|v| v.0).unwrap_or_default(),
            risk_level: b.risk_level,
        }
    }
}

/// A new deploy target (admins): a cluster namespace, or a compose project on
/// an environment's host.
#[derive(Deserialize, InputObject)]
pub struct TargetInput {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    pub runtime_type: String,
    pub env: String,
    pub cluster_id: Option<String>,
    pub namespace: Option<String>,
    pub environment_id: Option<String>,
    pub host_id: Option<String>,
    pub project_name: Option<String>,
    pub project_dir: Option<String>,
}

impl From<TargetInput> for NewTarget {
    fn from(b: TargetInput) -> Self {
        NewTarget {
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
        }
    }
}

async fn list_services(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(catalog::services(&s.pool, meta.principal()?, q.request()).await?))
}

async fn list_targets(State(s): State<AppState>, meta: RequestMeta, Query(q): Query<Paging>) -> ApiResult {
    Ok(ok(catalog::targets(&s.pool, meta.principal()?, q.request()).await?))
}

async fn create_service(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<ServiceInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_service(&meta.command_context()?, b.into())).await?).await
}

async fn create_target(State(s): State<AppState>, meta: RequestMeta, Body(b): Body<TargetInput>) -> ApiResult {
    settled(&s, s.run(meta.lang, s.commands.create_target(&meta.command_context()?, b.into())).await?).await
}

/// Catalog queries.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Services the caller may see.
    async fn services(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<ServicePage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(catalog::services(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }

    /// Deploy targets the caller may see.
    async fn targets(&self, ctx: &Context<'_>, page: Option<i64>, page_size: Option<i64>) -> GqlResult<TargetPage> {
        let page = opspilot_projections::PageRequest::new(page, page_size);
        Ok(catalog::targets(&state(ctx).pool, principal(ctx)?, page).await.map_err(|e| gql(e, ctx))?.into())
    }
}

/// Catalog mutations.
#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates a service (admins).
    async fn create_service(&self, ctx: &Context<'_>, input: ServiceInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_service(&command_ctx(ctx)?, input.into())).await
    }

    /// Creates a deploy target (admins).
    async fn create_target(&self, ctx: &Context<'_>, input: TargetInput) -> GqlResult<CommandResult> {
        mutate(ctx, state(ctx).commands.create_target(&command_ctx(ctx)?, input.into())).await
    }
}
