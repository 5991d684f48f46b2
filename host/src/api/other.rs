//! The smaller resources: quotas, stats, mservices, federations,
//! certificates and credentials (upstream §1.11, §7).

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use diesel::OptionalExtension;
use magnum_driver_abi::capability as op;
use serde_json::{json, Map, Value};

use super::{
    clusters,
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{apply_patch, patch_ops, Fields, JsonBody},
    AppState,
};
use crate::{
    certs,
    db::{
        self,
        models::{
            Cluster, ClusterTemplate, Federation, MagnumService, NewFederation, NodeGroup, Quota,
        },
        DbConnection,
    },
    jobs::{self, Operation},
    microversion::Version,
};

// ---------------------------------------------------------------- quotas

const RESOURCES: &[&str] = &["Cluster"];

fn quota_view(q: &Quota) -> Value {
    json!({
        "id": q.id,
        "project_id": q.project_id,
        "resource": q.resource,
        "hard_limit": q.hard_limit,
        "created_at": common::time(&q.created_at),
        "updated_at": common::opt_time(&q.updated_at),
    })
}

fn check_resource(resource: &str) -> ApiResult<()> {
    if RESOURCES.contains(&resource) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "resource",
            &Value::String(resource.to_owned()),
            "Value should be one of: Cluster",
        ))
    }
}

pub async fn quota_list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("quota:get_all")?;
    let query = Query::parse(raw.as_deref());
    let all = query.bool("all_tenants")?.unwrap_or(false);
    let limit = query.page()?.limit;
    let marker = match query.get("marker") {
        None => None,
        Some(m) => Some(m.parse::<i32>().map_err(|_| {
            ApiError::invalid_field(
                "marker",
                &Value::String(m.to_owned()),
                "Value should be a quota id",
            )
        })?),
    };
    let rows = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let project = (!all).then_some(ctx.project_id.as_str());
        Ok(Quota::list(conn, project, limit, marker)?)
    })
    .await?;
    Ok(Json(
        json!({"quotas": rows.iter().map(quota_view).collect::<Vec<_>>()}),
    ))
}

pub async fn quota_get(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_reader("quota:get")?;
    if !ctx.is_admin() && ctx.project_id != project_id {
        return Err(ApiError::policy("quota:get"));
    }
    check_resource(&resource)?;
    let default = state.settings.max_clusters_per_project;
    let row = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        Ok(Quota::find(conn, &project_id, &resource).optional()?.map(|q| quota_view(&q)).unwrap_or_else(
            || json!({"project_id": project_id, "resource": resource, "hard_limit": default, "id": null,
                      "created_at": null, "updated_at": null}),
        ))
    })
    .await?;
    Ok(Json(row))
}

pub async fn quota_create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_admin("quota:create")?;
    let f = Fields::new("quota", body, &["project_id", "resource", "hard_limit"])?;
    let project_id = f.required_string("project_id", 255)?;
    let resource = f
        .string("resource", 255)?
        .unwrap_or_else(|| "Cluster".to_owned());
    check_resource(&resource)?;
    let hard_limit = f.int("hard_limit", 0, i32::MAX.into())?.unwrap_or(1) as i32;
    let q = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        Quota::insert(conn, &project_id, &resource, hard_limit).map_err(|e| {
            if common::is_unique_violation(&e) {
                ApiError::conflict(format!(
                    "Quota for project {project_id} already exists for resource {resource}."
                ))
            } else {
                e.into()
            }
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(quota_view(&q))).into_response())
}

/// Upstream's quota PATCH takes a Quota object, not JSON-patch.
pub async fn quota_update(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_admin("quota:update")?;
    check_resource(&resource)?;
    let f = Fields::new("quota", body, &["project_id", "resource", "hard_limit"])?;
    let hard_limit = f
        .int("hard_limit", 0, i32::MAX.into())?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: hard_limit"))?
        as i32;
    let q = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        Quota::find(conn, &project_id, &resource).map_err(|e| match e {
            diesel::result::Error::NotFound => ApiError::not_found(format!(
                "Quota could not be found for project {project_id} and resource {resource}."
            )),
            e => e.into(),
        })?;
        Ok(Quota::upsert(conn, &project_id, &resource, hard_limit)?)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(quota_view(&q))).into_response())
}

pub async fn quota_delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.require_admin("quota:delete")?;
    check_resource(&resource)?;
    db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        Quota::delete(conn, &project_id, &resource).map_err(|e| match e {
            diesel::result::Error::NotFound => ApiError::not_found(format!(
                "Quota could not be found for project {project_id} and resource {resource}."
            )),
            e => e.into(),
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- stats

pub async fn stats(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.require_reader("stats:get_all")?;
    let query = Query::parse(raw.as_deref());
    if let Some(kind) = query.get("type") {
        if kind != "cluster" {
            return Err(ApiError::bad_request(
                "Invalid stats type. Allowed values are 'cluster'",
            ));
        }
    }
    let asked = query.get("project_id").map(str::to_owned);
    let project = match (ctx.is_admin(), asked) {
        (true, asked) => asked,
        (false, Some(p)) if p != ctx.project_id => return Err(ApiError::policy("stats:get_all")),
        (false, _) => Some(ctx.project_id.clone()),
    };
    let (clusters, nodes) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let clusters = match &project {
            Some(p) => Cluster::count_by_project(conn, p)?,
            None => count_all_clusters(conn)?,
        };
        Ok((clusters, NodeGroup::node_total(conn, project.as_deref())?))
    })
    .await?;
    Ok(Json(json!({"clusters": clusters, "nodes": nodes})))
}

fn count_all_clusters(conn: &mut DbConnection) -> diesel::QueryResult<i64> {
    use crate::db::schema::cluster;
    use diesel::prelude::*;
    cluster::table.count().get_result(conn)
}

// ---------------------------------------------------------------- mservices

pub async fn mservices(State(state): State<Arc<AppState>>, ctx: Ctx) -> ApiResult<Json<Value>> {
    ctx.require_admin("magnum-service:get_all")?;
    let down_after = state.settings.service_down_time;
    let rows = db::run_blocking(&state.pool, |conn| -> ApiResult<_> {
        Ok(MagnumService::list(conn)?)
    })
    .await?;
    let now = db::models::now();
    let items: Vec<Value> = rows
        .iter()
        .map(|s| {
            let seen = s.last_seen_up.or(s.updated_at).unwrap_or(s.created_at);
            let up = !s.forced_down && (now - seen).num_seconds().abs() <= down_after;
            json!({
                "id": s.id,
                "host": s.host,
                "binary": s.binary,
                "state": if up { "up" } else { "down" },
                "disabled": s.disabled,
                "disabled_reason": s.disabled_reason,
                "report_count": s.report_count,
                "last_seen_up": common::opt_time(&s.last_seen_up),
                "forced_down": s.forced_down,
                "created_at": common::time(&s.created_at),
                "updated_at": common::opt_time(&s.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({"mservices": items})))
}

// ---------------------------------------------------------------- federations

fn federation_view(f: &Federation, base: &str) -> Value {
    json!({
        "uuid": f.uuid,
        "name": f.name,
        "project_id": f.project_id,
        "hostcluster_id": f.hostcluster_id,
        "member_ids": common::json_of(&f.member_ids),
        "status": f.status,
        "status_reason": f.status_reason,
        "properties": common::json_of(&f.properties),
        "links": common::links(base, "federations", &f.uuid),
        "created_at": common::time(&f.created_at),
        "updated_at": common::opt_time(&f.updated_at),
    })
}

fn federation_lookup(conn: &mut DbConnection, ctx: &Ctx, ident: &str) -> ApiResult<Federation> {
    common::by_uuid_or_name(
        conn,
        ident,
        ("Federation", "federation"),
        |conn| Federation::find_by_uuid(conn, ident),
        |f| ctx.can_see(&f.project_id),
        |conn| Federation::find_by_name(conn, ctx.scope(), ident),
    )
}

/// Member and host clusters must exist and be visible to the caller.
fn check_members(conn: &mut DbConnection, ctx: &Ctx, ids: &[String]) -> ApiResult<Vec<String>> {
    ids.iter()
        .map(|id| {
            clusters::lookup(conn, ctx, id)
                .map(|c| c.uuid)
                .map_err(|_| {
                    ApiError::bad_request(format!("Member cluster {id} could not be found."))
                })
        })
        .collect()
}

fn string_list(name: &str, v: Option<&Value>) -> ApiResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::invalid_field(name, i, "Value should be a list of cluster uuids")
                })
            })
            .collect(),
        Some(other) => Err(ApiError::invalid_field(
            name,
            other,
            "Value should be a list",
        )),
    }
}

fn properties(v: Option<&Value>) -> ApiResult<Map<String, Value>> {
    let props = match v {
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "properties",
                other,
                "Value should be a dictionary",
            ))
        }
        None => Map::new(),
    };
    if props
        .get("dns-zone")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "Federation properties must include a dns-zone.",
        ));
    }
    Ok(props)
}

pub async fn federation_list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    federation_list_inner(state, ctx, headers, raw, "federations").await
}

pub async fn federation_detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    federation_list_inner(state, ctx, headers, raw, "federations/detail").await
}

async fn federation_list_inner(
    state: Arc<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    raw: Option<String>,
    path: &str,
) -> ApiResult<Json<Value>> {
    ctx.require_reader("federation:get_all")?;
    let page = Query::parse(raw.as_deref()).page()?;
    let p = page.clone();
    let rows = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        if let Some(m) = &p.marker {
            federation_lookup(conn, &ctx, m)?;
        }
        Ok(Federation::list(conn, ctx.scope(), &p)?)
    })
    .await?;
    let base = common::base_url(&headers);
    let last = rows.last().map(|f| f.uuid.clone());
    let items = rows.iter().map(|f| federation_view(f, &base)).collect();
    Ok(Json(common::collection(
        "federations",
        items,
        last.as_deref(),
        &page,
        &base,
        path,
    )))
}

pub async fn federation_get(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.require_reader("federation:get")?;
    let f = db::run_blocking(&state.pool, move |conn| {
        federation_lookup(conn, &ctx, &ident)
    })
    .await?;
    Ok(Json(federation_view(&f, &common::base_url(&headers))))
}

/// Upstream accepts federations and never persists them (no backend); here
/// the record is kept, and since there is nothing to orchestrate it is
/// complete at once.
pub async fn federation_create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_member("federation:create")?;
    let f = Fields::new(
        "federation",
        body,
        &["uuid", "name", "hostcluster_id", "member_ids", "properties"],
    )?;
    let name = match f.string("name", 242)? {
        Some(n) => n,
        None => common::generated_name("federation"),
    };
    let host = f.required_string("hostcluster_id", 255)?;
    let members = string_list("member_ids", f.raw("member_ids"))?;
    let props = properties(f.raw("properties"))?;
    let uuid = match f.string("uuid", 36)? {
        Some(u) if common::is_uuid_like(&u) => u,
        Some(u) => {
            return Err(ApiError::invalid_field(
                "uuid",
                &Value::String(u),
                "Value should be a UUID",
            ))
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let created = db::run_blocking(&state.pool, move |conn| -> ApiResult<String> {
        let host = clusters::lookup(conn, &ctx, &host).map_err(|_| {
            ApiError::bad_request(format!("Host cluster {host} could not be found."))
        })?;
        let members = check_members(conn, &ctx, &members)?;
        let mut new = NewFederation::new(&ctx.project_id, &name);
        new.uuid = uuid;
        new.hostcluster_id = Some(host.uuid);
        new.member_ids = serde_json::to_string(&members).unwrap_or_else(|_| "[]".to_owned());
        new.properties = Value::Object(props).to_string();
        new.status = Some("CREATE_COMPLETE".to_owned());
        Federation::insert(conn, &new).map(|f| f.uuid).map_err(|e| {
            if common::is_unique_violation(&e) {
                ApiError::conflict("A federation with this UUID already exists.")
            } else {
                e.into()
            }
        })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": created}))).into_response())
}

pub async fn federation_patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_member("federation:update")?;
    let mut ops = patch_ops(
        body,
        &[
            "/uuid",
            "/id",
            "/links",
            "/created_at",
            "/updated_at",
            "/project_id",
        ],
    )?;
    let uuid = db::run_blocking(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let mut fed = federation_lookup(conn, &ctx, &ident)?;
            let current: Vec<String> = serde_json::from_str(&fed.member_ids).unwrap_or_default();
            // Upstream rewrites add/remove of one member into a replace of the list.
            for op in ops.iter_mut() {
                if op.path == ["member_ids"] && op.op != "replace" {
                    let id = op.value.as_ref().and_then(Value::as_str).map(str::to_owned);
                    let mut list = current.clone();
                    match (op.op.as_str(), id) {
                        ("add", Some(id)) => list.push(id),
                        ("remove", Some(id)) => list.retain(|m| *m != id),
                        _ => return Err(ApiError::bad_request("add/remove on /member_ids needs a cluster uuid as value.")),
                    }
                    op.op = "replace".to_owned();
                    op.value = Some(json!(list));
                }
            }
            let before = json!({"member_ids": current, "properties": common::json_of(&fed.properties), "name": fed.name, "hostcluster_id": fed.hostcluster_id});
            let before = before.as_object().cloned().unwrap_or_default();
            let mut doc = before.clone();
            apply_patch(&mut doc, &ops, &[])?;
            if let Some(bad) = doc.keys().find(|k| doc.get(*k) != before.get(*k) && !["member_ids", "properties"].contains(&k.as_str())) {
                return Err(ApiError::bad_request(format!("'/{bad}' can not be updated; only member_ids and properties can.")));
            }
            let members = check_members(conn, &ctx, &string_list("member_ids", doc.get("member_ids"))?)?;
            let props = properties(doc.get("properties"))?;
            fed.member_ids = serde_json::to_string(&members).unwrap_or_else(|_| "[]".to_owned());
            fed.properties = Value::Object(props).to_string();
            fed.status = Some("UPDATE_COMPLETE".to_owned());
            Ok(fed.update(conn)?.uuid)
        })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": uuid}))).into_response())
}

pub async fn federation_delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_member("federation:delete")?;
    db::run_blocking(&state.pool, move |conn| -> ApiResult<()> {
        let fed = federation_lookup(conn, &ctx, &ident)?;
        Ok(Federation::delete(conn, &fed.uuid)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- certificates

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
        ctx.require_reader("certificate:get")?;
    }
    let query = Query::parse(raw.as_deref());
    let kind = ca_kind(query.get("ca_cert_type"))?;
    let authority = state.certs.clone();
    let (cluster, pem) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        ctx.require_cluster_user("certificate:get", &cluster, false)?;
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
        ctx.require_member("certificate:create")?;
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
        ctx.require_cluster_user("certificate:create", &cluster, true)?;
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
fn require_capability(
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
fn start_rotation(conn: &mut DbConnection, cluster: &mut Cluster, job: Operation) -> ApiResult<()> {
    cluster.status = "UPDATE_IN_PROGRESS".to_owned();
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
    ctx.require_member("certificate:rotate_ca")?;
    let st = state.clone();
    // Generating the new CAs takes a while (RSA keys): checks first, then
    // the keys outside any transaction, then the switch in one.
    let cluster = db::run_blocking(&state.pool, move |conn| -> ApiResult<Cluster> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        tls_template(conn, &cluster, "Rotating the CA certificate")?;
        if !common::UPDATE_ALLOWED.contains(&cluster.status.as_str()) {
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
    let uuid = db::run_blocking(&state.pool, move |conn| -> ApiResult<String> {
        let name = if cluster.name.is_empty() {
            cluster.uuid.clone()
        } else {
            cluster.name.clone()
        };
        authority.rotate_cas(conn, &cluster.uuid, &name)?;
        db::write_transaction(conn, |conn| {
            db::lock_row(conn, "cluster", &cluster.uuid)?;
            let mut fresh = Cluster::find_by_uuid(conn, &cluster.uuid)?;
            if fresh.status.starts_with("DELETE") {
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
