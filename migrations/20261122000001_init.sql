-- State of the dbaas service. Resources, durable operations, idempotency keys and audit.

CREATE TABLE tenants (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,19}$'),
    max_databases integer NOT NULL DEFAULT 50 CHECK (max_databases >= 0),
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens: only the SHA-256 of the secret is kept. tenant_id NULL = platform admin.
CREATE TABLE tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    description text NOT NULL DEFAULT '',
    secret_hash bytea NOT NULL UNIQUE,
    prefix      text NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instances (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    kind               text NOT NULL CHECK (kind IN ('external', 'managed')),
    host               text NOT NULL,
    port               integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    public_host        text NOT NULL,
    admin_user         text NOT NULL,
    admin_password_enc bytea NOT NULL,
    sslmode            text NOT NULL,
    ca_cert            text,
    environment        text NOT NULL CHECK (environment IN ('sandbox', 'preprod', 'prod')),
    labels             jsonb NOT NULL DEFAULT '{}',
    max_databases      integer NOT NULL CHECK (max_databases >= 0),
    allowed_extensions text[] NOT NULL DEFAULT '{}',
    server_version     text NOT NULL DEFAULT '',
    -- Room for managed instances (host, data dir, settings) without reshaping this table.
    managed            jsonb,
    version            bigint NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE databases (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    name             text NOT NULL,
    instance_id      uuid NOT NULL REFERENCES instances (id),
    mode             text NOT NULL CHECK (mode IN ('standard', 'protected')),
    status           text NOT NULL CHECK (status IN
                       ('provisioning', 'ready', 'updating', 'deleting', 'deleted', 'retained', 'failed')),
    extensions       text[] NOT NULL DEFAULT '{}',
    connection_limit integer NOT NULL DEFAULT -1 CHECK (connection_limit >= -1),
    version          bigint NOT NULL DEFAULT 1,
    last_operation_id uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
-- A name is taken until its database is really gone; a retained one is re-adopted by name.
CREATE UNIQUE INDEX databases_tenant_name ON databases (tenant_id, name) WHERE status <> 'deleted';
CREATE INDEX databases_instance ON databases (instance_id) WHERE status <> 'deleted';

-- Static credentials (one per access level) and leases (temporary logins).
CREATE TABLE credentials (
    id                   uuid PRIMARY KEY,
    database_id          uuid NOT NULL REFERENCES databases (id),
    kind                 text NOT NULL CHECK (kind IN ('static', 'lease')),
    access               text NOT NULL CHECK (access IN ('read', 'write', 'admin')),
    role_name            text NOT NULL,
    password_enc         bytea NOT NULL,
    -- A rotation in flight: applied to the instance first, then swapped in.
    pending_password_enc bytea,
    status               text NOT NULL CHECK (status IN ('pending', 'active', 'revoking', 'revoked')),
    expires_at           timestamptz,
    rotated_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX credentials_static ON credentials (database_id, access) WHERE kind = 'static';
CREATE INDEX credentials_expiring ON credentials (expires_at) WHERE kind = 'lease' AND status = 'active';

-- Durable operations. The queue is this table (see api/src/ops/queue.rs for why).
CREATE TABLE operations (
    id               uuid PRIMARY KEY,
    seq              bigserial NOT NULL UNIQUE,
    kind             text NOT NULL,
    target_kind      text NOT NULL,
    target_id        uuid NOT NULL,
    tenant_id        uuid REFERENCES tenants (id),
    params           jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 8,
    run_after        timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_until     timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    error_code       text,
    error_message    text,
    error_retryable  boolean,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX operations_open ON operations (seq) WHERE status IN ('queued', 'running');
CREATE INDEX operations_target ON operations (target_id, seq);

CREATE TABLE operation_logs (
    id           bigserial PRIMARY KEY,
    operation_id uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    level        text NOT NULL,
    message      text NOT NULL
);
CREATE INDEX operation_logs_op ON operation_logs (operation_id, id);

-- Idempotency-Key: the first answer to a POST, replayed for retries of the same request.
CREATE TABLE idempotency_keys (
    principal    text NOT NULL,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    request_hash bytea NOT NULL,
    status_code  integer,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    tenant      text,
    action      text NOT NULL,
    target      text NOT NULL,
    request_id  text,
    status_code integer NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
