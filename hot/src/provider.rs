//! The cloud the evaluator creates primitive resources in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::ResourceState;
use crate::R;

/// What the stack operation is doing, for fault messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    #[default]
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
        }
    }
}

/// A primitive resource to create or update.
#[derive(Debug)]
pub struct ResourceRequest<'a> {
    pub type_name: &'a str,
    /// The resource's name in its template.
    pub name: &'a str,
    /// The name of the (nested) stack holding it.
    pub stack_name: &'a str,
    pub properties: &'a Map<String, Value>,
    /// Its state from the previous operation, if of the same type.
    pub previous: Option<&'a ResourceState>,
    /// Whether its properties are those of `previous`.
    pub unchanged: bool,
    /// When its dependencies are ready.
    pub start_ms: i64,
}

/// A created or updated primitive.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub ref_id: String,
    pub attributes: Map<String, Value>,
    pub open_attributes: bool,
    pub ready_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderError {
    /// Bad properties: the template is wrong.
    Invalid(String),
    /// The (simulated) cloud failed the resource at `at_ms`.
    Fault { at_ms: i64, message: String },
}

/// The cloud the evaluator creates primitive resources in.
pub trait Provider {
    /// Whether `type_name` is a primitive this cloud has.
    fn supports(&self, type_name: &str) -> bool;
    /// A fresh id (for nested stacks).
    fn new_id(&mut self) -> String;
    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError>;
    /// Releases a primitive an update removed.
    fn remove(&mut self, resource: &ResourceState) -> R<()>;
}
