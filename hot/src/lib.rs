//! The Heat Orchestration Template (HOT) language, in which the drivers'
//! stack plans are written: a pure evaluator, used by the host's `local`
//! orchestrator.
//!
//! It follows Heat's semantics (and its error messages, where they help the
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
//!   (`[group, attr, 0]`) selects inside *each member's* value.
//!
//! Everything that touches the (simulated) cloud goes through [`Provider`]:
//! the evaluator itself has no clock, no randomness and no I/O. Times are
//! milliseconds since the epoch; each resource starts when its dependencies
//! are ready, so a stack is ready at the end of its critical path.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

/// Template files by name, as in a driver's `StackOperation`.
pub type Files = BTreeMap<String, String>;

/// The HOT versions accepted (all are read with 2018-08-31 semantics, but
/// for the two-argument `if` of 2021-04-16).
pub const HOT_VERSIONS: &[&str] = &[
    "2013-05-23",
    "2014-10-16",
    "2015-04-30",
    "2015-10-15",
    "2016-04-08",
    "2016-10-14",
    "2017-02-24",
    "2017-09-01",
    "2018-03-02",
    "2018-08-31",
    "2021-04-16",
    "newton",
    "ocata",
    "pike",
    "queens",
    "rocky",
    "wallaby",
];

/// The intrinsic functions this evaluator implements.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "str_replace",
    "list_join",
    "get_file",
    "if",
];

/// Condition functions, valid in `conditions`, `condition` and `if`.
pub const CONDITION_FUNCTIONS: &[&str] = &["equals", "not", "and", "or"];

/// HOT functions Heat has that this evaluator does not implement.
const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "repeat",
    "resource_facade",
    "str_replace_strict",
    "str_replace_vstrict",
    "str_split",
    "digest",
    "map_merge",
    "map_replace",
    "yaql",
    "contains",
    "filter",
    "make_url",
    "list_concat",
    "list_concat_unique",
];

/// CloudFormation functions HOT removed.
const REMOVED_FUNCTIONS: &[&str] = &[
    "Ref",
    "Fn::GetAtt",
    "Fn::GetAZs",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::Replace",
    "Fn::Base64",
    "Fn::MemberListToMap",
    "Fn::ResourceFacade",
];

/// The group resource the evaluator implements itself.
pub const RESOURCE_GROUP: &str = "OS::Heat::ResourceGroup";

/// Heat's `max_nested_stack_depth`.
const MAX_NESTING: usize = 5;

const PSEUDO_STACK_NAME: &str = "OS::stack_name";
const PSEUDO_STACK_ID: &str = "OS::stack_id";
const PSEUDO_PROJECT_ID: &str = "OS::project_id";

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
    fn within(mut self, segment: impl Into<String>) -> Self {
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

type R<T> = Result<T, HotError>;

fn err<T>(message: impl Into<String>) -> R<T> {
    Err(HotError::new(message))
}

// ---- Python-compatible rendering ---------------------------------------------
//
// Heat is Python: values it turns into strings (str_replace, stack show's
// parameters, error messages) read as Python's str(), repr() and
// json.dumps() would write them.

/// Python's `str()` of a JSON value.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => py_number(n),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn py_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// Python's `json.dumps(value, sort_keys=True)`.
pub fn py_json(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => py_number(n),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(py_json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            // serde_json's Map is ordered by key here (no preserve_order).
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), py_json(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `==` on JSON values: numbers compare by value.
fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        _ => a == b,
    }
}

/// Heat's `select_from_attribute`: follows `path` into `value`; any step
/// that does not fit gives `null`. Strings are sequences, as in Python.
pub fn select_path(value: Value, path: &[Value]) -> Value {
    let mut current = value;
    for key in path {
        current = match (current, key) {
            (Value::Object(mut map), Value::String(k)) => map.remove(k).unwrap_or(Value::Null),
            (Value::Array(mut items), Value::Number(n)) => match python_index(n, items.len()) {
                Some(i) => items.swap_remove(i),
                None => Value::Null,
            },
            (Value::String(s), Value::Number(n)) => {
                let chars: Vec<char> = s.chars().collect();
                match python_index(n, chars.len()) {
                    Some(i) => Value::String(chars[i].to_string()),
                    None => Value::Null,
                }
            }
            _ => Value::Null,
        };
        if current.is_null() {
            break;
        }
    }
    current
}

/// A Python sequence index (negative counts from the end).
fn python_index(n: &Number, len: usize) -> Option<usize> {
    let i = n.as_i64()?;
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then(|| usize::try_from(i).ok())?
}

// ---- Templates -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    String,
    Number,
    Boolean,
    Json,
    CommaDelimitedList,
}

#[derive(Debug, Clone)]
enum Constraint {
    AllowedValues(Vec<Value>),
    Range(Option<f64>, Option<f64>),
    Length(Option<f64>, Option<f64>),
    Pattern(regex::Regex, String),
    Modulo(f64, f64),
}

#[derive(Debug, Clone)]
struct ParamSchema {
    kind: ParamType,
    default: Option<Value>,
    hidden: bool,
    /// Each with its optional `description`, which replaces Heat's message.
    constraints: Vec<(Constraint, Option<String>)>,
}

/// A parsed, structurally checked template.
#[derive(Debug, Clone)]
pub struct Template {
    pub version: String,
    parameters: BTreeMap<String, ParamSchema>,
    conditions: Map<String, Value>,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

const TEMPLATE_SECTIONS: &[&str] = &[
    "heat_template_version",
    "description",
    "parameter_groups",
    "parameters",
    "resources",
    "outputs",
    "conditions",
];
const PARAMETER_KEYS: &[&str] = &[
    "type",
    "label",
    "description",
    "default",
    "hidden",
    "constraints",
    "immutable",
    "tags",
];
const RESOURCE_KEYS: &[&str] = &[
    "type",
    "properties",
    "metadata",
    "depends_on",
    "update_policy",
    "deletion_policy",
    "condition",
    "external_id",
];
const OUTPUT_KEYS: &[&str] = &["value", "description", "condition"];

fn as_map<'a>(value: &'a Value, what: &str) -> R<&'a Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        _ => err(format!("{what} must be a map")),
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Template {
    /// Parses HOT text (YAML or JSON); `name` is used in error messages.
    pub fn parse(name: &str, text: &str) -> R<Self> {
        let doc: Value = serde_norway::from_str(text)
            .map_err(|e| HotError::new(format!("{name}: not valid YAML: {e}")))?;
        Self::from_value(&doc)
    }

    fn from_value(doc: &Value) -> R<Self> {
        let Value::Object(doc) = doc else {
            return err("The template is not a YAML or JSON map");
        };
        if doc.contains_key("AWSTemplateFormatVersion")
            || doc.contains_key("HeatTemplateFormatVersion")
        {
            return err(
                "CloudFormation templates are not supported: use HOT (heat_template_version)",
            );
        }
        let version = match doc.get("heat_template_version") {
            None => return err("Template format version not found."),
            Some(Value::String(v)) => v.clone(),
            Some(other) => py_str(other),
        };
        if !HOT_VERSIONS.contains(&version.as_str()) {
            return err(format!(
                "The template version is invalid: \"heat_template_version: {version}\". \
                 \"heat_template_version\" should be one of: {}",
                HOT_VERSIONS.join(", ")
            ));
        }
        if let Some(section) = doc
            .keys()
            .find(|k| !TEMPLATE_SECTIONS.contains(&k.as_str()))
        {
            return err(format!("The template section is invalid: {section}"));
        }
        let section = |key: &str| -> R<Map<String, Value>> {
            doc.get(key)
                .map_or(Ok(Map::new()), |v| as_map(v, key).cloned())
        };
        let mut parameters = BTreeMap::new();
        for (name, schema) in section("parameters")? {
            let schema = parse_parameter(&name, &schema)
                .map_err(|e| e.within(format!("parameters.{name}")))?;
            parameters.insert(name, schema);
        }
        let resources = section("resources")?;
        for (name, definition) in &resources {
            let Value::Object(definition) = definition else {
                return err(format!("Resource {name} definition must be a map"));
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !RESOURCE_KEYS.contains(&k.as_str()))
            {
                return err(format!(
                    "\"{key}\" is not a valid keyword inside a resource definition"
                ))
                .map_err(|e: HotError| e.within(format!("resources.{name}")));
            }
            match definition.get("type") {
                Some(Value::String(_)) => {}
                Some(_) => {
                    return err(format!("Resource {name} type must be a string"));
                }
                None => return err(format!("Resource {name} has no type")),
            }
        }
        let outputs = section("outputs")?;
        for (name, definition) in &outputs {
            let Value::Object(definition) = definition else {
                return err(format!("Output {name} definition must be a map"));
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !OUTPUT_KEYS.contains(&k.as_str()))
            {
                return err(format!(
                    "\"{key}\" is not a valid keyword inside an output definition"
                ))
                .map_err(|e: HotError| e.within(format!("outputs.{name}")));
            }
        }
        Ok(Self {
            version,
            parameters,
            conditions: section("conditions")?,
            resources,
            outputs,
        })
    }

    /// Whether `if` may take two arguments, the missing "else" omitting
    /// the key or item (Heat's `IfNullable`, from HOT 2021-04-16 on).
    fn nullable_if(&self) -> bool {
        matches!(self.version.as_str(), "2021-04-16" | "wallaby")
    }

    /// The declared parameters that are hidden (shown as `******`).
    pub fn hidden_parameters(&self) -> Vec<&str> {
        self.parameters
            .iter()
            .filter(|(_, s)| s.hidden)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

fn parse_parameter(name: &str, schema: &Value) -> R<ParamSchema> {
    let Value::Object(schema) = schema else {
        return err(format!(
            "Invalid parameter schema for {name}: must be a map"
        ));
    };
    if let Some(key) = schema
        .keys()
        .find(|k| !PARAMETER_KEYS.contains(&k.as_str()))
    {
        return err(format!("Invalid key '{key}' for parameter ({name})"));
    }
    let kind = match schema.get("type").and_then(Value::as_str) {
        Some("string") => ParamType::String,
        Some("number") => ParamType::Number,
        Some("boolean") => ParamType::Boolean,
        Some("json") => ParamType::Json,
        Some("comma_delimited_list") => ParamType::CommaDelimitedList,
        Some(other) => return err(format!("Invalid type ({other})")),
        None => return err(format!("Missing parameter type for parameter: {name}")),
    };
    let hidden = match schema.get("hidden") {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| HotError::new("hidden must be a boolean"))?,
    };
    let mut constraints = Vec::new();
    let listed = match schema.get("constraints") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return err("Invalid parameter constraints, expected a list"),
    };
    for item in listed {
        let Value::Object(item) = item else {
            return err("Invalid parameter constraints, expected a list of maps");
        };
        let description = item
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for (key, value) in &item {
            let constraint = match key.as_str() {
                "description" => continue,
                // The simulated cloud has every image, flavor, key pair, …
                "custom_constraint" => continue,
                "allowed_values" => match value {
                    Value::Array(allowed) => Constraint::AllowedValues(allowed.clone()),
                    _ => return err("allowed_values must be a list"),
                },
                "range" | "length" => {
                    let bounds = as_map(value, key)?;
                    let bound = |b: &str| -> R<Option<f64>> {
                        match bounds.get(b) {
                            None | Some(Value::Null) => Ok(None),
                            Some(v) => number_of(v).map(Some).ok_or_else(|| {
                                HotError::new(format!("{key} {b} must be a number"))
                            }),
                        }
                    };
                    let (min, max) = (bound("min")?, bound("max")?);
                    if key == "range" {
                        Constraint::Range(min, max)
                    } else {
                        Constraint::Length(min, max)
                    }
                }
                "modulo" => {
                    let m = as_map(value, key)?;
                    let step = m.get("step").and_then(number_of);
                    let offset = m.get("offset").and_then(number_of);
                    match (step, offset) {
                        (Some(step), Some(offset)) if step != 0.0 => {
                            Constraint::Modulo(step, offset)
                        }
                        _ => return err("modulo needs a non-zero step and an offset"),
                    }
                }
                "allowed_pattern" => {
                    let pattern = value
                        .as_str()
                        .ok_or_else(|| HotError::new("allowed_pattern must be a string"))?;
                    let anchored = format!("^(?:{pattern})$");
                    let regex = regex::Regex::new(&anchored).map_err(|e| {
                        HotError::new(format!("Invalid allowed_pattern \"{pattern}\": {e}"))
                    })?;
                    Constraint::Pattern(regex, pattern.to_owned())
                }
                other => return err(format!("Invalid key '{other}' for parameter constraints")),
            };
            constraints.push((constraint, description.clone()));
        }
    }
    Ok(ParamSchema {
        kind,
        default: schema.get("default").filter(|v| !v.is_null()).cloned(),
        hidden,
        constraints,
    })
}

/// oslo's `bool_from_string(strict=True)`.
fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `raw` converted to the parameter's type and checked against its
/// constraints; the message is the part after Heat's
/// `Parameter 'x' is invalid: `.
fn convert_parameter(schema: &ParamSchema, raw: &Value) -> Result<Value, String> {
    let value = match schema.kind {
        ParamType::String => match raw {
            Value::String(_) => raw.clone(),
            Value::Number(_) | Value::Bool(_) => Value::String(py_str(raw)),
            other => return Err(format!("Value must be a string; got {}", py_repr(other))),
        },
        ParamType::Number => match raw {
            Value::Number(_) => raw.clone(),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Value::from(i)
                } else {
                    match t.parse::<f64>().ok().and_then(Number::from_f64) {
                        Some(n) => Value::Number(n),
                        None => return Err(format!("could not convert string to float: '{s}'")),
                    }
                }
            }
            other => return Err(format!("Value must be a number; got {}", py_repr(other))),
        },
        ParamType::Boolean => match parse_bool(raw) {
            Some(b) => Value::Bool(b),
            None => {
                return Err(format!(
                    "Unrecognized value \"{}\", acceptable values are: '0', '1', 'f', 'false', \
                     'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
                    py_str(raw)
                ))
            }
        },
        ParamType::Json => match raw {
            Value::Object(_) | Value::Array(_) => raw.clone(),
            Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
                Ok(_) => return Err("Value must be valid JSON: not a map or list".into()),
                Err(e) => return Err(format!("Value must be valid JSON: {e}")),
            },
            other => return Err(format!("Value must be valid JSON; got {}", py_repr(other))),
        },
        ParamType::CommaDelimitedList => match raw {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| Value::String(py_str(i))).collect())
            }
            Value::String(s) if s.is_empty() => Value::Array(Vec::new()),
            Value::String(s) => Value::Array(
                s.split(',')
                    .map(|i| Value::String(i.trim().to_owned()))
                    .collect(),
            ),
            other => {
                return Err(format!(
                    "Value must be a comma-delimited list string; got {}",
                    py_repr(other)
                ))
            }
        },
    };
    for (constraint, description) in &schema.constraints {
        if let Err(message) = check_constraint(schema.kind, constraint, &value) {
            return Err(description.clone().unwrap_or(message));
        }
    }
    Ok(value)
}

fn fmt_bound(b: f64) -> String {
    py_number(&Number::from_f64(b).unwrap_or_else(|| Number::from(0)))
        .trim_end_matches(".0")
        .to_owned()
}

fn check_constraint(kind: ParamType, constraint: &Constraint, value: &Value) -> Result<(), String> {
    let in_bounds = |x: f64, min: &Option<f64>, max: &Option<f64>| {
        min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)
    };
    let bounds_message = |what: &str, min: &Option<f64>, max: &Option<f64>| match (min, max) {
        (Some(min), None) => format!("The {what} must be at least {}.", fmt_bound(*min)),
        (None, Some(max)) => format!("The {what} must be no greater than {}.", fmt_bound(*max)),
        (Some(min), Some(max)) => format!(
            "The {what} must be in the range {} to {}.",
            fmt_bound(*min),
            fmt_bound(*max)
        ),
        (None, None) => String::new(),
    };
    match constraint {
        Constraint::AllowedValues(allowed) => {
            let items: Vec<&Value> = match (kind, value) {
                (ParamType::CommaDelimitedList, Value::Array(items)) => items.iter().collect(),
                _ => vec![value],
            };
            for item in items {
                let ok = allowed.iter().any(|a| {
                    py_eq(a, item) || (kind == ParamType::String && py_str(a) == py_str(item))
                });
                if !ok {
                    let allowed: Vec<String> = allowed.iter().map(py_str).collect();
                    return Err(format!(
                        "\"{}\" is not an allowed value [{}]",
                        py_str(item),
                        allowed.join(", ")
                    ));
                }
            }
            Ok(())
        }
        Constraint::Range(min, max) => {
            let x = number_of(value).unwrap_or(f64::NAN);
            if in_bounds(x, min, max) {
                Ok(())
            } else {
                Err(bounds_message("value", min, max))
            }
        }
        Constraint::Length(min, max) => {
            let len = match value {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                _ => 0,
            };
            if in_bounds(len as f64, min, max) {
                Ok(())
            } else {
                Err(bounds_message("length", min, max))
            }
        }
        Constraint::Pattern(regex, pattern) => {
            let items: Vec<String> = match value {
                Value::Array(items) => items.iter().map(py_str).collect(),
                other => vec![py_str(other)],
            };
            match items.iter().find(|i| !regex.is_match(i)) {
                None => Ok(()),
                Some(bad) => Err(format!("\"{bad}\" does not match pattern \"{pattern}\"")),
            }
        }
        Constraint::Modulo(step, offset) => {
            let x = number_of(value).unwrap_or(f64::NAN);
            if (x % step - offset).abs() < 1e-9 {
                Ok(())
            } else {
                Err(format!(
                    "The current value must be {} more than a multiple of {}.",
                    fmt_bound(*offset),
                    fmt_bound(*step)
                ))
            }
        }
    }
}

/// The parameter as Heat's stack show reports it: a string (`True`/`False`
/// for booleans, comma-joined lists, JSON text), `******` when hidden.
fn shown_parameter(schema: &ParamSchema, value: &Value) -> Value {
    if schema.hidden {
        return Value::String("******".into());
    }
    Value::String(match (schema.kind, value) {
        (ParamType::CommaDelimitedList, Value::Array(items)) => {
            items.iter().map(py_str).collect::<Vec<_>>().join(",")
        }
        (ParamType::Json, v) => py_json(v),
        (_, v) => py_str(v),
    })
}

// ---- Environment ---------------------------------------------------------------

const ENVIRONMENT_SECTIONS: &[&str] = &[
    "parameters",
    "parameter_defaults",
    "resource_registry",
    "encrypted_param_names",
    "event_sinks",
    "parameter_merge_strategies",
];

/// A Heat environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub parameters: Map<String, Value>,
    pub parameter_defaults: Map<String, Value>,
    /// `(type or glob, target)`.
    registry: Vec<(String, String)>,
    /// Resource name → its own mappings (`resource_registry.resources`).
    per_resource: BTreeMap<String, Vec<(String, String)>>,
}

fn registry_entries(map: &Map<String, Value>, at: &str) -> R<Vec<(String, String)>> {
    let mut entries = Vec::new();
    for (from, to) in map {
        match to {
            Value::String(to) => entries.push((from.clone(), to.clone())),
            // Heat's per-resource hooks and restrictions change nothing here.
            _ if at == "resources" => {}
            Value::Null => {}
            _ => {
                return err(format!(
                    "resource_registry: the mapping of {from} must be a type or a file name"
                ))
            }
        }
    }
    Ok(entries)
}

impl Environment {
    pub fn parse(env: &Map<String, Value>) -> R<Self> {
        if let Some(section) = env
            .keys()
            .find(|k| !ENVIRONMENT_SECTIONS.contains(&k.as_str()))
        {
            return err(format!("environment has wrong section \"{section}\""));
        }
        let section = |key: &str| -> R<Map<String, Value>> {
            env.get(key)
                .map_or(Ok(Map::new()), |v| as_map(v, key).cloned())
        };
        let registry_map = section("resource_registry")?;
        let mut per_resource = BTreeMap::new();
        let mut global = Map::new();
        for (key, value) in registry_map {
            if key == "resources" {
                for (resource, mappings) in as_map(&value, "resource_registry.resources")? {
                    let mappings = as_map(mappings, "resource_registry.resources")?;
                    per_resource.insert(resource.clone(), registry_entries(mappings, "resources")?);
                }
            } else {
                global.insert(key, value);
            }
        }
        Ok(Self {
            parameters: section("parameters")?,
            parameter_defaults: section("parameter_defaults")?,
            registry: registry_entries(&global, "")?,
            per_resource,
        })
    }

    fn lookup(&self, resource: &str, type_name: &str) -> Option<String> {
        let find = |entries: &[(String, String)]| -> Option<String> {
            if let Some((_, to)) = entries.iter().find(|(from, _)| from == type_name) {
                return Some(to.clone());
            }
            entries.iter().find_map(|(from, to)| {
                let prefix = from.strip_suffix('*')?;
                let rest = type_name.strip_prefix(prefix)?;
                Some(match to.strip_suffix('*') {
                    Some(target) => format!("{target}{rest}"),
                    None => to.clone(),
                })
            })
        };
        self.per_resource
            .get(resource)
            .and_then(|entries| find(entries))
            .or_else(|| find(&self.registry))
    }

    /// `type_name` after the registry's mappings for `resource`.
    pub fn resolve_type(&self, resource: &str, type_name: &str) -> R<String> {
        let mut current = type_name.to_owned();
        for _ in 0..10 {
            match self.lookup(resource, &current) {
                Some(next) if next != current => current = next,
                _ => return Ok(current),
            }
        }
        err(format!(
            "resource_registry: the mappings of {type_name} form a loop"
        ))
    }
}

// ---- State -----------------------------------------------------------------------

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

fn collect_primitives<'a>(
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

/// Group members by name in index order ("2" before "10").
fn members(state: &ResourceState) -> Vec<(&String, &ResourceState)> {
    let mut members: Vec<_> = state
        .nested
        .as_ref()
        .map(|n| n.resources.iter().collect())
        .unwrap_or_default();
    members.sort_by_key(|(name, _)| (name.parse::<u64>().unwrap_or(u64::MAX), (*name).clone()));
    members
}

// ---- Provider ----------------------------------------------------------------------

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

// ---- Evaluation ------------------------------------------------------------------

/// A stack to evaluate.
#[derive(Debug, Clone)]
pub struct StackRequest<'a> {
    pub stack_name: &'a str,
    pub stack_id: &'a str,
    pub project_id: &'a str,
    /// The key of `files` holding the top-level template.
    pub template: &'a str,
    pub files: &'a Files,
    pub environment: &'a Map<String, Value>,
    pub parameters: &'a Map<String, Value>,
    pub action: Action,
    pub start_ms: i64,
}

/// A resource the cloud failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub at_ms: i64,
    pub reason: String,
}

/// The outcome of evaluating a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub resources: StackState,
    /// Empty when a resource failed.
    pub outputs: Map<String, Value>,
    /// The parameters as Heat's stack show gives them (strings).
    pub parameters: Map<String, Value>,
    /// When every resource is ready (in the past when an update changed
    /// nothing; the start when there are no resources).
    pub ready_ms: i64,
    pub failure: Option<Failure>,
}

/// Evaluates (creates, or updates from `previous`) the stack. An invalid
/// template or parameter is an `Err`; a resource the cloud fails stops the
/// evaluation with `failure` set, keeping what was created before it (and,
/// on update, the previous resources it did not reach).
pub fn evaluate(
    request: &StackRequest<'_>,
    previous: Option<&StackState>,
    provider: &mut dyn Provider,
) -> R<Evaluation> {
    let text = request.files.get(request.template).ok_or_else(|| {
        HotError::new(format!(
            "The template {} is not among the stack's files",
            request.template
        ))
    })?;
    let template = Template::parse(request.template, text)?;
    let environment =
        Environment::parse(request.environment).map_err(|e| e.within("environment"))?;
    let mut walker = Walker {
        files: request.files,
        environment: &environment,
        provider,
        action: request.action,
        project_id: request.project_id,
        templates: BTreeMap::new(),
        failure: None,
        depth: 0,
    };
    let context = StackContext {
        name: request.stack_name.to_owned(),
        id: request.stack_id.to_owned(),
        top: true,
    };
    let result = walker.stack(
        &template,
        &context,
        request.parameters,
        previous,
        request.start_ms,
    )?;
    Ok(Evaluation {
        resources: result.state,
        outputs: result.outputs,
        parameters: result.shown,
        ready_ms: result.ready_ms,
        failure: walker.failure,
    })
}

struct StackContext {
    name: String,
    id: String,
    top: bool,
}

struct StackResult {
    state: StackState,
    outputs: Map<String, Value>,
    shown: Map<String, Value>,
    ready_ms: i64,
}

struct Walker<'a> {
    files: &'a Files,
    environment: &'a Environment,
    provider: &'a mut dyn Provider,
    action: Action,
    project_id: &'a str,
    templates: BTreeMap<String, Rc<Template>>,
    failure: Option<Failure>,
    depth: usize,
}

/// What one template level sees while it is evaluated.
struct Scope<'t> {
    template: &'t Template,
    files: &'t Files,
    params: Map<String, Value>,
    conditions: BTreeMap<String, bool>,
    enabled: BTreeSet<String>,
    resources: BTreeMap<String, ResourceState>,
}

impl Walker<'_> {
    fn template(&mut self, file: &str) -> R<Rc<Template>> {
        if let Some(t) = self.templates.get(file) {
            return Ok(Rc::clone(t));
        }
        let text = self
            .files
            .get(file)
            .ok_or_else(|| HotError::new(format!("No template {file} among the stack's files")))?;
        // Name the file: the error's path is that of the nesting resource.
        let template = Rc::new(
            Template::parse(file, text).map_err(|e| HotError::new(format!("{file}: {e}")))?,
        );
        self.templates.insert(file.to_owned(), Rc::clone(&template));
        Ok(template)
    }

    fn stack(
        &mut self,
        template: &Template,
        context: &StackContext,
        given: &Map<String, Value>,
        previous: Option<&StackState>,
        start_ms: i64,
    ) -> R<StackResult> {
        let (params, shown) = self.parameters(template, context, given)?;
        let conditions = evaluate_conditions(template, &params)?;
        let mut scope = Scope {
            template,
            files: self.files,
            params,
            conditions,
            enabled: BTreeSet::new(),
            resources: BTreeMap::new(),
        };
        for (name, definition) in &template.resources {
            let enabled = match definition.get("condition") {
                None => true,
                Some(condition) => scope
                    .condition(condition)
                    .map_err(|e| e.within(format!("resources.{name}.condition")))?,
            };
            if enabled {
                scope.enabled.insert(name.clone());
            }
        }
        let order = scope.order()?;
        let empty = StackState::default();
        let previous = previous.unwrap_or(&empty);
        // When the last resource is ready: in the past when nothing changed.
        let mut ready_ms: Option<i64> = None;
        for (name, dependencies) in order {
            if self.failure.is_some() {
                // Stopped by a failure: keep what was there.
                if let Some(old) = previous.resources.get(&name) {
                    scope.resources.insert(name, old.clone());
                }
                continue;
            }
            let start = dependencies
                .iter()
                .filter_map(|d| scope.resources.get(d))
                .map(|r| r.ready_ms)
                .fold(start_ms, i64::max);
            let created = self
                .resource(&scope, context, &name, previous.resources.get(&name), start)
                .map_err(|e| e.within(format!("resources.{name}")))?;
            if let Some(created) = created {
                ready_ms = Some(ready_ms.map_or(created.ready_ms, |r| r.max(created.ready_ms)));
                scope.resources.insert(name, created);
            }
        }
        // Resources the new definition no longer has (removed, disabled or of
        // another type) go, unless the operation failed.
        for (name, old) in &previous.resources {
            let kept = scope
                .resources
                .get(name)
                .is_some_and(|new| new.type_name == old.type_name && new.kind == old.kind);
            if kept {
                continue;
            }
            if self.failure.is_some() {
                scope
                    .resources
                    .entry(name.clone())
                    .or_insert_with(|| old.clone());
            } else {
                self.remove(old)?;
            }
        }
        let outputs = if self.failure.is_some() {
            Map::new()
        } else {
            scope.outputs()?
        };
        Ok(StackResult {
            state: StackState {
                resources: scope.resources,
            },
            outputs,
            shown,
            ready_ms: ready_ms.unwrap_or(start_ms),
        })
    }

    fn remove(&mut self, resource: &ResourceState) -> R<()> {
        match &resource.nested {
            Some(nested) => nested.resources.values().try_for_each(|r| self.remove(r)),
            None if resource.kind == ResourceKind::Primitive => self.provider.remove(resource),
            None => Ok(()),
        }
    }

    /// The typed parameters and their stack-show form.
    fn parameters(
        &self,
        template: &Template,
        context: &StackContext,
        given: &Map<String, Value>,
    ) -> R<(Map<String, Value>, Map<String, Value>)> {
        for name in given.keys() {
            if !template.parameters.contains_key(name) {
                return err(if context.top {
                    format!("The Parameter ({name}) was not defined in template.")
                } else {
                    format!("Unknown Property {name}")
                });
            }
        }
        if context.top {
            if let Some(name) = self
                .environment
                .parameters
                .keys()
                .find(|k| !template.parameters.contains_key(*k))
            {
                return err(format!(
                    "The Parameter ({name}) was not defined in template."
                ));
            }
        }
        let mut params = Map::new();
        let mut shown = Map::new();
        for (name, schema) in &template.parameters {
            let present = |v: &&Value| !v.is_null();
            let raw = given
                .get(name)
                .filter(present)
                .or_else(|| {
                    context
                        .top
                        .then(|| self.environment.parameters.get(name).filter(present))
                        .flatten()
                })
                .or_else(|| {
                    self.environment
                        .parameter_defaults
                        .get(name)
                        .filter(present)
                })
                .or(schema.default.as_ref());
            let Some(raw) = raw else {
                return err(if context.top {
                    format!("The Parameter ({name}) was not provided.")
                } else {
                    format!("Property {name} not assigned")
                });
            };
            let value = convert_parameter(schema, raw).map_err(|message| {
                HotError::new(if context.top {
                    format!("Parameter '{name}' is invalid: {message}")
                } else {
                    format!("Property error: {name}: {message}")
                })
            })?;
            shown.insert(name.clone(), shown_parameter(schema, &value));
            params.insert(name.clone(), value);
        }
        let pseudo = [
            (PSEUDO_STACK_NAME, context.name.as_str()),
            (PSEUDO_STACK_ID, context.id.as_str()),
            (PSEUDO_PROJECT_ID, self.project_id),
        ];
        for (name, value) in pseudo {
            params.insert(name.into(), value.into());
            shown.insert(name.into(), value.into());
        }
        Ok((params, shown))
    }

    fn resource(
        &mut self,
        scope: &Scope<'_>,
        context: &StackContext,
        name: &str,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>> {
        let definition = as_map(&scope.template.resources[name], "resource")?;
        let written = definition
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let type_name = self.environment.resolve_type(name, written)?;
        let properties = match definition.get("properties") {
            None => Map::new(),
            Some(p) => match scope.resolve(p)? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                _ => return err("Properties must be a map"),
            },
        };
        if let Some(metadata) = definition.get("metadata") {
            scope.resolve(metadata)?;
        }
        self.typed(context, name, &type_name, properties, previous, start_ms)
    }

    /// Creates or updates `name` of `type_name` (after registry mapping).
    fn typed(
        &mut self,
        context: &StackContext,
        name: &str,
        type_name: &str,
        properties: Map<String, Value>,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>> {
        let previous = previous.filter(|p| p.type_name == type_name);
        if type_name == RESOURCE_GROUP {
            return self.group(context, name, properties, previous, start_ms);
        }
        if self.files.contains_key(type_name) {
            return self.nested(context, name, type_name, properties, previous, start_ms);
        }
        if !self.provider.supports(type_name) {
            let hint = if type_name.ends_with(".yaml")
                || type_name.ends_with(".yml")
                || type_name.ends_with(".template")
                || type_name.contains('/')
            {
                " (no file of that name among the stack's files)"
            } else {
                ""
            };
            return err(format!(
                "The Resource Type ({type_name}) could not be found.{hint}"
            ));
        }
        let digest = digest(&Value::Object(properties.clone()));
        let request = ResourceRequest {
            type_name,
            name,
            stack_name: &context.name,
            properties: &properties,
            previous: previous.filter(|p| p.kind == ResourceKind::Primitive),
            unchanged: previous.is_some_and(|p| p.digest.as_deref() == Some(digest.as_str())),
            start_ms,
        };
        match self.provider.apply(&request) {
            Ok(applied) => Ok(Some(ResourceState {
                type_name: type_name.to_owned(),
                kind: ResourceKind::Primitive,
                ref_id: applied.ref_id,
                attributes: applied.attributes,
                open_attributes: applied.open_attributes,
                ready_ms: applied.ready_ms,
                digest: Some(digest),
                stack_id: None,
                nested: None,
                removed: Vec::new(),
            })),
            Err(ProviderError::Invalid(message)) => err(message),
            Err(ProviderError::Fault { at_ms, message }) => {
                self.failure = Some(Failure {
                    at_ms,
                    reason: format!(
                        "Resource {} failed: {type_name} {name}: {message}",
                        self.action.as_str()
                    ),
                });
                Ok(None)
            }
        }
    }

    fn descend(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(format!("Recursion depth exceeds {MAX_NESTING}."));
        }
        Ok(())
    }

    fn nested(
        &mut self,
        context: &StackContext,
        name: &str,
        file: &str,
        mut properties: Map<String, Value>,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>> {
        let template = self.template(file)?;
        properties.retain(|_, v| !v.is_null());
        let id = match previous.and_then(|p| p.stack_id.clone()) {
            Some(id) => id,
            None => self.provider.new_id(),
        };
        let short: String = id.chars().filter(|c| *c != '-').take(12).collect();
        let nested_context = StackContext {
            name: format!("{}-{name}-{short}", context.name),
            id: id.clone(),
            top: false,
        };
        self.descend()?;
        let result = self.stack(
            &template,
            &nested_context,
            &properties,
            previous.and_then(|p| p.nested.as_ref()),
            start_ms,
        );
        self.depth -= 1;
        let result = result?;
        let ref_id = result
            .outputs
            .get(PSEUDO_STACK_ID)
            .and_then(Value::as_str)
            .map_or_else(|| id.clone(), str::to_owned);
        let mut attributes = result.outputs;
        if self.failure.is_some() {
            attributes = previous.map(|p| p.attributes.clone()).unwrap_or_default();
        }
        Ok(Some(ResourceState {
            type_name: file.to_owned(),
            kind: ResourceKind::Template,
            ref_id,
            attributes,
            open_attributes: false,
            ready_ms: result.ready_ms,
            digest: None,
            stack_id: Some(id),
            nested: Some(result.state),
            removed: Vec::new(),
        }))
    }

    fn group(
        &mut self,
        context: &StackContext,
        name: &str,
        properties: Map<String, Value>,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>> {
        let group = GroupProperties::parse(&properties)?;
        let empty = StackState::default();
        let old_members = previous.and_then(|p| p.nested.as_ref()).unwrap_or(&empty);
        // Heat's name blacklist: kept forever, extended by the removal
        // policies (member names, or member refs as in `refs`).
        let mut removed: Vec<String> = match (previous, group.replace_removals) {
            (Some(p), false) => p.removed.clone(),
            _ => Vec::new(),
        };
        for entry in &group.to_remove {
            let matched = if old_members.resources.contains_key(entry) {
                Some(entry.clone())
            } else {
                old_members
                    .resources
                    .iter()
                    .find(|(_, m)| &m.ref_id == entry)
                    .map(|(n, _)| n.clone())
            };
            if let Some(matched) = matched {
                if !removed.contains(&matched) {
                    removed.push(matched);
                }
            }
        }
        let names: Vec<String> = (0u64..)
            .map(|i| i.to_string())
            .filter(|n| !removed.contains(n))
            .take(group.count)
            .collect();
        let id = match previous.and_then(|p| p.stack_id.clone()) {
            Some(id) => id,
            None => self.provider.new_id(),
        };
        let short: String = id.chars().filter(|c| *c != '-').take(12).collect();
        let member_context = StackContext {
            name: format!("{}-{name}-{short}", context.name),
            id: id.clone(),
            top: false,
        };
        let member_type = self.environment.resolve_type(name, &group.member_type)?;
        self.descend()?;
        let mut created = BTreeMap::new();
        let mut ready_ms: Option<i64> = None;
        let mut outcome = Ok(());
        for member in &names {
            let old = old_members.resources.get(member);
            if self.failure.is_some() {
                if let Some(old) = old {
                    created.insert(member.clone(), old.clone());
                }
                continue;
            }
            let mut member_properties = match substitute(
                &Value::Object(group.member_properties.clone()),
                &group.index_var,
                member,
            ) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            // Heat drops unset properties so that the member's defaults apply.
            member_properties.retain(|_, v| !v.is_null());
            match self.typed(
                &member_context,
                member,
                &member_type,
                member_properties,
                old,
                start_ms,
            ) {
                Ok(Some(state)) => {
                    ready_ms = Some(ready_ms.map_or(state.ready_ms, |r| r.max(state.ready_ms)));
                    created.insert(member.clone(), state);
                }
                Ok(None) => {}
                Err(e) => {
                    outcome = Err(e.within(format!("resources[{member}]")));
                    break;
                }
            }
        }
        self.depth -= 1;
        outcome?;
        for (member, old) in &old_members.resources {
            let kept = created
                .get(member)
                .is_some_and(|new| new.type_name == old.type_name && new.kind == old.kind);
            if kept {
                continue;
            }
            if self.failure.is_some() {
                created.entry(member.clone()).or_insert_with(|| old.clone());
            } else {
                self.remove(old)?;
            }
        }
        removed.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
        Ok(Some(ResourceState {
            type_name: RESOURCE_GROUP.to_owned(),
            kind: ResourceKind::Group,
            ref_id: id.clone(),
            attributes: Map::new(),
            open_attributes: false,
            ready_ms: ready_ms.unwrap_or(start_ms),
            digest: None,
            stack_id: Some(id),
            nested: Some(StackState { resources: created }),
            removed,
        }))
    }
}

/// `OS::Heat::ResourceGroup`'s properties.
struct GroupProperties {
    count: usize,
    index_var: String,
    member_type: String,
    member_properties: Map<String, Value>,
    to_remove: Vec<String>,
    /// `removal_policies_mode: update` replaces the blacklist.
    replace_removals: bool,
}

const GROUP_PROPERTIES: &[&str] = &[
    "count",
    "index_var",
    "resource_def",
    "removal_policies",
    "removal_policies_mode",
];

impl GroupProperties {
    fn parse(properties: &Map<String, Value>) -> R<Self> {
        if let Some(key) = properties
            .keys()
            .find(|k| !GROUP_PROPERTIES.contains(&k.as_str()))
        {
            return err(format!("Unknown Property {key}"));
        }
        let count = match properties.get("count") {
            None | Some(Value::Null) => 1,
            Some(value) => {
                let n = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    HotError::new(format!(
                        "Property error: count: Value '{}' is not an integer",
                        py_str(value)
                    ))
                })?;
                usize::try_from(n).map_err(|_| {
                    HotError::new("Property error: count: The value must be at least 0.")
                })?
            }
        };
        let index_var = match properties.get("index_var") {
            None | Some(Value::Null) => "%index%".to_owned(),
            Some(Value::String(s)) if s.chars().count() >= 3 => s.clone(),
            Some(_) => return err("Property error: index_var: The length must be at least 3."),
        };
        let definition = properties
            .get("resource_def")
            .ok_or_else(|| HotError::new("Property resource_def not assigned"))?;
        let definition = as_map(definition, "Property error: resource_def")?;
        if let Some(key) = definition
            .keys()
            .find(|k| !["type", "properties", "metadata"].contains(&k.as_str()))
        {
            return err(format!(
                "Property error: resource_def: Unknown Property {key}"
            ));
        }
        let member_type = definition
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                HotError::new("Property error: resource_def: Property type not assigned")
            })?
            .to_owned();
        let member_properties = as_map(
            definition.get("properties").unwrap_or(&Value::Null),
            "Property error: resource_def.properties",
        )?
        .clone();
        let mut to_remove = Vec::new();
        match properties.get("removal_policies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(policies)) => {
                for policy in policies {
                    let policy = as_map(policy, "Property error: removal_policies")?;
                    if let Some(key) = policy.keys().find(|k| *k != "resource_list") {
                        return err(format!(
                            "Property error: removal_policies: Unknown Property {key}"
                        ));
                    }
                    match policy.get("resource_list") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            to_remove.extend(items.iter().map(py_str));
                        }
                        Some(_) => return err(
                            "Property error: removal_policies.resource_list: Value must be a list",
                        ),
                    }
                }
            }
            Some(_) => return err("Property error: removal_policies: Value must be a list"),
        }
        let replace_removals = match properties.get("removal_policies_mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(m)) if m == "append" => false,
            Some(Value::String(m)) if m == "update" => true,
            Some(other) => {
                return err(format!(
                    "Property error: removal_policies_mode: \"{}\" is not an allowed value [append, update]",
                    py_str(other)
                ))
            }
        };
        Ok(Self {
            count,
            index_var,
            member_type,
            member_properties,
            to_remove,
            replace_removals,
        })
    }
}

/// Replaces `var` by `index` in every string of `value` (Heat's
/// `_handle_repl_val`).
fn substitute(value: &Value, var: &str, index: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(var, index)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| substitute(i, var, index)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, var, index)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A stable digest of a JSON value (its keys are ordered).
fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

// ---- Conditions ----------------------------------------------------------------------

fn evaluate_conditions(
    template: &Template,
    params: &Map<String, Value>,
) -> R<BTreeMap<String, bool>> {
    let mut memo = BTreeMap::new();
    for name in template.conditions.keys() {
        let mut visiting = Vec::new();
        named_condition(name, template, params, &mut memo, &mut visiting)
            .map_err(|e| e.within(format!("conditions.{name}")))?;
    }
    Ok(memo)
}

fn named_condition(
    name: &str,
    template: &Template,
    params: &Map<String, Value>,
    memo: &mut BTreeMap<String, bool>,
    visiting: &mut Vec<String>,
) -> R<bool> {
    if let Some(value) = memo.get(name) {
        return Ok(*value);
    }
    let Some(definition) = template.conditions.get(name) else {
        return err(format!("Invalid condition \"{name}\""));
    };
    if visiting.iter().any(|v| v == name) {
        return err(format!(
            "Circular definition of conditions: {} -> {name}",
            visiting.join(" -> ")
        ));
    }
    visiting.push(name.to_owned());
    let value = condition_value(definition, template, params, memo, visiting)?;
    visiting.pop();
    memo.insert(name.to_owned(), value);
    Ok(value)
}

/// A condition: a name, a boolean, or a condition function.
fn condition_value(
    value: &Value,
    template: &Template,
    params: &Map<String, Value>,
    memo: &mut BTreeMap<String, bool>,
    visiting: &mut Vec<String>,
) -> R<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(name) => named_condition(name, template, params, memo, visiting),
        Value::Object(map) if map.len() == 1 => {
            let (function, args) = map
                .iter()
                .next()
                .ok_or_else(|| HotError::new("empty condition"))?;
            let mut sub = |v: &Value| condition_value(v, template, params, memo, visiting);
            match function.as_str() {
                "get_param" => {
                    let resolved = condition_operand(value, params)?;
                    match resolved {
                        Value::Bool(b) => Ok(b),
                        other => err(format!(
                            "The definition of condition is invalid: get_param must give a boolean, got {}",
                            py_repr(&other)
                        )),
                    }
                }
                "equals" => match args {
                    Value::Array(pair) if pair.len() == 2 => Ok(py_eq(
                        &condition_operand(&pair[0], params)?,
                        &condition_operand(&pair[1], params)?,
                    )),
                    _ => err("Arguments to \"equals\" must be of the form: [value_1, value_2]"),
                },
                "not" => {
                    let inner = match args {
                        Value::Array(items) if items.len() == 1 => &items[0],
                        other => other,
                    };
                    Ok(!sub(inner)?)
                }
                "and" | "or" => match args {
                    Value::Array(items) if items.len() >= 2 => {
                        let mut results = Vec::with_capacity(items.len());
                        for item in items {
                            results.push(sub(item)?);
                        }
                        Ok(if function == "and" {
                            results.iter().all(|r| *r)
                        } else {
                            results.iter().any(|r| *r)
                        })
                    }
                    _ => err(format!(
                        "Arguments to \"{function}\" must be of the form: [condition_1, condition_2, ...]"
                    )),
                },
                other if UNSUPPORTED_FUNCTIONS.contains(&other) || SUPPORTED_FUNCTIONS.contains(&other) => err(format!(
                    "the local orchestrator does not support the function \"{other}\" in a condition"
                )),
                other => err(format!("Invalid condition function \"{other}\"")),
            }
        }
        other => err(format!("Invalid condition {}", py_repr(other))),
    }
}

/// An operand of `equals`: a literal or `get_param`.
fn condition_operand(value: &Value, params: &Map<String, Value>) -> R<Value> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (function, args) = map
                .iter()
                .next()
                .ok_or_else(|| HotError::new("empty map"))?;
            match function.as_str() {
                "get_param" => get_param(params, args, &|v| condition_operand(v, params)),
                f if is_function(f) => err(format!(
                    "the local orchestrator does not support the function \"{f}\" in a condition"
                )),
                _ => Ok(value.clone()),
            }
        }
        other => Ok(other.clone()),
    }
}

fn is_function(name: &str) -> bool {
    SUPPORTED_FUNCTIONS.contains(&name)
        || CONDITION_FUNCTIONS.contains(&name)
        || UNSUPPORTED_FUNCTIONS.contains(&name)
        || REMOVED_FUNCTIONS.contains(&name)
}

fn get_param(
    params: &Map<String, Value>,
    args: &Value,
    resolve: &dyn Fn(&Value) -> R<Value>,
) -> R<Value> {
    let (name, path) = match args {
        Value::String(name) => (name.clone(), Vec::new()),
        Value::Array(items) if !items.is_empty() => {
            let name = match resolve(&items[0])? {
                Value::String(name) => name,
                other => {
                    return err(format!(
                        "Function \"get_param\" must operate on a parameter name, got {}",
                        py_repr(&other)
                    ))
                }
            };
            let mut path = Vec::new();
            for item in &items[1..] {
                path.push(resolve(item)?);
            }
            (name, path)
        }
        _ => return err("Function \"get_param\" must operate on a parameter name or a list"),
    };
    let value = params
        .get(&name)
        .cloned()
        .ok_or_else(|| HotError::new(format!("The Parameter ({name}) was not provided.")))?;
    // Heat's get_param path: string indexes into lists are allowed; any
    // miss gives ''.
    let mut current = value;
    for key in path {
        let key = match (&current, key) {
            (Value::Array(_), Value::String(s)) => match s.parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => return Ok(Value::String(String::new())),
            },
            (_, key) => key,
        };
        current = select_path(current, &[key]);
        if current.is_null() {
            return Ok(Value::String(String::new()));
        }
    }
    Ok(current)
}

// ---- Scope: references, functions and outputs ------------------------------------------

impl Scope<'_> {
    fn condition(&self, value: &Value) -> R<bool> {
        let mut memo = self.conditions.clone();
        condition_value(
            value,
            self.template,
            &self.params,
            &mut memo,
            &mut Vec::new(),
        )
    }

    /// Every enabled resource with the resources it depends on, in an order
    /// where dependencies come first (by name among equals).
    fn order(&self) -> R<Vec<(String, BTreeSet<String>)>> {
        let mut dependencies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in &self.enabled {
            let definition = as_map(&self.template.resources[name], "resource")?;
            let mut found = BTreeSet::new();
            let at = format!("resources.{name}");
            match definition.get("depends_on") {
                None | Some(Value::Null) => {}
                Some(Value::String(d)) => {
                    found.insert(d.clone());
                }
                Some(Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::String(d) => {
                                found.insert(d.clone());
                            }
                            _ => {
                                return err("depends_on must be a resource name or a list of them")
                                    .map_err(|e: HotError| e.within(at.clone()))
                            }
                        }
                    }
                }
                Some(_) => {
                    return err("depends_on must be a resource name or a list of them")
                        .map_err(|e: HotError| e.within(at))
                }
            }
            for key in ["properties", "metadata"] {
                if let Some(value) = definition.get(key) {
                    self.references(value, &mut found)
                        .map_err(|e| e.within(at.clone()))?;
                }
            }
            for dependency in &found {
                if !self.template.resources.contains_key(dependency) {
                    return err(format!(
                        "The specified reference \"{dependency}\" (in {name}) is incorrect."
                    ));
                }
            }
            // A disabled resource is no dependency (Heat drops it).
            found.retain(|d| self.enabled.contains(d));
            dependencies.insert(name.clone(), found);
        }
        let mut order = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        while done.len() < dependencies.len() {
            let ready: Vec<String> = dependencies
                .iter()
                .filter(|(n, deps)| !done.contains(*n) && deps.iter().all(|d| done.contains(d)))
                .map(|(n, _)| n.clone())
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = dependencies
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .map(String::as_str)
                    .collect();
                return err(format!("Circular Dependency Found: {}", stuck.join(", ")));
            }
            for name in ready {
                done.insert(name.clone());
                let deps = dependencies[&name].clone();
                order.push((name, deps));
            }
        }
        Ok(order)
    }

    /// The resources `value` refers to, through the branches `if` takes.
    fn references(&self, value: &Value, found: &mut BTreeSet<String>) -> R<()> {
        match value {
            Value::Array(items) => items.iter().try_for_each(|i| self.references(i, found)),
            Value::Object(map) => {
                if let Some((function, args)) = call(map) {
                    match function {
                        "get_resource" => {
                            if let Value::String(name) = args {
                                found.insert(name.clone());
                                return Ok(());
                            }
                        }
                        "get_attr" => {
                            if let Some(Value::String(name)) =
                                args.as_array().and_then(|a| a.first())
                            {
                                found.insert(name.clone());
                            }
                        }
                        "if" => match args.as_array().map(Vec::as_slice) {
                            Some([condition, yes, no]) => {
                                let chosen = if self.condition(condition)? { yes } else { no };
                                return self.references(chosen, found);
                            }
                            Some([condition, yes]) if self.template.nullable_if() => {
                                return if self.condition(condition)? {
                                    self.references(yes, found)
                                } else {
                                    Ok(())
                                };
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                    return self.references(args, found);
                }
                map.values().try_for_each(|v| self.references(v, found))
            }
            _ => Ok(()),
        }
    }

    fn resolve(&self, value: &Value) -> R<Value> {
        Ok(self.resolve_or_omit(value)?.unwrap_or(Value::Null))
    }

    /// `None` when `value` is a two-argument `if` whose condition is false
    /// (HOT 2021-04-16): the list item or map key holding it is dropped, as
    /// if the template had not mentioned it.
    fn resolve_or_omit(&self, value: &Value) -> R<Option<Value>> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.resolve_or_omit(item)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) => {
                if let Some((function, args)) = call(map) {
                    if function == "if" {
                        return self.if_function(args);
                    }
                    return self.function(function, args).map(Some);
                }
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve_or_omit(v)? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn if_function(&self, args: &Value) -> R<Option<Value>> {
        match args.as_array().map(Vec::as_slice) {
            Some([condition, yes, no]) => {
                let chosen = if self.condition(condition)? { yes } else { no };
                self.resolve_or_omit(chosen)
            }
            Some([condition, yes]) if self.template.nullable_if() => {
                if self.condition(condition)? {
                    self.resolve_or_omit(yes)
                } else {
                    Ok(None)
                }
            }
            _ if self.template.nullable_if() => err(
                "Arguments to \"if\" must be of the form: [condition_name, value_if_true] or [condition_name, value_if_true, value_if_false]",
            ),
            _ => err("Arguments to \"if\" must be of the form: [condition_name, value_if_true, value_if_false]"),
        }
    }

    fn function(&self, function: &str, args: &Value) -> R<Value> {
        match function {
            "get_param" => get_param(&self.params, args, &|v| self.resolve(v)),
            "get_resource" => self.get_resource(args),
            "get_attr" => self.get_attr(args),
            "str_replace" => self.str_replace(args),
            "list_join" => self.list_join(args),
            "get_file" => self.get_file(args),
            "if" => Ok(self.if_function(args)?.unwrap_or(Value::Null)),
            f if CONDITION_FUNCTIONS.contains(&f) => err(format!(
                "\"{f}\" is a condition function: use it in the conditions section, a condition or the condition of \"if\""
            )),
            f if UNSUPPORTED_FUNCTIONS.contains(&f) => err(format!(
                "the local orchestrator does not support the intrinsic function \"{f}\""
            )),
            f => err(format!(
                "The function \"{f}\" is not supported in HOT templates"
            )),
        }
    }

    /// The enabled, evaluated resource `name`; `None` when its condition
    /// is false or a failure stopped the evaluation before it.
    fn target(&self, name: &str, function: &str) -> R<Option<&ResourceState>> {
        if !self.template.resources.contains_key(name) {
            return err(format!(
                "The specified reference \"{name}\" (in {function}) is incorrect."
            ));
        }
        Ok(self.resources.get(name))
    }

    fn get_resource(&self, args: &Value) -> R<Value> {
        let Value::String(name) = args else {
            return err("Function \"get_resource\" must operate on a resource name");
        };
        Ok(self
            .target(name, "get_resource")?
            .map_or(Value::Null, |r| Value::String(r.ref_id.clone())))
    }

    fn get_attr(&self, args: &Value) -> R<Value> {
        let Some(items) = args.as_array().filter(|a| !a.is_empty()) else {
            return err("Arguments to \"get_attr\" must be of the form: [resource_name, attribute, (path), ...]");
        };
        let Value::String(name) = &items[0] else {
            return err("Arguments to \"get_attr\" must start with a resource name");
        };
        let Some(resource) = self.target(name, "get_attr")? else {
            return Ok(Value::Null);
        };
        if items.len() == 1 {
            // All attributes (HOT 2015-10-15).
            return Ok(Value::Object(resource.attributes.clone()));
        }
        let attribute = match self.resolve(&items[1])? {
            Value::String(a) => a,
            other => {
                return err(format!(
                    "Attribute name in \"get_attr\" must be a string, got {}",
                    py_repr(&other)
                ))
            }
        };
        let mut path = Vec::new();
        for item in &items[2..] {
            path.push(self.resolve(item)?);
        }
        attribute_of(name, resource, &attribute, &path)
    }

    fn str_replace(&self, args: &Value) -> R<Value> {
        let syntax = "\"str_replace\" syntax should be str_replace:\n  template: <template>\n  params: <params>";
        let Value::Object(args) = args else {
            return err(syntax);
        };
        if args.len() != 2 || !args.contains_key("template") || !args.contains_key("params") {
            return err(syntax);
        }
        let template = match self.resolve(&args["template"])? {
            Value::String(t) => t,
            _ => return err("\"str_replace\" template must be a string"),
        };
        let params = match self.resolve(&args["params"])? {
            Value::Object(p) => p,
            _ => return err("\"str_replace\" params must be a map"),
        };
        let mut replacements = Vec::new();
        for (placeholder, value) in &params {
            let text = match value {
                Value::Null => String::new(),
                Value::Array(_) | Value::Object(_) => py_json(value),
                other => py_str(other),
            };
            replacements.push((placeholder.as_str(), text));
        }
        // Longest placeholders first, and replaced text is not searched
        // again, as Heat does.
        replacements.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        Ok(Value::String(replace_all(&template, &replacements)))
    }

    fn list_join(&self, args: &Value) -> R<Value> {
        let syntax = "Arguments to \"list_join\" must be of the form: [delimiter, list, ...]";
        let Some(items) = args.as_array().filter(|a| a.len() >= 2) else {
            return err(syntax);
        };
        let delimiter = match self.resolve(&items[0])? {
            Value::String(d) => d,
            _ => return err("Delimiter for \"list_join\" must be a string"),
        };
        let mut strings = Vec::new();
        for list in &items[1..] {
            let list = match self.resolve(list)? {
                Value::Array(list) => list,
                Value::Null => Vec::new(),
                _ => return err("\"list_join\" must operate on a list"),
            };
            for item in list {
                strings.push(match item {
                    Value::Null => String::new(),
                    Value::String(s) => s,
                    Value::Array(_) | Value::Object(_) => py_json(&item),
                    other => {
                        return err(format!(
                            "Items to join must be string, map or list not {}",
                            py_repr(&other)
                        ))
                    }
                });
            }
        }
        Ok(Value::String(strings.join(&delimiter)))
    }

    fn get_file(&self, args: &Value) -> R<Value> {
        let Value::String(path) = args else {
            return err("Argument to \"get_file\" must be a string");
        };
        self.files
            .get(path)
            .map(|text| Value::String(text.clone()))
            .ok_or_else(|| {
                HotError::new(format!(
                    "No content found in the \"files\" section for get_file path: {path}"
                ))
            })
    }

    fn outputs(&self) -> R<Map<String, Value>> {
        let mut outputs = Map::new();
        for (name, definition) in &self.template.outputs {
            let definition = as_map(definition, "output")?;
            let at = |e: HotError| e.within(format!("outputs.{name}"));
            let enabled = match definition.get("condition") {
                None => true,
                Some(c) => self.condition(c).map_err(at)?,
            };
            let value = match definition.get("value") {
                Some(value) if enabled => self.resolve(value).map_err(at)?,
                _ => Value::Null,
            };
            outputs.insert(name.clone(), value);
        }
        Ok(outputs)
    }
}

/// The function a single-key map calls, if it is one.
fn call(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (key, value) = map.iter().next()?;
    is_function(key).then_some((key.as_str(), value))
}

fn replace_all(template: &str, replacements: &[(&str, String)]) -> String {
    let replacements: Vec<_> = replacements.iter().filter(|(p, _)| !p.is_empty()).collect();
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (placeholder, text) in &replacements {
            if let Some(after) = rest.strip_prefix(*placeholder) {
                out.push_str(text);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

fn invalid_attribute(resource: &str, attribute: &str) -> HotError {
    HotError::new(format!(
        "The Referenced Attribute ({resource} {attribute}) is incorrect."
    ))
}

/// `get_attr` of `resource` (named `name`): its `attribute`, then `path`.
fn attribute_of(name: &str, resource: &ResourceState, attribute: &str, path: &[Value]) -> R<Value> {
    if resource.kind != ResourceKind::Group {
        let value = match resource.attributes.get(attribute) {
            Some(v) => v.clone(),
            None if resource.open_attributes => Value::Null,
            None => return Err(invalid_attribute(name, attribute)),
        };
        return Ok(select_path(value, path));
    }
    let members = members(resource);
    match attribute {
        "refs" => {
            let refs = members
                .iter()
                .map(|(_, m)| Value::String(m.ref_id.clone()))
                .collect();
            Ok(select_path(Value::Array(refs), path))
        }
        "refs_map" => {
            let refs = members
                .iter()
                .map(|(n, m)| ((*n).clone(), Value::String(m.ref_id.clone())))
                .collect();
            Ok(select_path(Value::Object(refs), path))
        }
        "removed_rsrc_list" => Ok(select_path(
            Value::Array(
                resource
                    .removed
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
            path,
        )),
        "attributes" => {
            let Some((Value::String(inner), rest)) = path.split_first() else {
                return Err(invalid_attribute(name, attribute));
            };
            let mut by_member = Map::new();
            for (member, state) in &members {
                by_member.insert((*member).clone(), attribute_of(member, state, inner, rest)?);
            }
            Ok(Value::Object(by_member))
        }
        _ if attribute.starts_with("resource.") => {
            let mut parts = attribute.splitn(3, '.').skip(1);
            let member = parts.next().unwrap_or_default();
            let state = members
                .iter()
                .find(|(n, _)| n.as_str() == member)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    HotError::new(format!(
                        "Member '{member}' not found in group resource '{name}'."
                    ))
                })?;
            match parts.next() {
                Some(inner) => attribute_of(member, state, inner, path),
                None => Ok(select_path(Value::String(state.ref_id.clone()), path)),
            }
        }
        _ => {
            let mut values = Vec::with_capacity(members.len());
            for (member, state) in &members {
                values.push(attribute_of(member, state, attribute, path)?);
            }
            Ok(Value::Array(values))
        }
    }
}
