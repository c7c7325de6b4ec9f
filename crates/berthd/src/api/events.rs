//! `GET /events`: the kept events in range (`since`), then new ones as they come until
//! `until`, filtered like dockerd filters them (`type`, `event`, `container`, `image`,
//! `volume`, `label`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::responses::EventMessage;
use hyper::Request;
use hyper::body::Incoming;

use crate::api::http::{ApiResult, JsonStream, Query};
use crate::engine::Daemon;
use crate::model::Error;

struct Filter(Vec<(String, String)>);

impl Filter {
    fn matches(&self, e: &EventMessage) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).cloned();
        let id = e.actor.id.as_str();
        let kind = e.kind.as_str();
        // Each key must match one of its values.
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.into_iter().all(|key| {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "type" => kind == v,
                    "event" => e.action == *v || e.action.starts_with(&format!("{v}:")),
                    "container" => {
                        kind == "container"
                            && (id.starts_with(v.as_str()) || attr("name").as_deref() == Some(v))
                    }
                    "image" => attr("image").as_deref() == Some(v) || (kind == "image" && id == v),
                    "volume" => kind == "volume" && id == v,
                    "label" => match v.split_once('=') {
                        Some((lk, lv)) => attr(lk).as_deref() == Some(lv),
                        None => e.actor.attributes.contains_key(v),
                    },
                    _ => false,
                })
        })
    }
}

fn time_param(q: &Query, k: &str) -> Result<Option<i64>, Error> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => crate::engine::logs::parse_time_param(v)
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("invalid value for \"{k}\": {v}"))),
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
            return Err(Error::invalid(format!("invalid filter '{k}'")));
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
        let in_range = |e: &EventMessage| until.is_none_or(|u| e.time_nano <= u);
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
    Ok(resp)
}
