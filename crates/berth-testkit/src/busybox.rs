//! A busybox OCI image and an OCI runtime bundle made from the host's static `/bin/busybox`
//! (Debian's busybox-static) and its applet links. No public registry is reachable here, so this
//! is the image every test runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Where Debian's busybox-static installs the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Media types used by the image.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A content-addressed blob held in memory.
#[derive(Clone)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The applets of the host busybox as rootfs-relative paths (`bin/ls`, `usr/bin/wget`, ...).
pub fn applet_paths() -> anyhow::Result<Vec<PathBuf>> {
    #[allow(clippy::disallowed_methods)]
    // the fixture is the host's busybox; asking it is the contract
    let out = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list-full")
        .output()
        .with_context(|| {
            format!("running {HOST_BUSYBOX} --list-full (apt-get install busybox-static)")
        })?;
    anyhow::ensure!(out.status.success(), "{HOST_BUSYBOX} --list-full failed");
    let text = String::from_utf8(out.stdout).context("busybox applet list is not UTF-8")?;
    Ok(text
        .lines()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| {
            p.components().all(|c| matches!(c, Component::Normal(_)))
                && p != Path::new("bin/busybox")
        })
        .collect())
}

/// Relative symlink target from `link` (rootfs-relative) to `bin/busybox`.
fn link_target(link: &Path) -> PathBuf {
    let depth = link.components().count().saturating_sub(1);
    let mut t = PathBuf::new();
    for _ in 0..depth {
        t.push("..");
    }
    t.join("bin/busybox")
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const DIRS: [(&str, u32); 11] = [
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o755),
    ("root", 0o700),
    ("sbin", 0o755),
    ("sys", 0o755),
    ("tmp", 0o1777),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
];

/// Writes the busybox root filesystem into `dir` (which must exist).
pub fn write_rootfs(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (d, mode) in DIRS {
        let p = dir.join(d);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    std::fs::write(dir.join("etc/passwd"), PASSWD)?;
    std::fs::write(dir.join("etc/group"), GROUP)?;
    std::fs::copy(HOST_BUSYBOX, dir.join("bin/busybox"))
        .with_context(|| format!("copying {HOST_BUSYBOX}"))?;
    for applet in applet_paths()? {
        let at = dir.join(&applet);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
        }
        if at.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(link_target(&applet), &at)?;
        }
    }
    Ok(())
}

/// The busybox layer tar with what `extra` appends after its entries (a test's own files).
pub fn layer_tar_plus(
    extra: impl FnOnce(&mut tar::Builder<Vec<u8>>) -> std::io::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    let base = layer_tar()?;
    // The busybox tar without its two end-of-archive blocks, then the extra entries.
    let mut b = tar::Builder::new(base[..base.len() - 1024].to_vec());
    extra(&mut b)?;
    Ok(b.into_inner()?)
}

/// The busybox layer as an uncompressed tar with fixed owners and times, so its digest is
/// reproducible.
pub fn layer_tar() -> anyhow::Result<Vec<u8>> {
    let busybox = std::fs::read(HOST_BUSYBOX).with_context(|| format!("reading {HOST_BUSYBOX}"))?;
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let mut dirs: Vec<(String, u32)> = DIRS.iter().map(|&(d, m)| (d.to_string(), m)).collect();
    dirs.push(("usr".into(), 0o755));
    let applets = applet_paths()?;
    for a in &applets {
        if let Some(parent) = a.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.push((parent.to_string_lossy().into_owned(), 0o755));
        }
    }
    let dirs: BTreeMap<String, u32> = dirs.into_iter().collect();
    for (d, mode) in &dirs {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for (name, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        b.append_data(&mut h, name, text.as_bytes())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())?;
    for a in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, a, link_target(a))?;
    }
    Ok(b.into_inner()?)
}

/// The busybox image: layer, config and manifest blobs, ready to write as an OCI layout or push.
pub struct BusyboxImage {
    pub layer: Blob,
    /// sha256 of the uncompressed layer tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub config: Blob,
    pub manifest: Blob,
}

impl BusyboxImage {
    /// Builds the image from the host busybox. `Cmd` is `["sh"]`, like Docker's busybox image.
    pub fn build() -> anyhow::Result<Self> {
        Self::from_layer_tar(&layer_tar()?, None)
    }

    /// An image of one layer made from an uncompressed tar (gzip-compressed here), with the
    /// config's diff id computed, or set to `diff_id` to make a lying image for tests.
    pub fn from_layer_tar(tar: &[u8], diff_id: Option<&str>) -> anyhow::Result<Self> {
        let diff_id = diff_id.map_or_else(|| sha256_digest(tar), str::to_string);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar)?;
        Self::with_layer(Blob::new(OCI_LAYER_GZIP, gz.finish()?), diff_id)
    }

    /// An image of the one layer blob `layer` (compressed any way, its media type saying how)
    /// whose uncompressed tar hashes to `diff_id`.
    pub fn with_layer(layer: Blob, diff_id: String) -> anyhow::Result<Self> {
        Self::with_layer_and_cmd(layer, diff_id, &["sh"])
    }

    /// The same image with another `Cmd` (a pod's pause image, say).
    pub fn with_cmd(self, cmd: &[&str]) -> anyhow::Result<Self> {
        Self::with_layer_and_cmd(self.layer, self.diff_id, cmd)
    }

    fn with_layer_and_cmd(layer: Blob, diff_id: String, cmd: &[&str]) -> anyhow::Result<Self> {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": cmd,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "berth-testkit: host busybox-static" }],
        });
        let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config)?);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest)?);
        Ok(Self {
            layer,
            diff_id,
            config,
            manifest,
        })
    }

    /// Writes the image as an OCI image layout directory, tagged `tag` in `index.json`.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) -> anyhow::Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        for blob in [&self.layer, &self.config, &self.manifest] {
            let hex = blob.digest.trim_start_matches("sha256:");
            std::fs::write(blobs.join(hex), &blob.bytes)?;
        }
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let mut desc = self.manifest.descriptor();
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [desc],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }

    /// Writes the image as a `docker save` archive at `out`, tagged `repo_tag`, for `docker load`:
    /// `manifest.json` (`Config`, `RepoTags`, `Layers`), the config as `<hex>.json` and the layer
    /// uncompressed as `<diff-id hex>/layer.tar` (the layout Docker wrote before version 25, and
    /// the one docker 20.10 and later all load).
    pub fn write_docker_archive(&self, out: &Path, repo_tag: &str) -> anyhow::Result<()> {
        use std::io::Read;
        let mut layer = Vec::new();
        flate2::read::GzDecoder::new(&self.layer.bytes[..])
            .read_to_end(&mut layer)
            .context("decompressing the busybox layer")?;
        anyhow::ensure!(
            sha256_digest(&layer) == self.diff_id,
            "the uncompressed layer does not match its diff_id {}",
            self.diff_id
        );
        let config_name = format!("{}.json", self.config.digest.trim_start_matches("sha256:"));
        let layer_dir = self.diff_id.trim_start_matches("sha256:");
        let layer_name = format!("{layer_dir}/layer.tar");
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": [layer_name],
        }]);
        let manifest = serde_json::to_vec(&manifest)?;

        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut b = tar::Builder::new(std::io::BufWriter::new(file));
        let header = |kind: tar::EntryType, mode: u32, size: usize| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size as u64);
            h.set_mtime(0);
            h
        };
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("{layer_dir}/"), std::io::empty())?;
        let mut h = header(tar::EntryType::Regular, 0o644, layer.len());
        b.append_data(&mut h, &layer_name, &layer[..])?;
        let mut h = header(tar::EntryType::Regular, 0o644, self.config.bytes.len());
        b.append_data(&mut h, &config_name, &self.config.bytes[..])?;
        let mut h = header(tar::EntryType::Regular, 0o644, manifest.len());
        b.append_data(&mut h, "manifest.json", &manifest[..])?;
        b.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    }
}

/// An OCI runtime bundle (`config.json` + `rootfs/`) in a temporary directory, removed on drop.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle whose process runs `args` in the busybox rootfs, with the default spec of
    /// `runc spec` (namespaces, mounts, masked paths, capabilities) and a terminal off.
    pub fn new(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("bb-").tempdir_in("/tmp")?;
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs)?;
        // Whatever the umask: containers running as other users must reach their files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755))?;
        write_rootfs(&rootfs)?;
        let bundle = Self { dir };
        let mut spec = oci_spec::runtime::Spec::default();
        if let Some(process) = spec.process_mut() {
            process.set_terminal(Some(false));
            process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        }
        bundle.write_spec(&spec)?;
        Ok(bundle)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// The bundle's current runtime spec.
    pub fn spec(&self) -> anyhow::Result<oci_spec::runtime::Spec> {
        Ok(oci_spec::runtime::Spec::load(self.config_path())?)
    }

    /// Replaces the bundle's runtime spec.
    pub fn write_spec(&self, spec: &oci_spec::runtime::Spec) -> anyhow::Result<()> {
        spec.save(self.config_path())?;
        Ok(())
    }

    /// Edits the spec as JSON (handy for fields the typed builder makes verbose).
    pub fn edit_spec_json(&self, f: impl FnOnce(&mut serde_json::Value)) -> anyhow::Result<()> {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(self.config_path())?)?;
        f(&mut v);
        std::fs::write(self.config_path(), serde_json::to_vec_pretty(&v)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_are_relative_to_bin_busybox() {
        assert_eq!(
            link_target(Path::new("bin/ls")),
            Path::new("../bin/busybox")
        );
        assert_eq!(
            link_target(Path::new("usr/bin/wget")),
            Path::new("../../bin/busybox")
        );
    }
}
