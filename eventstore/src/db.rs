//! Connection pool and migrations.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::StoreError;

/// The migrations of `migrations/`, embedded in the binary, in order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "event_store", include_str!("../../migrations/0001_event_store.sql")),
    (2, "accounts_and_audit", include_str!("../../migrations/0002_accounts_and_audit.sql")),
    (3, "clusters", include_str!("../../migrations/0003_clusters.sql")),
    (4, "catalog_and_artifacts", include_str!("../../migrations/0004_catalog_and_artifacts.sql")),
    (5, "inbox_and_releases", include_str!("../../migrations/0005_inbox_and_releases.sql")),
    (6, "environments", include_str!("../../migrations/0006_environments.sql")),
    (7, "timelines_and_follow_ups", include_str!("../../migrations/0007_timelines_and_follow_ups.sql")),
    (8, "ai_sessions", include_str!("../../migrations/0008_ai_sessions.sql")),
    (9, "delivery_metrics", include_str!("../../migrations/0009_delivery_metrics.sql")),
    (10, "cluster_certificates", include_str!("../../migrations/0010_cluster_certificates.sql")),
];

/// Builds a pool for `database_url` (a libpq-style URL or key=value string).
pub fn pool(database_url: &str, max_size: usize) -> Result<Pool, StoreError> {
    let config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Config(format!("DATABASE_URL: {e}")))?;
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(max_size).build().map_err(|e| StoreError::Config(e.to_string()))
}

/// Applies the migrations not yet applied, each in its own transaction.
/// An advisory lock keeps two starting replicas from racing. Returns the
/// versions applied now.
pub async fn migrate(pool: &Pool) -> Result<Vec<i32>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7215001)", &[]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<i32> = tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut now = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        now.push(*version);
    }
    tx.commit().await?;
    Ok(now)
}
