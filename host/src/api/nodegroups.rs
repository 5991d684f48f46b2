//! `/v1/clusters/{cluster}/nodegroups` (upstream §1.10), from 1.9.
//!
//! Unlike upstream, a nodegroup can be created before the cluster has an
//! API address: the row exists at once (CREATE_IN_PROGRESS) and the
//! conductor builds it when the cluster is ready.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use magnum_driver_abi::capability as op;
use serde_json::{json, Map, Value};

use super::{
    clusters,
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{apply_patch, patch_ops, Fields, JsonBody},
    templates,
};
use crate::app::AppState;
use crate::{
    db::{
        self,
        models::{Cluster, NewNodeGroup, NodeGroup},
        DbConnection,
    },
    jobs::{self, Operation},
    microversion::Version,
    status::Status,
};

const NG_VERSION: Version = Version::new(1, 9);

const CREATE_FIELDS: &[&str] = &[
    "name",
    "docker_volume_size",
    "labels",
    "merge_labels",
    "flavor_id",
    "image_id",
    "node_count",
    "role",
    "min_node_count",
    "max_node_count",
    "node_labels",
    "node_taints",
];

const PATCHABLE: &[&str] = &[
    "min_node_count",
    "max_node_count",
    "node_labels",
    "node_taints",
];

fn base_path(cluster: &str) -> String {
    format!("clusters/{cluster}/nodegroups")
}

pub fn summary(g: &NodeGroup) -> Value {
    json!({
        "uuid": g.uuid,
        "name": g.name,
        "flavor_id": g.flavor_id,
        "node_count": g.node_count,
        "role": g.role,
        "is_default": g.is_default,
        "image_id": g.image_id,
        "status": g.status,
        "stack_id": g.stack_id,
        "merge_labels": false,
    })
}

pub fn full(g: &NodeGroup, cluster_labels: Option<&BTreeMap<String, String>>, base: &str) -> Value {
    let labels = common::labels_of(&g.labels);
    let mut doc = json!({
        "id": g.id,
        "uuid": g.uuid,
        "name": g.name,
        "cluster_id": g.cluster_id,
        "project_id": g.project_id,
        "docker_volume_size": g.docker_volume_size,
        "labels": labels,
        "flavor_id": g.flavor_id,
        "image_id": g.image_id,
        "node_addresses": common::json_of(&g.node_addresses),
        "node_count": g.node_count,
        "role": g.role,
        "max_node_count": g.max_node_count,
        "min_node_count": g.min_node_count,
        "is_default": g.is_default,
        // Input only; upstream's views show its default (wsattr
        // default=False, magnum/api/controllers/v1/nodegroup.py).
        "merge_labels": false,
        "stack_id": g.stack_id,
        "status": g.status,
        "status_reason": g.status_reason,
        "version": g.version,
        "node_labels": common::json_of(&g.node_labels),
        "node_taints": common::json_of(&g.node_taints),
        "links": common::links(base, &base_path(&g.cluster_id), &g.uuid),
        "created_at": common::time(&g.created_at),
        "updated_at": common::opt_time(&g.updated_at),
    });
    if let Some(parent) = cluster_labels {
        let (o, a, s) = common::label_diff(parent, &labels);
        doc["labels_overridden"] = o;
        doc["labels_added"] = a;
        doc["labels_skipped"] = s;
    }
    doc
}

fn lookup(conn: &mut DbConnection, cluster: &Cluster, ident: &str) -> ApiResult<NodeGroup> {
    let found = if common::is_uuid_like(ident) {
        NodeGroup::find_by_uuid(conn, ident)
            .ok()
            .filter(|g| g.cluster_id == cluster.uuid)
    } else {
        NodeGroup::find_by_name(conn, &cluster.uuid, ident).ok()
    };
    found.ok_or_else(|| {
        ApiError::not_found(format!(
            "Nodegroup {ident} could not be found in cluster {}.",
            cluster.uuid
        ))
    })
}

/// `node_labels` (1.14): a dict of strings. Which keys a node may carry is
/// the COE's rule: the driver judges them (`validate_cluster`).
fn check_node_labels(v: &Value) -> ApiResult<BTreeMap<String, String>> {
    super::input::parse_labels("node_labels", v)
}

/// `node_taints` (1.14): a list of `{key, value, effect}` with a key and an
/// effect; which effects exist is the COE's rule (the driver judges it).
fn check_node_taints(v: &Value) -> ApiResult<Vec<Value>> {
    let Value::Array(items) = v else {
        return Err(ApiError::invalid_field(
            "node_taints",
            v,
            "Value should be a list of {key, value, effect}",
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(ApiError::invalid_field(
                "node_taints",
                item,
                "Each taint should be an object",
            ));
        };
        if let Some(extra) = m
            .keys()
            .find(|k| !["key", "value", "effect"].contains(&k.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument node_taints: {extra}"
            )));
        }
        let key = m
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        let effect = m
            .get("effect")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        let Some(key) = key else {
            return Err(ApiError::bad_request("Every node taint needs a key."));
        };
        let Some(effect) = effect else {
            return Err(ApiError::invalid_field(
                "node_taints",
                item,
                "every node taint needs an effect",
            ));
        };
        if m.get("value")
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::invalid_field(
                "node_taints",
                item,
                "value should be a string",
            ));
        }
        let mut t = json!({"key": key, "effect": effect});
        if let Some(Value::String(val)) = m.get("value") {
            t["value"] = json!(val);
        }
        out.push(t);
    }
    Ok(out)
}

fn check_bounds(min: i64, max: Option<i64>, count: i64) -> ApiResult<()> {
    if let Some(max) = max {
        if min > max {
            return Err(ApiError::bad_request(format!(
                "min_node_count ({min}) should be less or equal to max_node_count ({max})."
            )));
        }
        if count > max {
            return Err(ApiError::bad_request(format!(
                "node_count ({count}) should be less or equal to max_node_count ({max})."
            )));
        }
    }
    if min > count {
        return Err(ApiError::bad_request(format!(
            "min_node_count ({min}) should be less or equal to node_count ({count})."
        )));
    }
    Ok(())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(cluster_ident): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.require_version(NG_VERSION, "GET")?;
    ctx.authorize("nodegroup:get_all")?;
    let query = Query::parse(raw.as_deref());
    let page = query.page()?;
    let role = query.get("role").map(str::to_owned);
    let p = page.clone();
    let (cluster, rows) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        if let Some(m) = &p.marker {
            lookup(conn, &cluster, m)?;
        }
        let rows = NodeGroup::list_by_cluster(conn, &cluster.uuid, role.as_deref(), &p)?;
        Ok((cluster, rows))
    })
    .await?;
    let base = common::base_url(&headers);
    let last = rows.last().map(|g| g.uuid.clone());
    let items = rows.iter().map(summary).collect();
    Ok(Json(common::collection(
        "nodegroups",
        items,
        last.as_deref(),
        &page,
        &base,
        &base_path(&cluster.uuid),
    )))
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((cluster_ident, ident)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_version(NG_VERSION, "GET")?;
    ctx.authorize("nodegroup:get")?;
    let (cluster, group) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let cluster = clusters::lookup(conn, &ctx, &cluster_ident)?;
        let group = lookup(conn, &cluster, &ident)?;
        Ok((cluster, group))
    })
    .await?;
    let parent = common::labels_of(&cluster.labels);
    Ok(Json(full(
        &group,
        Some(&parent),
        &common::base_url(&headers),
    )))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(cluster_ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_version(NG_VERSION, "POST")?;
    ctx.authorize("nodegroup:create")?;
    let f = Fields::new("nodegroup", body, CREATE_FIELDS)?;
    let name = f.required_string("name", 255)?;
    let role = f
        .string("role", 255)?
        .unwrap_or_else(|| "worker".to_owned());
    if role == "master" {
        return Err(ApiError::bad_request(
            "Creating master nodegroups is currently not supported.",
        ));
    }
    let node_count = f.int("node_count", 0, 10_000)?.unwrap_or(1);
    if node_count == 0 && ctx.version < Version::new(1, 10) {
        return Err(ApiError::bad_request(
            "Creating a nodegroup with 0 nodes is not supported in the provided microversion; use 1.10 or later.",
        ));
    }
    let min = f.int("min_node_count", 0, 10_000)?.unwrap_or(0);
    let max = f.int("max_node_count", 0, 10_000)?;
    check_bounds(min, max, node_count)?;
    let node_labels = f
        .raw("node_labels")
        .map(check_node_labels)
        .transpose()?
        .unwrap_or_default();
    let node_taints = f
        .raw("node_taints")
        .map(check_node_taints)
        .transpose()?
        .unwrap_or_default();
    let docker_volume_size = f.int("docker_volume_size", 1, i32::MAX.into())?;
    let flavor = f.string("flavor_id", 255)?;
    let image = f.string("image_id", 255)?;
    let given_labels = f.labels("labels")?;
    let merge = f.bool("merge_labels")?.unwrap_or(false);
    if let Some(fl) = &flavor {
        state.catalog.flavor(&ctx, fl).await?;
    }
    if let Some(im) = &image {
        state.catalog.image(&ctx, im).await?;
    }
    let st = state.clone();
    let group = db::run_write(&state.pool, move |conn| -> ApiResult<NodeGroup> {
        db::write_transaction(conn, |conn| {
            let mut cluster = clusters::lookup_for_update(conn, &ctx, &cluster_ident)?;
            let driver = clusters::driver_of(&st, &cluster)?;
            if !driver.info.supports(op::CREATE_NODEGROUP) {
                return Err(ApiError::bad_request(format!(
                    "Nodegroups are not supported by driver {}.",
                    driver.name
                )));
            }
            if cluster.status.is_delete() {
                return Err(ApiError::conflict(format!(
                    "Cluster {} is being deleted (status {}).",
                    cluster.uuid, cluster.status
                )));
            }
            let template =
                db::models::ClusterTemplate::find_by_uuid(conn, &cluster.cluster_template_id)?;
            let parent = common::labels_of(&cluster.labels);
            let labels = common::inherit_labels(&parent, given_labels, merge);
            templates::check_undeclared_labels(&st, &driver, &labels, &parent)?;
            let mut new = NewNodeGroup::new(&cluster.uuid, &cluster.project_id, &name);
            new.role = role;
            new.node_count = node_count as i32;
            new.min_node_count = min as i32;
            new.max_node_count = max.map(|m| m as i32);
            new.flavor_id = flavor
                .or_else(|| cluster.flavor_id.clone())
                .or_else(|| template.flavor_id.clone());
            new.image_id = image.or_else(|| Some(template.image_id.clone()));
            new.docker_volume_size = docker_volume_size
                .map(|v| v as i32)
                .or(cluster.docker_volume_size);
            new.labels = common::labels_text(&labels);
            new.node_labels = common::labels_text(&node_labels);
            new.node_taints =
                serde_json::to_string(&node_taints).unwrap_or_else(|_| "[]".to_owned());
            new.status = Some(Status::CreateInProgress);
            let group = NodeGroup::insert(conn, &new).map_err(|e| {
                if common::is_unique_violation(&e) {
                    ApiError::conflict(format!(
                        "A node group with name {} already exists in the cluster {}.",
                        new.name, cluster.uuid
                    ))
                } else {
                    e.into()
                }
            })?;
            // The driver judges what is its COE's (node label keys, taint
            // effects); an error rolls the insert back.
            let groups = NodeGroup::all_of_cluster(conn, &cluster.uuid)?;
            driver.validate_cluster(&clusters::request(&st, &template, &cluster, &groups))?;
            // Upstream moves the cluster to UPDATE_IN_PROGRESS for nodegroup
            // work; a cluster still being created keeps its status and the
            // conductor builds the group after it.
            if cluster.status.update_allowed() || cluster.status == Status::UpdateFailed {
                cluster.status = Status::UpdateInProgress;
                cluster.update(conn)?;
            }
            jobs::enqueue(
                conn,
                &cluster.uuid,
                &Operation::NodegroupCreate {
                    nodegroup: group.uuid.clone(),
                },
            )?;
            Ok(group)
        })
    })
    .await?;
    let base = common::base_url(&headers);
    Ok((StatusCode::ACCEPTED, Json(full(&group, None, &base))).into_response())
}

pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((cluster_ident, ident)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_version(NG_VERSION, "PATCH")?;
    ctx.authorize("nodegroup:update")?;
    let ops = patch_ops(body, &[])?;
    let st = state.clone();
    let group = db::run_write(&state.pool, move |conn| -> ApiResult<NodeGroup> {
        db::write_transaction(conn, |conn| {
            // The cluster row is locked: nodegroup writes of a cluster
            // serialize on it.
            let cluster = clusters::lookup_for_update(conn, &ctx, &cluster_ident)?;
            let mut group = lookup(conn, &cluster, &ident)?;
            let before = match full(&group, None, "") {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let mut doc = before.clone();
            apply_patch(&mut doc, &ops, &[])?;
            let changed: Vec<&str> = doc
                .keys()
                .filter(|k| doc.get(*k) != before.get(*k))
                .map(String::as_str)
                .collect();
            if let Some(bad) = changed.iter().find(|k| !PATCHABLE.contains(k)) {
                return Err(ApiError::bad_request(format!(
                    "'/{bad}' is an internal attribute and can not be updated"
                )));
            }
            if changed.is_empty() {
                return Ok(group);
            }
            let f = Fields::new(
                "nodegroup",
                json!({"min_node_count": doc.get("min_node_count"), "max_node_count": doc.get("max_node_count")}),
                &["min_node_count", "max_node_count"],
            )?;
            let min = f.int("min_node_count", 0, 10_000)?.unwrap_or(0);
            let max = f.int("max_node_count", 0, 10_000)?;
            check_bounds(min, max, group.node_count.into())?;
            let node_settings = changed.iter().any(|k| k.starts_with("node_"));
            if node_settings {
                let labels = match doc.get("node_labels") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(v) => check_node_labels(v)?,
                };
                let taints = match doc.get("node_taints") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => check_node_taints(v)?,
                };
                group.node_labels = common::labels_text(&labels);
                group.node_taints = serde_json::to_string(&taints).unwrap_or_else(|_| "[]".to_owned());
            }
            group.min_node_count = min as i32;
            group.max_node_count = max.map(|m| m as i32);
            let group = group.update(conn)?;
            if node_settings {
                // The driver judges the new labels and taints; an error
                // rolls the update back.
                let driver = clusters::driver_of(&st, &cluster)?;
                let template =
                    db::models::ClusterTemplate::find_by_uuid(conn, &cluster.cluster_template_id)?;
                let groups = NodeGroup::all_of_cluster(conn, &cluster.uuid)?;
                driver.validate_cluster(&clusters::request(&st, &template, &cluster, &groups))?;
            }
            jobs::enqueue(
                conn,
                &cluster.uuid,
                &Operation::NodegroupUpdate {
                    nodegroup: group.uuid.clone(),
                },
            )?;
            Ok(group)
        })
    })
    .await?;
    let base = common::base_url(&headers);
    Ok((StatusCode::ACCEPTED, Json(full(&group, None, &base))).into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((cluster_ident, ident)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.require_version(NG_VERSION, "DELETE")?;
    ctx.authorize("nodegroup:delete")?;
    db::run_write(&state.pool, move |conn| -> ApiResult<()> {
        db::write_transaction(conn, |conn| {
            // The cluster row is locked: nodegroup writes of a cluster
            // serialize on it.
            let cluster = clusters::lookup_for_update(conn, &ctx, &cluster_ident)?;
            let mut group = lookup(conn, &cluster, &ident)?;
            if group.is_default {
                return Err(ApiError::bad_request(
                    "Deleting a default nodegroup is not supported.",
                ));
            }
            if group.status == Some(Status::DeleteInProgress) {
                return Ok(());
            }
            group.status = Some(Status::DeleteInProgress);
            group.update(conn)?;
            jobs::enqueue(
                conn,
                &cluster.uuid,
                &Operation::NodegroupDelete {
                    nodegroup: group.uuid.clone(),
                },
            )?;
            Ok(())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_and_taints_have_their_shape_checked_here() {
        // The COE's rules (kubelet's namespaces, taint effects) are the
        // driver's: see drivers/k8s-fedora-atomic/src/node_labels.rs.
        assert!(check_node_labels(&json!({"node.kubernetes.io/pool": "a", "team": "x"})).is_ok());
        assert!(check_node_labels(&json!(["team"])).is_err());
        assert!(
            check_node_taints(&json!([{"key": "k", "value": "v", "effect": "NoSchedule"}])).is_ok()
        );
        assert!(check_node_taints(&json!([{"key": "k"}])).is_err());
        assert!(
            check_node_taints(&json!([{"key": "k", "effect": "NoSchedule", "value": 1}])).is_err()
        );
        assert!(check_node_taints(&json!([{"effect": "NoSchedule"}])).is_err());
        assert!(check_node_taints(&json!([{"key": "k", "effect": "NoSchedule", "x": 1}])).is_err());
        assert!(check_bounds(2, Some(1), 1).is_err());
        assert!(check_bounds(0, Some(3), 4).is_err());
        assert!(check_bounds(1, None, 0).is_err());
        assert!(check_bounds(0, None, 0).is_ok());
    }
}
