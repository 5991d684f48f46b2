//! `/v1/stats` (upstream §1.11): cluster and node counts.

use std::sync::Arc;

use axum::{
    extract::{RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use super::{
    common::Query,
    context::Ctx,
    error::{ApiError, ApiResult},
};
use crate::app::AppState;
use crate::db::{
    self,
    models::{Cluster, NodeGroup},
    DbConnection,
};

pub async fn stats(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.authorize("stats:get_all")?;
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
