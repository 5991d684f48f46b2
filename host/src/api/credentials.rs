//! `/v1/credentials` (1.12): rotation of the cluster credential its nodes
//! present.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use magnum_driver_abi::capability as op;
use serde_json::json;

use super::{
    certificates::{require_capability, start_rotation},
    clusters,
    context::Ctx,
    error::{ApiError, ApiResult},
};
use crate::app::AppState;
use crate::{
    db::{self},
    jobs::Operation,
    microversion::Version,
    status::Status,
};

pub async fn credential_rotate(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(cluster_ident): Path<String>,
) -> ApiResult<Response> {
    ctx.require_version(Version::new(1, 12), "PATCH")?;
    // Upstream's credential:rotate is project_member with no admin shortcut.
    ctx.authorize("credential:rotate")?;
    // A cluster with an application credential gets a new one too, made
    // with the caller's token before the transaction (Keystone is slow and
    // remote); the rows decide below, and a refused rotation releases it.
    let (c2, ident) = (ctx.clone(), cluster_ident.clone());
    let (cluster_uuid, cluster_name, has_app_cred) =
        db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
            let cluster = clusters::lookup(conn, &c2, &ident)?;
            if cluster.project_id != c2.project_id {
                return Err(ApiError::policy("credential:rotate"));
            }
            let has = crate::certs::app_credentials_of(
                conn,
                &cluster.uuid,
                crate::certs::APP_CREDENTIAL,
            )?;
            Ok((cluster.uuid, cluster.name, !has.is_empty()))
        })
        .await?;
    let app_cred = if has_app_cred {
        let rotation = chrono::Utc::now().timestamp_millis();
        clusters::create_app_credential(&state, &ctx, &cluster_uuid, &cluster_name, Some(rotation))
            .await?
    } else {
        None
    };
    let app_cred_row = match &app_cred {
        Some(c) => match state
            .certs
            .app_credential_row(&cluster_uuid, &c.cred, &c.secret)
        {
            Ok(row) => Some(row),
            Err(e) => {
                clusters::release_app_credential(&state, &cluster_uuid, &c.cred).await;
                return Err(e.into());
            }
        },
        None => None,
    };
    let st = state.clone();
    let result = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let mut cluster = clusters::lookup_for_update(conn, &ctx, &cluster_ident)?;
            if cluster.project_id != ctx.project_id {
                return Err(ApiError::policy("credential:rotate"));
            }
            let s = cluster.status;
            let in_update = matches!(s, Status::UpdateInProgress | Status::UpdateFailed);
            if !(s.update_allowed() || in_update) {
                return Err(ApiError::conflict(format!(
                    "Rotating the credential of a cluster when status is {s} is not supported."
                )));
            }
            require_capability(
                &st,
                &cluster,
                op::ROTATE_CREDENTIAL,
                "Rotating the cluster credential",
            )?;
            st.certs.rotate_credential(conn, &cluster.uuid)?;
            if let Some(row) = &app_cred_row {
                if row.cluster_uuid != cluster.uuid {
                    return Err(ApiError::conflict(
                        "The cluster changed while its credential was rotated; try again.",
                    ));
                }
                st.certs.replace_app_credential(conn, &cluster.uuid, row)?;
            }
            // The old credential stops working now. Nodes get the new one
            // through a stack update, queued even while another operation
            // runs: that one may have updated its stacks already.
            start_rotation(conn, &mut cluster, Operation::RotateCredential)?;
            Ok(cluster.uuid)
        })
    })
    .await;
    let uuid = match result {
        Ok(uuid) => uuid,
        Err(e) => {
            if let Some(c) = &app_cred {
                clusters::release_app_credential(&state, &cluster_uuid, &c.cred).await;
            }
            return Err(e);
        }
    };
    tracing::info!(cluster = %uuid, "credential rotation accepted");
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": uuid}))).into_response())
}
