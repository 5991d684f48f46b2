//! `/v1/federations` (upstream §1.11): stored, with nothing to orchestrate.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};

use super::{
    clusters,
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{apply_patch, patch_ops, Fields, JsonBody},
};
use crate::app::AppState;
use crate::db::{
    self,
    models::{Federation, NewFederation},
    DbConnection,
};

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
    ctx.authorize("federation:get_all")?;
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
    ctx.authorize("federation:get")?;
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
    ctx.authorize("federation:create")?;
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
    let created = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
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
    ctx.authorize("federation:update")?;
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
    let uuid = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
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
    ctx.authorize("federation:delete")?;
    db::run_write(&state.pool, move |conn| -> ApiResult<()> {
        let fed = federation_lookup(conn, &ctx, &ident)?;
        Ok(Federation::delete(conn, &fed.uuid)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
