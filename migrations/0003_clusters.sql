-- Read models of the clusters projection (owned by it; rebuildable).
CREATE TABLE clusters (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    project_id   uuid NOT NULL,
    team_id      uuid NOT NULL,
    source_type  text NOT NULL,
    status       text NOT NULL,
    labels       jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX clusters_project ON clusters (project_id);

CREATE TABLE cluster_connections (
    cluster_id              uuid PRIMARY KEY,
    source_type             text NOT NULL,
    auth_type               text NOT NULL,
    endpoint                text NOT NULL,
    credential_id           uuid NOT NULL,
    credential_fingerprint  text NOT NULL,
    server_version          text,
    namespaces_checked      jsonb NOT NULL,
    client_cert_expires_at  timestamptz,
    last_check_at           timestamptz,
    last_check_status       text,
    last_check_error        text,
    permissions             jsonb NOT NULL DEFAULT '{}',
    updated_at              timestamptz NOT NULL
);
