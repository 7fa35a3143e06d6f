-- Repacks used to leave pg_repack (and pgstattuple) in the tenant's database, which made every
-- later backup of it unrestorable by the tenant's admin role. Repacks now remove them; this
-- enqueues, once, an operation that removes what earlier repacks left, for every database
-- that was ever repacked and is still there.
ALTER TABLE operations DROP CONSTRAINT operations_kind_known;
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance', 'backup_database', 'verify_backup',
    'restore_database', 'renew_certificate', 'remove_service_extensions'));

INSERT INTO operations (id, kind, target_kind, target_id, tenant_id, params, status)
SELECT gen_random_uuid(), 'remove_service_extensions', 'database', d.id, d.tenant_id, '{}', 'queued'
FROM databases d
WHERE d.status NOT IN ('deleted', 'retained')
  AND EXISTS (SELECT 1 FROM operations o
              WHERE o.target_id = d.id AND o.kind = 'maintenance'
                AND o.params -> 'request' ->> 'kind' = 'repack');
