-- Read model of the environments projection: hosts, environments, their
-- nodes, install tasks and their node-steps (SPEC §7, §8).
CREATE TABLE hosts (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    project_id          uuid NOT NULL,
    ip                  text NOT NULL,
    port                integer NOT NULL,
    ssh_user            text NOT NULL,
    auth_type           text NOT NULL,
    credential_id       uuid NOT NULL,
    labels              jsonb NOT NULL,
    status              text NOT NULL,
    host_key_fingerprint text,
    last_check_at       timestamptz,
    last_check_error    text,
    presented_fingerprint text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX hosts_project ON hosts (project_id);

CREATE TABLE environments (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    project_id     uuid NOT NULL,
    team_id        uuid NOT NULL,
    runtime_type   text NOT NULL,
    mode           text NOT NULL,
    status         text NOT NULL,
    region         text NOT NULL,
    labels         jsonb NOT NULL,
    description    text NOT NULL,
    current_task_id uuid,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX environments_project ON environments (project_id);

CREATE TABLE environment_nodes (
    environment_id uuid NOT NULL,
    host_id        uuid NOT NULL,
    node_role      text NOT NULL,
    weight         integer NOT NULL,
    PRIMARY KEY (environment_id, host_id)
);

CREATE TABLE install_tasks (
    id               uuid PRIMARY KEY,
    environment_id   uuid NOT NULL,
    project_id       uuid NOT NULL,
    action           text NOT NULL,
    runtime_type     text NOT NULL,
    manifest_version text NOT NULL,
    preview_ref      text NOT NULL,
    status           text NOT NULL,   -- pending_approval | pending | running | succeeded | failed | rolled_back
    approval_ticket  text,
    plan             jsonb NOT NULL,
    error_key        text,
    error_message    text,
    requested_at     timestamptz NOT NULL,
    started_at       timestamptz,
    ended_at         timestamptz,
    duration_ms      bigint
);
CREATE INDEX install_tasks_environment ON install_tasks (environment_id, requested_at DESC);
CREATE INDEX install_tasks_running ON install_tasks (status) WHERE status IN ('pending', 'running');

-- One row per node-step attempt.
CREATE TABLE install_task_steps (
    task_id        uuid NOT NULL,
    step_index     integer NOT NULL,
    host_id        uuid NOT NULL,
    attempt        integer NOT NULL,
    step_name      text NOT NULL,
    status         text NOT NULL,     -- running | succeeded | failed | retrying
    started_at     timestamptz,
    ended_at       timestamptz,
    duration_ms    bigint,
    exit_code      bigint,
    stderr_excerpt text,
    outputs        jsonb NOT NULL DEFAULT '{}',
    error_key      text,
    log_lines      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, step_index, host_id, attempt)
);

-- Hook output lines. Not a projection: the lines are primary data, too many
-- for the event log; node-step events reference them by
-- (task_id, step_index, host_id, attempt) and count them (`log_lines`).
CREATE TABLE install_task_logs (
    task_id     uuid NOT NULL,
    step_index  integer NOT NULL,
    host_id     uuid NOT NULL,
    attempt     integer NOT NULL,
    seq         integer NOT NULL,
    stream      text NOT NULL,        -- stdout | stderr
    line        text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (task_id, step_index, host_id, attempt, seq)
);

ALTER TABLE catalog_targets ADD COLUMN compose jsonb;
