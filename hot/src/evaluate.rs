//! The walker: evaluates a stack level by level, resources in dependency
//! order, nested templates and groups as nested stacks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::conditions::evaluate_conditions;
use crate::environment::Environment;
use crate::functions::call;
use crate::group::{evaluate_group, GroupWalker, Rolling, RESOURCE_GROUP};
use crate::parameters::{convert_parameter, shown_parameter};
use crate::provider::{Action, Provider, ProviderError, ResourceRequest};
use crate::scope::{Scope, StackContext};
pub(crate) use crate::state::{digest, same_digest};
use crate::state::{ResourceKind, ResourceState, StackState};
use crate::template::Template;
use crate::{as_map, err, Files, HotError, R};

/// Heat's `max_nested_stack_depth`.
const MAX_NESTING: usize = 5;

const PSEUDO_STACK_NAME: &str = "OS::stack_name";
const PSEUDO_STACK_ID: &str = "OS::stack_id";
const PSEUDO_PROJECT_ID: &str = "OS::project_id";
/// The parameters every stack has.
pub(crate) const PSEUDO_PARAMETERS: &[&str] =
    &[PSEUDO_STACK_NAME, PSEUDO_STACK_ID, PSEUDO_PROJECT_ID];

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
    let template = Template::parse_shared(request.template, text)?;
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

pub(crate) struct StackResult {
    pub(crate) state: StackState,
    pub(crate) outputs: Map<String, Value>,
    pub(crate) shown: Map<String, Value>,
    pub(crate) ready_ms: i64,
}

pub(crate) struct Walker<'a> {
    pub(crate) files: &'a Files,
    pub(crate) environment: &'a Environment,
    pub(crate) provider: &'a mut dyn Provider,
    pub(crate) action: Action,
    pub(crate) project_id: &'a str,
    pub(crate) templates: BTreeMap<String, Arc<Template>>,
    pub(crate) failure: Option<Failure>,
    pub(crate) depth: usize,
}

impl Walker<'_> {
    pub(crate) fn template(&mut self, file: &str) -> R<Arc<Template>> {
        if let Some(t) = self.templates.get(file) {
            return Ok(Arc::clone(t));
        }
        let text = self
            .files
            .get(file)
            .ok_or_else(|| HotError::new(format!("No template {file} among the stack's files")))?;
        // Name the file: the error's path is that of the nesting resource.
        let template = Template::parse_shared(file, text)
            .map_err(|e| HotError::new(format!("{file}: {e}")))?;
        self.templates
            .insert(file.to_owned(), Arc::clone(&template));
        Ok(template)
    }

    pub(crate) fn stack(
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

    pub(crate) fn remove(&mut self, resource: &ResourceState) -> R<()> {
        match &resource.nested {
            Some(nested) => nested.resources.values().try_for_each(|r| self.remove(r)),
            None if resource.kind == ResourceKind::Primitive => self.provider.remove(resource),
            None => Ok(()),
        }
    }

    /// The typed parameters and their stack-show form.
    pub(crate) fn parameters(
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

    pub(crate) fn resource(
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
        if type_name == RESOURCE_GROUP {
            let rolling = match definition.get("update_policy") {
                Some(policy) => Rolling::parse(&scope.resolve(policy)?)
                    .map_err(|e| e.within("update_policy"))?,
                None => None,
            };
            let previous = previous.filter(|p| p.type_name == type_name);
            return evaluate_group(self, context, name, properties, previous, start_ms, rolling);
        }
        self.typed(context, name, &type_name, properties, previous, start_ms)
    }

    /// Creates or updates `name` of `type_name` (after registry mapping).
    pub(crate) fn typed(
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
            return evaluate_group(self, context, name, properties, previous, start_ms, None);
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
            unchanged: previous.is_some_and(|p| same_digest(p.digest.as_deref(), &digest)),
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

    pub(crate) fn descend(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(format!("Recursion depth exceeds {MAX_NESTING}."));
        }
        Ok(())
    }

    pub(crate) fn nested(
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
        // A group's rolling update tells changed members by it.
        let properties_digest = digest(&Value::Object(properties.clone()));
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
            digest: Some(properties_digest),
            stack_id: Some(id),
            nested: Some(result.state),
            removed: Vec::new(),
        }))
    }
}

/// The walker's side of a group: its members are resources like any other.
impl GroupWalker for Walker<'_> {
    fn new_id(&mut self) -> String {
        self.provider.new_id()
    }

    fn resolve_type(&self, resource: &str, type_name: &str) -> R<String> {
        self.environment.resolve_type(resource, type_name)
    }

    fn descend(&mut self) -> R<()> {
        Walker::descend(self)
    }

    fn ascend(&mut self) {
        self.depth -= 1;
    }

    fn failed(&self) -> bool {
        self.failure.is_some()
    }

    fn typed(
        &mut self,
        context: &StackContext,
        name: &str,
        type_name: &str,
        properties: Map<String, Value>,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>> {
        Walker::typed(
            self, context, name, type_name, properties, previous, start_ms,
        )
    }

    fn remove(&mut self, resource: &ResourceState) -> R<()> {
        Walker::remove(self, resource)
    }
}

// ---- Dependencies ---------------------------------------------------------------------

impl Scope<'_> {
    /// Every enabled resource with the resources it depends on, in an order
    /// where dependencies come first (by name among equals).
    pub(crate) fn order(&self) -> R<Vec<(String, BTreeSet<String>)>> {
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
    pub(crate) fn references(&self, value: &Value, found: &mut BTreeSet<String>) -> R<()> {
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
}
