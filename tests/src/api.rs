//! Per-route tests of the Magnum v1 API: the real router and handlers, the
//! three bundled drivers loaded from their `.so` files, on a fresh database
//! of each backend. Requests go through `tower::ServiceExt::oneshot`, so no
//! port is needed; response bodies are insta snapshots shared by both
//! backends (identical output is part of the contract).

use std::{path::PathBuf, sync::Arc, sync::OnceLock};

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use magnum_host::{
    api::{self, AppState},
    db::testing::TestDatabase,
    plugins::Registry,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support;

/// One plugins directory with the bundled drivers, registered once per run.
fn plugins() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins.d");
        support::register_bundled(&plugins);
        (dir, plugins)
    })
    .1
}

pub struct TestApp {
    router: Router,
    pub state: Arc<AppState>,
    pub db: TestDatabase,
    rt: tokio::runtime::Runtime,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The `detail` of an error envelope.
    pub fn detail(&self) -> &str {
        self.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
    }
}

impl TestApp {
    pub fn new(db: TestDatabase) -> Self {
        Self::with(db, |_| {})
    }

    pub fn with(db: TestDatabase, tweak: impl FnOnce(&mut AppState)) -> Self {
        let registry = Registry::load(plugins()).expect("load drivers");
        assert_eq!(registry.loaded().count(), 3, "bundled drivers load");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // The state magnumd builds from its configuration (the embedded
        // defaults), on this test's database.
        let data = tempfile::tempdir().expect("tempdir");
        let config = magnum_host::config::Config::from_toml(
            "",
            &magnum_host::config::Overrides {
                data_dir: Some(data.path().to_owned()),
                plugins_dir: Some(plugins().clone()),
                ..Default::default()
            },
        )
        .expect("default config");
        let mut state = rt
            .block_on(AppState::from_config(
                &config,
                registry,
                db.pool.clone(),
                None,
            ))
            .expect("state from config");
        drop(data);
        tweak(&mut state);
        let state = Arc::new(state);
        let router = api::router(state.clone());
        Self {
            router,
            state,
            db,
            rt,
        }
    }

    /// A request at the latest microversion as the default admin.
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_as(
            method,
            path,
            body,
            &[("openstack-api-version", "container-infra latest")],
        )
    }

    pub fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, bytes, headers)
    }

    pub fn raw(&self, method: Method, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "magnum.test:9511");
        // A caller's content-type replaces the default; an empty one sends none.
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("content-type") && v.is_empty() {
                continue;
            }
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).expect("request");
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            Resp {
                status,
                headers,
                body,
            }
        })
    }

    /// Lets spawned tasks (a conductor) run for `ms`.
    pub fn wait(&self, ms: u64) {
        // The timer must be created inside the runtime.
        self.rt.block_on(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        });
    }

    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.rt.spawn(f);
    }

    pub fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None)
    }

    /// Runs SQL directly (to put a cluster into a state only the conductor reaches).
    pub fn sql(&self, sql: &str) {
        use magnum_host::db::DbConnection;
        let conn: &mut DbConnection = &mut self.db.conn();
        diesel::RunQueryDsl::execute(diesel::sql_query(sql), conn).expect("sql");
    }

    pub fn count(&self, table: &str) -> i64 {
        use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};
        use magnum_host::db::DbConnection;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let conn: &mut DbConnection = &mut self.db.conn();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<N>(conn)
            .expect("count")
            .n
    }

    /// A kubernetes template named `name` (201), returned as shown.
    pub fn k8s_template(&self, name: &str) -> Value {
        let r = self.post(
            "/v1/clustertemplates",
            template_body(name, "kubernetes", "fedora-atomic-latest"),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// A cluster (202), returned by GET.
    pub fn cluster(&self, name: &str, template: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "cluster_template_id": template, "node_count": 2, "keypair": "default"});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let r = self.post("/v1/clusters", body);
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let uuid = r.body["uuid"].as_str().expect("uuid").to_owned();
        self.get(&format!("/v1/clusters/{uuid}")).body
    }

    /// Marks a cluster (and its nodegroups) complete, as the conductor would.
    pub fn complete(&self, uuid: &str) {
        self.sql(&format!("UPDATE cluster SET status = 'CREATE_COMPLETE', api_address = 'https://10.0.0.5:6443', stack_id = 'stack-{uuid}' WHERE uuid = '{uuid}'"));
        self.sql(&format!("UPDATE nodegroup SET status = 'CREATE_COMPLETE', stack_id = 'stack-{uuid}' WHERE cluster_id = '{uuid}'"));
    }
}

pub fn template_body(name: &str, coe: &str, image: &str) -> Value {
    json!({
        "name": name,
        "coe": coe,
        "image_id": image,
        "external_network_id": "public",
        "flavor_id": "m1.small",
        "master_flavor_id": "m1.medium",
        "dns_nameserver": "8.8.8.8",
        // Labels the driver reads: others are refused ([api] undeclared_labels).
        "labels": if coe == "kubernetes" {
            json!({"kube_tag": "v1.27.3", "flannel_backend": "vxlan"})
        } else {
            json!({})
        },
        "tags": "test"
    })
}

/// Runs the body once per backend (PostgreSQL and MariaDB are skipped with
/// a message when unreachable, and fail under CI=true, as in the host's DB
/// tests).
macro_rules! api_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body(app: &TestApp) {
                let f: &dyn Fn(&TestApp) = &$body;
                f(app)
            }

            #[test]
            fn sqlite() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
                    body(&TestApp::new(db));
                }
            }

            #[test]
            fn postgres() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
                    body(&TestApp::new(db));
                }
            }

            #[test]
            fn mysql() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Mysql) {
                    body(&TestApp::new(db));
                }
            }
        }
    };
    // With the state changed before the router is built.
    ($name:ident, tweak = $tweak:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body(app: &TestApp) {
                let f: &dyn Fn(&TestApp) = &$body;
                f(app)
            }

            #[test]
            fn sqlite() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
                    body(&TestApp::with(db, $tweak));
                }
            }

            #[test]
            fn postgres() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
                    body(&TestApp::with(db, $tweak));
                }
            }

            #[test]
            fn mysql() {
                if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Mysql) {
                    body(&TestApp::with(db, $tweak));
                }
            }
        }
    };
}

/// Snapshot with the values that change per run redacted.
macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_json_snapshot!($name, $value, {
                ".**.uuid" => "[uuid]",
                ".**.cluster_template_id" => "[uuid]",
                // Redacted only when set: a null stack/cluster id is part of the contract.
                ".**.cluster_id" => insta::dynamic_redaction(|v, _| {
                    if v.as_str().is_some() { insta::internals::Content::from("[uuid]") } else { v }
                }),
                ".**.created_at" => "[time]",
                ".**.updated_at" => "[time]",
                ".**.href" => "[href]",
                ".**.id" => "[id]",
                ".next" => "[next]",
            });
        });
    };
}

mod clusters;
mod hygiene;
mod misc;
mod nodegroups;
mod templates;
