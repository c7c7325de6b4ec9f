//! The registry client (Docker Registry HTTP API v2 / OCI distribution spec), synchronous on
//! `ureq`: manifests by tag or digest, blobs streamed in and out (monolithic or chunked
//! uploads and cross-repository mounts in `upload`), and the `WWW-Authenticate` dance of
//! `auth` (Basic, or Bearer tokens cached per domain and scope); errors in `error`.
//!
//! Only loopback registries (127.0.0.0/8, `::1`, `localhost`, Docker's default insecure range)
//! are reached, over plain HTTP; anything that would need TLS — another registry, a token realm,
//! a redirect or an upload location elsewhere — is refused with [`RegistryError::Tls`].
//! Redirects are followed by hand for that reason, and credentials never follow one to another
//! host.

mod auth;
mod error;
mod upload;

use std::io::Read;
use std::time::Duration;

pub use auth::{Challenge, Credentials, Scopes, parse_challenges};
pub use error::RegistryError;

use auth::Auth;
use error::{ErrorBody, from_status};

use crate::digest::Digest;
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

type Resp = ureq::http::Response<ureq::Body>;

/// Redirects followed for one GET (registries send blob downloads to storage this way).
const MAX_REDIRECTS: usize = 5;
/// How much of an error answer is read for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Is this registry host (`host`, `host:port`, `[v6]:port`) on loopback, where plain HTTP is
/// allowed?
pub fn is_loopback(host: &str) -> bool {
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.parse::<std::net::IpAddr>().is_ok() {
        host
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a URL the client will not reach: `https://` anywhere, plain `http://` only on
/// loopback (as Docker treats 127.0.0.0/8 as an insecure registry by default).
pub(crate) fn require_loopback_http(url: &str) -> Result<(), RegistryError> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| RegistryError::Protocol {
        url: url.to_string(),
        problem: "not a valid URL".into(),
    })?;
    let ok = match uri.scheme_str() {
        Some("https") => uri.host().is_some(),
        Some("http") => uri.host().is_some_and(is_loopback),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Tls(url.to_string()))
    }
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    &url[..end]
}

fn has_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Resolves a `Location` header against the URL of the request that answered it.
fn resolve(base: &str, location: &str) -> String {
    if has_scheme(location) {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split_once("://").map_or("http", |(s, _)| s);
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let path = base.split(['?', '#']).next().unwrap_or(base);
        let dir = &path[..path.rfind('/').map_or(path.len(), |i| i + 1)];
        format!("{dir}{location}")
    }
}

fn header<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn content_length(resp: &Resp) -> Option<u64> {
    header(resp, "Content-Length").and_then(|v| v.trim().parse().ok())
}

/// The start of an error answer, for its message; a body that cannot be read says nothing.
fn error_body(resp: &mut Resp) -> String {
    let mut bytes = Vec::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn with_auth<B>(
    req: ureq::RequestBuilder<B>,
    auth: Option<&str>,
    url: &str,
    registry: &str,
) -> ureq::RequestBuilder<B> {
    // Credentials go only to the registry's own origin.
    match auth {
        Some(a) if origin(url) == origin(registry) => req.header("Authorization", a),
        _ => req,
    }
}

/// A registry client, with credentials per registry domain and the bearer tokens they issued.
/// HTTPS (the system's OpenSSL and trust store, or a registry's own CAs from a Docker-style
/// `certs.d/<host:port>/*.crt`) everywhere; plain HTTP for loopback registries that have no
/// `certs.d` entry. Cheap to share between threads (`&self` everywhere).
pub struct RegistryClient {
    agent: ureq::Agent,
    auth: Auth,
    /// Docker's `/etc/docker/certs.d`: per-registry CAs, and the sign that a loopback
    /// registry speaks TLS.
    certs_dir: Option<std::path::PathBuf>,
    /// Agents trusting a registry's own CAs, by domain.
    private_ca: std::sync::Mutex<std::collections::HashMap<String, ureq::Agent>>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

fn agent(roots: ureq::tls::RootCerts, client: Option<ureq::tls::ClientCert>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Followed by hand: without credentials to another origin, plain HTTP only to loopback.
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(300)))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(roots)
                .client_cert(client)
                .build(),
        )
        .build()
        .into()
}

impl RegistryClient {
    pub fn new() -> Self {
        RegistryClient {
            agent: agent(ureq::tls::RootCerts::PlatformVerifier, None),
            auth: Auth::default(),
            certs_dir: None,
            private_ca: Default::default(),
        }
    }

    /// Reads registries' own CAs from `dir/<host:port>/*.crt` (Docker's `certs.d` layout).
    pub fn with_certs_dir(mut self, dir: &std::path::Path) -> Self {
        self.certs_dir = Some(dir.to_path_buf());
        self
    }

    /// The registry's `certs.d` directory, if it has one.
    fn certs_for(&self, domain: &str) -> Option<std::path::PathBuf> {
        let d = self.certs_dir.as_ref()?.join(domain);
        d.is_dir().then_some(d)
    }

    /// The agent for a URL: with the registry's own CAs and client certificate when its
    /// `certs.d` directory has them (`*.crt` CAs; `NAME.cert` with `NAME.key`), as Docker reads
    /// them.
    fn agent_for(&self, url: &str) -> ureq::Agent {
        let host = origin(url)
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let Some(dir) = self.certs_for(&host) else {
            return self.agent.clone();
        };
        let mut cache = self.private_ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(&host) {
            return a.clone();
        }
        let pem_items = |p: &std::path::Path| -> Vec<ureq::tls::PemItem<'static>> {
            let pem = std::fs::read(p).unwrap_or_default();
            ureq::tls::parse_pem(&pem).flatten().collect()
        };
        let (mut cas, mut client) = (Vec::new(), None);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            match p.extension().and_then(|x| x.to_str()) {
                Some("crt") => cas.extend(pem_items(&p).into_iter().filter_map(|i| match i {
                    ureq::tls::PemItem::Certificate(c) => Some(c),
                    _ => None,
                })),
                Some("cert") => {
                    let chain: Vec<_> = pem_items(&p)
                        .into_iter()
                        .filter_map(|i| match i {
                            ureq::tls::PemItem::Certificate(c) => Some(c),
                            _ => None,
                        })
                        .collect();
                    let key =
                        pem_items(&p.with_extension("key"))
                            .into_iter()
                            .find_map(|i| match i {
                                ureq::tls::PemItem::PrivateKey(k) => Some(k),
                                _ => None,
                            });
                    if let Some(key) = key.filter(|_| !chain.is_empty()) {
                        client = Some(ureq::tls::ClientCert::new_with_certs(&chain, key));
                    }
                }
                _ => {}
            }
        }
        let roots = if cas.is_empty() {
            ureq::tls::RootCerts::PlatformVerifier
        } else {
            ureq::tls::RootCerts::new_with_certs(&cas)
        };
        let a = agent(roots, client);
        cache.insert(host, a.clone());
        a
    }

    /// Uses `creds` for the registry `domain` (`127.0.0.1:5000`, as in image references).
    pub fn with_credentials(mut self, domain: &str, creds: Credentials) -> Self {
        self.auth.set_credentials(domain, creds);
        self
    }

    /// `https://DOMAIN/v2/PATH`; `http://` for a loopback registry without a `certs.d` entry.
    /// Docker Hub (`docker.io`) is served by `registry-1.docker.io`.
    fn url(&self, domain: &str, path: &str) -> Result<String, RegistryError> {
        let host = if domain == "docker.io" || domain == "index.docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        if is_loopback(domain) && self.certs_for(domain).is_none() {
            Ok(format!("http://{host}/v2/{path}"))
        } else {
            Ok(format!("https://{host}/v2/{path}"))
        }
    }

    /// Sends a request built by `build` (given the `Authorization` value, if any) with the
    /// answer the domain's last challenge calls for; on a 401, answers this challenge and sends
    /// it once more. The request's body must therefore be one that can be sent twice.
    fn send(
        &self,
        domain: &str,
        want: &Scopes,
        build: &mut dyn FnMut(Option<&str>) -> Result<Resp, RegistryError>,
    ) -> Result<Resp, RegistryError> {
        // Token servers are reached with the registry's trust (its certs.d CAs, if any).
        let agent = self.agent_for(&format!("https://{domain}/"));
        let sent = self.auth.header_for(&agent, domain, want)?;
        let mut resp = build(sent.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("WWW-Authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let refusal = ErrorBody::parse(&error_body(&mut resp));
        let retry =
            self.auth
                .answer(&agent, domain, want, &challenges, sent.as_deref(), &refusal)?;
        let mut resp = build(Some(&retry))?;
        if resp.status() == 401 {
            let refusal = ErrorBody::parse(&error_body(&mut resp));
            return Err(RegistryError::Unauthorized {
                domain: domain.to_string(),
                message: refusal.message_or("authentication required"),
            });
        }
        Ok(resp)
    }

    fn fail(&self, what: &str, url: &str, domain: &str, mut resp: Resp) -> RegistryError {
        let status = resp.status().as_u16();
        from_status(status, &error_body(&mut resp), what, url, domain)
    }

    /// GET (or HEAD) following redirects to loopback; `auth` goes only to `url`'s origin.
    fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        auth: Option<&str>,
        head: bool,
    ) -> Result<Resp, RegistryError> {
        let mut at = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = if head {
                self.agent_for(&at).head(&at)
            } else {
                self.agent_for(&at).get(&at)
            };
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            let resp = with_auth(req, auth, &at, url)
                .call()
                .map_err(|e| RegistryError::transport(&at, e))?;
            let redirect = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(location) = header(&resp, "Location").filter(|_| redirect) else {
                return Ok(resp);
            };
            let next = resolve(&at, location);
            require_loopback_http(&next)?;
            at = next;
        }
        Err(RegistryError::Protocol {
            url: url.to_string(),
            problem: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// `GET /v2/`: the registry answers and accepts the credentials (for `docker login`).
    pub fn check(&self, domain: &str) -> Result<(), RegistryError> {
        let url = self.url(domain, "")?;
        let resp = self.send(domain, &Scopes::default(), &mut |auth| {
            self.get(&url, None, auth, false)
        })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(&format!("the registry API at {url}"), &url, domain, resp))
        }
    }

    /// Fetches a manifest or index by tag or digest: (media type, digest of the bytes, bytes).
    /// Refuses more than `limit` bytes, and bytes that do not hash to a digest `reference`.
    pub fn get_manifest(
        &self,
        domain: &str,
        repo: &str,
        reference: &str,
        limit: u64,
    ) -> Result<(String, Digest, Vec<u8>), RegistryError> {
        let url = self.url(domain, &format!("{repo}/manifests/{reference}"))?;
        let by_digest = Digest::parse(reference).ok();
        let what = match by_digest {
            Some(_) => format!("manifest for {repo}@{reference}"),
            None => format!("manifest for {repo}:{reference}"),
        };
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let mut resp = self.send(domain, &Scopes::repository(repo, &["pull"]), &mut |auth| {
            self.get(&url, Some(&accept), auth, false)
        })?;
        if !resp.status().is_success() {
            return Err(self.fail(&what, &url, domain, resp));
        }
        if content_length(&resp).is_some_and(|n| n > limit) {
            return Err(RegistryError::TooLarge { what, limit });
        }
        let media_type = header(&resp, "Content-Type")
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| RegistryError::Read {
                url: url.clone(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(RegistryError::TooLarge { what, limit });
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = by_digest.filter(|d| *d != digest) {
            return Err(RegistryError::DigestMismatch {
                what,
                expected,
                actual: digest,
            });
        }
        Ok((media_type, digest, bytes))
    }

    /// Streams a blob (following redirects to loopback): (`Content-Length` if sent, body).
    /// The caller verifies the digest as it reads.
    pub fn get_blob(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<(Option<u64>, Box<dyn Read + Send>), RegistryError> {
        let url = self.url(domain, &format!("{repo}/blobs/{digest}"))?;
        let resp = self.send(domain, &Scopes::repository(repo, &["pull"]), &mut |auth| {
            self.get(&url, None, auth, false)
        })?;
        if !resp.status().is_success() {
            return Err(self.fail(&format!("blob {digest}"), &url, domain, resp));
        }
        let len = content_length(&resp);
        Ok((len, Box::new(resp.into_body().into_reader())))
    }

    /// `HEAD` a blob: its size if the repository has it, `None` if not.
    pub fn blob_size(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(domain, &format!("{repo}/blobs/{digest}"))?;
        let resp = self.send(domain, &Scopes::repository(repo, &["pull"]), &mut |auth| {
            self.get(&url, None, auth, true)
        })?;
        match resp.status().as_u16() {
            200 => content_length(&resp)
                .map(Some)
                .ok_or_else(|| RegistryError::Protocol {
                    url,
                    problem: "the blob's HEAD answer has no Content-Length".into(),
                }),
            404 => Ok(None),
            _ => Err(self.fail(&format!("blob {digest}"), &url, domain, resp)),
        }
    }

    /// Puts a manifest under a tag or digest with its media type; returns the digest the
    /// registry reports (`Docker-Content-Digest`), or that of the bytes.
    pub fn put_manifest(
        &self,
        domain: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let what = format!("manifest for {repo}:{reference}");
        let ours = Digest::of(bytes);
        if let Some(expected) = Digest::parse(reference).ok().filter(|d| *d != ours) {
            return Err(RegistryError::DigestMismatch {
                what,
                expected,
                actual: ours,
            });
        }
        let url = self.url(domain, &format!("{repo}/manifests/{reference}"))?;
        let want = Scopes::repository(repo, &["pull", "push"]);
        let resp = self.send(domain, &want, &mut |auth| {
            with_auth(self.agent_for(&url).put(&url), auth, &url, &url)
                .header("Content-Type", media_type)
                .send(bytes)
                .map_err(|e| RegistryError::transport(&url, e))
        })?;
        if !matches!(resp.status().as_u16(), 200 | 201) {
            return Err(self.fail(&what, &url, domain, resp));
        }
        Ok(header(&resp, "Docker-Content-Digest")
            .and_then(|v| Digest::parse(v.trim()).ok())
            .unwrap_or(ours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_reached_over_http() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST:80",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        for ok in [
            "http://127.0.0.1:9/v2/",
            "http://[::1]:9/token?x=y",
            "https://127.0.0.1/v2/",
            "https://auth.docker.io/token",
        ] {
            assert!(require_loopback_http(ok).is_ok(), "{ok}");
        }
        for url in [
            "http://example.com/v2/",
            "http://user@10.0.0.1/",
            "ftp://127.0.0.1/",
        ] {
            let e = require_loopback_http(url).unwrap_err();
            assert!(matches!(e, RegistryError::Tls(_)), "{url}: {e}");
            assert!(
                e.to_string()
                    .contains("plain HTTP is only used for loopback")
            );
        }
        let c = RegistryClient::new();
        assert_eq!(
            c.url("127.0.0.1:5000", "").unwrap(),
            "http://127.0.0.1:5000/v2/"
        );
        assert_eq!(
            c.url("docker.io", "library/busybox/manifests/latest")
                .unwrap(),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        assert_eq!(c.url("quay.io", "").unwrap(), "https://quay.io/v2/");
        let certs = tempfile::tempdir().unwrap();
        std::fs::create_dir(certs.path().join("127.0.0.1:5443")).unwrap();
        let c = RegistryClient::new().with_certs_dir(certs.path());
        assert_eq!(
            c.url("127.0.0.1:5443", "").unwrap(),
            "https://127.0.0.1:5443/v2/"
        );
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/uploads/?mount=x";
        assert_eq!(origin(base), "http://127.0.0.1:5000");
        assert_eq!(origin("http://h"), "http://h");
        assert_eq!(
            resolve(base, "/v2/a/blobs/uploads/u1?_state=s"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=s"
        );
        assert_eq!(
            resolve(base, "http://127.0.0.1:6000/x"),
            "http://127.0.0.1:6000/x"
        );
        assert_eq!(resolve(base, "//[::1]:7/y"), "http://[::1]:7/y");
        assert_eq!(
            resolve(base, "u2?s=1"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u2?s=1"
        );
        assert_eq!(
            resolve("http://h/x", "/y?next=http://z/"),
            "http://h/y?next=http://z/"
        );
    }
}
