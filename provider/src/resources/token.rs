//! `dbaas_token`: an API token for a tenant (or a platform admin); the secret is sensitive.

use dbaas_client::CreateToken;

use super::common::field_paths;
use crate::framework::{model, Ctx, Diags, Field, Path, Private, Schema, TypedResource};

pub struct Token;

model! {
    /// `dbaas_token` as Terraform holds it.
    pub struct TokenModel {
        id: Field<String> => computed("Token id.").keep(),
        tenant: Field<String> => optional("Tenant the token is scoped to; omit for a platform-admin token (admin callers only).").replace(),
        description: Field<String> => optional("A label for humans.").replace(),
        ttl: Field<String> => optional("Lifetime such as `90d` or `12h`; omit for no expiry.").replace(),
        secret: Field<String> => computed("The bearer token.").sensitive().keep(),
        expires_at: Field<String> => computed("RFC 3339 expiry, or null.").keep(),
    }
}

#[tonic::async_trait]
impl TypedResource for Token {
    type Model = TokenModel;

    fn type_name(&self) -> &'static str {
        "dbaas_token"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "An API token, for onboarding a team (tenant token) or bootstrapping (admin). The secret is shown once by the API and kept only in state; destroying the resource revokes the token.",
            TokenModel::attrs(),
        )
    }

    fn validate(&self, c: &TokenModel, diags: &mut Diags) {
        if let Some(Err(m)) = c.tenant.as_str().map(dbaas_client::names::validate_tenant_name) {
            diags.error_at(Path::attr(TokenModel::tenant), "Invalid tenant name", m);
        }
        if let Some(Err(m)) = c.ttl.as_str().map(crate::util::parse_duration) {
            diags.error_at(Path::attr(TokenModel::ttl), "Invalid ttl", m);
        }
    }

    async fn create(
        &self,
        ctx: &Ctx,
        _p: &TokenModel,
        c: &TokenModel,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<TokenModel> {
        let client = ctx.client(diags).await?;
        let req = CreateToken {
            tenant: c.tenant.as_str().map(str::to_string),
            description: c.description.as_str().map(str::to_string),
            ttl: c.ttl.as_str().map(str::to_string),
        };
        match client.create_token(&req).await {
            Ok(t) => Some(TokenModel {
                id: Field::str(t.token.id.to_string()),
                tenant: c.tenant.clone(),
                description: c.description.clone(),
                ttl: c.ttl.clone(),
                secret: Field::str(t.secret),
                expires_at: t.token.expires_at.map(|e| e.to_rfc3339()).into(),
            }),
            Err(e) => {
                diags.api_error("Creating the token", &e, &field_paths(&[TokenModel::tenant, TokenModel::ttl]));
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &TokenModel, _pr: &mut Private, diags: &mut Diags) -> Option<TokenModel> {
        let client = ctx.client(diags).await?;
        let id = s.id.as_str()?;
        match client
            .send::<(), dbaas_client::List<dbaas_client::Token>>(reqwest::Method::GET, "/v1/tokens", None, &[], None)
            .await
        {
            Ok(list) => match list.body.items.iter().find(|t| t.id.to_string() == id) {
                // Revoked or expired outside Terraform: gone, so the next plan makes a new one.
                Some(t) if t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > chrono::Utc::now()) => {
                    Some(s.clone())
                }
                _ => None,
            },
            Err(e) => {
                diags.api_error("Reading tokens", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        _ctx: &Ctx,
        _prior: &TokenModel,
        planned: &TokenModel,
        _c: &TokenModel,
        _pr: &mut Private,
        _diags: &mut Diags,
    ) -> Option<TokenModel> {
        Some(planned.clone())
    }

    async fn delete(&self, ctx: &Ctx, prior: &TokenModel, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some(id) = prior.id.as_str().and_then(|s| s.parse().ok()) else { return };
        match client.revoke_token(id).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Revoking the token", &e, &[]),
        }
    }

    async fn import(&self, _ctx: &Ctx, _id: &str, diags: &mut Diags) -> Option<TokenModel> {
        diags.error(
            "Tokens cannot be imported",
            "the secret is shown only when a token is created; create a new dbaas_token instead",
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<TokenModel>(&TypedResource::schema(&Token));
    }
}
