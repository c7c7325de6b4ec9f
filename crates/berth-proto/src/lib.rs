//! The gRPC protocol between berthd and berth-containerd: Containers, Tasks and Events services,
//! generated from `proto/berth/v1/*.proto` by tonic. Both ends depend on this crate; nothing else
//! does.

/// The metadata key that scopes every call to a tenant namespace.
pub const NAMESPACE_HEADER: &str = "berth-namespace";

/// Version 1 of the protocol.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}
