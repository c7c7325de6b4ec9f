//! The Engine API as the commands use it: JSON requests, Docker's error body turned into a
//! [`DaemonError`] ("Error response from daemon: …"), and the streaming responses handed back raw.

use std::io::Read;

use anyhow::Context;
use serde_json::Value;

use crate::http::{self, Body, Host, Response};

/// The daemon answered with an error status; `message` is Docker's `{"message": …}`.
#[derive(Debug)]
pub struct DaemonError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

/// Whether `e` is the daemon's 404.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DaemonError>()
        .is_some_and(|d| d.status == 404)
}

/// A client of one daemon.
pub struct Client {
    pub host: Host,
    /// The address as the user gave it, for messages.
    pub host_str: String,
}

impl Client {
    pub fn new(host_str: &str) -> anyhow::Result<Client> {
        Ok(Client {
            host: Host::parse(host_str)?,
            host_str: host_str.to_string(),
        })
    }

    /// Sends a request; error statuses become [`DaemonError`].
    pub fn send(&self, method: &str, path: &str, body: Body<'_>) -> anyhow::Result<Response> {
        self.send_with(method, path, body, &[])
    }

    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Response> {
        let resp = http::request(&self.host, method, path, body, headers)?;
        if resp.status >= 400 {
            return Err(error_of(resp).into());
        }
        Ok(resp)
    }

    /// GET returning JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        json_of(self.send("GET", path, Body::Empty)?)
    }

    /// POST of an optional JSON body; returns the JSON answer (Null when there is none).
    pub fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let body = body.map_or(Body::Empty, Body::Json);
        json_of(self.send("POST", path, body)?)
    }

    /// DELETE; returns the JSON answer (Null when there is none).
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        json_of(self.send("DELETE", path, Body::Empty)?)
    }
}

/// Reads a JSON body; an empty one is `Null`.
pub fn json_of(resp: Response) -> anyhow::Result<Value> {
    let bytes = resp.bytes().context("reading the daemon's answer")?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).context("decoding the daemon's answer")
}

fn error_of(mut resp: Response) -> DaemonError {
    let status = resp.status;
    let mut body = Vec::new();
    let _ = resp.read_to_end(&mut body);
    let message = serde_json::from_slice::<berth_api::ErrorResponse>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
    let message = if message.is_empty() {
        format!("status {status}")
    } else {
        message
    };
    DaemonError { status, message }
}

/// Builds a query string from pairs, skipping `None` values.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = String::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            q.push(if q.is_empty() { '?' } else { '&' });
            q.push_str(k);
            q.push('=');
            q.push_str(&http::encode(v));
        }
    }
    q
}

/// Docker's `filters` query value from `key=value` flags: `{"key":{"value":true}}`.
pub fn filters_json(filters: &[String]) -> anyhow::Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut m = serde_json::Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        let e = m
            .entry(k.trim().to_lowercase())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = e {
            o.insert(v.to_string(), Value::Bool(true));
        }
    }
    Ok(Some(Value::Object(m).to_string()))
}

/// A string field of a JSON object ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An integer field of a JSON object (0 when absent).
pub fn i(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}
