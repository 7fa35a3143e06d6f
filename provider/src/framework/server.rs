//! The tfplugin6 Provider service: decodes DynamicValues with each schema's type, calls the
//! resource, encodes the answer with diagnostics.

// tonic::Status is what every RPC returns; boxing it here would only add conversions.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::diag::Diags;
use super::plan::plan;
use super::resource::{Ctx, DataSource, EphemeralResource, Private, ProviderConfig, Resource};
use crate::cty::{self, Type, Value};
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider;

pub struct ProviderServer {
    ctx: Ctx,
    config: Arc<dyn ProviderConfig>,
    resources: BTreeMap<&'static str, Arc<dyn Resource>>,
    data_sources: BTreeMap<&'static str, Arc<dyn DataSource>>,
    ephemerals: BTreeMap<&'static str, Arc<dyn EphemeralResource>>,
}

impl ProviderServer {
    pub fn new(
        config: Arc<dyn ProviderConfig>,
        resources: Vec<Arc<dyn Resource>>,
        data_sources: Vec<Arc<dyn DataSource>>,
        ephemerals: Vec<Arc<dyn EphemeralResource>>,
    ) -> Self {
        Self {
            ctx: Ctx::default(),
            config,
            resources: resources.into_iter().map(|r| (r.type_name(), r)).collect(),
            data_sources: data_sources.into_iter().map(|r| (r.type_name(), r)).collect(),
            ephemerals: ephemerals.into_iter().map(|r| (r.type_name(), r)).collect(),
        }
    }

    fn resource(&self, name: &str) -> Result<&Arc<dyn Resource>, Status> {
        self.resources.get(name).ok_or_else(|| Status::not_found(format!("unknown resource type {name}")))
    }
    fn data_source(&self, name: &str) -> Result<&Arc<dyn DataSource>, Status> {
        self.data_sources.get(name).ok_or_else(|| Status::not_found(format!("unknown data source {name}")))
    }
    fn ephemeral(&self, name: &str) -> Result<&Arc<dyn EphemeralResource>, Status> {
        self.ephemerals.get(name).ok_or_else(|| Status::not_found(format!("unknown ephemeral resource {name}")))
    }
}

fn decode(ty: &Type, dv: Option<&pb::DynamicValue>) -> Result<Value, Status> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let r = if !dv.msgpack.is_empty() {
        cty::decode(ty, &dv.msgpack)
    } else if !dv.json.is_empty() {
        cty::decode_json(ty, &dv.json)
    } else {
        Ok(Value::Null)
    };
    r.map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode(ty: &Type, v: &Value) -> Result<Option<pb::DynamicValue>, Status> {
    let msgpack = cty::encode(ty, v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Some(pb::DynamicValue { msgpack, json: Vec::new() }))
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities { plan_destroy: false, get_provider_schema_optional: false, move_resource_state: false }
}

#[tonic::async_trait]
impl Provider for ProviderServer {
    async fn get_metadata(
        &self,
        _r: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        use pb::get_metadata as m;
        Ok(Response::new(m::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: vec![],
            data_sources: self
                .data_sources
                .keys()
                .map(|n| m::DataSourceMetadata { type_name: n.to_string() })
                .collect(),
            resources: self.resources.keys().map(|n| m::ResourceMetadata { type_name: n.to_string() }).collect(),
            functions: vec![],
            ephemeral_resources: self
                .ephemerals
                .keys()
                .map(|n| m::EphemeralResourceMetadata { type_name: n.to_string() })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _r: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(self.config.schema().to_proto()),
            resource_schemas: self.resources.iter().map(|(n, r)| (n.to_string(), r.schema().to_proto())).collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|(n, r)| (n.to_string(), r.schema().to_proto()))
                .collect(),
            ephemeral_resource_schemas: self
                .ephemerals
                .iter()
                .map(|(n, r)| (n.to_string(), r.schema().to_proto()))
                .collect(),
            diagnostics: vec![],
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: Default::default(),
        }))
    }

    async fn validate_provider_config(
        &self,
        r: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let r = r.into_inner();
        let config = decode(&self.config.schema().ty(), r.config.as_ref())?;
        let mut diags = Diags::default();
        self.config.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn validate_resource_config(
        &self,
        r: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let schema = res.schema();
        let config = decode(&schema.ty(), r.config.as_ref())?;
        let mut diags = Diags::default();
        // A client that cannot keep write-only values out of its plan and state may not send
        // them at all.
        let allowed = r.client_capabilities.as_ref().is_some_and(|c| c.write_only_attributes_allowed);
        for a in schema.block.attrs.iter().filter(|a| a.write_only) {
            if !allowed && !config.get(a.name).is_null() {
                diags.error_at(
                    super::diag::Path::attr(a.name),
                    "Write-only attribute not supported",
                    format!("{} is write-only: it needs Terraform 1.11 or later", a.name),
                );
            }
        }
        super::resource::timeout(&config, "create", &mut diags);
        super::resource::timeout(&config, "update", &mut diags);
        super::resource::timeout(&config, "delete", &mut diags);
        res.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn validate_data_resource_config(
        &self,
        r: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let r = r.into_inner();
        let ds = self.data_source(&r.type_name)?;
        let config = decode(&ds.schema().ty(), r.config.as_ref())?;
        let mut diags = Diags::default();
        ds.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn upgrade_resource_state(
        &self,
        r: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let ty = res.schema().ty();
        let mut diags = Diags::default();
        let raw = r.raw_state.unwrap_or_default();
        let state = if raw.json.is_empty() {
            if !raw.flatmap.is_empty() {
                diags.error(
                    "Unsupported state format",
                    "flatmap state from Terraform 0.11 cannot be upgraded; re-import the resource",
                );
            }
            Value::Null
        } else {
            cty::decode_json(&ty, &raw.json).map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: encode(&ty, &state)?,
            diagnostics: diags.to_proto(),
        }))
    }

    async fn configure_provider(
        &self,
        r: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let r = r.into_inner();
        let config = decode(&self.config.schema().ty(), r.config.as_ref())?;
        let mut diags = Diags::default();
        if let Some(client) = self.config.configure(&config, &mut diags).await {
            self.ctx.set_client(client).await;
        }
        Ok(Response::new(pb::configure_provider::Response { diagnostics: diags.to_proto() }))
    }

    async fn read_resource(
        &self,
        r: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let ty = res.schema().ty();
        let state = decode(&ty, r.current_state.as_ref())?;
        let mut private = Private::decode(&r.private);
        let mut diags = Diags::default();
        let new_state = if state.is_null() {
            Value::Null
        } else {
            res.read(&self.ctx, &state, &mut private, &mut diags).await.unwrap_or(Value::Null)
        };
        // On an error keep what we had rather than dropping the resource.
        let new_state = if diags.has_errors() && new_state.is_null() { state } else { new_state };
        Ok(Response::new(pb::read_resource::Response {
            new_state: encode(&ty, &new_state)?,
            diagnostics: diags.to_proto(),
            private: private.encode(),
            deferred: None,
        }))
    }

    async fn plan_resource_change(
        &self,
        r: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let schema = res.schema();
        let ty = schema.ty();
        let prior = decode(&ty, r.prior_state.as_ref())?;
        let proposed = decode(&ty, r.proposed_new_state.as_ref())?;
        let config = decode(&ty, r.config.as_ref())?;
        let private = Private::decode(&r.prior_private);
        let mut diags = Diags::default();
        let mut planned = plan(&schema, &prior, &proposed, &config);
        if !planned.state.is_null() {
            res.modify_plan(&self.ctx, &prior, &mut planned.state, &config, &private, &mut diags).await;
        }
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: encode(&ty, &planned.state)?,
            requires_replace: planned.requires_replace.iter().map(|p| p.to_proto()).collect(),
            planned_private: private.encode(),
            diagnostics: diags.to_proto(),
            legacy_type_system: false,
            deferred: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        r: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let schema = res.schema();
        let ty = schema.ty();
        let prior = decode(&ty, r.prior_state.as_ref())?;
        let planned = decode(&ty, r.planned_state.as_ref())?;
        let config = decode(&ty, r.config.as_ref())?;
        let mut private = Private::decode(&r.planned_private);
        let mut diags = Diags::default();
        let mut new_state = if planned.is_null() {
            res.delete(&self.ctx, &prior, &mut private, &mut diags).await;
            // A failed delete leaves the resource in state.
            if diags.has_errors() {
                prior
            } else {
                Value::Null
            }
        } else if prior.is_null() {
            res.create(&self.ctx, &planned, &config, &mut private, &mut diags).await.unwrap_or(Value::Null)
        } else {
            res.update(&self.ctx, &prior, &planned, &config, &mut private, &mut diags).await.unwrap_or(prior)
        };
        // Never a write-only value in state, whatever the resource returned.
        if !new_state.is_null() {
            for a in schema.block.attrs.iter().filter(|a| a.write_only) {
                new_state.set(a.name, Value::Null);
            }
        }
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state: encode(&ty, &new_state)?,
            private: private.encode(),
            diagnostics: diags.to_proto(),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        r: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let r = r.into_inner();
        let res = self.resource(&r.type_name)?;
        let ty = res.schema().ty();
        let mut diags = Diags::default();
        let imported = match res.import(&self.ctx, &r.id, &mut diags).await {
            Some(state) => vec![pb::import_resource_state::ImportedResource {
                type_name: r.type_name.clone(),
                state: encode(&ty, &state)?,
                private: vec![],
            }],
            None => vec![],
        };
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: imported,
            diagnostics: diags.to_proto(),
            deferred: None,
        }))
    }

    async fn move_resource_state(
        &self,
        _r: Request<pb::move_resource_state::Request>,
    ) -> Result<Response<pb::move_resource_state::Response>, Status> {
        let mut diags = Diags::default();
        diags.error("Moving resources is not supported", "use terraform import on the new address instead");
        Ok(Response::new(pb::move_resource_state::Response {
            target_state: None,
            diagnostics: diags.to_proto(),
            target_private: vec![],
        }))
    }

    async fn read_data_source(
        &self,
        r: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let r = r.into_inner();
        let ds = self.data_source(&r.type_name)?;
        let ty = ds.schema().ty();
        let config = decode(&ty, r.config.as_ref())?;
        let mut diags = Diags::default();
        let state = ds.read(&self.ctx, &config, &mut diags).await.unwrap_or(Value::Null);
        let state = if state.is_null() { config } else { state };
        Ok(Response::new(pb::read_data_source::Response {
            state: encode(&ty, &state)?,
            diagnostics: diags.to_proto(),
            deferred: None,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        r: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let r = r.into_inner();
        let e = self.ephemeral(&r.type_name)?;
        let config = decode(&e.schema().ty(), r.config.as_ref())?;
        let mut diags = Diags::default();
        e.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_ephemeral_resource_config::Response { diagnostics: diags.to_proto() }))
    }

    async fn open_ephemeral_resource(
        &self,
        r: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let r = r.into_inner();
        let e = self.ephemeral(&r.type_name)?;
        let ty = e.schema().ty();
        let config = decode(&ty, r.config.as_ref())?;
        let mut diags = Diags::default();
        let opened = e.open(&self.ctx, &config, &mut diags).await;
        let (state, private) = match opened {
            Some(o) => (o.state, o.private),
            None => (config, Private::default()),
        };
        Ok(Response::new(pb::open_ephemeral_resource::Response {
            diagnostics: diags.to_proto(),
            renew_at: None,
            result: encode(&ty, &state)?,
            private: Some(private.encode()),
            deferred: None,
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _r: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        // We never ask for renewal (no renew_at); a lease lives for its TTL.
        Ok(Response::new(pb::renew_ephemeral_resource::Response { diagnostics: vec![], renew_at: None, private: None }))
    }

    async fn close_ephemeral_resource(
        &self,
        r: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        let r = r.into_inner();
        let e = self.ephemeral(&r.type_name)?;
        let private = Private::decode(r.private.as_deref().unwrap_or_default());
        let mut diags = Diags::default();
        e.close(&self.ctx, &private, &mut diags).await;
        Ok(Response::new(pb::close_ephemeral_resource::Response { diagnostics: diags.to_proto() }))
    }

    async fn get_functions(
        &self,
        _r: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response { functions: Default::default(), diagnostics: vec![] }))
    }

    async fn call_function(
        &self,
        r: Request<pb::call_function::Request>,
    ) -> Result<Response<pb::call_function::Response>, Status> {
        Err(Status::unimplemented(format!("this provider has no function {}", r.into_inner().name)))
    }

    async fn stop_provider(
        &self,
        _r: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}
