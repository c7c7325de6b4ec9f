//! Integration tests: v1 on the real host, v2 file logic on a mock tree, v2 core files and device
//! filters on the host's controller-less cgroup2 mount.

mod common;
mod v1_host;
mod v2_mock;
mod v2_unified;
