-- Rendered release artifacts, content-addressed by sha256 (kept beside the
-- log: events carry the digest). Manifests never contain Secrets: previews
-- refuse kind Secret.
CREATE TABLE release_artifacts (
    digest      text PRIMARY KEY,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Read models of the catalog projection.
CREATE TABLE catalog_services (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    project_id         uuid NOT NULL,
    team_id            uuid NOT NULL,
    runtime_type       text NOT NULL,
    manifest_template  text NOT NULL,
    default_variables  jsonb NOT NULL,
    risk_level         text NOT NULL,
    created_at         timestamptz NOT NULL
);

CREATE TABLE catalog_targets (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    project_id    uuid NOT NULL,
    team_id       uuid NOT NULL,
    runtime_type  text NOT NULL,
    env           text NOT NULL,
    cluster_id    uuid,
    namespace     text,
    created_at    timestamptz NOT NULL
);
