-- Data-disk usage of the hosts running managed instances (see api/src/observe/collect.rs).
CREATE TABLE host_metrics (
    host_id uuid PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    collected_at timestamptz NOT NULL,
    samples jsonb NOT NULL
);
