//! Hijacked connections (`attach`, `exec start`): the 101 response, and the relay that copies
//! a process's output to the client (stdcopy-framed unless it has a TTY) and the client's stdin
//! to the process until the process exits.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::http::empty_body;
use crate::engine::Daemon;
use crate::engine::logs::Stream;
use crate::engine::run;

/// Where a hijacked connection's stdin goes.
pub enum StdinTarget {
    /// The container's own stdin (attach).
    Container(String),
    /// An exec's stdin FIFO.
    Exec {
        container: String,
        exec_id: String,
        file: Arc<std::sync::Mutex<Option<std::fs::File>>>,
    },
}

/// What a hijacked connection relays.
pub struct Relay {
    pub tty: bool,
    pub want_out: bool,
    pub want_err: bool,
    pub stdin: Option<StdinTarget>,
    /// The keys that detach the client (a TTY's only, as dockerd); the connection then closes
    /// and the process goes on.
    pub detach_keys: Option<Vec<u8>>,
}

impl Relay {
    /// The detach keys a TTY client with stdin gets: `given` (the `detachKeys` parameter, or an
    /// exec's `DetachKeys`), else ctrl-p ctrl-q. `what` names the error: `detach` or `escape`.
    pub fn keys_for(
        tty: bool,
        stdin: bool,
        given: Option<&str>,
        what: &str,
    ) -> Result<Option<Vec<u8>>, crate::model::Error> {
        let keys = match given.filter(|k| !k.is_empty()) {
            Some(k) => berth_api::query::detach_keys(k).map_err(|_| {
                crate::model::Error::invalid(format!("Invalid {what} keys ({k}) provided"))
            })?,
            None => berth_api::query::DEFAULT_DETACH_KEYS.to_vec(),
        };
        Ok((tty && stdin).then_some(keys))
    }
}

/// Copies output (stdcopy-framed unless TTY) to the client and the client's stdin to the
/// process, until `exited` turns Some; then sends what is queued and closes.
pub async fn relay(
    d: Arc<Daemon>,
    upgraded: hyper::upgrade::Upgraded,
    mut output: tokio::sync::broadcast::Receiver<(Stream, Bytes)>,
    mut exited: tokio::sync::watch::Receiver<Option<i64>>,
    r: Relay,
) {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
    let mut stdin_open = r.stdin.is_some();
    let mut scanner = r
        .detach_keys
        .clone()
        .map(berth_api::query::DetachScanner::new);
    // Only a client that sends stdin needs a buffer for it.
    let mut buf = vec![0u8; if stdin_open { 16 * 1024 } else { 0 }];
    let write_chunk = |s: Stream, c: &Bytes| -> Option<Vec<u8>> {
        let wanted = match s {
            Stream::Stdout => r.want_out,
            Stream::Stderr => r.want_err,
        };
        if !wanted {
            return None;
        }
        if r.tty {
            return Some(c.to_vec());
        }
        let mut frame = Vec::with_capacity(c.len() + 8);
        let st = match s {
            Stream::Stdout => berth_api::stdcopy::Stream::Stdout,
            Stream::Stderr => berth_api::stdcopy::Stream::Stderr,
        };
        berth_api::stdcopy::encode_frame(st, c, &mut frame);
        Some(frame)
    };
    loop {
        tokio::select! {
            m = output.recv() => match m {
                Ok((s, c)) => {
                    if let Some(bytes) = write_chunk(s, &c) {
                        if wr.write_all(&bytes).await.is_err() { return; }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            n = rd.read(&mut buf), if stdin_open => {
                let (data, detached) = match (n, scanner.as_mut()) {
                    (Ok(0) | Err(_), _) => (None, false),
                    (Ok(n), None) => (Some(buf[..n].to_vec()), false),
                    (Ok(n), Some(s)) => {
                        let (pass, detached) = s.feed(&buf[..n]);
                        (Some(pass), detached)
                    }
                };
                if let (Some(t), Some(bytes)) = (&r.stdin, &data) {
                    if !bytes.is_empty() {
                        feed_stdin(&d, t, Some(bytes.clone())).await;
                    }
                }
                if detached {
                    // The client leaves; the process and its stdin stay as they are.
                    break;
                }
                stdin_open = data.is_some();
                if let (Some(t), None) = (&r.stdin, &data) {
                    feed_stdin(&d, t, None).await;
                }
            },
            c = exited.changed() => {
                if c.is_err() || exited.borrow_and_update().is_some() {
                    // The process ended: what it wrote is already queued; send it and close.
                    while let Ok((s, c)) = output.try_recv() {
                        if let Some(bytes) = write_chunk(s, &c) {
                            let _ = wr.write_all(&bytes).await;
                        }
                    }
                    break;
                }
            }
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

/// Writes client stdin to the process, or closes its stdin at the client's EOF (`None`).
async fn feed_stdin(d: &Arc<Daemon>, t: &StdinTarget, data: Option<Vec<u8>>) {
    use std::io::Write;
    match t {
        StdinTarget::Container(id) => {
            // `docker run -i` attaches before start: let the run begin first.
            stdin_ready(d, id).await;
            match data {
                None => run::close_stdin(d, id).await,
                Some(data) => {
                    let live = d.runs.get(id);
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(l) = live {
                            if let Some(f) =
                                l.stdin.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
                            {
                                let _ = f.write_all(&data);
                            }
                        }
                    })
                    .await;
                }
            }
        }
        StdinTarget::Exec {
            container,
            exec_id,
            file,
        } => match data {
            None => {
                file.lock().unwrap_or_else(|p| p.into_inner()).take();
                crate::engine::exec::close_stdin(d, container, exec_id).await;
            }
            Some(data) => {
                let file = file.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(f) = file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        let _ = f.write_all(&data);
                    }
                })
                .await;
            }
        },
    }
}

/// The 101 response that hands the connection over to a relay.
pub fn upgraded_response(tty: bool) -> crate::api::http::Resp {
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut r = Response::new(empty_body());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hd = r.headers_mut();
    hd.insert("Content-Type", HeaderValue::from_static(ct));
    hd.insert("Connection", HeaderValue::from_static("Upgrade"));
    hd.insert("Upgrade", HeaderValue::from_static("tcp"));
    r
}

/// Waits (up to a minute) until the container's stdin is open, or its run is over.
async fn stdin_ready(d: &Daemon, id: &str) {
    for _ in 0..3000 {
        let Some(l) = d.runs.get(id) else { return };
        if l.stdin.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let over = l.exited.borrow().is_some()
            && d.containers
                .find(id)
                .ok()
                .and_then(|h| {
                    h.try_lock()
                        .ok()
                        .map(|r| r.state.status == crate::model::record::Status::Exited)
                })
                .unwrap_or(false);
        if over {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
