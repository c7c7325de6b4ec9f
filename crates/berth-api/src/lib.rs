//! Docker Engine API types shared by berthd (server) and berth (client): the API version range,
//! the error body, the stdcopy stream framing, query strings and filters, and the Engine API models (re-exported from
//! `bollard-stubs`, pinned; `responses` has our own where those differ from dockerd). Only this crate and its two users know the Engine API's JSON.
#![forbid(unsafe_code)]

pub mod config;
pub mod host_config;
pub mod query;
pub mod responses;
pub mod stdcopy;

pub use bollard_stubs::models;

/// The Engine API version berthd reports (`ApiVersion`).
pub const API_VERSION: &str = "1.45";
/// The oldest Engine API version berthd serves (`MinAPIVersion`).
pub const MIN_API_VERSION: &str = "1.24";

/// Docker's error body: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// Splits a request path into the API version it names (if any) and the unversioned route,
/// e.g. `/v1.45/containers/json` gives `(Some("1.45"), "/containers/json")`.
pub fn strip_version(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let is_version = version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if is_version {
        (Some(version), &rest[end..])
    } else {
        (None, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_and_unversioned_routes() {
        assert_eq!(
            strip_version("/v1.45/containers/json"),
            (Some("1.45"), "/containers/json")
        );
        assert_eq!(strip_version("/_ping"), (None, "/_ping"));
        assert_eq!(strip_version("/volumes"), (None, "/volumes"));
        assert_eq!(strip_version("/v1.x/foo"), (None, "/v1.x/foo"));
    }

    #[test]
    fn error_body_is_dockers_shape() {
        let body = serde_json::to_string(&ErrorResponse {
            message: "No such container: x".into(),
        })
        .unwrap();
        assert_eq!(body, r#"{"message":"No such container: x"}"#);
    }
}
