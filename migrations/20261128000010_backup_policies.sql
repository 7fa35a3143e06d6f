-- S3 stores with Object Lock, backup policies per environment, scheduled backups and drills,
-- retention, final backups and in-place restores.
ALTER TABLE backup_stores DROP CONSTRAINT backup_stores_kind_check;
ALTER TABLE backup_stores ADD CONSTRAINT backup_stores_kind_check CHECK (kind IN ('filesystem', 's3'));
ALTER TABLE backup_stores ALTER COLUMN path DROP NOT NULL;
-- endpoint, bucket, region, prefix, access_key_id (the secret is secret_enc).
ALTER TABLE backup_stores ADD COLUMN s3 jsonb;
ALTER TABLE backup_stores ADD COLUMN secret_enc bytea;
ALTER TABLE backup_stores ADD COLUMN object_lock_mode text CHECK (object_lock_mode IN ('governance', 'compliance'));
ALTER TABLE backup_stores ADD COLUMN object_lock_days integer CHECK (object_lock_days BETWEEN 1 AND 36500);
ALTER TABLE backup_stores ADD COLUMN bucket_object_lock boolean;
ALTER TABLE backup_stores ADD CONSTRAINT backup_stores_kind_fields CHECK (
    (kind = 'filesystem' AND path IS NOT NULL AND s3 IS NULL AND object_lock_mode IS NULL)
    OR (kind = 's3' AND path IS NULL AND s3 IS NOT NULL AND secret_enc IS NOT NULL));
ALTER TABLE backup_stores ADD CONSTRAINT backup_stores_lock_pair CHECK (
    (object_lock_mode IS NULL) = (object_lock_days IS NULL));

ALTER TABLE backups ADD COLUMN object_version text;
ALTER TABLE backups ADD COLUMN locked_until timestamptz;
ALTER TABLE backups ADD COLUMN expires_at timestamptz;
ALTER TABLE backups ADD COLUMN reason text NOT NULL DEFAULT 'manual'
    CHECK (reason IN ('manual', 'scheduled', 'final'));
ALTER TABLE backups ALTER COLUMN reason DROP DEFAULT;
CREATE INDEX backups_expired ON backups (expires_at) WHERE expires_at IS NOT NULL;

-- What each environment's databases get unless they say otherwise, and the bounds a
-- database's own settings must stay within (set by a platform admin).
CREATE TABLE backup_policies (
    environment text PRIMARY KEY CHECK (environment IN ('sandbox', 'preprod', 'prod')),
    backup_cron text,
    verify_cron text,
    retention_days integer NOT NULL,
    min_retention_days integer NOT NULL,
    max_retention_days integer NOT NULL,
    final_backup_on_delete boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (1 <= min_retention_days AND min_retention_days <= retention_days
           AND retention_days <= max_retention_days AND max_retention_days <= 36500)
);
INSERT INTO backup_policies VALUES
    ('prod', '0 2 * * *', '0 4 * * SUN', 35, 7, 3650, true, now()),
    ('preprod', '0 2 * * *', NULL, 14, 1, 365, false, now()),
    ('sandbox', '0 2 * * *', NULL, 7, 1, 90, false, now());

-- A database's own backup settings (NULL: its environment's policy).
ALTER TABLE databases ADD COLUMN backup_retention_days integer;
ALTER TABLE databases ADD COLUMN backup_store_id uuid REFERENCES backup_stores (id);
-- Set once the policy's schedules were created for it (the tenant may change them after).
ALTER TABLE databases ADD COLUMN backup_policy_applied boolean NOT NULL DEFAULT false;
-- An in-place restore keeps the previous database under its own physical name until then.
ALTER TABLE databases ADD COLUMN retained_until timestamptz;

ALTER TABLE schedules DROP CONSTRAINT schedules_kind_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_kind_check
    CHECK (kind IN ('repack', 'vacuum', 'analyze', 'reindex', 'backup', 'verify'));
ALTER TABLE schedules ADD COLUMN origin text NOT NULL DEFAULT 'tenant' CHECK (origin IN ('tenant', 'policy'));

ALTER TABLE operations DROP CONSTRAINT operations_kind_known;
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance', 'backup_database', 'verify_backup',
    'restore_database'));
