//! The two surfaces assembled from the capability modules: the GraphQL
//! schema (its SDL is committed at `api/schema.graphql`; a test fails when
//! code and file differ) and the REST router under `/api/v1`.

use async_graphql::{MergedObject, MergedSubscription, Schema};
use axum::Router;

use crate::edge::AppState;
use crate::{accounts, ai, audit, catalog, certs, clusters, delivery, environments, hosts, inbox, releases};

/// The schema type.
pub type OpsSchema = Schema<Query, Mutation, Subscription>;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    accounts::AccountQuery,
    ai::AiQuery,
    audit::AuditQueryRoot,
    catalog::CatalogQuery,
    clusters::ClusterQuery,
    certs::CertQuery,
    delivery::DeliveryQueryRoot,
    releases::ReleaseQuery,
    inbox::InboxQueryRoot,
    hosts::HostQuery,
    environments::EnvironmentQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    ai::AiMutation,
    catalog::CatalogMutation,
    clusters::ClusterMutation,
    releases::ReleaseMutation,
    inbox::InboxMutation,
    hosts::HostMutation,
    environments::EnvironmentMutation,
);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct Subscription(audit::AuditSubscription, ai::AiSubscription, releases::ReleaseSubscription, inbox::InboxSubscription, environments::EnvironmentSubscription);

/// Builds the schema with the depth and complexity guards.
pub fn schema(max_depth: usize, max_complexity: usize) -> OpsSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).limit_depth(max_depth).limit_complexity(max_complexity).limit_recursive_depth(crate::graphql_edge::MAX_NESTING).extension(crate::graphql_edge::NestingGuard { max_complexity }).finish()
}

/// The SDL as committed.
pub fn sdl() -> String {
    schema(12, 1000).sdl()
}

/// The `/api/v1` routes.
pub fn rest() -> Router<AppState> {
    Router::new()
        .merge(accounts::routes())
        .merge(ai::routes())
        .merge(audit::routes())
        .merge(catalog::routes())
        .merge(clusters::routes())
        .merge(certs::routes())
        .merge(delivery::routes())
        .merge(releases::routes())
        .merge(inbox::routes())
        .merge(hosts::routes())
        .merge(environments::routes())
}
