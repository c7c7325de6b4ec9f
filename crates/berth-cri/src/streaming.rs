//! The streaming server of Exec, Attach and PortForward, as kubelet's: the CRI call answers with a URL
//! on this server (loopback by default, `--stream-address`) holding a one-time token; the
//! client (kubelet's proxy, `crictl exec -it`, `crictl port-forward`, critest) upgrades an HTTP
//! request on it to SPDY/3.1 and speaks Kubernetes' `v4.channel.k8s.io` remote-command protocol
//! (streams `error`, `stdin`, `stdout`, `stderr`, `resize`) or `portforward.k8s.io` (a `data`
//! and an `error` stream per connection, with the port and a request id). Exec runs through
//! berth-containerd with FIFOs, as ExecSync does; a port is dialled inside the pod's network
//! namespace. Tokens expire after a minute, unused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::runtime::Runtime;
use crate::spdy::{self, Frame, HeaderCodec};
use crate::v1;

/// How long a URL stays good.
const TOKEN_LIFE: Duration = Duration::from_secs(60);

/// What a URL was handed out for.
#[derive(Debug, Clone)]
pub enum Call {
    Exec(v1::ExecRequest),
    Attach(v1::AttachRequest),
    PortForward(v1::PortForwardRequest),
}

/// The tokens handed out, and where the server listens.
pub struct Streaming {
    pub addr: SocketAddr,
    tokens: Mutex<HashMap<String, (Instant, Call)>>,
}

impl Streaming {
    pub fn new(addr: SocketAddr) -> Streaming {
        Streaming {
            addr,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A URL for `call` (`exec` or `portforward`).
    pub fn url(&self, kind: &str, call: Call) -> String {
        let token = crate::store::new_id()[..32].to_string();
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|_, (at, _)| at.elapsed() < TOKEN_LIFE);
        t.insert(token.clone(), (Instant::now(), call));
        format!("http://{}/{kind}/{token}", self.addr)
    }

    fn take(&self, token: &str) -> Option<Call> {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.remove(token)
            .filter(|(at, _)| at.elapsed() < TOKEN_LIFE)
            .map(|(_, c)| c)
    }
}

/// Serves the streaming URLs on `listener` for as long as the process runs.
pub async fn serve(listener: tokio::net::TcpListener, rt: Arc<Runtime>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let rt = rt.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(rt.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), svc)
                .with_upgrades()
                .await;
        });
    }
}

type Reply = Response<Empty<Bytes>>;

fn status(code: StatusCode) -> Result<Reply, std::convert::Infallible> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    Ok(r)
}

async fn handle(
    rt: Arc<Runtime>,
    req: Request<Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let Some(call) = rt.streaming.take(token) else {
        return status(StatusCode::NOT_FOUND);
    };
    let header = |name: &str| -> Vec<String> {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
            .collect()
    };
    if !header("upgrade")
        .iter()
        .any(|u| u.eq_ignore_ascii_case("SPDY/3.1"))
    {
        return status(StatusCode::BAD_REQUEST);
    }
    let offered = header("x-stream-protocol-version");
    let protocol = match (kind, &call) {
        ("exec", Call::Exec(_)) | ("attach", Call::Attach(_)) => ["v4.channel.k8s.io"]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p)),
        ("portforward", Call::PortForward(_)) => Some("portforward.k8s.io"),
        _ => return status(StatusCode::NOT_FOUND),
    };
    let Some(protocol) = protocol else {
        return status(StatusCode::FORBIDDEN);
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        let io = TokioIo::new(io);
        match call {
            Call::Exec(e) => exec_session(io, rt, e).await,
            Call::Attach(a) => crate::attach::run(io, rt, a).await,
            Call::PortForward(p) => portforward_session(io, rt, p).await,
        }
    });
    let mut r = Response::new(Empty::new());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("connection", "Upgrade".parse().expect("a header value"));
    h.insert("upgrade", "SPDY/3.1".parse().expect("a header value"));
    h.insert(
        "x-stream-protocol-version",
        protocol.parse().expect("a header value"),
    );
    Ok(r)
}

/// What a session's reader hands to the work it serves.
pub(crate) enum Event {
    /// A stream opened, with its headers.
    Opened(u32, HashMap<String, String>),
    Data(u32, Vec<u8>),
    /// The client ended its half of a stream.
    Fin(u32),
    Closed,
}

/// Reads frames until the connection ends: answers SYN_STREAM with SYN_REPLY and PING with
/// PING, and passes stream events on.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    out: mpsc::Sender<Vec<u8>>,
    events: mpsc::Sender<Event>,
) {
    let mut codec = HeaderCodec::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        loop {
            let parsed = match spdy::parse(&buf) {
                Ok(p) => p,
                Err(_) => {
                    let _ = events.send(Event::Closed).await;
                    return;
                }
            };
            let Some((frame, used)) = parsed else { break };
            buf.drain(..used);
            match frame {
                Frame::Control {
                    kind: spdy::SYN_STREAM,
                    flags,
                    data,
                } if data.len() >= 10 => {
                    let Some(id) = spdy::stream_of(&data) else {
                        continue;
                    };
                    let headers = match codec.decode(&data[10..]) {
                        Ok(h) => h,
                        Err(_) => {
                            let _ = events.send(Event::Closed).await;
                            return;
                        }
                    };
                    let headers = headers
                        .into_iter()
                        .map(|(k, v)| (k, v.into_iter().next().unwrap_or_default()))
                        .collect();
                    let mut reply = id.to_be_bytes().to_vec();
                    reply.extend(codec.encode(&[]));
                    let _ = out.send(spdy::control(spdy::SYN_REPLY, 0, &reply)).await;
                    let _ = events.send(Event::Opened(id, headers)).await;
                    if flags & spdy::FLAG_FIN != 0 {
                        let _ = events.send(Event::Fin(id)).await;
                    }
                }
                Frame::Control {
                    kind: spdy::PING,
                    data,
                    ..
                } => {
                    let _ = out.send(spdy::control(spdy::PING, 0, &data)).await;
                }
                Frame::Control {
                    kind: spdy::GOAWAY, ..
                } => {
                    let _ = events.send(Event::Closed).await;
                    return;
                }
                Frame::Control {
                    kind: spdy::RST_STREAM,
                    data,
                    ..
                } => {
                    if let Some(id) = spdy::stream_of(&data) {
                        let _ = events.send(Event::Fin(id)).await;
                    }
                }
                Frame::Control { .. } => {} // SETTINGS, WINDOW_UPDATE, HEADERS
                Frame::Data {
                    stream,
                    flags,
                    data,
                } => {
                    if !data.is_empty() {
                        let _ = events.send(Event::Data(stream, data)).await;
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        let _ = events.send(Event::Fin(stream)).await;
                    }
                }
            }
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = events.send(Event::Closed).await;
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Splits a connection into a frame writer (fed by the returned sender) and a frame reader
/// (whose events come out of the returned receiver).
pub(crate) fn session<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static>(
    io: T,
) -> (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Event>) {
    let (r, mut w) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if w.write_all(&f).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    tokio::spawn(read_frames(r, out_tx.clone(), ev_tx));
    (out_tx, ev_rx)
}

/// The remote-command status of an exit, as kubelet writes it on the error stream.
pub fn exit_status(code: u32) -> String {
    match code {
        0 => r#"{"metadata":{},"status":"Success"}"#.to_string(),
        n => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {n}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": n.to_string()}]},
        })
        .to_string(),
    }
}

/// One exec over `v4.channel.k8s.io`.
async fn exec_session<T>(io: T, rt: Arc<Runtime>, req: v1::ExecRequest)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (out, mut events) = session(io);
    // The streams the client opens: error always, the others as the request asked.
    let mut wanted = vec!["error"];
    if req.stdin {
        wanted.push("stdin");
    }
    if req.stdout {
        wanted.push("stdout");
    }
    if req.stderr && !req.tty {
        wanted.push("stderr");
    }
    let mut ids: HashMap<String, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !wanted.iter().all(|w| ids.contains_key(*w)) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Opened(id, h))) => {
                let kind = h.get("streamtype").cloned().unwrap_or_default();
                ids.insert(kind, id);
            }
            Ok(Some(_)) => {}
            _ => return,
        }
    }
    let (stdin_tx, stdin_rx) = mpsc::channel::<Option<Vec<u8>>>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<(u32, u32)>(4);
    let ids2 = ids.clone();
    // Stdin and resize messages from the client, while the command runs (the resize stream
    // may open after the others).
    tokio::spawn(async move {
        let stdin_id = ids2.get("stdin").copied();
        let mut resize_id = ids2.get("resize").copied();
        let mut pending = Vec::new();
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Opened(id, h)
                    if h.get("streamtype").map(String::as_str) == Some("resize") =>
                {
                    resize_id = Some(id);
                }
                Event::Data(id, d) if Some(id) == stdin_id => {
                    let _ = stdin_tx.send(Some(d)).await;
                }
                Event::Fin(id) if Some(id) == stdin_id => {
                    let _ = stdin_tx.send(None).await;
                }
                Event::Data(id, d) if Some(id) == resize_id => {
                    pending.extend(d);
                    while let Some(i) = pending.iter().position(|b| *b == b'}') {
                        let msg: Vec<u8> = pending.drain(..=i).collect();
                        let v: serde_json::Value = serde_json::from_slice(&msg).unwrap_or_default();
                        let (w, h) = (v["Width"].as_u64(), v["Height"].as_u64());
                        if let (Some(w), Some(h)) = (w, h) {
                            let _ = resize_tx.send((w as u32, h as u32)).await;
                        }
                    }
                }
                Event::Closed => break,
                _ => {}
            }
        }
    });
    let sink = |kind: &str| ids.get(kind).copied();
    // Each output stream's chunks become data frames of its stream, in order.
    let mut forwarders = Vec::new();
    let mut channel = |kind: &str| {
        let id = sink(kind)?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        let out = out.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                let _ = out.send(spdy::data(id, 0, &chunk)).await;
            }
        }));
        Some(tx)
    };
    let streams = crate::exec_stream::ExecStreams {
        stdin: req.stdin.then_some(stdin_rx),
        stdout: channel("stdout"),
        stderr: channel("stderr"),
        resize: Some(resize_rx),
        timeout: None,
    };
    let code = rt
        .exec_streaming(&req.container_id, req.cmd.clone(), req.tty, streams)
        .await;
    for f in forwarders {
        let _ = f.await;
    }
    let message = match code {
        Ok(c) => exit_status(c),
        Err(e) => serde_json::json!({"metadata": {}, "status": "Failure", "message": e.message()})
            .to_string(),
    };
    if let Some(id) = sink("error") {
        let _ = out.send(spdy::data(id, 0, message.as_bytes())).await;
    }
    for id in ids.values() {
        let _ = out.send(spdy::data(*id, spdy::FLAG_FIN, &[])).await;
    }
}

/// Port forwarding over `portforward.k8s.io`: each data stream a connection to its port inside
/// the pod's network namespace.
async fn portforward_session<T>(io: T, rt: Arc<Runtime>, req: v1::PortForwardRequest)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (out, mut events) = session(io);
    let netns = rt.store.find_pod(&req.pod_sandbox_id).and_then(|p| p.netns);
    // Per request id: the error stream; per data stream: where its bytes go.
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut conns: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Opened(id, h) => {
                let rid = h.get("requestid").cloned().unwrap_or_default();
                match h.get("streamtype").map(String::as_str) {
                    Some("error") => {
                        errors.insert(rid, id);
                    }
                    Some("data") => {
                        let port: u16 = h.get("port").and_then(|p| p.parse().ok()).unwrap_or(0);
                        let (tx, rx) = mpsc::channel(16);
                        conns.insert(id, tx);
                        let error = errors.get(&rid).copied();
                        tokio::spawn(forward(out.clone(), id, error, netns.clone(), port, rx));
                    }
                    _ => {}
                }
            }
            Event::Data(id, d) => {
                if let Some(tx) = conns.get(&id) {
                    let _ = tx.send(Some(d)).await;
                }
            }
            Event::Fin(id) => {
                if let Some(tx) = conns.remove(&id) {
                    let _ = tx.send(None).await;
                }
            }
            Event::Closed => break,
        }
    }
}

/// Dials 127.0.0.1:`port` inside `netns` (the host's when None) from a thread that entered it.
async fn dial(
    netns: Option<std::path::PathBuf>,
    port: u16,
) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::task::spawn_blocking(move || {
        let connect = || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| berth_net::NetError::Netlink("dialling", e))
        };
        match netns {
            Some(ns) => berth_net::netlink::in_namespace(&ns, connect),
            None => connect(),
        }
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    s.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(s)
}

/// One forwarded connection: the client's bytes in, the port's bytes out on the data stream.
async fn forward(
    out: mpsc::Sender<Vec<u8>>,
    id: u32,
    error: Option<u32>,
    netns: Option<std::path::PathBuf>,
    port: u16,
    mut input: mpsc::Receiver<Option<Vec<u8>>>,
) {
    let conn = match dial(netns, port).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(err) = error {
                let msg = format!("failed to connect to localhost:{port} inside the pod: {e}");
                let _ = out
                    .send(spdy::data(err, spdy::FLAG_FIN, msg.as_bytes()))
                    .await;
            }
            let _ = out.send(spdy::data(id, spdy::FLAG_FIN, &[])).await;
            return;
        }
    };
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move {
        while let Some(Some(d)) = input.recv().await {
            if w.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.send(spdy::data(id, 0, &buf[..n])).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = out.send(spdy::data(id, spdy::FLAG_FIN, &[])).await;
    if let Some(err) = error {
        let _ = out.send(spdy::data(err, spdy::FLAG_FIN, &[])).await;
    }
    writer.abort();
}
