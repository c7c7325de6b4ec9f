//! The build cache: what a step made, found again by a key of everything the step depends on
//! (the image it starts from, the instruction with its expanded arguments and the config it
//! runs with, and for COPY the digest of the files it copies). One small file per key under
//! `<data>/build-cache/`, written whole then renamed; an entry whose image is gone is a miss.

use std::path::PathBuf;

use berth_api::models::{BuildCache, BuildCacheTypeEnum};
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

/// Removes every entry and every `RUN --mount=type=cache` directory (`POST /build/prune`);
/// the keys and mounts removed, and the bytes the mounts held. The images the entries name
/// stay (untagged ones go with `image prune`, as after Docker's classic builder).
pub fn prune(d: &Daemon) -> (Vec<String>, u64) {
    let mut removed: Vec<String> = std::fs::read_dir(dir(d))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut reclaimed = 0;
    let mounts = super::mounts::cache_root(d);
    for e in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
        let size = crate::volumes::dir_size(&e.path());
        if std::fs::remove_dir_all(e.path()).is_ok() {
            reclaimed += size;
            removed.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    (removed, reclaimed)
}

/// The build cache as `system df` lists it: each step entry (its image's layers are counted
/// with the images) and each cache mount with its size.
pub fn usage(d: &Daemon) -> Vec<BuildCache> {
    let when = |e: &std::fs::DirEntry| {
        let t = e.metadata().and_then(|m| m.modified()).ok()?;
        let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(berth_clock::rfc3339(secs as i64, 0))
    };
    let entry =
        |e: &std::fs::DirEntry, kind: BuildCacheTypeEnum, size: u64, shared: bool| BuildCache {
            id: Some(e.file_name().to_string_lossy().into_owned()),
            typ: Some(kind),
            description: Some(match kind {
                BuildCacheTypeEnum::EXEC_CACHEMOUNT => "a RUN --mount=type=cache directory".into(),
                _ => "a build step".into(),
            }),
            in_use: Some(false),
            shared: Some(shared),
            size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
            created_at: when(e),
            last_used_at: when(e),
            ..Default::default()
        };
    let list = |p: PathBuf| std::fs::read_dir(p).into_iter().flatten().flatten();
    let steps = list(dir(d)).filter(|e| e.path().is_file());
    let mut out: Vec<BuildCache> = steps
        .map(|e| entry(&e, BuildCacheTypeEnum::REGULAR, 0, true))
        .collect();
    for e in list(super::mounts::cache_root(d)) {
        let size = crate::volumes::dir_size(&e.path());
        out.push(entry(&e, BuildCacheTypeEnum::EXEC_CACHEMOUNT, size, false));
    }
    out
}

/// An image's history (each entry's `created_by` and whether it made no layer) and its
/// layers' diff ids, as a `--cache-from` match compares them.
type Lineage = (Vec<(String, bool)>, Vec<String>);

fn history_of(d: &Daemon, image: &ImageRecord) -> Option<Lineage> {
    let bytes = d
        .images
        .content
        .read(&image.id, berth_image::manifest::MAX_CONFIG)
        .ok()?;
    let c: berth_api::config::ImageConfig = serde_json::from_slice(&bytes).ok()?;
    let history = c
        .history
        .into_iter()
        .map(|h| (h.created_by, h.empty_layer))
        .collect();
    Some((history, c.rootfs.diff_ids))
}

/// The layer a `--cache-from` image has for the step that makes a layer with history
/// `created_by` on `parent`: one whose history and layers begin as `parent`'s do and whose
/// next history entry is this step's (dockerd's classic builder matches the same way).
pub fn from_sources(
    d: &Daemon,
    sources: &[ImageRecord],
    parent: &ImageRecord,
    created_by: &str,
) -> Option<Digest> {
    if sources.is_empty() {
        return None;
    }
    let (history, layers) = history_of(d, parent)?;
    sources.iter().find_map(|source| {
        let (theirs, their_layers) = history_of(d, source)?;
        let next = theirs.get(history.len())?;
        let fits = theirs.starts_with(&history)
            && their_layers.starts_with(&layers)
            && next.0 == created_by
            && !next.1;
        let diff = their_layers.get(layers.len()).filter(|_| fits)?;
        Digest::parse(diff).ok()
    })
}
