//! `POST /build`: the build context (a tar, plain or compressed) unpacked inside a temp dir
//! under the data root (as a layer is: nothing in it reaches outside), the classic builder
//! run on it, and its progress streamed as Docker's JSON lines (`stream`, `aux` with the
//! image id, `errorDetail`).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::responses::{Aux, JsonMessage};
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
    })
}

/// `POST /build`.
pub async fn build(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let mut opts = options(&q)?;
    opts.registry_auth = crate::api::images::registry_config(&req);
    let tar = crate::api::images::body_to_temp_file(d, req).await?;
    let tmp_dir = d.data_root.join("tmp");
    let context = tokio::task::spawn_blocking(move || {
        let dir = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&tmp_dir)
            .map_err(|e| Error::internal(format!("making the context dir: {e}")))?;
        let f = std::fs::File::open(tar.path())
            .map_err(|e| Error::internal(format!("reading the context: {e}")))?;
        berth_image::unpack::unpack(dir.path(), f, berth_image::unpack::Limits::default())
            .map_err(|e| Error::invalid(format!("the build context: {e}")))?;
        Ok::<_, Error>(dir)
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))??;
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
            let r = crate::build::run::build(&d, context.path(), &opts, &tx).await;
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
    let deleted = tokio::task::spawn_blocking(move || crate::build::cache::prune(&d2))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    Ok(crate::api::http::json(
        hyper::StatusCode::OK,
        &berth_api::models::BuildPruneResponse {
            caches_deleted: Some(deleted),
            space_reclaimed: Some(0),
        },
    ))
}
