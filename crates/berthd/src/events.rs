//! Docker's event stream (`GET /events`): every container, image and volume action goes into
//! one broadcast channel and a ring of the last events (for `since`); subscribers get the
//! backlog in range, then live events until `until`, filtered like dockerd filters them
//! (`type`, `event`, `container`, `image`, `volume`, `label`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::Daemon;
use crate::http::{ApiError, ApiResult, JsonStream, Query};

/// Events kept for `since`.
const BACKLOG: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<Value>,
    ring: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(BACKLOG).0,
            ring: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Publishes `action` on an object of `kind` (`container`, `image`, `volume`).
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: Value) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mut e = json!({
            "Type": kind,
            "Action": action,
            "Actor": {"ID": id, "Attributes": attributes},
            "scope": "local",
            "time": now / 1_000_000_000,
            "timeNano": now,
        });
        // The pre-1.22 top-level fields docker-py and old clients still read.
        if kind == "container" || kind == "image" {
            e["status"] = json!(action);
            e["id"] = json!(id);
            if let Some(from) = e["Actor"]["Attributes"]["image"].as_str() {
                e["from"] = json!(from);
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == BACKLOG {
            ring.pop_front();
        }
        ring.push_back(e.clone());
        drop(ring);
        let _ = self.tx.send(e);
    }
}

/// Attributes of a container event: image, name and the container's labels.
pub fn container_attrs(rec: &crate::container::Record, extra: &[(&str, String)]) -> Value {
    let mut a = json!({"image": rec.image, "name": rec.name});
    if let Some(labels) = rec.config["Labels"].as_object() {
        for (k, v) in labels {
            a[k] = v.clone();
        }
    }
    for (k, v) in extra {
        a[*k] = json!(v);
    }
    a
}

struct Filter(Vec<(String, String)>);

impl Filter {
    fn matches(&self, e: &Value) -> bool {
        let attr = |k: &str| e["Actor"]["Attributes"][k].as_str().map(str::to_string);
        let id = e["Actor"]["ID"].as_str().unwrap_or_default();
        let kind = e["Type"].as_str().unwrap_or_default();
        // Each key must match one of its values.
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.into_iter().all(|key| {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "type" => kind == v,
                    "event" => e["Action"]
                        .as_str()
                        .is_some_and(|a| a == v || a.starts_with(&format!("{v}:"))),
                    "container" => {
                        kind == "container"
                            && (id.starts_with(v.as_str()) || attr("name").as_deref() == Some(v))
                    }
                    "image" => attr("image").as_deref() == Some(v) || (kind == "image" && id == v),
                    "volume" => kind == "volume" && id == v,
                    "label" => match v.split_once('=') {
                        Some((lk, lv)) => attr(lk).as_deref() == Some(lv),
                        None => e["Actor"]["Attributes"].get(v).is_some(),
                    },
                    _ => false,
                })
        })
    }
}

fn time_param(q: &Query, k: &str) -> Result<Option<i64>, ApiError> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => crate::logs::parse_time_param(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for \"{k}\": {v}"))),
    }
}

/// `GET /events?since=&until=&filters=`.
pub async fn stream(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    for (k, _) in &filters {
        if !matches!(
            k.as_str(),
            "type" | "event" | "container" | "image" | "volume" | "label"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let filter = Filter(filters);
    let since = time_param(&q, "since")?;
    let until = time_param(&q, "until")?;
    let mut rx = d.events.tx.subscribe();
    let backlog: Vec<Value> = match since {
        Some(s) => d
            .events
            .ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e["timeNano"].as_i64().unwrap_or(0) >= s)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let (out, resp) = JsonStream::new();
    tokio::spawn(async move {
        let in_range = |e: &Value| until.is_none_or(|u| e["timeNano"].as_i64().unwrap_or(0) <= u);
        for e in backlog.iter().filter(|e| filter.matches(e) && in_range(e)) {
            if !out.send(e).await {
                return;
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        // An `until` in the past ends the stream after the backlog.
        let wait =
            until.map(|u| std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64));
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let next = async {
                match deadline {
                    Some(t) => tokio::time::timeout_at(t, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            match next.await {
                None => return,
                Some(Ok(e)) => {
                    if filter.matches(&e) && in_range(&e) && !out.send(&e).await {
                        return;
                    }
                }
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Some(Err(_)) => return,
            }
        }
    });
    let _ = StatusCode::OK;
    Ok(resp)
}
