-- Managed instances' certificates: the CA's key (encrypted under the master key, so the
-- service can issue a renewed server certificate that clients' pinned CA still verifies) and
-- the expiry of the server certificate the instance presents.
ALTER TABLE instances ADD COLUMN ca_key_enc bytea;
ALTER TABLE instances ADD COLUMN cert_not_after timestamptz;

ALTER TABLE operations DROP CONSTRAINT operations_kind_known;
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance', 'backup_database', 'verify_backup',
    'restore_database', 'renew_certificate'));
