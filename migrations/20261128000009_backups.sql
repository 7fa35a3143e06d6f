-- Backup stores and per-database backups (sealed dumps; see api/src/backup).
CREATE TABLE backup_stores (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('filesystem')),
    path text NOT NULL,
    -- Environments whose databases may keep backups here.
    environments text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backups (
    id uuid PRIMARY KEY,
    database_id uuid NOT NULL REFERENCES databases (id),
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    store_id uuid NOT NULL REFERENCES backup_stores (id),
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    object_key text NOT NULL,
    -- The backup's data key, wrapped by the master key (context backup-key:<id>).
    data_key_enc bytea NOT NULL,
    size_bytes bigint,
    dump_bytes bigint,
    sha256 text,
    manifest jsonb,
    error text,
    verify_status text CHECK (verify_status IN ('passed', 'failed')),
    verify_message text,
    verified_at timestamptz,
    restore_ms bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX backups_database ON backups (database_id, created_at DESC);

ALTER TABLE operations DROP CONSTRAINT operations_kind_known;
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance', 'backup_database', 'verify_backup'));
