//! Named volumes with the `local` driver: `<data-root>/volumes/<name>/_data`, with the volume's
//! record in `<name>/volume.json`; the Engine API routes (create, list, inspect, remove, prune);
//! and the resolution of volume names in a container's binds and mounts into host paths.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use crate::Daemon;
use crate::container::valid_name;
use crate::http::{ApiError, ApiResult, Query, empty, json, parse_json, read_body};

fn root(d: &Daemon) -> PathBuf {
    d.data_root.join("volumes")
}

fn record_path(d: &Daemon, name: &str) -> PathBuf {
    root(d).join(name).join("volume.json")
}

/// The volume's record, if it exists.
pub fn get(d: &Daemon, name: &str) -> Option<Value> {
    if !valid_name(name) {
        return None;
    }
    std::fs::read(record_path(d, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Creates a volume (or returns the existing one of that name, as dockerd does).
pub fn ensure(d: &Daemon, name: &str, labels: Value, anonymous: bool) -> Result<Value, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if let Some(v) = get(d, name) {
        return Ok(v);
    }
    let dir = root(d).join(name);
    let data = dir.join("_data");
    std::fs::create_dir_all(&data)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", data.display())))?;
    let mut labels = if labels.is_object() {
        labels
    } else {
        json!({})
    };
    if anonymous {
        labels["com.docker.volume.anonymous"] = json!("");
    }
    let v = json!({
        "Name": name,
        "Driver": "local",
        "Mountpoint": data.display().to_string(),
        "CreatedAt": berth_clock::rfc3339_now(),
        "Labels": labels,
        "Scope": "local",
        "Options": {},
    });
    let tmp = dir.join("volume.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, record_path(d, name)))
        .map_err(|e| ApiError::internal(format!("storing volume {name}: {e}")))?;
    Ok(v)
}

/// Containers using a volume.
pub async fn users(d: &Daemon, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in d.containers.all() {
        let r = h.lock().await;
        if r.volumes.iter().any(|v| v == name) {
            out.push(r.id.clone());
        }
    }
    out
}

/// Rewrites `Binds` and `Mounts` of type volume to host paths, creating missing volumes;
/// returns the volume names used. Anonymous volumes (`Mounts` without a source) get new names.
pub fn resolve(d: &Daemon, hc: &mut Value) -> Result<Vec<String>, ApiError> {
    let mut used = Vec::new();
    if let Some(binds) = hc["Binds"].as_array_mut() {
        for b in binds.iter_mut() {
            let Some(spec) = b.as_str() else { continue };
            let (src, rest) = spec.split_once(':').unwrap_or((spec, ""));
            if src.starts_with('/') || rest.is_empty() {
                continue;
            }
            let v = ensure(d, src, json!({}), false)?;
            used.push(src.to_string());
            *b = json!(format!(
                "{}:{rest}",
                v["Mountpoint"].as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(mounts) = hc["Mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["Type"] != "volume" {
                continue;
            }
            let given = m["Source"].as_str().unwrap_or_default().to_string();
            let (name, anon) = if given.is_empty() {
                (crate::container::new_id(), true)
            } else {
                (given, false)
            };
            let labels = m["VolumeOptions"]["Labels"].clone();
            let v = ensure(d, &name, labels, anon)?;
            used.push(name);
            m["Type"] = json!("bind");
            m["Source"] = v["Mountpoint"].clone();
        }
    }
    Ok(used)
}

/// Removes a volume's directory (the caller checked it is unused).
fn destroy(d: &Daemon, name: &str) -> u64 {
    d.events
        .emit("volume", "destroy", name, json!({"driver": "local"}));
    let dir = root(d).join(name);
    let size = dir_size(&dir.join("_data"));
    let _ = std::fs::remove_dir_all(&dir);
    size
}

pub fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn all(d: &Daemon) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(root(d))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| get(d, &e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    out
}

/// `POST /volumes/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let v: Value = parse_json(&body)?;
    if let Some(drv) = v["Driver"]
        .as_str()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {drv}: plugin \"{drv}\" not found"
        )));
    }
    let name = v["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(crate::container::new_id);
    let vol = ensure(d, &name, v["Labels"].clone(), false)?;
    d.events
        .emit("volume", "create", &name, json!({"driver": "local"}));
    Ok(json(StatusCode::CREATED, &vol))
}

/// `GET /volumes?filters=`.
pub async fn list(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let filters = q.filters()?;
    let mut out = Vec::new();
    for v in all(d) {
        let name = v["Name"].as_str().unwrap_or_default().to_string();
        let mut keep = true;
        for (k, want) in &filters {
            keep &= match k.as_str() {
                "name" => name.contains(want.as_str()),
                "driver" => want == "local",
                "label" => match want.split_once('=') {
                    Some((lk, lv)) => v["Labels"][lk].as_str() == Some(lv),
                    None => v["Labels"].get(want).is_some(),
                },
                "dangling" => (want == "true" || want == "1") == users(d, &name).await.is_empty(),
                other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
            };
        }
        if keep {
            out.push(v);
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({"Volumes": out, "Warnings": []}),
    ))
}

/// `GET /volumes/{name}`.
pub async fn inspect(d: &Arc<Daemon>, name: &str) -> ApiResult {
    get(d, name)
        .map(|v| json(StatusCode::OK, &v))
        .ok_or_else(|| ApiError::not_found(format!("get {name}: no such volume")))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(d: &Arc<Daemon>, name: &str, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    if get(d, name).is_none() {
        if q.bool("force") {
            return Ok(empty(StatusCode::NO_CONTENT));
        }
        return Err(ApiError::not_found(format!("get {name}: no such volume")));
    }
    let using = users(d, name).await;
    if !using.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            using.join(", ")
        )));
    }
    destroy(d, name);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Removes the anonymous volumes of a removed container (`docker rm -v`, `--rm`).
pub async fn remove_anonymous(d: &Daemon, names: &[String]) {
    for n in names {
        let anon =
            get(d, n).is_some_and(|v| v["Labels"].get("com.docker.volume.anonymous").is_some());
        if anon && users(d, n).await.is_empty() {
            destroy(d, n);
        }
    }
}

/// `POST /volumes/prune`: unused volumes (anonymous only unless `all=true`, as Docker 23+).
pub async fn prune(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let every = q
        .filters()?
        .iter()
        .any(|(k, v)| k == "all" && (v == "true" || v == "1"));
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in all(d) {
        let name = v["Name"].as_str().unwrap_or_default().to_string();
        let anon = v["Labels"].get("com.docker.volume.anonymous").is_some();
        if (every || anon) && users(d, &name).await.is_empty() {
            reclaimed += destroy(d, &name);
            deleted.push(name);
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
