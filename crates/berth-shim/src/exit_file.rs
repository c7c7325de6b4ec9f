//! Exit records on disk: `exit.json` / `exec-<id>.exit.json`, written atomically and durably
//! (temp file, fsync, rename, fsync of the directory), and the RFC 3339 time they carry.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use berth_shim_protocol::ExitRecord;

/// The exit code convention of shells and Docker: the code, or 128 + the terminating signal.
pub fn status_code(ws: rustix::process::WaitStatus) -> i32 {
    match (ws.exit_status(), ws.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    }
}

/// Now as RFC 3339 UTC with nanoseconds, e.g. `2026-11-28T12:06:48.123456789Z`.
pub fn now_rfc3339() -> String {
    berth_clock::rfc3339_now()
}

/// Writes `record` to `path` atomically: a crash leaves either no file or the whole record.
pub fn write(path: &Path, record: &ExitRecord) -> anyhow::Result<()> {
    let dir = path.parent().context("exit file has no directory")?;
    let tmp = path.with_extension("json.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(record)?)?;
    f.sync_all().context("syncing the exit file")?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    std::fs::File::open(dir)?
        .sync_all()
        .context("syncing the task directory")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_nanos() {
        use berth_clock::rfc3339;
        assert_eq!(rfc3339(0, 5), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_709_210_096, 0), "2024-02-29T12:34:56.000000000Z");
        assert_eq!(rfc3339(1_795_867_608, 1), "2026-11-28T12:06:48.000000001Z");
    }
}
