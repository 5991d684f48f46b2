//! `/v1/mservices` (upstream §1.11): the conductors and their heartbeats.

use std::sync::Arc;

use axum::{extract::State, Json};
use serde_json::{json, Value};

use super::{
    common::{self},
    context::Ctx,
    error::ApiResult,
};
use crate::app::AppState;
use crate::db::{self, models::MagnumService};

pub async fn mservices(State(state): State<Arc<AppState>>, ctx: Ctx) -> ApiResult<Json<Value>> {
    ctx.authorize("magnum-service:get_all")?;
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
