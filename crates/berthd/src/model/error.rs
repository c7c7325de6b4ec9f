//! The engine's errors, by kind, as moby's `errdefs` sorts them: the API layer chooses the HTTP
//! status for a kind in one place (`api::http::error_response`) and nowhere else.

use std::fmt;

/// A failed operation: what kind of failure, and Docker's message for it.
#[derive(Debug)]
pub enum Error {
    /// No such container, image, network, volume or exec.
    NotFound(String),
    /// The object is in a state that forbids the operation (a name in use, a running container).
    Conflict(String),
    /// The request itself is wrong.
    InvalidParameter(String),
    /// Nothing to do (a start of a running container, a stop of a stopped one).
    NotModified,
    /// Something the daemon needs does not answer.
    Unavailable(String),
    /// The operation is refused whatever the state (a read-only rootfs, a predefined network).
    Forbidden(String),
    /// A registry refused the credentials.
    Unauthorized(String),
    /// The operation exists but this configuration cannot do it (reading a `none` log).
    NotImplemented(String),
    /// Anything else: a failure of the daemon or of the host, with its cause when there is one.
    Internal {
        message: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    pub fn not_found(m: impl Into<String>) -> Self {
        Error::NotFound(m.into())
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Error::InvalidParameter(m.into())
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Error::Conflict(m.into())
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Error::Forbidden(m.into())
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Error::Unauthorized(m.into())
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Error::Unavailable(m.into())
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Error::Internal {
            message: m.into(),
            source: None,
        }
    }
    /// An internal error that keeps its cause: `what` says what was being done.
    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Internal {
            message: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    /// Docker's message for it (empty for `NotModified`, which has no body).
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::Conflict(m)
            | Error::InvalidParameter(m)
            | Error::Unavailable(m)
            | Error::Forbidden(m)
            | Error::Unauthorized(m)
            | Error::NotImplemented(m)
            | Error::Internal { message: m, .. } => m,
            Error::NotModified => "",
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Error::NotModified)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotModified => f.write_str("not modified"),
            e => f.write_str(e.message()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Internal {
                source: Some(s), ..
            } => Some(s.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn the_message_is_dockers_and_the_cause_is_kept() {
        let e = Error::io(
            "reading /x",
            std::io::Error::from_raw_os_error(libc_enoent()),
        );
        assert!(e.message().starts_with("reading /x: "));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(Error::NotModified.message(), "");
        assert!(matches!(
            Error::not_found("No such container: x"),
            Error::NotFound(_)
        ));
    }

    fn libc_enoent() -> i32 {
        2
    }
}
