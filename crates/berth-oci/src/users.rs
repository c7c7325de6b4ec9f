//! Users and groups of an image, as runc's `GetExecUser` finds them: `user[:group]` (numbers or
//! names) looked up in the image's `/etc/passwd` and `/etc/group`, read inside its root (a
//! link is never followed onto the host), then the user's supplementary groups and any more
//! groups asked for (Docker's `GroupAdd`, the CRI's supplemental groups).

use std::io::Read;
use std::path::Path;

/// Why a user could not be resolved (dockerd's words).
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    #[error("uids and gids must be in range 0-2147483647")]
    IdRange,
    #[error("reading the image's /etc/{0}")]
    ReadRootfs(&'static str, #[source] std::io::Error),
}

type Result<T, E = UserError> = std::result::Result<T, E>;

fn in_range(id: i64) -> Result<u32> {
    let id = u32::try_from(id).ok().filter(|i| *i <= i32::MAX as u32);
    id.ok_or(UserError::IdRange)
}

/// A rootfs' `/etc/passwd` or `/etc/group` (at most 4 MiB); empty when missing or when it
/// resolves outside the rootfs (a symlink is never followed onto the host).
fn read_etc(rootfs: &Path, name: &'static str) -> Result<String> {
    // Resolved inside the image's root: an absolute link there is the image's path.
    let read = || -> std::io::Result<String> {
        use rustix::fs::{Mode, OFlags};
        let mut buf = Vec::new();
        if !rootfs.is_absolute() {
            return Ok(String::new());
        }
        let root = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let path = Path::new("etc").join(name);
        // Only a regular file is ever opened for reading (never a device node of the image).
        match berth_inroot::open_regular(std::os::fd::AsFd::as_fd(&root), &path) {
            Ok((file, _)) => {
                file.take(4 << 20).read_to_end(&mut buf)?;
            }
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    use std::io::ErrorKind::{NotADirectory, NotFound};
    let looped =
        |e: &std::io::Error| e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    match read() {
        // Absent, or a link that leads nowhere inside the image: no entries.
        Err(e) if matches!(e.kind(), NotFound | NotADirectory) || looped(&e) => Ok(String::new()),
        result => result.map_err(|e| UserError::ReadRootfs(name, e)),
    }
}

/// `(name, id, 4th field)` of each passwd (`uid`, gid) or group (`gid`, members) line.
fn parse_etc(text: &str) -> Vec<(&str, i64, &str)> {
    fn entry(l: &str) -> Option<(&str, i64, &str)> {
        let f: Vec<&str> = l.trim().split(':').collect();
        let fourth = f.get(3).copied().unwrap_or_default();
        Some((f[0], f.get(2)?.parse().ok()?, fourth))
    }
    text.lines().filter_map(entry).collect()
}

/// `user[:group]` (numbers or names in `root`'s `/etc/passwd` and `/etc/group`) as uid and gid.
pub fn user(spec: &str, root: &str) -> Result<(u32, u32)> {
    let (uid, gid, _) = resolve(Path::new(root), spec, &[])?;
    Ok((uid, gid))
}

/// runc's `GetExecUser` for `user[:group]`, then Docker's additional gids: the primary gid,
/// the user's supplementary groups (implicit group only) and `GroupAdd`.
pub fn resolve(rootfs: &Path, spec: &str, add: &[String]) -> Result<(u32, u32, Vec<u32>)> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let (uid_num, gid_num) = (user_arg.parse::<i64>().ok(), group_arg.parse::<i64>().ok());
    let (passwd, group) = (read_etc(rootfs, "passwd")?, read_etc(rootfs, "group")?);
    let (users, groups) = (parse_etc(&passwd), parse_etc(&group));
    let found = users.iter().find(|(name, uid, _)| match uid_num {
        _ if user_arg.is_empty() => *uid == 0,
        Some(n) => *uid == n,
        None => *name == user_arg,
    });
    let (uid, mut gid, name) = match (found, uid_num) {
        (Some(&(name, uid, gid)), _) => (uid, gid.parse().unwrap_or(0), name),
        (None, _) if user_arg.is_empty() => (0, 0, ""),
        (None, Some(n)) => (n, 0, ""),
        (None, None) => return Err(UserError::UserNotFound(user_arg.into())),
    };
    let mut gids = Vec::new();
    if !group_arg.is_empty() {
        let matches = |g: &&(&str, i64, &str)| gid_num.map_or(g.0 == group_arg, |n| g.1 == n);
        let hit = groups.iter().find(matches);
        gid = match (hit, gid_num) {
            (Some(hit), _) => hit.1,
            (None, Some(n)) => n,
            (None, None) => return Err(UserError::GroupNotFound(group_arg.into())),
        };
    } else if !name.is_empty() {
        let member = |g: &&(&str, i64, &str)| g.2.split(',').any(|u| u == name);
        gids.extend(groups.iter().filter(member).map(|g| g.1));
    }
    gids.insert(0, gid);
    for a in add {
        let named = groups.iter().find(|g| g.0 == a || g.1.to_string() == *a);
        let g = named.map(|g| g.1).or(a.parse().ok());
        gids.push(g.ok_or_else(|| UserError::GroupNotFound(a.clone()))?);
    }
    let gids: Vec<u32> = gids.into_iter().map(in_range).collect::<Result<_>>()?;
    Ok((in_range(uid)?, in_range(gid)?, gids))
}
