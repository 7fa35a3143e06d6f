-- Signing in with an OIDC identity token (GitLab CI's id_tokens): which tokens a tenant
-- trusts, the identity tokens already exchanged, and what exchanged API tokens may do.

CREATE TABLE oidc_bindings (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    issuer      text NOT NULL,
    audience    text NOT NULL,
    -- Required claims: {"project_id": "42", "ref_protected": "true", "ref": "release/*"}.
    claims      jsonb NOT NULL,
    access      text NOT NULL CHECK (access IN ('full', 'read_only')),
    unprotected boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX oidc_bindings_issuer ON oidc_bindings (issuer);

-- Identity tokens exchanged (their jti), kept until they expired: never twice, whichever
-- replica is asked.
CREATE TABLE oidc_jti (
    issuer     text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);

ALTER TABLE tokens
    ADD COLUMN access text NOT NULL DEFAULT 'full' CHECK (access IN ('full', 'read_only')),
    ADD COLUMN oidc_binding_id uuid REFERENCES oidc_bindings (id) ON DELETE SET NULL;
