-- Drift without connection storms: a background reconciler compares each instance's catalog
-- with the records in one pass and keeps the result here; GET serves it with its time.

-- The last result per database: `drift` is what GET shows (instance-wide checks of the last
-- pass merged with the latest in-database check); `deep` the in-database differences alone
-- (extensions, objects not owned by the admin role), refreshed for a few databases per pass.
CREATE TABLE drift_checks (
    database_id uuid PRIMARY KEY REFERENCES databases(id) ON DELETE CASCADE,
    checked_at timestamptz NOT NULL,
    drift jsonb NOT NULL,
    deep jsonb NOT NULL DEFAULT '[]',
    deep_checked_at timestamptz
);
CREATE INDEX drift_checks_deep_age ON drift_checks (deep_checked_at NULLS FIRST);

-- One row per instance: when its last pass ran (replicas skip an instance checked within
-- the interval) and why it failed, if it did.
CREATE TABLE drift_passes (
    instance_id uuid PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    collected_at timestamptz NOT NULL,
    error text,
    duration_ms bigint NOT NULL,
    databases integer NOT NULL
);

-- Live checks on request (`?fresh=true`), counted per tenant in a one-minute window shared
-- by every replica.
CREATE TABLE fresh_check_windows (
    tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    used integer NOT NULL CHECK (used >= 0)
);

-- Lists page by keyset; the filters and sort keys they use are indexed.
CREATE INDEX databases_tenant_name_id ON databases (tenant_id, name, id);
CREATE INDEX databases_status ON databases (status) WHERE status <> 'ready';
CREATE INDEX operations_tenant_seq ON operations (tenant_id, seq);
CREATE INDEX operations_status_seq ON operations (status, seq);
CREATE INDEX tokens_created ON tokens (created_at, id);
