//! The gRPC protocol between berthd and berth-containerd: Containers, Tasks and Events services,
//! generated from `proto/berth/v1/*.proto` by tonic, and the unix-socket client connector both
//! berthd and the tests use. Both ends depend on this crate, and berth-cri, which will be a
//! client of berth-containerd and shares the connector.

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
