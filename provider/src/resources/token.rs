//! `dbaas_token`: an API token for a tenant (or a platform admin); the secret is sensitive.

use dbaas_client::CreateToken;

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, Diags, Path, Private, Resource, Schema};

pub struct Token;

#[tonic::async_trait]
impl Resource for Token {
    fn type_name(&self) -> &'static str {
        "dbaas_token"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "An API token, for onboarding a team (tenant token) or bootstrapping (admin). The secret is shown once by the API and kept only in state; destroying the resource revokes the token.",
            vec![
                Attr::computed("id", Type::String, "Token id.").keep(),
                Attr::optional("tenant", Type::String, "Tenant the token is scoped to; omit for a platform-admin token (admin callers only).").replace(),
                Attr::optional("description", Type::String, "A label for humans.").replace(),
                Attr::optional("ttl", Type::String, "Lifetime such as `90d` or `12h`; omit for no expiry.").replace(),
                Attr::computed("secret", Type::String, "The bearer token.").sensitive().keep(),
                Attr::computed("expires_at", Type::String, "RFC 3339 expiry, or null.").keep(),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(Err(m)) = c.get("tenant").as_str().map(dbaas_client::names::validate_tenant_name) {
            diags.error_at(Path::attr("tenant"), "Invalid tenant name", m);
        }
        if let Some(Err(m)) = c.get("ttl").as_str().map(crate::util::parse_duration) {
            diags.error_at(Path::attr("ttl"), "Invalid ttl", m);
        }
    }

    async fn create(&self, ctx: &Ctx, _p: &Value, c: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let req = CreateToken {
            tenant: c.get("tenant").as_str().map(str::to_string),
            description: c.get("description").as_str().map(str::to_string),
            ttl: c.get("ttl").as_str().map(str::to_string),
        };
        match client.create_token(&req).await {
            Ok(t) => Some(Value::object([
                ("id", Value::str(t.token.id.to_string())),
                ("tenant", c.get("tenant").clone()),
                ("description", c.get("description").clone()),
                ("ttl", c.get("ttl").clone()),
                ("secret", Value::str(t.secret)),
                ("expires_at", Value::opt_str(t.token.expires_at.map(|e| e.to_rfc3339()))),
            ])),
            Err(e) => {
                diags.api_error(
                    "Creating the token",
                    &e,
                    &[("tenant", Path::attr("tenant")), ("ttl", Path::attr("ttl"))],
                );
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let id = s.get("id").as_str()?.to_string();
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
        _prior: &Value,
        planned: &Value,
        _c: &Value,
        _pr: &mut Private,
        _diags: &mut Diags,
    ) -> Option<Value> {
        Some(planned.clone())
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some(id) = prior.get("id").as_str().and_then(|s| s.parse().ok()) else { return };
        match client.revoke_token(id).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Revoking the token", &e, &[]),
        }
    }

    async fn import(&self, _ctx: &Ctx, _id: &str, diags: &mut Diags) -> Option<Value> {
        diags.error(
            "Tokens cannot be imported",
            "the secret is shown only when a token is created; create a new dbaas_token instead",
        );
        None
    }
}
