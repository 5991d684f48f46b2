//! The `conditions` section and the condition functions `equals`, `not`,
//! `and` and `or`, as used in `conditions`, `condition` and `if`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::parameters::get_param;
use crate::python::{py_eq, py_repr};
use crate::scope::Scope;
use crate::template::{is_function, Template, SUPPORTED_FUNCTIONS, UNSUPPORTED_FUNCTIONS};
use crate::{err, HotError, R};

pub(crate) fn evaluate_conditions(
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

pub(crate) fn named_condition(
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
pub(crate) fn condition_value(
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
pub(crate) fn condition_operand(value: &Value, params: &Map<String, Value>) -> R<Value> {
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

impl Scope<'_> {
    pub(crate) fn condition(&self, value: &Value) -> R<bool> {
        let mut memo = self.conditions.clone();
        condition_value(
            value,
            self.template,
            &self.params,
            &mut memo,
            &mut Vec::new(),
        )
    }
}
