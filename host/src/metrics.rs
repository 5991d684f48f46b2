//! Prometheus metrics, served at `GET /metrics` (text format 0.0.4,
//! unauthenticated like `/healthcheck`; `[metrics] enabled = false` turns it
//! off). Counters and histograms are kept per process as things happen;
//! jobs and clusters are counted from the database at each scrape, so every
//! API process shows the whole deployment's queue and clusters.
//!
//! Labels are bounded: API routes are axum's route templates
//! (`/v1/clusters/{ident}`), not raw paths; OpenStack endpoints are the
//! origin and first path segment (`http://keystone:5000/v3`).

use std::{sync::LazyLock, time::Duration};

use diesel::prelude::*;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::{schema, DbConnection, DbPool};

/// Latency buckets (seconds): 1 ms to 60 s, for calls from an in-memory
/// driver call to a stack create on a loaded Heat.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_latency: HistogramVec,
    job_steps: IntCounterVec,
    job_latency: HistogramVec,
    jobs: IntGaugeVec,
    clusters: IntGaugeVec,
    driver_calls: IntCounterVec,
    driver_latency: HistogramVec,
    orchestrator_calls: IntCounterVec,
    orchestrator_latency: HistogramVec,
    openstack_requests: IntCounterVec,
    openstack_latency: HistogramVec,
    db_pool: IntGaugeVec,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("a valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        Self {
            api_requests: counter(
                &r,
                "magnum_api_requests_total",
                "API requests by method, route template and status.",
                &["method", "route", "status"],
            ),
            api_latency: histogram(
                &r,
                "magnum_api_request_duration_seconds",
                "API request latency by method and route template.",
                &["method", "route"],
            ),
            job_steps: counter(
                &r,
                "magnum_job_steps_total",
                "Conductor job steps run by this process, by job type and outcome (done, poll: runs again later, retry: failed and backs off).",
                &["type", "outcome"],
            ),
            job_latency: histogram(
                &r,
                "magnum_job_step_duration_seconds",
                "Duration of one conductor job step by job type.",
                &["type"],
            ),
            jobs: gauge(
                &r,
                "magnum_jobs",
                "Jobs in the queue by type and state (queued, running: leased by a conductor, failing: queued again after a failed step), counted in the database at scrape.",
                &["type", "state"],
            ),
            clusters: gauge(
                &r,
                "magnum_clusters",
                "Clusters by status and driver, counted in the database at scrape.",
                &["status", "driver"],
            ),
            driver_calls: counter(
                &r,
                "magnum_driver_calls_total",
                "Driver calls by driver, operation and outcome (ok, error).",
                &["driver", "operation", "outcome"],
            ),
            driver_latency: histogram(
                &r,
                "magnum_driver_call_duration_seconds",
                "Driver call latency by driver and operation.",
                &["driver", "operation"],
            ),
            orchestrator_calls: counter(
                &r,
                "magnum_orchestrator_calls_total",
                "Orchestrator calls (local or heat) by operation and outcome (ok, error).",
                &["orchestrator", "operation", "outcome"],
            ),
            orchestrator_latency: histogram(
                &r,
                "magnum_orchestrator_call_duration_seconds",
                "Orchestrator call latency by operation.",
                &["orchestrator", "operation"],
            ),
            openstack_requests: counter(
                &r,
                "magnum_openstack_requests_total",
                "HTTP requests to OpenStack services (Keystone, Heat, Glance, Nova, Neutron) by endpoint, method and status (or `error` when no answer came).",
                &["endpoint", "method", "status"],
            ),
            openstack_latency: histogram(
                &r,
                "magnum_openstack_request_duration_seconds",
                "Latency of HTTP requests to OpenStack services by endpoint and method.",
                &["endpoint", "method"],
            ),
            db_pool: gauge(
                &r,
                "magnum_db_pool_connections",
                "Database pool connections of this process: in_use, idle, max.",
                &["state"],
            ),
            registry: r,
        }
    }

    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.api_requests
            .with_label_values(&[method, route, status.to_string().as_str()])
            .inc();
        self.api_latency
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
    }

    pub fn job_step(&self, job_type: &str, outcome: &str, took: Duration) {
        self.job_steps.with_label_values(&[job_type, outcome]).inc();
        self.job_latency
            .with_label_values(&[job_type])
            .observe(took.as_secs_f64());
    }

    pub fn driver_call(&self, driver: &str, operation: &str, ok: bool, took: Duration) {
        self.driver_calls
            .with_label_values(&[driver, operation, outcome(ok)])
            .inc();
        self.driver_latency
            .with_label_values(&[driver, operation])
            .observe(took.as_secs_f64());
    }

    pub fn orchestrator_call(&self, orchestrator: &str, operation: &str, ok: bool, took: Duration) {
        self.orchestrator_calls
            .with_label_values(&[orchestrator, operation, outcome(ok)])
            .inc();
        self.orchestrator_latency
            .with_label_values(&[orchestrator, operation])
            .observe(took.as_secs_f64());
    }

    /// `status` is `None` when no answer came (connect error, timeout).
    pub fn openstack_request(
        &self,
        url: &reqwest::Url,
        method: &str,
        status: Option<u16>,
        took: Duration,
    ) {
        let endpoint = endpoint(url);
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.openstack_requests
            .with_label_values(&[endpoint.as_str(), method, status.as_str()])
            .inc();
        self.openstack_latency
            .with_label_values(&[endpoint.as_str(), method])
            .observe(took.as_secs_f64());
    }

    /// The exposition text: the process's counters, the pool's use, and
    /// the queue and clusters as the database has them now. A database
    /// that does not answer leaves those two families out (and says so in
    /// a comment) rather than failing the scrape.
    pub fn render(&self, pool: &DbPool) -> String {
        // The scrape's own connection counts as one in use.
        let conn = pool.get();
        let usage = pool.usage();
        self.db_pool
            .with_label_values(&["in_use"])
            .set(i64::from(usage.connections.saturating_sub(usage.idle)));
        self.db_pool
            .with_label_values(&["idle"])
            .set(i64::from(usage.idle));
        self.db_pool
            .with_label_values(&["max"])
            .set(i64::from(usage.max));
        let counted = conn
            .map_err(|e| e.to_string())
            .and_then(|mut conn| self.count(&mut conn).map_err(|e| e.to_string()));
        let mut text = self.text();
        if let Err(e) = counted {
            text.push_str(&format!(
                "# magnum_jobs and magnum_clusters not counted: database: {}\n",
                e.replace('\n', " ")
            ));
        }
        text
    }

    /// The exposition text of what this process counted, without asking
    /// the database.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics: cannot encode: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Refreshes the two database-counted families.
    fn count(&self, conn: &mut DbConnection) -> QueryResult<()> {
        use schema::{cluster, jobs};
        let rows: Vec<(String, Option<String>, i32)> = jobs::table
            .select((jobs::job_type, jobs::locked_by, jobs::retries))
            .load(conn)?;
        self.jobs.reset();
        for (job_type, locked_by, retries) in rows {
            let state = if locked_by.is_some() {
                "running"
            } else if retries > 0 {
                "failing"
            } else {
                "queued"
            };
            self.jobs
                .with_label_values(&[job_type.as_str(), state])
                .inc();
        }
        let rows: Vec<(String, String, i64)> = cluster::table
            .group_by((cluster::status, cluster::driver))
            .select((cluster::status, cluster::driver, diesel::dsl::count_star()))
            .load(conn)?;
        self.clusters.reset();
        for (status, driver, n) in rows {
            self.clusters
                .with_label_values(&[status.as_str(), driver.as_str()])
                .set(n);
        }
        Ok(())
    }
}

fn outcome(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

/// `scheme://host:port/first-segment`: one label value per service
/// endpoint, whatever the rest of the path holds (ids, projects).
fn endpoint(url: &reqwest::Url) -> String {
    let first = url
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    format!("{}{first}", url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_bounded_labels() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert_eq!(
            endpoint(&url("http://127.0.0.1:8004/v1/4b1c/stacks/x/y?z=1")),
            "http://127.0.0.1:8004/v1"
        );
        assert_eq!(
            endpoint(&url("https://keystone.example.org/v3/auth/tokens")),
            "https://keystone.example.org/v3"
        );
        assert_eq!(
            endpoint(&url("http://127.0.0.1:5000")),
            "http://127.0.0.1:5000"
        );
    }
}
