//! What berthd (the Docker engine) and berth-cri (the Kubernetes CRI) share in making a
//! container's OCI runtime spec and root: Docker's default capabilities, masked and read-only
//! paths and mounts (`caps.rs`, `defaults.rs`), Berth's default seccomp profile and Docker-format
//! profiles (`seccomp.rs`), users and groups from an image's `/etc/passwd` and `/etc/group`
//! read inside its root (`users.rs`), and the overlayfs root of a container and its
//! `resolv.conf` (`rootfs.rs`). Synchronous, with no knowledge of either engine's API.

pub mod caps;
pub mod defaults;
pub mod rootfs;
pub mod seccomp;
pub mod users;
