//! Container output into the CRI's log format, at the path kubelet gives
//! (`<log directory>/<log path>`): one line per output line,
//! `<RFC 3339 nanosecond timestamp> <stdout|stderr> <F|P> <text>`, a line longer than 16 KiB
//! cut into partial (`P`) pieces with the last one full (`F`). The output is read from the
//! FIFOs the shim writes; `ReopenContainerLog` makes the writer open the path anew (after
//! kubelet renamed the file for rotation).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The longest piece written as one log line.
const MAX_LINE: usize = 16 * 1024;

/// A container's log file, shared by its stdout and stderr pumps.
#[derive(Clone)]
pub struct Log {
    path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// A timestamp as the CRI log format has it (UTC, nanoseconds).
pub fn timestamp() -> String {
    berth_clock::rfc3339_now()
}

impl Log {
    /// Opens (creates) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<Log> {
        Ok(Log {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(Some(open(path)?))),
        })
    }

    /// Opens the path again: the writes go to a new file there from now on.
    pub fn reopen(&self) -> std::io::Result<()> {
        let f = open(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Ok(())
    }

    /// Writes one line (or a piece of one) of `stream`.
    fn line(&self, stream: &str, full: bool, text: &[u8]) {
        let tag = if full { "F" } else { "P" };
        let mut out = format!("{} {stream} {tag} ", timestamp()).into_bytes();
        out.extend_from_slice(text);
        out.push(b'\n');
        if let Some(f) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = f.write_all(&out);
        }
    }

    /// Copies everything read from `r` into the log as `stream`'s lines, until its end.
    pub fn pump(&self, stream: &str, mut r: impl Read) {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let rest = pending.split_off(i + 1);
                pending.pop();
                for (k, piece) in pieces(&pending) {
                    self.line(stream, k, piece);
                }
                pending = rest;
            }
            while pending.len() > MAX_LINE {
                let rest = pending.split_off(MAX_LINE);
                self.line(stream, false, &pending);
                pending = rest;
            }
        }
        if !pending.is_empty() {
            self.line(stream, true, &pending);
        }
    }
}

/// A line as pieces of at most [`MAX_LINE`] bytes: all partial but the last.
fn pieces(line: &[u8]) -> Vec<(bool, &[u8])> {
    if line.is_empty() {
        return vec![(true, line)];
    }
    let chunks: Vec<&[u8]> = line.chunks(MAX_LINE).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i == last, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_the_cri_format_and_long_ones_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let log = Log::open(&path).unwrap();
        let long = "x".repeat(MAX_LINE + 5);
        let input = format!("one\n\n{long}\ntail");
        log.pump("stdout", input.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<(&str, &str, &str)> = text
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let ts = f.next().unwrap();
                assert!(ts.ends_with('Z') && ts.len() == 30, "{ts}");
                (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""))
            })
            .collect();
        assert_eq!(lines[0], ("stdout", "F", "one"));
        assert_eq!(lines[1], ("stdout", "F", ""));
        assert_eq!((lines[2].1, lines[2].2.len()), ("P", MAX_LINE));
        assert_eq!(lines[3], ("stdout", "F", "xxxxx"));
        assert_eq!(lines[4], ("stdout", "F", "tail"));
        // After a rename, reopening writes to a new file at the path.
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        log.reopen().unwrap();
        log.pump("stderr", &b"after\n"[..]);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(" stderr F after")
        );
    }

    #[test]
    fn timestamps_are_utc_dates() {
        let t = timestamp();
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
        assert!(t.starts_with("20"));
    }
}
