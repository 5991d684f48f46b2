//! The Heat Orchestration Template (HOT) language, in which the drivers'
//! stack plans are written: a pure evaluator ([`evaluate()`], used by the
//! host's `local` orchestrator) and a static check of a stack's templates
//! ([`check`], used by `magnum-driver-manage verify` and the drivers' tests).
//! It depends on no host, database or async runtime.
//!
//! The modules follow the language's seams: [`Template`] structure
//! (`template`), `parameters` and their constraints, the [`Environment`],
//! `conditions`, intrinsic `functions`, resource groups (`group`), the
//! walker (`evaluate`) and what it hands each level (`scope`), the resource
//! [`StackState`] kept between operations and the [`Provider`] of primitive
//! resources. They import each other downwards only: shared types and words
//! sit below their users, and a group reaches the walker above it through
//! a trait the walker implements.
//!
//! The evaluator follows Heat's semantics (and its error messages, where they help the
//! operator) for the subset the drivers use:
//!
//! - `parameters` with `default`, `hidden`, the five types (`string`,
//!   `number`, `boolean`, `json`, `comma_delimited_list`) and the
//!   constraints `allowed_values`, `range`, `length`, `allowed_pattern`,
//!   `modulo` (`custom_constraint` passes: the simulated cloud has every
//!   image, flavor and key pair);
//! - an environment with `parameters`, `parameter_defaults` (which, as in
//!   Heat, reach nested stacks too) and `resource_registry` (type to type,
//!   type to a file of `files`, `*` globs, per-resource `resources:` maps);
//! - the intrinsic functions `get_param`, `get_resource`, `get_attr`,
//!   `str_replace`, `list_join`, `get_file` and `if`, the `conditions`
//!   section with `equals`, `not`, `and`, `or` and `get_param`, and
//!   `condition` on resources and outputs. Any other HOT function is an
//!   error naming it;
//! - dependencies (`depends_on` and the implicit ones of `get_resource` and
//!   `get_attr`, in the branches `if` takes) in topological order; a cycle is
//!   an error;
//! - nested stacks: a resource whose type is a file of `files` is that
//!   template, with its properties as parameters and its outputs as
//!   attributes;
//! - `OS::Heat::ResourceGroup` with `count`, `index_var`/`%index%`,
//!   `resource_def`, `removal_policies` (member names or refs, never reused
//!   once removed) and its attributes: `refs`, `refs_map`, `attributes`,
//!   `removed_rsrc_list`, `resource.<n>[.<attr>]`, and any member attribute
//!   as a list. As in Heat, a path after a member attribute
//!   (`[group, attr, 0]`) selects inside *each member's* value. Its
//!   `update_policy: rolling_update: {max_batch_size, pause_time}` updates
//!   the members whose definition changed in batches, highest index
//!   first, each batch once the one before is ready plus the pause.
//!
//! Everything that touches the (simulated) cloud goes through [`Provider`]:
//! the evaluator itself has no clock, no randomness and no I/O. Times are
//! milliseconds since the epoch; each resource starts when its dependencies
//! are ready, so a stack is ready at the end of its critical path.

pub mod check;
mod conditions;
mod environment;
mod evaluate;
mod functions;
mod group;
mod parameters;
mod provider;
mod python;
mod scope;
mod state;
mod template;
pub mod testing;

pub use environment::Environment;
pub use evaluate::{evaluate, Evaluation, Failure, StackRequest};
pub use group::RESOURCE_GROUP;
pub use provider::{Action, Applied, Provider, ProviderError, ResourceRequest};
pub use python::{py_json, py_repr, py_str, select_path};
pub use state::{ResourceKind, ResourceState, StackState};
pub use template::{Template, CONDITION_FUNCTIONS, HOT_VERSIONS, SUPPORTED_FUNCTIONS};

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Template files by name, as in a driver's `StackOperation`.
pub type Files = BTreeMap<String, String>;

/// An invalid template, environment or parameter, with Heat's wording where
/// it has one. `path` locates it (`resources.kube_minions`, `resources[0]`,
/// …), outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotError {
    pub path: Vec<String>,
    pub message: String,
}

impl HotError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// The same error seen from one level up.
    pub(crate) fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.insert(0, segment.into());
        self
    }
}

impl std::fmt::Display for HotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join("."), self.message)
        }
    }
}

impl std::error::Error for HotError {}

pub(crate) type R<T> = Result<T, HotError>;

pub(crate) fn err<T>(message: impl Into<String>) -> R<T> {
    Err(HotError::new(message))
}

/// `value` as a map (null as the empty one), or the error "`what` must be a
/// map". At the root, with `err`, because every level of the crate reads maps.
pub(crate) fn as_map<'a>(value: &'a Value, what: &str) -> R<&'a Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        _ => err(format!("{what} must be a map")),
    }
}
