//! The test kit every Berth integration test uses: temporary data and exec roots, free ports and
//! subnets that parallel tests never share, a busybox OCI image and runtime bundle built from the
//! host's `/bin/busybox` (Debian's busybox-static), a real `docker-registry` on loopback, waiting
//! on conditions instead of sleeping, and cleanup that runs even when a test fails.
//!
//! Nothing here is a mock: it drives the same kernel, binaries and registry a user would.

pub mod alloc;
pub mod busybox;
pub mod certs;
pub mod cleanup;
pub mod dockerd;
pub mod files;
pub mod hostile;
pub mod leftovers;
pub mod registry;
pub mod roots;
pub mod wait;

pub use alloc::{Subnet, free_port};
pub use busybox::{Blob, Bundle, BusyboxImage};
pub use cleanup::Cleanup;
pub use dockerd::Dockerd;
pub use registry::{Registry, RegistryAuth};
pub use roots::TestRoots;
pub use wait::wait_for;

use std::path::PathBuf;

/// Path of a binary built by this workspace (`target/<profile>/NAME`), found next to the running
/// test executable's directory, so tests run exactly what `cargo build` produced.
pub fn workspace_bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/test-xxxx -> target/<profile>/NAME
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    profile_dir.join(name)
}

/// Checks that the binary at `bin` answers `--help` with a usage text and `--version` with its
/// name and the workspace version, both exiting 0.
pub fn assert_help_and_version(bin: &std::path::Path, name: &str) {
    for (flag, want) in [("--help", "sage"), ("--version", env!("CARGO_PKG_VERSION"))] {
        #[allow(clippy::disallowed_methods)] // the binary under test
        let out = std::process::Command::new(bin)
            .arg(flag)
            .output()
            .unwrap_or_else(|e| panic!("running {} {flag}: {e}", bin.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} {flag} failed: {out:?}");
        assert!(text.contains(want), "{name} {flag} printed {text:?}");
        if flag == "--version" {
            assert!(text.starts_with(name), "{name} --version printed {text:?}");
        }
    }
}
