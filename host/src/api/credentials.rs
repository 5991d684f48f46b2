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
    common::{self},
    context::Ctx,
    error::{ApiError, ApiResult},
    AppState,
};
use crate::{
    db::{self},
    jobs::Operation,
    microversion::Version,
};

pub async fn credential_rotate(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(cluster_ident): Path<String>,
) -> ApiResult<Response> {
    ctx.require_version(Version::new(1, 12), "PATCH")?;
    // Upstream's credential:rotate is project_member with no admin shortcut.
    ctx.require_member("credential:rotate")?;
    let st = state.clone();
    let uuid = db::run_blocking(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let mut cluster = clusters::lookup_for_update(conn, &ctx, &cluster_ident)?;
            if cluster.project_id != ctx.project_id {
                return Err(ApiError::policy("credential:rotate"));
            }
            let s = cluster.status.clone();
            let in_update = s == "UPDATE_IN_PROGRESS" || s == "UPDATE_FAILED";
            if !(common::UPDATE_ALLOWED.contains(&s.as_str()) || in_update) {
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
            // The old credential stops working now. Nodes get the new one
            // through a stack update, queued even while another operation
            // runs: that one may have updated its stacks already.
            start_rotation(conn, &mut cluster, Operation::RotateCredential)?;
            Ok(cluster.uuid)
        })
    })
    .await?;
    tracing::info!(cluster = %uuid, "credential rotation accepted");
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": uuid}))).into_response())
}
