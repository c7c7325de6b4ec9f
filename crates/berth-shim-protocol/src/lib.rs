//! The shim's socket protocol, the whole of it in one closed enum, shared by the shim (which
//! serves it) and berth-containerd (which calls it).
//!
//! One connection carries one request: the client writes one JSON object on one line, the shim
//! answers with one JSON line and closes the connection. Many connections are served at once by
//! one poll loop; a `wait` keeps its connection open until the process exits, and an `oom_wait`
//! until the container has more OOM kills than it names, without holding up any other request.
//!
//! Requests are tagged by `"op"`; `exec_id` absent or null means the container's init process:
//!
//! | request | response |
//! |---|---|
//! | `{"op":"state"}` | `{"id","status":"created\|running\|paused\|stopped","pid","exit_status"?,"exited_at"?,"oom_count","execs"?:[{"exec_id","pid","exit_status"?,"exited_at"?}]}` |
//! | `{"op":"start"}` | `{}` |
//! | `{"op":"kill","signal":N,"all":false,"exec_id"?}` | `{}` |
//! | `{"op":"exec","exec_id","process":{OCI process},"stdin"?,"stdout"?,"stderr"?,"terminal"?}` | `{"pid":N}` |
//! | `{"op":"resize","exec_id"?,"width":W,"height":H}` | `{}` |
//! | `{"op":"close_stdin","exec_id"?}` | `{}` |
//! | `{"op":"wait","exec_id"?}` | `{"status":N,"exited_at":"RFC 3339"}` once exited |
//! | `{"op":"oom_wait","after":N}` | `{"oom_count":M}` once M > N; closed unanswered if the shim exits first |
//! | `{"op":"pids"}` | `{"pids":[N,...]}` |
//! | `{"op":"pause"}` / `{"op":"resume"}` | `{}` |
//! | `{"op":"update","resources":{OCI linux resources}}` | `{}` |
//! | `{"op":"delete","exec_id"?}` | `{"status":N,"exited_at":...}`; deleting the init also ends the shim |
//! | `{"op":"shutdown"}` | `{}`; force-deletes the container, then the shim exits |
//!
//! `oom_count` counts the OOM kills in the container's memory cgroup since the shim started; it
//! stays 0 where the cgroup cannot be watched (shim.log says why).
//!
//! Any failure answers `{"error":"<message>","kind":"<kind>"}` (for runtime failures, the
//! runtime's own message); the kind, not the message, tells the caller what went wrong.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// What kind of failure an `{"error":...}` answer reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such process or exec (or the runtime no longer knows the container).
    NotFound,
    /// The request does not parse or names something it may not.
    InvalidArgument,
    /// The process or container is not in a state for it (the default: shims from before
    /// kinds answered without one).
    #[default]
    FailedPrecondition,
}

/// A request on the shim's socket.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    State,
    Start,
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
        #[serde(default)]
        exec_id: Option<String>,
    },
    Exec {
        exec_id: String,
        process: serde_json::Value,
        #[serde(default)]
        stdin: Option<String>,
        #[serde(default)]
        stdout: Option<String>,
        #[serde(default)]
        stderr: Option<String>,
        #[serde(default)]
        terminal: bool,
    },
    Resize {
        #[serde(default)]
        exec_id: Option<String>,
        width: u16,
        height: u16,
    },
    CloseStdin {
        #[serde(default)]
        exec_id: Option<String>,
    },
    Wait {
        #[serde(default)]
        exec_id: Option<String>,
    },
    /// Answers `{"oom_count":M}` as soon as the container's OOM kill count M exceeds `after`
    /// (at once if it already does); until then the connection stays open, like `wait`'s. If the
    /// shim exits first, the connection is closed without an answer.
    OomWait {
        after: u64,
    },
    Pids,
    Pause,
    Resume,
    Update {
        resources: serde_json::Value,
    },
    Delete {
        #[serde(default)]
        exec_id: Option<String>,
    },
    Shutdown,
}

/// How a process ended, as written to `exit.json` and returned by `wait` and `delete`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub status: i32,
    /// RFC 3339 UTC time with nanoseconds.
    pub exited_at: String,
}

/// The answer to `state`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateReply {
    pub id: String,
    pub status: String,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
    pub oom_count: u64,
    /// The execs not yet deleted, running or exited (a caller that reconnects finds them here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<ExecState>,
}

/// One exec in a `state` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecState {
    pub exec_id: String,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
}

/// A response line; its shape depends on the request (see the module table).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    Error {
        error: String,
        #[serde(default)]
        kind: ErrorKind,
    },
    State(StateReply),
    Exit(ExitRecord),
    Pids {
        pids: Vec<u32>,
    },
    Pid {
        pid: u32,
    },
    Oom {
        oom_count: u64,
    },
    Ok {},
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error {
            error: message.into(),
            kind,
        }
    }
}

/// An `{"error":...}` answer as a caller reads it: `None` for any other answer.
pub fn error_of(answer: &serde_json::Value) -> Option<(ErrorKind, String)> {
    let message = answer.get("error")?.as_str()?.to_string();
    let kind = answer
        .get("kind")
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .unwrap_or_default();
    Some((kind, message))
}

/// The line `berth-shim start` prints once the container is created and the socket listens.
#[derive(Debug, Deserialize, Serialize)]
pub struct StartReport {
    pub socket: String,
    pub shim_pid: u32,
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_carries_its_kind_and_an_old_one_defaults() {
        let line =
            serde_json::to_value(Response::error(ErrorKind::NotFound, "no such exec: x")).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"error": "no such exec: x", "kind": "not_found"})
        );
        assert_eq!(
            error_of(&line),
            Some((ErrorKind::NotFound, "no such exec: x".to_string()))
        );
        // A shim from before kinds: the message alone.
        let old = serde_json::json!({"error": "container not running"});
        assert_eq!(
            error_of(&old),
            Some((
                ErrorKind::FailedPrecondition,
                "container not running".into()
            ))
        );
        assert_eq!(error_of(&serde_json::json!({"pid": 3})), None);
    }

    #[test]
    fn requests_print_as_the_shim_reads_them() {
        let req = Request::Kill {
            signal: 9,
            all: false,
            exec_id: Some("e1".into()),
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(
            text,
            r#"{"op":"kill","signal":9,"all":false,"exec_id":"e1"}"#
        );
        assert!(matches!(
            serde_json::from_str::<Request>(&text).unwrap(),
            Request::Kill { signal: 9, .. }
        ));
    }
}
