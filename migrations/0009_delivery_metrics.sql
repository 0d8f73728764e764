-- Delivery metrics (projection `delivery`): one row per release with the
-- moments the four delivery measures are computed from.
CREATE TABLE delivery_releases (
    release_id            uuid PRIMARY KEY,
    project_id            uuid NOT NULL,
    env                   text NOT NULL,
    service_id            uuid NOT NULL,
    target_id             uuid NOT NULL,
    first_previewed_at    timestamptz,
    -- An apply execution started (a failure before it is no deployment).
    applying_at           timestamptz,
    applied_at            timestamptz,
    failed_at             timestamptz,
    rollback_requested_at timestamptz,
    rolled_back_at        timestamptz,
    -- When the service on its target ran a good release again after this
    -- release failed or was rolled back.
    restored_at           timestamptz
);
CREATE INDEX delivery_releases_applied ON delivery_releases (project_id, applied_at) WHERE applied_at IS NOT NULL;
CREATE INDEX delivery_releases_failed ON delivery_releases (service_id, target_id, env) WHERE restored_at IS NULL;
