//! What both [`helpers`](crate::helpers) and [`bootstrap`](crate::bootstrap)
//! build on, kept apart so that neither module imports the other's callers.

use serde_json::Value;

/// The role upstream gives master nodegroups; every other role is a worker.
pub const MASTER_ROLE: &str = "master";

/// A list output as strings; Heat gives a single address as a bare string.
pub fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Value::String(s) if !s.is_empty() => Some(vec![s.clone()]),
        _ => None,
    }
}
