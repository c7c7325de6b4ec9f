//! The OCI bundle of a container: its runtime spec built from Docker's create request
//! (`spec`, with Docker's default seccomp profile and the cgroup limits of `resources`), the host's cgroup features the spec must
//! respect (`sysinfo`), and its overlayfs root filesystem (`rootfs`).

pub mod propagation;
pub mod resources;
pub mod rootfs;
pub mod spec;
pub mod sysinfo;
