-- Point-in-time recovery of managed instances with pgBackRest (managed/src/pitr).

-- What each environment's managed instances get: how old the newest archived WAL may grow on a
-- quiet instance, when base backups run (UTC crons) and how long they are kept.
CREATE TABLE pitr_policies (
    environment text PRIMARY KEY CHECK (environment IN ('sandbox', 'preprod', 'prod')),
    archive_timeout_s integer NOT NULL CHECK (archive_timeout_s BETWEEN 1 AND 3600),
    full_cron text NOT NULL,
    diff_cron text,
    -- Restore drills: the archive's end restored into a scratch cluster, started, checked.
    drill_cron text,
    retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650)
);
INSERT INTO pitr_policies VALUES
    ('prod', 60, '0 1 * * SUN', '0 1 * * MON-SAT', '0 5 * * *', 14),
    ('preprod', 120, '0 1 * * SUN', '0 1 * * MON-SAT', '0 5 * * SUN', 7),
    ('sandbox', 300, '0 1 * * SUN', NULL, NULL, 3);

-- When each instance's next scheduled base backup or drill is due (kept per instance so
-- replicas enqueue each slot once: rows are claimed with SKIP LOCKED).
CREATE TABLE pitr_schedule (
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('full', 'diff', 'drill')),
    next_at timestamptz NOT NULL,
    PRIMARY KEY (instance_id, kind)
);

-- Point-in-time drills and what they measured.
CREATE TABLE pitr_drills (
    id uuid PRIMARY KEY,
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    operation_id uuid NOT NULL,
    passed boolean NOT NULL,
    -- Repository restore plus recovery until the scratch cluster served.
    restore_ms bigint,
    -- The last transaction the scratch cluster recovered.
    recovery_point timestamptz,
    message text,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pitr_drills_instance ON pitr_drills (instance_id, finished_at DESC);

-- The repository's cipher pass (aes-256-cbc), encrypted by the master key (context
-- pitr-repo:<instance id>). NULL: the instance has no repository yet (made before archiving
-- existed; `enable_archiving` gives it one).
ALTER TABLE instances ADD COLUMN repo_key_enc bytea;
-- 'on' once the stanza exists and archiving is configured; 'unavailable' when the host has
-- no pgBackRest.
ALTER TABLE instances ADD COLUMN archiving text NOT NULL DEFAULT 'off'
    CHECK (archiving IN ('off', 'on', 'unavailable'));
ALTER TABLE instances DROP CONSTRAINT instances_status_check;
ALTER TABLE instances ADD CONSTRAINT instances_status_check
    CHECK (status IN ('provisioning', 'ready', 'stopped', 'failed', 'deleting', 'deleted', 'restoring'));

-- (time, WAL insert position) samples of each archiving instance: every commit stamped at or
-- before `at` is at or before `lsn`, so once the archive reaches `lsn`, `at` is restorable.
CREATE TABLE wal_marks (
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    timeline integer NOT NULL,
    lsn pg_lsn NOT NULL,
    PRIMARY KEY (instance_id, at)
);

-- A per-database point-in-time restore goes through a backup of the database as it was at
-- `recovery_target`, dumped from a scratch cluster recovered to that time.
ALTER TABLE backups DROP CONSTRAINT backups_reason_check;
ALTER TABLE backups ADD CONSTRAINT backups_reason_check
    CHECK (reason IN ('manual', 'scheduled', 'final', 'point_in_time'));
ALTER TABLE backups ADD COLUMN recovery_target timestamptz;
ALTER TABLE backups ADD CONSTRAINT backups_recovery_target
    CHECK ((reason = 'point_in_time') = (recovery_target IS NOT NULL));

ALTER TABLE operations DROP CONSTRAINT operations_kind_known;
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance', 'backup_database', 'verify_backup',
    'restore_database', 'renew_certificate', 'remove_service_extensions', 'enable_archiving',
    'base_backup', 'pitr_drill', 'restore_instance'));

-- Existing managed instances get archiving by an operation (settings, stanza, first full
-- backup), resumable like the others.
INSERT INTO operations (id, kind, target_kind, target_id, tenant_id, params, status)
SELECT gen_random_uuid(), 'enable_archiving', 'instance', i.id, NULL,
       '{"reason": "archiving for point-in-time recovery"}', 'queued'
FROM instances i
WHERE i.kind = 'managed' AND i.status IN ('ready', 'stopped');
