//! Helpers for tests that evaluate small templates over some [`Provider`]:
//! the crate's own tests (over a stub cloud) and the host's (over its
//! simulated cloud). Each evaluates `main.yaml` as the stack `demo`
//! (`stack-1`) of `project-1`.

use serde_json::{json, Map, Value};

use crate::{evaluate, Action, Evaluation, Files, HotError, Provider, StackRequest, StackState};

/// When the tests' stacks start, in ms since the epoch.
pub const T0: i64 = 1_000_000;

/// A JSON object literal as a map.
pub fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Files from `(name, text)` pairs.
pub fn files(list: &[(&str, &str)]) -> Files {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A HOT template from its body (the version line added).
pub fn hot(body: &str) -> String {
    format!("heat_template_version: 2018-08-31\n{body}")
}

/// Creates (or, from `previous`, updates) the stack of `files`.
pub fn run_with(
    provider: &mut dyn Provider,
    files: &Files,
    environment: Value,
    parameters: Value,
    previous: Option<&StackState>,
    start_ms: i64,
) -> Result<Evaluation, HotError> {
    let environment = map(environment);
    let parameters = map(parameters);
    let request = StackRequest {
        stack_name: "demo",
        stack_id: "stack-1",
        project_id: "project-1",
        template: "main.yaml",
        files,
        environment: &environment,
        parameters: &parameters,
        action: if previous.is_some() {
            Action::Update
        } else {
            Action::Create
        },
        start_ms,
    };
    evaluate(&request, previous, provider)
}

/// Creates the stack of the one template `body` at [`T0`].
pub fn eval(
    provider: &mut dyn Provider,
    body: &str,
    parameters: Value,
) -> Result<Evaluation, HotError> {
    let files = files(&[("main.yaml", &hot(body))]);
    run_with(provider, &files, json!({}), parameters, None, T0)
}

/// The outputs of [`eval`]; panics on an error.
pub fn outputs(provider: &mut dyn Provider, body: &str, parameters: Value) -> Value {
    match eval(provider, body, parameters) {
        Ok(e) => Value::Object(e.outputs),
        Err(e) => panic!("evaluation failed: {e}"),
    }
}

/// The error of [`eval`]; panics when there is none.
pub fn error(provider: &mut dyn Provider, body: &str, parameters: Value) -> String {
    match eval(provider, body, parameters) {
        Ok(e) => panic!("expected an error, got outputs {:?}", e.outputs),
        Err(e) => e.to_string(),
    }
}
