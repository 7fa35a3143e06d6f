-- Hosts where managed instances are provisioned (the provisioning itself comes later).
CREATE TABLE hosts (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    kind             text NOT NULL CHECK (kind IN ('local', 'ssh')),
    address          text,
    ssh_port         integer,
    ssh_user         text,
    ssh_private_key_enc bytea,
    ssh_known_host_key  text,
    data_root        text NOT NULL,
    port_range_start integer NOT NULL CHECK (port_range_start BETWEEN 1024 AND 65535),
    port_range_end   integer NOT NULL CHECK (port_range_end BETWEEN 1024 AND 65535),
    -- What registration found: [{"version": "15", "full_version": "PostgreSQL 15.18", "bin_dir": "/usr/lib/postgresql/15/bin"}]
    pg_versions      jsonb NOT NULL DEFAULT '[]',
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (port_range_start <= port_range_end)
);
