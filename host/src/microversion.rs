//! `OpenStack-API-Version` negotiation for every `/v1` request, as upstream:
//! no header means the minimum (1.1), `latest` the maximum, anything
//! malformed or out of range a 406 with upstream's bodies.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

/// The service token we echo (upstream 22.0.0+ echoes the long form).
pub const SERVICE: &str = "container-infrastructure-management";
/// Tokens accepted in requests; `container-infra` is what every client sends.
const ACCEPTED: [&str; 3] = [
    "container-infra",
    "container-infrastructure-management",
    "container-infrastructure",
];
pub const HEADER: &str = "openstack-api-version";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

pub const MIN: Version = Version { major: 1, minor: 1 };
pub const MAX: Version = Version {
    major: 1,
    minor: 14,
};

impl Version {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum VersionError {
    ServiceType,
    Value,
    Unsupported(Version),
}

/// Picks our service's entry out of the header values (a header may list
/// several services, comma-separated or repeated).
pub fn negotiate(headers: &HeaderMap) -> Result<Version, VersionError> {
    let mut entries = Vec::new();
    for value in headers.get_all(HEADER) {
        let text = value.to_str().map_err(|_| VersionError::Value)?;
        entries.extend(text.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    if entries.is_empty() {
        return Ok(MIN);
    }
    let ours = entries.iter().find_map(|entry| {
        let (service, version) = entry.split_once(char::is_whitespace)?;
        ACCEPTED
            .iter()
            .any(|s| s.eq_ignore_ascii_case(service))
            .then(|| version.trim())
    });
    let Some(version) = ours else {
        return Err(VersionError::ServiceType);
    };
    if version.eq_ignore_ascii_case("latest") {
        return Ok(MAX);
    }
    let (major, minor) = version.split_once('.').ok_or(VersionError::Value)?;
    let parse = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| !s.starts_with('+'))
            .ok_or(VersionError::Value)
    };
    let requested = Version::new(parse(major)?, parse(minor)?);
    if requested < MIN || requested > MAX {
        return Err(VersionError::Unsupported(requested));
    }
    Ok(requested)
}

fn range() -> String {
    format!("[container-infra {MIN}, container-infra {MAX}]")
}

fn not_acceptable(err: &VersionError) -> Response {
    let body: Value = match err {
        VersionError::ServiceType | VersionError::Value => {
            let detail = if *err == VersionError::ServiceType {
                "Invalid service type for OpenStack-API-Version header"
            } else {
                "Invalid value for OpenStack-API-Version header"
            };
            crate::api::error::error_body(StatusCode::NOT_ACCEPTABLE, detail)
        }
        VersionError::Unsupported(v) => {
            let detail = if v.major != MAX.major {
                format!(
                    "Mutually exclusive versions requested. Version {v} requested but not supported by this service. The supported version range is: {}.",
                    range()
                )
            } else {
                format!(
                    "Version {v} was requested but the minor version is not supported by this service. The supported version range is: {}.",
                    range()
                )
            };
            // Upstream's body is pecan's JSON error ({code, title,
            // description}) rewritten by HTTPNotAcceptableAPIVersion
            // (magnum/api/http_error.py), so the explanation travels as
            // `description`; `detail` is kept for clients that read the
            // envelope's usual field.
            json!({"errors": [{
                "request_id": "",
                "code": "magnum.microversion-unsupported",
                "status": 406,
                "title": "Requested microversion is unsupported",
                "description": detail,
                "detail": detail,
                "min_version": MIN.to_string(),
                "max_version": MAX.to_string(),
                "links": [{"rel": "help", "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}],
            }]})
        }
    };
    (StatusCode::NOT_ACCEPTABLE, Json(body)).into_response()
}

/// Negotiates the version of `/v1` requests (stored as a request extension)
/// and adds the version headers to every `/v1` response, errors included.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/v1" || path.starts_with("/v1/")) {
        return next.run(req).await;
    }
    let (version, mut resp) = match negotiate(req.headers()) {
        Ok(v) => {
            req.extensions_mut().insert(v);
            (v, next.run(req).await)
        }
        Err(e) => (MIN, not_acceptable(&e)),
    };
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(
        h,
        "openstack-api-minimum-version",
        format!("{SERVICE} {MIN}"),
    );
    set(
        h,
        "openstack-api-maximum-version",
        format!("{SERVICE} {MAX}"),
    );
    set(h, HEADER, format!("{SERVICE} {version}"));
    set(h, "vary", HEADER.to_owned());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn negotiation_follows_upstream() {
        assert_eq!(negotiate(&with(&[])), Ok(MIN));
        assert_eq!(negotiate(&with(&["container-infra latest"])), Ok(MAX));
        assert_eq!(
            negotiate(&with(&["container-infra 1.9"])),
            Ok(Version::new(1, 9))
        );
        assert_eq!(
            negotiate(&with(&["container-infrastructure-management 1.14"])),
            Ok(MAX)
        );
        assert_eq!(
            negotiate(&with(&["compute 2.1, container-infrastructure 1.7"])),
            Ok(Version::new(1, 7))
        );
        assert_eq!(
            negotiate(&with(&["compute 2.1"])),
            Err(VersionError::ServiceType)
        );
        for bad in [
            "container-infra 1",
            "container-infra x.y",
            "container-infra 1.+2",
        ] {
            assert_eq!(negotiate(&with(&[bad])), Err(VersionError::Value), "{bad}");
        }
        assert_eq!(
            negotiate(&with(&["container-infra 1.999"])),
            Err(VersionError::Unsupported(Version::new(1, 999)))
        );
        assert_eq!(
            negotiate(&with(&["container-infra 2.11"])),
            Err(VersionError::Unsupported(Version::new(2, 11)))
        );
        assert_eq!(
            negotiate(&with(&["container-infra 1.0"])),
            Err(VersionError::Unsupported(Version::new(1, 0)))
        );
    }
}
