//! The Keystone client against a real Keystone, started by the harness in
//! tests/keystone/ (installed from PyPI on first use, ~1-2 min; later runs
//! ~20 s). Without Python or PyPI the test skips with the reason, except under
//! CI=true, where a harness that does not start is a failure.
//!
//! One #[test] runs the checks in order on one Keystone: starting one costs
//! far more than the checks, and the last check stops it.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use magnum_host::keystone::{KeystoneClient, KeystoneError, KeystoneOptions, ServiceAuth};

/// Bounds start.sh (pip install included) so a hung download cannot hang the
/// test run; `timeout` signals the script's whole process group.
const START_TIMEOUT_S: u32 = 900;

struct Harness {
    dir: PathBuf,
    state: tempfile::TempDir,
    env: HashMap<String, String>,
    running: bool,
}

impl Harness {
    /// Start a fresh Keystone, or explain why not.
    fn start() -> Result<Self, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/keystone");
        let state = tempfile::Builder::new()
            .prefix("magnum-keystone-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let started = Instant::now();
        let output = Command::new("timeout")
            .args(["-k", "10", &START_TIMEOUT_S.to_string(), "bash"])
            .arg(dir.join("start.sh"))
            .env("KEYSTONE_STATE", state.path())
            .output()
            .map_err(|e| format!("cannot run timeout/bash: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "tests/keystone/start.sh failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = std::fs::read_to_string(state.path().join("keystone.env"))
            .map_err(|e| format!("keystone.env: {e}"))?;
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        eprintln!(
            "keystone harness up in {:.0?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
        Ok(Self {
            dir,
            state,
            env,
            running: true,
        })
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from keystone.env"))
    }

    fn url(&self) -> &str {
        self.get("KEYSTONE_URL")
    }

    fn auth(&self, user: &str, password_key: &str, project: &str) -> ServiceAuth {
        let mut auth = ServiceAuth::new(self.url(), user, self.get(password_key), project);
        auth.region = Some(self.get("KEYSTONE_REGION").to_owned());
        auth
    }

    fn magnum(&self) -> ServiceAuth {
        self.auth("magnum", "KEYSTONE_MAGNUM_PASSWORD", "service")
    }

    fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let status = Command::new("bash")
            .arg(self.dir.join("stop.sh"))
            .env("KEYSTONE_STATE", self.state.path())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("tests/keystone/stop.sh: {status:?}");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client(auth: ServiceAuth, opts: KeystoneOptions) -> KeystoneClient {
    KeystoneClient::with_options(auth, opts).expect("client")
}

fn no_cache() -> KeystoneOptions {
    KeystoneOptions {
        cache_max_ttl: Duration::ZERO,
        ..KeystoneOptions::default()
    }
}

/// A fresh token of `auth`'s user (each new client logs in once).
async fn login(auth: ServiceAuth) -> String {
    client(auth, KeystoneOptions::default())
        .service_token()
        .await
        .expect("password login")
        .expose()
        .to_owned()
}

async fn service_auth_and_catalog(ks: &Harness) {
    let magnum = client(ks.magnum(), KeystoneOptions::default());
    let token = magnum.service_token().await.expect("service login");
    assert!(!token.expose().is_empty());
    // The second call is served from the cached session.
    magnum.service_token().await.expect("service token again");
    assert_eq!(magnum.stats().service_auth_requests, 1);

    let me = magnum.service_token_info().await.expect("service info");
    assert_eq!(me.user_name, "magnum");
    assert_eq!(me.user_id, ks.get("KEYSTONE_MAGNUM_USER_ID"));
    assert_eq!(
        me.project_id.as_deref(),
        Some(ks.get("KEYSTONE_SERVICE_PROJECT_ID"))
    );
    assert!(me.has_role("admin") && me.has_role("service"), "{me:?}");

    let identity = magnum.catalog_endpoint("identity").await.expect("identity");
    assert_eq!(identity.as_str(), format!("{}/", ks.url()));

    // container-infra has a public and an internal endpoint in RegionOne and a
    // public one in RegionTwo (tests/keystone/identity.py).
    let api = ks.get("KEYSTONE_MAGNUM_API_URL");
    let magnum_url = |interface: &str, region: Option<&str>| {
        let mut auth = ks.magnum();
        auth.interface = interface.to_owned();
        auth.region = region.map(str::to_owned);
        let c = client(auth, KeystoneOptions::default());
        async move {
            c.catalog_endpoint("container-infra")
                .await
                .map(|u| u.to_string())
        }
    };
    let trimmed = |u: String| u.trim_end_matches('/').to_owned();
    assert_eq!(
        trimmed(magnum_url("public", Some("RegionOne")).await.unwrap()),
        api
    );
    assert_eq!(
        trimmed(magnum_url("internalURL", Some("RegionOne")).await.unwrap()),
        api.replacen("127.0.0.1", "localhost", 1)
    );
    assert_eq!(
        trimmed(magnum_url("public", Some("RegionTwo")).await.unwrap()),
        api.replacen("127.0.0.1", "127.0.0.2", 1)
    );
    assert!(matches!(
        magnum_url("admin", Some("RegionOne")).await,
        Err(KeystoneError::EndpointNotFound { .. })
    ));
    assert!(matches!(
        magnum.catalog_endpoint("no-such-service").await,
        Err(KeystoneError::EndpointNotFound { .. })
    ));

    let mut wrong = ks.magnum();
    wrong.password = "wrong-password".into();
    let err = client(wrong, KeystoneOptions::default())
        .service_token()
        .await
        .unwrap_err();
    assert!(
        matches!(err, KeystoneError::ServiceAuthFailed(_)),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-password"));
}

/// Issue 18, item 4: every HTTP call to an OpenStack service is counted and
/// timed in /metrics by endpoint (origin and first path segment), method
/// and status; the checks above made token POSTs and validation GETs.
fn openstack_calls_are_metered(ks: &Harness) {
    let text = magnum_host::metrics::METRICS.text();
    let endpoint = ks.url().trim_end_matches('/').to_owned();
    assert!(endpoint.ends_with("/v3"), "{endpoint}");
    let sample = |family: &str, labels: &[(&str, &str)]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for (method, status) in [("POST", "201"), ("GET", "200")] {
        let labels = [
            ("endpoint", endpoint.as_str()),
            ("method", method),
            ("status", status),
        ];
        assert!(
            sample("magnum_openstack_requests_total", &labels) >= 1.0,
            "no {method} {status} to {endpoint} counted:\n{text}"
        );
    }
    assert!(
        sample(
            "magnum_openstack_request_duration_seconds_count",
            &[("endpoint", endpoint.as_str()), ("method", "GET")]
        ) >= 1.0,
        "{text}"
    );
}

async fn validate_member_and_reader(ks: &Harness) {
    let magnum = client(ks.magnum(), KeystoneOptions::default());
    let demo_token = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;

    let info = magnum.validate(&demo_token).await.expect("validate demo");
    assert_eq!(info.user_name, "demo");
    assert_eq!(info.user_id, ks.get("KEYSTONE_DEMO_USER_ID"));
    assert_eq!(
        info.project_id.as_deref(),
        Some(ks.get("KEYSTONE_DEMO_PROJECT_ID"))
    );
    assert_eq!(info.project_name.as_deref(), Some("demo"));
    assert_eq!(info.user_domain_id, "default");
    // member implies reader; nothing more.
    assert!(
        info.has_role("member") && info.has_role("reader"),
        "{info:?}"
    );
    assert!(!info.has_role("admin"), "{info:?}");
    assert!(info.expires_at > chrono::Utc::now());
    assert!(info.trust_id.is_none());
    let after_first = magnum.stats();
    assert_eq!(after_first.validate_requests, 1);
    assert_eq!(after_first.validate_cache_hits, 0);

    // The same token again: from the cache, no request to Keystone.
    let again = magnum.validate(&demo_token).await.expect("validate again");
    assert_eq!(again, info);
    let after_second = magnum.stats();
    assert_eq!(after_second.validate_requests, 1);
    assert_eq!(after_second.validate_cache_hits, 1);

    let reader_token = login(ks.auth("reader1", "KEYSTONE_READER_PASSWORD", "demo")).await;
    let reader = magnum
        .validate(&reader_token)
        .await
        .expect("validate reader");
    assert_eq!(reader.user_name, "reader1");
    assert_eq!(reader.project_id, info.project_id);
    assert!(reader.has_role("reader") && !reader.has_role("member"));

    let before = magnum.stats().validate_requests;
    assert_eq!(
        magnum.validate("gAAAAABgarbage-token").await,
        Err(KeystoneError::InvalidToken)
    );
    assert_eq!(magnum.stats().validate_requests, before + 1);
    // Not even a header value: refused without asking Keystone.
    for junk in ["", "two words", "line\nbreak"] {
        assert_eq!(
            magnum.validate(junk).await,
            Err(KeystoneError::InvalidToken)
        );
    }
    assert_eq!(magnum.stats().validate_requests, before + 1);
}

async fn revoked_tokens(ks: &Harness) {
    let demo = || ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo");

    // No cache: a revoked token is refused at once.
    let uncached = client(ks.magnum(), no_cache());
    let token = login(demo()).await;
    uncached
        .validate(&token)
        .await
        .expect("valid before revoke");
    uncached.revoke(&token).await.expect("revoke");
    assert_eq!(
        uncached.validate(&token).await,
        Err(KeystoneError::InvalidToken)
    );
    assert_eq!(uncached.stats().validate_cache_hits, 0);

    // A 1 s cache: the revoked token is served from the cache until the entry
    // expires, then refused; forget() drops it at once.
    let short = client(
        ks.magnum(),
        KeystoneOptions {
            cache_max_ttl: Duration::from_secs(1),
            ..KeystoneOptions::default()
        },
    );
    let token = login(demo()).await;
    let other = login(demo()).await;
    short.validate(&token).await.expect("valid");
    short.validate(&other).await.expect("valid");
    uncached.revoke(&token).await.expect("revoke");
    uncached.revoke(&other).await.expect("revoke");
    assert!(short.validate(&token).await.is_ok(), "still cached");
    short.forget(&other);
    assert_eq!(
        short.validate(&other).await,
        Err(KeystoneError::InvalidToken)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        short.validate(&token).await,
        Err(KeystoneError::InvalidToken)
    );

    // The client's own service token revoked behind its back: the 401 makes
    // it log in again and retry, and the user's token still validates.
    let victim = client(ks.magnum(), no_cache());
    let own = victim.service_token().await.expect("login");
    uncached
        .revoke(own.expose())
        .await
        .expect("revoke service token");
    let user = login(demo()).await;
    victim
        .validate(&user)
        .await
        .expect("validate after re-login");
    assert_eq!(victim.stats().service_auth_requests, 2);
    assert_ne!(
        victim.service_token().await.expect("new token").expose(),
        own.expose()
    );
}

async fn trust_round_trip(ks: &Harness) {
    let magnum = client(ks.magnum(), no_cache());
    let demo_token = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;
    let demo = magnum.validate(&demo_token).await.expect("validate demo");

    let trust = magnum
        .create_trust(&demo_token, &demo)
        .await
        .expect("create trust");
    assert_eq!(trust.trustor_user_id, demo.user_id);
    assert_eq!(trust.trustee_user_id, ks.get("KEYSTONE_MAGNUM_USER_ID"));
    assert_eq!(trust.project_id, demo.project_id);
    assert!(trust.impersonation);
    assert!(trust.roles.iter().any(|r| r == "member"), "{trust:?}");

    let scoped = magnum
        .trust_scoped_token(&trust.id)
        .await
        .expect("trust-scoped token");
    // Impersonation: the token acts as demo, on demo's project.
    assert_eq!(scoped.info.trust_id.as_deref(), Some(trust.id.as_str()));
    assert_eq!(scoped.info.user_id, demo.user_id);
    assert_eq!(scoped.info.project_id, demo.project_id);
    assert!(scoped.info.has_role("member"));
    assert!(scoped
        .catalog
        .endpoint("identity", "public", Some("RegionOne"))
        .is_ok());
    assert!(!format!("{scoped:?}").contains(scoped.token.expose()));
    let seen = magnum
        .validate(scoped.token.expose())
        .await
        .expect("validate trust token");
    assert_eq!(seen.trust_id.as_deref(), Some(trust.id.as_str()));

    // Only the trustor's own token may create a trust.
    let reader_token = login(ks.auth("reader1", "KEYSTONE_READER_PASSWORD", "demo")).await;
    assert!(magnum.create_trust(&reader_token, &demo).await.is_err());

    magnum.delete_trust(&trust.id).await.expect("delete trust");
    // Deleting the trust revokes its tokens, and no new one is issued.
    assert_eq!(
        magnum.validate(scoped.token.expose()).await,
        Err(KeystoneError::InvalidToken)
    );
    let err = magnum.trust_scoped_token(&trust.id).await.unwrap_err();
    assert!(matches!(err, KeystoneError::NotFound(_)), "{err:?}");
    // Deleting again is not an error (cleanup can be retried).
    magnum.delete_trust(&trust.id).await.expect("delete again");
}

/// The API in `keystone` mode: tokens from the real Keystone decide who
/// calls; no token or a bad one is a 401 in the envelope; roles map to
/// upstream's policy defaults.
async fn api_in_keystone_mode(ks: &Harness) {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use magnum_host::{
        api::{router, AppState, Identity},
        db::{self, DbPool},
        plugins::Registry,
    };
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let pool = DbPool::connect(&format!(
        "sqlite://{}",
        dir.path().join("m.sqlite").display()
    ))
    .expect("sqlite");
    db::migrate(&mut pool.get().expect("conn")).expect("migrate");
    let service = client(ks.magnum(), KeystoneOptions::default());
    let mut state = AppState::new(Registry::default(), pool);
    state.identity = Identity::Keystone(service.clone());
    let app = router(std::sync::Arc::new(state));
    let call =
        |token: Option<String>, method: &str, path: &str, body: Option<serde_json::Value>| {
            let app = app.clone();
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .header("openstack-api-version", "container-infra latest");
            if let Some(t) = token {
                req = req.header("x-auth-token", t);
            }
            let req = req
                .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
                .expect("request");
            async move {
                let resp = app.oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let bytes = resp.into_body().collect().await.expect("body").to_bytes();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
                )
            }
        };
    let demo = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;
    let reader = login(ks.auth("reader1", "KEYSTONE_READER_PASSWORD", "demo")).await;
    let admin = service
        .service_token()
        .await
        .expect("service token")
        .expose()
        .to_owned();
    let demo_project = service
        .validate(&demo)
        .await
        .expect("demo token")
        .project_id
        .expect("project scoped");

    // Version documents stay public; everything else needs a valid token.
    assert_eq!(call(None, "GET", "/", None).await.0, 200);
    assert_eq!(call(None, "GET", "/v1", None).await.0, 200);
    let (status, body) = call(None, "GET", "/v1/clusters", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["status"], 401);
    let (status, _) = call(Some("not-a-token".into()), "GET", "/v1/clusters", None).await;
    assert_eq!(status, 401);

    let (status, body) = call(Some(demo.clone()), "GET", "/v1/clusters", None).await;
    assert_eq!((status, body), (200, serde_json::json!({"clusters": []})));
    let (status, body) = call(Some(demo.clone()), "GET", "/v1/stats", None).await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"clusters": 0, "nodes": 0}))
    );
    let (status, body) = call(
        Some(demo.clone()),
        "POST",
        "/v1/quotas",
        Some(serde_json::json!({"project_id": demo_project, "hard_limit": 3})),
    )
    .await;
    assert_eq!(status, 403, "quotas are admin-only: {body}");
    assert_eq!(
        call(Some(demo.clone()), "GET", "/v1/mservices", None)
            .await
            .0,
        403
    );

    let (status, body) = call(
        Some(admin.clone()),
        "POST",
        "/v1/quotas",
        Some(serde_json::json!({"project_id": demo_project, "hard_limit": 3})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        call(Some(admin.clone()), "GET", "/v1/mservices", None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        Some(demo.clone()),
        "GET",
        &format!("/v1/quotas/{demo_project}/Cluster"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["hard_limit"].clone()),
        (200, serde_json::json!(3))
    );
    assert_eq!(
        call(
            Some(demo.clone()),
            "GET",
            "/v1/quotas/another-project/Cluster",
            None
        )
        .await
        .0,
        403
    );

    // reader1: may read, may not write.
    assert_eq!(
        call(Some(reader.clone()), "GET", "/v1/clustertemplates", None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        Some(reader),
        "POST",
        "/v1/clusters",
        Some(serde_json::json!({"cluster_template_id": "x"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["errors"][0]["detail"],
        "Policy doesn't allow cluster:create to be performed."
    );
}

/// A TLS-terminating proxy (tests/keystone/tls_proxy.py) on 127.0.0.1 in
/// front of the harness's Keystone, with a CA and a server certificate for
/// 127.0.0.1 made here; killed on drop.
struct TlsProxy {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsProxy {
    fn start(ks: &Harness) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use std::io::BufRead;

        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "magnum-rs test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::from_ca_cert_pem(&ca.pem(), &ca_key).expect("issuer");
        let server_key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server = params.signed_by(&server_key, &issuer).expect("server cert");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca.pem");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("server.pem");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem())
            .expect("server.key");

        let upstream = url_port(ks.url());
        let mut child = Command::new("python3")
            .arg(ks.dir.join("tls_proxy.py"))
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .arg(upstream.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 tests/keystone/tls_proxy.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("proxy port");
        let port = line.trim().parse().expect("the proxy prints its port");
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/v3", self.port)
    }

    fn cafile(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_port(url: &str) -> u16 {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// A `tracing` writer into a shared buffer, to see the warnings logged.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buffer")).into_owned()
    }
}

/// Keystone reached over https: trusted through `cafile`; refused without
/// it, with the certificate problem named (the API answers 503); accepted
/// with `insecure`, which logs a warning.
async fn keystone_over_https(ks: &Harness) {
    use magnum_host::openstack::{Tls, TlsSettings};

    let proxy = TlsProxy::start(ks);
    let over_https = |tls: Tls| {
        let mut auth = ks.magnum();
        auth.auth_url = proxy.url();
        client(auth, KeystoneOptions { tls, ..no_cache() })
    };
    let user_token = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;

    // The CA file configured: the service login and the validation go over
    // TLS.
    let tls = Tls::new(&TlsSettings {
        cafile: Some(proxy.cafile()),
        insecure: false,
    })
    .expect("cafile");
    let trusted = over_https(tls);
    assert_eq!(trusted.auth_url().scheme(), "https");
    let info = trusted
        .validate(&user_token)
        .await
        .expect("validate over https");
    assert_eq!(info.user_name, "demo");
    assert_eq!(trusted.stats().service_auth_requests, 1);

    // Without it (the system roots only): a clear error, never a panic.
    let untrusted = over_https(Tls::default());
    let err = untrusted.validate(&user_token).await.unwrap_err();
    eprintln!("https without the CA: {err}");
    match &err {
        KeystoneError::Unavailable(m) => {
            assert!(m.contains("certificate"), "{m}");
            assert!(m.contains("UnknownIssuer"), "{m}");
            assert!(m.contains("[keystone] cafile"), "{m}");
        }
        other => panic!("expected Unavailable naming the certificate, got {other:?}"),
    }
    // ...which the API answers with a 503.
    {
        use axum::{body::Body, http::Request};
        use magnum_host::{
            api::{router, AppState, Identity},
            db::{self, DbPool},
            plugins::Registry,
        };
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = DbPool::connect(&format!(
            "sqlite://{}",
            dir.path().join("m.sqlite").display()
        ))
        .expect("sqlite");
        db::migrate(&mut pool.get().expect("conn")).expect("migrate");
        let mut state = AppState::new(Registry::default(), pool);
        state.identity = Identity::Keystone(untrusted.clone());
        let response = router(std::sync::Arc::new(state))
            .oneshot(
                Request::get("/v1/clusters")
                    .header("x-auth-token", &user_token)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status().as_u16(), 503);
    }

    // insecure = true: accepted, and said loudly.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let tls = tracing::subscriber::with_default(subscriber, || {
        Tls::new(&TlsSettings {
            cafile: None,
            insecure: true,
        })
    })
    .expect("insecure");
    let logged = captured.text();
    assert!(
        logged.contains("WARN") && logged.contains("NOT verified"),
        "{logged}"
    );
    let insecure = over_https(tls);
    let info = insecure
        .validate(&user_token)
        .await
        .expect("validate with insecure = true");
    assert_eq!(info.user_name, "demo");
}

/// The state magnumd builds from its config with the heat orchestrator:
/// without `[api] public_url`, nodes get the catalog's container-infra
/// endpoint; with neither, the start is refused with what to set.
async fn nodes_get_the_catalogs_magnum_url(ks: &Harness) {
    use magnum_host::{app::AppState, config::Config, config::Overrides, db, plugins::Registry};
    let data = tempfile::tempdir().expect("tempdir");
    let config = |region: &str, public_url: &str| {
        let text = format!(
            "[conductor]\norchestrator = \"heat\"\n[catalog]\nsource = \"embedded\"\n[api]\n{public_url}\n[keystone]\nauth_url = \"{}\"\nusername = \"magnum\"\npassword = \"{}\"\nproject_name = \"service\"\nregion = \"{region}\"\n",
            ks.url(),
            ks.get("KEYSTONE_MAGNUM_PASSWORD"),
        );
        Config::from_toml(
            &text,
            &Overrides {
                data_dir: Some(data.path().to_owned()),
                ..Default::default()
            },
        )
        .expect("config")
    };
    let pool = || {
        let pool = db::DbPool::connect(&format!(
            "sqlite://{}",
            data.path().join("m.sqlite").display()
        ))
        .expect("sqlite");
        db::migrate(&mut pool.get().expect("conn")).expect("migrate");
        pool
    };
    let region = ks.get("KEYSTONE_REGION").to_owned();
    let state = AppState::from_config(&config(&region, ""), Registry::default(), pool(), None)
        .await
        .expect("state");
    let expected = ks.get("KEYSTONE_MAGNUM_API_URL");
    assert_eq!(state.host_context().magnum_url.as_deref(), Some(expected));

    // [api] public_url wins, and gets its /v1.
    let state = AppState::from_config(
        &config(&region, "public_url = \"https://magnum.example:9511/\""),
        Registry::default(),
        pool(),
        None,
    )
    .await
    .expect("state");
    assert_eq!(
        state.host_context().magnum_url.as_deref(),
        Some("https://magnum.example:9511/v1")
    );

    // No container-infra endpoint in this region and no public_url.
    let err = AppState::from_config(&config("Nowhere", ""), Registry::default(), pool(), None)
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(message.contains("set [api] public_url"), "{message}");
    assert!(message.contains("container-infra"), "{message}");
}

#[test]
fn keystone_client_against_real_keystone() {
    let mut ks = match Harness::start() {
        Ok(ks) => ks,
        Err(reason) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED keystone_client_against_real_keystone: {reason}");
            return;
        }
        Err(reason) => panic!("keystone harness did not start under CI=true: {reason}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    rt.block_on(async {
        service_auth_and_catalog(&ks).await;
        validate_member_and_reader(&ks).await;
        openstack_calls_are_metered(&ks);
        revoked_tokens(&ks).await;
        trust_round_trip(&ks).await;
        api_in_keystone_mode(&ks).await;
        keystone_over_https(&ks).await;
        nodes_get_the_catalogs_magnum_url(&ks).await;
    });

    // Keystone stopped: a token in the cache is still served (as
    // keystonemiddleware does), anything else is Unavailable.
    let (cached_client, cached_token, fresh_token) = rt.block_on(async {
        let c = client(ks.magnum(), KeystoneOptions::default());
        let t = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;
        c.validate(&t).await.expect("validate before stop");
        let fresh = login(ks.auth("demo", "KEYSTONE_DEMO_PASSWORD", "demo")).await;
        (c, t, fresh)
    });
    ks.stop();
    rt.block_on(async {
        assert!(cached_client.validate(&cached_token).await.is_ok());
        let err = cached_client.validate(&fresh_token).await.unwrap_err();
        assert!(matches!(err, KeystoneError::Unavailable(_)), "{err:?}");
        let err = client(ks.magnum(), KeystoneOptions::default())
            .service_token()
            .await
            .unwrap_err();
        assert!(matches!(err, KeystoneError::Unavailable(_)), "{err:?}");
        let err = client(ks.magnum(), KeystoneOptions::default())
            .catalog_endpoint("identity")
            .await
            .unwrap_err();
        assert!(matches!(err, KeystoneError::Unavailable(_)), "{err:?}");
    });
}
