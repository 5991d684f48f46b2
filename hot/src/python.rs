//! Python-compatible rendering: Heat is Python, so the values it turns into
//! strings (str_replace, stack show's parameters, error messages) read as
//! Python's `str()`, `repr()` and `json.dumps()` would write them.

use serde_json::{Number, Value};

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

pub(crate) fn py_number(n: &Number) -> String {
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
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
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
pub(crate) fn python_index(n: &Number, len: usize) -> Option<usize> {
    let i = n.as_i64()?;
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then(|| usize::try_from(i).ok())?
}
