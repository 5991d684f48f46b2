//! API load benchmark: the real router served by `axum::serve` on
//! 127.0.0.1, driven over real HTTP/1.1 by 16 concurrent client tasks (one
//! keep-alive connection each), once on SQLite (a temporary file) and once
//! on PostgreSQL (a fresh schema on 127.0.0.1:5432, dropped at the end).
//!
//! Scenarios, run one after the other in the same process against the same
//! server:
//!
//! * `GET /v1` — the version document, no database work;
//! * `GET /v1/clustertemplates` with 100 templates in the database;
//! * `GET /v1/clustertemplates/{uuid}`, one of them;
//! * `GET /v1/clusters` with 100 clusters created by `POST /v1/clusters`;
//! * `GET /v1/clusters/{uuid}`, one of them;
//! * `POST /v1/clustertemplates` (creates a template per request).
//!
//! The twin of each GET: its exact response bytes and `Content-Type`,
//! captured once from the real route, served prebuilt by a bare axum route
//! on another 127.0.0.1 port and driven by the same 16 clients right after
//! the real route. Its req/s is what sending those bytes over HTTP costs on
//! this machine at this moment, so `× twin` (real req/s over the twin's)
//! says how close the real route comes to that limit, and stays
//! comparable between runs on a busy machine, where absolute figures do not.
//!
//! Every loop is bounded in count and in time: a warm-up of at most
//! `API_LOAD_WARMUP_SECS` (default 1) or 100 requests per connection, then at
//! most `API_LOAD_SECS` (default 10) or `API_LOAD_MAX_REQUESTS` (default
//! 200000) requests per scenario, whichever comes first. Any non-2xx
//! response or transport error is counted, reported, and makes the bench
//! exit with status 1.
//!
//! Columns: requests measured, req/s over the scenario's wall time, p50 and
//! p99 latency (nearest rank, send to last body byte), the twin's req/s
//! and p99, real req/s over the twin's, mean body bytes per 2xx response,
//! non-2xx responses and transport errors (warm-up included, twin's too).
//!
//! Run with `scripts/bench-api`, which builds the release driver `.so`
//! files first. `BENCH_DATABASE_URL` overrides the PostgreSQL server
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); an unreachable
//! server prints a SKIPPED line instead of the PostgreSQL table.

mod support;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::Bytes;
use diesel::{connection::SimpleConnection, pg::PgConnection, Connection};
use magnum_host::{
    api::{router, AppState},
    db::{self, DbPool},
    plugins::Registry,
};
use reqwest::{
    header::{HeaderMap, HeaderValue, CONTENT_TYPE},
    Client, Method,
};
use serde_json::{json, Value};

const CONCURRENCY: usize = 16;
const TEMPLATES: usize = 100;
const CLUSTERS: usize = 100;
/// Per connection, on top of the warm-up's time bound.
const WARMUP_MAX_PER_CONNECTION: usize = 100;
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TEMPLATE_BODY: &str = r#"{"coe":"kubernetes","image_id":"fedora-atomic-latest","external_network_id":"public","flavor_id":"m1.small"}"#;

struct Limits {
    warmup: Duration,
    duration: Duration,
    max_requests: usize,
}

impl Limits {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        }
        Self {
            warmup: Duration::from_secs_f64(var("API_LOAD_WARMUP_SECS", 1.0)),
            duration: Duration::from_secs_f64(var("API_LOAD_SECS", 10.0)),
            max_requests: var("API_LOAD_MAX_REQUESTS", 200_000usize).max(CONCURRENCY),
        }
    }
}

/// One request, repeated by every connection.
struct Scenario {
    name: String,
    method: Method,
    url: String,
    body: Option<&'static str>,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    body_bytes: u64,
    non_2xx: usize,
    errors: usize,
    /// The first failure, for the report.
    sample: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_ns.extend(other.latencies_ns);
        self.body_bytes += other.body_bytes;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        if self.sample.is_none() {
            self.sample = other.sample;
        }
    }
}

struct Row {
    name: String,
    /// The same bytes served prebuilt (GET scenarios only).
    twin: Option<Box<Row>>,
    requests: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    bytes_per_response: u64,
    non_2xx: usize,
    errors: usize,
    sample: Option<String>,
}

fn client() -> Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        "OpenStack-API-Version",
        HeaderValue::from_static("container-infra latest"),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Client::builder()
        .no_proxy()
        .default_headers(headers)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Sends `count` requests at most, stopping at `deadline`; the body of
/// every response is read in full.
async fn drive(client: Client, s: Arc<Scenario>, count: usize, deadline: Instant) -> Tally {
    let mut t = Tally {
        latencies_ns: Vec::with_capacity(count.min(1 << 16)),
        ..Default::default()
    };
    while t.latencies_ns.len() < count && Instant::now() < deadline {
        let mut req = client.request(s.method.clone(), &s.url);
        if let Some(body) = s.body {
            req = req.body(body);
        }
        let start = Instant::now();
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Ok(body) if status.is_success() => {
                        t.body_bytes += body.len() as u64;
                        Ok(())
                    }
                    Ok(body) => Err((
                        false,
                        format!("{status}: {}", String::from_utf8_lossy(&body)),
                    )),
                    Err(e) => Err((true, format!("reading the body: {e}"))),
                }
            }
            Err(e) => Err((true, e.to_string())),
        };
        t.latencies_ns.push(start.elapsed().as_nanos() as u64);
        if let Err((transport, detail)) = outcome {
            if transport {
                t.errors += 1;
            } else {
                t.non_2xx += 1;
            }
            t.sample.get_or_insert(detail);
        }
    }
    t
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

async fn run_scenario(clients: &[Client], s: Scenario, limits: &Limits) -> Row {
    let s = Arc::new(s);
    // Warm-up: opens the connections and warms caches; not measured, but
    // its failures are counted too.
    let deadline = Instant::now() + limits.warmup;
    let warm: Vec<_> = clients
        .iter()
        .map(|c| {
            tokio::spawn(drive(
                c.clone(),
                s.clone(),
                WARMUP_MAX_PER_CONNECTION,
                deadline,
            ))
        })
        .collect();
    let mut warm_tally = Tally::default();
    for w in warm {
        warm_tally.merge(w.await.expect("warm-up task"));
    }

    let per_connection = limits.max_requests.div_ceil(clients.len());
    let start = Instant::now();
    let deadline = start + limits.duration;
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(drive(c.clone(), s.clone(), per_connection, deadline)))
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.expect("client task"));
    }
    let wall = start.elapsed();

    let requests = tally.latencies_ns.len();
    tally.latencies_ns.sort_unstable();
    Row {
        name: s.name.clone(),
        twin: None,
        requests,
        per_sec: requests as f64 / wall.as_secs_f64(),
        p50_ms: percentile_ms(&tally.latencies_ns, 50.0),
        p99_ms: percentile_ms(&tally.latencies_ns, 99.0),
        bytes_per_response: tally.body_bytes / requests.max(1) as u64,
        non_2xx: tally.non_2xx + warm_tally.non_2xx,
        errors: tally.errors + warm_tally.errors,
        sample: tally.sample.or(warm_tally.sample),
    }
}

/// One request during setup, which must answer `expect`; returns the JSON body.
async fn call(c: &Client, method: Method, url: &str, body: Option<String>, expect: u16) -> Value {
    let mut req = c.request(method.clone(), url);
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.expect("response body");
    assert_eq!(
        status.as_u16(),
        expect,
        "setup request {method} {url} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"))
}

/// The exact body and `Content-Type` of one GET, with the bench's headers.
async fn capture(c: &Client, url: &str) -> (HeaderValue, Bytes) {
    let resp = c
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| panic!("GET {url}: no Content-Type"));
    let body = resp.bytes().await.expect("response body");
    assert!(status.is_success(), "GET {url} answered {status}");
    (content_type, body)
}

/// A bare axum server on 127.0.0.1 answering one GET route with prebuilt
/// bytes: no middleware, no state, no database.
struct Twin {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Twin {
    async fn serve(path: &str, content_type: HeaderValue, body: Bytes) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = axum::Router::new().route(
            path,
            axum::routing::get(move || {
                let (content_type, body) = (content_type.clone(), body.clone());
                async move { ([(CONTENT_TYPE, content_type)], body) }
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self { base, stop, server }
    }

    /// Stops accepting. The graceful shutdown then waits for the clients'
    /// idle keep-alive connections, which end when the clients are dropped:
    /// not waited for here.
    fn stop(self) {
        let _ = self.stop.send(());
        drop(self.server);
    }
}

/// Serves the router on 127.0.0.1:0, seeds it and runs the scenarios.
async fn bench_backend(state: AppState, limits: &Limits) -> Vec<Row> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(state)))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let setup = client();
    let templates_url = format!("{base}/v1/clustertemplates");
    let mut first_template = None;
    for i in 0..TEMPLATES {
        let mut body: Value = serde_json::from_str(TEMPLATE_BODY).expect("template body");
        body["name"] = json!(format!("bench-template-{i:03}"));
        let created = call(
            &setup,
            Method::POST,
            &templates_url,
            Some(body.to_string()),
            201,
        )
        .await;
        first_template.get_or_insert(created["uuid"].as_str().expect("uuid").to_owned());
    }
    let listed = call(&setup, Method::GET, &templates_url, None, 200).await;
    let listed = listed["clustertemplates"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, TEMPLATES, "GET /v1/clustertemplates lists them all");
    let first_template = first_template.expect("a template");
    let mut first_cluster = None;
    for i in 0..CLUSTERS {
        let cluster = call(
            &setup,
            Method::POST,
            &format!("{base}/v1/clusters"),
            Some(
                json!({
                    "name": format!("bench-cluster-{i:03}"),
                    "cluster_template_id": first_template,
                    "keypair": "default",
                    "master_count": 1,
                    "node_count": 1,
                })
                .to_string(),
            ),
            202,
        )
        .await;
        first_cluster.get_or_insert(cluster["uuid"].as_str().expect("cluster uuid").to_owned());
    }
    let cluster = first_cluster.expect("a cluster");
    let listed = call(
        &setup,
        Method::GET,
        &format!("{base}/v1/clusters"),
        None,
        200,
    )
    .await;
    let listed = listed["clusters"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, CLUSTERS, "GET /v1/clusters lists them all");

    let clients: Vec<Client> = (0..CONCURRENCY).map(|_| client()).collect();
    let scenarios = [
        ("GET /v1".to_owned(), Method::GET, "/v1".to_owned(), None),
        (
            format!("GET /v1/clustertemplates ({TEMPLATES} rows)"),
            Method::GET,
            "/v1/clustertemplates".to_owned(),
            None,
        ),
        (
            "GET /v1/clustertemplates/{uuid}".to_owned(),
            Method::GET,
            format!("/v1/clustertemplates/{first_template}"),
            None,
        ),
        (
            format!("GET /v1/clusters ({CLUSTERS} rows)"),
            Method::GET,
            "/v1/clusters".to_owned(),
            None,
        ),
        (
            "GET /v1/clusters/{uuid}".to_owned(),
            Method::GET,
            format!("/v1/clusters/{cluster}"),
            None,
        ),
        // Last, since it adds templates to the list above.
        (
            "POST /v1/clustertemplates".to_owned(),
            Method::POST,
            "/v1/clustertemplates".to_owned(),
            Some(TEMPLATE_BODY),
        ),
    ];
    let mut rows = Vec::new();
    for (name, method, path, body) in scenarios {
        // Captured before the real route runs; the twin runs right after it.
        let prebuilt = if method == Method::GET {
            Some(capture(&setup, &format!("{base}{path}")).await)
        } else {
            None
        };
        let s = Scenario {
            name: name.clone(),
            method,
            url: format!("{base}{path}"),
            body,
        };
        let mut row = run_scenario(&clients, s, limits).await;
        if let Some((content_type, bytes)) = prebuilt {
            let twin = Twin::serve(&path, content_type, bytes).await;
            let s = Scenario {
                name: format!("{name} (twin)"),
                method: Method::GET,
                url: format!("{}{path}", twin.base),
                body: None,
            };
            row.twin = Some(Box::new(run_scenario(&clients, s, limits).await));
            twin.stop();
        }
        rows.push(row);
    }
    drop(setup);

    // Closing the client connections lets the graceful shutdown finish.
    drop(clients);
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(result) => result.expect("server task").expect("serve"),
        Err(_) => eprintln!("warning: the server did not shut down within 10 s"),
    }
    rows
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(8);
    println!(
        "{:<width$}  {:>9}  {:>10}  {:>8}  {:>8}  {:>10}  {:>8}  {:>7}  {:>8}  {:>7}  {:>6}",
        "scenario",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "twin req/s",
        "twin p99",
        "× twin",
        "B/resp",
        "non-2xx",
        "errors"
    );
    for r in rows {
        let (twin_rate, twin_p99, ratio) = match &r.twin {
            Some(t) => (
                format!("{:.1}", t.per_sec),
                format!("{:.3}", t.p99_ms),
                format!("{:.3}", r.per_sec / t.per_sec),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<width$}  {:>9}  {:>10.1}  {:>8.3}  {:>8.3}  {:>10}  {:>8}  {:>7}  {:>8}  {:>7}  {:>6}",
            r.name,
            r.requests,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            twin_rate,
            twin_p99,
            ratio,
            r.bytes_per_response,
            r.non_2xx + r.twin.as_ref().map_or(0, |t| t.non_2xx),
            r.errors + r.twin.as_ref().map_or(0, |t| t.errors),
        );
    }
    for r in rows
        .iter()
        .chain(rows.iter().filter_map(|r| r.twin.as_deref()))
    {
        if r.non_2xx + r.errors > 0 {
            println!(
                "  {}: first failure: {}",
                r.name,
                r.sample.as_deref().unwrap_or("?")
            );
        }
    }
}

fn run(
    rt: &tokio::runtime::Runtime,
    plugins: &Path,
    pool: DbPool,
    limits: &Limits,
    title: &str,
) -> Vec<Row> {
    db::migrate(&mut pool.get().expect("pooled connection")).expect("migrations apply");
    let registry = Registry::load(plugins).expect("load the bundled drivers");
    assert_eq!(
        registry.loaded().count(),
        3,
        "all three bundled drivers load"
    );
    // The state magnumd builds from its default configuration, but for the
    // cluster quota (upstream's 20 per project) the cluster list needs.
    let data = tempfile::tempdir().expect("tempdir");
    let config = magnum_host::config::Config::from_toml(
        &format!("[api]\nmax_clusters_per_project = {CLUSTERS}\n"),
        &magnum_host::config::Overrides {
            data_dir: Some(data.path().to_owned()),
            plugins_dir: Some(plugins.to_owned()),
            ..Default::default()
        },
    )
    .expect("default config");
    let state = rt
        .block_on(AppState::from_config(&config, registry, pool, None))
        .expect("state from config");
    let rows = rt.block_on(bench_backend(state, limits));
    print_table(title, &rows);
    rows
}

/// `url` with `search_path` set to `schema` for every connection.
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Drops the bench's PostgreSQL schema, also when the bench panics.
struct Schema {
    admin_url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("warning: could not drop schema {}: {e}", self.name);
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this bench takes no arguments.
    // reqwest is built without a TLS provider and panics building a client
    // when the process has none, even for plain HTTP; magnumd's TLS set-up
    // installs ring, and this state (noauth) never makes it.
    drop(magnum_host::openstack::tls::Tls::default());
    let limits = Limits::from_env();
    let plugins = support::plugins_dir("scripts/bench-api");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "API load: {CONCURRENCY} connections on 127.0.0.1, server and clients in one tokio \
         runtime ({cores} cores); per scenario a warm-up of at most {:?} or {} requests, then \
         at most {:?} or {} requests",
        limits.warmup,
        WARMUP_MAX_PER_CONNECTION * CONCURRENCY,
        limits.duration,
        limits.max_requests,
    );

    let mut all = Vec::new();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("magnum.sqlite");
    let pool = DbPool::connect(&format!("sqlite://{}", path.display())).expect("open SQLite");
    all.extend(run(
        &rt,
        plugins.path(),
        pool,
        &limits,
        &format!("SQLite ({})", path.display()),
    ));

    let admin_url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    match PgConnection::establish(&admin_url) {
        Err(e) => println!(
            "\nPostgreSQL: SKIPPED ({admin_url} unreachable: {})",
            // libpq's message spans lines; one line here.
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Ok(mut admin) => {
            let name = format!("bench_{}", std::process::id());
            admin
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .expect("create the bench schema");
            drop(admin);
            let schema = Schema {
                admin_url: admin_url.clone(),
                name,
            };
            let url = with_search_path(&admin_url, &schema.name);
            let pool = DbPool::connect(&url).expect("open PostgreSQL pool");
            let title = format!("PostgreSQL ({admin_url}, schema {})", schema.name);
            all.extend(run(&rt, plugins.path(), pool, &limits, &title));
            drop(schema);
        }
    }
    drop(rt);

    let failures: usize = all
        .iter()
        .chain(all.iter().filter_map(|r| r.twin.as_deref()))
        .map(|r| r.non_2xx + r.errors)
        .sum();
    if failures > 0 {
        eprintln!("\n{failures} non-2xx responses or transport errors; see the tables above");
        std::process::exit(1);
    }
}
