//! The one error type of every handler: a status and the sentence the user
//! reads, rendered in Magnum's envelope (see [`error_body`]).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use serde_json::{json, Value};

use crate::db::DbError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn policy(action: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {action} to be performed."))
    }

    /// A server-side failure: the cause goes to the log, the client gets a
    /// generic sentence (causes may name hosts or paths).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred; the request id in x-openstack-request-id identifies it in the server log.",
        )
    }

    /// The "Invalid input for field/attribute" sentence wsme writes.
    pub fn invalid_field(field: &str, value: &serde_json::Value, why: &str) -> Self {
        let shown = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: '{}'. {why}",
            truncate(&shown, 64)
        ))
    }
}

/// Echoing a huge value back would make the error itself huge.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(error_body(self.status, &self.detail))).into_response()
    }
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogErrorKind as K;
        let status = match e.kind {
            K::BadRequest => StatusCode::BAD_REQUEST,
            K::NotFound => StatusCode::NOT_FOUND,
            K::Conflict => StatusCode::CONFLICT,
            K::Forbidden => StatusCode::FORBIDDEN,
            K::Unauthorized => StatusCode::UNAUTHORIZED,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.message)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            // The server went away mid-request: a retry may well succeed.
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The database is unavailable: {e}"),
            ),
            // SQLite's write lock stayed taken for the whole busy_timeout.
            Error::DatabaseError(_, info) if info.message().contains("database is locked") => {
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The database is busy: {e}"),
                )
            }
            _ => Self::internal(format!("database: {e}")),
        }
    }
}

impl From<crate::db::Unavailable> for ApiError {
    fn from(e: crate::db::Unavailable) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The database is unavailable: {e}"),
        )
    }
}

impl From<crate::db::PoolError> for ApiError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The database is unavailable: {}", DbError::Pool(e)),
        )
    }
}

impl From<magnum_driver_abi::DriverError> for ApiError {
    fn from(e: magnum_driver_abi::DriverError) -> Self {
        use magnum_driver_abi::ErrorKind;
        let message = e.message.to_string();
        match e.kind {
            ErrorKind::INVALID => Self::bad_request(message),
            ErrorKind::UNSUPPORTED => Self::bad_request(message),
            _ => Self::internal(format!("driver: {message}")),
        }
    }
}

impl From<crate::certs::CertError> for ApiError {
    fn from(e: crate::certs::CertError) -> Self {
        match e {
            crate::certs::CertError::Invalid(detail) => ApiError::bad_request(detail),
            crate::certs::CertError::Db(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// Magnum's error envelope, as upstream's ParsableErrorMiddleware writes it
/// (magnum/api/middleware/parsable_error.py): `title` is the first sentence
/// of `detail`, `code` is `client` or `server`, and `request_id` is always
/// empty in the body (the id travels in the `x-openstack-request-id`
/// header).
pub fn error_body(status: StatusCode, detail: &str) -> Value {
    let title = first_sentence(detail);
    let code = if status.is_server_error() {
        "server"
    } else {
        "client"
    };
    json!({"errors": [{
        "request_id": "",
        "code": code,
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
        "links": [],
    }]})
}

/// `detail` up to its first period, as upstream cuts it, except that a
/// period followed by a digit ("1.10", "10.0.0.5") does not end a sentence.
fn first_sentence(detail: &str) -> &str {
    let bytes = detail.as_bytes();
    let end = bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'.' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        .map_or(detail.len(), |(i, _)| i);
    &detail[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_the_first_sentence() {
        let title = |d: &str| error_body(StatusCode::BAD_REQUEST, d)["errors"][0]["title"].clone();
        assert_eq!(
            title("Not supported in the provided microversion; use 1.10 or later."),
            "Not supported in the provided microversion; use 1.10 or later"
        );
        assert_eq!(
            title("Address 10.0.0.5 is taken. Pick another."),
            "Address 10.0.0.5 is taken"
        );
        assert_eq!(title("Ends with a version 1."), "Ends with a version 1");
        assert_eq!(title("No period at all"), "No period at all");
        assert_eq!(title("Quota of 1.5. Two."), "Quota of 1.5");
        assert_eq!(title("Ünïcödé first. Then."), "Ünïcödé first");
    }
}
