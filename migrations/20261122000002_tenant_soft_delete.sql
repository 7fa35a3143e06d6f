-- Deleting a tenant keeps its row for the history that references it (deleted databases,
-- operations); the name becomes free for a new tenant.
ALTER TABLE tenants ADD COLUMN deleted_at timestamptz;
ALTER TABLE tenants DROP CONSTRAINT tenants_name_key;
CREATE UNIQUE INDEX tenants_name_live ON tenants (name) WHERE deleted_at IS NULL;
