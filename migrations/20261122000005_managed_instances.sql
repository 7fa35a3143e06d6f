-- Managed instances: clusters this service provisions on registered hosts, and the life
-- cycle every instance now has (external ones are simply `ready`).
ALTER TABLE instances
    ADD COLUMN status text NOT NULL DEFAULT 'ready'
        CHECK (status IN ('provisioning', 'ready', 'stopped', 'failed', 'deleting', 'deleted')),
    ADD COLUMN host_id uuid REFERENCES hosts (id),
    ADD COLUMN pg_version text,
    ADD COLUMN settings jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN dedicated_tenant_id uuid REFERENCES tenants (id),
    ADD COLUMN protected boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_restart boolean NOT NULL DEFAULT true,
    ADD COLUMN health text CHECK (health IN ('healthy', 'down')),
    ADD COLUMN health_message text,
    ADD COLUMN health_checked_at timestamptz,
    ADD COLUMN last_operation_id uuid,
    ADD COLUMN ready_at timestamptz,
    ADD COLUMN deleted_at timestamptz;

-- A deleted instance stays for the history of its databases; its name and port are free again.
ALTER TABLE instances DROP CONSTRAINT instances_name_key;
CREATE UNIQUE INDEX instances_live_name ON instances (name) WHERE status <> 'deleted';
-- Two live instances never share a port on one host (allocation races end here).
CREATE UNIQUE INDEX instances_host_port ON instances (host_id, port) WHERE host_id IS NOT NULL AND status <> 'deleted';
