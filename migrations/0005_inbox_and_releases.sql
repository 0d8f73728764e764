-- Read model of the inbox projection: the global approval inbox (SPEC §3).
CREATE TABLE approval_inbox_items (
    ticket          text PRIMARY KEY,
    scope_type      text NOT NULL,
    scope_id        text NOT NULL,
    project_id      uuid NOT NULL,
    team_id         uuid NOT NULL,
    environment_id  text,
    runtime_type    text NOT NULL,
    risk_level      text NOT NULL,
    priority        text NOT NULL,
    status          text NOT NULL,
    requested_by    uuid NOT NULL,
    assigned_to     uuid,
    required_role   text NOT NULL,
    source          text NOT NULL,
    summary         text NOT NULL,
    detail          jsonb NOT NULL,
    expires_at      timestamptz NOT NULL,
    sla_due_at      timestamptz NOT NULL,
    approved_at     timestamptz,
    approved_by     uuid,
    rejected_at     timestamptz,
    rejected_by     uuid,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX inbox_pending_order ON approval_inbox_items ((status = 'pending') DESC, priority, expires_at, created_at);
CREATE INDEX inbox_project ON approval_inbox_items (project_id, status);
CREATE INDEX inbox_requested_by ON approval_inbox_items (requested_by);
CREATE INDEX inbox_assigned_to ON approval_inbox_items (assigned_to);

CREATE TABLE approval_inbox_actions (
    position    bigint PRIMARY KEY,
    ticket      text NOT NULL,
    action      text NOT NULL,
    actor_id    text NOT NULL,
    comment     text,
    meta        jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX inbox_actions_ticket ON approval_inbox_actions (ticket, position);

-- Read model of the releases projection.
CREATE TABLE deploy_releases (
    id               uuid PRIMARY KEY,
    service_id       uuid NOT NULL,
    target_id        uuid NOT NULL,
    project_id       uuid NOT NULL,
    team_id          uuid NOT NULL,
    runtime_type     text NOT NULL,
    env              text NOT NULL,
    strategy         text NOT NULL,
    status           text NOT NULL,
    preview_ref      text,
    approval_ticket  text,
    variables        jsonb NOT NULL,
    last_error_key   text,
    last_summary     text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX deploy_releases_project ON deploy_releases (project_id, created_at DESC);
