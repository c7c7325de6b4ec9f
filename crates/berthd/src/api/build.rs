//! `POST /build`: the build context (a tar, plain or compressed) unpacked inside a temp dir
//! under the data root (as a layer is: nothing in it reaches outside), the classic builder
//! run on it, and its progress streamed as Docker's JSON lines (`stream`, `aux` with the
//! image id, `errorDetail`).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::host_config::{HostConfig, Ulimit};
use berth_api::responses::{Aux, JsonMessage};
use berth_image::manifest::Platform;
use hyper::Request;
use hyper::body::Incoming;

use crate::api::http::{ApiResult, JsonStream, Query};
use crate::build::run::{Options, Progress};
use crate::engine::Daemon;
use crate::model::Error;

/// The build's options from the query string.
fn options(q: &Query) -> Result<Options, Error> {
    let json_map = |k: &str| -> Result<BTreeMap<String, String>, Error> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => {
                let m: BTreeMap<String, Option<String>> =
                    serde_json::from_str(v).map_err(|e| Error::invalid(format!("{k}: {e}")))?;
                Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
            }
        }
    };
    let mut tags = Vec::new();
    for t in q.get_all("t").into_iter().filter(|t| !t.is_empty()) {
        tags.push(
            berth_image::Reference::parse(t)
                .map_err(|e| Error::invalid(format!("invalid tag {t:?}: {e}")))?,
        );
    }
    Ok(Options {
        dockerfile: q
            .get("dockerfile")
            .filter(|f| !f.is_empty())
            .unwrap_or("Dockerfile")
            .to_string(),
        tags,
        build_args: json_map("buildargs")?,
        labels: json_map("labels")?,
        network_mode: q.get("networkmode").unwrap_or_default().to_string(),
        force_rm: q.bool("forcerm"),
        no_cache: q.bool("nocache"),
        target: q
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        registry_auth: BTreeMap::new(),
        secrets: BTreeMap::new(),
        cache_from: Vec::new(),
        run_host_config: run_host_config(q)?,
        context_index: Arc::default(),
    })
}

/// What RUN containers get from the request: `shmsize`, `extrahosts` (repeated, or
/// comma-separated), `cgroupparent`, the memory and CPU limits and `ulimits`, as dockerd's
/// classic builder gives them. A `platform` other than this host's is refused (nothing here
/// runs another architecture's programs); `cachefrom` is checked for form only.
fn run_host_config(q: &Query) -> Result<HostConfig, Error> {
    let int = |k: &str| -> Result<i64, Error> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| Error::invalid(format!("invalid {k} {v:?}: an integer"))),
        }
    };
    let text = |k: &str| q.get(k).unwrap_or_default().to_string();
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let asked = Platform::parse(p).map_err(|e| Error::invalid(e.to_string()))?;
        let host = Platform::host();
        if (asked.os.as_str(), asked.architecture.as_str())
            != (host.os.as_str(), host.architecture.as_str())
        {
            return Err(Error::invalid(format!(
                "platform {p} is not supported: this builder builds for {}/{}",
                host.os, host.architecture
            )));
        }
    }
    if let Some(c) = q.get("cachefrom").filter(|c| !c.is_empty()) {
        serde_json::from_str::<Option<Vec<String>>>(c)
            .map_err(|e| Error::invalid(format!("cachefrom: {e}")))?;
    }
    let ulimits = match q.get("ulimits").filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => serde_json::from_str::<Option<Vec<Ulimit>>>(u)
            .map_err(|e| Error::invalid(format!("ulimits: {e}")))?,
    };
    let extra_hosts: Vec<String> = q
        .get_all("extrahosts")
        .into_iter()
        .flat_map(|h| h.split(','))
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    let shm_size = int("shmsize")?;
    if shm_size < 0 {
        return Err(Error::invalid("SHM size can not be less than 0"));
    }
    let mut hc = HostConfig {
        shm_size,
        extra_hosts: Some(extra_hosts).filter(|h| !h.is_empty()),
        ..Default::default()
    };
    let r = &mut hc.resources;
    (r.memory, r.memory_swap, r.cpu_shares) = (int("memory")?, int("memswap")?, int("cpushares")?);
    (r.cpu_period, r.cpu_quota) = (int("cpuperiod")?, int("cpuquota")?);
    (r.cpuset_cpus, r.cpuset_mems) = (text("cpusetcpus"), text("cpusetmems"));
    r.cgroup_parent = text("cgroupparent");
    r.ulimits = ulimits;
    Ok(hc)
}

/// The secrets `berth build --secret` sends (`X-Berth-Build-Secrets`: base64 JSON of id to
/// base64 content), for `RUN --mount=type=secret`; at most 512 KiB in all.
fn secrets<T>(req: &Request<T>) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    use base64::Engine;
    const HEADER: &str = "X-Berth-Build-Secrets";
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(BTreeMap::new());
    };
    if raw.len() > 700 << 10 {
        return Err(Error::invalid("build secrets: at most 512 KiB"));
    }
    let bad = || Error::invalid(format!("{HEADER}: base64 JSON of id to base64 content"));
    let v = crate::api::images::auth_header(req, HEADER).ok_or_else(bad)?;
    let ids: BTreeMap<String, String> = serde_json::from_value(v).map_err(|_| bad())?;
    ids.into_iter()
        .map(|(id, b64)| {
            let value = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad())?;
            Ok((id, value))
        })
        .collect()
}

/// The request's body as it arrives, read by the blocking unpacker.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.cur = chunk?,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Unpacks the context (a tar, plain or compressed) into a temp dir as its bytes arrive,
/// hashing each file on the way through: the COPY steps' cache keys come from that index, so
/// the context is neither stored whole first nor read again for an unchanged build.
async fn receive_context(
    d: &Daemon,
    req: Request<Incoming>,
) -> Result<(tempfile::TempDir, berth_image::content_index::ContentIndex), Error> {
    use http_body_util::BodyExt;
    let tmp_dir = d.data_root.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::internal(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&tmp_dir)
        .map_err(|e| Error::internal(format!("making the context dir: {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let path = dir.path().to_path_buf();
    let unpack = tokio::task::spawn_blocking(move || {
        let body = BodyReader {
            rx,
            cur: bytes::Bytes::new(),
        };
        berth_image::unpack::unpack_indexed(&path, body, berth_image::unpack::Limits::default())
    });
    let mut body = req.into_body();
    let mut tx = Some(tx);
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(f) => match f.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue, // trailers
            },
            Err(e) => Err(std::io::Error::other(format!("reading the body: {e}"))),
        };
        let failed = chunk.is_err();
        // After the unpacker stopped (a bad tar) the rest is read and dropped: the client,
        // still sending, then gets the error instead of a broken pipe.
        if let Some(t) = &tx {
            if t.send(chunk).await.is_err() {
                tx = None;
            }
        }
        if failed {
            break;
        }
    }
    drop(tx);
    let (_, index) = unpack
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?
        .map_err(|e| Error::invalid(format!("the build context: {e}")))?;
    Ok((dir, index))
}

/// `POST /build`.
pub async fn build(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let mut opts = options(&q)?;
    opts.registry_auth = crate::api::images::registry_config(&req);
    opts.secrets = secrets(&req)?;
    // `cachefrom` images that are not here are left out, as dockerd does.
    let names: Option<Vec<String>> = q
        .get("cachefrom")
        .filter(|c| !c.is_empty())
        .and_then(|c| serde_json::from_str(c).ok())
        .flatten();
    opts.cache_from = names
        .unwrap_or_default()
        .iter()
        .filter_map(|n| d.images.images.resolve(n).ok())
        .collect();
    let (context, index) = receive_context(d, req).await?;
    opts.context_index = Arc::new(index);
    let (stream, resp) = JsonStream::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let d = d.clone();
    // `q`: the image id alone, as dockerd's suppressed output is.
    let quiet = q.bool("q");
    tokio::spawn(async move {
        let relay = async {
            while let Some(p) = rx.recv().await {
                match p {
                    Progress::Stream(_) if quiet => {}
                    Progress::Stream(s) => {
                        stream.send(&JsonMessage::stream(s)).await;
                    }
                    Progress::Built(id) => {
                        let line = format!("{id}\n");
                        stream.send(&JsonMessage::aux(Aux::Built { id })).await;
                        if quiet {
                            stream.send(&JsonMessage::stream(line)).await;
                        }
                    }
                }
            }
            stream
        };
        let work = async move {
            let r = crate::build::stages::build(&d, context.path(), &opts, &tx).await;
            drop(tx);
            drop(context);
            r
        };
        let (stream, result) = tokio::join!(relay, work);
        if let Err(e) = result {
            stream.send(&JsonMessage::error(e.to_string())).await;
        }
    });
    Ok(resp)
}

/// `POST /build/prune`: forgets the build cache.
pub async fn prune(d: &Arc<Daemon>) -> ApiResult {
    let d2 = d.clone();
    let (deleted, reclaimed) = tokio::task::spawn_blocking(move || crate::build::cache::prune(&d2))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    Ok(crate::api::http::json(
        hyper::StatusCode::OK,
        &berth_api::models::BuildPruneResponse {
            caches_deleted: Some(deleted),
            space_reclaimed: Some(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
        },
    ))
}
