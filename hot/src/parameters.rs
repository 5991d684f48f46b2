//! Parameters: their schema (the five types, `hidden`, constraints), the
//! conversion of given values to their type, stack show's form of them, and
//! `get_param`, by which values and conditions read them.

use serde_json::{Map, Number, Value};

use crate::python::{py_eq, py_json, py_number, py_repr, py_str, select_path};
use crate::{as_map, err, HotError, R};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    String,
    Number,
    Boolean,
    Json,
    CommaDelimitedList,
}

#[derive(Debug, Clone)]
pub(crate) enum Constraint {
    AllowedValues(Vec<Value>),
    Range(Option<f64>, Option<f64>),
    Length(Option<f64>, Option<f64>),
    Pattern(regex::Regex, String),
    Modulo(f64, f64),
}

#[derive(Debug, Clone)]
pub(crate) struct ParamSchema {
    pub(crate) kind: ParamType,
    pub(crate) default: Option<Value>,
    pub(crate) hidden: bool,
    /// Each with its optional `description`, which replaces Heat's message.
    pub(crate) constraints: Vec<(Constraint, Option<String>)>,
}

/// The keys a parameter's schema may have.
pub(crate) const PARAMETER_KEYS: &[&str] = &[
    "type",
    "label",
    "description",
    "default",
    "hidden",
    "constraints",
    "immutable",
    "tags",
];

pub(crate) fn parse_parameter(name: &str, schema: &Value) -> R<ParamSchema> {
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
pub(crate) fn parse_bool(value: &Value) -> Option<bool> {
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

/// A number, or a string holding one (constraints' bounds, and the values
/// `range` and `modulo` check).
pub(crate) fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `raw` converted to the parameter's type and checked against its
/// constraints; the message is the part after Heat's
/// `Parameter 'x' is invalid: `.
pub(crate) fn convert_parameter(schema: &ParamSchema, raw: &Value) -> Result<Value, String> {
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

pub(crate) fn fmt_bound(b: f64) -> String {
    py_number(&Number::from_f64(b).unwrap_or_else(|| Number::from(0)))
        .trim_end_matches(".0")
        .to_owned()
}

pub(crate) fn check_constraint(
    kind: ParamType,
    constraint: &Constraint,
    value: &Value,
) -> Result<(), String> {
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
pub(crate) fn shown_parameter(schema: &ParamSchema, value: &Value) -> Value {
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

/// `get_param` (the parameter, then a path into it), shared by values and
/// conditions; `resolve` evaluates the name and path items.
pub(crate) fn get_param(
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
