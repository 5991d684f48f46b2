//! Request input: the JSON extractor and the check of every path and query
//! string (every rejection in Magnum's envelope), typed field readers with
//! wsme's messages, and RFC 6902 JSON-patch with upstream's path rules.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};

use super::error::{truncate, ApiError, ApiResult};

/// Bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY: usize = 1024 * 1024;
/// Label keys and values: Kubernetes' own limits are far below this.
const MAX_LABEL_LEN: usize = 1024;
const MAX_LABELS: usize = 256;

/// A JSON body of any shape; handlers read fields through [`Fields`] or
/// [`patch_ops`].
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_media_type(&req)?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body is larger than the limit of {MAX_BODY} bytes."),
                )
            } else {
                ApiError::bad_request(format!("Cannot read the request body: {e}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "The request body is empty; a JSON document is required.",
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("The request body is not valid UTF-8."))?;
        let body: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
        })?;
        // PostgreSQL cannot store U+0000 in text (a 500 there, stored as
        // is on SQLite); refused here once for every field of every route.
        if has_nul(&body) {
            return Err(ApiError::bad_request(format!(
                "The request body contains {NUL_NAME} in a string or a key, which is not allowed."
            )));
        }
        Ok(JsonBody(body))
    }
}

const NUL_NAME: &str = "the character U+0000 (NUL)";

/// serde_json refuses documents nested deeper than 128, so this recursion
/// is bounded.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A body of another media type is a 415, as wsme's "Unknown mimetype"
/// (upstream serves JSON only). No Content-Type at all is read as JSON:
/// `curl -d` without `-H` sends none (python-magnumclient always sends
/// `application/json`).
fn check_media_type(req: &Request) -> ApiResult<()> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mime = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = mime.is_empty()
        || mime == "application/json"
        || (mime.starts_with("application/") && mime.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "The request body must be JSON (Content-Type: application/json), not {}.",
                truncate(&text, 64)
            ),
        ))
    }
}

/// Refuses, before routing to a handler, a path or query string that does
/// not percent-decode to UTF-8 (axum's `Path` would answer in plain text)
/// or that holds U+0000 (PostgreSQL cannot compare text with it: a 500).
pub async fn check_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let checked = check_component("path", uri.path()).and_then(|()| {
        uri.query()
            .map_or(Ok(()), |q| check_component("query string", q))
    });
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check_component(what: &str, raw: &str) -> ApiResult<()> {
    let bytes = percent_decode(raw);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        ApiError::bad_request(format!(
            "The request {what} is not valid UTF-8 once percent-decoded: {}",
            truncate(raw, 200)
        ))
    })?;
    if text.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "The request {what} contains {NUL_NAME}, which is not allowed."
        )));
    }
    Ok(())
}

/// RFC 3986 percent-decoding; a `%` not followed by two hex digits stays.
fn percent_decode(raw: &str) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Reads the fields of one JSON object, refusing unknown ones.
pub struct Fields {
    resource: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    /// `allowed` lists every attribute the resource accepts.
    pub fn new(resource: &'static str, body: Value, allowed: &[&str]) -> ApiResult<Self> {
        let Value::Object(map) = body else {
            return Err(ApiError::bad_request(format!(
                "The request body for {resource} must be a JSON object."
            )));
        };
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument {resource}: {}",
                truncate(&unknown.join(", "), 200)
            )));
        }
        Ok(Self { resource, map })
    }

    pub fn resource(&self) -> &'static str {
        self.resource
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string of 1..=max characters; `null` reads as absent.
    pub fn string(&self, name: &str, max: usize) -> ApiResult<Option<String>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let len = s.chars().count();
                if len == 0 || len > max {
                    Err(ApiError::invalid_field(
                        name,
                        &Value::String(s.clone()),
                        &format!("Value should have a length between 1 and {max}"),
                    ))
                } else {
                    Ok(Some(s.clone()))
                }
            }
            Some(v) => Err(ApiError::invalid_field(name, v, "Value should be a string")),
        }
    }

    pub fn required_string(&self, name: &str, max: usize) -> ApiResult<String> {
        self.string(name, max)?
            .ok_or_else(|| ApiError::bad_request(format!("Mandatory field missing: {name}")))
    }

    /// A string from a fixed set.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> ApiResult<Option<String>> {
        match self.string(name, 255)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(ApiError::invalid_field(
                name,
                &Value::String(s),
                &format!("Value should be one of: {}", allowed.join(", ")),
            )),
        }
    }

    /// An integer in `min..=max`; a numeric string is accepted as wsme does.
    pub fn int(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::invalid_field(name, v, "Value should be an integer"))?;
        if n < min {
            return Err(ApiError::invalid_field(
                name,
                v,
                &format!("Value should be greater or equal to {min}"),
            ));
        }
        if n > max {
            return Err(ApiError::invalid_field(
                name,
                v,
                &format!("Value should be lower or equal to {max}"),
            ));
        }
        Ok(Some(n))
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        self.raw(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// Labels: an object whose values are strings, numbers or booleans,
    /// stored as strings (upstream's dict of strings).
    pub fn labels(&self, name: &str) -> ApiResult<Option<BTreeMap<String, String>>> {
        self.raw(name).map(|v| parse_labels(name, v)).transpose()
    }
}

/// wsme's strict boolean: JSON booleans or the usual spellings as strings.
pub fn parse_bool(name: &str, v: &Value) -> ApiResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(false),
            _ => Err(ApiError::invalid_field(
                name,
                v,
                "Value should be a boolean",
            )),
        },
        _ => Err(ApiError::invalid_field(
            name,
            v,
            "Value should be a boolean",
        )),
    }
}

pub fn parse_labels(name: &str, v: &Value) -> ApiResult<BTreeMap<String, String>> {
    let map = match v {
        Value::Object(m) => m.clone(),
        // Upstream accepts a string holding a dict on PATCH (the client's
        // `replace labels=...`); JSON, or a Python literal with quotes swapped.
        Value::String(s) => match serde_json::from_str::<Value>(s)
            .or_else(|_| serde_json::from_str::<Value>(&s.replace('\'', "\"")))
        {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(ApiError::invalid_field(
                    name,
                    v,
                    "Value should be a dictionary of labels",
                ))
            }
        },
        _ => {
            return Err(ApiError::invalid_field(
                name,
                v,
                "Value should be a dictionary of labels",
            ))
        }
    };
    if map.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "Too many {name}: {} given, at most {MAX_LABELS} are allowed.",
            map.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (k, val) in map {
        let text = match &val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            // Python's str(True), which is what upstream stores.
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid value for {name} key '{}': {}. Values must be strings, numbers or booleans.",
                    truncate(&k, 64),
                    truncate(&other.to_string(), 64)
                )))
            }
        };
        if k.is_empty() || k.len() > MAX_LABEL_LEN || text.len() > MAX_LABEL_LEN {
            return Err(ApiError::bad_request(format!(
                "Invalid {name} entry '{}': keys must be 1..{MAX_LABEL_LEN} and values 0..{MAX_LABEL_LEN} bytes long.",
                truncate(&k, 64)
            )));
        }
        out.insert(k, text);
    }
    Ok(out)
}

/// One JSON-patch operation, checked against upstream's rules.
#[derive(Debug, Clone)]
pub struct PatchOp {
    pub op: String,
    pub path: Vec<String>,
    pub value: Option<Value>,
}

/// Parses a JSON-patch list. `internal` paths can never be patched.
pub fn patch_ops(body: Value, internal: &[&str]) -> ApiResult<Vec<PatchOp>> {
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON-patch list of {\"op\", \"path\", \"value\"} objects.",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("The JSON-patch list is empty."));
    }
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut m) = item else {
            return Err(ApiError::bad_request(
                "Each JSON-patch operation must be an object with op and path.",
            ));
        };
        let op = match m.remove("op") {
            Some(Value::String(s)) if ["add", "replace", "remove"].contains(&s.as_str()) => s,
            Some(v) => {
                return Err(ApiError::invalid_field(
                    "op",
                    &v,
                    "Value should be one of: add, replace, remove",
                ))
            }
            None => return Err(ApiError::bad_request("Mandatory field missing: op")),
        };
        let path = match m.remove("path") {
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(ApiError::invalid_field(
                    "path",
                    &v,
                    "Value should be a string",
                ))
            }
            None => return Err(ApiError::bad_request("Mandatory field missing: path")),
        };
        let segments = parse_path(&path)?;
        if internal.contains(&format!("/{}", segments[0]).as_str()) {
            return Err(ApiError::bad_request(format!(
                "'/{}' is an internal attribute and can not be updated",
                segments[0]
            )));
        }
        let value = m.remove("value");
        if op != "remove" && value.is_none() {
            return Err(ApiError::bad_request(
                "'add' and 'replace' operations needs value",
            ));
        }
        if let Some(extra) = m.keys().next() {
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument patch: {}",
                truncate(extra, 64)
            )));
        }
        ops.push(PatchOp {
            op,
            path: segments,
            value,
        });
    }
    Ok(ops)
}

/// Upstream's `^(/[\w-]+)+$`, plus RFC 6901 unescaping of `~0`/`~1`.
fn parse_path(path: &str) -> ApiResult<Vec<String>> {
    let invalid =
        || ApiError::invalid_field("path", &Value::String(path.to_owned()), "Invalid path");
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    let mut out = Vec::new();
    for seg in rest.split('/') {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let ok_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/';
        if seg.is_empty() || !seg.chars().all(ok_char) {
            return Err(invalid());
        }
        out.push(seg);
    }
    Ok(out)
}

/// Applies `ops` to `doc` (the resource as the API shows it, with `null` for
/// unset attributes). `mandatory` attributes cannot be removed.
pub fn apply_patch(
    doc: &mut Map<String, Value>,
    ops: &[PatchOp],
    mandatory: &[&str],
) -> ApiResult<()> {
    for op in ops {
        let top = &op.path[0];
        let slash = format!("/{top}");
        if op.path.len() == 1 {
            match op.op.as_str() {
                "add" => match doc.get(top) {
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "Adding a new attribute ({slash}) to the root of the resource is not allowed."
                        )))
                    }
                    Some(v) if !v.is_null() => {
                        return Err(ApiError::bad_request(format!(
                            "The attribute {slash} has existed, please use 'replace' operation instead."
                        )))
                    }
                    Some(_) => {
                        doc.insert(top.clone(), op.value.clone().unwrap_or(Value::Null));
                    }
                },
                "replace" => {
                    if !doc.contains_key(top) {
                        return Err(ApiError::bad_request(format!(
                            "Cannot replace {slash}: the resource has no such attribute."
                        )));
                    }
                    doc.insert(top.clone(), op.value.clone().unwrap_or(Value::Null));
                }
                _ => {
                    if mandatory.contains(&slash.as_str()) {
                        return Err(ApiError::bad_request(format!(
                            "'{slash}' is a mandatory attribute and can not be removed"
                        )));
                    }
                    if !doc.contains_key(top) {
                        return Err(ApiError::bad_request(format!(
                            "Cannot remove {slash}: the resource has no such attribute."
                        )));
                    }
                    doc.insert(top.clone(), Value::Null);
                }
            }
            continue;
        }
        // A nested path: only into objects (labels and the like).
        let mut node = doc.get_mut(top).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Cannot {} {}: no attribute {slash}.",
                op.op,
                op.path.join("/")
            ))
        })?;
        if node.is_null() {
            *node = Value::Object(Map::new());
        }
        let (last, middle) = op.path[1..]
            .split_last()
            .ok_or_else(|| ApiError::bad_request("Invalid path"))?;
        for seg in middle {
            node = node
                .as_object_mut()
                .and_then(|m| m.get_mut(seg))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Cannot {} /{}: no such member.",
                        op.op,
                        op.path.join("/")
                    ))
                })?;
        }
        let parent = node.as_object_mut().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Cannot {} /{}: {slash} is not an object.",
                op.op,
                op.path.join("/")
            ))
        })?;
        match op.op.as_str() {
            "add" => {
                parent.insert(last.clone(), op.value.clone().unwrap_or(Value::Null));
            }
            "replace" => {
                if !parent.contains_key(last) {
                    return Err(ApiError::bad_request(format!(
                        "Cannot replace /{}: no such member.",
                        op.path.join("/")
                    )));
                }
                parent.insert(last.clone(), op.value.clone().unwrap_or(Value::Null));
            }
            _ => {
                if parent.remove(last).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "Cannot remove /{}: no such member.",
                        op.path.join("/")
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_rules_follow_upstream() {
        let internal = ["/uuid", "/id"];
        let mut doc =
            json!({"name": "a", "labels": {"x": "1"}, "keypair_id": null, "coe": "kubernetes"})
                .as_object()
                .cloned()
                .unwrap();
        let ops = patch_ops(
            json!([
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "add", "path": "/labels/k", "value": "v"},
                {"op": "remove", "path": "/labels/x"},
                {"op": "add", "path": "/keypair_id", "value": "kp"}
            ]),
            &internal,
        )
        .unwrap();
        apply_patch(&mut doc, &ops, &["/coe"]).unwrap();
        assert_eq!(
            Value::Object(doc.clone()),
            json!({"name": "b", "labels": {"k": "v"}, "keypair_id": "kp", "coe": "kubernetes"})
        );

        let err = patch_ops(
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            &internal,
        )
        .unwrap_err();
        assert_eq!(
            err.detail,
            "'/uuid' is an internal attribute and can not be updated"
        );
        let err = patch_ops(json!([{"op": "add", "path": "/name"}]), &internal).unwrap_err();
        assert_eq!(err.detail, "'add' and 'replace' operations needs value");
        let err = patch_ops(json!([{"op": "move", "path": "/name"}]), &internal).unwrap_err();
        assert!(
            err.detail.contains("Value should be one of"),
            "{}",
            err.detail
        );
        let err = patch_ops(json!([{"op": "remove", "path": "name"}]), &internal).unwrap_err();
        assert!(err.detail.contains("Invalid path"));

        let remove_coe = patch_ops(json!([{"op": "remove", "path": "/coe"}]), &internal).unwrap();
        let err = apply_patch(&mut doc, &remove_coe, &["/coe"]).unwrap_err();
        assert_eq!(
            err.detail,
            "'/coe' is a mandatory attribute and can not be removed"
        );
        let add_existing = patch_ops(
            json!([{"op": "add", "path": "/name", "value": "c"}]),
            &internal,
        )
        .unwrap();
        let err = apply_patch(&mut doc, &add_existing, &[]).unwrap_err();
        assert!(err.detail.contains("has existed, please use 'replace'"));
        let add_new = patch_ops(
            json!([{"op": "add", "path": "/nope", "value": "c"}]),
            &internal,
        )
        .unwrap();
        let err = apply_patch(&mut doc, &add_new, &[]).unwrap_err();
        assert!(err.detail.starts_with("Adding a new attribute (/nope)"));
    }

    #[test]
    fn labels_accept_scalars_and_python_literals() {
        let l = parse_labels("labels", &json!({"a": 1, "b": true, "c": "x"})).unwrap();
        assert_eq!(l["a"], "1");
        assert_eq!(l["b"], "True");
        let l = parse_labels("labels", &json!("{'k': 'v'}")).unwrap();
        assert_eq!(l["k"], "v");
        assert!(parse_labels("labels", &json!({"a": {"nested": 1}})).is_err());
        assert!(parse_labels("labels", &json!(["a"])).is_err());
        let huge = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(parse_labels("labels", &json!({"a": huge})).is_err());
    }

    #[test]
    fn uri_components_must_decode_to_text_without_nul() {
        assert_eq!(percent_decode("a%20b%zz%4"), b"a b%zz%4");
        assert!(check_component("path", "/v1/clusters/caf%C3%A9").is_ok());
        assert!(check_component("path", "/v1/clusters/%FF")
            .unwrap_err()
            .detail
            .contains("not valid UTF-8"));
        assert!(check_component("query string", "marker=%00")
            .unwrap_err()
            .detail
            .contains("U+0000"));
        assert!(has_nul(&json!({"a": [{"b\u{0}": 1}]})));
        assert!(!has_nul(&json!({"a": ["b", 1, null]})));
    }

    #[test]
    fn fields_read_with_wsme_messages() {
        let f = Fields::new(
            "cluster",
            json!({"master_count": 0, "name": "", "flag": "maybe"}),
            &["master_count", "name", "flag"],
        )
        .unwrap();
        assert_eq!(
            f.int("master_count", 1, 100).unwrap_err().detail,
            "Invalid input for field/attribute master_count. Value: '0'. Value should be greater or equal to 1"
        );
        assert!(f.string("name", 242).is_err());
        assert!(f.bool("flag").is_err());
        let err = Fields::new("cluster", json!({"bogus": 1}), &["name"])
            .err()
            .unwrap();
        assert_eq!(err.detail, "Unknown attribute for argument cluster: bogus");
    }
}
