//! Container output and input streams: Docker's stdcopy framing (8-byte header: stream 0/1/2/3,
//! big-endian length) for non-TTY logs/attach/exec, raw bytes for TTY, and hijacked attach and
//! exec connections with stdin pumped in (half-closed on EOF) and the ctrl-p ctrl-q detach keys.

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::{Client, DaemonError};
use crate::http::{Body, Stream};

/// Copies a stdcopy-framed stream to stdout/stderr; stream 3 (a daemon error) fails.
pub fn demux(r: &mut dyn Read, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    use berth_api::stdcopy::{FrameError, HEADER_LEN, Stream, decode_header};
    let mut header = [0u8; HEADER_LEN];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match read_full(r, &mut header)? {
            0 => return Ok(()),
            HEADER_LEN => {}
            _ => anyhow::bail!("stream ended inside a frame header"),
        }
        let (stream, mut left) = match decode_header(&header) {
            Ok(h) => h,
            Err(FrameError::BadStream(s)) => {
                anyhow::bail!("unknown stream id {s} in a multiplexed stream")
            }
        };
        let mut errmsg = Vec::new();
        while left > 0 {
            let want = left.min(buf.len());
            let n = r.read(&mut buf[..want])?;
            if n == 0 {
                anyhow::bail!("stream ended inside a frame");
            }
            left -= n;
            match stream {
                Stream::Stdin | Stream::Stdout => out.write_all(&buf[..n])?,
                Stream::Stderr => err.write_all(&buf[..n])?,
                Stream::System => errmsg.extend_from_slice(&buf[..n]),
            }
        }
        if stream == Stream::System {
            return Err(DaemonError {
                status: 500,
                message: String::from_utf8_lossy(&errmsg).trim().to_string(),
            }
            .into());
        }
        out.flush()?;
        err.flush()?;
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Copies a raw (TTY) stream to stdout, flushing as bytes arrive.
pub fn copy_raw(r: &mut dyn Read, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A connection we shut down ourselves on detach.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// A hijacked attach or exec connection.
pub struct Hijacked {
    reader: BufReader<Stream>,
    writer: Stream,
}

/// POSTs `path` asking for the connection upgrade attach and exec start use.
pub fn hijack(
    client: &Client,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<Hijacked> {
    let headers = [
        ("Connection", "Upgrade".to_string()),
        ("Upgrade", "tcp".to_string()),
    ];
    let body = body.map_or(Body::Empty, Body::Json);
    let resp = client.send_with("POST", path, body, &headers)?;
    let (reader, writer) = resp.into_upgraded();
    Ok(Hijacked {
        reader,
        writer: writer?,
    })
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The output stream ended (the process exited or closed its output).
    Output,
    /// The user typed the detach keys.
    Detached,
}

impl Hijacked {
    /// Pumps stdin in (when `stdin`), output out, until the output ends or the user detaches.
    pub fn pump(self, tty: bool, stdin: bool) -> anyhow::Result<Ended> {
        let Hijacked { mut reader, writer } = self;
        let detached = Arc::new(AtomicBool::new(false));
        if stdin {
            let flag = detached.clone();
            let detach_keys = tty && crate::term::stdin_is_tty();
            std::thread::spawn(move || pump_stdin(writer, detach_keys, &flag));
        } else {
            drop(writer);
        }
        let stdout = io::stdout();
        let stderr = io::stderr();
        let res = if tty {
            copy_raw(&mut reader, &mut stdout.lock()).map_err(anyhow::Error::from)
        } else {
            demux(&mut reader, &mut stdout.lock(), &mut stderr.lock())
        };
        if detached.load(Ordering::SeqCst) {
            return Ok(Ended::Detached);
        }
        res.map(|()| Ended::Output)
    }
}

/// Copies stdin into the connection; half-closes at EOF; ctrl-p ctrl-q detaches.
fn pump_stdin(mut conn: Stream, detach_keys: bool, detached: &AtomicBool) {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 4096];
    let mut pending_ctrl_p = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data: Vec<u8> = Vec::with_capacity(n + 1);
        for &b in &buf[..n] {
            if !detach_keys {
                data.push(b);
                continue;
            }
            if pending_ctrl_p {
                pending_ctrl_p = false;
                if b == 0x11 {
                    detached.store(true, Ordering::SeqCst);
                    let _ = conn.write_all(&data);
                    conn.close();
                    return;
                }
                data.push(0x10);
            }
            if b == 0x10 {
                pending_ctrl_p = true;
            } else {
                data.push(b);
            }
        }
        if conn.write_all(&data).is_err() {
            return;
        }
    }
    let _ = conn.close_write();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_splits_streams_and_reports_stream_3() {
        let mut input = Vec::new();
        for (s, p) in [(1u8, &b"out\n"[..]), (2, b"err\n"), (1, b"more")] {
            input.extend_from_slice(&[s, 0, 0, 0]);
            input.extend_from_slice(&(p.len() as u32).to_be_bytes());
            input.extend_from_slice(p);
        }
        let (mut o, mut e) = (Vec::new(), Vec::new());
        demux(&mut &input[..], &mut o, &mut e).unwrap();
        assert_eq!(o, b"out\nmore");
        assert_eq!(e, b"err\n");
        let bad = [3u8, 0, 0, 0, 0, 0, 0, 4, b'o', b'o', b'p', b's'];
        let err = demux(&mut &bad[..], &mut o, &mut e).unwrap_err();
        assert!(err.to_string().contains("oops"));
    }
}
