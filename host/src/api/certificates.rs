//! `/v1/certificates` (upstream §1.11, §6): a cluster's CAs, CSR signing
//! and CA rotation.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use magnum_driver_abi::capability as op;
use serde_json::{json, Value};

use super::{
    clusters,
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{Fields, JsonBody},
};
use crate::app::AppState;
use crate::{
    certs,
    db::{
        self,
        models::{Cluster, ClusterTemplate},
        DbConnection,
    },
    jobs::{self, Operation},
    status::Status,
};

const CA_TYPES: &[(&str, &str)] = &[
    ("kubernetes", certs::KUBERNETES),
    ("etcd", certs::ETCD),
    ("front_proxy", certs::FRONT_PROXY),
    ("front-proxy", certs::FRONT_PROXY),
];

fn ca_kind(asked: Option<&str>) -> ApiResult<&'static str> {
    let asked = asked.unwrap_or("kubernetes");
    CA_TYPES
        .iter()
        .find(|(name, _)| *name == asked)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "ca_cert_type",
                &Value::String(asked.to_owned()),
                "Value should be one of: kubernetes, etcd, front_proxy, front-proxy",
            )
        })
}

/// The cluster's template, refusing TLS-disabled clusters (they have no CA).
fn tls_template(conn: &mut DbConnection, c: &Cluster, what: &str) -> ApiResult<ClusterTemplate> {
    let t = ClusterTemplate::find_by_uuid(conn, &c.cluster_template_id)?;
    if t.tls_disabled {
        return Err(ApiError::bad_request(format!(
            "{what} on a non-TLS cluster is not supported"
        )));
    }
    Ok(t)
}

fn no_ca_yet(cluster: &Cluster) -> ApiError {
    ApiError::conflict(format!(
        "Cluster {} has no certificate authority yet: the conductor generates it when it starts creating the cluster (status {}).",
        cluster.uuid, cluster.status
    ))
}

pub async fn certificate_get(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(cluster_ident): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    if ctx.cluster.is_none() {
        ctx.authorize("certificate:get")?;
    }
    let query = Query::parse(raw.as_deref());
    let kind = ca_kind(query.get("ca_cert_type"))?;
    let authority = state.certs.clone();
    let (cluster, pem) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        ctx.require_cluster_user("certificate:get", &cluster)?;
        tls_template(conn, &cluster, "Showing the CA certificate")?;
        let pem = authority.ca_pem(conn, &cluster.uuid, kind)?;
        Ok((cluster, pem))
    })
    .await?;
    let pem = pem.ok_or_else(|| no_ca_yet(&cluster))?;
    let base = common::base_url(&headers);
    Ok(Json(json!({
        "cluster_uuid": cluster.uuid,
        "pem": pem,
        "links": common::links(&base, "certificates", &cluster.uuid),
    })))
}

pub async fn certificate_sign(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if ctx.cluster.is_none() {
        ctx.authorize("certificate:create")?;
    }
    let f = Fields::new(
        "certificate",
        body,
        &["cluster_uuid", "bay_uuid", "csr", "ca_cert_type"],
    )?;
    let cluster_ident = f
        .string("cluster_uuid", 255)?
        .or(f.string("bay_uuid", 255)?)
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: cluster_uuid"))?;
    let csr = f.required_string("csr", 64 * 1024)?;
    let kind = ca_kind(f.string("ca_cert_type", 32)?.as_deref())?;
    let authority = state.certs.clone();
    let (cluster, pem) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        // Upstream: an unknown cluster in the body is a 400, not a 404.
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident).map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::bad_request(e.detail)
            } else {
                e
            }
        })?;
        ctx.require_cluster_user("certificate:create", &cluster)?;
        tls_template(conn, &cluster, "Signing a certificate")?;
        let pem = authority.sign(conn, &cluster.uuid, kind, &csr)?;
        Ok((cluster, (pem, csr)))
    })
    .await?;
    let (pem, csr) = pem;
    let pem = pem.ok_or_else(|| no_ca_yet(&cluster))?;
    let base = common::base_url(&headers);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "cluster_uuid": cluster.uuid,
            "csr": csr,
            "pem": pem,
            "links": common::links(&base, "certificates", &cluster.uuid),
        })),
    )
        .into_response())
}

/// A rotation the cluster's driver must take part in: refused up front when
/// it does not declare the capability.
pub(super) fn require_capability(
    state: &AppState,
    cluster: &Cluster,
    capability: &str,
    what: &str,
) -> ApiResult<()> {
    // A driver that is not enabled is the same 409 every operation gives.
    let driver = clusters::driver_of(state, cluster)?;
    if driver.info.supports(capability) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} is not supported by driver {} of cluster {}.",
            cluster.driver, cluster.uuid
        )))
    }
}

/// Marks the cluster `UPDATE_IN_PROGRESS` and queues the job that updates
/// its stacks with what the rotation changed.
pub(super) fn start_rotation(
    conn: &mut DbConnection,
    cluster: &mut Cluster,
    job: Operation,
) -> ApiResult<()> {
    cluster.status = Status::UpdateInProgress;
    cluster.status_reason = None;
    cluster.update(conn)?;
    jobs::enqueue(conn, &cluster.uuid, &job)?;
    Ok(())
}

pub async fn certificate_rotate(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(cluster_ident): Path<String>,
) -> ApiResult<Response> {
    ctx.authorize("certificate:rotate_ca")?;
    let st = state.clone();
    // Generating the new CAs takes a while (RSA keys): checks first, then
    // the keys outside any transaction, then the switch in one.
    let cluster = db::run_blocking(&state.pool, move |conn| -> ApiResult<Cluster> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        tls_template(conn, &cluster, "Rotating the CA certificate")?;
        if !cluster.status.update_allowed() {
            return Err(ApiError::conflict(format!(
                "Rotating the CA of a cluster when status is {} is not supported.",
                cluster.status
            )));
        }
        require_capability(
            &st,
            &cluster,
            op::ROTATE_CA_CERTIFICATE,
            "Rotating the CA certificate",
        )?;
        if st
            .certs
            .ca_pem(conn, &cluster.uuid, certs::KUBERNETES)?
            .is_none()
        {
            return Err(no_ca_yet(&cluster));
        }
        Ok(cluster)
    })
    .await?;
    let authority = state.certs.clone();
    let uuid = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
        let name = if cluster.name.is_empty() {
            cluster.uuid.clone()
        } else {
            cluster.name.clone()
        };
        authority.rotate_cas(conn, &cluster.uuid, &name)?;
        db::write_transaction(conn, |conn| {
            db::lock_row(conn, "cluster", &cluster.uuid)?;
            let mut fresh = Cluster::find_by_uuid(conn, &cluster.uuid)?;
            if fresh.status.is_delete() {
                // Deleted meanwhile: nothing to carry the new CAs to.
                return Ok(fresh.uuid);
            }
            // Another request may have been accepted meanwhile; its job may
            // already have updated the stacks, so this one is queued after
            // it all the same (the last accepted request wins).
            start_rotation(conn, &mut fresh, Operation::RotateCa)?;
            Ok(fresh.uuid)
        })
    })
    .await?;
    tracing::info!(cluster = %uuid, "CA rotation accepted");
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": uuid}))).into_response())
}
