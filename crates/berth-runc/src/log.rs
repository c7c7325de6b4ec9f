//! runc-compatible logging: `--log FILE` and `--log-format text|json`. containerd and dockerd
//! read the last `level=error` line of the log file when a runtime command fails, so errors go
//! there in runc's shape as well as to stderr.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Opens the log file (append) and remembers the format; called once from `main`.
pub fn init(path: Option<&std::path::Path>, json: bool, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, json, debug });
    Ok(())
}

/// Logs an error: to the log file in the configured format and to stderr as plain text.
pub fn error(msg: &str) {
    write_line("error", msg);
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Logs a warning to the log file (stderr too when no log file is set).
pub fn warn(msg: &str) {
    if !write_line("warning", msg) {
        let _ = writeln!(std::io::stderr(), "warning: {msg}");
    }
}

/// Logs a debug line when `--debug` is on.
pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        write_line("debug", msg);
    }
}

/// Writes one line to the log file; false if there is none.
fn write_line(level: &str, msg: &str) -> bool {
    let Some(logger) = LOGGER.get() else {
        return false;
    };
    let Some(mut file) = logger.file.as_ref() else {
        return false;
    };
    let time = rfc3339_now();
    let line = if logger.json {
        let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
        format!("{v}\n")
    } else {
        format!("time={time:?} level={level} msg={msg:?}\n")
    };
    let _ = file.write_all(line.as_bytes());
    true
}

pub use berth_clock::rfc3339_now;

#[cfg(test)]
mod tests {
    use berth_clock::rfc3339;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_000_000, 5), "2026-11-18T11:06:40.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
