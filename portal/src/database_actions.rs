//! The forms of a database's page: each is CSRF-checked (`Posted`), calls the API with the
//! user's token, and answers with the operation it started or the page again with what the
//! API said.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dbaas_client::{
    BackupAccepted, CreateBackup, CreateLease, CreateMaintenance, Credential, CredentialAccepted, Database,
    DatabaseAccepted, MaintenanceAccepted, Operation, RestoreRequest, RotationAccepted,
};
use serde::Deserialize;
use uuid::Uuid;

use super::api::ApiFailure;
use super::database_page::{render, Once};
use super::layout;
use super::session::{CsrfOnly, Posted, Session};
use super::Portal;

#[derive(Deserialize)]
pub struct AccessForm {
    access: String,
}

fn access_path(access: &str) -> Option<&'static str> {
    ["read", "write", "admin"].into_iter().find(|a| *a == access)
}

/// A form's choice as the API's enum (`read`, `vacuum`, `in_place` …), or the page again
/// with what was wrong.
pub(super) async fn choice<T: serde::de::DeserializeOwned>(
    session: &Session,
    id: Uuid,
    field: &str,
    value: &str,
    expected: &str,
) -> Result<T, Response> {
    match serde_json::from_value(serde_json::Value::String(value.to_string())) {
        Ok(t) => Ok(t),
        Err(_) => Err(render(
            session,
            id,
            Once::Error(format!("{field}: {value:?} is not {expected}")),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await),
    }
}

/// Where a started operation is watched.
pub(super) fn to_operation(op: &Operation) -> Response {
    layout::see_other(&format!("/portal/operations/{}", op.id))
}

pub(super) async fn failed(session: &Session, id: Uuid, e: ApiFailure) -> Response {
    let status = e.status();
    let msg = match e.field_errors() {
        [] => e.message(),
        errs => errs.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "),
    };
    render(session, id, Once::Error(msg), status).await
}

pub async fn reveal(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<AccessForm>,
) -> Response {
    let Some(access) = access_path(&form.access) else {
        return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, "unknown access");
    };
    match session.api.get::<Credential>(&format!("/v1/databases/{id}/credentials/{access}")).await {
        Ok(c) => {
            let once = Once::Password { access: access.into(), username: c.username, password: c.password };
            render(&session, id, once, StatusCode::OK).await
        }
        Err(e) => failed(&session, id, e).await,
    }
}

pub async fn rotate(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<AccessForm>,
) -> Response {
    let Some(access) = access_path(&form.access) else {
        return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, "unknown access");
    };
    match session
        .api
        .post::<_, RotationAccepted>(&format!("/v1/databases/{id}/credentials/{access}/rotate"), &serde_json::json!({}))
        .await
    {
        Ok(RotationAccepted { operation, .. }) => to_operation(&operation),
        Err(e) => failed(&session, id, e).await,
    }
}

#[derive(Deserialize)]
pub struct LeaseForm {
    access: String,
    #[serde(default)]
    ttl: String,
}

pub async fn create_lease(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<LeaseForm>,
) -> Response {
    let access = match choice(&session, id, "access", &form.access, "read, write or admin").await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let req = CreateLease { access, ttl: form.ttl.trim().to_string() };
    match session.api.post::<_, CredentialAccepted>(&format!("/v1/databases/{id}/leases"), &req).await {
        Ok(acc) => render(&session, id, Once::Lease(Box::new(acc.credential)), StatusCode::OK).await,
        Err(e) => failed(&session, id, e).await,
    }
}

pub async fn revoke_lease(
    State(_): State<Portal>,
    Path((id, lease)): Path<(Uuid, Uuid)>,
    Posted { session, .. }: Posted<CsrfOnly>,
) -> Response {
    match session.api.delete::<serde_json::Value>(&format!("/v1/databases/{id}/leases/{lease}")).await {
        Ok(_) => layout::see_other(&format!("/portal/databases/{id}#leases")),
        Err(e) => failed(&session, id, e).await,
    }
}

#[derive(Deserialize)]
pub struct MaintenanceForm {
    kind: String,
    #[serde(default)]
    tables: String,
}

pub async fn run_maintenance(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<MaintenanceForm>,
) -> Response {
    let kind = match choice(&session, id, "kind", &form.kind, "a maintenance kind").await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let tables = super::databases::split_list(&form.tables);
    let req = CreateMaintenance { kind, tables, options: Default::default() };
    match session.api.post::<_, MaintenanceAccepted>(&format!("/v1/databases/{id}/maintenance"), &req).await {
        Ok(acc) => to_operation(&acc.operation),
        Err(e) => failed(&session, id, e).await,
    }
}

pub async fn take_backup(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, .. }: Posted<CsrfOnly>,
) -> Response {
    match session
        .api
        .post::<_, BackupAccepted>(&format!("/v1/databases/{id}/backups"), &CreateBackup { store: None })
        .await
    {
        Ok(acc) => to_operation(&acc.operation),
        Err(e) => failed(&session, id, e).await,
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    database: Uuid,
}

pub async fn verify_backup(
    State(_): State<Portal>,
    Path(backup): Path<Uuid>,
    Posted { session, form }: Posted<VerifyForm>,
) -> Response {
    match session.api.post::<_, BackupAccepted>(&format!("/v1/backups/{backup}/verify"), &serde_json::json!({})).await {
        Ok(acc) => to_operation(&acc.operation),
        Err(e) => failed(&session, form.database, e).await,
    }
}

#[derive(Deserialize)]
pub struct RestoreForm {
    backup: Uuid,
    target: String,
    #[serde(default)]
    name: String,
}

pub async fn restore(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<RestoreForm>,
) -> Response {
    let target = match choice(&session, id, "target", &form.target, "new or in_place").await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let name = Some(form.name.trim().to_string()).filter(|n| !n.is_empty());
    let req = RestoreRequest { backup: Some(form.backup), time: None, target, name, retain_hours: None, grace: None };
    match session.api.post::<_, DatabaseAccepted>(&format!("/v1/databases/{id}/restore"), &req).await {
        Ok(DatabaseAccepted { operation: Some(op), .. }) => to_operation(&op),
        Ok(acc) => layout::see_other(&format!("/portal/databases/{}", acc.database.id)),
        Err(e) => failed(&session, id, e).await,
    }
}

#[derive(Deserialize)]
pub struct UndoForm {}

/// Swaps back the database an in-place restore kept (`POST /v1/databases/{id}/restore/undo`).
pub async fn undo_restore(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form: UndoForm {} }: Posted<UndoForm>,
) -> Response {
    let req = dbaas_client::UndoRestore::default();
    match session.api.post::<_, DatabaseAccepted>(&format!("/v1/databases/{id}/restore/undo"), &req).await {
        Ok(DatabaseAccepted { operation: Some(op), .. }) => to_operation(&op),
        Ok(acc) => layout::see_other(&format!("/portal/databases/{}", acc.database.id)),
        Err(e) => failed(&session, id, e).await,
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<DeleteForm>,
) -> Response {
    let db: Database = match session.api.get(&format!("/v1/databases/{id}")).await {
        Ok(d) => d,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    if form.confirm.trim() != db.name {
        return render(
            &session,
            id,
            Once::Error("Not deleted: type the database's name exactly to confirm.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match session.api.delete::<DatabaseAccepted>(&format!("/v1/databases/{id}")).await {
        Ok(DatabaseAccepted { operation: Some(op), .. }) => to_operation(&op),
        Ok(_) => layout::see_other("/portal/databases"),
        Err(e) => failed(&session, id, e).await,
    }
}
