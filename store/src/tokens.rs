//! Tokens: their rows, and minting (the secret is shown once; only its hash is stored).

use chrono::{DateTime, Utc};
use dbaas_client::{CreatedToken, Token};
use uuid::Uuid;

use dbaas_crypto::{generate_token_secret, sha256};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    tenant_name: Option<String>,
    description: String,
    prefix: String,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Self {
        Token {
            id: r.id,
            admin: r.tenant_name.is_none(),
            tenant: r.tenant_name,
            description: r.description,
            prefix: r.prefix,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        }
    }
}

const TOKEN_SELECT: &str = "SELECT k.id, t.name AS tenant_name, k.description, k.prefix, k.expires_at, k.revoked_at, \
    k.created_at FROM tokens k LEFT JOIN tenants t ON t.id = k.tenant_id";

/// Creates a token and returns it with its secret (the only time it is shown).
pub async fn issue(
    db: &sqlx::PgPool,
    tenant_id: Option<Uuid>,
    description: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedToken, sqlx::Error> {
    let mut conn = db.acquire().await?;
    issue_child(&mut conn, tenant_id, description, expires_at, None).await
}

/// Live tokens one tenant may hold.
pub const MAX_PER_TENANT: i64 = 50;

/// Creates a token minted by `parent` (revoking the parent revokes it).
pub async fn issue_child(
    db: &mut sqlx::PgConnection,
    tenant_id: Option<Uuid>,
    description: &str,
    expires_at: Option<DateTime<Utc>>,
    parent: Option<Uuid>,
) -> Result<CreatedToken, sqlx::Error> {
    let secret = generate_token_secret();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO tokens (id, tenant_id, description, secret_hash, prefix, expires_at, parent_id) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(description)
    .bind(sha256(secret.as_bytes()))
    .bind(&secret[..12])
    .bind(expires_at)
    .bind(parent)
    .execute(&mut *db)
    .await?;
    let row: TokenRow = sqlx::query_as(&format!("{TOKEN_SELECT} WHERE k.id = $1")).bind(id).fetch_one(db).await?;
    Ok(CreatedToken { token: row.into(), secret })
}

/// Tokens of one tenant, or every token (`None`), oldest first.
/// A page of tokens by (created_at, id), after `after`, at most `limit`.
pub async fn list(
    db: &sqlx::PgPool,
    tenant: Option<Uuid>,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Token>, sqlx::Error> {
    let (at, id) = after.unzip();
    let rows: Vec<TokenRow> = sqlx::query_as(&format!(
        "{TOKEN_SELECT} WHERE ($1::uuid IS NULL OR k.tenant_id = $1) \
         AND ($2::timestamptz IS NULL OR (k.created_at, k.id) > ($2, $3)) ORDER BY k.created_at, k.id LIMIT $4"
    ))
    .bind(tenant)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &sqlx::PgPool, id: Uuid) -> Result<Token, sqlx::Error> {
    let row: TokenRow = sqlx::query_as(&format!("{TOKEN_SELECT} WHERE k.id = $1")).bind(id).fetch_one(db).await?;
    Ok(row.into())
}
