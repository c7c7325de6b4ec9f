//! Attach: a client's streams joined to a running container's own stdio. berth-cri holds the
//! write end of the container's stdin FIFO (when its config asks for stdin) and tees the output
//! it pumps into the log to whoever is attached; the session ends when the container exits
//! (or the client leaves). With `stdin_once`, the client closing its stdin closes the
//! container's.

use std::io::{Read, Write};
use std::sync::Arc;

use tokio::sync::broadcast;
use tonic::Status;

use crate::runtime::Runtime;
use crate::spdy;
use crate::streaming::Event;
use crate::v1;

/// A chunk of a container's output: (whether it is stderr, the bytes).
pub type Chunk = (bool, Arc<Vec<u8>>);
/// Where a running container's output is teed.
pub type Output = broadcast::Sender<Chunk>;

/// A reader that passes on a copy of what it reads.
pub struct Tee<R> {
    pub inner: R,
    pub stream: &'static str,
    pub to: Output,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.to.receiver_count() > 0 {
            let _ = self
                .to
                .send((self.stream == "stderr", Arc::new(buf[..n].to_vec())));
        }
        Ok(n)
    }
}

impl Runtime {
    /// Makes the container's stdin FIFO and holds its write end (opened read-write, so the
    /// open never waits and the container sees no end until it is let go).
    pub(crate) fn hold_stdin(&self, id: &str, path: &std::path::Path) -> Result<(), Status> {
        crate::containers::mkfifo(path)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Status::internal(format!("opening {}: {e}", path.display())))?;
        self.stdins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), f);
        Ok(())
    }

    fn write_stdin(&self, id: &str, data: &[u8]) {
        let mut held = self.stdins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = held.get_mut(id) {
            let _ = f.write_all(data);
        }
    }
}

/// One attach over `v4.channel.k8s.io`.
pub async fn run<T>(io: T, rt: Arc<Runtime>, req: v1::AttachRequest)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (out, mut events) = crate::streaming::session(io);
    let Some(mut output) = rt
        .outputs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&req.container_id)
        .map(broadcast::Sender::subscribe)
    else {
        return;
    };
    let stdin_once = rt
        .store
        .container(&req.container_id)
        .is_some_and(|c| c.config().stdin_once);
    let mut ids: std::collections::HashMap<String, u32> = Default::default();
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Ok((is_err, bytes)) => {
                    let kind = if is_err && !req.tty { "stderr" } else { "stdout" };
                    if let Some(id) = ids.get(kind) {
                        let _ = out.send(spdy::data(*id, 0, &bytes)).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            ev = events.recv() => match ev {
                Some(Event::Opened(id, h)) => {
                    ids.insert(h.get("streamtype").cloned().unwrap_or_default(), id);
                }
                Some(Event::Data(id, d)) if ids.get("stdin") == Some(&id) => {
                    rt.write_stdin(&req.container_id, &d);
                }
                Some(Event::Fin(id)) if ids.get("stdin") == Some(&id) && stdin_once => {
                    rt.stdins.lock().unwrap_or_else(|p| p.into_inner()).remove(&req.container_id);
                }
                Some(Event::Data(id, d)) if ids.get("resize") == Some(&id) => {
                    pending.extend(d);
                    resize(&rt, &req.container_id, &mut pending).await;
                }
                Some(Event::Closed) | None => return,
                Some(_) => {}
            },
        }
    }
    // The container ended: its status on the error stream, then every stream closed.
    let code = rt
        .store
        .container(&req.container_id)
        .map_or(0, |c| c.exit_code);
    if let Some(id) = ids.get("error") {
        let status = crate::streaming::exit_status(code as u32);
        let _ = out.send(spdy::data(*id, 0, status.as_bytes())).await;
    }
    for id in ids.values() {
        let _ = out.send(spdy::data(*id, spdy::FLAG_FIN, &[])).await;
    }
}

/// Applies the terminal sizes in `pending` (JSON objects) to the container's terminal.
async fn resize(rt: &Runtime, id: &str, pending: &mut Vec<u8>) {
    while let Some(i) = pending.iter().position(|b| *b == b'}') {
        let msg: Vec<u8> = pending.drain(..=i).collect();
        let v: serde_json::Value = serde_json::from_slice(&msg).unwrap_or_default();
        if let (Some(w), Some(h)) = (v["Width"].as_u64(), v["Height"].as_u64()) {
            let r = berth_proto::v1::ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                width: w as u32,
                height: h as u32,
            };
            let _ = rt.lower.tasks().resize_pty(crate::lower::req(r)).await;
        }
    }
}
