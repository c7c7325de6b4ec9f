//! The registry client against Debian's real `docker-registry` (anonymous, and behind htpasswd
//! basic auth): the busybox image pushed monolithic and chunked, pulled back by tag and digest,
//! blobs streamed, checked and mounted, and the errors a user sees. The bearer-token flow, which
//! docker-registry cannot serve without a JWT setup, runs against a small loopback registry and
//! token server written here. Only 127.0.0.1 is ever contacted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use berth_image::Digest;
use berth_image::manifest::OCI_MANIFEST;
use berth_image::registry::{Credentials, RegistryClient, RegistryError};
use berth_testkit::{Blob, BusyboxImage, Registry};

fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build().expect("building the busybox image"))
}

fn digest(blob: &Blob) -> Digest {
    Digest::parse(&blob.digest).unwrap()
}

fn creds(username: &str, password: &str) -> Credentials {
    Credentials {
        username: username.into(),
        password: password.into(),
    }
}

/// Pushes one blob, checking the progress reports climb to its size.
fn push(client: &RegistryClient, host: &str, repo: &str, blob: &Blob, chunk: Option<usize>) {
    let mut seen = Vec::new();
    let size = blob.bytes.len() as u64;
    client
        .push_blob(
            host,
            repo,
            &digest(blob),
            size,
            &mut &blob.bytes[..],
            chunk,
            &mut |n| seen.push(n),
        )
        .unwrap_or_else(|e| panic!("pushing {} to {repo}: {e}", blob.digest));
    assert_eq!(seen.last(), Some(&size), "progress of {}", blob.digest);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    if let Some(chunk) = chunk {
        assert_eq!(
            seen.len() as u64,
            size.div_ceil(chunk as u64),
            "one per PATCH"
        );
    }
}

/// What `docker push` then `docker pull` do with the client, and the errors on the way.
fn push_and_pull(client: &RegistryClient, host: &str) {
    let image = busybox();
    let layer = digest(&image.layer);
    let manifest = digest(&image.manifest);
    let chunk = 64 << 10;
    assert!(image.layer.bytes.len() > 3 * chunk, "several PATCHes");
    client.check(host).unwrap();

    for (repo, chunk) in [("bb/mono", None), ("bb/chunked", Some(chunk))] {
        push(client, host, repo, &image.layer, chunk);
        push(client, host, repo, &image.config, chunk);
        let put = client
            .put_manifest(host, repo, "latest", OCI_MANIFEST, &image.manifest.bytes)
            .unwrap();
        assert_eq!(put, manifest);

        for reference in ["latest", manifest.as_str()] {
            let (media_type, d, bytes) =
                client.get_manifest(host, repo, reference, 1 << 20).unwrap();
            assert_eq!(media_type, OCI_MANIFEST);
            assert_eq!(d, manifest);
            assert_eq!(bytes, image.manifest.bytes, "{repo}:{reference}");
        }

        let (len, mut body) = client.get_blob(host, repo, &layer).unwrap();
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).unwrap();
        assert_eq!(len, Some(image.layer.bytes.len() as u64));
        assert_eq!(Digest::of(&bytes), layer, "{repo}: streamed layer");
        let size = client.blob_size(host, repo, &digest(&image.config));
        assert_eq!(size.unwrap(), Some(image.config.bytes.len() as u64));
    }

    let absent = Digest::of(b"not pushed");
    assert_eq!(client.blob_size(host, "bb/mono", &absent).unwrap(), None);
    let e = client.get_blob(host, "bb/mono", &absent).err().unwrap();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("blob unknown"), "{e}");

    // Mounting skips the upload; an unknown blob starts (and cancels) an upload instead.
    assert_eq!(client.blob_size(host, "bb/other", &layer).unwrap(), None);
    assert!(
        client
            .mount_blob(host, "bb/other", &layer, "bb/mono")
            .unwrap()
    );
    assert_eq!(
        client.blob_size(host, "bb/other", &layer).unwrap(),
        Some(image.layer.bytes.len() as u64)
    );
    assert!(
        !client
            .mount_blob(host, "bb/other", &absent, "bb/mono")
            .unwrap()
    );

    let e = client
        .get_manifest(host, "bb/mono", "nope", 1 << 20)
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("manifest for bb/mono:nope not found: manifest unknown"),
        "{e}"
    );

    let len = image.manifest.bytes.len() as u64;
    let e = client
        .get_manifest(host, "bb/mono", "latest", len - 1)
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::TooLarge { limit, .. } if limit == len - 1),
        "{e}"
    );
    assert!(client.get_manifest(host, "bb/mono", "latest", len).is_ok());

    // Data that does not match its digest or size is refused, and nothing is stored.
    for chunk in [None, Some(1000)] {
        let e = client
            .push_blob(
                host,
                "bb/bad",
                &absent,
                5,
                &mut &b"other"[..],
                chunk,
                &mut |_| {},
            )
            .unwrap_err();
        assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
        let short = Digest::of(b"short");
        let e = client
            .push_blob(
                host,
                "bb/bad",
                &short,
                9,
                &mut &b"short"[..],
                chunk,
                &mut |_| {},
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                RegistryError::SizeMismatch {
                    expected: 9,
                    actual: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(client.blob_size(host, "bb/bad", &short).unwrap(), None);
    }
    let empty = Digest::of(b"");
    for chunk in [None, Some(10)] {
        client
            .push_blob(
                host,
                "bb/empty",
                &empty,
                0,
                &mut &b""[..],
                chunk,
                &mut |_| {},
            )
            .unwrap();
    }
    assert_eq!(client.blob_size(host, "bb/empty", &empty).unwrap(), Some(0));
}

#[test]
fn push_and_pull_on_an_anonymous_registry() {
    let registry = Registry::start().unwrap();
    push_and_pull(&RegistryClient::new(), &registry.host());
}

#[test]
fn push_and_pull_with_basic_auth() {
    let registry = Registry::start_with_auth("berth", "s3cret, \"quoted\"").unwrap();
    let host = registry.host();
    let client =
        RegistryClient::new().with_credentials(&host, creds("berth", "s3cret, \"quoted\""));
    push_and_pull(&client, &host);

    let anonymous = RegistryClient::new();
    let e = anonymous.check(&host).unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert_eq!(e.to_string(), "unauthorized: authentication required");
    let e = anonymous
        .get_manifest(&host, "bb/mono", "latest", 1 << 20)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");

    let wrong = RegistryClient::new().with_credentials(&host, creds("berth", "wrong"));
    for _ in 0..2 {
        // The second time the (refused) credentials go up front: still a clean refusal.
        let e = wrong.check(&host).unwrap_err();
        assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    }
    let e = wrong
        .get_manifest(&host, "bb/mono", "latest", 1 << 20)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    let e = wrong
        .push_blob(
            &host,
            "bb/mono",
            &digest(&busybox().config),
            busybox().config.bytes.len() as u64,
            &mut &busybox().config.bytes[..],
            None,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
}

// ---- a tiny loopback registry with a token server, for the bearer flow ----

#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// Path and query.
    target: String,
    headers: HashMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn query(&self, key: &str) -> Vec<String> {
        let q = self.target.split_once('?').map_or("", |(_, q)| q);
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .collect()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Request, SocketAddr) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1:0, one request per connection, logging every request.
struct TinyServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TinyServer {
    fn start(handler: impl Fn(&Request, SocketAddr) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Box<Handler> = Box::new(handler);
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve(conn, addr, &*handler, &log);
                    }
                }
            })
        };
        TinyServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self, path_prefix: &str) -> Vec<Request> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|r| r.target.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    addr: SocketAddr,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(()); // the wake-up connection of Drop
    };
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: u64 = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
    let req = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
    };
    log.lock().unwrap().push(req.clone());
    let reply = handler(&req, addr);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    conn.write_all(out.as_bytes())?;
    if req.method != "HEAD" {
        conn.write_all(&reply.body)?;
    }
    conn.flush()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const BLOB: &[u8] = b"blob behind a redirect";

/// A registry that wants `Bearer` tokens whose granted scopes cover each request (the token is
/// the token request's query string, so it names its scopes), challenging with a `pull`-only
/// scope even for pushes. Its token server wants `password` if given, and answers with
/// `token_field` (`token` or `access_token`).
/// Blob downloads are redirected to `storage`, or to an https URL for any blob but [`BLOB`].
fn token_registry(
    password: Option<&'static str>,
    token_field: &'static str,
    storage: String,
) -> TinyServer {
    TinyServer::start(move |req, addr| {
        if req.path() == "/token" {
            if let Some(p) = password {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{p}"));
                if req.header("authorization") != Some(&format!("Basic {basic}")) {
                    return Reply::new(401, r#"{"details":"incorrect username or password"}"#);
                }
            }
            let token = req.target.split_once('?').map_or("", |(_, q)| q);
            let body = serde_json::json!({ token_field: token, "expires_in": 300 });
            return Reply::new(200, body.to_string());
        }
        let rest = req.path().strip_prefix("/v2/").unwrap_or_default();
        let repo = rest
            .split_once("/manifests/")
            .or_else(|| rest.split_once("/blobs/"))
            .map_or("", |(r, _)| r);
        let mut need = Vec::new();
        if !repo.is_empty() {
            let actions = if matches!(req.method.as_str(), "GET" | "HEAD") {
                "pull"
            } else {
                "pull,push"
            };
            need.push(format!("repository:{repo}:{actions}"));
        }
        for from in req.query("from") {
            need.push(format!("repository:{from}:pull"));
        }
        let granted = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(|token| {
                let scopes: Vec<String> = token
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(decode)
                    .collect();
                need.iter().all(|n| {
                    let (resource, actions) = n.rsplit_once(':').unwrap();
                    scopes.iter().any(|s| {
                        s.rsplit_once(':').is_some_and(|(r, granted)| {
                            r == resource
                                && actions
                                    .split(',')
                                    .all(|a| granted.split(',').any(|g| g == a))
                        })
                    })
                })
            });
        if granted != Some(true) {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="tiny, \"registry\"",scope="repository:{repo}:pull""#
            );
            return Reply::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .with("WWW-Authenticate", challenge);
        }
        match (req.method.as_str(), rest) {
            ("GET", "") => Reply::new(200, "{}"),
            ("GET", "app/manifests/latest") => {
                Reply::new(200, MANIFEST).with("Content-Type", OCI_MANIFEST)
            }
            ("PUT", "app/manifests/v1") => {
                Reply::new(201, "").with("Docker-Content-Digest", Digest::of(MANIFEST).to_string())
            }
            ("POST", "app/blobs/uploads/") => Reply::new(201, ""),
            ("GET", r) if r == format!("app/blobs/{}", Digest::of(BLOB)) => {
                Reply::new(307, "").with("Location", format!("http://{storage}/blob"))
            }
            ("GET", r) if r.starts_with("app/blobs/") => {
                Reply::new(307, "").with("Location", "http://storage.example.com/blob")
            }
            _ => Reply::new(
                404,
                r#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#,
            ),
        }
    })
}

#[test]
fn bearer_token_is_fetched_once_and_sent_on_retry() {
    let server = token_registry(None, "token", String::new());
    let host = server.host();
    let client = RegistryClient::new();
    for _ in 0..2 {
        let (media_type, d, bytes) = client.get_manifest(&host, "app", "latest", 4096).unwrap();
        assert_eq!(
            (media_type.as_str(), bytes.as_slice()),
            (OCI_MANIFEST, MANIFEST)
        );
        assert_eq!(d, Digest::of(MANIFEST));
    }
    let tokens = server.requests("/token");
    assert_eq!(tokens.len(), 1, "the token is cached: {tokens:?}");
    assert_eq!(tokens[0].query("service"), [encode("tiny, \"registry\"")]);
    assert_eq!(tokens[0].query("scope"), [encode("repository:app:pull")]);
    assert_eq!(tokens[0].header("authorization"), None, "anonymous token");
    let auths: Vec<bool> = server
        .requests("/v2/")
        .iter()
        .map(|r| r.header("authorization").is_some())
        .collect();
    assert_eq!(
        auths,
        [false, true, true],
        "401, retry, then the token up front"
    );
}

#[test]
fn bearer_scopes_for_push_and_mount_are_built_by_the_client() {
    let storage = TinyServer::start(|_, _| Reply::new(200, BLOB));
    let server = token_registry(None, "access_token", storage.host());
    let host = server.host();
    let client = RegistryClient::new();
    let d = client
        .put_manifest(&host, "app", "v1", OCI_MANIFEST, MANIFEST)
        .unwrap();
    assert_eq!(d, Digest::of(MANIFEST));
    let blob = Digest::of(BLOB);
    assert!(client.mount_blob(&host, "app", &blob, "base/img").unwrap());
    // Pulling needs no new token: the push token covers it.
    client.get_manifest(&host, "app", "latest", 4096).unwrap();
    let scopes: Vec<Vec<String>> = server
        .requests("/token")
        .iter()
        .map(|r| r.query("scope"))
        .collect();
    assert_eq!(
        scopes,
        [
            vec![encode("repository:app:pull,push")],
            vec![
                encode("repository:app:pull,push"),
                encode("repository:base/img:pull")
            ],
        ]
    );

    // Blob downloads follow redirects, without the token to another origin; plain HTTP only
    // to loopback (a redirect to http://elsewhere is refused before any connection).
    let (len, mut body) = client.get_blob(&host, "app", &blob).unwrap();
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).unwrap();
    assert_eq!((len, bytes.as_slice()), (Some(BLOB.len() as u64), BLOB));
    let fetched = storage.requests("/blob");
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        fetched[0].header("authorization"),
        None,
        "no token to storage"
    );
    let e = client
        .get_blob(&host, "app", &Digest::of(b"elsewhere"))
        .err()
        .unwrap();
    assert!(
        matches!(e, RegistryError::Tls(ref url) if url.starts_with("http://storage.example.com")),
        "{e}"
    );
}

#[test]
fn bearer_with_credentials_and_a_wrong_password() {
    let server = token_registry(Some("pw"), "token", String::new());
    let host = server.host();
    let client = RegistryClient::new().with_credentials(&host, creds("user", "pw"));
    client.check(&host).unwrap();
    client.get_manifest(&host, "app", "latest", 4096).unwrap();
    let tokens = server.requests("/token");
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.iter().all(|t| t.query("account") == ["user"]));

    let wrong = RegistryClient::new().with_credentials(&host, creds("user", "nope"));
    let e = wrong.check(&host).unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "unauthorized: incorrect username or password"
    );
    let e = wrong
        .get_manifest(&host, "app", "latest", 4096)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
}
