//! One type per operation kind, in the spirit of crates.io's `BackgroundJob`: a typed serde
//! payload (the `params` column), `run` against the target, and `on_outcome`, which applies
//! the effect on the resource in the same state transaction that ends the operation.
//!
//! The application declares each kind ([`Operation`]) and the closed set of them
//! ([`JobSet`], usually an enum with one variant per kind). Decoding a stored operation must
//! be strict: an unknown kind or a payload with missing, mistyped or unknown fields is an
//! error (`unknown_kind`, `bad_params`), never a default.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;

use crate::context::OpContext;
use crate::error::OpError;
use crate::host::Host;
use crate::queue::{OperationRow, Payload};

/// One kind of operation of the application [`Operation::Host`].
pub trait Operation: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    /// The application whose operation this is.
    type Host: Host;
    const KIND: <Self::Host as Host>::Kind;

    /// Does the work; every step idempotent (a later attempt may repeat it).
    fn run(&self, ctx: &OpContext<Self::Host>) -> impl Future<Output = Result<(), OpError>> + Send;

    /// The resource's change when the operation ends (`ok`: succeeded), inside the transaction
    /// that records the end.
    fn on_outcome(
        &self,
        tx: &mut PgConnection,
        op: &OperationRow<<Self::Host as Host>::Kind>,
        ok: bool,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Removes what an attempt that did not succeed may have left on the target; `last` says
    /// no attempt follows. Nothing by default.
    fn cleanup(&self, _ctx: &OpContext<Self::Host>, _last: bool) -> impl Future<Output = Result<(), OpError>> + Send {
        async { Ok(()) }
    }
}

/// Every operation can be enqueued as itself.
impl<O: Operation> Payload<<O::Host as Host>::Kind> for O {
    fn kind(&self) -> <O::Host as Host>::Kind {
        O::KIND
    }

    fn params(&self) -> serde_json::Value {
        // The payloads are plain structs of strings, numbers and ids, which always encode.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Every operation kind of the application `S`, with its typed payload: what workers decode,
/// run and end.
pub trait JobSet<S: Host>: Payload<S::Kind> + Clone + Send + Sync + Sized + 'static {
    /// Decodes a stored operation: its kind column and params.
    fn decode(kind: S::Kind, params: &serde_json::Value) -> Result<Self, OpError>;

    fn run(&self, ctx: &OpContext<S>) -> impl Future<Output = Result<(), OpError>> + Send;

    /// The resource's change when the operation ends, in the transaction that records the end.
    fn on_outcome(
        &self,
        tx: &mut PgConnection,
        op: &OperationRow<S::Kind>,
        ok: bool,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    fn cleanup(&self, ctx: &OpContext<S>, last: bool) -> impl Future<Output = Result<(), OpError>> + Send;
}
