-- Operation kinds are a closed set: a stray value is refused at write, so every stored
-- operation decodes to its typed job.
ALTER TABLE operations ADD CONSTRAINT operations_kind_known CHECK (kind IN (
    'provision_database', 'update_database', 'delete_database', 'rotate_credential', 'create_lease',
    'revoke_lease', 'maintenance', 'provision_instance', 'update_instance', 'start_instance',
    'stop_instance', 'restart_instance', 'delete_instance'));
