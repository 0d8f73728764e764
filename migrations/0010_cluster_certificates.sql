-- Certificates of clusters (projection `cluster_certs`): what OpsPilot holds
-- or placed, with expiry; never key material.
CREATE TABLE cluster_certificates (
    cluster_id   uuid NOT NULL,
    cert_id      text NOT NULL,
    project_id   uuid NOT NULL,
    team_id      uuid NOT NULL,
    -- 'imported' (given to OpsPilot with the connection) or 'platform' (minted by OpsPilot)
    origin       text NOT NULL,
    subject      text NOT NULL,
    issuer       text NOT NULL,
    sans         jsonb NOT NULL,
    serial       text NOT NULL,
    fingerprint  text NOT NULL,
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL,
    is_ca        boolean NOT NULL,
    -- thresholds (days ahead) already recorded as cluster.cert_expiring for this serial
    warned_days  integer[] NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (cluster_id, cert_id)
);
CREATE INDEX cluster_certificates_expiry ON cluster_certificates (not_after);
CREATE INDEX cluster_certificates_project ON cluster_certificates (project_id, not_after);
