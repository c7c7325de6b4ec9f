//! The build cache: what a step made, found again by a key of everything the step depends on
//! (the image it starts from, the instruction with its expanded arguments and the config it
//! runs with, and for COPY the digest of the files it copies). One small file per key under
//! `<data>/build-cache/`, written whole then renamed; an entry whose image is gone is a miss.

use std::path::PathBuf;

use berth_image::Digest;
use berth_image::images::ImageRecord;

use crate::engine::Daemon;

fn dir(d: &Daemon) -> PathBuf {
    d.data_root.join("build-cache")
}

/// The key of a step: the digest of its parts, each length-prefixed (no two lists of parts
/// give the same bytes).
pub fn key(parts: &[&str]) -> Digest {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
        bytes.extend_from_slice(p.as_bytes());
    }
    Digest::of(&bytes)
}

/// The image a step with `key` made before, if it is still here.
pub fn get(d: &Daemon, key: &Digest) -> Option<ImageRecord> {
    let id = std::fs::read_to_string(dir(d).join(key.hex())).ok()?;
    let id = Digest::parse(id.trim()).ok()?;
    d.images.images.get(&id)
}

/// Records that the step with `key` made `image` (best effort: a failure is a later miss).
pub fn put(d: &Daemon, key: &Digest, image: &ImageRecord) {
    let dir = dir(d);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut tmp, image.id.as_str().as_bytes())?;
        tmp.persist(dir.join(key.hex()))?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "recording a build cache entry");
    }
}

/// The digest of a file's content (a COPY's layer tar), read from its start.
pub fn file_digest(f: &mut std::fs::File) -> std::io::Result<Digest> {
    use std::io::Seek;
    f.rewind()?;
    let mut r = berth_image::digest::HashingReader::new(&mut *f);
    std::io::copy(&mut r, &mut std::io::sink())?;
    let (digest, _, _) = r.finish();
    f.rewind()?;
    Ok(digest)
}

/// Removes every entry (`POST /build/prune`); the keys removed. The images the entries name
/// stay (untagged ones go with `image prune`, as after Docker's classic builder).
pub fn prune(d: &Daemon) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir(d)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
