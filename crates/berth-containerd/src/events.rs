//! The Events service: every task event goes through one broadcast channel and out to each
//! subscriber whose filters match (`namespace==NAME`, `topic==/tasks/exit`; filters of one kind
//! are alternatives, kinds must all match). The stream is a fast path only: a subscriber that
//! falls behind or reconnects reconciles from Tasks.List and Tasks.Wait, which hold the truth.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::v1::envelope::Event;
use berth_proto::v1::events_server::Events;
use berth_proto::v1::{Envelope, SubscribeRequest};
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

/// How many events a slow subscriber may fall behind before it misses some.
const BACKLOG: usize = 4096;

/// The sending side, cloned into everything that emits events.
#[derive(Clone)]
pub struct Publisher {
    tx: broadcast::Sender<Envelope>,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

/// The topic of an event, named as containerd names them.
pub fn topic(e: &Event) -> &'static str {
    match e {
        Event::Created(_) => "/tasks/create",
        Event::Started(_) => "/tasks/start",
        Event::Exit(_) => "/tasks/exit",
        Event::Oom(_) => "/tasks/oom",
        Event::Paused(_) => "/tasks/paused",
        Event::Resumed(_) => "/tasks/resumed",
        Event::Deleted(_) => "/tasks/delete",
        Event::ExecAdded(_) => "/tasks/exec-added",
        Event::ExecStarted(_) => "/tasks/exec-started",
    }
}

impl Publisher {
    pub fn publish(&self, namespace: &str, event: Event) {
        let env = Envelope {
            timestamp_unix_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
            namespace: namespace.to_string(),
            topic: topic(&event).to_string(),
            event: Some(event),
        };
        tracing::debug!(namespace, topic = env.topic, "event");
        // No subscriber is not an error.
        let _ = self.tx.send(env);
    }
}

/// A parsed subscription filter.
#[derive(Debug, Default, PartialEq)]
pub struct Filters {
    namespaces: Vec<String>,
    topics: Vec<String>,
}

impl Filters {
    pub fn parse(list: &[String]) -> Result<Filters, Status> {
        let mut f = Filters::default();
        for s in list {
            match s.split_once("==") {
                Some(("namespace", v)) if !v.is_empty() => f.namespaces.push(v.to_string()),
                Some(("topic", v)) if !v.is_empty() => f.topics.push(v.to_string()),
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "unsupported filter {s:?}: use namespace==NAME or topic==/tasks/..."
                    )));
                }
            }
        }
        Ok(f)
    }

    pub fn matches(&self, e: &Envelope) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(&e.namespace))
            && (self.topics.is_empty() || self.topics.contains(&e.topic))
    }
}

pub struct EventsService {
    pub publisher: Publisher,
}

#[tonic::async_trait]
impl Events for EventsService {
    type SubscribeStream = tokio_stream::wrappers::ReceiverStream<Result<Envelope, Status>>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let filters = Filters::parse(&req.into_inner().filters)?;
        let mut rx = self.publisher.tx.subscribe();
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(env) if filters.matches(&env) => {
                        if tx.send(Ok(env)).await.is_err() {
                            return; // the subscriber went away
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "an event subscriber fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            out,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::TaskOom;

    #[test]
    fn filters_select_by_namespace_and_topic() {
        let env = |ns: &str| Envelope {
            timestamp_unix_nanos: 0,
            namespace: ns.into(),
            topic: "/tasks/oom".into(),
            event: Some(Event::Oom(TaskOom {
                container_id: "c".into(),
            })),
        };
        let f = Filters::parse(&["namespace==a".into(), "topic==/tasks/oom".into()]).unwrap();
        assert!(f.matches(&env("a")));
        assert!(!f.matches(&env("b")));
        let f = Filters::parse(&["topic==/tasks/exit".into()]).unwrap();
        assert!(!f.matches(&env("a")));
        assert!(Filters::parse(&[]).unwrap().matches(&env("z")));
        assert!(Filters::parse(&["labels.x==y".into()]).is_err());
    }
}
