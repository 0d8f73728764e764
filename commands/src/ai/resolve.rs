//! Names as a user says them, resolved against what that user may see: the
//! catalog's services and targets of the user's projects, and their releases.

use opspilot_domain::ai::intent::env_alias;
use opspilot_domain::Principal;
use opspilot_eventstore::StoreError;
use uuid::Uuid;

use crate::{Commands, Result};

/// A service the user may release.
#[derive(Debug, Clone)]
pub(crate) struct SeenService {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub runtime_type: String,
}

/// A deploy target of a service's project and runtime.
#[derive(Debug, Clone)]
pub(crate) struct SeenTarget {
    pub name: String,
    pub env: String,
}

/// Whether a target's env is what the user called `said` (`生产` → `production`, `prod` ≈ `production`).
pub(crate) fn same_env(target_env: &str, said: &str) -> bool {
    let canon = |e: &str| env_alias(&e.to_ascii_lowercase()).map(String::from).unwrap_or_else(|| e.to_ascii_lowercase());
    canon(target_env) == canon(said)
}

fn projects(p: &Principal) -> Vec<Uuid> {
    p.project_ids.iter().copied().collect()
}

impl Commands {
    /// Services the user may see, by name.
    pub(crate) async fn seen_services(&self, p: &Principal) -> Result<Vec<SeenService>> {
        let c = self.store.pool().get().await.map_err(StoreError::from)?;
        let rows = c
            .query(
                "SELECT id, name, project_id, runtime_type FROM catalog_services WHERE $1 OR project_id = ANY($2) ORDER BY name LIMIT 200",
                &[&p.is_admin(), &projects(p)],
            )
            .await
            .map_err(StoreError::from)?;
        Ok(rows.iter().map(|r| SeenService { id: r.get(0), name: r.get(1), project_id: r.get(2), runtime_type: r.get(3) }).collect())
    }

    /// The targets a service can be released to.
    pub(crate) async fn seen_targets(&self, service: &SeenService) -> Result<Vec<SeenTarget>> {
        let c = self.store.pool().get().await.map_err(StoreError::from)?;
        let rows = c
            .query("SELECT name, env FROM catalog_targets WHERE project_id = $1 AND runtime_type = $2 ORDER BY name", &[&service.project_id, &service.runtime_type])
            .await
            .map_err(StoreError::from)?;
        Ok(rows.iter().map(|r| SeenTarget { name: r.get(0), env: r.get(1) }).collect())
    }

    /// The newest release of a service (in `env`, with `status` when given) the user may see.
    pub(crate) async fn latest_release(&self, p: &Principal, service_id: Uuid, env: Option<&str>, status: Option<&str>) -> Result<Option<(Uuid, String, String)>> {
        let c = self.store.pool().get().await.map_err(StoreError::from)?;
        let rows = c
            .query(
                "SELECT id, status, env FROM deploy_releases WHERE service_id = $1 AND ($2 OR project_id = ANY($3)) AND ($4::text IS NULL OR status = $4)
                 AND status NOT IN ('draft', 'previewed') ORDER BY updated_at DESC LIMIT 50",
                &[&service_id, &p.is_admin(), &projects(p), &status],
            )
            .await
            .map_err(StoreError::from)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, Uuid>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
            .find(|(_, _, e)| env.is_none_or(|said| same_env(e, said))))
    }
}
