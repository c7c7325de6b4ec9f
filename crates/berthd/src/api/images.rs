//! Image routes: pull (`POST /images/create`) with Docker's progress stream, list, inspect,
//! history, tag, remove, prune, and `POST /auth`. The stores are synchronous (berth-image): each
//! call runs on a blocking thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_api::config::ImageConfig;
use berth_api::models;
use berth_api::responses::{
    Aux, HistoryItem, ImageInspect, ImageMetadata, ImageRootFs, JsonMessage, ProgressDetail,
};
use berth_image::images::ImageRecord;
use berth_image::manifest::{MAX_CONFIG, Platform};
use berth_image::registry::{Credentials, RegistryError};
use berth_image::service::{Progress, RemoveError, Removed};
use berth_image::{Digest, Reference};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::Value;

use crate::api::http::{ApiResult, JsonStream, Query, empty, json, parse_json, read_body};
use crate::engine::Daemon;
use crate::model::Error;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))
}

/// A registry auth header's JSON (base64url, as the docker CLI sends it; padded base64 too).
pub(crate) fn auth_header<T>(req: &Request<T>, name: &str) -> Option<Value> {
    let raw = req.headers().get(name)?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Credentials from `X-Registry-Auth`.
fn registry_auth<T>(req: &Request<T>) -> Option<Credentials> {
    credentials_of(&auth_header(req, "X-Registry-Auth")?)
}

/// Credentials per registry from `X-Registry-Config` (a build's: every login the client has),
/// keyed by the registry's domain as references name it (`docker.io` for Docker Hub).
pub fn registry_config<T>(req: &Request<T>) -> BTreeMap<String, Credentials> {
    let Some(Value::Object(all)) = auth_header(req, "X-Registry-Config") else {
        return BTreeMap::new();
    };
    all.iter()
        .filter_map(|(server, v)| {
            let host = server
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            let domain = match host {
                "index.docker.io" | "registry-1.docker.io" => "docker.io",
                h => h,
            };
            Some((domain.to_string(), credentials_of(v)?))
        })
        .collect()
}

/// A login's user name and password (or identity token), if it has one.
fn credentials_of(v: &Value) -> Option<Credentials> {
    let username = v["username"].as_str().unwrap_or_default().to_string();
    let password = v["password"]
        .as_str()
        .filter(|p| !p.is_empty())
        .or(v["identitytoken"].as_str())
        .unwrap_or_default()
        .to_string();
    (!username.is_empty() || !password.is_empty()).then_some(Credentials { username, password })
}

fn progress_bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    let bar = if filled == 0 {
        " ".repeat(width as usize)
    } else {
        format!(
            "{}>{}",
            "=".repeat(filled - 1),
            " ".repeat(width as usize - filled)
        )
    };
    format!("[{bar}] {}/{}", human(current), human(total))
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.3}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.3}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

/// Docker's JSON message for one progress event.
fn progress_json(p: &Progress) -> JsonMessage {
    match p {
        Progress::Status { id, status } => JsonMessage::status(status.clone(), id.clone()),
        Progress::Layer {
            id,
            status,
            current,
            total,
        } => JsonMessage {
            progress_detail: Some(ProgressDetail {
                current: *current,
                total: current.and(*total),
            }),
            progress: current.map(|c| progress_bar(c, total.unwrap_or(0))),
            ..JsonMessage::status(status.to_string(), Some(id.to_string()))
        },
    }
}

/// The reference `fromImage` + `tag` name, as dockerd combines them.
fn pull_reference(q: &Query) -> Result<Reference, Error> {
    let from = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("fromImage or fromSrc is required"))?;
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    Reference::parse(&name).map_err(|e| Error::invalid(e.to_string()))
}

/// `POST /images/create?fromImage=&tag=&platform=`: a pull. Failures before the first
/// progress line are HTTP errors; later ones travel in the stream as `errorDetail`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    if let Some(src) = q.get("fromSrc") {
        return import(d, src.to_string(), &q, req).await;
    }
    let r = pull_reference(&q)?;
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p).map_err(|e| Error::invalid(e.to_string()))?,
        None => Platform::host(),
    };
    let client = crate::engine::registry::client_for(d, r.domain(), registry_auth(&req));
    let (stream, resp) = JsonStream::new();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), Error>>();
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let first = Mutex::new(Some(first_tx));
        let started = || {
            if let Some(tx) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(Ok(()));
            }
        };
        let on_progress = |p: Progress| {
            started();
            stream.send_blocking(&progress_json(&p));
        };
        let result = d.images.pull(&client, &r, &platform, &on_progress);
        if result.is_ok() {
            d.events.emit(
                "image",
                "pull",
                &r.familiar(),
                crate::engine::events::attrs([("name", r.familiar())]),
            );
        }
        if let Err(e) = result {
            tracing::warn!(image = %r, error = %e, "pull failed");
            let api = crate::engine::registry::pull_error(&r, &e);
            match first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(tx) => {
                    let _ = tx.send(Err(api));
                }
                None => {
                    stream.send_blocking(&JsonMessage::error(api.message()));
                }
            }
        }
    });
    match first_rx.await {
        Ok(Ok(())) => Ok(resp),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::internal("the pull ended without a result")),
    }
}

/// `POST /images/{name}/push?tag=`: pushes `name:tag` (with an empty tag: every local tag of
/// the repository) with Docker's progress stream, ending in the `aux` message with the digest.
/// Failures before the first line are HTTP errors; later ones travel in the stream.
pub async fn push(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let named = Reference::parse(&full).map_err(|e| Error::invalid(e.to_string()))?;
    let explicit = q.get("tag").is_some_and(|t| !t.is_empty())
        || full.contains('@')
        || name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
    let d2 = d.clone();
    let named2 = named.clone();
    let targets: Vec<(Reference, ImageRecord)> = blocking(move || {
        let images = &d2.images.images;
        if explicit {
            return images
                .resolve(&named2.to_string())
                .ok()
                .map(|rec| vec![(named2.clone(), rec)])
                .unwrap_or_default();
        }
        let mut out = vec![];
        for rec in images.list() {
            for t in &rec.repo_tags {
                if let Ok(r) = Reference::parse(t) {
                    if r.repository() == named2.repository() {
                        out.push((r, rec.clone()));
                    }
                }
            }
        }
        out
    })
    .await?;
    if targets.is_empty() {
        return Err(Error::not_found(format!(
            "An image does not exist locally with the tag: {}",
            named.familiar()
        )));
    }
    let client = crate::engine::registry::client_for(d, named.domain(), registry_auth(&req));
    let (stream, resp) = JsonStream::new();
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        for (target, rec) in targets {
            let mut on_progress = |p: Progress| {
                stream.send_blocking(&progress_json(&p));
            };
            match d.images.push(&rec, &target, &client, &mut on_progress) {
                Ok(done) => {
                    stream.send_blocking(&JsonMessage {
                        progress_detail: Some(ProgressDetail::default()),
                        ..JsonMessage::aux(Aux::Pushed {
                            tag: done.tag,
                            digest: done.digest.to_string(),
                            size: done.size,
                        })
                    });
                    d.events.emit(
                        "image",
                        "push",
                        &target.familiar(),
                        crate::engine::events::attrs([("name", target.familiar())]),
                    );
                }
                Err(e) => {
                    tracing::warn!(image = %target, error = %e, "push failed");
                    stream.send_blocking(&JsonMessage::error(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(resp)
}

/// The image name of `repo` and `tag` (`docker import` and `docker commit`), if any.
pub(crate) fn repo_tag(q: &Query) -> Result<Option<Reference>, Error> {
    let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    Reference::parse(&name)
        .map(Some)
        .map_err(|e| Error::invalid(e.to_string()))
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=`: `docker import` of a rootfs tar sent as
/// the request body (streamed to a temp file, then unpacked as one layer), or downloaded from
/// the `http://` URL in `fromSrc` (a bare host/path gets `http://`, as dockerd does).
async fn import(d: &Arc<Daemon>, src: String, q: &Query, req: Request<Incoming>) -> ApiResult {
    let url = match src.as_str() {
        "-" => None,
        u if u.starts_with("https://") => {
            return Err(Error::invalid(format!(
                "{u}: importing over https is not supported by this build; use http:// or send the tar (fromSrc=-)"
            )));
        }
        u if u.starts_with("http://") => Some(u.to_string()),
        u if u.contains("://") => {
            return Err(Error::invalid(format!("{u}: unsupported URL scheme")));
        }
        u => Some(format!("http://{u}")),
    };
    let reference = repo_tag(q)?;
    let mut config = berth_api::config::ContainerConfig::default();
    crate::engine::commit::apply_changes(&mut config, &q.get_all("changes"))?;
    let config = serde_json::to_value(&config).unwrap_or_default();
    let d2 = d.clone();
    let r2 = reference.clone();
    let rec = if let Some(url) = url {
        blocking(move || Ok::<_, std::io::Error>(d2.images.import_url(&url, config, r2.as_ref())))
            .await?
    } else {
        let tmp = body_to_temp_file(d, req).await?;
        blocking(move || {
            let f = std::fs::File::open(tmp.path())?;
            let out = d2.images.import(f, config, r2.as_ref());
            drop(tmp);
            Ok::<_, std::io::Error>(out)
        })
        .await?
    }
    .map_err(|e| Error::internal(e.to_string()))?
    .map_err(|e| Error::invalid(e.to_string()))?;
    d.events.emit(
        "image",
        "import",
        rec.id.as_str(),
        crate::engine::events::attrs([(
            "name",
            reference.map(|r| r.familiar()).unwrap_or_default(),
        )]),
    );
    Ok(json(
        StatusCode::OK,
        &JsonMessage::status(rec.id.to_string(), None),
    ))
}

/// Stores a request body (a tar) in a temp file under `<data>/tmp`.
pub(crate) async fn body_to_temp_file(
    d: &Daemon,
    req: Request<Incoming>,
) -> Result<tempfile::NamedTempFile, Error> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let tmp_dir = d.data_root.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::internal(e.to_string()))?;
    let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
        .map_err(|e| Error::internal(format!("making a temp file: {e}")))?;
    let mut file =
        tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::internal(e.to_string()))?);
    let mut body = req.into_body();
    let mut tmp = Some(tmp);
    let mut failed = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::invalid(format!("reading the tar: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        // After a failed write (a full disk) the rest is read and dropped: the client, still
        // sending, then gets the error instead of a broken pipe.
        if failed.is_none() {
            if let Err(e) = file.write_all(data).await {
                failed = Some(e);
                tmp = None; // its space back at once
            }
        }
    }
    if let Some(e) = failed {
        return Err(Error::internal(format!("storing the tar: {e}")));
    }
    file.flush()
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    tmp.ok_or_else(|| Error::internal("storing the tar"))
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: `docker save`, streamed.
pub async fn save(d: &Arc<Daemon>, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(Error::invalid("no images given"));
    }
    let d2 = d.clone();
    let images = blocking(move || {
        let mut out: Vec<(ImageRecord, Vec<Reference>)> = Vec::new();
        for n in names {
            let rec = d2
                .images
                .images
                .resolve(&n)
                .map_err(|_| Error::not_found(format!("reference does not exist: {n}")))?;
            // Saved under the name given when it is one of the image's tags (not an id).
            let tag = Reference::parse(&n)
                .ok()
                .filter(|r| rec.repo_tags.contains(&r.to_string()));
            match out.iter_mut().find(|(r, _)| r.id == rec.id) {
                Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
                None => out.push((rec, tag.into_iter().collect())),
            }
        }
        Ok::<_, Error>(out)
    })
    .await??;
    let (mut stream, resp) = crate::api::http::ByteStream::new("application/x-tar");
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let saved = d.images.save(&images, &mut stream);
        if let Err(e) = saved.and_then(|()| {
            std::io::Write::flush(&mut stream).map_err(|source| {
                berth_image::archive::ArchiveError::Io {
                    what: "sending the archive".into(),
                    source,
                }
            })
        }) {
            // The stream ends in an error: the client sees a failed save, never a short tar.
            tracing::warn!(error = %e, "save failed");
            stream.fail(std::io::Error::other(e.to_string()));
        }
    });
    Ok(resp)
}

/// `POST /images/load?quiet=`: `docker load` of a docker-archive or an OCI layout.
pub async fn load(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    // `quiet` only hides progress bars, which a load from a local file has none of.
    let tmp = body_to_temp_file(d, req).await?;
    let d2 = d.clone();
    let loaded = blocking(move || {
        let f = std::fs::File::open(tmp.path())
            .map_err(|e| Error::internal(format!("reopening the tar: {e}")))?;
        d2.images
            .load(f, &d2.data_root.join("tmp"))
            .map_err(|e| Error::invalid(e.to_string()))
    })
    .await?;
    for l in loaded.iter().flatten() {
        let name = l.rsplit(' ').next().unwrap_or_default();
        let attrs = crate::engine::events::attrs([("name", name.to_string())]);
        d.events.emit("image", "load", name, attrs);
    }
    // As dockerd: the answer is a 200 stream once the archive is read, and a load that fails
    // says so in it (`errorDetail`), which the CLI and the SDKs report.
    let (stream, resp) = JsonStream::new();
    tokio::spawn(async move {
        match loaded {
            Ok(lines) => {
                for l in lines {
                    let _ = stream.send(&JsonMessage::stream(format!("{l}\n"))).await;
                }
            }
            Err(e) => {
                let _ = stream.send(&JsonMessage::error(e.message())).await;
            }
        }
    });
    Ok(resp)
}

fn unix_secs(rfc3339: &str) -> i64 {
    berth_clock::parse_rfc3339(rfc3339).map_or(0, |n| n / 1_000_000_000)
}

/// The image's config blob; an empty one where it cannot be read or decoded.
fn read_config(d: &Daemon, rec: &ImageRecord) -> ImageConfig {
    d.images
        .content
        .read(&rec.id, MAX_CONFIG)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn labels_of(config: &ImageConfig) -> BTreeMap<String, String> {
    config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

/// Glob match for `reference=` filters (`*` within a path component).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

pub fn summary(d: &Daemon, rec: &ImageRecord) -> models::ImageSummary {
    let config = read_config(d, rec);
    let tags = rec.familiar_tags();
    let digests = rec.familiar_digests();
    let size = i64::try_from(rec.size).unwrap_or(i64::MAX);
    models::ImageSummary {
        id: rec.id.to_string(),
        parent_id: String::new(),
        repo_digests: if digests.is_empty() && tags.is_empty() {
            vec!["<none>@<none>".into()]
        } else {
            digests
        },
        repo_tags: if tags.is_empty() {
            vec!["<none>:<none>".into()]
        } else {
            tags
        },
        created: unix_secs(&rec.created),
        size,
        virtual_size: Some(size),
        shared_size: -1,
        labels: labels_of(&config).into_iter().collect(),
        containers: -1,
    }
}

/// `GET /images/json`: filters `dangling`, `reference`, `label`.
pub async fn list(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    for (k, _) in &filters {
        if !matches!(
            k.as_str(),
            "dangling" | "reference" | "label" | "before" | "since"
        ) {
            return Err(Error::invalid(format!("invalid filter '{k}'")));
        }
    }
    let d = d.clone();
    let out = blocking(move || {
        d.images
            .images
            .list()
            .into_iter()
            .filter(|rec| {
                filters.iter().all(|(k, v)| match k.as_str() {
                    "dangling" => (v == "true" || v == "1") == rec.repo_tags.is_empty(),
                    "reference" => rec.familiar_tags().iter().any(|t| {
                        glob(v, t) || t.split(':').next().is_some_and(|repo| glob(v, repo))
                    }),
                    "label" => {
                        let labels = labels_of(&read_config(&d, rec));
                        match v.split_once('=') {
                            Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                            None => labels.contains_key(v),
                        }
                    }
                    _ => true,
                })
            })
            .map(|rec| summary(&d, &rec))
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(json(StatusCode::OK, &out))
}

fn resolve(d: &Daemon, name: &str) -> Result<ImageRecord, Error> {
    d.images
        .images
        .resolve(name)
        .map_err(|_| Error::not_found(format!("No such image: {name}")))
}

/// `GET /images/{name}/json`.
pub async fn inspect(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let (d, name) = (d.clone(), name.to_string());
    let v = blocking(move || -> Result<ImageInspect, Error> {
        let rec = resolve(&d, &name)?;
        let config = read_config(&d, &rec);
        let layers = d.images.layer_dirs(&rec);
        let lower = layers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let size = i64::try_from(rec.size).unwrap_or(i64::MAX);
        Ok(ImageInspect {
            id: rec.id.to_string(),
            repo_tags: rec.familiar_tags(),
            repo_digests: rec.familiar_digests(),
            parent: String::new(),
            comment: config.comment,
            created: if config.created.is_empty() {
                rec.created.clone()
            } else {
                config.created
            },
            container: config.container,
            container_config: config.container_config.unwrap_or_default(),
            docker_version: config.docker_version,
            author: config.author,
            config: config.config,
            architecture: config.architecture,
            variant: config.variant,
            os: config.os,
            size,
            virtual_size: size,
            graph_driver: models::GraphDriverData {
                name: "overlay2".into(),
                data: [("LowerDir".to_string(), lower)].into_iter().collect(),
            },
            root_fs: ImageRootFs {
                kind: "layers".into(),
                layers: config.rootfs.diff_ids,
            },
            metadata: ImageMetadata {
                last_tag_time: "0001-01-01T00:00:00Z".into(),
            },
        })
    })
    .await??;
    Ok(json(StatusCode::OK, &v))
}

/// `GET /images/{name}/history`: newest first, as `docker history` shows it.
pub async fn history(d: &Arc<Daemon>, name: &str) -> ApiResult {
    let (d, name) = (d.clone(), name.to_string());
    let v = blocking(move || -> Result<Vec<HistoryItem>, Error> {
        let rec = resolve(&d, &name)?;
        let config = read_config(&d, &rec);
        let mut sizes = rec
            .chain
            .iter()
            .map(|c| d.images.layers.info(c).map_or(0, |i| i.size));
        let mut out: Vec<HistoryItem> = config
            .history
            .iter()
            .map(|h| HistoryItem {
                id: "<missing>".into(),
                created: unix_secs(&h.created),
                created_by: h.created_by.clone(),
                tags: None,
                size: match h.empty_layer {
                    true => 0,
                    false => i64::try_from(sizes.next().unwrap_or(0)).unwrap_or(i64::MAX),
                },
                comment: h.comment.clone(),
            })
            .collect();
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = rec.id.to_string();
            top.tags = Some(rec.familiar_tags());
        }
        Ok(out)
    })
    .await??;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub async fn tag(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::invalid("repo is required"))?;
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let target = Reference::parse(&full).map_err(|e| Error::invalid(e.to_string()))?;
    if target.digest().is_some() {
        return Err(Error::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    let (d, name) = (d.clone(), name.to_string());
    blocking(move || -> Result<(), Error> {
        let rec = resolve(&d, &name)?;
        d.images
            .images
            .tag(&rec.id, &target)
            .map_err(|e| Error::internal(e.to_string()))?;
        d.events.emit(
            "image",
            "tag",
            rec.id.as_str(),
            crate::engine::events::attrs([("name", target.familiar())]),
        );
        Ok(())
    })
    .await??;
    Ok(empty(StatusCode::CREATED))
}

fn emit_removed(d: &Daemon, r: &[Removed]) {
    for x in r {
        match x {
            Removed::Untagged(t) => {
                let attrs = crate::engine::events::attrs([("name", t.clone())]);
                d.events.emit("image", "untag", t, attrs);
            }
            Removed::Deleted(id) => {
                d.events
                    .emit("image", "delete", id.as_str(), Default::default())
            }
        }
    }
}

fn removed_json(r: &[Removed]) -> Vec<models::ImageDeleteResponseItem> {
    r.iter()
        .map(|x| match x {
            Removed::Untagged(t) => models::ImageDeleteResponseItem {
                untagged: Some(t.clone()),
                deleted: None,
            },
            Removed::Deleted(d) => models::ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(d.to_string()),
            },
        })
        .collect()
}

/// `DELETE /images/{name}?force=`.
pub async fn remove(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let force = q.bool("force");
    let (d2, name) = (d.clone(), name.to_string());
    let out = blocking(move || {
        let in_use = |id: &Digest| crate::api::containers::user_of_image(&d2, id);
        d2.images
            .remove(&name, force, &in_use)
            .map_err(|e| match e {
                RemoveError::Image(_) => Error::not_found(format!("No such image: {name}")),
                other => Error::conflict(other.to_string()),
            })
    })
    .await??;
    emit_removed(d, &out);
    Ok(json(StatusCode::OK, &removed_json(&out)))
}

/// `POST /images/prune`: dangling images by default, every unused one with `dangling=false`.
pub async fn prune(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    let all = filters
        .iter()
        .any(|(k, v)| k == "dangling" && (v == "false" || v == "0"));
    let selected = crate::api::http::PruneFilters::parse(&filters, &["dangling"])?;
    let d = d.clone();
    let (deleted, reclaimed) = blocking(move || {
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for rec in d.images.images.list() {
            if !all && !rec.repo_tags.is_empty() {
                continue;
            }
            let labels = labels_of(&read_config(&d, &rec));
            if !selected.selects(&rec.created, |k| labels.get(k).map(String::as_str)) {
                continue;
            }
            let in_use = |id: &Digest| crate::api::containers::user_of_image(&d, id);
            if in_use(&rec.id).is_some() {
                continue;
            }
            if let Ok(out) = d.images.remove(rec.id.as_str(), true, &in_use) {
                reclaimed += rec.size;
                deleted.extend(removed_json(&out));
            }
        }
        (deleted, reclaimed)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &models::ImagePruneResponse {
            images_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed as i64),
        },
    ))
}

/// `POST /auth`: checks credentials against the registry (`docker login`).
pub async fn auth(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 64 << 10).await?;
    let v: models::AuthConfig = parse_json(&body)?;
    let user = v.username.unwrap_or_default();
    let pass = v.password.unwrap_or_default();
    let server = v.serveraddress.unwrap_or_default();
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let domain = match host.as_str() {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    };
    let client = crate::engine::registry::client_for(
        d,
        &domain,
        Some(Credentials {
            username: user,
            password: pass,
        }),
    );
    let checked = blocking(move || client.check(&domain)).await?;
    match checked {
        Ok(()) => Ok(json(
            StatusCode::OK,
            &models::SystemAuthResponse {
                status: "Login Succeeded".into(),
                identity_token: Some(String::new()),
            },
        )),
        Err(RegistryError::Unauthorized { .. }) => Err(Error::unauthorized(format!(
            "login attempt to {server} failed with status: 401 Unauthorized"
        ))),
        Err(e) => Err(Error::internal(e.to_string())),
    }
}

/// `GET /distribution/{name}/json`: the registry's descriptor of `name` and its platforms,
/// with the credentials of `X-Registry-Auth`; nothing is pulled.
pub async fn distribution(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let r = Reference::parse(name).map_err(|e| Error::invalid(e.to_string()))?;
    let client = crate::engine::registry::client_for(d, r.domain(), registry_auth(&req));
    let r2 = r.clone();
    let remote = blocking(move || berth_image::distribution::inspect(&client, &r2))
        .await?
        .map_err(|e| crate::engine::registry::pull_error(&r, &e))?;
    let platforms = remote
        .platforms
        .into_iter()
        .map(|p| models::OciPlatform {
            architecture: Some(p.architecture),
            os: Some(p.os),
            os_version: p.os_version,
            os_features: None,
            variant: p.variant,
        })
        .collect();
    let body = models::DistributionInspect {
        descriptor: models::OciDescriptor {
            media_type: Some(remote.descriptor.media_type),
            digest: Some(remote.descriptor.digest.to_string()),
            size: Some(i64::try_from(remote.descriptor.size).unwrap_or(i64::MAX)),
        },
        platforms,
    };
    Ok(json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_references() {
        assert!(glob("bus*", "busybox"));
        assert!(!glob("bus*", "a/busybox"));
        assert!(glob("*/app", "user/app"));
        let q = Query::parse(Some("fromImage=busybox&tag=1.36"));
        assert_eq!(
            pull_reference(&q).unwrap().to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert!(pull_reference(&Query::parse(Some("fromImage=Bad"))).is_err());
        assert!(progress_bar(5, 10).starts_with("[========================>"));
    }
}
