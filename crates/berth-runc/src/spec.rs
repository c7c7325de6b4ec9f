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
    let mut spec: Spec =
        serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))?;
    resolve_mount_paths(&mut spec, &dir);
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

/// Makes every `mounts[]` path absolute, as the OCI spec reads them: a relative destination
/// is relative to the container's `/`, and a relative bind source to the bundle directory.
fn resolve_mount_paths(spec: &mut Spec, bundle_dir: &Path) {
    let Some(mounts) = spec.mounts_mut() else {
        return;
    };
    for m in mounts.iter_mut() {
        if !m.destination().is_absolute() {
            let dest = Path::new("/").join(m.destination());
            m.set_destination(dest);
        }
        let options = m.options().as_deref().unwrap_or(&[]);
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        let relative_source = m
            .source()
            .as_ref()
            .filter(|s| !s.is_absolute() && !s.as_os_str().is_empty())
            .cloned();
        if let Some(src) = relative_source.filter(|_| is_bind) {
            m.set_source(Some(bundle_dir.join(src)));
        }
    }
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

    #[test]
    fn relative_mount_paths_are_resolved() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "mounts": [
                {"destination": "data/x", "type": "bind", "source": "src", "options": ["rbind"]},
                {"destination": "t", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/abs", "source": "/host", "options": ["bind"]},
            ]
        }))
        .unwrap();
        resolve_mount_paths(&mut spec, Path::new("/bundle"));
        let m = spec.mounts().as_ref().unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.destination().clone(), m.source().clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/data/x".into(), Some("/bundle/src".into())),
                ("/t".into(), Some("tmpfs".into())),
                ("/abs".into(), Some("/host".into())),
            ]
        );
    }
}
