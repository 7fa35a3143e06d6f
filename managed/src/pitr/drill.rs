//! Point-in-time drills: the archive's end restored into a scratch cluster on the instance's
//! host, started, and its databases checked against the state database; the restore time
//! and the recovery point reached are recorded (`pitr_drills`), shown with the instance's
//! recovery window and exported as metrics, so a broken archive is found by a drill, not by
//! the restore that needed it.

use std::time::Instant;

use dbaas_client::{ArchivingState, OperationKind, PitrDrill as DrillModel};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use dbaas_domain::catalog::conn::{InstanceTarget, MAINTENANCE_DB};
use dbaas_domain::operation::{OpContext, OperationRow};
use dbaas_domain::state::AppState;
use dbaas_engine::{OpError, Operation};

use super::scratch::{self, Target};
use crate::SERVICE_ADMIN;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrDrill {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

struct Outcome {
    restore_ms: Option<i64>,
    recovery_point: Option<chrono::DateTime<chrono::Utc>>,
    result: Result<String, OpError>,
}

async fn drill(ctx: &OpContext) -> Outcome {
    let failed = |e: OpError| Outcome { restore_ms: None, recovery_point: None, result: Err(e) };
    let (inst, live) = match crate::server::load(ctx).await {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    if inst.archiving != ArchivingState::On {
        return failed(OpError::permanent("not_archiving", format!("instance {} archives no WAL", inst.name)));
    }
    let sc = match scratch::open(ctx, &inst, &live, ctx.op.id, Target::Latest, &[SERVICE_ADMIN]).await {
        Ok(sc) => sc,
        Err(e) => return failed(e),
    };
    let restore_ms = Some((sc.restored_ms + sc.recovered_ms) as i64);
    let checking = Instant::now();
    let mut server = inst.clone();
    server.port = i32::from(sc.node.port);
    let checked = async {
        let mut conn = server.target(&ctx.state.key)?.connect(MAINTENANCE_DB).await?;
        let present: Vec<String> =
            sqlx::query_scalar("SELECT datname::text FROM pg_catalog.pg_database").fetch_all(&mut conn).await?;
        // Every database the state knows on this instance that existed before the recovery point.
        let expected: Vec<String> = sqlx::query_scalar(
            "SELECT physical_name FROM databases WHERE instance_id = $1 AND status NOT IN ('deleted', 'provisioning') \
             AND created_at < coalesce($2, now()) ORDER BY physical_name",
        )
        .bind(inst.id)
        .bind(sc.recovery_point)
        .fetch_all(&ctx.state.db)
        .await?;
        let missing: Vec<&String> = expected.iter().filter(|d| !present.contains(d)).collect();
        if !missing.is_empty() {
            return Err(OpError::permanent(
                "drill_failed",
                format!(
                    "the recovered cluster lacks database(s) {}",
                    missing.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(format!("{} database(s) present, checked in {} ms", expected.len(), checking.elapsed().as_millis()))
    }
    .await;
    scratch::close(ctx, &sc.node).await;
    Outcome { restore_ms, recovery_point: sc.recovery_point, result: checked }
}

impl Operation for PitrDrill {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::PitrDrill;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let o = drill(ctx).await;
        let (passed, message) = match &o.result {
            Ok(m) => (true, m.clone()),
            Err(e) => (false, e.message.clone()),
        };
        {
            sqlx::query(
                "INSERT INTO pitr_drills (id, instance_id, operation_id, passed, restore_ms, recovery_point, message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::new_v4())
            .bind(ctx.op.target_id)
            .bind(ctx.op.id)
            .bind(passed)
            .bind(o.restore_ms)
            .bind(o.recovery_point)
            .bind(&message)
            .execute(&ctx.state.db)
            .await?;
        }
        let point = o.recovery_point.map(|t| t.to_rfc3339()).unwrap_or_else(|| "none".into());
        ctx.log(
            if passed { "info" } else { "error" },
            &format!(
                "drill {}: restore {} ms, recovery point {point}: {message}",
                if passed { "passed" } else { "failed" },
                o.restore_ms.unwrap_or(0)
            ),
        )
        .await;
        o.result.map(|_| ())
    }
    async fn on_outcome(&self, _: &mut PgConnection, _: &OperationRow, _: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    operation_id: Uuid,
    passed: bool,
    restore_ms: Option<i64>,
    recovery_point: Option<chrono::DateTime<chrono::Utc>>,
    message: Option<String>,
    finished_at: chrono::DateTime<chrono::Utc>,
}

/// The instance's newest drill.
pub async fn last(db: &sqlx::PgPool, instance: Uuid) -> Result<Option<DrillModel>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT operation_id, passed, restore_ms, recovery_point, message, finished_at FROM pitr_drills \
         WHERE instance_id = $1 ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(instance)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| DrillModel {
        operation_id: r.operation_id,
        passed: r.passed,
        restore_ms: r.restore_ms,
        recovery_point: r.recovery_point,
        message: r.message,
        finished_at: r.finished_at,
    }))
}
