//! The Engine API server: unix-socket listeners, one hyper HTTP/1.1 connection task each (with
//! upgrades, for attach), the version prefix (`/v1.45/...`, every route also unversioned), the
//! headers every response carries, and the routing table.

use std::path::Path;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::api::http::{Resp, error_response, text};
use crate::api::{build, containers, images, system};
use crate::engine::Daemon;
use crate::model::Error;

/// Binds a unix socket, replacing a stale one but never a live daemon's; only its group may
/// connect besides root.
pub async fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let l = berth_proto::bind_unix(path, "daemon").await?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    Ok(l)
}

/// Connections served at once; one more waits until one ends (its client's connect is held in
/// the listen backlog), so no flood of clients can take every descriptor.
const MAX_CONNECTIONS: usize = 4096;
/// How long a client may take to send a request's headers, and to start its next request on
/// a kept-alive connection.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts connections until the listener fails.
pub async fn serve(listener: tokio::net::UnixListener, d: Arc<Daemon>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors (or memory): retrying at once would spin; give the
                // connections being served a moment to end.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let d = d.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let d = d.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(d, req).await) }
            });
            // Title-Case header names, as Go's server writes them.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Compares API versions `a.b`.
fn version_key(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

async fn handle(d: Arc<Daemon>, req: Request<Incoming>) -> Resp {
    let began = std::time::Instant::now();
    let method = req.method().clone();
    let full_path = berth_api::query::path_decode(req.uri().path());
    let (version, path) = berth_api::strip_version(&full_path);
    let mut resp = match version.map(|v| (v, version_key(v))) {
        Some((v, Some(key))) if key > version_key(berth_api::API_VERSION).unwrap_or((1, 45)) => {
            error_response(Error::invalid(format!(
                "client version {v} is too new. Maximum supported API version is {}",
                berth_api::API_VERSION
            )))
        }
        Some((v, Some(key)))
            if key < version_key(berth_api::MIN_API_VERSION).unwrap_or((1, 24)) =>
        {
            error_response(Error::invalid(format!(
                "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                berth_api::MIN_API_VERSION
            )))
        }
        _ => {
            let path = path.to_string();
            match route(&d, &method, &path, req).await {
                Ok(r) => r,
                Err(e) => error_response(e),
            }
        }
    };
    tracing::debug!(%method, path = full_path, status = %resp.status(), elapsed = ?began.elapsed(), "request");
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_static(berth_api::API_VERSION),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&format!("Berth/{} (linux)", env!("CARGO_PKG_VERSION"))) {
        h.insert("Server", v);
    }
    resp
}

/// Splits `/images/NAME/ACTION` where NAME may itself contain slashes (route greedily).
fn image_route(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("/images/")?;
    for action in ["json", "history", "tag", "push", "get"] {
        if let Some(name) = rest.strip_suffix(&format!("/{action}")) {
            if !name.is_empty() {
                return Some((name.to_string(), action));
            }
        }
    }
    (!rest.is_empty()).then(|| (rest.to_string(), ""))
}

async fn route(
    d: &Arc<Daemon>,
    method: &Method,
    path: &str,
    req: Request<Incoming>,
) -> Result<Resp, Error> {
    let path = path.trim_end_matches('/');
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/_ping") => Ok(system::ping(method)),
        (&Method::GET, "/version") => Ok(system::version(d)),
        (&Method::GET, "/info") => Ok(system::info(d).await),
        (&Method::GET, "/events") => crate::api::events::stream(d, req).await,
        (&Method::GET, "/system/df") => Ok(system::df(d).await),
        (&Method::POST, "/system/check") => system::check(d, req).await,
        (&Method::POST, "/auth") => images::auth(d, req).await,
        (&Method::GET, "/images/json") => images::list(d, req).await,
        (&Method::POST, "/images/create") => images::create(d, req).await,
        (&Method::POST, "/commit") => containers::commit(d, req).await,
        (&Method::POST, "/build") => build::build(d, req).await,
        (&Method::POST, "/build/prune") => build::prune(d).await,
        (&Method::POST, "/images/prune") => images::prune(d, req).await,
        (&Method::POST, "/images/load") => images::load(d, req).await,
        (&Method::GET, "/images/get") => {
            let names = crate::api::http::Query::parse(req.uri().query())
                .get_all("names")
                .into_iter()
                .map(str::to_string)
                .collect();
            images::save(d, names).await
        }
        (&Method::POST, "/containers/create") => containers::create(d, req).await,
        (&Method::GET, "/containers/json") => containers::list(d, req).await,
        (&Method::POST, "/containers/prune") => containers::prune(d, req).await,
        (&Method::POST, "/volumes/create") => crate::api::volumes::create(d, req).await,
        (&Method::GET, "/volumes") => crate::api::volumes::list(d, req).await,
        (&Method::POST, "/volumes/prune") => crate::api::volumes::prune(d, req).await,
        (&Method::GET, _) if path.starts_with("/volumes/") => {
            crate::api::volumes::inspect(d, path.trim_start_matches("/volumes/")).await
        }
        (&Method::DELETE, _) if path.starts_with("/volumes/") => {
            let name = path.trim_start_matches("/volumes/").to_string();
            crate::api::volumes::remove(d, &name, req).await
        }
        (&Method::GET, "/networks") => crate::api::networks::list(d, req).await,
        (&Method::POST, "/networks/create") => crate::api::networks::create(d, req).await,
        (&Method::POST, "/networks/prune") => crate::api::networks::prune(d, req).await,
        _ if path.starts_with("/networks/") => {
            let rest = path.trim_start_matches("/networks/");
            let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
            match (method, action) {
                (&Method::GET, "") => crate::api::networks::inspect(d, id).await,
                (&Method::DELETE, "") => crate::api::networks::remove(d, id).await,
                (&Method::POST, "connect") => crate::api::networks::connect(d, id, true, req).await,
                (&Method::POST, "disconnect") => {
                    crate::api::networks::connect(d, id, false, req).await
                }
                _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found\n")),
            }
        }
        _ if swarm_route(path) => Err(not_in_swarm(path)),
        _ if path.starts_with("/containers/") => container_route(d, method, path, req).await,
        (&Method::GET, _) if distribution_name(path).is_some() => {
            let name = distribution_name(path).unwrap_or_default().to_string();
            images::distribution(d, &name, req).await
        }
        _ if path.starts_with("/exec/") => {
            let rest = path.trim_start_matches("/exec/");
            let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
            match (method, action) {
                (&Method::POST, "start") => crate::api::exec::start(d, id, req).await,
                (&Method::GET, "json") => crate::api::exec::inspect(d, id).await,
                (&Method::POST, "resize") => crate::api::exec::resize_exec(d, id, req).await,
                _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found\n")),
            }
        }
        _ => match (method, image_route(path)) {
            (&Method::GET, Some((name, "json"))) => images::inspect(d, &name).await,
            (&Method::GET, Some((name, "history"))) => images::history(d, &name).await,
            (&Method::POST, Some((name, "tag"))) => images::tag(d, &name, req).await,
            (&Method::POST, Some((name, "push"))) => images::push(d, &name, req).await,
            (&Method::GET, Some((name, "get"))) => images::save(d, vec![name]).await,
            (&Method::DELETE, Some((name, _))) if !name.is_empty() => {
                let name = path.trim_start_matches("/images/").to_string();
                images::remove(d, &name, req).await
            }
            _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found\n")),
        },
    }
}

/// The image name of `/distribution/{name}/json` (it may hold slashes).
fn distribution_name(path: &str) -> Option<&str> {
    path.strip_prefix("/distribution/")?
        .strip_suffix("/json")
        .filter(|n| !n.is_empty())
}

/// The swarm-mode routes, which a daemon outside a swarm answers with 503.
fn swarm_route(path: &str) -> bool {
    [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
    ]
    .iter()
    .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// What dockerd outside a swarm answers on a swarm route (berthd has no swarm mode).
fn not_in_swarm(path: &str) -> Error {
    if path == "/swarm/leave" {
        return Error::unavailable("This node is not part of a swarm");
    }
    Error::unavailable(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

async fn container_route(
    d: &Arc<Daemon>,
    method: &Method,
    path: &str,
    req: Request<Incoming>,
) -> Result<Resp, Error> {
    let rest = path.trim_start_matches("/containers/");
    // `DELETE /containers/{parent}/{alias}?link=1`: a link's name has a slash in it.
    if method == Method::DELETE && crate::api::http::Query::parse(req.uri().query()).bool("link") {
        return containers::remove_link(d, rest).await;
    }
    let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
    match (method, action) {
        (&Method::GET, "json") => containers::inspect(d, name).await,
        (&Method::POST, "start") => containers::start(d, name).await,
        (&Method::POST, "stop") => containers::stop(d, name, req).await,
        (&Method::POST, "restart") => containers::restart(d, name, req).await,
        (&Method::POST, "kill") => containers::kill(d, name, req).await,
        (&Method::POST, "wait") => containers::wait(d, name, req).await,
        (&Method::POST, "attach") => containers::attach(d, name, req).await,
        (&Method::GET, "logs") => containers::logs(d, name, req).await,
        (&Method::POST, "rename") => containers::rename(d, name, req).await,
        (&Method::DELETE, "") => containers::remove(d, name, req).await,
        (&Method::POST, "exec") => crate::api::exec::create(d, name, req).await,
        (&Method::POST, "resize") => containers::resize(d, name, req).await,
        (&Method::POST, "update") => containers::update(d, name, req).await,
        (&Method::POST, "pause") => containers::pause(d, name, true).await,
        (&Method::POST, "unpause") => containers::pause(d, name, false).await,
        (&Method::GET, "top") => containers::top(d, name).await,
        (&Method::GET, "stats") => crate::api::stats::stats(d, name, req).await,
        (&Method::HEAD, "archive") => crate::api::archive::head(d, name, req).await,
        (&Method::GET, "archive") => crate::api::archive::get(d, name, req).await,
        (&Method::PUT, "archive") => crate::api::archive::put(d, name, req).await,
        (&Method::GET, "changes") => crate::api::changes::changes(d, name).await,
        (&Method::GET, "export") => crate::api::changes::export(d, name).await,
        _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_with_slashes_route_greedily() {
        assert_eq!(
            image_route("/images/127.0.0.1:5000/a/b:1/json"),
            Some(("127.0.0.1:5000/a/b:1".to_string(), "json"))
        );
        assert_eq!(
            image_route("/images/busybox"),
            Some(("busybox".to_string(), ""))
        );
        assert_eq!(image_route("/images/"), None);
        assert!(version_key("1.41") < version_key("1.45"));
    }
}
