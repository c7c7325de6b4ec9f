//! `berthd`: the daemon's engine and Engine API, as a library (the `berthd` binary is its
//! command line and start-up). It serves the Docker Engine API on a unix socket, owns images, networks,
//! volumes and container metadata, turns a Docker "create" into an OCI spec and drives
//! berth-containerd over gRPC. It never calls the OCI runtime itself.
//!
//! Its modules, one folder per layer, each importing only those below it:
//!
//! | module | layer |
//! |---|---|
//! | `api/` | the Engine API: listener, routing, versions, Docker's error and stream shapes, one module per route family |
//! | `build/` | image build, below the API and above the engine: the Dockerfile front end, the classic builder and its cache |
//! | `engine/` | containers: store and records, lifecycle through berth-containerd, exec, health, logs, events, endpoints, crash checks |
//! | `net/`, `volumes/` | networks and volumes, beside the engine, knowing nothing of containers' lifecycle |
//! | `oci/` | the OCI bundle: spec builder, seccomp profile, host features, overlayfs rootfs |
//! | `containerd.rs` | the berth-containerd client and its supervisor |
//! | `model/` | the shared types: errors by kind, records, health, attachments, ports, ids |
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod build;
pub mod containerd;
pub mod engine;
pub mod model;
pub mod net;
pub mod oci;
pub mod volumes;
