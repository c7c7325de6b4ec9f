//! A real registry for tests: Debian's `docker-registry` (distribution v2) on 127.0.0.1 on a free
//! port, in its own temporary storage, optionally behind htpasswd basic auth; stopped and removed
//! on drop. Includes the few registry calls the kit needs to seed it with the busybox image.

use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;

use crate::busybox::{Blob, BusyboxImage, OCI_MANIFEST};
use crate::{free_port, wait_for};

/// Where Debian's docker-registry installs the server.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Basic-auth credentials a registry requires.
#[derive(Clone, Debug)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl RegistryAuth {
    fn header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A running registry, stopped and its storage removed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Option<RegistryAuth>,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None)
    }

    /// Starts a registry that requires `username`/`password` (bcrypt htpasswd).
    pub fn start_with_auth(username: &str, password: &str) -> anyhow::Result<Self> {
        Self::start_inner(Some(RegistryAuth {
            username: username.into(),
            password: password.into(),
        }))
    }

    /// Starts an anonymous registry serving HTTPS with `cert`/`key` (see [`crate::certs`]).
    /// Its blob and manifest helpers speak plain HTTP, so fill it through the client under test.
    pub fn start_tls(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Self::start_inner_with(None, Some((cert, key)), None)
    }

    /// Like [`Registry::start_tls`], also requiring a client certificate signed by `client_ca`.
    pub fn start_mutual_tls(cert: &Path, key: &Path, client_ca: &Path) -> anyhow::Result<Self> {
        Self::start_inner_with(None, Some((cert, key)), Some(client_ca))
    }

    fn start_inner(auth: Option<RegistryAuth>) -> anyhow::Result<Self> {
        Self::start_inner_with(auth, None, None)
    }

    fn start_inner_with(
        auth: Option<RegistryAuth>,
        tls: Option<(&Path, &Path)>,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut last_err = None;
        // The port may be taken between picking it and the registry binding it: retry.
        for _ in 0..3 {
            match Self::try_start(auth.clone(), tls, client_ca) {
                Ok(r) => return Ok(r),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    fn try_start(
        auth: Option<RegistryAuth>,
        tls: Option<(&Path, &Path)>,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("berth-reg-")
            .tempdir_in("/tmp")?;
        let port = free_port()?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some((cert, key)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = client_ca {
                config.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
            }
        }
        if let Some(a) = &auth {
            let htpasswd = dir.path().join("htpasswd");
            write_htpasswd(&htpasswd, a)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        #[allow(clippy::disallowed_methods)] // the real registry server is the point of the fixture
        let child = std::process::Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("starting {REGISTRY_BIN} (apt-get install docker-registry)")
            })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut reg = Self {
            child,
            port,
            auth,
            agent,
            _dir: dir,
        };
        let up = wait_for(Duration::from_secs(10), "the registry to listen", || {
            if matches!(reg.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        if let Ok(Some(status)) = reg.child.try_wait() {
            let log =
                std::fs::read_to_string(reg._dir.path().join("registry.log")).unwrap_or_default();
            anyhow::bail!("docker-registry exited with {status}: {log}");
        }
        up?;
        // It listens before it serves: wait until /v2/ answers (401 counts when auth is on).
        wait_for(
            Duration::from_secs(10),
            "the registry to answer /v2/",
            || match tls {
                None => reg.get_status("/v2/").is_ok_and(|s| s == 200 || s == 401),
                // Without a client certificate the handshake fails: listening is enough then.
                Some(_) if client_ca.is_some() => true,
                Some(_) => curl_k_ok(&format!("https://127.0.0.1:{port}/v2/")),
            },
        )?;
        Ok(reg)
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("http://127.0.0.1:{}{path}", self.port)
        }
    }

    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(a) => req.header("Authorization", a.header()),
            None => req,
        }
    }

    /// Status of an unauthenticated GET (to check that auth is enforced).
    pub fn get_status_anonymous(&self, path: &str) -> anyhow::Result<u16> {
        Ok(self.agent.get(self.url(path)).call()?.status().as_u16())
    }

    fn get_status(&self, path: &str) -> anyhow::Result<u16> {
        Ok(self
            .authorized(self.agent.get(self.url(path)))
            .call()?
            .status()
            .as_u16())
    }

    /// Uploads one blob monolithically (POST then PUT with the digest).
    pub fn push_blob(&self, repo: &str, blob: &Blob) -> anyhow::Result<()> {
        let resp = self
            .authorized(
                self.agent
                    .post(self.url(&format!("/v2/{repo}/blobs/uploads/"))),
            )
            .send_empty()?;
        anyhow::ensure!(
            resp.status() == 202,
            "starting upload: HTTP {}",
            resp.status()
        );
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .context("upload response has no Location")?
            .to_string();
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = self.url(&format!("{location}{sep}digest={}", blob.digest));
        let resp = self
            .authorized(self.agent.put(put_url))
            .header("Content-Type", "application/octet-stream")
            .send(&blob.bytes[..])?;
        anyhow::ensure!(
            resp.status() == 201,
            "finishing upload of {}: HTTP {}",
            blob.digest,
            resp.status()
        );
        Ok(())
    }

    /// Pushes the busybox image as `repo:tag` and returns the manifest digest.
    pub fn push_image(
        &self,
        image: &BusyboxImage,
        repo: &str,
        tag: &str,
    ) -> anyhow::Result<String> {
        self.push_blob(repo, &image.layer)?;
        self.push_blob(repo, &image.config)?;
        self.push_manifest(repo, tag, &image.manifest)
    }

    /// Puts a manifest (its blobs already pushed) as `repo:tag`; returns its digest.
    pub fn push_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> anyhow::Result<String> {
        let resp = self
            .authorized(
                self.agent
                    .put(self.url(&format!("/v2/{repo}/manifests/{tag}"))),
            )
            .header("Content-Type", manifest.media_type)
            .send(&manifest.bytes[..])?;
        anyhow::ensure!(
            resp.status() == 201,
            "putting manifest: HTTP {}",
            resp.status()
        );
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&manifest.digest)
            .to_string();
        Ok(digest)
    }

    /// Fetches a manifest by tag or digest; returns its media type and bytes.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let mut resp = self
            .authorized(
                self.agent
                    .get(self.url(&format!("/v2/{repo}/manifests/{reference}"))),
            )
            .header("Accept", OCI_MANIFEST)
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()?;
        anyhow::ensure!(
            resp.status() == 200,
            "getting manifest {reference}: HTTP {}",
            resp.status()
        );
        let media_type = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut body = Vec::new();
        resp.body_mut().as_reader().read_to_end(&mut body)?;
        Ok((media_type, body))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an htpasswd file with a bcrypt hash (the only kind docker-registry accepts), using
/// apache2-utils' `htpasswd`.
fn write_htpasswd(path: &Path, auth: &RegistryAuth) -> anyhow::Result<()> {
    #[allow(clippy::disallowed_methods)] // htpasswd is the reference bcrypt writer for the registry
    let out = std::process::Command::new("htpasswd")
        .args(["-nbB", &auth.username, &auth.password])
        .output()
        .context("running htpasswd (apt-get install apache2-utils)")?;
    anyhow::ensure!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, out.stdout)?;
    Ok(())
}

/// Whether `curl -k URL` gets an answer (the TLS registry's readiness; this kit has no TLS).
fn curl_k_ok(url: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // a probe of the real registry
    std::process::Command::new("curl")
        .args(["-ksf", "-o", "/dev/null", url])
        .status()
        .is_ok_and(|s| s.success())
}
