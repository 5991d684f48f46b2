//! The HTTP surface served so far: Magnum's version documents. Every other
//! path answers 404 in Magnum's error envelope until the API issue lands.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    db::{self, DbPool},
    drivers::Registry,
};

pub const MIN_VERSION: &str = "1.1";
pub const MAX_VERSION: &str = "1.14";

pub struct AppState {
    pub registry: Registry,
    pub pool: DbPool,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/v1", get(v1))
        .route("/v1/", get(v1))
        .route("/healthcheck", get(healthcheck))
        .fallback(not_found)
        .layer(middleware::from_fn(crate::microversion::layer))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9511");
    format!("http://{host}")
}

async fn root(headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    Json(json!({
        "name": "OpenStack Magnum API",
        "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        "versions": [{
            "id": "v1",
            "status": "CURRENT",
            "min_version": MIN_VERSION,
            "max_version": MAX_VERSION,
            "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        }],
    }))
}

async fn v1(State(_state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    let mut doc = json!({
        "id": "v1",
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}],
        "links": [
            {"href": format!("{base}/v1/"), "rel": "self"},
            {"href": "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html", "rel": "describedby", "type": "text/html"},
        ],
    });
    for res in [
        "clustertemplates",
        "clusters",
        "quotas",
        "certificates",
        "mservices",
        "stats",
        "federations",
        "credentials",
    ] {
        doc[res] = json!([
            {"href": format!("{base}/v1/{res}/"), "rel": "self"},
            {"href": format!("{base}/{res}/"), "rel": "bookmark"},
        ]);
    }
    doc["nodegroups"] = json!([
        {"href": format!("{base}/v1/clusters/{{cluster_id}}/nodegroups"), "rel": "self"},
        {"href": format!("{base}/clusters/{{cluster_id}}/nodegroups"), "rel": "bookmark"},
    ]);
    Json(doc)
}

/// oslo.middleware's healthcheck: unauthenticated and cheap; 200 `OK` when
/// the database answers, 503 with the reason (never the URL) when not.
async fn healthcheck(State(state): State<Arc<AppState>>) -> Response {
    let probe = db::run_blocking(&state.pool, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map_err(anyhow::Error::from)
    })
    .await;
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match probe {
        Ok(_) => (StatusCode::OK, text_plain, "OK").into_response(),
        Err(reason) => {
            let reason = format!("{reason:#}");
            tracing::warn!("healthcheck: database unreachable: {reason}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                text_plain,
                format!("database unreachable: {reason}"),
            )
                .into_response()
        }
    }
}

/// Magnum's error envelope, exactly as upstream's ParsableErrorMiddleware
/// writes it: `title` is `detail` up to the first period, `code` is `client`
/// or `server`, and `request_id` is always empty in the body (the id travels
/// in the `x-openstack-request-id` header).
pub fn error_body(status: StatusCode, detail: &str) -> Value {
    let title = detail.split('.').next().unwrap_or(detail);
    let code = if status.is_server_error() {
        "server"
    } else {
        "client"
    };
    json!({"errors": [{
        "request_id": "",
        "code": code,
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
        "links": [],
    }]})
}

async fn not_found(req: Request) -> Response {
    let detail = format!(
        "The resource could not be found. {} is not served by this version of magnum-rs.",
        req.uri().path()
    );
    (
        StatusCode::NOT_FOUND,
        Json(error_body(StatusCode::NOT_FOUND, &detail)),
    )
        .into_response()
}

const REQUEST_ID: &str = "x-openstack-request-id";

/// Gives every request an id (`req-<uuid4>`) and echoes it in the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v.clone());
        let mut resp = next.run(req).await;
        resp.headers_mut().insert(REQUEST_ID, v);
        resp
    } else {
        next.run(req).await
    }
}
