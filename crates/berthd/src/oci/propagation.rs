//! Whether a bind's source can carry the propagation asked for, as dockerd checks it: an
//! `rshared`/`shared` bind needs its source on a shared mount, an `rslave`/`slave` one on a
//! shared or slave mount (the mount that holds the source is the one in this process'
//! `/proc/self/mountinfo` whose mount point is the longest prefix of the source's real path).

use std::path::{Path, PathBuf};

/// The mount point holding `path` and whether that mount is shared and a slave.
fn holder(path: &Path, mountinfo: &str) -> Option<(PathBuf, bool, bool)> {
    let mut best: Option<(PathBuf, bool, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| PathBuf::from(unescape(p))) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        let optional = fields.iter().skip(6).take_while(|f| **f != "-");
        let (mut shared, mut slave) = (false, false);
        for f in optional {
            shared |= f.starts_with("shared:");
            slave |= f.starts_with("master:");
        }
        // Deeper mount points win; of equal ones the later (the one on top).
        if best
            .as_ref()
            .is_none_or(|(b, ..)| point.components().count() >= b.components().count())
        {
            best = Some((point, shared, slave));
        }
    }
    best
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// dockerd's refusal of a spec's bind whose source cannot carry its propagation, if any.
pub fn check_binds(spec: &oci_spec::runtime::Spec) -> Result<(), String> {
    for m in spec.mounts().iter().flatten() {
        if m.typ().as_deref() != Some("bind") {
            continue;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.display().to_string())
            .unwrap_or_default();
        for o in m.options().iter().flatten() {
            check(&source, o)?;
        }
    }
    Ok(())
}

/// dockerd's refusal of `propagation` for a bind of `source`, if it applies.
pub fn check(source: &str, propagation: &str) -> Result<(), String> {
    let need_shared = matches!(propagation, "shared" | "rshared");
    let need_slave = matches!(propagation, "slave" | "rslave");
    if !need_shared && !need_slave {
        return Ok(());
    }
    let real = std::fs::canonicalize(source).unwrap_or_else(|_| PathBuf::from(source));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some((point, shared, slave)) = holder(&real, &info) else {
        return Ok(());
    };
    let point = point.display();
    match () {
        _ if need_shared && !shared => Err(format!(
            "path {source} is mounted on {point} but it is not a shared mount."
        )),
        _ if need_slave && !shared && !slave => Err(format!(
            "path {source} is mounted on {point} but it is not a shared or slave mount."
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda rw\n\
        30 22 0:30 / /srv rw - tmpfs tmpfs rw\n\
        31 30 0:31 / /srv/slave rw master:7 - tmpfs tmpfs rw\n\
        32 22 0:32 / /with\\040space rw shared:9 - tmpfs tmpfs rw\n";

    #[test]
    fn the_deepest_mount_holding_a_path_decides() {
        let h = |p: &str| holder(Path::new(p), INFO).unwrap();
        assert_eq!(h("/home/x"), (PathBuf::from("/"), true, false));
        assert_eq!(h("/srv/data"), (PathBuf::from("/srv"), false, false));
        assert_eq!(
            h("/srv/slave/a"),
            (PathBuf::from("/srv/slave"), false, true)
        );
        assert_eq!(
            h("/with space/a"),
            (PathBuf::from("/with space"), true, false)
        );
        assert_eq!(
            h("/srvx"),
            (PathBuf::from("/"), true, false),
            "components, not bytes"
        );
    }
}
