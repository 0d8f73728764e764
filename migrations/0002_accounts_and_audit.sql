-- Read models of the accounts projection (owned by it; rebuildable).
CREATE TABLE accounts_projects (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    description  text NOT NULL,
    created_at   timestamptz NOT NULL,
    position     bigint NOT NULL
);

CREATE TABLE accounts_teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    project_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    position    bigint NOT NULL
);

CREATE TABLE accounts_team_members (
    team_id   uuid NOT NULL,
    user_id   uuid NOT NULL,
    added_at  timestamptz NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX accounts_team_members_user ON accounts_team_members (user_id);

CREATE TABLE accounts_users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    roles         text[] NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    position      bigint NOT NULL
);

CREATE TABLE accounts_api_tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    name         text NOT NULL,
    fingerprint  text NOT NULL,
    expires_at   timestamptz,
    revoked      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL
);

CREATE TABLE accounts_credentials (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    kind         text NOT NULL,
    fingerprint  text NOT NULL,
    project_id   uuid,
    deleted      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL
);

-- Read model of the audit_log projection: the envelope of every event, for
-- the audit explorer and timelines.
CREATE TABLE audit_log_entries (
    position        bigint PRIMARY KEY,
    event_id        uuid NOT NULL,
    stream_id       text NOT NULL,
    domain          text NOT NULL,
    action          text NOT NULL,
    resource_type   text NOT NULL,
    resource_id     text NOT NULL,
    environment_id  text,
    project_id      text,
    team_id         text,
    actor_id        text NOT NULL,
    actor_type      text NOT NULL,
    source          text NOT NULL,
    status          text NOT NULL,
    severity        text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    correlation_id  uuid NOT NULL,
    detail          jsonb NOT NULL
);
CREATE INDEX audit_log_resource ON audit_log_entries (resource_type, resource_id, position);
CREATE INDEX audit_log_project ON audit_log_entries (project_id, position);
CREATE INDEX audit_log_actor ON audit_log_entries (actor_id, position);
CREATE INDEX audit_log_action ON audit_log_entries (action, position);
