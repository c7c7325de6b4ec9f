//! The engine's events: every container, image and volume action goes into a ring of the last
//! events, serialized, and bumps a sequence number that subscribers (`GET /events`, served by
//! `api::events`) wake on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::responses::{EventActor, EventMessage};
use tokio::sync::watch;

/// Events kept for `since`: dockerd keeps the last 256 (its `eventsLimit`).
const BACKLOG: usize = 256;

/// The bytes of the kept events, reserved once: they are packed in one allocation, so a burst
/// of events (200 concurrent runs make 1,000) pins no heap pages long after it, as a thousand
/// small long-lived allocations among the burst's freed memory did.
const RING_BYTES: usize = 192 << 10;

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
    pub last: watch::Sender<u64>,
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

/// An event's attributes.
pub type Attributes = BTreeMap<String, String>;

/// Attributes from pairs.
pub fn attrs<const N: usize>(pairs: [(&str, String); N]) -> Attributes {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Events {
    /// Publishes `action` on an object of `kind` (`container`, `image`, `volume`).
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: Attributes) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        // The pre-1.22 top-level fields docker-py and old clients still read.
        let legacy = kind == "container" || kind == "image";
        let e = EventMessage {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: attributes.get("image").filter(|_| legacy).cloned(),
            kind: kind.into(),
            action: action.into(),
            actor: EventActor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: now / 1_000_000_000,
            time_nano: now,
        };
        let bytes = serde_json::to_vec(&e).unwrap_or_default();
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let seq = *self.last.borrow() + 1;
        ring.push(seq, now, &bytes);
        // Under the ring's lock, so numbers reach subscribers in order.
        self.last.send_replace(seq);
    }

    /// The kept events after `after` (and from `since` on), parsed.
    pub fn read(&self, after: u64, since: Option<i64>) -> Vec<(u64, EventMessage)> {
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
pub fn container_attrs(rec: &crate::engine::store::Record, extra: &[(&str, String)]) -> Attributes {
    let mut a = rec.config.labels.clone().unwrap_or_default();
    a.insert("image".into(), rec.image.clone());
    a.insert("name".into(), rec.name.clone());
    for (k, v) in extra {
        a.insert((*k).to_string(), v.clone());
    }
    a
}
