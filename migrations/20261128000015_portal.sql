-- The web portal's sessions, and indexes for the admin audit endpoint's filters.

-- A signed-in browser: the cookie carries a random id, only its hash is kept here. The API
-- token the user signed in with is kept encrypted under the master key (the portal calls
-- the API with it, so revoking the token ends the session's access). `csrf` is the
-- synchronizer token every form of the session must send back.
CREATE TABLE portal_sessions (
    id_hash bytea PRIMARY KEY,
    token_id uuid NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    token_enc bytea NOT NULL,
    csrf text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);
