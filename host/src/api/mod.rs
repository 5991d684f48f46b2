//! The Magnum v1 REST API (upstream §1): version documents, the resource
//! routes, and the layers every request passes (request id, microversion,
//! body limit, error envelope).

mod certificates;
pub mod clusters;
pub mod common;
pub mod context;
mod credentials;
pub mod error;
mod federations;
pub mod input;
mod mservices;
mod nodegroups;
mod quotas;
pub mod render;
mod stats;
pub mod templates;

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, patch, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::db;
use common::base_url;

pub use crate::app::{AppState, Identity, Settings};
pub use crate::catalog::{Catalog, CloudCatalog, OpenStackCatalog};
pub use error::error_body;

pub const MIN_VERSION: &str = "1.1";
pub const MAX_VERSION: &str = "1.14";

/// The API. Paths whose first segment is not `v1` are served as if under
/// `/v1` (upstream's root controller does the same), which is what the
/// `bookmark` links depend on.
pub fn router(state: Arc<AppState>) -> Router {
    let inner = routes(state);
    let rewritten = tower::ServiceBuilder::new()
        .map_request(prefix_v1)
        .service(inner);
    Router::new().fallback_service(rewritten)
}

/// What a conductor alone serves at `[metrics] bind`: `/metrics` and
/// `/healthcheck`, nothing of the API.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .route("/metrics", get(metrics))
        .with_state(state)
}

const UNPREFIXED: [&str; 3] = ["v1", "healthcheck", "metrics"];

/// Also drops a trailing slash: python-magnumclient asks for
/// `/v1/clusters/{id}/nodegroups/` and `/v1/clusters/{id}/?rollback=…`.
fn prefix_v1(mut req: Request) -> Request {
    let path = req.uri().path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let prefix = if first.is_empty() || UNPREFIXED.contains(&first) {
        ""
    } else {
        "/v1"
    };
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if prefix.is_empty() && trimmed.len() == path.len() {
        return req;
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{prefix}{trimmed}{query}").parse() {
        *req.uri_mut() = uri;
    }
    req
}

fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/v1", get(v1))
        .route("/v1/", get(v1))
        .route("/healthcheck", get(healthcheck))
        .route("/metrics", get(metrics))
        .route(
            "/v1/clustertemplates",
            get(templates::list).post(templates::create),
        )
        .route("/v1/clustertemplates/detail", get(templates::detail))
        .route(
            "/v1/clustertemplates/{ident}",
            get(templates::get_one)
                .patch(templates::patch)
                .delete(templates::delete),
        )
        .route("/v1/clusters", get(clusters::list).post(clusters::create))
        .route("/v1/clusters/detail", get(clusters::detail))
        .route(
            "/v1/clusters/{ident}",
            get(clusters::get_one)
                .patch(clusters::patch)
                .delete(clusters::delete),
        )
        .route(
            "/v1/clusters/{ident}/actions/resize",
            post(clusters::resize),
        )
        .route(
            "/v1/clusters/{ident}/actions/upgrade",
            post(clusters::upgrade),
        )
        .route(
            "/v1/clusters/{ident}/nodegroups",
            get(nodegroups::list).post(nodegroups::create),
        )
        .route(
            "/v1/clusters/{ident}/nodegroups/{ng}",
            get(nodegroups::get_one)
                .patch(nodegroups::patch)
                .delete(nodegroups::delete),
        )
        .route(
            "/v1/quotas",
            get(quotas::quota_list).post(quotas::quota_create),
        )
        .route(
            "/v1/quotas/{project_id}/{resource}",
            get(quotas::quota_get)
                .patch(quotas::quota_update)
                .delete(quotas::quota_delete),
        )
        .route("/v1/stats", get(stats::stats))
        .route("/v1/mservices", get(mservices::mservices))
        .route(
            "/v1/federations",
            get(federations::federation_list).post(federations::federation_create),
        )
        .route(
            "/v1/federations/detail",
            get(federations::federation_detail),
        )
        .route(
            "/v1/federations/{ident}",
            get(federations::federation_get)
                .patch(federations::federation_patch)
                .delete(federations::federation_delete),
        )
        .route("/v1/certificates", post(certificates::certificate_sign))
        .route(
            "/v1/certificates/{ident}",
            get(certificates::certificate_get).patch(certificates::certificate_rotate),
        )
        .route(
            "/v1/credentials/{ident}",
            patch(credentials::credential_rotate),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(input::MAX_BODY))
        .layer(middleware::from_fn(input::check_uri))
        .layer(middleware::from_fn(crate::microversion::layer))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
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

/// Prometheus metrics (see [`crate::metrics`]): unauthenticated, like
/// `/healthcheck`, for a scraper on the management network; `[metrics]
/// enabled = false` answers 404 instead.
async fn metrics(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if !state.settings.metrics_enabled {
        return not_found(req).await;
    }
    let pool = state.pool.clone();
    match tokio::task::spawn_blocking(move || crate::metrics::METRICS.render(&pool)).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error::ApiError::internal(format!("metrics: {e}")).into_response(),
    }
}

/// oslo.middleware's healthcheck: unauthenticated and cheap; 200 `OK` when
/// the database answers, 503 with the reason (never the URL) when not, in
/// at most `[database] healthcheck_timeout_ms`, so a load balancer can act.
/// While `[healthcheck] disable_by_file_path` exists it answers 503
/// `DISABLED BY FILE` (oslo's text), draining this process only. JSON for
/// `?detailed` or an `Accept: application/json`; each check's details only
/// with `[healthcheck] detailed = true`.
async fn healthcheck(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let settings = &state.settings.healthcheck;
    let mut reasons: Vec<(&str, String, String)> = Vec::new();
    let mut healthy = true;
    if let Some(path) = &settings.disable_by_file_path {
        if path.exists() {
            healthy = false;
            reasons.push((
                "DisableByFileHealthcheck",
                "DISABLED BY FILE".to_owned(),
                format!("{} exists", path.display()),
            ));
        } else {
            reasons.push((
                "DisableByFileHealthcheck",
                "OK".to_owned(),
                format!("{} absent", path.display()),
            ));
        }
    }
    if healthy {
        let started = std::time::Instant::now();
        match db::probe(&state.pool).await {
            Ok(()) => reasons.push((
                "DatabaseHealthcheck",
                "OK".to_owned(),
                format!("answered in {} ms", started.elapsed().as_millis()),
            )),
            Err(reason) => {
                let reason = format!("{reason:#}");
                tracing::warn!("healthcheck: database unreachable: {reason}");
                healthy = false;
                reasons.push((
                    "DatabaseHealthcheck",
                    format!("database unreachable: {reason}"),
                    String::new(),
                ));
            }
        }
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // oslo answers with the first failing reason, or OK.
    let summary = reasons
        .iter()
        .find(|(_, r, _)| r != "OK")
        .map_or_else(|| "OK".to_owned(), |(_, r, _)| r.clone());
    let wants_json = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "detailed" || p.starts_with("detailed="))
    }) || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !wants_json {
        let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        return (status, text_plain, summary).into_response();
    }
    let body = if settings.detailed {
        let loaded = state.registry.current().loaded().count();
        json!({
            "detailed": true,
            "now": chrono::Utc::now().to_rfc3339(),
            "version": env!("CARGO_PKG_VERSION"),
            "reasons": reasons
                .iter()
                .map(|(class, reason, details)| {
                    json!({"class": class, "reason": reason, "details": details})
                })
                .chain(std::iter::once(json!({
                    "class": "DriversHealthcheck",
                    "reason": "OK",
                    "details": format!("{loaded} driver(s) loaded"),
                })))
                .collect::<Vec<_>>(),
        })
    } else {
        json!({"detailed": false, "reasons": [summary]})
    };
    (status, Json(body)).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let detail = format!(
        "Method {} is not allowed on {}.",
        req.method(),
        req.uri().path()
    );
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(error_body(StatusCode::METHOD_NOT_ALLOWED, &detail)),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    let detail = format!(
        "The resource could not be found. {} is not a path of the Magnum v1 API.",
        req.uri().path()
    );
    (
        StatusCode::NOT_FOUND,
        Json(error_body(StatusCode::NOT_FOUND, &detail)),
    )
        .into_response()
}

const REQUEST_ID: &str = "x-openstack-request-id";

/// Gives every request an id and echoes it in the response: an inbound
/// `X-OpenStack-Request-ID` of oslo's form (`req-<uuid>`, what a calling
/// service passes on) is kept, anything else is replaced by a new one. The
/// request runs in a span carrying the id, so every line it logs (and the
/// 500 whose message points at the log) names it, and it ends with one
/// access-log line: method, path, status, duration.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_request_id(v))
        .map_or_else(|| format!("req-{}", uuid::Uuid::new_v4()), str::to_owned);
    let Ok(value) = HeaderValue::from_str(&id) else {
        return next.run(req).await;
    };
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The route template, not the path: a bounded label for /metrics.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::info_span!("request", id = %id);
    let started = std::time::Instant::now();
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status().as_u16();
    crate::metrics::METRICS.api_request(method.as_str(), &route, status, started.elapsed());
    span.in_scope(|| {
        tracing::info!(
            target: "magnum::access",
            %method,
            %path,
            status,
            ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
            "request"
        );
    });
    resp.headers_mut().insert(REQUEST_ID, value);
    resp
}

/// `req-` and a uuid in its hyphenated lowercase form (oslo.context's).
fn is_request_id(v: &str) -> bool {
    v.strip_prefix("req-").is_some_and(|u| {
        u.len() == 36
            && uuid::Uuid::parse_str(u).is_ok()
            && u.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_request_ids_of_the_right_form_are_kept() {
        assert!(is_request_id("req-0f8e2c44-6a4b-4f1e-9d8a-2b6c1e0a9f31"));
        for bad in [
            "req-0F8E2C44-6A4B-4F1E-9D8A-2B6C1E0A9F31",
            "0f8e2c44-6a4b-4f1e-9d8a-2b6c1e0a9f31",
            "req-0f8e2c446a4b4f1e9d8a2b6c1e0a9f31",
            "req-\n",
            "req-0f8e2c44-6a4b-4f1e-9d8a-2b6c1e0a9f31\r\nX: y",
            "",
        ] {
            assert!(!is_request_id(bad), "{bad:?}");
        }
    }
}
