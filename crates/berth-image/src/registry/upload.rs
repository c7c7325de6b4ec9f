//! Blob uploads: the monolithic PUT streaming the data, the chunked PATCHes with
//! `Content-Range` and a closing PUT, cross-repository mounts, and cancelling an upload that
//! will not be finished. The data is hashed on its way out; data that is short or does not
//! match its digest fails the upload.

use std::io::Read;

use super::{
    RegistryClient, RegistryError, Resp, Scopes, header, require_loopback_http, resolve, with_auth,
};
use crate::digest::{Digest, HashingReader};

/// Monolithic uploads report progress at most once per this many bytes (and at the end).
const PROGRESS_STEP: u64 = 256 << 10;

/// The data of a monolithic upload on its way into the request: reports progress and keeps
/// the first read error (ureq would only say the body broke off).
struct Upload<'a, R> {
    inner: R,
    /// The promised size: data ending before it is an error here, as ureq would wait for more.
    total: u64,
    sent: u64,
    reported: u64,
    error: Option<std::io::Error>,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Upload<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if self.sent < self.total => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.sent += n as u64;
                if n == 0 || self.sent - self.reported >= PROGRESS_STEP {
                    if self.sent != self.reported {
                        (self.progress)(self.sent);
                    }
                    self.reported = self.sent;
                }
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                self.error.get_or_insert(e);
                Err(std::io::Error::from(kind))
            }
        }
    }
}

/// Where a blob upload goes and what it must add up to.
struct UploadTarget<'a> {
    domain: &'a str,
    want: &'a Scopes,
    /// The URL that started the upload: credentials go only to its origin.
    registry: &'a str,
    digest: &'a Digest,
    size: u64,
}

impl UploadTarget<'_> {
    /// Checks what was read for the upload against the promised size and digest.
    fn verify(&self, actual: &Digest, read: u64) -> Result<(), RegistryError> {
        let what = || format!("blob {}", self.digest);
        if read != self.size {
            Err(RegistryError::SizeMismatch {
                what: what(),
                expected: self.size,
                actual: read,
            })
        } else if actual != self.digest {
            Err(RegistryError::DigestMismatch {
                what: what(),
                expected: self.digest.clone(),
                actual: actual.clone(),
            })
        } else {
            Ok(())
        }
    }
}

impl RegistryClient {
    /// The upload URL a POST or PATCH answered with.
    fn location(&self, request_url: &str, resp: &Resp) -> Result<String, RegistryError> {
        let location = header(resp, "Location").ok_or_else(|| RegistryError::Protocol {
            url: request_url.to_string(),
            problem: "the upload answer has no Location".into(),
        })?;
        let url = resolve(request_url, location);
        require_loopback_http(&url)?;
        Ok(url)
    }

    /// Starts an upload (or a mount) with an empty POST.
    fn post(&self, url: &str, auth: Option<&str>) -> Result<Resp, RegistryError> {
        with_auth(self.agent_for(url).post(url), auth, url, url)
            .send(&[] as &[u8])
            .map_err(|e| RegistryError::transport(url, e))
    }

    /// Cancels an upload we will not finish; a failure only leaves it for the registry to expire.
    fn cancel_upload(&self, domain: &str, want: &Scopes, location: &str, registry: &str) {
        let auth = self
            .auth
            .header_for(&self.agent, domain, want)
            .ok()
            .flatten();
        let _ = with_auth(
            self.agent_for(location).delete(location),
            auth.as_deref(),
            location,
            registry,
        )
        .call();
    }

    /// Cross-repository mount (`POST …/blobs/uploads/?mount=DIGEST&from=FROM`): true if the
    /// registry mounted the blob (201); false if it started an upload instead (202), which is
    /// cancelled.
    pub fn mount_blob(
        &self,
        domain: &str,
        repo: &str,
        digest: &Digest,
        from_repo: &str,
    ) -> Result<bool, RegistryError> {
        let want = Scopes::repository(repo, &["pull", "push"])
            .union(&Scopes::repository(from_repo, &["pull"]));
        let url = self.url(
            domain,
            &format!("{repo}/blobs/uploads/?mount={digest}&from={from_repo}"),
        )?;
        let resp = self.send(domain, &want, &mut |auth| self.post(&url, auth))?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                if let Ok(location) = self.location(&url, &resp) {
                    self.cancel_upload(domain, &want, &location, &url);
                }
                Ok(false)
            }
            _ => Err(self.fail(&format!("blob {digest} in {from_repo}"), &url, domain, resp)),
        }
    }

    /// Uploads `size` bytes of `data` as the blob `digest`: a POST to start, then one streamed
    /// PUT (`chunk_size` None) or PATCHes of `chunk_size` bytes with `Content-Range` and a
    /// closing PUT. `progress` gets the bytes sent so far as it goes. Data that is short or
    /// does not hash to `digest` fails the upload (and cancels it).
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
        let want = Scopes::repository(repo, &["pull", "push"]);
        let start = self.url(domain, &format!("{repo}/blobs/uploads/"))?;
        let resp = self.send(domain, &want, &mut |auth| self.post(&start, auth))?;
        if resp.status() != 202 {
            return Err(self.fail(&format!("an upload to {repo}"), &start, domain, resp));
        }
        let location = self.location(&start, &resp)?;
        let target = UploadTarget {
            domain,
            want: &want,
            registry: &start,
            digest,
            size,
        };
        let source = HashingReader::new(data.take(size));
        let result = match chunk_size {
            None => self.put_whole(&target, &location, source, progress),
            Some(n) => self.put_chunks(&target, location, source, n.max(1), progress),
        };
        result.map_err(|(e, unfinished)| {
            if let Some(location) = unfinished {
                self.cancel_upload(domain, &want, &location, &start);
            }
            e
        })
    }

    /// The monolithic upload: one PUT streaming the data. Errors carry the upload to cancel.
    fn put_whole(
        &self,
        up: &UploadTarget<'_>,
        location: &str,
        source: HashingReader<std::io::Take<&mut dyn Read>>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), (RegistryError, Option<String>)> {
        let cancel = |e| (e, Some(location.to_string()));
        let auth = self
            .auth
            .header_for(&self.agent, up.domain, up.want)
            .map_err(cancel)?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", up.digest);
        let mut body = Upload {
            inner: source,
            total: up.size,
            sent: 0,
            reported: 0,
            error: None,
            progress,
        };
        let sent = with_auth(
            self.agent_for(&url).put(&url),
            auth.as_deref(),
            &url,
            up.registry,
        )
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", &up.size.to_string())
        .send(ureq::SendBody::from_reader(&mut body));
        let Upload {
            inner,
            error,
            total: _,
            sent: read,
            reported,
            progress,
        } = body;
        if reported != read {
            progress(read);
        }
        if let Some(source) = error {
            return Err(cancel(RegistryError::Source {
                what: format!("blob {}", up.digest),
                source,
            }));
        }
        let (actual, n, _) = inner.finish();
        up.verify(&actual, n).map_err(cancel)?;
        let resp = sent.map_err(|e| cancel(RegistryError::transport(&url, e)))?;
        if resp.status() == 201 {
            return Ok(());
        }
        let what = format!("blob {}", up.digest);
        Err(cancel(self.fail(&what, &url, up.domain, resp)))
    }

    /// The chunked upload: PATCHes of `chunk` bytes, then a PUT with the digest.
    fn put_chunks(
        &self,
        up: &UploadTarget<'_>,
        mut location: String,
        mut source: HashingReader<std::io::Take<&mut dyn Read>>,
        chunk: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), (RegistryError, Option<String>)> {
        let what = format!("blob {}", up.digest);
        let mut buf = Vec::with_capacity(chunk.min(usize::try_from(up.size).unwrap_or(chunk)));
        loop {
            buf.clear();
            if let Err(source) = (&mut source).take(chunk as u64).read_to_end(&mut buf) {
                let e = RegistryError::Source {
                    what: what.clone(),
                    source,
                };
                return Err((e, Some(location)));
            }
            if buf.is_empty() {
                break;
            }
            let first = source.count() - buf.len() as u64;
            let range = format!("{first}-{}", source.count() - 1);
            let at = location.clone();
            let resp = self
                .send(up.domain, up.want, &mut |auth| {
                    with_auth(self.agent_for(&at).patch(&at), auth, &at, up.registry)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", &range)
                        .send(&buf[..])
                        .map_err(|e| RegistryError::transport(&at, e))
                })
                .map_err(|e| (e, Some(location.clone())))?;
            if resp.status() != 202 {
                return Err((self.fail(&what, &at, up.domain, resp), Some(location)));
            }
            location = self
                .location(&at, &resp)
                .map_err(|e| (e, Some(at.clone())))?;
            progress(source.count());
        }
        let (actual, n, _) = source.finish();
        up.verify(&actual, n)
            .map_err(|e| (e, Some(location.clone())))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", up.digest);
        let resp = self
            .send(up.domain, up.want, &mut |auth| {
                with_auth(self.agent_for(&url).put(&url), auth, &url, up.registry)
                    .header("Content-Type", "application/octet-stream")
                    .send(&[] as &[u8])
                    .map_err(|e| RegistryError::transport(&url, e))
            })
            .map_err(|e| (e, Some(location.clone())))?;
        if resp.status() == 201 {
            return Ok(());
        }
        Err((self.fail(&what, &url, up.domain, resp), Some(location)))
    }
}
