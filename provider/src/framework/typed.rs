//! Resources written against their typed model: [`TypedResource`], [`TypedDataSource`] and
//! [`TypedEphemeralResource`] receive and return model structs; the blanket impls here decode
//! what Terraform sent (reporting a malformed value at its path) and encode what they return,
//! so no resource builds or reads a `Value` by attribute name.

use super::diag::Diags;
use super::model::{decode, Model};
use super::resource::{Ctx, DataSource, EphemeralResource, Opened, Private, Resource};
use super::schema::Schema;
use crate::cty::Value;

/// A managed resource over its model `M`; see [`Resource`] for what each call means.
#[tonic::async_trait]
pub trait TypedResource: Send + Sync {
    type Model: Model + Send + Sync;

    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Plan-time checks of the configuration (values may be unknown).
    fn validate(&self, _config: &Self::Model, _diags: &mut Diags) {}
    /// Adjusts the generic plan; `prior` is None when the resource is being created.
    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        _prior: Option<&Self::Model>,
        _planned: &mut Self::Model,
        _config: &Self::Model,
        _private: &Private,
        _diags: &mut Diags,
    ) {
    }
    async fn create(
        &self,
        ctx: &Ctx,
        planned: &Self::Model,
        config: &Self::Model,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Self::Model>;
    /// `None`: the object is gone (removed from state, so the next plan creates it).
    async fn read(
        &self,
        ctx: &Ctx,
        state: &Self::Model,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Self::Model>;
    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Self::Model,
        planned: &Self::Model,
        config: &Self::Model,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Self::Model>;
    async fn delete(&self, ctx: &Ctx, prior: &Self::Model, private: &mut Private, diags: &mut Diags);
    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Self::Model>;
}

#[tonic::async_trait]
impl<R: TypedResource> Resource for R {
    fn type_name(&self) -> &'static str {
        TypedResource::type_name(self)
    }
    fn schema(&self) -> Schema {
        TypedResource::schema(self)
    }
    fn validate(&self, config: &Value, diags: &mut Diags) {
        if let Some(c) = decode::<R::Model>(config, diags) {
            TypedResource::validate(self, &c, diags);
        }
    }
    async fn modify_plan(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &mut Value,
        config: &Value,
        private: &Private,
        diags: &mut Diags,
    ) {
        let prior = if prior.is_null() {
            None
        } else {
            let Some(p) = decode::<R::Model>(prior, diags) else { return };
            Some(p)
        };
        let (Some(mut p), Some(c)) = (decode::<R::Model>(planned, diags), decode::<R::Model>(config, diags)) else {
            return;
        };
        let before = p.clone();
        TypedResource::modify_plan(self, ctx, prior.as_ref(), &mut p, &c, private, diags).await;
        // Re-encoded only when the resource changed something: an untouched plan goes back
        // exactly as Terraform proposed it.
        if p != before {
            *planned = p.to_value();
        }
    }
    async fn create(
        &self,
        ctx: &Ctx,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let (p, c) = (decode::<R::Model>(planned, diags)?, decode::<R::Model>(config, diags)?);
        TypedResource::create(self, ctx, &p, &c, private, diags).await.map(|m| m.to_value())
    }
    async fn read(&self, ctx: &Ctx, state: &Value, private: &mut Private, diags: &mut Diags) -> Option<Value> {
        let s = decode::<R::Model>(state, diags)?;
        TypedResource::read(self, ctx, &s, private, diags).await.map(|m| m.to_value())
    }
    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let prior = decode::<R::Model>(prior, diags)?;
        let (p, c) = (decode::<R::Model>(planned, diags)?, decode::<R::Model>(config, diags)?);
        TypedResource::update(self, ctx, &prior, &p, &c, private, diags).await.map(|m| m.to_value())
    }
    async fn delete(&self, ctx: &Ctx, prior: &Value, private: &mut Private, diags: &mut Diags) {
        if let Some(p) = decode::<R::Model>(prior, diags) {
            TypedResource::delete(self, ctx, &p, private, diags).await;
        }
    }
    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value> {
        TypedResource::import(self, ctx, id, diags).await.map(|m| m.to_value())
    }
}

/// A data source over its model; `read` gets the configuration and returns the whole object.
#[tonic::async_trait]
pub trait TypedDataSource: Send + Sync {
    type Model: Model + Send + Sync;

    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Self::Model, _diags: &mut Diags) {}
    async fn read(&self, ctx: &Ctx, config: &Self::Model, diags: &mut Diags) -> Option<Self::Model>;
}

#[tonic::async_trait]
impl<D: TypedDataSource> DataSource for D {
    fn type_name(&self) -> &'static str {
        TypedDataSource::type_name(self)
    }
    fn schema(&self) -> Schema {
        TypedDataSource::schema(self)
    }
    fn validate(&self, config: &Value, diags: &mut Diags) {
        if let Some(c) = decode::<D::Model>(config, diags) {
            TypedDataSource::validate(self, &c, diags);
        }
    }
    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diags) -> Option<Value> {
        let c = decode::<D::Model>(config, diags)?;
        TypedDataSource::read(self, ctx, &c, diags).await.map(|m| m.to_value())
    }
}

/// An ephemeral resource over its model; `open` returns the object and what `close` needs.
#[tonic::async_trait]
pub trait TypedEphemeralResource: Send + Sync {
    type Model: Model + Send + Sync;

    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Self::Model, _diags: &mut Diags) {}
    async fn open(&self, ctx: &Ctx, config: &Self::Model, diags: &mut Diags) -> Option<(Self::Model, Private)>;
    async fn close(&self, ctx: &Ctx, private: &Private, diags: &mut Diags);
}

#[tonic::async_trait]
impl<E: TypedEphemeralResource> EphemeralResource for E {
    fn type_name(&self) -> &'static str {
        TypedEphemeralResource::type_name(self)
    }
    fn schema(&self) -> Schema {
        TypedEphemeralResource::schema(self)
    }
    fn validate(&self, config: &Value, diags: &mut Diags) {
        if let Some(c) = decode::<E::Model>(config, diags) {
            TypedEphemeralResource::validate(self, &c, diags);
        }
    }
    async fn open(&self, ctx: &Ctx, config: &Value, diags: &mut Diags) -> Option<Opened> {
        let c = decode::<E::Model>(config, diags)?;
        let (state, private) = TypedEphemeralResource::open(self, ctx, &c, diags).await?;
        Some(Opened { state: state.to_value(), private })
    }
    async fn close(&self, ctx: &Ctx, private: &Private, diags: &mut Diags) {
        TypedEphemeralResource::close(self, ctx, private, diags).await;
    }
}
