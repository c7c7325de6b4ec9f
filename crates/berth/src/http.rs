//! A small synchronous HTTP/1.1 client for the Engine API over a unix socket or TCP: one
//! connection per request, bodies by `Content-Length`, chunked encoding or end of stream, read as
//! they arrive, and the `101` upgrade that attach and exec start hijack into a raw byte stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

/// Where the daemon listens, parsed from `-H`/`BERTH_HOST`/`DOCKER_HOST`.
#[derive(Clone, Debug)]
pub enum Host {
    Unix(String),
    Tcp(String),
    /// `tcp://` with TLS (`--tls`/`--tlsverify`).
    Tls(String, std::sync::Arc<crate::tls::TlsOptions>),
}

/// `host[:port]` of a `tcp://` address with `port` added when it names none.
fn tcp_addr(s: &str, a: &str, port: u16) -> anyhow::Result<String> {
    let a = a.trim_end_matches('/');
    anyhow::ensure!(!a.is_empty(), "invalid host {s:?}: empty address");
    let has_port = a
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    Ok(if has_port {
        a.to_string()
    } else {
        format!("{a}:{port}")
    })
}

impl Host {
    /// With TLS: a `tcp://` host (port 2376 by default).
    pub fn parse_tls(s: &str, o: crate::tls::TlsOptions) -> anyhow::Result<Host> {
        let Some(a) = s.strip_prefix("tcp://") else {
            anyhow::bail!("TLS needs a tcp:// host, not {s:?}");
        };
        Ok(Host::Tls(tcp_addr(s, a, 2376)?, std::sync::Arc::new(o)))
    }

    /// Parses `unix:///path`, `tcp://host:port` (port 2375 by default) or a bare socket path.
    pub fn parse(s: &str) -> anyhow::Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            anyhow::ensure!(!p.is_empty(), "invalid host {s:?}: empty socket path");
            Ok(Host::Unix(p.to_string()))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Ok(Host::Tcp(tcp_addr(s, a, 2375)?))
        } else if s.starts_with('/') {
            Ok(Host::Unix(s.to_string()))
        } else {
            anyhow::bail!("invalid host {s:?}: use unix:///path or tcp://host:port")
        }
    }
}

/// One connection to the daemon.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(host: &Host) -> io::Result<Stream> {
        match host {
            Host::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Host::Tcp(a) => TcpStream::connect(a.as_str()).map(|s| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
            Host::Tls(a, o) => crate::tls::connect(a, o).map(Stream::Unix),
        }
    }

    /// A second handle on the same connection (for a writer thread).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Half-closes the write side: the daemon reads it as stdin EOF.
    pub fn close_write(&self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
        }
    }

    /// Closes both directions, waking any reader.
    pub fn close(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The daemon could not be reached at all (as opposed to answering with an error).
#[derive(Debug)]
pub struct ConnectError {
    pub source: io::Error,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connecting to the daemon: {}", self.source)
    }
}

impl std::error::Error for ConnectError {}

/// A request body.
pub enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// Sent with chunked encoding as it is read (tar archives for load and import).
    Stream(&'a mut dyn Read, &'static str),
}

/// How the body of a response is delimited.
enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Eof,
}

/// A response whose body is read on demand.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<Stream>,
    framing: Framing,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body.
    pub fn bytes(mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Reads one line of the body (without the newline); `None` at its end.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        loop {
            let n = self.read(&mut b)?;
            if n == 0 {
                return Ok(if line.is_empty() { None } else { Some(line) });
            }
            if b[0] == b'\n' {
                return Ok(Some(line));
            }
            line.push(b[0]);
        }
    }

    /// The connection after a `101` upgrade (or a `200` from an old daemon that hijacks without
    /// one): whatever was buffered is kept in the returned reader.
    pub fn into_upgraded(self) -> (BufReader<Stream>, io::Result<Stream>) {
        let w = self.reader.get_ref().try_clone();
        (self.reader, w)
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => {
                let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Eof => self.reader.read(buf),
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // CRLF that ends the previous chunk.
                        line.clear();
                        self.reader.read_line(&mut line)?;
                    }
                    if line.is_empty() {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

/// Percent-encodes a query value or path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends one request and reads the response head.
pub fn request(
    host: &Host,
    method: &str,
    path: &str,
    body: Body<'_>,
    extra_headers: &[(&str, String)],
) -> anyhow::Result<Response> {
    let stream = Stream::connect(host).map_err(|source| -> anyhow::Error {
        if source.kind() == io::ErrorKind::InvalidData {
            // A TLS failure: the daemon is there, the session is not.
            anyhow::anyhow!("error during connect: {source}")
        } else {
            ConnectError { source }.into()
        }
    })?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: api\r\nUser-Agent: berth/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut json = Vec::new();
    match &body {
        Body::Empty => head.push_str("Content-Length: 0\r\n\r\n"),
        Body::Json(v) => {
            json = serde_json::to_vec(v)?;
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                json.len()
            ));
        }
        Body::Stream(_, ctype) => {
            head.push_str(&format!(
                "Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ));
        }
    }
    let mut w = io::BufWriter::with_capacity(64 * 1024, stream.try_clone()?);
    w.write_all(head.as_bytes())?;
    match body {
        Body::Empty => {}
        Body::Json(_) => w.write_all(&json)?,
        Body::Stream(r, _) => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                write!(w, "{n:x}\r\n")?;
                w.write_all(&buf[..n])?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")?;
        }
    }
    w.flush()?;
    drop(w);
    read_head(stream, method == "HEAD")
}

fn read_head(stream: Stream, head_only: bool) -> anyhow::Result<Response> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    anyhow::ensure!(
        !line.is_empty(),
        "the daemon closed the connection without answering"
    );
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP status line {:?}", line.trim_end()))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let framing = if head_only || status == 204 || status == 304 {
        Framing::Length(0)
    } else if status == 101 {
        Framing::Eof
    } else if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(n) = find("Content-Length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::Eof
    };
    Ok(Response {
        status,
        headers,
        reader,
        framing,
    })
}

/// Reads a response from a connected socket (tests feed one through a socket pair).
#[cfg(test)]
pub fn response_from(s: UnixStream) -> anyhow::Result<Response> {
    read_head(Stream::Unix(s), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded_line_by_line() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\nc\r\n3\r\nd\nx\r\n0\r\n\r\n")
            .unwrap();
        drop(a);
        let mut r = response_from(b).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.next_line().unwrap().unwrap(), b"ab");
        assert_eq!(r.next_line().unwrap().unwrap(), b"cd");
        assert_eq!(r.next_line().unwrap().unwrap(), b"x");
        assert!(r.next_line().unwrap().is_none());
    }

    #[test]
    fn hosts_parse_like_dockers() {
        assert!(
            matches!(Host::parse("unix:///run/x.sock").unwrap(), Host::Unix(p) if p == "/run/x.sock")
        );
        assert!(
            matches!(Host::parse("tcp://127.0.0.1").unwrap(), Host::Tcp(a) if a == "127.0.0.1:2375")
        );
        assert!(matches!(Host::parse("tcp://h:1234").unwrap(), Host::Tcp(a) if a == "h:1234"));
        assert!(Host::parse("ssh://x").is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("{\"a\":[1]}"), "%7B%22a%22%3A%5B1%5D%7D");
        assert_eq!(encode("busybox"), "busybox");
    }
}
