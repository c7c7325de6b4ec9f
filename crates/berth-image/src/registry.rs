//! The registry client (distribution API v2 / OCI distribution spec), synchronous on `ureq`.
//! Auth follows the registry's `WWW-Authenticate` challenge: `Basic` with the credentials given
//! for its domain, or `Bearer` (a token fetched from the realm for the scope, with those
//! credentials if any, cached until it expires). Plain HTTP is used for loopback registries
//! (Docker's default insecure range); other registries need TLS, which this build lacks.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::digest::{Digest, HashingReader};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// A user name and password (or identity token) for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },
    #[error("denied: {0}")]
    Denied(String),
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}: TLS registries are not supported yet (only loopback registries over HTTP)")]
    Tls(String),
    #[error("registry answered {status} for {url}: {message}")]
    Http {
        status: u16,
        url: String,
        message: String,
    },
    #[error("talking to the registry at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("reading from the registry: {0}")]
    Io(#[from] std::io::Error),
}

/// Is this registry host on loopback (HTTP allowed)?
pub fn is_loopback(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        domain.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="https://a/token",service="reg",scope="repository:x:pull"` (quoted
/// strings may hold commas and escaped quotes).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_lowercase();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs.min(rest.len())..i.min(rest.len())]
                .trim()
                .to_string();
        }
        if !key.is_empty() {
            params.insert(key, val);
        }
    }
    Some(Challenge {
        scheme: scheme.to_lowercase(),
        params,
    })
}

type Resp = ureq::http::Response<ureq::Body>;

/// Authorization header values by (domain, scope), with their expiry.
type AuthCache = HashMap<(String, String), (String, Option<Instant>)>;

pub struct RegistryClient {
    agent: ureq::Agent,
    creds: HashMap<String, Credentials>,
    auth: Mutex<AuthCache>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

fn registry_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = &v["errors"][0];
            let code = e["code"].as_str().unwrap_or_default().to_lowercase();
            let msg = e["message"].as_str()?.to_string();
            Some(if code.is_empty() {
                msg
            } else {
                format!("{}: {msg}", code.replace('_', " "))
            })
        })
        .unwrap_or_else(|| body.trim().chars().take(200).collect())
}

impl RegistryClient {
    pub fn new() -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .max_redirects(5)
            .build()
            .into();
        RegistryClient {
            agent,
            creds: HashMap::new(),
            auth: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_credentials(mut self, domain: &str, creds: Credentials) -> Self {
        self.creds.insert(domain.to_string(), creds);
        self
    }

    fn base(&self, domain: &str) -> Result<String, RegistryError> {
        if is_loopback(domain) {
            Ok(format!("http://{domain}"))
        } else {
            Err(RegistryError::Tls(domain.to_string()))
        }
    }

    fn cached_auth(&self, domain: &str, scope: &str) -> Option<String> {
        let map = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(domain.to_string(), scope.to_string()))
            .filter(|(_, exp)| exp.is_none_or(|e| e > Instant::now()))
            .map(|(h, _)| h.clone())
    }

    fn basic(&self, domain: &str) -> Option<String> {
        self.creds.get(domain).map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    /// Answers a 401's challenge: returns the Authorization header to retry with.
    fn authorize(&self, domain: &str, scope: &str, resp: &Resp) -> Result<String, RegistryError> {
        let challenge = resp
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Unauthorized {
                message: "authentication required".into(),
            })?;
        let header = match challenge.scheme.as_str() {
            "basic" => {
                let h = self
                    .basic(domain)
                    .ok_or_else(|| RegistryError::Unauthorized {
                        message: "authentication required".into(),
                    })?;
                (h, None)
            }
            "bearer" => {
                let realm = challenge.params.get("realm").cloned().unwrap_or_default();
                let url = ureq::http::Uri::try_from(realm.as_str()).map_err(|_| {
                    RegistryError::Unauthorized {
                        message: format!("bad token realm {realm:?}"),
                    }
                })?;
                if url.scheme_str() != Some("http")
                    || !is_loopback(url.authority().map_or("", |a| a.as_str()))
                {
                    return Err(RegistryError::Tls(realm));
                }
                let mut q = Vec::new();
                if let Some(s) = challenge.params.get("service") {
                    q.push(format!("service={}", urlencode(s)));
                }
                let want = if scope.is_empty() {
                    challenge.params.get("scope").cloned().unwrap_or_default()
                } else {
                    scope.to_string()
                };
                for s in want.split(' ').filter(|s| !s.is_empty()) {
                    q.push(format!("scope={}", urlencode(s)));
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let token_url = format!("{realm}{sep}{}", q.join("&"));
                let mut req = self.agent.get(&token_url);
                if let Some(b) = self.basic(domain) {
                    req = req.header("Authorization", &b);
                }
                let mut r = req.call().map_err(|e| RegistryError::Transport {
                    url: token_url.clone(),
                    source: Box::new(e),
                })?;
                if r.status() == 401 || r.status() == 403 {
                    return Err(RegistryError::Unauthorized {
                        message: "incorrect username or password".into(),
                    });
                }
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_string()
                    .map_err(|e| RegistryError::Transport {
                        url: token_url.clone(),
                        source: Box::new(e),
                    })?;
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let token = v["token"]
                    .as_str()
                    .or(v["access_token"].as_str())
                    .ok_or_else(|| RegistryError::Unauthorized {
                        message: "the token server sent no token".into(),
                    })?;
                let ttl = v["expires_in"].as_u64().unwrap_or(60).max(10);
                (
                    format!("Bearer {token}"),
                    Some(Instant::now() + Duration::from_secs(ttl - 5)),
                )
            }
            other => {
                return Err(RegistryError::Unauthorized {
                    message: format!("unsupported auth scheme {other}"),
                });
            }
        };
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((domain.to_string(), scope.to_string()), header.clone());
        Ok(header.0)
    }

    /// Runs a request (built by `f` with an optional Authorization header), answering one
    /// auth challenge. Only for requests whose body can be sent twice.
    fn exec(
        &self,
        domain: &str,
        scope: &str,
        url: &str,
        f: &dyn Fn(Option<&str>) -> Result<Resp, ureq::Error>,
    ) -> Result<Resp, RegistryError> {
        let transport = |e| RegistryError::Transport {
            url: url.to_string(),
            source: Box::new(e),
        };
        let auth = self.cached_auth(domain, scope);
        let resp = f(auth.as_deref()).map_err(transport)?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let header = self.authorize(domain, scope, &resp)?;
        let resp = f(Some(&header)).map_err(transport)?;
        if resp.status() == 401 {
            return Err(RegistryError::Unauthorized {
                message: if self.creds.contains_key(domain) {
                    "incorrect username or password".into()
                } else {
                    "authentication required".into()
                },
            });
        }
        Ok(resp)
    }

    fn fail(what: &str, url: &str, mut resp: Resp) -> RegistryError {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let message = registry_message(&body);
        match status {
            404 => RegistryError::NotFound {
                what: what.to_string(),
                message,
            },
            401 => RegistryError::Unauthorized { message },
            403 => RegistryError::Denied(message),
            _ => RegistryError::Http {
                status,
                url: url.to_string(),
                message,
            },
        }
    }

    /// `GET /v2/`: the registry answers and accepts the credentials.
    pub fn check(&self, domain: &str) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base(domain)?);
        let resp = self.exec(domain, "", &url, &|auth| {
            let mut r = self.agent.get(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::fail("registry", &url, resp))
        }
    }

    fn pull_scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }

    /// Fetches a manifest or index: (media type, digest of the bytes, bytes).
    pub fn get_manifest(
        &self,
        domain: &str,
        repo: &str,
        reference: &str,
        limit: u64,
    ) -> Result<(String, Digest, Vec<u8>), RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base(domain)?);
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let mut resp = self.exec(domain, &Self::pull_scope(repo), &url, &|auth| {
            let mut r = self.agent.get(&url).header("Accept", &accept);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        })?;
        let what = format!("manifest for {repo}:{reference}");
        if !resp.status().is_success() {
            return Err(Self::fail(&what, &url, resp));
        }
        let ct = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(RegistryError::TooLarge { what, limit });
        }
        let digest = Digest::of(&bytes);
        if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: want,
                    actual: digest,
                });
            }
        }
        Ok((ct, digest, bytes))
    }

    /// Streams a blob; the caller verifies its digest as it reads.
    pub fn get_blob(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<(Option<u64>, Box<dyn Read + Send>), RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base(domain)?);
        let resp = self.exec(domain, &Self::pull_scope(repo), &url, &|auth| {
            let mut r = self.agent.get(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        })?;
        if !resp.status().is_success() {
            return Err(Self::fail(&format!("blob {digest}"), &url, resp));
        }
        let len = resp
            .headers()
            .get("Content-Length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        Ok((len, Box::new(reader)))
    }

    /// `HEAD` a blob: its size if the registry has it.
    pub fn blob_size(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base(domain)?);
        let resp = self.exec(domain, &Self::push_scope(repo), &url, &|auth| {
            let mut r = self.agent.head(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        })?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.headers()
                    .get("Content-Length")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(Self::fail(&format!("blob {digest}"), &url, resp)),
        }
    }

    fn push_scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    fn location(&self, domain: &str, resp: &Resp) -> Result<String, RegistryError> {
        let loc = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Http {
                status: resp.status().as_u16(),
                url: domain.to_string(),
                message: "upload response without Location".into(),
            })?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{}{loc}", self.base(domain)?)
            },
        )
    }

    /// Starts an upload (optionally as a mount from `from`); returns the response.
    fn start_upload(
        &self,
        domain: &str,
        repo: &str,
        query: &str,
        scope: &str,
    ) -> Result<Resp, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/uploads/{query}", self.base(domain)?);
        self.exec(domain, scope, &url, &|auth| {
            let mut r = self.agent.post(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send_empty()
        })
    }

    /// Cross-repository mount: true if the registry mounted the blob.
    pub fn mount_blob(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
        from_repo: &str,
    ) -> Result<bool, RegistryError> {
        let scope = format!("{} repository:{from_repo}:pull", Self::push_scope(repo));
        let resp = self.start_upload(
            domain,
            repo,
            &format!("?mount={digest}&from={from_repo}"),
            &scope,
        )?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                // An upload was started instead: cancel it.
                let loc = self.location(domain, &resp)?;
                let auth = self.cached_auth(domain, &scope);
                let mut r = self.agent.delete(&loc);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let _ = r.call();
                Ok(false)
            }
            _ => Err(Self::fail(&format!("blob {digest}"), domain, resp)),
        }
    }

    /// Uploads a blob monolithically or in chunks, verifying `digest` on the way.
    #[allow(clippy::too_many_arguments)]
    pub fn push_blob(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
        chunk_size: Option<usize>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RegistryError> {
        let scope = Self::push_scope(repo);
        let resp = self.start_upload(domain, repo, "", &scope)?;
        if resp.status() != 202 {
            return Err(Self::fail("upload", domain, resp));
        }
        let mut loc = self.location(domain, &resp)?;
        let auth = self.cached_auth(domain, &scope);
        let with_auth = |mut r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r
        };
        let mut hr = HashingReader::new(data.take(size));
        let mut sent = 0u64;
        let chunk = chunk_size.unwrap_or(usize::MAX).max(1);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let want = (size - sent).min(chunk as u64);
            (&mut hr).take(want).read_to_end(&mut buf)?;
            let last = sent + buf.len() as u64 >= size;
            if chunk_size.is_none() || last {
                // The final request carries the rest and the digest.
                let sep = if loc.contains('?') { '&' } else { '?' };
                let url = format!("{loc}{sep}digest={digest}");
                let resp = with_auth(self.agent.put(&url))
                    .header("Content-Type", "application/octet-stream")
                    .send(&buf[..])
                    .map_err(|e| RegistryError::Transport {
                        url: url.clone(),
                        source: Box::new(e),
                    })?;
                sent += buf.len() as u64;
                progress(sent);
                if resp.status() != 201 {
                    return Err(Self::fail(&format!("blob {digest}"), &url, resp));
                }
                break;
            }
            let end = sent + buf.len() as u64 - 1;
            let resp = with_auth(self.agent.patch(&loc))
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", &format!("{sent}-{end}"))
                .send(&buf[..])
                .map_err(|e| RegistryError::Transport {
                    url: loc.clone(),
                    source: Box::new(e),
                })?;
            if resp.status() != 202 {
                return Err(Self::fail(&format!("blob {digest}"), &loc, resp));
            }
            sent += buf.len() as u64;
            progress(sent);
            loc = self.location(domain, &resp)?;
        }
        let (actual, n, _) = hr.finish();
        if n != size || actual != *digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Puts a manifest under a tag or digest; returns its digest.
    pub fn put_manifest(
        &self,
        domain: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base(domain)?);
        let resp = self.exec(domain, &Self::push_scope(repo), &url, &|auth| {
            let mut r = self.agent.put(&url).header("Content-Type", media_type);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send(bytes)
        })?;
        if resp.status() != 201 && resp.status() != 200 {
            return Err(Self::fail(
                &format!("manifest {repo}:{reference}"),
                &url,
                resp,
            ));
        }
        Ok(resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| Digest::parse(v.to_str().ok()?).ok())
            .unwrap_or_else(|| Digest::of(bytes)))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quotes_and_commas() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg, one",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:1/token");
        assert_eq!(c.params["service"], "reg, one");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="x \"y\"""#).unwrap();
        assert_eq!(
            (c.scheme.as_str(), c.params["realm"].as_str()),
            ("basic", "x \"y\"")
        );
        assert!(
            is_loopback("127.0.0.1:5000") && is_loopback("[::1]:5000") && is_loopback("localhost")
        );
        assert!(!is_loopback("docker.io") && !is_loopback("10.0.0.1:5000"));
    }
}
