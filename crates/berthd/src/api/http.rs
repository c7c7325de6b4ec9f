//! HTTP plumbing for the Engine API: the body type, Docker's error shape and codes, JSON and
//! streamed JSON responses, query strings, and request bodies read with a size cap.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::model::Error;

/// A body's error aborts the response mid-stream (the connection closes without the last
/// chunk), so a client never takes a cut-short stream for a whole one.
pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

/// What a route answers: a response, or an engine error that `error_response` turns into one.
pub type ApiResult = Result<Resp, Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(never).boxed()
}

pub fn empty_body() -> Body {
    Empty::new().map_err(never).boxed()
}

fn with_type(mut r: Resp, ct: &'static str) -> Resp {
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// A JSON response (`Content-Type: application/json` exactly: the docker CLI checks it).
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    let mut bytes = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    bytes.push(b'\n');
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    with_type(r, "application/json")
}

pub fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    with_type(r, "text/plain; charset=utf-8")
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    r
}

/// The HTTP status of each kind of error: the one place it is chosen.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::InvalidParameter(_) => StatusCode::BAD_REQUEST,
        Error::NotModified => StatusCode::NOT_MODIFIED,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Docker's error response: `{"message": ...}` with the kind's status (304 has no body).
pub fn error_response(e: Error) -> Resp {
    let status = status_of(&e);
    if status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    if status.is_server_error() {
        tracing::error!(%status, message = e.message(), "request failed");
    }
    json(
        status,
        &berth_api::ErrorResponse {
            message: e.message().to_string(),
        },
    )
}

/// A newline-delimited JSON stream: the headers go out at once, each `send` is one line.
pub struct JsonStream {
    tx: mpsc::Sender<Bytes>,
}

impl JsonStream {
    pub fn new() -> (JsonStream, Resp) {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let body = StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(|b| Ok::<_, std::io::Error>(Frame::data(b))),
        );
        let r = with_type(Response::new(BodyExt::boxed(body)), "application/json");
        (JsonStream { tx }, r)
    }

    /// Sends one JSON line; false once the client has gone.
    pub async fn send<T: Serialize>(&self, v: &T) -> bool {
        let mut line = serde_json::to_vec(v).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    /// From synchronous code (a blocking task).
    pub fn send_blocking<T: Serialize>(&self, v: &T) -> bool {
        let mut line = serde_json::to_vec(v).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        self.tx.blocking_send(Bytes::from(line)).is_ok()
    }
}

/// A streamed binary body (a tar): headers go out at once with `content_type`; a blocking task
/// writes into it as a `std::io::Write` (in 64 KiB chunks); a write fails once the client left.
pub struct ByteStream {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ByteStream {
    pub fn new(content_type: &'static str) -> (ByteStream, Resp) {
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
        let body = StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| b.map(Frame::data)),
        );
        let r = with_type(Response::new(BodyExt::boxed(body)), content_type);
        (
            ByteStream {
                tx,
                buf: Vec::with_capacity(64 << 10),
            },
            r,
        )
    }
}

impl std::io::Write for ByteStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(64 << 10),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl ByteStream {
    /// Ends the stream as failed: what was written so far goes out, then the connection is
    /// closed without the terminating chunk, which clients report as an error.
    pub fn fail(mut self, e: std::io::Error) {
        let _ = std::io::Write::flush(&mut self);
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Drop for ByteStream {
    /// Bytes written but never flushed mean the writer stopped half-way (a panic, an early
    /// return): the stream fails rather than ending as if whole.
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.buf.clear();
            let _ = self
                .tx
                .try_send(Err(std::io::Error::other("the stream was cut short")));
        }
    }
}

fn never(n: Infallible) -> std::io::Error {
    match n {}
}

/// A parsed query string (`a=1&b=x%20y`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(berth_api::query::pairs(q.unwrap_or("")))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`changes=...&changes=...`).
    pub fn get_all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Docker's boolean parameters: `1`, `true`, `True` are true; absent, empty, `0`, `false` not.
    pub fn bool(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if !matches!(v, "" | "0" | "false" | "False" | "FALSE"))
    }

    /// The `filters` parameter: `{"key":["v1","v2"]}` (or the old `{"key":{"v1":true}}`).
    pub fn filters(&self) -> Result<Vec<(String, String)>, Error> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        berth_api::query::filters(raw).map_err(Error::invalid)
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Error> {
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::invalid(format!("reading the request body: {e}")))
}

/// Parses a JSON request body; an empty body is `{}` (the docker CLI sends none at times).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_go() {
        let q = Query::parse(Some(
            "fromImage=127.0.0.1%3A5000%2Fbb&tag=latest&all=1&x=a+b&n",
        ));
        assert_eq!(q.get("fromImage"), Some("127.0.0.1:5000/bb"));
        assert_eq!(q.get("x"), Some("a b"));
        assert!(q.bool("all") && !q.bool("n") && !q.bool("missing"));
        let f = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%5B%22true%22%5D%2C%22label%22%3A%7B%22a%22%3Atrue%7D%7D",
        ));
        let mut got = f.filters().unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                ("dangling".to_string(), "true".to_string()),
                ("label".to_string(), "a".to_string())
            ]
        );
        assert!(Query::parse(Some("filters=%7Bbad")).filters().is_err());
        assert_eq!(berth_api::query::percent_decode("100%"), "100%");
    }

    /// A stream that failed half-way ends the body with an error (hyper then closes the
    /// connection without the last chunk), after the bytes written before the failure.
    #[test]
    fn a_failed_byte_stream_ends_in_an_error_not_a_whole_body() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (mut stream, resp) = ByteStream::new("application/x-tar");
        let writer = std::thread::spawn(move || {
            std::io::Write::write_all(&mut stream, b"partial").unwrap();
            stream.fail(std::io::Error::other("the walk failed"));
        });
        let mut body = resp.into_body();
        let (mut data, mut failed) = (Vec::new(), false);
        rt.block_on(async {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => data.extend_from_slice(f.data_ref().map_or(&[][..], |b| &b[..])),
                    Err(_) => failed = true,
                }
            }
        });
        writer.join().unwrap();
        assert_eq!(data, b"partial");
        assert!(failed);
    }
}

/// The `until` and `label` filters of the prune routes: objects created before a time (unix
/// seconds, RFC 3339, or a Go duration back from now) and having, or with `label!` lacking, a
/// label (`key` or `key=value`).
#[derive(Debug, Default)]
pub struct PruneFilters {
    /// Unix nanoseconds.
    until: Option<i64>,
    /// (key, value, must have it).
    labels: Vec<(String, Option<String>, bool)>,
}

impl PruneFilters {
    /// From the `filters` pairs; `other` are the keys the route takes besides these.
    pub fn parse(filters: &[(String, String)], other: &[&str]) -> Result<PruneFilters, Error> {
        let mut f = PruneFilters::default();
        for (k, v) in filters {
            match k.as_str() {
                "until" => {
                    let t = crate::engine::logs::parse_time_param(v).ok_or_else(|| {
                        Error::invalid(format!(
                            "failed to parse value as time or duration: \"{v}\""
                        ))
                    })?;
                    f.until = Some(t);
                }
                "label" | "label!" => {
                    let (key, value) = match v.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (v.clone(), None),
                    };
                    f.labels.push((key, value, k == "label"));
                }
                k if other.contains(&k) => {}
                k => return Err(Error::invalid(format!("Invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    /// Whether an object created at `created` (RFC 3339) with `labels` (a JSON object) is
    /// selected.
    pub fn selects<'a>(&self, created: &str, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        if let Some(until) = self.until {
            match berth_clock::parse_rfc3339(created) {
                Some(c) if c < until => {}
                _ => return false,
            }
        }
        self.labels.iter().all(|(k, v, want)| {
            let has = match (label(k), v) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(x), Some(v)) => x == v,
            };
            has == *want
        })
    }
}
