//! A container's and an exec's stdio as berthd holds it: the FIFOs under the exec root that the
//! shim writes the process's output to (and reads its stdin from), and the pumps that copy the
//! output into the log and to attached clients.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::engine::Daemon;
use crate::engine::logs::{LogWriter, Stream};
use crate::model::Error;

/// Output chunks kept for attached clients that fall behind (each up to 32 KiB; the log has
/// everything).
pub const OUTPUT_CHUNKS: usize = 256;

/// The directory of a container's FIFOs (its execs' too).
pub fn fifo_dir(d: &Daemon, id: &str) -> PathBuf {
    d.exec_root.join("containers").join(id)
}

pub fn mkfifo(p: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_file(p);
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| Error::internal(format!("creating {}: {e}", p.display())))
}

/// Copies one FIFO into the log and to attached clients until the container exits.
pub async fn pump(
    path: PathBuf,
    stream: Stream,
    log: Option<Arc<Mutex<LogWriter>>>,
    out: broadcast::Sender<(Stream, Bytes)>,
    mut exited: watch::Receiver<bool>,
) {
    let Ok(rx) = tokio::net::unix::pipe::OpenOptions::new().open_receiver(&path) else {
        return;
    };
    // Our own write end: no EOF before the container's writers appear (the shim may hold one
    // too, so the end of a run is its exit, not EOF).
    let mut keep = std::fs::OpenOptions::new().write(true).open(&path).ok();
    let mut draining = false;
    loop {
        if !draining {
            tokio::select! {
                r = rx.readable() => if r.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                },
                _ = exited.changed() => { draining = true; keep = None; continue; }
            }
        }
        // The buffer is on the stack for the read alone: a container that writes nothing (or
        // waits between lines) holds no buffer of its own.
        let read = {
            let mut buf = [0u8; 32 * 1024];
            rx.try_read(&mut buf)
                .map(|n| Bytes::copy_from_slice(&buf[..n]))
        };
        let chunk = match read {
            Ok(chunk) if !chunk.is_empty() => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !draining => continue,
            // Everything the run wrote is in the pipe once it has exited: what is there has
            // been taken.
            _ if draining => break,
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Some(Ok(mut w)) = log.as_ref().map(|l| l.lock()) {
            let _ = w.write(stream, &chunk, std::time::SystemTime::now());
        }
        let _ = out.send((stream, chunk));
    }
    drop(keep);
}

/// Opens a FIFO's write end without ever blocking (fails if no reader), then makes writes
/// blocking again.
pub fn open_writer(p: &std::path::Path) -> Option<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        p,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).ok()?;
    Some(std::fs::File::from(fd))
}
