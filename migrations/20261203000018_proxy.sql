-- The routing proxy (pgbouncer) a host runs in front of its managed instances: one port per
-- host, the database name picks the cluster.

-- The port the host's proxy listens on (NULL: the host runs no proxy; its databases are
-- reached at their instance's port). Its TLS: a CA of the host's proxy (key encrypted by the
-- master key) and when its server certificate expires.
ALTER TABLE hosts
    ADD COLUMN proxy_port integer CHECK (proxy_port BETWEEN 1024 AND 65535),
    ADD COLUMN proxy_ca_cert text,
    ADD COLUMN proxy_ca_key_enc bytea,
    ADD COLUMN proxy_cert_not_after timestamptz,
    -- The names the proxy's current server certificate carries, and the tag of its files on
    -- the host (client-<tag>.crt/.key): a new name or a renewal is a new pair of files.
    ADD COLUMN proxy_cert_names text[],
    ADD COLUMN proxy_cert_tag text,
    -- What the service last found of the proxy (running, config applied, or why not).
    ADD COLUMN proxy_health text NOT NULL DEFAULT 'unknown' CHECK (proxy_health IN ('unknown', 'healthy', 'down')),
    ADD COLUMN proxy_message text,
    ADD COLUMN proxy_checked_at timestamptz,
    ADD CONSTRAINT hosts_proxy_port_outside_range CHECK (proxy_port IS NULL OR proxy_port NOT BETWEEN port_range_start AND port_range_end);

-- How the proxy pools a database's server connections.
ALTER TABLE databases
    ADD COLUMN pool_mode text NOT NULL DEFAULT 'session' CHECK (pool_mode IN ('session', 'transaction'));
