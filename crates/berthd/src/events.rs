//! Docker's event stream (`GET /events`): every container, image and volume action goes into
//! a ring of the last events, serialized, and bumps a sequence number; subscribers get the
//! backlog in range (`since`), then read the ring's new events at each bump until `until`,
//! filtered like dockerd filters them (`type`, `event`, `container`, `image`, `volume`,
//! `label`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Daemon;
use crate::http::{ApiError, ApiResult, JsonStream, Query};

/// Events kept for `since`.
const BACKLOG: usize = 1024;

/// The bytes of the kept events, reserved once: they are packed in one allocation, so a burst
/// of events (200 concurrent runs make 1,000) pins no heap pages long after it, as a thousand
/// small long-lived allocations among the burst's freed memory did.
const RING_BYTES: usize = 512 << 10;

/// The kept events, serialized, oldest first.
struct Ring {
    bytes: VecDeque<u8>,
    /// Per event: its sequence number, `timeNano` and length in `bytes`.
    index: VecDeque<(u64, i64, usize)>,
}

impl Ring {
    fn push(&mut self, seq: u64, time: i64, e: &[u8]) {
        while !self.index.is_empty()
            && (self.index.len() == BACKLOG || self.bytes.len() + e.len() > RING_BYTES)
        {
            if let Some((_, _, len)) = self.index.pop_front() {
                self.bytes.drain(..len);
            }
        }
        self.bytes.extend(e);
        self.index.push_back((seq, time, e.len()));
    }

    /// The kept events `keep` selects (by sequence number and time), with their numbers.
    fn select(&self, keep: impl Fn(u64, i64) -> bool) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(seq, time, len) in &self.index {
            if keep(seq, time) {
                out.push((seq, self.bytes.range(at..at + len).copied().collect()));
            }
            at += len;
        }
        out
    }
}

pub struct Events {
    ring: Mutex<Ring>,
    /// The last event's sequence number: subscribers wake on it and read the ring.
    last: watch::Sender<u64>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            ring: Mutex::new(Ring {
                bytes: VecDeque::with_capacity(RING_BYTES),
                index: VecDeque::with_capacity(BACKLOG),
            }),
            last: watch::Sender::new(0),
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
        let bytes = serde_json::to_vec(&e).unwrap_or_default();
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let seq = *self.last.borrow() + 1;
        ring.push(seq, now, &bytes);
        // Under the ring's lock, so numbers reach subscribers in order.
        self.last.send_replace(seq);
    }

    /// The kept events after `after` (and from `since` on), parsed.
    fn read(&self, after: u64, since: Option<i64>) -> Vec<(u64, Value)> {
        let raw = self
            .ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .select(|seq, time| seq > after && since.is_none_or(|s| time >= s));
        raw.into_iter()
            .filter_map(|(seq, b)| Some((seq, serde_json::from_slice(&b).ok()?)))
            .collect()
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
    let mut rx = d.events.last.subscribe();
    let now_seq = *rx.borrow_and_update();
    // With `since`, the kept events from then on; live ones after the last kept at subscription.
    let backlog = match since {
        Some(s) => d.events.read(0, Some(s)),
        None => Vec::new(),
    };
    let d = d.clone();
    let (out, resp) = JsonStream::new();
    tokio::spawn(async move {
        let in_range = |e: &Value| until.is_none_or(|u| e["timeNano"].as_i64().unwrap_or(0) <= u);
        let mut last = now_seq;
        for (seq, e) in &backlog {
            if *seq > now_seq {
                break;
            }
            if filter.matches(e) && in_range(e) && !out.send(e).await {
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
            // Events after `last` (those a slow reader let the ring drop are lost to it).
            for (seq, e) in d.events.read(last, None) {
                last = seq;
                if filter.matches(&e) && in_range(&e) && !out.send(&e).await {
                    return;
                }
            }
            let changed = async {
                match deadline {
                    Some(t) => tokio::time::timeout_at(t, rx.changed()).await.ok(),
                    None => Some(rx.changed().await),
                }
            };
            match changed.await {
                Some(Ok(())) => {}
                _ => return,
            }
        }
    });
    let _ = StatusCode::OK;
    Ok(resp)
}
