//! System routes: `/_ping`, `/version`, `/info`, `/system/df`, with the fields the docker CLI,
//! docker-py and compose read.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use crate::api::http::{ApiResult, Query, Resp, empty, json, text};
use crate::engine::Daemon;
use crate::model::record::Status;

pub fn ping(method: &Method) -> Resp {
    let mut r = if method == Method::HEAD {
        empty(StatusCode::OK)
    } else {
        text(StatusCode::OK, "OK")
    };
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    r
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => other,
    }
}

fn go_arch() -> String {
    berth_image::manifest::Platform::host().architecture
}

pub fn version(_d: &Daemon) -> Resp {
    use berth_api::responses::{SystemVersion, VersionComponent, VersionPlatform};
    let v = env!("CARGO_PKG_VERSION");
    let details = [
        ("ApiVersion", berth_api::API_VERSION.to_string()),
        ("MinAPIVersion", berth_api::MIN_API_VERSION.to_string()),
        ("Os", "linux".to_string()),
        ("Arch", go_arch()),
        ("KernelVersion", kernel_version()),
        ("Experimental", "false".to_string()),
    ];
    let body = SystemVersion {
        platform: VersionPlatform {
            name: "Berth".into(),
        },
        components: vec![VersionComponent {
            name: "Engine".into(),
            version: v.into(),
            details: details
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }],
        version: v.into(),
        api_version: berth_api::API_VERSION.into(),
        min_api_version: berth_api::MIN_API_VERSION.into(),
        git_commit: "berth".into(),
        go_version: "rust".into(),
        os: "linux".into(),
        arch: go_arch(),
        kernel_version: kernel_version(),
        build_time: String::new(),
    };
    json(StatusCode::OK, &body)
}

/// The host's memory (`/proc/meminfo`'s MemTotal), in bytes.
pub fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /system/df`: disk use of images, containers (their upper dirs) and volumes.
pub async fn df(d: &Arc<Daemon>) -> Resp {
    let d2 = d.clone();
    let (images, layers_size) = tokio::task::spawn_blocking(move || {
        let recs = d2.images.images.list();
        let layers: u64 = d2
            .images
            .layers
            .list()
            .iter()
            .filter_map(|c| d2.images.layers.info(c))
            .map(|i| i.size)
            .sum();
        let list: Vec<_> = recs
            .iter()
            .map(|r| crate::api::images::summary(&d2, r))
            .collect();
        (list, layers)
    })
    .await
    .unwrap_or_default();
    let mut containers = Vec::new();
    for h in d.containers.all() {
        let r = h.lock().await.clone();
        let mut v = crate::api::containers::summary(&r);
        let upper = d.containers.dir(&r.id).join("upper");
        let size = crate::engine::blocking(|| crate::volumes::dir_size(&upper));
        v.size_rw = Some(i64::try_from(size).unwrap_or(i64::MAX));
        containers.push(v);
    }
    let build_cache = crate::engine::blocking(|| crate::build::cache::usage(d));
    let mut volumes = Vec::new();
    for mut v in d.volumes.all() {
        let data = std::path::PathBuf::from(&v.mountpoint);
        let size = crate::engine::blocking(|| crate::volumes::dir_size(&data));
        let users = crate::engine::volumes::users(d, &v.name).await.len();
        v.usage_data = Some(berth_api::models::VolumeUsageData {
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ref_count: i64::try_from(users).unwrap_or(i64::MAX),
        });
        volumes.push(v);
    }
    json(
        StatusCode::OK,
        &berth_api::responses::DiskUsage {
            layers_size: i64::try_from(layers_size).unwrap_or(i64::MAX),
            images,
            containers,
            volumes,
            build_cache,
        },
    )
}

pub async fn info(d: &Arc<Daemon>) -> Resp {
    use berth_api::responses::{PluginsInfo, RegistryConfig, RuntimeInfo, SwarmInfo, SystemInfo};
    let images = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || d.images.images.list().len())
            .await
            .unwrap_or(0)
    };
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let views = d.containers.views();
    let count = |s: Status| views.iter().filter(|r| r.state.status == s).count();
    let runtime = |p: &str| RuntimeInfo { path: p.into() };
    let mut info = SystemInfo {
        id: d.id.clone(),
        containers: views.len(),
        containers_running: count(Status::Running) + count(Status::Restarting),
        containers_paused: count(Status::Paused),
        containers_stopped: views.len()
            - count(Status::Running)
            - count(Status::Restarting)
            - count(Status::Paused),
        images,
        driver: "overlay2".into(),
        driver_status: vec![
            ["Backing Filesystem".into(), "extfs".into()],
            ["Supports d_type".into(), "true".into()],
        ],
        plugins: PluginsInfo {
            volume: strings(&["local"]),
            network: strings(&["bridge", "host", "null"]),
            log: strings(&["json-file"]),
        },
        system_time: berth_clock::rfc3339_now(),
        logging_driver: "json-file".into(),
        kernel_version: kernel_version(),
        operating_system: os_name(),
        os_type: "linux".into(),
        architecture: arch().into(),
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: RegistryConfig {
            insecure_registry_cidrs: strings(&["127.0.0.0/8", "::1/128"]),
            ..Default::default()
        },
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total: mem_total(),
        docker_root_dir: d.data_root.display().to_string(),
        name: hostname,
        server_version: env!("CARGO_PKG_VERSION").into(),
        runtimes: [("berth-runc", "berth-runc"), ("runc", "runc")]
            .into_iter()
            .map(|(k, p)| (k.to_string(), runtime(p)))
            .collect(),
        default_runtime: "berth-runc".into(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
            ..Default::default()
        },
        live_restore_enabled: true,
        security_options: strings(&["name=seccomp,profile=builtin"]),
        warnings: d.sysinfo.info_warnings(),
        ..Default::default()
    };
    d.sysinfo.fill_info(&mut info);
    json(StatusCode::OK, &info)
}

/// `POST /system/check?fix=1` (a Berth extension): the leftovers of crashed operations, removed
/// with `fix`.
pub async fn check(d: &Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let fix = Query::parse(req.uri().query()).bool("fix");
    let found = crate::engine::check::check(d, fix).await;
    Ok(json(StatusCode::OK, &found))
}
