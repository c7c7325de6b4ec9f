//! The gRPC protocol between berthd and berth-containerd: Containers, Tasks and Events services,
//! generated from `proto/berth/v1/*.proto` by tonic; the unix-socket client connector berthd,
//! berth-cri and the tests use; and what the daemons share to serve on a unix socket (the
//! socket's bind, the shutdown signal, the runtime a daemon runs on). Both ends depend on this
//! crate, and berth-cri, which will be a client of berth-containerd.

use std::path::{Path, PathBuf};

/// The metadata key that scopes every call to a tenant namespace.
pub const NAMESPACE_HEADER: &str = "berth-namespace";

/// The namespace used when a call names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Version 1 of the protocol (generated code: no lints, no length limit).
#[allow(clippy::all, clippy::too_many_lines, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

/// Connects a gRPC channel to a server listening on the unix socket at `path`.
pub async fn connect_unix(
    path: &Path,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but never used: the connector dials the socket.
    tonic::transport::Endpoint::from_static("http://berth-containerd")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}

/// Adds the tenant namespace to a request.
pub fn with_namespace<T>(namespace: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = namespace.parse() {
        req.metadata_mut().insert(NAMESPACE_HEADER, v);
    }
    req
}

/// Binds a server's unix socket, making its directory; a stale socket (a file nobody answers
/// on) is replaced, a live server's never (`another NAME is listening on PATH`).
pub async fn bind_unix(path: &Path, name: &str) -> std::io::Result<tokio::net::UnixListener> {
    let with = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(with(format!("creating {}", dir.display())))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another {name} is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path).map_err(with(format!(
            "removing the stale socket {}",
            path.display()
        )))?;
    }
    tokio::net::UnixListener::bind(path).map_err(with(format!("listening on {}", path.display())))
}

/// Makes a daemon's data or run root readable by root alone: created 0700, and what an
/// existing directory allows other users is taken away (its group keeps passing through, as
/// the socket's group of a daemon's exec root must).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let with = |what: &str| {
        let what = format!("{what} {}", dir.display());
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(with("creating"))?;
    let mode = std::fs::metadata(dir)
        .map_err(with("reading"))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o027 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7750))
            .map_err(with("restricting"))?;
    }
    Ok(())
}

/// Resolves when the process gets SIGINT or SIGTERM: a server's graceful end.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Runs a daemon's `serve` on a two-worker runtime; an error is printed as `name: error`
/// with its causes, and the exit code says how it ended.
pub fn run_daemon<E: std::fmt::Display>(
    name: &str,
    serve: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
