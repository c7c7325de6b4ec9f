//! Reading and writing cgroup files: one write per value, validation against injection, rmdir with retry.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// Writes `value` to `dir/file` in one `write(2)` (cgroup files take one value per write).
///
/// The file is never created: a missing file means the controller or feature is absent, and the
/// error carries its path.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    let path = dir.join(file);
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| match source.kind() {
        // The file is missing from a cgroup that exists: the kernel lacks the feature (a
        // cgroup that went away, as its container exited, is a plain write error).
        io::ErrorKind::NotFound if dir.is_dir() => Error::NotSupported {
            path,
            value: value.to_string(),
        },
        _ => Error::Write {
            path,
            value: value.to_string(),
            source,
        },
    })
}

/// Reads `dir/file` whole.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, Error> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// Reads `dir/file`, or `None` when it does not exist.
pub(crate) fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, Error> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// True when `dir/file` exists.
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Parses a file holding one unsigned number; `max` (v2) reads as `None`.
pub(crate) fn read_u64_or_max(dir: &Path, file: &str) -> Result<Option<Option<u64>>, Error> {
    let Some(text) = read_optional(dir, file)? else {
        return Ok(None);
    };
    let value = text.trim();
    if value == "max" {
        return Ok(Some(None));
    }
    value
        .parse::<u64>()
        .map(|n| Some(Some(n)))
        .map_err(|_| Error::Parse {
            path: dir.join(file),
            content: text.clone(),
        })
}

/// Reads a number file that may be absent: 0 when absent.
pub(crate) fn read_u64_or_zero(dir: &Path, file: &str) -> Result<u64, Error> {
    Ok(read_u64_or_max(dir, file)?.flatten().unwrap_or(0))
}

/// Lists the pids in `dir/cgroup.procs` and in every descendant cgroup.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), Error> {
    let Some(text) = read_optional(dir, "cgroup.procs")? else {
        return Ok(());
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = line.parse::<i32>().map_err(|_| Error::Parse {
            path: dir.join("cgroup.procs"),
            content: line.to_string(),
        })?;
        out.push(pid);
    }
    for child in subdirs(dir)? {
        procs_recursive(&child, out)?;
    }
    Ok(())
}

/// The sub-cgroups (directories) of `dir`; none when `dir` is gone.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ReadDir {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Removes the cgroup `dir` and its sub-cgroups, deepest first. A missing directory is fine;
/// `EBUSY` (processes still exiting) is retried for about a second.
pub(crate) fn remove_cgroup_dir(dir: &Path) -> Result<(), Error> {
    // The usual cgroup has no children and no tasks left: one rmdir, no listing.
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for child in subdirs(dir)? {
        remove_cgroup_dir(&child)?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(Error::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// Creates `dir` and its missing parents, returning the directories that were newly made
/// (outermost first), so callers can initialise each new level.
pub(crate) fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    missing.reverse();
    for d in &missing {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::CreateDir {
                    path: d.clone(),
                    source,
                });
            }
        }
    }
    Ok(missing)
}

/// Polls `done` with a growing pause until it holds or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, Error>,
) -> Result<bool, Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(crate) fn send_signal(pid: i32, signal: i32) -> Result<(), Error> {
    // SAFETY: kill(2) takes two plain integers and touches no memory of ours; any pid/signal value
    // is at worst rejected by the kernel with an errno.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(Error::Signal {
        pid,
        signal,
        source,
    })
}

/// Checks a free-form string value before it is written to a cgroup file: it must be one line,
/// without control characters, and not empty.
pub(crate) fn check_line(what: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(invalid(what, value, "empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            what,
            value,
            "contains a control character such as a newline",
        ));
    }
    Ok(())
}

/// Checks a cpuset list such as `0-3,8`.
pub(crate) fn check_cpuset_list(what: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
    {
        return Err(invalid(what, value, "expected a list such as 0-3,8"));
    }
    Ok(())
}

/// Checks a hugepage size such as `2MB` or `1GB` (used in file names).
pub(crate) fn check_page_size(value: &str) -> Result<(), Error> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'B']);
    let suffix = &value[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(suffix, "KB" | "MB" | "GB");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "hugepage size",
            value,
            "expected a size such as 2MB or 1GB",
        ))
    }
}

/// Checks a name used as one word inside a value (network interface, RDMA device).
pub(crate) fn check_word(what: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(invalid(
            what,
            value,
            "expected one word without spaces, '/' or control characters",
        ));
    }
    Ok(())
}

/// A major or minor device number as written to cgroup files.
pub(crate) fn check_dev_number(what: &'static str, value: i64) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| invalid(what, &value.to_string(), "out of range"))
}

/// Builds an [`Error::InvalidValue`].
pub(crate) fn invalid(what: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidValue {
        what,
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(check_line("x", "ok value").is_ok());
        assert!(check_line("x", "a\nb").is_err());
        assert!(check_line("x", "").is_err());
        assert!(check_cpuset_list("cpus", "0-3,8").is_ok());
        assert!(check_cpuset_list("cpus", "0\n1").is_err());
        assert!(check_page_size("2MB").is_ok());
        assert!(check_page_size("1GB").is_ok());
        assert!(check_page_size("2MB/../x").is_err());
        assert!(check_page_size("MB").is_err());
        assert!(check_word("iface", "eth0").is_ok());
        assert!(check_word("iface", "eth0 9").is_err());
        assert!(check_dev_number("major", -1).is_err());
    }

    #[test]
    fn write_never_creates_and_dirs_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write(tmp.path(), "memory.max", "1").unwrap_err();
        assert!(matches!(err, Error::NotSupported { .. }), "{err}");
        assert!(
            err.to_string().contains("memory.max does not exist"),
            "{err}"
        );
        let made = create_dirs(&tmp.path().join("a/b")).unwrap();
        assert_eq!(made, vec![tmp.path().join("a"), tmp.path().join("a/b")]);
        assert!(create_dirs(&tmp.path().join("a/b")).unwrap().is_empty());
        remove_cgroup_dir(&tmp.path().join("a")).unwrap();
        assert!(!tmp.path().join("a").exists());
        remove_cgroup_dir(&tmp.path().join("a")).unwrap();
    }
}
