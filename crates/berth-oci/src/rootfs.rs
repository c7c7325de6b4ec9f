//! A container's root filesystem: overlayfs of its image's layer dirs (top first) under a
//! per-container `upper`/`work` pair, mounted at `merged` in the container's directory while it
//! runs; and its `resolv.conf`, as dockerd writes it.

use std::path::{Path, PathBuf};

fn fail(m: impl Into<String>) -> std::io::Error {
    std::io::Error::other(m.into())
}

/// Longest overlayfs option string the kernel takes (one page).
const MAX_OPTIONS: usize = 4000;

pub fn merged(container_dir: &Path) -> PathBuf {
    container_dir.join("merged")
}

/// Mounts the rootfs (idempotent: an existing mount is kept). A `volatile` mount (for
/// containers removed when they exit, as podman does for `--rm`) never syncs its upper dir: no
/// journal commit of the data root when it is unmounted. A kernel without the option (< 5.10)
/// gets the ordinary mount.
pub fn mount(container_dir: &Path, lowers: &[PathBuf], volatile: bool) -> std::io::Result<PathBuf> {
    let (upper, work, merged) = (
        container_dir.join("upper"),
        container_dir.join("work"),
        merged(container_dir),
    );
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| fail(format!("creating {}: {e}", d.display())))?;
    }
    if is_mounted(&merged) {
        return Ok(merged);
    }
    if lowers.is_empty() {
        return Err(fail("the image has no layers"));
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower_dirs(lowers),
        upper.display(),
        work.display()
    );
    if data.len() > MAX_OPTIONS {
        return Err(fail(format!(
            "the image has too many layers ({}) for one overlayfs mount",
            lowers.len()
        )));
    }
    // A volatile mount that was not unmounted cleanly (a crash) marks its work dir, and the
    // kernel refuses that work dir until it is emptied.
    if work.join("work/incompat/volatile").exists() {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)
            .map_err(|e| fail(format!("creating {}: {e}", work.display())))?;
    }
    if data.contains('\0') {
        return Err(fail("a layer path holds a NUL byte"));
    }
    let attempt = |data: String| {
        let data = std::ffi::CString::new(data).map_err(|_| rustix::io::Errno::INVAL)?;
        rustix::mount::mount(
            "overlay",
            &merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )
    };
    let mounted = match volatile {
        true => attempt(format!("{data},volatile")).or_else(|_| attempt(data.clone())),
        false => attempt(data.clone()),
    };
    mounted.map_err(|e| fail(format!("mounting the rootfs at {}: {e}", merged.display())))?;
    Ok(merged)
}

/// Whether `p` is a mount point. The kernel answers it for the path alone (statx's
/// `MOUNT_ROOT`, Linux 5.8); an older kernel's mount table is read a line at a time. Reading the
/// whole table per call cost each of 200 concurrent starts a copy of a table that grows with
/// every running container: 60 MiB of heap at the peak, and heap the allocator kept after.
pub fn is_mounted(p: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let flags = AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW;
    match rustix::fs::statx(rustix::fs::CWD, p, flags, StatxFlags::empty()) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Ok(_) | Err(rustix::io::Errno::NOSYS) => in_mount_table(p),
        Err(_) => false,
    }
}

/// Whether `p` is a mount point in /proc/self/mountinfo, whose paths escape space, tab,
/// newline and backslash as octal.
fn in_mount_table(p: &Path) -> bool {
    use std::io::BufRead;
    use std::os::unix::ffi::OsStrExt;
    let mut want = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => want.extend(format!("\\{b:03o}").bytes()),
            _ => want.push(b),
        }
    }
    let Ok(f) = std::fs::File::open("/proc/self/mountinfo") else {
        return false;
    };
    std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
        .any(|l| l.split(|&b| b == b' ').nth(4) == Some(&want[..]))
}

/// Unmounts whatever is mounted on the entries of `dir` (a container's subpath staging
/// points; absent is fine).
fn unmount_each_in(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        while is_mounted(&p) {
            if rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH).is_err() {
                break;
            }
        }
    }
}

/// Unmounts the rootfs and the subpaths' staging points (absent is fine).
pub fn unmount(container_dir: &Path) {
    unmount_each_in(&container_dir.join("subpaths"));
    let m = merged(container_dir);
    while is_mounted(&m) {
        if rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH).is_err() {
            break;
        }
    }
}

/// What a container's `resolv.conf` takes from its config: nameservers, search domains,
/// options (Docker's `Dns`, `DnsSearch`, `DnsOptions`; the CRI's `DNSConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// A container's `resolv.conf`, as dockerd writes it: the nameservers are the network's own DNS
/// server (`embedded`, on user-defined networks), else `Dns`, else the host's that are not on
/// loopback (Google's public ones if none is left, as Docker's default); `search` and
/// `options` lines are `DnsSearch` and `DnsOptions` where given (a search of `.` means none),
/// else the host's. With the embedded server, `ndots:0` is added unless an ndots is set.
pub fn resolv_conf(host: &str, dns: &DnsSettings, embedded: Option<&str>) -> String {
    let lines = |key: &str| -> Vec<String> {
        host.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix(key))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string))
            .collect()
    };
    let servers: Vec<String> = match embedded {
        Some(e) => vec![e.to_string()],
        None if !dns.servers.is_empty() => dns.servers.clone(),
        None => {
            let kept: Vec<String> = lines("nameserver")
                .into_iter()
                .filter(|n| !n.starts_with("127.") && n != "::1")
                .collect();
            if kept.is_empty() {
                vec!["8.8.8.8".into(), "8.8.4.4".into()]
            } else {
                kept
            }
        }
    };
    let search = match dns.search.as_slice() {
        [] => lines("search"),
        [dot] if dot == "." => Vec::new(),
        given => given.to_vec(),
    };
    let mut options = match dns.options.is_empty() {
        true => lines("options"),
        false => dns.options.clone(),
    };
    if embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut text = String::new();
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

/// overlayfs' `lowerdir` list of layer directories (top first).
pub fn lower_dirs(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn resolv_conf_follows_dns_search_and_options_as_dockerd() {
        let host = "search corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0 ndots:2\n";
        let none = DnsSettings::default();
        assert_eq!(
            resolv_conf(host, &none, None),
            "search corp.example\nnameserver 10.0.0.2\noptions edns0 ndots:2\n"
        );
        let given = DnsSettings {
            servers: vec!["10.9.9.9".into()],
            search: vec!["a.test".into(), "b.test".into()],
            options: vec!["timeout:3".into()],
        };
        assert_eq!(
            resolv_conf(host, &given, None),
            "search a.test b.test\nnameserver 10.9.9.9\noptions timeout:3\n"
        );
        let dot = DnsSettings {
            search: vec![".".into()],
            ..Default::default()
        };
        assert!(!resolv_conf(host, &dot, None).contains("search"));
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &given, Some("172.30.0.1")),
            "search a.test b.test\nnameserver 172.30.0.1\noptions timeout:3 ndots:0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &none, None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn a_mount_point_is_told_from_a_plain_directory_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("a dir\\with escapes");
        std::fs::create_dir(&spaced).unwrap();
        assert!(!is_mounted(&spaced) && !in_mount_table(&spaced));
        rustix::mount::mount(
            "tmpfs",
            &spaced,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let both = (is_mounted(&spaced), in_mount_table(&spaced));
        rustix::mount::unmount(&spaced, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert_eq!(both, (true, true));
        assert!(!is_mounted(&spaced));
        assert!(is_mounted(Path::new("/proc")) && in_mount_table(Path::new("/proc")));
    }
}
