//! The plans' HOT files through `magnum-hot`'s static check, the one the
//! host's `magnum-driver-manage verify` runs.

use std::collections::BTreeMap;

use magnum_driver_sdk::serde_json::{Map, Value};
use magnum_hot::check::{check, nested_templates, parse_template, Stack};

/// Every problem found in `files` when `top` is created with the parameters
/// `passed` and the environment's `registry` (its `resource_registry`).
pub fn lint(
    files: &BTreeMap<String, String>,
    top: &str,
    passed: &[String],
    registry: &BTreeMap<String, String>,
) -> Vec<String> {
    let registry: Map<String, Value> = registry
        .iter()
        .map(|(from, to)| (from.clone(), Value::String(to.clone())))
        .collect();
    let environment = Map::from_iter([("resource_registry".to_owned(), Value::Object(registry))]);
    let parameters: Map<String, Value> = passed.iter().map(|p| (p.clone(), Value::Null)).collect();
    let stack = Stack {
        template: top,
        files,
        environment: &environment,
        parameters: &parameters,
    };
    check(&stack).iter().map(ToString::to_string).collect()
}

/// `(file, properties)` of every nested template `top` uses.
pub fn nested(files: &BTreeMap<String, String>, top: &str) -> Vec<(String, Vec<String>)> {
    let template = parse_template(top, &files[top]).unwrap_or_else(|e| panic!("{top}: {e}"));
    nested_templates(&template, files, &Default::default())
        .into_iter()
        .map(|n| (n.file, n.properties))
        .collect()
}
