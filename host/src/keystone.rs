//! Keystone v3 client: the service user's own token (cached, refreshed before
//! it expires), the service catalog, validation of users' tokens with a
//! bounded cache, and trusts for the orchestrator.
//!
//! Secrets (passwords, tokens) are never logged: every type that holds one
//! implements `Debug` by hand, and the token cache is keyed by the token's
//! SHA-256, so a memory dump of the cache holds no usable token.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{header::HeaderMap, Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::openstack::{
    session::{normalize_interface, BoxFuture},
    token_header, Answer, Call, EndpointError, FixedToken, Session, SessionError, SessionOptions,
    Tls, TokenSource,
};
pub use crate::openstack::{Catalog, CatalogEndpoint, CatalogService, SecretToken};

const SUBJECT_HEADER: &str = "X-Subject-Token";
/// A cached trust-scoped token is renewed this long before it expires.
const TRUST_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

/// Errors of the Keystone client. The API maps `InvalidToken` to 401 and
/// `Unavailable` to 503; the others are configuration or programming errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoneError {
    /// The user's token is unknown, expired or revoked (Keystone said 401/404).
    #[error("the token is invalid, expired or revoked")]
    InvalidToken,
    /// Keystone could not be reached, timed out or answered 5xx.
    #[error("keystone is unavailable: {0}")]
    Unavailable(String),
    /// Keystone refused the service user's own credentials.
    #[error("keystone refused the service credentials: {0}")]
    ServiceAuthFailed(String),
    /// Keystone answered 403: the caller lacks a role the policy asks for.
    #[error("keystone refused the request: {0}")]
    Forbidden(String),
    /// The object named (a trust, say) does not exist.
    #[error("not found in keystone: {0}")]
    NotFound(String),
    /// The service token's catalog has no such endpoint.
    #[error("no {interface} endpoint for service type '{service_type}'{}", region_suffix(.region))]
    EndpointNotFound {
        service_type: String,
        interface: String,
        region: Option<String>,
    },
    /// A bad auth URL or other unusable setting.
    #[error("keystone client configuration: {0}")]
    Config(String),
    /// Any other answer, or a body that is not what Keystone sends.
    #[error("unexpected answer from keystone ({status}): {message}")]
    Unexpected { status: u16, message: String },
}

fn region_suffix(region: &Option<String>) -> String {
    region
        .as_ref()
        .map(|r| format!(" in region '{r}'"))
        .unwrap_or_default()
}

/// The service user's credentials (keystonemiddleware's `[keystone_authtoken]`
/// password plugin): a project-scoped password login.
#[derive(Clone)]
pub struct ServiceAuth {
    /// `http://host:port` or `http://host:port/v3` (`/v3` is added if missing).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub user_domain_name: String,
    pub project_name: String,
    pub project_domain_name: String,
    /// Catalog region; `None` takes the first endpoint whatever its region.
    pub region: Option<String>,
    /// Catalog interface: `public`, `internal` or `admin` (`publicURL` etc.
    /// are accepted too).
    pub interface: String,
}

impl ServiceAuth {
    /// Credentials with the usual defaults: domains `Default`, any region,
    /// the `public` interface.
    pub fn new(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        project_name: impl Into<String>,
    ) -> Self {
        Self {
            auth_url: auth_url.into(),
            username: username.into(),
            password: password.into(),
            user_domain_name: "Default".into(),
            project_name: project_name.into(),
            project_domain_name: "Default".into(),
            region: None,
            interface: "public".into(),
        }
    }
}

impl fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAuth")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("user_domain_name", &self.user_domain_name)
            .field("project_name", &self.project_name)
            .field("project_domain_name", &self.project_domain_name)
            .field("region", &self.region)
            .field("interface", &self.interface)
            .finish()
    }
}

/// Tuning of the client; `Default` suits production.
#[derive(Debug, Clone)]
pub struct KeystoneOptions {
    /// Longest time a validated token is trusted without asking Keystone
    /// again, which bounds how long a revoked token keeps working. Zero turns
    /// the cache off.
    pub cache_max_ttl: Duration,
    /// Most validated tokens kept at once.
    pub cache_capacity: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Get a new service token this long before the old one expires (at most
    /// half of the token's lifetime), so no request goes out with a token
    /// that dies on the way.
    pub refresh_margin: Duration,
    /// Trusted CAs of Keystone (and every endpoint of its catalog).
    pub tls: Tls,
}

impl Default for KeystoneOptions {
    fn default() -> Self {
        Self {
            cache_max_ttl: Duration::from_secs(300),
            cache_capacity: 10_000,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            refresh_margin: Duration::from_secs(60),
            tls: Tls::default(),
        }
    }
}

/// Who a token belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    /// `None` for a domain-, system-scoped or unscoped token.
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    /// Set for a domain-scoped token.
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
    /// A `system: all` scoped token.
    pub system_scope: bool,
    /// Role names, implied roles included (as Keystone lists them).
    pub roles: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    /// Set when the token is trust-scoped.
    pub trust_id: Option<String>,
    /// Not secret: they name a token in audit logs without revealing it.
    pub audit_ids: Vec<String>,
}

impl TokenInfo {
    /// Role check as oslo.policy does it: names compare case-insensitively.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// A token Keystone has just issued (the service user's, or a trust-scoped
/// one), with its catalog.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: SecretToken,
    pub info: TokenInfo,
    pub catalog: Catalog,
}

/// A trust as Keystone returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    pub id: String,
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    pub project_id: Option<String>,
    pub impersonation: bool,
    pub roles: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An application credential Keystone has just created. The secret is shown
/// once, at creation; it is never printed (`Debug` hides it).
#[derive(Clone)]
pub struct ApplicationCredential {
    pub id: String,
    /// The owner: the user whose token created it.
    pub user_id: String,
    pub project_id: Option<String>,
    pub secret: zeroize::Zeroizing<String>,
}

impl fmt::Debug for ApplicationCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationCredential")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .field("secret", &"***")
            .finish()
    }
}

/// Request counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeystoneStats {
    /// `GET /v3/auth/tokens` requests sent (retries included).
    pub validate_requests: u64,
    /// `validate()` calls answered from the cache.
    pub validate_cache_hits: u64,
    /// Password logins of the service user (`POST /v3/auth/tokens`).
    pub service_auth_requests: u64,
}

// ---------------------------------------------------------------- catalog

impl Catalog {
    /// The first endpoint of `service_type` on `interface` in `region` (any
    /// region when `None`).
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Result<Url, KeystoneError> {
        self.find(service_type, interface, region)
            .map_err(Into::into)
    }
}

impl From<EndpointError> for KeystoneError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::NotFound {
                service_type,
                interface,
                region,
            } => KeystoneError::EndpointNotFound {
                service_type,
                interface,
                region,
            },
            EndpointError::BadUrl(message) => KeystoneError::Unexpected {
                status: 200,
                message,
            },
        }
    }
}

impl From<SessionError> for KeystoneError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Unavailable(m) => KeystoneError::Unavailable(m),
            // Users' tokens are checked before they go out: this is ours.
            SessionError::BadToken => KeystoneError::Unexpected {
                status: 201,
                message: "keystone issued a token that is not a valid header".to_owned(),
            },
            SessionError::Config(m) => KeystoneError::Config(m),
        }
    }
}

// ---------------------------------------------------------------- wire format

#[derive(Deserialize)]
struct TokenEnvelope {
    token: WireToken,
}

#[derive(Deserialize)]
struct WireNamed {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct WireUser {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: Option<WireNamed>,
}

#[derive(Deserialize)]
struct WireProject {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: Option<WireNamed>,
}

#[derive(Deserialize)]
struct WireTrustRef {
    id: String,
}

#[derive(Deserialize)]
struct WireToken {
    user: WireUser,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    roles: Vec<WireNamed>,
    #[serde(default)]
    project: Option<WireProject>,
    #[serde(default)]
    domain: Option<WireNamed>,
    #[serde(default)]
    system: Option<serde_json::Value>,
    #[serde(default, rename = "OS-TRUST:trust")]
    trust: Option<WireTrustRef>,
    #[serde(default)]
    audit_ids: Vec<String>,
    #[serde(default)]
    catalog: Catalog,
}

impl WireToken {
    fn into_parts(self) -> (TokenInfo, Catalog) {
        let (user_domain_id, user_domain_name) =
            self.user.domain.map(|d| (d.id, d.name)).unwrap_or_default();
        let (project_id, project_name, project_domain_id, project_domain_name) = match self.project
        {
            Some(p) => {
                let (did, dname) = p.domain.map(|d| (d.id, d.name)).unwrap_or_default();
                (Some(p.id), Some(p.name), Some(did), Some(dname))
            }
            None => (None, None, None, None),
        };
        let info = TokenInfo {
            user_id: self.user.id,
            user_name: self.user.name,
            user_domain_id,
            user_domain_name,
            project_id,
            project_name,
            project_domain_id,
            project_domain_name,
            domain_id: self.domain.as_ref().map(|d| d.id.clone()),
            domain_name: self.domain.map(|d| d.name),
            system_scope: self
                .system
                .as_ref()
                .and_then(|s| s.get("all"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            roles: self.roles.into_iter().map(|r| r.name).collect(),
            expires_at: self.expires_at,
            issued_at: self.issued_at,
            trust_id: self.trust.map(|t| t.id),
            audit_ids: self.audit_ids,
        };
        (info, self.catalog)
    }
}

#[derive(Deserialize)]
struct TrustEnvelope {
    trust: WireTrust,
}

#[derive(Deserialize)]
struct WireTrust {
    id: String,
    trustor_user_id: String,
    trustee_user_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    impersonation: bool,
    #[serde(default)]
    roles: Vec<WireNamed>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct AppCredEnvelope {
    application_credential: WireAppCred,
}

#[derive(Deserialize)]
struct WireAppCred {
    id: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    secret: String,
}

// ---------------------------------------------------------------- token cache

type CacheKey = [u8; 32];

fn cache_key(token: &str) -> CacheKey {
    Sha256::digest(token.as_bytes()).into()
}

struct CacheEntry {
    info: TokenInfo,
    until: Instant,
}

/// Validated tokens by SHA-256. Eviction when full: expired entries first,
/// then the one closest to expiry. That scan is O(n), but it only runs when
/// the cache is full, and n is a few thousand.
struct TokenCache {
    entries: HashMap<CacheKey, CacheEntry>,
    capacity: usize,
}

impl TokenCache {
    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<TokenInfo> {
        match self.entries.get(key) {
            Some(e) if e.until > now => Some(e.info.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: CacheKey, info: TokenInfo, until: Instant, now: Instant) {
        if self.capacity == 0 || until <= now {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.until > now);
            if self.entries.len() >= self.capacity {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| *k)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, CacheEntry { info, until });
    }
}

// ---------------------------------------------------------------- client

/// The service user's current token and when to replace it.
struct ServiceSession {
    issued: IssuedToken,
    refresh_at: DateTime<Utc>,
}

#[derive(Default)]
struct Counters {
    validate_requests: AtomicU64,
    validate_cache_hits: AtomicU64,
    service_auth_requests: AtomicU64,
}

struct Inner {
    http: Session,
    auth: ServiceAuth,
    /// `.../v3/`, with the trailing slash `Url::join` needs.
    base: Url,
    interface: String,
    opts: KeystoneOptions,
    /// An async mutex so that concurrent callers wait for one login instead of
    /// each sending their own when the token runs out.
    session: tokio::sync::Mutex<Option<Arc<ServiceSession>>>,
    cache: Mutex<TokenCache>,
    /// Trust-scoped tokens of the service user, by trust id.
    trust_tokens: Mutex<HashMap<String, Arc<IssuedToken>>>,
    counters: Counters,
}

/// A Keystone v3 client acting as the service user. Cheap to clone (shared
/// state behind an `Arc`).
#[derive(Clone)]
pub struct KeystoneClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for KeystoneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneClient")
            .field("base", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// `http://h:5000`, `http://h:5000/v3`, `http://h/identity/v3/` -> `.../v3/`.
fn normalize_auth_url(auth_url: &str) -> Result<Url, KeystoneError> {
    let trimmed = auth_url.trim().trim_end_matches('/');
    let with_v3 = if trimmed.ends_with("/v3") {
        format!("{trimmed}/")
    } else {
        format!("{trimmed}/v3/")
    };
    let url = Url::parse(&with_v3)
        .map_err(|e| KeystoneError::Config(format!("auth_url '{auth_url}': {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(KeystoneError::Config(format!(
            "auth_url '{auth_url}': unsupported scheme '{other}'"
        ))),
    }
}

/// Keystone's `{"error": {"message": ...}}`, without any secret that went out
/// with the request (Keystone's "Could not find token: <token>" echoes it).
fn error_message(body: &str, secrets: &[&str]) -> String {
    let mut message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "***");
    }
    message
}

/// 5xx is Keystone (or its database) being down; the rest is per status.
fn status_error(status: StatusCode, body: &str, secrets: &[&str]) -> KeystoneError {
    let message = error_message(body, secrets);
    match status.as_u16() {
        500..=599 => KeystoneError::Unavailable(format!("keystone answered {status}: {message}")),
        403 => KeystoneError::Forbidden(message),
        404 => KeystoneError::NotFound(message),
        code => KeystoneError::Unexpected {
            status: code,
            message,
        },
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    body: &str,
) -> Result<T, KeystoneError> {
    serde_json::from_str(body).map_err(|e| KeystoneError::Unexpected {
        status: status.as_u16(),
        message: format!("unreadable body: {e}"),
    })
}

impl KeystoneClient {
    pub fn new(auth: ServiceAuth) -> Result<Self, KeystoneError> {
        Self::with_options(auth, KeystoneOptions::default())
    }

    pub fn with_options(auth: ServiceAuth, opts: KeystoneOptions) -> Result<Self, KeystoneError> {
        let base = normalize_auth_url(&auth.auth_url)?;
        // Keystone never redirects; the session follows none, since one
        // would carry X-Auth-Token to wherever the Location points.
        let http = Session::new(SessionOptions {
            request_timeout: opts.request_timeout,
            connect_timeout: opts.connect_timeout,
            tls: opts.tls.clone(),
        })?;
        let interface = normalize_interface(&auth.interface);
        let cache = TokenCache {
            entries: HashMap::new(),
            capacity: opts.cache_capacity,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                auth,
                base,
                interface,
                opts,
                session: tokio::sync::Mutex::new(None),
                cache: Mutex::new(cache),
                trust_tokens: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        })
    }

    /// The HTTP session (TLS, timeouts) of this client; the other
    /// OpenStack clients build theirs with the same TLS.
    pub fn http_session(&self) -> &Session {
        &self.inner.http
    }

    /// The trusted CAs of every OpenStack endpoint.
    pub fn tls(&self) -> &Tls {
        self.inner.http.tls()
    }

    /// The normalized identity URL, `.../v3/`.
    pub fn auth_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn stats(&self) -> KeystoneStats {
        let c = &self.inner.counters;
        KeystoneStats {
            validate_requests: c.validate_requests.load(Ordering::Relaxed),
            validate_cache_hits: c.validate_cache_hits.load(Ordering::Relaxed),
            service_auth_requests: c.service_auth_requests.load(Ordering::Relaxed),
        }
    }

    /// The service user's token, logging in again when it is close to expiry.
    pub async fn service_token(&self) -> Result<SecretToken, KeystoneError> {
        Ok(self.session().await?.issued.token.clone())
    }

    /// Who the service user is, as its current token says.
    pub async fn service_token_info(&self) -> Result<TokenInfo, KeystoneError> {
        Ok(self.session().await?.issued.info.clone())
    }

    /// The URL of `service_type` (`identity`, `orchestration`, `image`,
    /// `compute`, `network`, ...) in the service token's catalog, on the
    /// configured interface and region.
    pub async fn catalog_endpoint(&self, service_type: &str) -> Result<Url, KeystoneError> {
        let session = self.session().await?;
        session.issued.catalog.endpoint(
            service_type,
            &self.inner.interface,
            self.inner.auth.region.as_deref(),
        )
    }

    /// The URL of `service_type` as a node outside the control plane reaches
    /// it: the catalog's public endpoint, else its internal one, in the
    /// configured region.
    pub async fn node_facing_endpoint(&self, service_type: &str) -> Result<Url, KeystoneError> {
        let session = self.session().await?;
        let region = self.inner.auth.region.as_deref();
        let catalog = &session.issued.catalog;
        catalog
            .endpoint(service_type, "public", region)
            .or_else(|_| catalog.endpoint(service_type, "internal", region))
    }

    /// Forget the service token if it is still `token`, so the next call logs
    /// in again: for other services' clients (Heat) that got a 401 with it.
    pub async fn forget_service_token(&self, token: &SecretToken) {
        let mut guard = self.inner.session.lock().await;
        if guard.as_ref().is_some_and(|s| &s.issued.token == token) {
            *guard = None;
        }
    }

    /// Validate a user's token (`GET /v3/auth/tokens`), from the cache when it
    /// was validated less than `cache_max_ttl` ago and has not expired.
    pub async fn validate(&self, user_token: &str) -> Result<TokenInfo, KeystoneError> {
        let subject = token_header(user_token).ok_or(KeystoneError::InvalidToken)?;
        let key = cache_key(user_token);
        if let Some(info) = self.cache().get(&key, Instant::now()) {
            self.inner
                .counters
                .validate_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return Ok(info);
        }

        let url = self.url("auth/tokens?nocatalog")?;
        let mut headers = HeaderMap::new();
        headers.insert(SUBJECT_HEADER, subject);
        let (status, body) = self
            .send_as_service(Method::GET, url, headers, None, || {
                self.inner
                    .counters
                    .validate_requests
                    .fetch_add(1, Ordering::Relaxed);
            })
            .await?;
        match status {
            StatusCode::OK => {}
            // 404: unknown/expired/revoked subject. 401 after a fresh service
            // login as well (send_as_service already retried once).
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => {
                return Err(KeystoneError::InvalidToken)
            }
            other => return Err(status_error(other, &body, &[user_token])),
        }
        let (info, _) = parse_body::<TokenEnvelope>(status, &body)?
            .token
            .into_parts();

        let now_wall = Utc::now();
        if info.expires_at <= now_wall {
            return Err(KeystoneError::InvalidToken);
        }
        let remaining = (info.expires_at - now_wall).to_std().unwrap_or_default();
        let now = Instant::now();
        let until = now + remaining.min(self.inner.opts.cache_max_ttl);
        self.cache().insert(key, info.clone(), until, now);
        Ok(info)
    }

    /// Drop a token from the validation cache (after a logout, say).
    pub fn forget(&self, user_token: &str) {
        self.cache().entries.remove(&cache_key(user_token));
    }

    /// Empty the validation cache.
    pub fn clear_cache(&self) {
        self.cache().entries.clear();
    }

    /// Revoke a token (`DELETE /v3/auth/tokens`) and forget it. Revoking one
    /// that is already invalid answers `InvalidToken`.
    pub async fn revoke(&self, user_token: &str) -> Result<(), KeystoneError> {
        let subject = token_header(user_token).ok_or(KeystoneError::InvalidToken)?;
        self.forget(user_token);
        let mut headers = HeaderMap::new();
        headers.insert(SUBJECT_HEADER, subject);
        let url = self.url("auth/tokens")?;
        let (status, body) = self
            .send_as_service(Method::DELETE, url, headers, None, || {})
            .await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => Err(KeystoneError::InvalidToken),
            other => Err(status_error(other, &body, &[user_token])),
        }
    }

    /// Create a trust from the token's user (trustor) to the service user
    /// (trustee) on the token's project, with impersonation and all the
    /// user's roles (implied ones too, as the token lists them), as Magnum
    /// does for a cluster. `user_token` must be the user's own (not
    /// trust-scoped) token: Keystone only lets the trustor create it.
    ///
    /// The trust allows redelegation: Heat makes its own trust from the
    /// trust-scoped token the orchestrator calls it with, which Keystone only
    /// allows from a redelegatable trust (and with `[trust]
    /// allow_redelegation = true`). No expiry: it lives until the cluster is
    /// deleted.
    pub async fn create_trust(
        &self,
        user_token: &str,
        user: &TokenInfo,
    ) -> Result<Trust, KeystoneError> {
        token_header(user_token).ok_or(KeystoneError::InvalidToken)?;
        let project_id = user.project_id.as_deref().ok_or_else(|| {
            KeystoneError::Config("a trust needs a project-scoped token".to_owned())
        })?;
        let trustee = self.session().await?.issued.info.user_id.clone();
        let roles: Vec<_> = user.roles.iter().map(|r| json!({ "name": r })).collect();
        let body = json!({
            "trust": {
                "trustor_user_id": user.user_id,
                "trustee_user_id": trustee,
                "project_id": project_id,
                "impersonation": true,
                "allow_redelegation": true,
                "roles": roles,
            }
        });
        let url = self.url("OS-TRUST/trusts")?;
        let (status, text) = self.post_as_user(user_token, url, &body).await?;
        let t = parse_body::<TrustEnvelope>(status, &text)?.trust;
        Ok(Trust {
            id: t.id,
            trustor_user_id: t.trustor_user_id,
            trustee_user_id: t.trustee_user_id,
            project_id: t.project_id,
            impersonation: t.impersonation,
            roles: t.roles.into_iter().map(|r| r.name).collect(),
            expires_at: t.expires_at,
        })
    }

    /// POSTs `body` with the user's own token (what Keystone requires for
    /// trusts and application credentials made on the user's behalf): the
    /// status and body of a 200/201, else the error (never the token).
    async fn post_as_user(
        &self,
        user_token: &str,
        url: Url,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, String), KeystoneError> {
        let Answer {
            status, body: text, ..
        } = self
            .inner
            .http
            .send_authed(
                &FixedToken(SecretToken::new(user_token)),
                &Call::new(Method::POST, url).json(body),
            )
            .await?;
        match status {
            StatusCode::CREATED | StatusCode::OK => Ok((status, text)),
            StatusCode::UNAUTHORIZED => Err(KeystoneError::InvalidToken),
            other => Err(status_error(other, &text, &[user_token])),
        }
    }

    /// Delete a trust as the service user (Keystone allows the trustor or an
    /// admin; the service user holds admin on its project). A trust that is
    /// already gone counts as deleted, so cleanup can be retried.
    pub async fn delete_trust(&self, trust_id: &str) -> Result<(), KeystoneError> {
        self.trust_tokens().remove(trust_id);
        let url = self.url(&format!("OS-TRUST/trusts/{}", path_segment(trust_id)?))?;
        let (status, body) = self
            .send_as_service(Method::DELETE, url, HeaderMap::new(), None, || {})
            .await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            other => Err(status_error(other, &body, &[])),
        }
    }

    /// Create an application credential for the token's own user on the
    /// token's project (`POST /v3/users/{id}/application_credentials`),
    /// restricted (it cannot create more credentials or trusts), without
    /// expiry, with `roles` (a subset of the token's roles, implied ones
    /// included). Keystone refuses it for a delegated token (trust, OAuth,
    /// EC2) and for a token of a restricted application credential.
    pub async fn create_application_credential(
        &self,
        user_token: &str,
        user: &TokenInfo,
        name: &str,
        description: &str,
        roles: &[String],
    ) -> Result<ApplicationCredential, KeystoneError> {
        token_header(user_token).ok_or(KeystoneError::InvalidToken)?;
        let roles: Vec<_> = roles.iter().map(|r| json!({ "name": r })).collect();
        let body = json!({
            "application_credential": {
                "name": name,
                "description": description,
                "roles": roles,
                "unrestricted": false,
            }
        });
        let url = self.url(&format!(
            "users/{}/application_credentials",
            path_segment(&user.user_id)?
        ))?;
        let (status, text) = self.post_as_user(user_token, url, &body).await?;
        let c = parse_body::<AppCredEnvelope>(status, &text)?.application_credential;
        if c.secret.is_empty() {
            return Err(KeystoneError::Unexpected {
                status: status.as_u16(),
                message: "a new application credential without its secret".to_owned(),
            });
        }
        Ok(ApplicationCredential {
            id: c.id,
            user_id: if c.user_id.is_empty() {
                user.user_id.clone()
            } else {
                c.user_id
            },
            project_id: c.project_id,
            secret: zeroize::Zeroizing::new(c.secret),
        })
    }

    /// Delete an application credential as the service user (Keystone's
    /// `admin_or_owner`: the service user holds admin on its project). One
    /// already gone counts as deleted, so cleanup can be retried.
    pub async fn delete_application_credential(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<(), KeystoneError> {
        let url = self.url(&format!(
            "users/{}/application_credentials/{}",
            path_segment(user_id)?,
            path_segment(id)?
        ))?;
        let (status, body) = self
            .send_as_service(Method::DELETE, url, HeaderMap::new(), None, || {})
            .await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            other => Err(status_error(other, &body, &[])),
        }
    }

    /// A token for the trust, issued to the service user (the trustee): with
    /// impersonation it acts as the trustor on the trust's project. Not
    /// cached; the caller keeps it as long as `info.expires_at` allows.
    pub async fn trust_scoped_token(&self, trust_id: &str) -> Result<IssuedToken, KeystoneError> {
        // Log in normally first (cached): a refused password then surfaces as
        // ServiceAuthFailed here, so a 401 below can only be about the trust.
        self.session().await?;
        let scope = json!({ "OS-TRUST:trust": { "id": trust_id } });
        match self.password_login(scope).await {
            // Keystone answers 401 for an unknown or deleted trust.
            Err(KeystoneError::NotFound(m) | KeystoneError::ServiceAuthFailed(m)) => {
                Err(KeystoneError::NotFound(format!("trust {trust_id}: {m}")))
            }
            other => other,
        }
    }

    /// `trust_scoped_token`, cached until shortly before it expires.
    pub async fn trust_token(&self, trust_id: &str) -> Result<Arc<IssuedToken>, KeystoneError> {
        if let Some(t) = self.trust_tokens().get(trust_id) {
            if Utc::now() + TRUST_TOKEN_MARGIN < t.info.expires_at {
                return Ok(t.clone());
            }
        }
        let issued = Arc::new(self.trust_scoped_token(trust_id).await?);
        self.trust_tokens()
            .insert(trust_id.to_owned(), issued.clone());
        Ok(issued)
    }

    /// Forget the cached token of the trust if it is still `stale` (a
    /// service answered 401 to it), so the next call gets a new one.
    pub fn forget_trust_token(&self, trust_id: &str, stale: &SecretToken) {
        let mut tokens = self.trust_tokens();
        if tokens.get(trust_id).is_some_and(|t| &t.token == stale) {
            tokens.remove(trust_id);
        }
    }

    // ------------------------------------------------------------ internals

    fn trust_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<IssuedToken>>> {
        // Single inserts and removes: the map stays consistent across a panic.
        self.inner
            .trust_tokens
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // A panic while holding the lock leaves a consistent map behind (no
        // operation is multi-step across a panic point), so poison is ignored.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn url(&self, path: &str) -> Result<Url, KeystoneError> {
        self.inner
            .base
            .join(path)
            .map_err(|e| KeystoneError::Config(format!("URL for {path}: {e}")))
    }

    /// The current service session, logging in when there is none or it is
    /// due for refresh.
    async fn session(&self) -> Result<Arc<ServiceSession>, KeystoneError> {
        let mut guard = self.inner.session.lock().await;
        if let Some(s) = guard.as_ref() {
            if Utc::now() < s.refresh_at {
                return Ok(s.clone());
            }
        }
        let auth = &self.inner.auth;
        let scope = json!({
            "project": {
                "name": auth.project_name,
                "domain": { "name": auth.project_domain_name },
            }
        });
        let issued = self.password_login(scope).await?;
        let lifetime = (issued.info.expires_at - Utc::now())
            .to_std()
            .unwrap_or_default();
        let margin = self.inner.opts.refresh_margin.min(lifetime / 2);
        let refresh_at = issued.info.expires_at
            - chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
        tracing::debug!(
            user = %issued.info.user_name,
            expires_at = %issued.info.expires_at,
            "keystone: service token obtained"
        );
        let session = Arc::new(ServiceSession { issued, refresh_at });
        *guard = Some(session.clone());
        Ok(session)
    }

    /// `POST /v3/auth/tokens` with the service user's password and `scope`.
    async fn password_login(&self, scope: serde_json::Value) -> Result<IssuedToken, KeystoneError> {
        let auth = &self.inner.auth;
        let body = json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": auth.username,
                            "domain": { "name": auth.user_domain_name },
                            "password": auth.password,
                        }
                    }
                },
                "scope": scope,
            }
        });
        self.inner
            .counters
            .service_auth_requests
            .fetch_add(1, Ordering::Relaxed);
        let url = self.url("auth/tokens")?;
        let answer = self
            .inner
            .http
            .send(&Call::new(Method::POST, url).json(&body))
            .await?;
        let status = answer.status;
        let token = answer.header(SUBJECT_HEADER).map(SecretToken::new);
        let text = answer.body;
        let secrets = [auth.password.as_str()];
        match status {
            StatusCode::CREATED | StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(KeystoneError::ServiceAuthFailed(error_message(
                    &text, &secrets,
                )))
            }
            other => return Err(status_error(other, &text, &secrets)),
        }
        let token = token.ok_or_else(|| KeystoneError::Unexpected {
            status: status.as_u16(),
            message: format!("no {SUBJECT_HEADER} header on a new token"),
        })?;
        let (info, catalog) = parse_body::<TokenEnvelope>(status, &text)?
            .token
            .into_parts();
        Ok(IssuedToken {
            token,
            info,
            catalog,
        })
    }

    /// `send` with the service token. A 401 means that token died early
    /// (revoked, keys rotated): log in again and retry once, as
    /// keystonemiddleware does.
    async fn send_as_service(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<&serde_json::Value>,
        on_attempt: impl Fn() + Send + Sync,
    ) -> Result<(StatusCode, String), KeystoneError> {
        let mut call = Call::new(method, url);
        call.headers = headers;
        call.body = body;
        let source = ServiceToken {
            client: self,
            on_attempt: &on_attempt,
        };
        let Answer { status, body, .. } = self.inner.http.send_authed(&source, &call).await?;
        Ok((status, body))
    }
}

/// The service user's cached token, as a session's token source: a 401
/// drops it, so the next attempt logs in again.
struct ServiceToken<'a> {
    client: &'a KeystoneClient,
    on_attempt: &'a (dyn Fn() + Send + Sync),
}

impl TokenSource for ServiceToken<'_> {
    type Error = KeystoneError;

    fn token(&self) -> BoxFuture<'_, Result<SecretToken, KeystoneError>> {
        Box::pin(async move {
            let token = self.client.service_token().await?;
            (self.on_attempt)();
            Ok(token)
        })
    }

    fn forget<'a>(&'a self, stale: &'a SecretToken) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            tracing::info!("keystone: service token refused, logging in again");
            self.client.forget_service_token(stale).await;
            true
        })
    }
}

impl KeystoneClient {
    /// The service user's token as a session's token source, for the other
    /// OpenStack clients (Heat, the catalog): a 401 logs in again once.
    pub fn service_token_source(&self) -> impl TokenSource<Error = KeystoneError> + '_ {
        ServiceToken {
            client: self,
            on_attempt: &|| {},
        }
    }
}

/// An ID used as one URL path segment: Keystone IDs are hex or URL-safe, so
/// anything else is refused rather than escaped.
fn path_segment(id: &str) -> Result<&str, KeystoneError> {
    if !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(KeystoneError::NotFound(format!("invalid ID '{id}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str, expires_in: i64) -> TokenInfo {
        TokenInfo {
            user_id: user.into(),
            user_name: user.into(),
            user_domain_id: "default".into(),
            user_domain_name: "Default".into(),
            project_id: Some("p".into()),
            project_name: Some("demo".into()),
            project_domain_id: Some("default".into()),
            project_domain_name: Some("Default".into()),
            domain_id: None,
            domain_name: None,
            system_scope: false,
            roles: vec!["member".into(), "reader".into()],
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
            issued_at: None,
            trust_id: None,
            audit_ids: vec![],
        }
    }

    #[test]
    fn auth_url_normalization() {
        for (input, want) in [
            ("http://h:5000", "http://h:5000/v3/"),
            ("http://h:5000/", "http://h:5000/v3/"),
            ("http://h:5000/v3", "http://h:5000/v3/"),
            ("http://h/identity/v3/", "http://h/identity/v3/"),
            ("https://h:5000", "https://h:5000/v3/"),
        ] {
            assert_eq!(normalize_auth_url(input).unwrap().as_str(), want, "{input}");
        }
        assert!(matches!(
            normalize_auth_url("ftp://h:5000"),
            Err(KeystoneError::Config(_))
        ));
        assert!(matches!(
            normalize_auth_url("not a url"),
            Err(KeystoneError::Config(_))
        ));
    }

    #[test]
    fn secrets_are_redacted_from_debug() {
        let auth = ServiceAuth::new("http://h:5000", "magnum", "s3cret-pw", "service");
        let client = KeystoneClient::new(auth.clone()).unwrap();
        for text in [format!("{auth:?}"), format!("{client:?}")] {
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(text.contains("magnum"), "{text}");
        }
        let token = SecretToken::new("gAAAAAtoken");
        assert_eq!(format!("{token:?}"), "SecretToken(***)");
        let issued = IssuedToken {
            token,
            info: info("u", 60),
            catalog: Catalog::default(),
        };
        assert!(!format!("{issued:?}").contains("gAAAAAtoken"));
    }

    #[test]
    fn error_messages_drop_echoed_tokens() {
        let body = r#"{"error":{"code":404,"message":"Could not find token: gAAAAAsecret.","title":"Not Found"}}"#;
        let message = error_message(body, &["gAAAAAsecret"]);
        assert_eq!(message, "Could not find token: ***.");
    }

    #[test]
    fn catalog_honours_interface_and_region() {
        let catalog: Catalog = serde_json::from_value(json!([
            {"type": "orchestration", "name": "heat", "endpoints": [
                {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://internal:8004/v1/p"},
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo", "url": "http://two:8004/v1/p"},
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://one:8004/v1/p"}
            ]}
        ]))
        .unwrap();
        let url = |i: &str, r: Option<&str>| {
            catalog
                .endpoint("orchestration", i, r)
                .map(|u| u.to_string())
        };
        assert_eq!(
            url("public", Some("RegionOne")).unwrap(),
            "http://one:8004/v1/p"
        );
        assert_eq!(
            url("publicURL", Some("RegionTwo")).unwrap(),
            "http://two:8004/v1/p"
        );
        assert_eq!(url("internal", None).unwrap(), "http://internal:8004/v1/p");
        assert!(matches!(
            url("admin", None),
            Err(KeystoneError::EndpointNotFound { .. })
        ));
        assert!(matches!(
            catalog.endpoint("image", "public", None),
            Err(KeystoneError::EndpointNotFound { .. })
        ));
    }

    #[test]
    fn token_body_parses() {
        let body = json!({"token": {
            "methods": ["password"],
            "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "demo"},
            "audit_ids": ["a1"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2098-12-31T23:00:00.000000Z",
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "demo"},
            "is_domain": false,
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
            "OS-TRUST:trust": {"id": "t1", "impersonation": true}
        }});
        let env: TokenEnvelope = serde_json::from_value(body).unwrap();
        let (info, catalog) = env.token.into_parts();
        assert_eq!(info.user_id, "u1");
        assert_eq!(info.project_id.as_deref(), Some("p1"));
        assert_eq!(info.roles, ["member", "reader"]);
        assert_eq!(info.trust_id.as_deref(), Some("t1"));
        assert!(info.has_role("Member"));
        assert!(!info.system_scope);
        assert!(catalog.0.is_empty());
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let now = Instant::now();
        let mut cache = TokenCache {
            entries: HashMap::new(),
            capacity: 2,
        };
        let (a, b, c) = (cache_key("a"), cache_key("b"), cache_key("c"));
        cache.insert(a, info("a", 60), now + Duration::from_secs(10), now);
        cache.insert(b, info("b", 60), now + Duration::from_secs(20), now);
        cache.insert(c, info("c", 60), now + Duration::from_secs(30), now);
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get(&a, now).is_none(), "closest to expiry evicted");
        assert!(cache.get(&c, now).is_some());
        assert!(cache.get(&b, now + Duration::from_secs(21)).is_none());
        assert!(!cache.entries.contains_key(&b), "expired entry removed");

        let mut off = TokenCache {
            entries: HashMap::new(),
            capacity: 0,
        };
        off.insert(a, info("a", 60), now + Duration::from_secs(10), now);
        assert!(off.entries.is_empty());
    }

    #[tokio::test]
    async fn unreachable_keystone_is_unavailable() {
        // Port 1 on loopback: nothing listens there, so the connect is refused.
        let auth = ServiceAuth::new("http://127.0.0.1:1", "magnum", "pw", "service");
        let client = KeystoneClient::new(auth).unwrap();
        let err = client.validate("sometoken").await.unwrap_err();
        assert!(matches!(err, KeystoneError::Unavailable(_)), "{err:?}");
        // Garbage that cannot even be a header never reaches the network.
        assert_eq!(
            client.validate("bad token").await,
            Err(KeystoneError::InvalidToken)
        );
    }
}
