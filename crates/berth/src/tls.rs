//! TLS to a daemon on `tcp://` the docker CLI's way (`--tls`, `--tlsverify`, `--tlscacert`,
//! `--tlscert`, `--tlskey`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), through the system's
//! OpenSSL. The session runs in a relay thread between the TCP connection and one end of a
//! socketpair; the client uses the other end like any unix connection, so attach and exec can
//! read and write at once and half-close stdin (a close_notify) as they do over a plain socket.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use openssl::ssl::{ErrorCode, SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode};
use rustix::event::{PollFd, PollFlags};

/// How to talk TLS to the daemon.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Check the daemon's certificate against `ca` and its name (`--tlsverify`).
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

/// Connects to `addr` (`host:port`) and completes the handshake; returns the client's end of
/// the relay.
pub fn connect(addr: &str, o: &TlsOptions) -> io::Result<UnixStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls_error("TLS", e))?;
    if o.verify {
        b.set_ca_file(&o.ca)
            .map_err(|e| tls_error(&format!("loading the CA certificate {}", o.ca.display()), e))?;
        b.set_verify(SslVerifyMode::PEER);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    // A client certificate when there is one (a daemon with --tlsverify requires it).
    if o.cert.is_file() && o.key.is_file() {
        b.set_certificate_chain_file(&o.cert)
            .map_err(|e| tls_error(&format!("loading {}", o.cert.display()), e))?;
        b.set_private_key_file(&o.key, SslFiletype::PEM)
            .map_err(|e| tls_error(&format!("loading {}", o.key.display()), e))?;
    }
    let connector = b.build();
    let tcp = TcpStream::connect(addr)?;
    let _ = tcp.set_nodelay(true);
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let config = connector
        .configure()
        .map_err(|e| tls_error("TLS", e))?
        .verify_hostname(o.verify);
    let tls = config
        .connect(host, tcp)
        .map_err(|e| tls_error(&format!("TLS handshake with {addr}"), e))?;
    let (ours, theirs) = UnixStream::pair()?;
    std::thread::spawn(move || relay(tls, theirs));
    Ok(ours)
}

/// Moves bytes between the TLS session and the local end until the daemon closes.
fn relay(mut tls: SslStream<TcpStream>, local: UnixStream) {
    if tls.get_ref().set_nonblocking(true).is_err() {
        return;
    }
    let mut to_remote: Vec<u8> = Vec::new();
    let mut local_eof = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Everything the daemon sent that OpenSSL can decrypt now.
        loop {
            match tls.ssl_read(&mut buf) {
                Ok(0) => return finish(&local),
                Ok(n) => {
                    if (&local).write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return finish(&local),
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => break,
                Err(_) => return finish(&local),
            }
        }
        if !to_remote.is_empty() {
            match tls.ssl_write(&to_remote) {
                Ok(n) => {
                    to_remote.drain(..n);
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
                Err(_) => return finish(&local),
            }
        }
        if to_remote.is_empty() && !local_eof {
            match rustix::net::recv(&local, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    local_eof = true;
                    // The client half-closed (stdin ended): tell the daemon with close_notify.
                    let _ = tls.shutdown();
                }
                Ok((n, _)) => {
                    to_remote.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => return,
            }
        }
        let tcp_events = if to_remote.is_empty() {
            PollFlags::IN
        } else {
            PollFlags::IN | PollFlags::OUT
        };
        let local_events = if to_remote.is_empty() && !local_eof {
            PollFlags::IN
        } else {
            PollFlags::empty()
        };
        let mut fds = [
            PollFd::from_borrowed_fd(tls.get_ref().as_fd(), tcp_events),
            PollFd::from_borrowed_fd(local.as_fd(), local_events),
        ];
        if rustix::event::poll(&mut fds, None).is_err() {
            return;
        }
    }
}

/// The daemon is done: the client reads EOF.
fn finish(local: &UnixStream) {
    let _ = local.shutdown(std::net::Shutdown::Write);
}
