-- Tokens record the token that minted them: revoking a token revokes what it minted, and a
-- tenant token cannot mint one that outlives it.
ALTER TABLE tokens ADD COLUMN parent_id uuid REFERENCES tokens (id);
CREATE INDEX tokens_parent ON tokens (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tokens_tenant_live ON tokens (tenant_id) WHERE revoked_at IS NULL;
