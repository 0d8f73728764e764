-- AI command center. `ai_session_follows` belongs to the process manager:
-- it records, in log order, which sessions follow which release, so the
-- release's and its tickets' later events reach those sessions.
CREATE TABLE ai_session_follows (
    release_id  uuid NOT NULL,
    session_id  uuid NOT NULL,
    PRIMARY KEY (release_id, session_id)
);

-- The sessions read model (projection `ai_sessions`).
CREATE TABLE ai_sessions (
    id             uuid PRIMARY KEY,
    owner          uuid NOT NULL,
    project_id     uuid,
    title          text NOT NULL,
    lang           text NOT NULL,
    release_id     uuid,
    release_status text,
    last_position  bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX ai_sessions_owner ON ai_sessions (owner, updated_at DESC);
