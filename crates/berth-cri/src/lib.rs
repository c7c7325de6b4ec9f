//! The Kubernetes Container Runtime Interface (CRI v1) for Berth: the protocol generated from
//! `proto/runtime/v1/api.proto`, the image service over berth-image, and the runtime service.
//! `berth-cri` (`main.rs`) serves both on a unix socket for kubelet and crictl.

/// CRI v1 (generated code: no lints, no length limit).
#[allow(clippy::all, clippy::too_many_lines, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub mod authority;
pub mod images;
pub mod runtime;

use std::path::{Path, PathBuf};

/// Connects a gRPC channel to a CRI server on the unix socket at `path` (for tests and tools).
pub async fn connect_unix(
    path: &Path,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but never used: the connector dials the socket.
    tonic::transport::Endpoint::from_static("http://berth-cri")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
