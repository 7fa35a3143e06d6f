-- Maintenance schedules. A slot fires at most once: schedule_runs' primary key is the
-- arbiter between replicas.
ALTER TABLE instances ADD COLUMN maintenance_window jsonb;

CREATE TABLE schedules (
    id          uuid PRIMARY KEY,
    database_id uuid NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('repack', 'vacuum', 'analyze', 'reindex')),
    cron        text NOT NULL,
    tables      text[] NOT NULL DEFAULT '{}',
    options     jsonb NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    -- The pending slot: fires when due (and inside the instance's window).
    next_run_at timestamptz NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;

CREATE TABLE schedule_runs (
    schedule_id  uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    slot         timestamptz NOT NULL,
    operation_id uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, slot)
);
