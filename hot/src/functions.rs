//! The intrinsic functions, evaluated in a [`Scope`]: `get_param` (from
//! `parameters`, which conditions share), `get_resource`, `get_attr`,
//! `str_replace`, `list_join`, `get_file` and `if`; outputs. The functions'
//! names are the language's, in `template`.

use serde_json::{Map, Value};

use crate::group::attribute_of;
use crate::parameters::get_param;
use crate::python::{py_json, py_repr, py_str};
use crate::scope::Scope;
use crate::state::ResourceState;
use crate::template::{is_function, CONDITION_FUNCTIONS, UNSUPPORTED_FUNCTIONS};
use crate::{as_map, err, HotError, R};

impl Scope<'_> {
    pub(crate) fn resolve(&self, value: &Value) -> R<Value> {
        Ok(self.resolve_or_omit(value)?.unwrap_or(Value::Null))
    }

    /// `None` when `value` is a two-argument `if` whose condition is false
    /// (HOT 2021-04-16): the list item or map key holding it is dropped, as
    /// if the template had not mentioned it.
    pub(crate) fn resolve_or_omit(&self, value: &Value) -> R<Option<Value>> {
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

    pub(crate) fn if_function(&self, args: &Value) -> R<Option<Value>> {
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

    pub(crate) fn function(&self, function: &str, args: &Value) -> R<Value> {
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
    pub(crate) fn target(&self, name: &str, function: &str) -> R<Option<&ResourceState>> {
        if !self.template.resources.contains_key(name) {
            return err(format!(
                "The specified reference \"{name}\" (in {function}) is incorrect."
            ));
        }
        Ok(self.resources.get(name))
    }

    pub(crate) fn get_resource(&self, args: &Value) -> R<Value> {
        let Value::String(name) = args else {
            return err("Function \"get_resource\" must operate on a resource name");
        };
        Ok(self
            .target(name, "get_resource")?
            .map_or(Value::Null, |r| Value::String(r.ref_id.clone())))
    }

    pub(crate) fn get_attr(&self, args: &Value) -> R<Value> {
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

    pub(crate) fn str_replace(&self, args: &Value) -> R<Value> {
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

    pub(crate) fn list_join(&self, args: &Value) -> R<Value> {
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

    pub(crate) fn get_file(&self, args: &Value) -> R<Value> {
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

    pub(crate) fn outputs(&self) -> R<Map<String, Value>> {
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
pub(crate) fn call(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (key, value) = map.iter().next()?;
    is_function(key).then_some((key.as_str(), value))
}

pub(crate) fn replace_all(template: &str, replacements: &[(&str, String)]) -> String {
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
