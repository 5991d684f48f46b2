//! Pieces every resource uses: query strings, pagination and `next`
//! links, item links, timestamps, labels, and the status sets of §2.3.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use chrono::NaiveDateTime;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use crate::db::{
    models::{Page, SortDir, SortKey},
    DbConnection,
};
pub use crate::domain::{json_of, labels_of, labels_text, resize_allowed, FAILED, UPDATE_ALLOWED};

/// The query string as ordered pairs; a repeated key keeps its last value.
#[derive(Debug, Default)]
pub struct Query(pub BTreeMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = BTreeMap::new();
        if let Some(raw) = raw {
            for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Self(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        self.get(key)
            .map(|v| super::input::parse_bool(key, &Value::String(v.to_owned())))
            .transpose()
    }

    /// `limit`, `marker`, `sort_key`, `sort_dir` as upstream validates them.
    pub fn page(&self) -> ApiResult<Page> {
        let limit = match self.get("limit") {
            None => None,
            Some(l) => {
                let n: i64 = l.parse().map_err(|_| {
                    ApiError::invalid_field(
                        "limit",
                        &Value::String(l.to_owned()),
                        "Value should be an integer",
                    )
                })?;
                if n <= 0 {
                    return Err(ApiError::bad_request("Limit must be positive"));
                }
                Some(n)
            }
        };
        let sort_key = match self.get("sort_key") {
            None => SortKey::Id,
            Some(k) => k.parse().map_err(|e: crate::db::models::InvalidSortKey| {
                ApiError::bad_request(e.to_string())
            })?,
        };
        let sort_dir = match self.get("sort_dir") {
            None => SortDir::Asc,
            Some(d) => d.parse().map_err(|e: crate::db::models::InvalidSortDir| {
                ApiError::bad_request(e.to_string())
            })?,
        };
        let marker = self.get("marker").map(str::to_owned);
        Ok(Page {
            limit,
            marker,
            sort_key,
            sort_dir,
        })
    }
}

/// `http://HOST` from the request, for links (upstream builds them from the
/// host the client used).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("127.0.0.1:9511");
    format!("http://{host}")
}

/// `self` and `bookmark` links of one item.
pub fn links(base: &str, resource: &str, uuid: &str) -> Value {
    json!([
        {"href": format!("{base}/v1/{resource}/{uuid}"), "rel": "self"},
        {"href": format!("{base}/{resource}/{uuid}"), "rel": "bookmark"},
    ])
}

fn sort_key_name(k: SortKey) -> &'static str {
    match k {
        SortKey::Id => "id",
        SortKey::Uuid => "uuid",
        SortKey::Name => "name",
        SortKey::CreatedAt => "created_at",
    }
}

/// `{"<key>": items, "next": url}`; `next` only when the page is full.
pub fn collection(
    key: &str,
    items: Vec<Value>,
    last_uuid: Option<&str>,
    page: &Page,
    base: &str,
    path: &str,
) -> Value {
    let next = next_link(items.len(), last_uuid, page, base, path);
    let mut body = json!({ key: items });
    if let Some(next) = next {
        body["next"] = Value::String(next);
    }
    body
}

/// The `next` link of a page of `count` items ending with `last_uuid`:
/// only when the caller asked for a limit and the page is full.
pub fn next_link(
    count: usize,
    last_uuid: Option<&str>,
    page: &Page,
    base: &str,
    path: &str,
) -> Option<String> {
    let full = page.limit.is_some() && count as i64 == page.limit();
    let last = last_uuid.filter(|_| full)?;
    let dir = match page.sort_dir {
        SortDir::Asc => "asc",
        SortDir::Desc => "desc",
    };
    Some(format!(
        "{base}/v1/{path}?sort_key={}&sort_dir={dir}&limit={}&marker={last}",
        sort_key_name(page.sort_key),
        page.limit()
    ))
}

/// Upstream's timestamp format (`2016-08-29T06:51:31+00:00`).
pub fn time(t: &NaiveDateTime) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

pub fn opt_time(t: &Option<NaiveDateTime>) -> Value {
    t.as_ref().map_or(Value::Null, time)
}

/// Whether `ident` looks like a uuid (then it is looked up as one).
/// Upstream's uuid-or-name lookup: a uuid-like `ident` is fetched by uuid
/// and must be `visible` to the caller; a name must match exactly one row
/// of `by_name` (several → 409). `kind` is the resource as the messages
/// name it ("Cluster", "ClusterTemplate"), `noun` as the conflict names it
/// ("cluster", "cluster template").
pub fn by_uuid_or_name<T>(
    conn: &mut DbConnection,
    ident: &str,
    (kind, noun): (&str, &str),
    by_uuid: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
    visible: impl FnOnce(&T) -> bool,
    by_name: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<Vec<T>>,
) -> ApiResult<T> {
    let not_found = || ApiError::not_found(format!("{kind} {ident} could not be found."));
    if is_uuid_like(ident) {
        return match by_uuid(conn) {
            Ok(row) if visible(&row) => Ok(row),
            Ok(_) | Err(diesel::result::Error::NotFound) => Err(not_found()),
            Err(e) => Err(e.into()),
        };
    }
    let mut found = by_name(conn)?;
    match found.len() {
        0 => Err(not_found()),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::conflict(format!(
            "Multiple {noun}s exist with same name. Please use the {noun} uuid instead."
        ))),
    }
}

pub use crate::catalog::is_uuid_like;

/// `labels_overridden` / `labels_added` / `labels_skipped` of a child
/// against its parent; overridden ones report the parent's value.
pub fn label_diff(
    parent: &BTreeMap<String, String>,
    child: &BTreeMap<String, String>,
) -> (Value, Value, Value) {
    let mut overridden = serde_json::Map::new();
    let mut added = serde_json::Map::new();
    let mut skipped = serde_json::Map::new();
    for (k, v) in child {
        match parent.get(k) {
            None => {
                added.insert(k.clone(), Value::String(v.clone()));
            }
            Some(pv) if pv != v => {
                overridden.insert(k.clone(), Value::String(pv.clone()));
            }
            Some(_) => {}
        }
    }
    for (k, v) in parent {
        if !child.contains_key(k) {
            skipped.insert(k.clone(), Value::String(v.clone()));
        }
    }
    (
        Value::Object(overridden),
        Value::Object(added),
        Value::Object(skipped),
    )
}

/// Label inheritance (upstream §1.8): no labels → the parent's; labels with
/// `merge_labels` → parent updated with them; labels alone → only those.
pub fn inherit_labels(
    parent: &BTreeMap<String, String>,
    given: Option<BTreeMap<String, String>>,
    merge: bool,
) -> BTreeMap<String, String> {
    match given {
        None => parent.clone(),
        Some(l) if l.is_empty() => parent.clone(),
        Some(l) if merge => {
            let mut out = parent.clone();
            out.extend(l);
            out
        }
        Some(l) => l,
    }
}

const GREEK: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// Upstream's generated names: `<greek>-<1..24>-<suffix>`.
pub fn generated_name(suffix: &str) -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let letter = GREEK[usize::from(bytes[0]) % GREEK.len()];
    let n = usize::from(bytes[1]) % 24 + 1;
    format!("{letter}-{n}-{suffix}")
}

/// The unique-violation case of a diesel error (duplicate uuid or name).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_inheritance_and_diff() {
        let parent: BTreeMap<_, _> = [("a", "1"), ("b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let given: BTreeMap<_, _> = [("b", "3"), ("c", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(inherit_labels(&parent, None, false), parent);
        let merged = inherit_labels(&parent, Some(given.clone()), true);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged["b"], "3");
        assert_eq!(inherit_labels(&parent, Some(given.clone()), false), given);
        let (o, a, s) = label_diff(&parent, &given);
        assert_eq!(o, json!({"b": "2"}));
        assert_eq!(a, json!({"c": "4"}));
        assert_eq!(s, json!({"a": "1"}));
    }

    #[test]
    fn pages_validate_like_upstream() {
        assert_eq!(
            Query::parse(Some("limit=0")).page().unwrap_err().detail,
            "Limit must be positive"
        );
        assert!(Query::parse(Some("sort_key=bogus"))
            .page()
            .unwrap_err()
            .detail
            .contains("invalid field for sorting"));
        assert!(Query::parse(Some("sort_dir=up")).page().is_err());
        let p = Query::parse(Some("limit=5000&sort_key=name&sort_dir=desc"))
            .page()
            .unwrap();
        assert_eq!(p.limit(), 1000);
        assert!(generated_name("cluster").ends_with("-cluster"));
    }
}
