//! The resources of a stack as created, kept between operations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How a resource is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Simulated by the [`Provider`].
    Primitive,
    /// A nested stack from a file of `files`.
    Template,
    /// An `OS::Heat::ResourceGroup`.
    Group,
}

/// One resource as created, persisted between operations so that updates
/// keep what did not change (ids, addresses, boot times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// After the environment's mappings.
    #[serde(rename = "type")]
    pub type_name: String,
    pub kind: ResourceKind,
    /// What `get_resource` returns.
    pub ref_id: String,
    /// Primitives: their attributes; templates: the nested outputs.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// Any attribute may be asked for (`null` when unknown), e.g. OS::Heat::None.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_attributes: bool,
    /// When it is (or was) ready, in ms since the epoch.
    pub ready_ms: i64,
    /// A digest of a primitive's properties, to tell an update changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The nested stack's id (templates and groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    /// Templates: the nested resources; groups: the members by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested: Option<StackState>,
    /// Groups: member names removed and never reused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// The resources of one stack level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackState {
    pub resources: BTreeMap<String, ResourceState>,
}

impl StackState {
    /// Every primitive resource, nested ones included, as `(path, state)`,
    /// where `path` is the dotted names from this level.
    pub fn primitives(&self) -> Vec<(String, &ResourceState)> {
        let mut found = Vec::new();
        collect_primitives(self, "", &mut found);
        found
    }
}

pub(crate) fn collect_primitives<'a>(
    stack: &'a StackState,
    prefix: &str,
    found: &mut Vec<(String, &'a ResourceState)>,
) {
    for (name, resource) in &stack.resources {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match &resource.nested {
            Some(nested) => collect_primitives(nested, &path, found),
            None if resource.kind == ResourceKind::Primitive => found.push((path, resource)),
            None => {}
        }
    }
}

/// How many bytes of SHA-256 a [`digest`] keeps: it only tells whether an
/// update changed a resource's properties (64 bits make an accidental match
/// negligible), and each stack keeps one per resource, so the full 32 bytes
/// were a fifth of a packed k8s state.
const DIGEST_BYTES: usize = 8;

/// A stable digest of a JSON value (its keys are ordered).
pub(crate) fn digest(value: &Value) -> String {
    hex::encode(&Sha256::digest(value.to_string().as_bytes())[..DIGEST_BYTES])
}

/// Whether a stored digest is `digest`: the same, or a full-length one
/// (stored before digests were shortened) that begins with it.
pub(crate) fn same_digest(stored: Option<&str>, digest: &str) -> bool {
    stored.is_some_and(|stored| stored.starts_with(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_stored_full_length_still_matches() {
        let value = serde_json::json!({"image": "fedora", "flavor": "m1.small"});
        let short = digest(&value);
        assert_eq!(short.len(), 2 * DIGEST_BYTES);
        let full = hex::encode(Sha256::digest(value.to_string().as_bytes()));
        assert!(same_digest(Some(&full), &short));
        assert!(same_digest(Some(&short), &short));
        let other = digest(&serde_json::json!({"image": "ubuntu"}));
        assert!(!same_digest(Some(&other), &short));
        assert!(!same_digest(None, &short));
    }
}
