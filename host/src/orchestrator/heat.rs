//! The `heat` orchestrator: the drivers' stack plans on a real OpenStack Heat
//! (orchestration API v1), as the magnum service user authenticated by
//! Keystone v3.
//!
//! **Whose stacks.** A stack is created in the cluster's project when the
//! conductor passes the cluster's Keystone trust (`trust_id` of
//! [`Orchestrator::create`] and [`Orchestrator::update`], never a stack
//! parameter: no driver gives the trust to its stacks, whose nodes must not
//! have it): the call goes out with a trust-scoped token of the service
//! user, which impersonates the trustor on the trust's project. Without a
//! trust the stack is created as the service user in the service project.
//! Heat then creates its own trust from the caller's token, so with a trust
//! the Keystone deployment must allow redelegation (`[trust]
//! allow_redelegation = true`) and the trust must be redelegatable and
//! carry every role of the user (implied roles too). An update goes out
//! with the same scope as the create, so the resources a scale-up adds are
//! the user's too.
//!
//! Get and delete run as the service user, which Heat lets reach any
//! project's stacks because it holds the admin role (upstream Magnum polls
//! with an admin context too), so a cluster whose trust is already gone can
//! still be polled and deleted: a stack is addressed by its id, and Heat
//! answers `/stacks/{id}` with a 302 to `/v1/{its project}/stacks/{name}/{id}`,
//! which is followed by hand (same origin only, so the token never leaves
//! Heat). A stack Heat shows as `DELETE_COMPLETE` (it keeps deleted stacks)
//! is gone, as a 404 is. `find` lists the live stacks of that name in the
//! project of its scope (the trust's, or the service project, where Heat
//! shows an admin like the service user other projects' stacks too: stack
//! names carry the cluster's uuid, so only the cluster's own match); a
//! trust-scoped create whose name is taken (a retry after a crash) gets
//! Heat's 409 and answers the existing stack's id instead.
//!
//! The trait is sync and the Keystone client async: every call runs on the
//! runtime handle given at construction with `Handle::block_on`, so it must
//! come from a blocking-pool thread (the conductor's jobs run there), never
//! from an async worker.

use std::{collections::BTreeMap, fmt, time::Duration};

use magnum_driver_abi::payload::{StackOperation, StackSnapshot};
use reqwest::{header::LOCATION, Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    db::DbConnection,
    keystone::{KeystoneClient, KeystoneError, SecretToken},
    openstack::{session::BoxFuture, Call, Session, SessionError, TokenSource},
    orchestrator::{Orchestrator, OrchestratorError},
};

const SERVICE_TYPE: &str = "orchestration";
/// Longest chain of redirects followed for one call (Heat sends one).
const MAX_REDIRECTS: usize = 3;

/// `[heat]`: how stacks are created on Heat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeatSettings {
    /// Catalog region of the orchestration endpoint; `None` takes the
    /// `[keystone]` region (or any).
    pub region: Option<String>,
    /// Catalog interface; `None` takes the `[keystone]` interface.
    pub interface: Option<String>,
    /// `timeout_mins` of a stack whose plan sets none.
    pub stack_timeout_minutes: i64,
    /// Seconds one HTTP call to Heat may take.
    pub request_timeout_seconds: u64,
    /// Resource types replaced in every stack's `resource_registry` (the
    /// operator's wins over the plan's), e.g. `"OS::Nova::Server" =
    /// "OS::Heat::None"` for a Heat without compute, as the tests run.
    pub resource_registry: BTreeMap<String, String>,
    /// Extra template files sent with every stack (name = path on disk,
    /// read at start), for `resource_registry` entries naming a template.
    pub files: BTreeMap<String, std::path::PathBuf>,
}

impl Default for HeatSettings {
    fn default() -> Self {
        Self {
            region: None,
            interface: None,
            stack_timeout_minutes: 60,
            request_timeout_seconds: 30,
            resource_registry: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }
}

/// Which credentials a call uses.
#[derive(Clone, PartialEq, Eq)]
enum Scope {
    /// The magnum service user in its own (service) project.
    Service,
    /// A trust-scoped token of the service user: the trustor's project.
    Trust(String),
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Service => f.write_str("service"),
            // A trust id is no secret by itself (a password must go with it).
            Scope::Trust(id) => write!(f, "trust {id}"),
        }
    }
}

/// One HTTP answer of Heat.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

pub struct HeatOrchestrator {
    keystone: KeystoneClient,
    /// The keystone client's TLS, Heat's timeouts.
    session: Session,
    settings: HeatSettings,
    /// Interface and region of the orchestration endpoint in a trust
    /// token's catalog (the service token's come from `keystone`'s own).
    interface: String,
    region: Option<String>,
    runtime: tokio::runtime::Handle,
    /// `settings.files`, read.
    extra_files: BTreeMap<String, String>,
}

impl fmt::Debug for HeatOrchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeatOrchestrator")
            .field("keystone", &self.keystone)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HeatOrchestrator {
    /// `keystone` authenticates the service user; its region and interface
    /// pick the orchestration endpoint (build it from `[heat]`'s when they
    /// differ from `[keystone]`'s). `runtime` runs the HTTP calls. Fails
    /// when a file of `settings.files` cannot be read.
    pub fn new(
        keystone: KeystoneClient,
        settings: HeatSettings,
        interface: &str,
        region: Option<&str>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, OrchestratorError> {
        // The session follows no redirect: Heat's are followed by hand, same
        // origin only, so a token is never sent anywhere a Location points.
        let session = keystone
            .http_session()
            .with_timeouts(
                Duration::from_secs(settings.request_timeout_seconds.max(1)),
                Duration::from_secs(5),
            )
            .map_err(|e| OrchestratorError::Unavailable(e.to_string()))?;
        let mut extra_files = BTreeMap::new();
        for (name, path) in &settings.files {
            let text = std::fs::read_to_string(path).map_err(|e| {
                OrchestratorError::Rejected(format!(
                    "[heat] files: cannot read {name} from {}: {e}",
                    path.display()
                ))
            })?;
            extra_files.insert(name.clone(), text);
        }
        Ok(Self {
            extra_files,
            keystone,
            session,
            settings,
            interface: interface.to_owned(),
            region: region.map(str::to_owned),
            runtime,
        })
    }

    /// Runs `f` to completion on the runtime (from a blocking thread).
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    // ------------------------------------------------------------ the calls

    async fn create_stack(
        &self,
        scope: &Scope,
        op: &StackOperation,
    ) -> Result<String, OrchestratorError> {
        let body = self.create_body(op)?;
        let answer = self
            .call(scope, Method::POST, &["stacks"], Some(&body))
            .await?;
        match answer.status {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {
                let created: Created = parse(&answer)?;
                tracing::info!(stack = %op.stack_name, id = %created.stack.id, ?scope, "heat: stack create started");
                Ok(created.stack.id)
            }
            // A retry after a crash: the stack of this name is already there.
            StatusCode::CONFLICT => match self.lookup(scope, &op.stack_name).await? {
                Some(id) => Ok(id),
                None => Err(rejected("create", &answer)),
            },
            _ => Err(self.failure("create", &answer)),
        }
    }

    /// The id of the live stack named `name` in the scope's project. A
    /// list query, not `GET /stacks/{name}`: Heat keeps deleted stacks
    /// (soft delete) and the by-name lookup can still answer one of them.
    async fn lookup(&self, scope: &Scope, name: &str) -> Result<Option<String>, OrchestratorError> {
        let answer = self
            .send(scope, Method::GET, &["stacks"], &[("name", name)], None)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.failure("find", &answer));
        }
        Ok(parse::<Listed>(&answer)?
            .stacks
            .into_iter()
            .find(|s| s.stack_name == name && s.stack_status != "DELETE_COMPLETE")
            .map(|s| s.id))
    }

    async fn show(&self, id: &str) -> Result<Option<StackSnapshot>, OrchestratorError> {
        let answer = self
            .call(&Scope::Service, Method::GET, &["stacks", id], None)
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.failure("get", &answer)),
        }
        let stack = parse::<Shown>(&answer)?.stack;
        // Heat keeps a deleted stack (soft delete) and still shows it by id;
        // for the conductor it is gone, as in the local cloud.
        if stack.stack_status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        let outputs = stack
            .outputs
            .into_iter()
            .map(|o| (o.output_key, o.output_value))
            .collect();
        // Heat shows every parameter as a string, and adds its pseudo
        // parameters (OS::stack_id, ...), which no plan declares.
        let parameters = stack
            .parameters
            .into_iter()
            .filter(|(k, _)| !k.starts_with("OS::"))
            .collect();
        Ok(Some(StackSnapshot {
            target: Default::default(),
            stack_id: stack.id,
            status: stack.stack_status,
            status_reason: stack.stack_status_reason.unwrap_or_default(),
            outputs,
            parameters,
        }))
    }

    async fn update_stack(
        &self,
        scope: &Scope,
        id: &str,
        op: &StackOperation,
    ) -> Result<(), OrchestratorError> {
        let (method, body) = if op.existing {
            // PATCH is Heat's `existing=True`: the stored template and
            // environment stay, the parameters given are merged in.
            let mut body = Map::new();
            body.insert("parameters".into(), Value::Object(op.parameters.clone()));
            if let Some(t) = op.timeout_mins {
                body.insert("timeout_mins".into(), json!(t));
            }
            body.insert("disable_rollback".into(), json!(op.disable_rollback));
            (Method::PATCH, Value::Object(body))
        } else {
            (Method::PUT, self.create_body(op)?)
        };
        let answer = self
            .call(scope, method, &["stacks", id], Some(&body))
            .await?;
        match answer.status {
            s if s.is_success() => {
                tracing::info!(%id, ?scope, "heat: stack update started");
                Ok(())
            }
            _ => Err(self.failure("update", &answer)),
        }
    }

    async fn delete_stack(&self, id: &str) -> Result<(), OrchestratorError> {
        let answer = self
            .call(&Scope::Service, Method::DELETE, &["stacks", id], None)
            .await?;
        match answer.status {
            s if s.is_success() => {
                tracing::info!(%id, "heat: stack delete started");
                Ok(())
            }
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.failure("delete", &answer)),
        }
    }

    /// `POST /stacks` (and `PUT`) body: the plan's template text, every
    /// file (nested node templates), environment, parameters.
    fn create_body(&self, op: &StackOperation) -> Result<Value, OrchestratorError> {
        let template = op.files.get(&op.template).ok_or_else(|| {
            OrchestratorError::Rejected(format!(
                "stack {}: the plan has no file '{}' for its template",
                op.stack_name, op.template
            ))
        })?;
        let mut environment = op.environment.clone();
        if !self.settings.resource_registry.is_empty() {
            let registry = environment
                .entry("resource_registry")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(registry) = registry {
                for (from, to) in &self.settings.resource_registry {
                    registry.insert(from.clone(), Value::String(to.clone()));
                }
            }
        }
        // The plan's own files win over the operator's extras.
        let mut files = self.extra_files.clone();
        files.extend(op.files.clone());
        Ok(json!({
            "stack_name": op.stack_name,
            // The text, not parsed YAML: a YAML loader would turn
            // `heat_template_version: 2018-08-31` into a date.
            "template": template,
            "files": files,
            "environment": environment,
            "parameters": op.parameters,
            "timeout_mins": op.timeout_mins.unwrap_or(self.settings.stack_timeout_minutes),
            "disable_rollback": op.disable_rollback,
        }))
    }

    // ------------------------------------------------------------ transport

    /// `send`, following Heat's 302s from `/stacks/{id}` to the stack's
    /// canonical URL with the same method and body.
    async fn call(
        &self,
        scope: &Scope,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
    ) -> Result<Answer, OrchestratorError> {
        let mut answer = self.send(scope, method.clone(), path, &[], body).await?;
        for _ in 0..MAX_REDIRECTS {
            if !answer.status.is_redirection() {
                break;
            }
            let Some(location) = answer.location.clone() else {
                break;
            };
            let base = self.endpoint(scope).await?;
            let target = base
                .join(&location)
                .map_err(|e| unexpected(format!("bad redirect '{location}': {e}")))?;
            if target.origin() != base.origin() {
                return Err(unexpected(format!(
                    "Heat redirected to another server ({location}); not followed"
                )));
            }
            answer = self.send_url(scope, method.clone(), target, body).await?;
        }
        Ok(answer)
    }

    /// One request on `path` (segments, escaped here) with `query` under
    /// the scope's Heat endpoint; a 401 gets a fresh token and one more try.
    async fn send(
        &self,
        scope: &Scope,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, OrchestratorError> {
        let mut url = self.endpoint(scope).await?;
        let shown = url.to_string();
        url.path_segments_mut()
            .map_err(|()| unexpected(format!("Heat endpoint {shown} cannot take a path")))?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send_url(scope, method, url, body).await
    }

    async fn send_url(
        &self,
        scope: &Scope,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, OrchestratorError> {
        let origin = url.origin().ascii_serialization();
        let mut call = Call::new(method.clone(), url);
        call.body = body;
        let started = std::time::Instant::now();
        let answer = self
            .session
            .send_authed(&ScopeToken { heat: self, scope }, &call)
            .await
            .map_err(|e| match e {
                CallError::Session(SessionError::Unavailable(m)) => {
                    OrchestratorError::Unavailable(format!("Heat at {origin}: {m}"))
                }
                CallError::Session(other) => unexpected(other.to_string()),
                CallError::Heat(e) => e,
            })?;
        tracing::debug!(%method, path = call.url.path(), status = %answer.status, elapsed = ?started.elapsed(), "heat call");
        Ok(Answer {
            status: answer.status,
            location: answer.header(LOCATION.as_str()).map(str::to_owned),
            body: answer.body,
        })
    }

    async fn token(&self, scope: &Scope) -> Result<SecretToken, OrchestratorError> {
        match scope {
            Scope::Service => self.keystone.service_token().await.map_err(keystone_error),
            Scope::Trust(id) => Ok(self
                .keystone
                .trust_token(id)
                .await
                .map_err(keystone_error)?
                .token
                .clone()),
        }
    }

    async fn endpoint(&self, scope: &Scope) -> Result<Url, OrchestratorError> {
        match scope {
            Scope::Service => self
                .keystone
                .catalog_endpoint(SERVICE_TYPE)
                .await
                .map_err(keystone_error),
            // The trust's project's endpoint, from its token's catalog.
            Scope::Trust(id) => self
                .keystone
                .trust_token(id)
                .await
                .map_err(keystone_error)?
                .catalog
                .endpoint(SERVICE_TYPE, &self.interface, self.region.as_deref())
                .map_err(keystone_error),
        }
    }

    async fn forget_token(&self, scope: &Scope, token: &SecretToken) {
        match scope {
            Scope::Service => self.keystone.forget_service_token(token).await,
            Scope::Trust(id) => self.keystone.forget_trust_token(id, token),
        }
    }

    /// The error of an unexpected answer: 5xx and 409 (another action in
    /// progress) are worth a retry; any other refusal is final.
    fn failure(&self, what: &str, answer: &Answer) -> OrchestratorError {
        match answer.status.as_u16() {
            500..=599 | 409 | 429 => OrchestratorError::Unavailable(format!(
                "Heat {what}: {} {}",
                answer.status.as_u16(),
                heat_message(&answer.body)
            )),
            _ => rejected(what, answer),
        }
    }
}

/// A call's token: the service user's or a trust's, by scope. A 401 drops
/// it (the service session, or the cached trust token), and the session
/// sends the call once more with a fresh one.
struct ScopeToken<'a> {
    heat: &'a HeatOrchestrator,
    scope: &'a Scope,
}

/// Why a call failed: the transport, or getting its token.
enum CallError {
    Session(SessionError),
    Heat(OrchestratorError),
}

impl From<SessionError> for CallError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

impl TokenSource for ScopeToken<'_> {
    type Error = CallError;

    fn token(&self) -> BoxFuture<'_, Result<SecretToken, CallError>> {
        Box::pin(async move { self.heat.token(self.scope).await.map_err(CallError::Heat) })
    }

    fn forget<'a>(&'a self, stale: &'a SecretToken) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            // The token was revoked or expired early: log in again, once.
            self.heat.forget_token(self.scope, stale).await;
            true
        })
    }
}

fn rejected(what: &str, answer: &Answer) -> OrchestratorError {
    OrchestratorError::Rejected(format!(
        "Heat refused the stack {what} ({}): {}",
        answer.status.as_u16(),
        heat_message(&answer.body)
    ))
}

fn unexpected(reason: String) -> OrchestratorError {
    OrchestratorError::Unavailable(reason)
}

/// Keystone's failures: down is retried, the rest (bad credentials, no
/// orchestration endpoint, a deleted trust) fails the operation.
fn keystone_error(e: KeystoneError) -> OrchestratorError {
    match e {
        KeystoneError::Unavailable(_) => OrchestratorError::Unavailable(e.to_string()),
        other => OrchestratorError::Rejected(other.to_string()),
    }
}

/// The scope of a call for the cluster's trust, if it has one (an empty
/// trust id is none).
fn scope_of(trust_id: Option<&str>) -> Scope {
    trust_id
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or(Scope::Service, |t| Scope::Trust(t.to_owned()))
}

/// Heat's error body: `{"explanation", "error": {"type", "message"}}`.
fn heat_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("explanation"))
                .and_then(Value::as_str)
        })
        .map(str::trim);
    match (kind, message) {
        (Some(k), Some(m)) if !m.is_empty() => format!("{k}: {m}"),
        (_, Some(m)) if !m.is_empty() => m.to_owned(),
        _ => body.chars().take(300).collect::<String>().trim().to_owned(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, OrchestratorError> {
    serde_json::from_str(&answer.body).map_err(|e| {
        unexpected(format!(
            "Heat answered {} with an unreadable body: {e}",
            answer.status.as_u16()
        ))
    })
}

#[derive(Deserialize)]
struct Created {
    stack: CreatedStack,
}

#[derive(Deserialize)]
struct CreatedStack {
    id: String,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    stacks: Vec<ListedStack>,
}

#[derive(Deserialize)]
struct ListedStack {
    id: String,
    stack_name: String,
    #[serde(default)]
    stack_status: String,
}

#[derive(Deserialize)]
struct Shown {
    stack: ShownStack,
}

#[derive(Deserialize)]
struct ShownStack {
    id: String,
    stack_status: String,
    #[serde(default)]
    stack_status_reason: Option<String>,
    #[serde(default)]
    outputs: Vec<ShownOutput>,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Deserialize)]
struct ShownOutput {
    output_key: String,
    #[serde(default)]
    output_value: Value,
}

impl Orchestrator for HeatOrchestrator {
    fn name(&self) -> &'static str {
        "heat"
    }

    fn create(
        &self,
        _conn: &mut DbConnection,
        _project_id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<String, OrchestratorError> {
        self.block_on(self.create_stack(&scope_of(trust_id), op))
    }

    fn find(
        &self,
        _conn: &mut DbConnection,
        name: &str,
        trust_id: Option<&str>,
    ) -> Result<Option<String>, OrchestratorError> {
        self.block_on(self.lookup(&scope_of(trust_id), name))
    }

    fn get(
        &self,
        _conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<StackSnapshot>, OrchestratorError> {
        self.block_on(self.show(id))
    }

    fn update(
        &self,
        _conn: &mut DbConnection,
        id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<(), OrchestratorError> {
        self.block_on(self.update_stack(&scope_of(trust_id), id, op))
    }

    fn delete(&self, _conn: &mut DbConnection, id: &str) -> Result<(), OrchestratorError> {
        self.block_on(self.delete_stack(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_errors_read_type_and_message() {
        let body = r#"{"explanation": "The server could not comply with the request since it is either malformed or otherwise incorrect.", "code": 400, "error": {"message": "Property error: resources.x.properties: Unknown Property foo", "traceback": null, "type": "StackValidationFailed"}, "title": "Bad Request"}"#;
        assert_eq!(
            heat_message(body),
            "StackValidationFailed: Property error: resources.x.properties: Unknown Property foo"
        );
        assert_eq!(heat_message(r#"{"explanation": "Not here"}"#), "Not here");
        assert_eq!(heat_message("<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn refusals_fail_and_outages_retry() {
        let answer = |code: u16| Answer {
            status: StatusCode::from_u16(code).expect("status"),
            location: None,
            body: r#"{"error": {"type": "T", "message": "m"}}"#.into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ks = KeystoneClient::new(crate::keystone::ServiceAuth::new(
            "http://127.0.0.1:1/v3",
            "magnum",
            "pw",
            "service",
        ))
        .expect("client");
        let heat = HeatOrchestrator::new(
            ks,
            HeatSettings::default(),
            "public",
            None,
            rt.handle().clone(),
        )
        .expect("orchestrator");
        for code in [400, 403, 404] {
            assert!(matches!(
                heat.failure("create", &answer(code)),
                OrchestratorError::Rejected(m) if m.contains("T: m")
            ));
        }
        for code in [409, 500, 503] {
            assert!(matches!(
                heat.failure("update", &answer(code)),
                OrchestratorError::Unavailable(_)
            ));
        }
    }

    #[test]
    fn the_callers_trust_and_registry_override() {
        let mut op = StackOperation {
            stack_name: "k8s-abc".into(),
            template: "cluster.yaml".into(),
            ..Default::default()
        };
        op.files.insert(
            "cluster.yaml".into(),
            "heat_template_version: 2018-08-31\n".into(),
        );
        op.environment.insert(
            "resource_registry".into(),
            json!({"OS::Nova::Server": "x.yaml", "My::Type": "y.yaml"}),
        );
        // The scope is the conductor's trust, whatever the plan says.
        assert_eq!(scope_of(None), Scope::Service);
        assert_eq!(scope_of(Some(" ")), Scope::Service);
        assert_eq!(scope_of(Some(" t-1 ")), Scope::Trust("t-1".into()));

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ks = KeystoneClient::new(crate::keystone::ServiceAuth::new(
            "http://127.0.0.1:1/v3",
            "magnum",
            "pw",
            "service",
        ))
        .expect("client");
        let dir = tempfile::tempdir().expect("temporary directory");
        let extra = dir.path().join("port.yaml");
        std::fs::write(&extra, "heat_template_version: 2018-08-31\n").expect("write");
        let settings = HeatSettings {
            resource_registry: [("OS::Nova::Server".to_owned(), "OS::Heat::None".to_owned())]
                .into(),
            files: [
                ("port.yaml".to_owned(), extra),
                ("cluster.yaml".to_owned(), dir.path().join("cluster.yaml")),
            ]
            .into(),
            ..Default::default()
        };
        // A file that cannot be read stops the start.
        assert!(matches!(
            HeatOrchestrator::new(
                ks.clone(),
                settings.clone(),
                "public",
                None,
                rt.handle().clone()
            ),
            Err(OrchestratorError::Rejected(m)) if m.contains("cluster.yaml")
        ));
        std::fs::write(dir.path().join("cluster.yaml"), "operator's").expect("write");
        let heat = HeatOrchestrator::new(ks, settings, "public", None, rt.handle().clone())
            .expect("orchestrator");
        let body = heat.create_body(&op).expect("body");
        assert_eq!(body["template"], "heat_template_version: 2018-08-31\n");
        assert_eq!(
            body["environment"]["resource_registry"],
            json!({"OS::Nova::Server": "OS::Heat::None", "My::Type": "y.yaml"})
        );
        assert_eq!(body["timeout_mins"], 60);
        // The operator's extra file goes along; the plan's own file wins.
        assert_eq!(
            body["files"]["port.yaml"],
            "heat_template_version: 2018-08-31\n"
        );
        assert_eq!(
            body["files"]["cluster.yaml"],
            "heat_template_version: 2018-08-31\n"
        );
        op.template = "missing.yaml".into();
        assert!(matches!(
            heat.create_body(&op),
            Err(OrchestratorError::Rejected(_))
        ));
    }

    /// A fake Keystone + Heat on one port: tokens `tok-1`, `tok-2`, ...;
    /// Heat refuses `tok-1` with 401 (revoked), redirects `/stacks/{id}`,
    /// and fails `/stacks/broken` with 503 and `/stacks/away` with a
    /// redirect to another server.
    mod fake {
        use std::sync::{
            atomic::{AtomicU32, Ordering},
            Arc,
        };

        use axum::{
            extract::{Path, State},
            http::{HeaderMap, StatusCode},
            response::{IntoResponse, Response},
            routing::{get, post},
            Json, Router,
        };
        use serde_json::json;

        #[derive(Clone, Default)]
        pub struct Fake {
            pub logins: Arc<AtomicU32>,
            pub port: u16,
        }

        async fn login(State(f): State<Fake>) -> Response {
            let n = f.logins.fetch_add(1, Ordering::SeqCst) + 1;
            let heat = format!("http://127.0.0.1:{}/v1/p-1", f.port);
            let body = json!({"token": {
                "user": {"id": "u-1", "name": "magnum", "domain": {"id": "default", "name": "Default"}},
                "project": {"id": "p-1", "name": "service", "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r-1", "name": "admin"}],
                "expires_at": "2099-01-01T00:00:00Z",
                "audit_ids": [],
                "catalog": [{"type": "orchestration", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": heat}]}],
            }});
            (
                StatusCode::CREATED,
                [("X-Subject-Token", format!("tok-{n}"))],
                Json(body),
            )
                .into_response()
        }

        async fn stack(
            State(f): State<Fake>,
            Path(id): Path<String>,
            headers: HeaderMap,
        ) -> Response {
            if headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) == Some("tok-1") {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let location = match id.as_str() {
                "broken" => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "{\"explanation\": \"db down\"}",
                    )
                        .into_response()
                }
                "away" => "http://127.0.0.2:1/v1/p-1/stacks/away/away".to_owned(),
                _ => format!("http://127.0.0.1:{}/v1/p-1/stacks/s-name/{id}", f.port),
            };
            (StatusCode::FOUND, [("Location", location)]).into_response()
        }

        async fn shown(Path((name, id)): Path<(String, String)>) -> Response {
            Json(json!({"stack": {
                "id": id, "stack_name": name, "stack_status": "CREATE_COMPLETE",
                "stack_status_reason": "Stack CREATE completed successfully",
                "outputs": [{"output_key": "api_address", "output_value": "10.0.0.5"}],
                "parameters": {"number_of_minions": "2", "OS::stack_id": id},
            }}))
            .into_response()
        }

        pub async fn start() -> Fake {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let fake = Fake {
                port: listener.local_addr().expect("addr").port(),
                ..Default::default()
            };
            let app = Router::new()
                .route("/v3/auth/tokens", post(login))
                .route("/v1/p-1/stacks/{id}", get(stack))
                .route("/v1/p-1/stacks/{name}/{id}", get(shown))
                .with_state(fake.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            fake
        }
    }

    #[test]
    fn reauth_once_on_401_and_redirects_on_the_same_server_only() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let fake = rt.block_on(fake::start());
        let mut auth = crate::keystone::ServiceAuth::new(
            format!("http://127.0.0.1:{}/v3", fake.port),
            "magnum",
            "pw",
            "service",
        );
        auth.region = Some("RegionOne".into());
        let ks = KeystoneClient::new(auth).expect("client");
        let heat = HeatOrchestrator::new(
            ks,
            HeatSettings::default(),
            "public",
            Some("RegionOne"),
            rt.handle().clone(),
        )
        .expect("orchestrator");

        // tok-1 is refused: one more login (tok-2), then the 302 is followed.
        let snap = heat
            .block_on(heat.show("s-1"))
            .expect("get")
            .expect("exists");
        assert_eq!(fake.logins.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(snap.stack_id, "s-1");
        assert_eq!(snap.status, "CREATE_COMPLETE");
        assert_eq!(snap.outputs["api_address"], "10.0.0.5");
        assert_eq!(
            snap.parameters,
            json!({"number_of_minions": "2"})
                .as_object()
                .cloned()
                .expect("map")
        );

        assert!(matches!(
            heat.block_on(heat.show("broken")),
            Err(OrchestratorError::Unavailable(m)) if m.contains("503") && m.contains("db down")
        ));
        assert!(matches!(
            heat.block_on(heat.show("away")),
            Err(OrchestratorError::Unavailable(m)) if m.contains("not followed")
        ));
        // Nobody listens on the auth URL of a second orchestrator: retried.
        let ks = KeystoneClient::new(crate::keystone::ServiceAuth::new(
            "http://127.0.0.1:1/v3",
            "magnum",
            "pw",
            "service",
        ))
        .expect("client");
        let down = HeatOrchestrator::new(
            ks,
            HeatSettings::default(),
            "public",
            None,
            rt.handle().clone(),
        )
        .expect("orchestrator");
        assert!(matches!(
            down.block_on(down.show("s-1")),
            Err(OrchestratorError::Unavailable(_))
        ));
    }
}
