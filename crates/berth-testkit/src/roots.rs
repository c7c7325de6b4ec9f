//! Per-test data and exec roots, so daemons under test never share state or sockets.

use std::path::{Path, PathBuf};

/// A data root, an exec root and socket paths under one temporary directory, removed on drop.
/// The directory lives directly under /tmp so socket paths stay well under the 108-byte limit.
pub struct TestRoots {
    dir: tempfile::TempDir,
    exec: &'static str,
}

impl TestRoots {
    pub fn new() -> anyhow::Result<Self> {
        Self::with_exec_dir("exec")
    }

    /// Roots whose exec root has a long name (55 bytes), so that sockets deep below it (a
    /// task's shim socket) would not fit a unix socket address as plain paths.
    pub fn with_long_exec_root() -> anyhow::Result<Self> {
        Self::with_exec_dir("exec-root-with-a-long-name-as-some-hosts-have-for-their")
    }

    fn with_exec_dir(exec: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("bt-").tempdir_in("/tmp")?;
        std::fs::create_dir(dir.path().join("data"))?;
        std::fs::create_dir(dir.path().join(exec))?;
        Ok(Self { dir, exec })
    }

    /// The whole temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data root (`--data-root`).
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The exec root (`--exec-root`).
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join(self.exec)
    }

    /// The Engine API socket of a daemon under test.
    pub fn api_socket(&self) -> PathBuf {
        self.exec_root().join("berth.sock")
    }

    /// The gRPC socket of a berth-containerd under test.
    pub fn containerd_socket(&self) -> PathBuf {
        self.exec_root().join("containerd.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_distinct_and_removed() {
        let a = TestRoots::new().unwrap();
        let b = TestRoots::new().unwrap();
        assert_ne!(a.data_root(), b.data_root());
        assert!(a.api_socket().as_os_str().len() < 100);
        let kept = a.path().to_path_buf();
        assert!(kept.join("exec").is_dir());
        drop(a);
        assert!(!kept.exists());
    }
}
