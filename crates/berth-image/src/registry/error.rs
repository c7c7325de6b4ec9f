//! The registry client's errors, and how a registry's error answer (the distribution spec's
//! `{"errors":[{"code","message","detail"}]}`) becomes one of them, worded as Docker words it.

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Still 401 after answering the challenge with what we have (or with nothing to answer).
    #[error("unauthorized: {message}")]
    Unauthorized { domain: String, message: String },
    /// 404 for a manifest, blob or repository: `manifest for REPO:TAG not found: manifest
    /// unknown: manifest unknown`.
    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },
    /// 403: authenticated, but not allowed.
    #[error("denied: {0}")]
    Denied(String),
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: expected {expected} bytes, the data to push had {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A registry, token realm, redirect or upload location we would need TLS (or a
    /// non-loopback plain-HTTP connection) for.
    #[error("{0}: plain HTTP is only used for loopback registries; elsewhere it is HTTPS")]
    Tls(String),
    /// Any other failure status, with the registry's own message when it sent one.
    #[error("{url}: the registry answered {status}: {message}")]
    Http {
        status: u16,
        url: String,
        message: String,
    },
    /// A success answer that breaks the protocol (no `Location` on an upload, no token from the
    /// token server, an undecodable challenge).
    #[error("{url}: {problem}")]
    Protocol { url: String, problem: String },
    #[error("talking to the registry at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("reading the answer from {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the data of {what} to push: {source}")]
    Source {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    pub(crate) fn transport(url: &str, source: ureq::Error) -> RegistryError {
        RegistryError::Transport {
            url: url.to_string(),
            source: Box::new(source),
        }
    }
}

/// The first entry of a registry's `errors` array.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// `MANIFEST_UNKNOWN`, `UNAUTHORIZED`, ... as sent.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The body itself when it is not the JSON error form (trimmed, at most 200 characters).
    pub raw: String,
}

impl ErrorBody {
    pub fn parse(body: &str) -> ErrorBody {
        let raw: String = body.trim().chars().take(200).collect();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            return ErrorBody {
                raw,
                ..ErrorBody::default()
            };
        };
        let e = &v["errors"][0];
        let text = |k: &str| {
            e[k].as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        ErrorBody {
            code: text("code"),
            message: text("message"),
            raw,
        }
    }

    /// The message alone (`authentication required`), or `fallback`.
    pub fn message_or(&self, fallback: &str) -> String {
        self.message.clone().unwrap_or_else(|| fallback.to_string())
    }

    /// Docker's rendering of a registry error: the code in lower case with spaces, then the
    /// message (`manifest unknown: manifest unknown`); the raw body, or `fallback`, otherwise.
    pub fn describe(&self, fallback: &str) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{}: {m}", c.to_lowercase().replace('_', " ")),
            (Some(c), None) => c.to_lowercase().replace('_', " "),
            (None, Some(m)) => m.clone(),
            (None, None) if !self.raw.is_empty() => self.raw.clone(),
            (None, None) => fallback.to_string(),
        }
    }
}

/// Maps a failure status and its body to an error. `what` names the object for a 404
/// (`manifest for a/b:latest`, `blob sha256:…`).
pub(crate) fn from_status(
    status: u16,
    body: &str,
    what: &str,
    url: &str,
    domain: &str,
) -> RegistryError {
    let e = ErrorBody::parse(body);
    match status {
        404 => RegistryError::NotFound {
            what: what.to_string(),
            message: e.describe("not found"),
        },
        401 => RegistryError::Unauthorized {
            domain: domain.to_string(),
            message: e.message_or("authentication required"),
        },
        403 => RegistryError::Denied(e.message_or("requested access to the resource is denied")),
        _ => RegistryError::Http {
            status,
            url: url.to_string(),
            message: e.describe("no message"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_like_dockers() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        let e = from_status(404, body, "manifest for a/b:nope", "u", "d");
        assert_eq!(
            e.to_string(),
            "manifest for a/b:nope not found: manifest unknown: manifest unknown"
        );
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        let e = from_status(401, body, "x", "u", "d");
        assert_eq!(e.to_string(), "unauthorized: authentication required");
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(
            from_status(403, body, "x", "u", "d").to_string(),
            "denied: requested access to the resource is denied"
        );
        let e = from_status(500, "  oops\n", "x", "http://r/v2/", "d");
        assert_eq!(
            e.to_string(),
            "http://r/v2/: the registry answered 500: oops"
        );
        let e = from_status(404, "", "blob sha256:00", "u", "d");
        assert_eq!(e.to_string(), "blob sha256:00 not found: not found");
    }
}
