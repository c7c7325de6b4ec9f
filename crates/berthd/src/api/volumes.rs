//! The volume routes: create, list, inspect, remove, prune.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::api::http::{ApiResult, Query, empty, json, parse_json, read_body};
use berth_api::models::{self, VolumeCreateOptions};

use crate::engine::Daemon;
use crate::engine::volumes::{destroy, users};
use crate::model::Error;

/// A checked `POST /volumes/create` body: the name (a new id when none is given) and labels.
#[derive(Debug)]
pub struct VolumeCreate {
    pub name: String,
    pub labels: std::collections::HashMap<String, String>,
}

/// Parses a `POST /volumes/create` body: only the `local` driver, a name by Docker's rule.
pub fn parse_create(body: &[u8]) -> Result<VolumeCreate, Error> {
    let v: VolumeCreateOptions = parse_json(body)?;
    if let Some(drv) = v
        .driver
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(Error::not_found(format!(
            "error looking up volume plugin {drv}: plugin \"{drv}\" not found"
        )));
    }
    let name = v
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(crate::model::ids::new_id);
    crate::volumes::check_name(&name)?;
    Ok(VolumeCreate {
        name,
        labels: v.labels.unwrap_or_default(),
    })
}

/// `POST /volumes/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let VolumeCreate { name, labels } = parse_create(&body)?;
    let vol = d.volumes.ensure(&name, labels, false)?;
    d.events.emit(
        "volume",
        "create",
        &name,
        crate::engine::events::attrs([("driver", "local".into())]),
    );
    Ok(json(StatusCode::CREATED, &vol))
}

/// `GET /volumes?filters=`.
pub async fn list(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    let mut out = Vec::new();
    for v in d.volumes.all() {
        let name = v.name.clone();
        let mut keep = true;
        for (k, want) in &filters {
            keep &= match k.as_str() {
                "name" => name.contains(want.as_str()),
                "driver" => want == "local",
                "label" => match want.split_once('=') {
                    Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
                    None => v.labels.contains_key(want),
                },
                "dangling" => (want == "true" || want == "1") == users(d, &name).await.is_empty(),
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            };
        }
        if keep {
            out.push(v);
        }
    }
    Ok(json(
        StatusCode::OK,
        &models::VolumeListResponse {
            volumes: Some(out),
            warnings: Some(Vec::new()),
        },
    ))
}

/// `GET /volumes/{name}`.
pub async fn inspect(d: &Arc<Daemon>, name: &str) -> ApiResult {
    d.volumes
        .get(name)
        .map(|v| json(StatusCode::OK, &v))
        .ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    if d.volumes.get(name).is_none() {
        if q.bool("force") {
            return Ok(empty(StatusCode::NO_CONTENT));
        }
        return Err(Error::not_found(format!("get {name}: no such volume")));
    }
    let using = users(d, name).await;
    if !using.is_empty() {
        return Err(Error::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            using.join(", ")
        )));
    }
    destroy(d, name);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`: unused volumes (anonymous only unless `all=true`, as Docker 23+).
pub async fn prune(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    // Before API 1.42, prune took every unused volume; since, only anonymous ones unless
    // `all` is set.
    let before_1_42 = berth_api::strip_version(req.uri().path())
        .0
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .is_some_and(|v| v < (1, 42));
    let every = before_1_42
        || filters
            .iter()
            .any(|(k, v)| k == "all" && (v == "true" || v == "1"));
    let selected = crate::api::http::PruneFilters::parse(&filters, &["all"])?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in d.volumes.all() {
        let name = v.name.clone();
        let anon = v.labels.contains_key(crate::volumes::ANONYMOUS);
        let created = v.created_at.as_deref().unwrap_or_default();
        if (every || anon)
            && selected.selects(created, |k| v.labels.get(k).map(String::as_str))
            && users(d, &name).await.is_empty()
        {
            reclaimed += destroy(d, &name);
            deleted.push(name);
        }
    }
    Ok(json(
        StatusCode::OK,
        &models::VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed as i64),
        },
    ))
}
