//! What the walker hands down a stack: the stack's identity and what one
//! template level sees. Plain data, below the modules that work on it:
//! `conditions`, `functions` and `evaluate` each add their methods to
//! [`Scope`], `group` makes its members' [`StackContext`], and none of them
//! needs to import another for these types.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::state::ResourceState;
use crate::template::Template;
use crate::Files;

/// The stack being evaluated: the top one, a nested template's, or the
/// stack of a group's members.
pub(crate) struct StackContext {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) top: bool,
}

/// What one template level sees while it is evaluated.
pub(crate) struct Scope<'t> {
    pub(crate) template: &'t Template,
    pub(crate) files: &'t Files,
    pub(crate) params: Map<String, Value>,
    pub(crate) conditions: BTreeMap<String, bool>,
    pub(crate) enabled: BTreeSet<String>,
    pub(crate) resources: BTreeMap<String, ResourceState>,
}
