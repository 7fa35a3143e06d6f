-- Tenant isolation: the physical name of a database is stored and unique per instance among
-- live databases, so no two records can ever claim the same PostgreSQL database (the naming
-- rule is injective; this makes the state database enforce it too). Role names derive from
-- the physical name; lease role names are unique across the platform.
ALTER TABLE databases ADD COLUMN physical_name text;
UPDATE databases d SET physical_name = t.name || '_' || d.name FROM tenants t WHERE t.id = d.tenant_id;
ALTER TABLE databases ALTER COLUMN physical_name SET NOT NULL;
ALTER TABLE databases ADD CONSTRAINT databases_physical_name_format
    CHECK (physical_name ~ '^[a-z][a-z0-9-]*_[a-z][a-z0-9-]*$' AND octet_length(physical_name) <= 63);
CREATE UNIQUE INDEX databases_instance_physical ON databases (instance_id, physical_name) WHERE status <> 'deleted';

UPDATE credentials c SET role_name = d.physical_name || '_' || c.access
    FROM databases d WHERE d.id = c.database_id AND c.kind = 'static';
CREATE UNIQUE INDEX credentials_lease_role ON credentials (role_name) WHERE kind = 'lease';
