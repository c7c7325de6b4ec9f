//! What each path of an unpacked tree holds, recorded as the tar streams through the unpacker:
//! a digest per path of its kind, mode, owner, link target and content. Times are left out, as
//! Docker's build cache leaves them out of a COPY's checksum. The image build keys COPY steps
//! on it, so an unchanged context is never read again after it arrived.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// One path's record.
#[derive(Debug, Clone)]
struct Item {
    symlink: bool,
    digest: Digest,
}

/// Paths (relative, `/`-separated, no `.` or `..`) to what they hold.
#[derive(Debug, Default, Clone)]
pub struct ContentIndex(BTreeMap<String, Item>);

/// The metadata of one entry that its record covers.
pub(crate) struct Meta<'a> {
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link: &'a [u8],
}

impl ContentIndex {
    /// Records `path` (after a non-directory entry replaced whatever was there before).
    pub(crate) fn record(&mut self, path: &str, m: &Meta<'_>, content: Option<&Digest>) {
        if m.kind != b'5' {
            self.remove_under(path, true);
        }
        let mut h = Sha256::new();
        h.update([m.kind]);
        h.update(m.mode.to_le_bytes());
        h.update(m.uid.to_le_bytes());
        h.update(m.gid.to_le_bytes());
        h.update((m.link.len() as u64).to_le_bytes());
        h.update(m.link);
        if let Some(c) = content {
            h.update(c.as_str());
        }
        let item = Item {
            symlink: m.kind == b'2',
            digest: Digest::from_hasher(h),
        };
        self.0.insert(path.to_string(), item);
    }

    /// Records `path` as a hard link to `target`: the same content as the target holds now.
    pub(crate) fn record_link(&mut self, path: &str, target: &str) {
        self.remove_under(path, true);
        if let Some(t) = self.0.get(target).cloned() {
            self.0.insert(path.to_string(), t);
        }
    }

    /// Forgets what is under `path`, and `path` itself when `inclusive` (a whiteout, an
    /// opaque directory, a replaced entry).
    pub(crate) fn remove_under(&mut self, path: &str, inclusive: bool) {
        if inclusive {
            self.0.remove(path);
        }
        let prefix = match path.is_empty() {
            true => String::new(),
            false => format!("{path}/"),
        };
        let gone: Vec<String> = self
            .0
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.0.remove(&k);
        }
    }

    /// Whether `path` was recorded as a symlink.
    pub fn is_symlink(&self, path: &str) -> bool {
        self.0.get(path).is_some_and(|i| i.symlink)
    }

    /// Whether anything at all was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One digest of `path` and everything under it (`""`: the whole tree), by names relative
    /// to `path`; None when nothing there was recorded.
    pub fn digest_under(&self, path: &str) -> Option<Digest> {
        let prefix = match path.is_empty() {
            true => String::new(),
            false => format!("{path}/"),
        };
        let mut h = Sha256::new();
        let mut any = false;
        if let Some(i) = self.0.get(path).filter(|_| !path.is_empty()) {
            h.update(b".\0");
            h.update(i.digest.as_str());
            any = true;
        }
        for (k, i) in self
            .0
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            h.update(&k.as_bytes()[prefix.len()..]);
            h.update(b"\0");
            h.update(i.digest.as_str());
            any = true;
        }
        any.then(|| Digest::from_hasher(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: u8) -> Meta<'static> {
        Meta {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            link: b"",
        }
    }

    #[test]
    fn a_changed_file_changes_its_parents_digest_and_nothing_beside() {
        let mut i = ContentIndex::default();
        i.record("a", &meta(b'5'), None);
        i.record("a/x", &meta(b'0'), Some(&Digest::of(b"1")));
        i.record("b", &meta(b'0'), Some(&Digest::of(b"2")));
        let (a, b) = (i.digest_under("a"), i.digest_under("b"));
        i.record("a/x", &meta(b'0'), Some(&Digest::of(b"3")));
        assert_ne!(i.digest_under("a"), a);
        assert_eq!(i.digest_under("b"), b);
        assert!(i.digest_under("c").is_none());
    }

    #[test]
    fn a_file_over_a_directory_and_a_whiteout_drop_what_was_under() {
        let mut i = ContentIndex::default();
        i.record("a/x", &meta(b'0'), Some(&Digest::of(b"1")));
        i.record("a", &meta(b'0'), Some(&Digest::of(b"2")));
        assert!(i.digest_under("a/x").is_none());
        i.remove_under("a", true);
        assert!(i.is_empty());
    }

    #[test]
    fn a_hard_link_holds_its_targets_content() {
        let mut i = ContentIndex::default();
        i.record("t", &meta(b'0'), Some(&Digest::of(b"1")));
        i.record_link("l", "t");
        assert_eq!(i.digest_under("l").is_some(), i.digest_under("t").is_some());
        let mut link = meta(b'2');
        link.link = b"t";
        i.record("s", &link, None);
        assert!(i.is_symlink("s"));
        assert!(!i.is_symlink("t"));
    }
}
