//! A static check of a stack's templates, without evaluating them: what
//! `magnum-driver-manage verify` and the drivers' tests ask of every plan.
//!
//! It reads the templates with the evaluator's own parser (sections, keys,
//! parameter schemas and versions as [`Template::parse`] checks them) and
//! resolves types through the evaluator's [`Environment`], then checks:
//!
//! - every template is HOT [`OLDEST_VERSION`] or newer;
//! - the environment maps types to files that are among the files;
//! - the parameters passed are declared, and every parameter without a
//!   default is passed (or has an environment `parameter_defaults`);
//! - every resource type is an `OS::` type, a file among the files or a type
//!   the environment maps; the properties given to a nested template (also a
//!   `OS::Heat::ResourceGroup`'s `resource_def`) are its parameters, and
//!   cover those without a default;
//! - only the functions the evaluator implements are used, condition
//!   functions only where a condition is expected;
//! - `get_param`, `get_resource`, `get_attr`, `depends_on`, `condition` and
//!   `if` name a declared parameter, resource or condition, `get_file` a file
//!   among the files; `if` has three arguments (or two, from HOT
//!   2021-04-16).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::environment::Environment;
use crate::evaluate::PSEUDO_PARAMETERS;
use crate::group::RESOURCE_GROUP;
use crate::template::{is_function, Template, CONDITION_FUNCTIONS, SUPPORTED_FUNCTIONS};
use crate::Files;

/// The oldest HOT version a plan's templates may declare.
pub const OLDEST_VERSION: &str = "2018-08-31";

/// The dates of the HOT versions Heat also names by release.
const NAMED_VERSIONS: &[(&str, &str)] = &[
    ("newton", "2016-10-14"),
    ("ocata", "2017-02-24"),
    ("pike", "2017-09-01"),
    ("queens", "2018-03-02"),
    ("rocky", "2018-08-31"),
    ("wallaby", "2021-04-16"),
];

/// Keys no template may call although the evaluator would read them as
/// data: software-config inputs (`get_input`) and `resolve`, which mean
/// something elsewhere.
const FOREIGN_FUNCTIONS: &[&str] = &["get_input", "resolve"];

/// A stack as a plan creates or updates it.
#[derive(Debug, Clone, Copy)]
pub struct Stack<'a> {
    /// The key of `files` holding the top-level template.
    pub template: &'a str,
    pub files: &'a Files,
    pub environment: &'a Map<String, Value>,
    /// The parameters passed (only their names are read).
    pub parameters: &'a Map<String, Value>,
}

/// One problem, in the file it was found in (`None`: the stack as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A nested template a resource uses, with the properties it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// The resource (or, for a group's members, the group).
    pub resource: String,
    /// The file, after the environment's mappings.
    pub file: String,
    pub properties: Vec<String>,
}

/// Every problem of `stack`, the structural ones (parsing, versions, the
/// environment, the top-level parameters) first.
pub fn check(stack: &Stack<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut top = |message: String| {
        problems.push(Problem {
            file: None,
            message,
        })
    };
    let environment = match Environment::parse(stack.environment) {
        Ok(environment) => environment,
        Err(e) => {
            top(format!("environment: {e}"));
            Environment::default()
        }
    };
    for (name, target) in &environment.registry {
        if is_file_type(target) && !stack.files.contains_key(target) {
            top(format!(
                "environment maps {name} to {target}, which is not among the files"
            ));
        }
    }
    if !stack.files.contains_key(stack.template) {
        top(format!(
            "template {} is not among the files",
            stack.template
        ));
    }
    let mut templates = Vec::new();
    for name in template_files(stack, &environment) {
        match parse_template(&name, &stack.files[&name]) {
            Ok(template) => templates.push((name, template)),
            Err(message) => problems.push(Problem {
                file: Some(name),
                message,
            }),
        }
    }
    if let Some((_, main)) = templates.iter().find(|(n, _)| n == stack.template) {
        let template = stack.template;
        for name in stack.parameters.keys() {
            if !main.parameters.contains_key(name) {
                problems.push(Problem {
                    file: None,
                    message: format!(
                        "parameter {name} is passed but {template} does not declare it"
                    ),
                });
            }
        }
        let defaults = &environment.parameter_defaults;
        for (name, schema) in &main.parameters {
            if schema.default.is_none()
                && !stack.parameters.contains_key(name)
                && !defaults.contains_key(name)
            {
                problems.push(Problem {
                    file: None,
                    message: format!(
                        "{template} requires parameter {name} but the plan does not pass it"
                    ),
                });
            }
        }
    }
    for (name, template) in &templates {
        let mut walk = Walk {
            template,
            files: stack.files,
            environment: &environment,
            problems: Vec::new(),
        };
        walk.template(&templates);
        problems.extend(walk.problems.into_iter().map(|message| Problem {
            file: Some(name.clone()),
            message,
        }));
    }
    problems
}

/// The nested templates `template` uses, directly, through the
/// environment's mappings or as a resource group's members.
pub fn nested_templates(
    template: &Template,
    files: &Files,
    environment: &Environment,
) -> Vec<Nested> {
    let mut found = Vec::new();
    for (name, definition) in &template.resources {
        let Some((file, properties)) = resource_type(name, definition, environment) else {
            continue;
        };
        let (file, properties) = if file == RESOURCE_GROUP {
            let Some(member) = properties.and_then(|p| p.get("resource_def")) else {
                continue;
            };
            match resource_type(name, member, environment) {
                Some(found) => found,
                None => continue,
            }
        } else {
            (file, properties)
        };
        if files.contains_key(&file) || is_file_type(&file) {
            found.push(Nested {
                resource: name.clone(),
                file,
                properties: properties
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    found
}

/// A definition's type after the environment's mappings, and its properties.
fn resource_type<'v>(
    name: &str,
    definition: &'v Value,
    environment: &Environment,
) -> Option<(String, Option<&'v Value>)> {
    let written = definition.get("type")?.as_str()?;
    let resolved = environment
        .resolve_type(name, written)
        .unwrap_or_else(|_| written.to_owned());
    Some((resolved, definition.get("properties")))
}

fn is_file_type(t: &str) -> bool {
    t.ends_with(".yaml") || t.ends_with(".yml") || t.ends_with(".template")
}

/// The files to read as templates: the top-level one, every file a
/// resource type or the environment names, and any other file that says it
/// is HOT (scripts and other data ride along for `get_file`).
fn template_files(stack: &Stack<'_>, environment: &Environment) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = stack
        .files
        .iter()
        .filter(|(_, text)| text.contains("heat_template_version"))
        .map(|(name, _)| name.clone())
        .collect();
    if stack.files.contains_key(stack.template) {
        names.insert(stack.template.to_owned());
    }
    for (_, target) in &environment.registry {
        if stack.files.contains_key(target) {
            names.insert(target.clone());
        }
    }
    names
}

/// `text` parsed as the evaluator parses it, of a version not older than
/// [`OLDEST_VERSION`]; the message does not name the file.
pub fn parse_template(name: &str, text: &str) -> Result<Template, String> {
    let template = Template::parse(name, text).map_err(|e| {
        let message = e.to_string();
        let own = format!("{name}: ");
        message
            .strip_prefix(&own)
            .map_or_else(|| message.clone(), str::to_owned)
    })?;
    let version = template.version.as_str();
    let date = NAMED_VERSIONS
        .iter()
        .find(|(named, _)| *named == version)
        .map_or(version, |(_, date)| date);
    if date < OLDEST_VERSION {
        return Err(format!(
            "heat_template_version {version} is older than {OLDEST_VERSION}"
        ));
    }
    Ok(template)
}

/// One template's walk; problems are messages within its file.
struct Walk<'a> {
    template: &'a Template,
    files: &'a Files,
    environment: &'a Environment,
    problems: Vec<String>,
}

impl Walk<'_> {
    fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    fn template(&mut self, parsed: &[(String, Template)]) {
        let template = self.template;
        for (name, definition) in &template.resources {
            self.resource(name, definition, parsed);
        }
        for definition in template.outputs.values() {
            if let Some(condition) = definition.get("condition") {
                self.condition(condition);
            }
            if let Some(value) = definition.get("value") {
                self.value(value);
            }
        }
        for definition in template.conditions.values() {
            self.condition(definition);
        }
    }

    fn resource(&mut self, name: &str, definition: &Value, parsed: &[(String, Template)]) {
        self.resource_def(name, definition, parsed);
        match definition.get("depends_on") {
            Some(Value::String(d)) => self.resource_ref("depends_on", d),
            Some(Value::Array(items)) => {
                for d in items.iter().filter_map(Value::as_str) {
                    self.resource_ref("depends_on", d);
                }
            }
            _ => {}
        }
        if let Some(condition) = definition.get("condition") {
            self.condition(condition);
        }
        if let Value::Object(definition) = definition {
            for (key, value) in definition {
                if !["type", "depends_on", "condition"].contains(&key.as_str()) {
                    self.value(value);
                }
            }
        }
    }

    /// A resource definition's type must exist; a nested template's
    /// properties must be its parameters; a group's member is a resource
    /// definition too.
    fn resource_def(&mut self, name: &str, definition: &Value, parsed: &[(String, Template)]) {
        let Some(written) = definition.get("type").and_then(Value::as_str) else {
            return;
        };
        let Some((resolved, properties)) = resource_type(name, definition, self.environment) else {
            return;
        };
        if resolved == RESOURCE_GROUP {
            if let Some(member) = properties.and_then(|p| p.get("resource_def")) {
                self.resource_def(name, member, parsed);
            }
            return;
        }
        if let Some((_, nested)) = parsed.iter().find(|(file, _)| *file == resolved) {
            self.nested_properties(&resolved, nested, properties);
        } else if let Some(text) = self.files.get(&resolved) {
            // One that does not parse is reported as its own file.
            if !text.contains("heat_template_version") {
                self.problem(format!("resource type {resolved} is not a HOT template"));
            }
        } else if is_file_type(&resolved) {
            self.problem(if resolved == written {
                format!("resource type {written} is not among the files")
            } else {
                format!("resource type {written} maps to {resolved}, which is not among the files")
            });
        } else if !resolved.starts_with("OS::") {
            self.problem(format!(
                "resource type {resolved} is neither an OS:: type, a file nor in the environment's resource_registry"
            ));
        }
    }

    /// Properties given to a nested template must be its parameters, and
    /// its parameters without defaults must be given.
    fn nested_properties(&mut self, file: &str, nested: &Template, properties: Option<&Value>) {
        let given: BTreeSet<&str> = properties
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for p in given
            .iter()
            .filter(|p| !nested.parameters.contains_key(**p))
        {
            self.problem(format!(
                "passes property {p} to {file}, which declares no such parameter"
            ));
        }
        for (p, schema) in &nested.parameters {
            if schema.default.is_none() && !given.contains(p.as_str()) {
                self.problem(format!(
                    "{file} requires parameter {p} but it is not passed"
                ));
            }
        }
    }

    /// A value: data, or a call of a function the evaluator implements.
    fn value(&mut self, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| self.value(i)),
            Value::Object(map) => match call(map) {
                Some((function, args)) => self.function(function, args),
                None => map.values().for_each(|v| self.value(v)),
            },
            _ => {}
        }
    }

    fn function(&mut self, function: &str, args: &Value) {
        let first = match args {
            Value::Array(a) => a.first().and_then(Value::as_str),
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        match function {
            "get_param" => match first {
                Some(p) => self.parameter_ref(p),
                None if args.is_array() => {}
                None => self.problem("get_param without a parameter name".into()),
            },
            "get_resource" | "get_attr" => match first {
                Some(r) => self.resource_ref(function, r),
                None => self.problem(format!("{function} without a resource name")),
            },
            "get_file" => match first {
                Some(name) if self.files.contains_key(name) => {}
                Some(name) => self.problem(format!("get_file {name}: not among the files")),
                None => self.problem("get_file without a file name".into()),
            },
            "if" => return self.if_function(args),
            f if CONDITION_FUNCTIONS.contains(&f) => {
                return self.problem(format!("uses {f} outside a condition"));
            }
            f if !SUPPORTED_FUNCTIONS.contains(&f) => {
                return self.problem(format!(
                    "uses {f}, which the local orchestrator does not evaluate"
                ));
            }
            _ => {}
        }
        self.value(args);
    }

    fn if_function(&mut self, args: &Value) {
        let Some(items) = args.as_array() else {
            return self.problem("`if` takes a list of arguments".into());
        };
        let named = items.first().and_then(Value::as_str).unwrap_or_default();
        match items.len() {
            3 => {}
            2 if self.template.nullable_if() => {}
            2 => self.problem(format!(
                "two-argument `if` on `{named}` needs heat_template_version 2021-04-16"
            )),
            n => self.problem(format!("`if` on `{named}` has {n} arguments")),
        }
        if let Some((condition, branches)) = items.split_first() {
            self.condition(condition);
            branches.iter().for_each(|b| self.value(b));
        }
    }

    /// A condition: a declared condition's name, a boolean, or a condition
    /// function.
    fn condition(&mut self, value: &Value) {
        match value {
            Value::String(name) if !self.template.conditions.contains_key(name) => {
                self.problem(format!("condition {name}: no such condition"));
            }
            Value::Object(map) => match call(map) {
                Some(("equals", args)) => self.value(args),
                Some(("not" | "and" | "or", Value::Array(items))) => {
                    items.iter().for_each(|i| self.condition(i));
                }
                Some(("not" | "and" | "or", inner)) => self.condition(inner),
                Some((function, args)) => self.function(function, args),
                None => {}
            },
            _ => {}
        }
    }

    fn parameter_ref(&mut self, name: &str) {
        if !self.template.parameters.contains_key(name) && !PSEUDO_PARAMETERS.contains(&name) {
            self.problem(format!("get_param {name}: no such parameter"));
        }
    }

    fn resource_ref(&mut self, function: &str, name: &str) {
        if !self.template.resources.contains_key(name) {
            self.problem(format!("{function} {name}: no such resource"));
        }
    }
}

/// The function a single-key map calls: one the evaluator knows, a
/// CloudFormation `Fn::` or a [`FOREIGN_FUNCTIONS`] key.
fn call(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (key, value) = map.iter().next()?;
    let known =
        is_function(key) || key.starts_with("Fn::") || FOREIGN_FUNCTIONS.contains(&key.as_str());
    known.then_some((key.as_str(), value))
}
