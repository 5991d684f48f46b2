//! `/v1/quotas` (upstream §1.11, §7): admin-only limits on clusters per project.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use diesel::OptionalExtension;
use serde_json::{json, Value};

use super::{
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{Fields, JsonBody},
};
use crate::app::AppState;
use crate::db::{self, models::Quota};

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
    ctx.authorize("quota:get_all")?;
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
    ctx.authorize("quota:get")?;
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
    ctx.authorize("quota:create")?;
    let f = Fields::new("quota", body, &["project_id", "resource", "hard_limit"])?;
    let project_id = f.required_string("project_id", 255)?;
    let resource = f
        .string("resource", 255)?
        .unwrap_or_else(|| "Cluster".to_owned());
    check_resource(&resource)?;
    let hard_limit = f.int("hard_limit", 0, i32::MAX.into())?.unwrap_or(1) as i32;
    let q = db::run_write(&state.pool, move |conn| -> ApiResult<_> {
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
    ctx.authorize("quota:update")?;
    check_resource(&resource)?;
    let f = Fields::new("quota", body, &["project_id", "resource", "hard_limit"])?;
    let hard_limit = f
        .int("hard_limit", 0, i32::MAX.into())?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: hard_limit"))?
        as i32;
    let q = db::run_write(&state.pool, move |conn| -> ApiResult<_> {
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
    ctx.authorize("quota:delete")?;
    check_resource(&resource)?;
    db::run_write(&state.pool, move |conn| -> ApiResult<_> {
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
