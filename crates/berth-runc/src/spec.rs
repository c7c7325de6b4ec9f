//! Loading a bundle's `config.json`: JSON first (to drop capability names this runtime does not
//! know, as the spec asks), then the typed OCI spec, then the checks `create` relies on.

use std::path::{Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::Spec;

use crate::caps::{self, CapSets};

/// A validated bundle: the spec, the resolved rootfs and the process's capability sets.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    pub caps: CapSets,
}

/// Reads and checks `<bundle>/config.json`.
pub fn load(bundle: &Path) -> anyhow::Result<Bundle> {
    let dir = std::path::absolute(bundle)
        .with_context(|| format!("resolving bundle {}", bundle.display()))?;
    let path = dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "JSON specification file config.json not found in {}",
                dir.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let mut caps = CapSets::default();
    if let Some(process) = value.get_mut("process") {
        caps = caps::parse_known(process)?;
    }
    let spec: Spec =
        serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))?;
    let root = spec.root().as_ref().context("config.json has no root")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let meta = std::fs::metadata(&rootfs)
        .with_context(|| format!("rootfs ({}) does not exist", rootfs.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "rootfs ({}) is not a directory",
        rootfs.display()
    );
    let rootfs = rootfs
        .canonicalize()
        .with_context(|| format!("resolving rootfs {}", rootfs.display()))?;
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        caps,
    })
}

/// Checks a container id the way runc does: letters, digits, `_+-.`, not `.` or `..`.
pub fn validate_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    anyhow::ensure!(ok, "invalid container id format: {id:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_like_runc() {
        assert!(validate_id("abc-1_2.x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
