//! One HTTP session for every OpenStack service magnum calls (Keystone,
//! Heat, Glance, Nova, Neutron), in the shape of keystoneauth1's `Session`:
//!
//! - **TLS**: rustls with the system's roots, `[keystone] cafile` and
//!   `insecure` ([`Tls`]), for every endpoint alike;
//! - **endpoints**: the service catalog of a token ([`Catalog`]), by service
//!   type, interface and region;
//! - **tokens**: [`TokenSource`] is where a call's `X-Auth-Token` comes
//!   from (the service user's cached token, a trust-scoped token, a user's
//!   own); a `401` makes the source forget the token and the call is sent
//!   once more with a fresh one, when the source can get one;
//! - **timeouts**: a connect timeout per session, a whole-call timeout per
//!   session that a call may override;
//! - **errors**: [`SessionError`], which each client maps to its own as
//!   before (Keystone `Unavailable`, the orchestrator's retried
//!   `Unavailable`, the API's 503).
//!
//! Redirects are never followed by the transport (one would carry the token
//! wherever `Location` points); Heat follows its own by hand.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use reqwest::{
    header::{HeaderMap, HeaderValue},
    Method, StatusCode, Url,
};
use serde::Deserialize;

pub use super::tls::{Tls, TlsSettings};

pub const AUTH_HEADER: &str = "X-Auth-Token";
/// Keystone's own limit on a token is far below this; anything longer is junk
/// and is refused before it reaches the network.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ---------------------------------------------------------------- tokens

/// A token kept out of logs: `Debug` prints `***`. `expose()` is the only way
/// to the text, which makes each use easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(Arc<str>);

impl SecretToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Arc::from(token.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(***)")
    }
}

/// A header value marked sensitive (hyper then hides it from its own Debug
/// output). Tokens with characters no header may hold are refused here.
pub fn token_header(token: &str) -> Option<HeaderValue> {
    if token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    let mut value = HeaderValue::from_str(token).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Where the `X-Auth-Token` of a call comes from.
pub trait TokenSource: Send + Sync {
    /// What getting a token can fail with; a transport failure of the call
    /// itself becomes one too.
    type Error: From<SessionError> + Send;

    /// The token to send (called once per attempt).
    fn token(&self) -> BoxFuture<'_, Result<SecretToken, Self::Error>>;

    /// `stale` got a 401: forget it. `true` when a fresh token may be tried
    /// (the service user logs in again); `false` when there is no other
    /// (a user's own token).
    fn forget<'a>(&'a self, stale: &'a SecretToken) -> BoxFuture<'a, bool>;
}

/// A token the caller already holds (a user's): a 401 is final.
pub struct FixedToken(pub SecretToken);

impl TokenSource for FixedToken {
    type Error = SessionError;

    fn token(&self) -> BoxFuture<'_, Result<SecretToken, SessionError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn forget<'a>(&'a self, _stale: &'a SecretToken) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

// ---------------------------------------------------------------- catalog

/// A token's service catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Catalog(pub Vec<CatalogService>);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// The catalog has no endpoint of that service type on that interface and
/// region, or its URL does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    NotFound {
        service_type: String,
        interface: String,
        region: Option<String>,
    },
    BadUrl(String),
}

/// `publicURL` (the v2 spelling, still common in configs) -> `public`.
pub fn normalize_interface(interface: &str) -> String {
    let lower = interface.trim().to_ascii_lowercase();
    lower.strip_suffix("url").unwrap_or(&lower).to_owned()
}

impl Catalog {
    /// The first endpoint of `service_type` on `interface` in `region` (any
    /// region when `None`).
    pub fn find(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Result<Url, EndpointError> {
        let interface = normalize_interface(interface);
        let found = self
            .0
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .find(|e| {
                e.interface == interface
                    && region.is_none_or(|r| {
                        e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                    })
            });
        match found {
            Some(e) => Url::parse(&e.url).map_err(|err| {
                EndpointError::BadUrl(format!("catalog URL '{}' for {service_type}: {err}", e.url))
            }),
            None => Err(EndpointError::NotFound {
                service_type: service_type.to_owned(),
                interface,
                region: region.map(str::to_owned),
            }),
        }
    }
}

// ---------------------------------------------------------------- errors

/// What a call can fail with below the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not reached, timed out, a TLS failure (the certificate problem named),
    /// or the answer broke off.
    #[error("{0}")]
    Unavailable(String),
    /// The token cannot go in a header.
    #[error("the token is not a valid header value")]
    BadToken,
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Config(String),
}

/// An error with its causes, `: `-joined (reqwest's own message alone is
/// just "error sending request").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A transport failure; a certificate refusal says how to fix it.
fn transport_error(err: &reqwest::Error) -> SessionError {
    let mut text = error_chain(err);
    if text.contains("certificate") {
        text.push_str(
            " (the server's TLS certificate is not trusted: set [keystone] cafile to the CA bundle that signed it)",
        );
    }
    SessionError::Unavailable(text)
}

// ---------------------------------------------------------------- session

/// Timeouts and TLS of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// A whole call, answer read included (a call may set its own).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub tls: Tls,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            tls: Tls::default(),
        }
    }
}

/// One request.
pub struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<&'a serde_json::Value>,
    /// Overrides the session's request timeout.
    pub timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }

    pub fn json(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP side of every OpenStack client; cheap to clone (one connection
/// pool).
#[derive(Clone)]
pub struct Session {
    http: reqwest::Client,
    options: SessionOptions,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(options: SessionOptions) -> Result<Self, SessionError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(options.tls.client_config())
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("magnum-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SessionError::Config(error_chain(&e)))?;
        Ok(Self { http, options })
    }

    /// The same TLS with other timeouts (a new connection pool).
    pub fn with_timeouts(
        &self,
        request: Duration,
        connect: Duration,
    ) -> Result<Self, SessionError> {
        Self::new(SessionOptions {
            request_timeout: request,
            connect_timeout: connect,
            tls: self.options.tls.clone(),
        })
    }

    pub fn tls(&self) -> &Tls {
        &self.options.tls
    }

    /// Send `call` and read the whole answer, without a token of its own.
    ///
    /// A pooled connection the server closed at the instant it was reused
    /// (gunicorn's keep-alive is 2 s) fails the request after it was
    /// written. Retrying once is safe when nothing was sent (connect) or the
    /// method is idempotent; a POST that may have landed is not retried.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer, SessionError> {
        let idempotent = matches!(call.method, Method::GET | Method::HEAD | Method::DELETE);
        let started = std::time::Instant::now();
        let record = |status: Option<StatusCode>| {
            crate::metrics::METRICS.openstack_request(
                &call.url,
                call.method.as_str(),
                status.map(|s| s.as_u16()),
                started.elapsed(),
            )
        };
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(timeout) = call.timeout {
                request = request.timeout(timeout);
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => break response,
                Err(e) if attempt == 1 && !e.is_timeout() && (e.is_connect() || idempotent) => {
                    tracing::debug!(
                        url = %call.url.origin().ascii_serialization(),
                        "{}; retrying once",
                        error_chain(&e)
                    );
                }
                Err(e) => {
                    record(None);
                    return Err(transport_error(&e));
                }
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| {
            record(None);
            transport_error(&e)
        })?;
        record(Some(status));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `send` with the source's token; a 401 makes the source forget it and,
    /// when it can get another, the call goes once more.
    pub async fn send_authed<S: TokenSource>(
        &self,
        source: &S,
        call: &Call<'_>,
    ) -> Result<Answer, S::Error> {
        let mut retried = false;
        loop {
            let token = source.token().await?;
            let value = token_header(token.expose()).ok_or(SessionError::BadToken)?;
            let mut headers = call.headers.clone();
            headers.insert(AUTH_HEADER, value);
            let authed = Call {
                method: call.method.clone(),
                url: call.url.clone(),
                headers,
                body: call.body,
                timeout: call.timeout,
            };
            let answer = self.send(&authed).await?;
            if answer.status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                if source.forget(&token).await {
                    tracing::info!(
                        url = %call.url.origin().ascii_serialization(),
                        "token refused; retrying once with a fresh one"
                    );
                    continue;
                }
            }
            return Ok(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_header_tokens_are_refused_locally() {
        assert!(token_header("").is_none());
        assert!(token_header("a b").is_none());
        assert!(token_header("a\nb").is_none());
        assert!(token_header(&"a".repeat(MAX_TOKEN_LEN + 1)).is_none());
        assert!(token_header("gAAAAA-_=").is_some());
    }

    #[test]
    fn catalog_honours_interface_and_region() {
        let catalog: Catalog = serde_json::from_value(json!([
            {"type": "orchestration", "name": "heat", "endpoints": [
                {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://internal:8004/v1/p"},
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo", "url": "https://two:8004/v1/p"},
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://one:8004/v1/p"}
            ]}
        ]))
        .unwrap();
        let url =
            |i: &str, r: Option<&str>| catalog.find("orchestration", i, r).map(|u| u.to_string());
        assert_eq!(
            url("public", Some("RegionOne")).unwrap(),
            "http://one:8004/v1/p"
        );
        assert_eq!(
            url("publicURL", Some("RegionTwo")).unwrap(),
            "https://two:8004/v1/p"
        );
        assert_eq!(url("internal", None).unwrap(), "http://internal:8004/v1/p");
        assert!(matches!(
            url("admin", None),
            Err(EndpointError::NotFound { .. })
        ));
    }

    /// A fake service that answers 401 to `stale` and 200 to anything else.
    struct Rotating {
        next: std::sync::Mutex<Vec<&'static str>>,
        forgotten: std::sync::atomic::AtomicU32,
    }

    impl TokenSource for Rotating {
        type Error = SessionError;

        fn token(&self) -> BoxFuture<'_, Result<SecretToken, SessionError>> {
            let t = *self.next.lock().unwrap().last().unwrap();
            Box::pin(async move { Ok(SecretToken::new(t)) })
        }

        fn forget<'a>(&'a self, _stale: &'a SecretToken) -> BoxFuture<'a, bool> {
            self.forgotten
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let more = {
                let mut next = self.next.lock().unwrap();
                next.pop();
                !next.is_empty()
            };
            Box::pin(async move { more })
        }
    }

    #[tokio::test]
    async fn a_401_is_retried_once_with_a_fresh_token() {
        use axum::{http::HeaderMap as AxHeaders, routing::get, Router};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().route(
            "/",
            get(|h: AxHeaders| async move {
                match h.get(AUTH_HEADER).and_then(|v| v.to_str().ok()) {
                    Some("good") => (axum::http::StatusCode::OK, "{}"),
                    _ => (axum::http::StatusCode::UNAUTHORIZED, "{}"),
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let session = Session::new(SessionOptions::default()).unwrap();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let call = Call::new(Method::GET, url);

        // stale then good: one retry.
        let source = Rotating {
            next: std::sync::Mutex::new(vec!["good", "stale"]),
            forgotten: Default::default(),
        };
        let answer = session.send_authed(&source, &call).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            source.forgotten.load(std::sync::atomic::Ordering::SeqCst),
            1
        );

        // stale twice: the second 401 is the answer.
        let source = Rotating {
            next: std::sync::Mutex::new(vec!["stale", "stale", "stale"]),
            forgotten: Default::default(),
        };
        let answer = session.send_authed(&source, &call).await.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            source.forgotten.load(std::sync::atomic::Ordering::SeqCst),
            1
        );

        // A user's own token: no retry.
        let answer = session
            .send_authed(&FixedToken(SecretToken::new("stale")), &call)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            session
                .send_authed(&FixedToken(SecretToken::new("a b")), &call)
                .await
                .unwrap_err(),
            SessionError::BadToken
        );

        // Nobody listens on port 1: unavailable, with the cause.
        let down = Call::new(Method::GET, Url::parse("https://127.0.0.1:1/").unwrap());
        assert!(matches!(
            session.send(&down).await,
            Err(SessionError::Unavailable(m)) if m.contains("onnect")
        ));
    }
}
