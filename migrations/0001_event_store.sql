-- The event store: one append-only log, hash-chained, with gapless positions.
--
-- Positions are assigned while holding the single row of event_log_head
-- (SELECT ... FOR UPDATE), so transactions that append commit in position
-- order and a follower reading "position > checkpoint" never skips an event.
-- The trade-off: appends are serialized (one appending transaction at a time);
-- batching many events per append keeps throughput up. In exchange the log is
-- gapless and one hash chain covers all of it, so a deleted or edited row is
-- always detectable by `opspilot audit verify`.

CREATE TABLE event_log_head (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO event_log_head (id, position, hash) VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE events (
    position        bigint      PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    domain          text        NOT NULL,
    action          text        NOT NULL,
    schema_version  integer     NOT NULL,
    resource_type   text        NOT NULL,
    resource_id     text        NOT NULL,
    environment_id  text,
    project_id      text,
    team_id         text,
    actor_id        text        NOT NULL,
    actor_type      text        NOT NULL,
    source          text        NOT NULL,
    status          text        NOT NULL,
    severity        text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid,
    detail          jsonb       NOT NULL,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_resource ON events (resource_type, resource_id, position);
CREATE INDEX events_correlation ON events (correlation_id);

-- Events are never updated or deleted.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- A command carrying an idempotency key that was already handled returns the
-- first result and appends nothing.
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    command     text        NOT NULL,
    result      jsonb       NOT NULL,
    position    bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secrets live here, encrypted with per-record data keys wrapped by the
-- master key. Events carry only the id and a keyed fingerprint.
CREATE TABLE credentials (
    id           uuid        PRIMARY KEY,
    kind         text        NOT NULL,
    wrapped_dek  bytea       NOT NULL,
    dek_nonce    bytea       NOT NULL,
    ciphertext   bytea       NOT NULL,
    nonce        bytea       NOT NULL,
    fingerprint  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Password hashes (argon2) and bearer-token hashes: secret-adjacent, so never
-- in events. Events say a password changed or a token was issued.
CREATE TABLE user_passwords (
    user_id     uuid        PRIMARY KEY,
    hash        text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth_tokens (
    token_hash  bytea       PRIMARY KEY,
    token_id    uuid        NOT NULL UNIQUE,
    user_id     uuid        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('session', 'api')),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

-- Durable projection checkpoints; the row lock serializes runners.
CREATE TABLE projection_checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
