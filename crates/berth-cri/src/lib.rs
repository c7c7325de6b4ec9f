//! The Kubernetes Container Runtime Interface (CRI v1) for Berth: the protocol generated from
//! `proto/runtime/v1/api.proto`, the image service over berth-image, and the runtime service
//! (pods and containers over berth-containerd, pod networking through CNI).
//! `berth-cri` (`main.rs`) serves both on a unix socket for kubelet and crictl.

/// CRI v1 (generated code: no lints, no length limit).
#[allow(clippy::all, clippy::too_many_lines, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub mod attach;
pub mod authority;
pub mod cni;
pub mod containers;
pub mod exec_stream;
pub mod images;
pub mod logs;
pub mod lower;
pub mod pods;
pub mod runtime;
pub mod spdy;
pub mod spec;
pub mod store;
pub mod streaming;

/// Connects a gRPC channel to a CRI server on the unix socket at `path` (for tests and tools).
pub use berth_proto::connect_unix;
