//! Docker's json-file log driver: the writer that turns a container's output into one JSON object
//! per line (`{"log":"…","stream":"stdout","time":"<RFC 3339 nano UTC>"}`), splitting lines at
//! 16 KiB and rotating by size (`max-size`, `max-file`), and the reader behind `docker logs`
//! (stream, since, until, tail, timestamps, and follow across rotations).
//!
//! Files: the live log `<dir>/<id>-json.log`, rotated files `<id>-json.log.1` (newest) up to
//! `.<max-file - 1>` (oldest). The writer only appends whole lines and readers only take lines
//! that end in `\n`, so no reader sees a torn record.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// The longest piece of a line written as one record; longer lines become several records, all
/// but the last without `\n` (Docker's partial messages).
const MAX_PARTIAL: usize = 16 * 1024;
/// How much a reader reads from a file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// About how many bytes one follow poll reads before handing records on.
const POLL_BUDGET: usize = 1024 * 1024;
/// How often a follower looks for new lines.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The container stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name in the `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: Stream,
    /// The text, with its `\n` unless it is a piece of a longer line or was flushed at exit.
    pub line: Vec<u8>,
    /// When it was written, in nanoseconds since the unix epoch.
    pub time_nanos: i64,
}

/// Nanoseconds since the unix epoch (negative before it, saturating far outside it).
fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// RFC 3339 with nine fractional digits, UTC.
fn format_time(nanos: i64) -> String {
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
    berth_clock::rfc3339(nanos.div_euclid(1_000_000_000), sub)
}

/// `Ok(None)` where the file is missing.
fn existing<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `<path>.<n>`: the n-th rotated file (1 is the newest).
fn rotated_path(path: &Path, n: u64) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Opens (creating) a log for appending; readable so `open` can check its last byte.
fn open_log(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).append(true).create(true);
    o.mode(0o640).open(path)
}

/// A stream's line that has not seen its `\n` yet.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// When the first piece of a line longer than [`MAX_PARTIAL`] was written: all its pieces
    /// carry that time, as Docker's do.
    first_piece: Option<i64>,
}

/// Appends a container's output to its json-file log.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes in the file, not counting `out`.
    written: u64,
    /// Encoded records waiting to be written in one go.
    out: Vec<u8>,
    max_size: Option<u64>,
    max_file: u32,
    pending: [Pending; 2],
}

impl LogWriter {
    /// Opens (or creates) the live log at `path`. With `max_size`, the log rotates before it
    /// would grow past that size, keeping `max_file - 1` rotated files (none for 0 or 1). A line
    /// torn by a crash at the end of an existing log is closed off, so new records stay whole.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<LogWriter> {
        let mut file = open_log(path)?;
        let mut written = file.metadata()?.len();
        if written > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, written - 1)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                written += 1;
            }
        }
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            written,
            out: Vec::new(),
            max_size: max_size.filter(|m| *m > 0),
            max_file: max_file.max(1),
            pending: Default::default(),
        })
    }

    /// Appends output of `stream` that arrived at `time`: each complete line becomes a record, a
    /// line reaching 16 KiB goes in 16 KiB pieces, and an unfinished line waits for its `\n`.
    pub fn write(&mut self, stream: Stream, data: &[u8], time: SystemTime) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending[stream as usize]);
        pending.buf.extend_from_slice(data);
        let split = self.split_lines(stream, &mut pending, unix_nanos(time));
        self.pending[stream as usize] = pending;
        let written = self.write_out();
        split.and(written)
    }

    /// Writes the unfinished lines of both streams as records of their own (at container exit).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        let now = unix_nanos(SystemTime::now());
        let mut result = Ok(());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = std::mem::take(&mut self.pending[stream as usize]);
            if !pending.buf.is_empty() {
                let time = pending.first_piece.unwrap_or(now);
                result = result.and(self.emit(stream, &pending.buf, time));
            }
        }
        let written = self.write_out();
        result.and(written)
    }

    /// Turns the complete lines and full 16 KiB pieces at the front of `pending` into records.
    fn split_lines(&mut self, stream: Stream, pending: &mut Pending, now: i64) -> io::Result<()> {
        let (mut start, mut result) = (0, Ok(()));
        loop {
            let rest = &pending.buf[start..];
            let window = &rest[..rest.len().min(MAX_PARTIAL)];
            let (len, time) = if let Some(i) = window.iter().position(|&b| b == b'\n') {
                (i + 1, pending.first_piece.take().unwrap_or(now))
            } else if window.len() == MAX_PARTIAL {
                let time = *pending.first_piece.get_or_insert(now);
                (utf8_cut(rest, MAX_PARTIAL), time)
            } else {
                break;
            };
            // A record that fails is lost (as in Docker): keeping it would grow without bound.
            result = result.and(self.emit(stream, &rest[..len], time));
            start += len;
        }
        pending.buf.drain(..start);
        result
    }

    /// Encodes one record into `out`, rotating first if it would not fit the size limit.
    fn emit(&mut self, stream: Stream, line: &[u8], time: i64) -> io::Result<()> {
        let start = self.out.len();
        encode_record(&mut self.out, stream, line, time)?;
        let (before, len) = (self.written + start as u64, (self.out.len() - start) as u64);
        if matches!(self.max_size, Some(max) if before > 0 && before + len > max) {
            let record = self.out.split_off(start);
            self.write_out()?;
            self.rotate()?;
            self.out = record;
        }
        Ok(())
    }

    /// Writes `out` to the file; on failure cuts the file back to its last whole line.
    fn write_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.out);
        let len = self.out.len() as u64;
        self.out.clear();
        match result {
            Ok(()) => self.written += len,
            // Best effort: should this fail too, readers skip the torn line.
            Err(_) => {
                let _ = self.file.set_len(self.written);
            }
        }
        result
    }

    /// `x.log.n` → `x.log.(n+1)` … `x.log` → `x.log.1` (the oldest beyond `max_file - 1` is
    /// overwritten), then a new empty `x.log`.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file > 1 {
            let (top, mut highest) = (u64::from(self.max_file - 1), 0);
            while highest + 1 < top && rotated_path(&self.path, highest + 1).exists() {
                highest += 1;
            }
            for n in (1..=highest).rev() {
                let (from, to) = (rotated_path(&self.path, n), rotated_path(&self.path, n + 1));
                existing(fs::rename(from, to))?;
            }
            existing(fs::rename(&self.path, rotated_path(&self.path, 1)))?;
        } else {
            // Unlink, not truncate: a follower holding the old file still reads its last lines.
            existing(fs::remove_file(&self.path))?;
        }
        self.file = open_log(&self.path)?;
        self.written = self.file.metadata()?.len();
        Ok(())
    }
}

/// Where to cut `buf` to at most `max` bytes without splitting a UTF-8 character.
fn utf8_cut(buf: &[u8], max: usize) -> usize {
    let from = max.saturating_sub(3);
    let Some(lead) = buf[from..max].iter().rposition(|b| b & 0xc0 != 0x80) else {
        return max;
    };
    // A valid but unfinished character at the end goes to the next piece.
    let rest = std::str::from_utf8(&buf[from + lead..max]);
    let unfinished = rest.is_err_and(|e| e.error_len().is_none());
    if unfinished && from + lead > 0 {
        from + lead
    } else {
        max
    }
}

/// Appends `{"log":…,"stream":…,"time":…}\n`; each byte that is not part of valid UTF-8
/// becomes U+FFFD, as in Go's encoder.
fn encode_record(out: &mut Vec<u8>, stream: Stream, line: &[u8], time: i64) -> io::Result<()> {
    let mut log = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        log.push_str(chunk.valid());
        log.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
    }
    let (stream, time) = (stream.as_str().to_string(), format_time(time));
    serde_json::to_writer(&mut *out, &Entry { log, stream, time }).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(())
}

/// What `docker logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Only records at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Only records at or before this time (unix nanoseconds); a follow ends once it has passed.
    pub until: Option<i64>,
    /// Only the last n of the records selected by stream, since and until; `None` for all.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub follow: bool,
}

impl ReadOptions {
    fn wants(&self, r: &Record) -> bool {
        [self.stdout, self.stderr][r.stream as usize]
            && self.since.is_none_or(|s| r.time_nanos >= s)
            && self.until.is_none_or(|u| r.time_nanos <= u)
    }
}

/// Parses Docker's `since`/`until` query values into unix nanoseconds: unix seconds with an
/// optional fraction (`1700000000.123456789`, what the docker CLI sends), RFC 3339 (without a
/// zone: UTC; a bare date: its midnight UTC), or a Go duration meaning that long ago (`10m`,
/// `1h30m`, `42s`, `1.5h`, `250ms`).
pub fn parse_time_param(s: &str) -> Option<i64> {
    if let Some(n) = parse_unix(s) {
        return Some(n);
    }
    if let Some(ago) = parse_go_duration(s) {
        return unix_nanos(SystemTime::now()).checked_sub(ago);
    }
    berth_clock::parse_rfc3339(s)
        .or_else(|| berth_clock::parse_rfc3339(&format!("{s}Z")))
        .or_else(|| berth_clock::parse_rfc3339(&format!("{s}T00:00:00Z")))
}

/// `[-]seconds[.fraction]`, the fraction cut to nanoseconds.
fn parse_unix(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(secs.strip_prefix('-').unwrap_or(secs)) || !digits(frac) {
        return None;
    }
    let frac = &frac[..frac.len().min(9)];
    let nanos = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    let secs: i64 = secs.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" || rest.is_empty() {
        return (rest == "0").then_some(0);
    }
    // The length of the run of number (or unit) characters that `t` starts with.
    let run = |t: &str, number| t.find(|c: char| (c.is_ascii_digit() || c == '.') != number);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num = run(rest, true).unwrap_or(rest.len());
        let end = num + run(&rest[num..], false).unwrap_or(rest.len() - num);
        let unit: f64 = match &rest[num..end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += rest[..num].parse::<f64>().ok()? * unit;
        rest = &rest[end..];
    }
    let nanos = (sign * total).round();
    (nanos.abs() < 9.2e18).then_some(nanos as i64)
}

/// The text `docker logs` prints for a record, `<RFC 3339 nano> ` first with `timestamps`.
pub fn format_line(r: &Record, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.line.len() + 31);
    if timestamps {
        out.extend_from_slice(format_time(r.time_nanos).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&r.line);
    out
}

/// A json-file line (Docker's `attrs` is ignored).
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(default)]
    log: String,
    stream: String,
    time: String,
}

/// Decodes one line of the log (without its `\n`); `None` for anything else.
fn parse_record(line: &[u8]) -> Option<Record> {
    let e: Entry = serde_json::from_slice(line).ok()?;
    let stream = [Stream::Stdout, Stream::Stderr]
        .into_iter()
        .find(|s| s.as_str() == e.stream)?;
    let time_nanos = berth_clock::parse_rfc3339(&e.time)?;
    Some(Record {
        stream,
        line: e.log.into_bytes(),
        time_nanos,
    })
}

/// Identifies a file across renames: (device, inode).
fn file_id(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// An open log file; it stays readable after it is renamed away or deleted.
struct OpenLog {
    file: File,
    id: (u64, u64),
}

/// Opens the live log and its rotated files, newest first, stopping before the file `stop_at`.
/// Probing newest first, a file that a concurrent rotation shifts is seen twice (kept once), not
/// missed; a rotation leaves at most one name vacant at a time, so two in a row end the chain.
fn open_chain(path: &Path, stop_at: Option<(u64, u64)>) -> io::Result<Vec<OpenLog>> {
    let (mut files, mut missing) = (Vec::<OpenLog>::new(), 0);
    for n in 0.. {
        let p = match n {
            0 => path.to_path_buf(),
            n => rotated_path(path, n),
        };
        let Some(file) = existing(File::open(&p))? else {
            missing += u32::from(n > 0);
            if missing == 2 {
                break;
            }
            continue;
        };
        let id = file_id(&file.metadata()?);
        if Some(id) == stop_at {
            break;
        }
        missing = 0;
        if !files.iter().any(|f| f.id == id) {
            files.push(OpenLog { file, id });
        }
    }
    Ok(files)
}

fn push_if_wanted(line: &[u8], opts: &ReadOptions, out: &mut Vec<Record>) {
    out.extend(parse_record(line).filter(|r| opts.wants(r)));
}

/// Reads the complete lines of `file` from `*pos` on, moving `*pos` past them, to the end or
/// until about `budget` bytes are read. Returns the bytes read and whether it stopped early.
fn read_forward(
    file: &File,
    pos: &mut u64,
    budget: usize,
    opts: &ReadOptions,
    out: &mut Vec<Record>,
) -> io::Result<(usize, bool)> {
    let (mut data, mut chunk, mut used) = (Vec::new(), vec![0u8; READ_CHUNK], 0);
    while used < budget {
        let n = match file.read_at(&mut chunk, *pos + data.len() as u64) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Ok((used, false));
        }
        data.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(i) = data[start..].iter().position(|&b| b == b'\n') {
            push_if_wanted(&data[start..start + i], opts, out);
            start += i + 1;
        }
        data.drain(..start);
        *pos += start as u64;
        used += start;
    }
    Ok((used, true))
}

/// Walks the complete lines of `file[..end]` from the last to the first until `f` returns true.
/// Returns the offset just past the last complete line, where a follower goes on.
fn scan_back(file: &File, end: u64, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<u64> {
    let (mut pos, mut carry, mut aligned) = (end, Vec::new(), None);
    while pos > 0 {
        let n = pos.min(READ_CHUNK as u64);
        pos -= n;
        let mut data = vec![0u8; n as usize];
        file.read_exact_at(&mut data, pos)?;
        data.extend_from_slice(&carry);
        let mut hi = data.len();
        if aligned.is_none() {
            let Some(i) = data.iter().rposition(|&b| b == b'\n') else {
                carry = data;
                continue;
            };
            aligned = Some(pos + i as u64 + 1);
            hi = i + 1;
        }
        // `data[..hi]` ends with a `\n` or is empty.
        while hi > 0 {
            let start = match data[..hi - 1].iter().rposition(|&b| b == b'\n') {
                Some(j) => j + 1,
                None if pos == 0 => 0,
                None => break,
            };
            if f(&data[start..hi - 1]) {
                return Ok(aligned.unwrap_or(0));
            }
            hi = start;
        }
        data.truncate(hi);
        carry = data;
    }
    Ok(aligned.unwrap_or(0))
}

/// A reader's place in a log: the file it reads, how far, and the files to read after it.
#[derive(Default)]
struct Cursor {
    path: PathBuf,
    opts: ReadOptions,
    cur: Option<OpenLog>,
    pos: u64,
    /// Files to read after `cur`, oldest first; all but the last are complete.
    queue: VecDeque<OpenLog>,
}

impl Cursor {
    /// Without `opts.tail`: placed before the oldest file, nothing read yet. With it: the last
    /// `tail` selected records, and placed after them in the live file.
    fn start(path: &Path, opts: &ReadOptions) -> io::Result<(Cursor, Vec<Record>)> {
        let chain = open_chain(path, None)?;
        let (path, opts) = (path.to_path_buf(), opts.clone());
        let mut c = Cursor {
            path,
            opts,
            ..Default::default()
        };
        let Some(n) = c.opts.tail else {
            c.queue = chain.into_iter().rev().collect();
            return Ok((c, Vec::new()));
        };
        let mut records = Vec::new();
        for (i, f) in chain.iter().enumerate() {
            if i > 0 && records.len() >= n {
                break;
            }
            let end = scan_back(&f.file, f.file.metadata()?.len(), |line| {
                if records.len() < n {
                    push_if_wanted(line, &c.opts, &mut records);
                }
                records.len() >= n
            })?;
            if i == 0 {
                c.pos = end;
            }
        }
        records.reverse();
        c.cur = chain.into_iter().next();
        Ok((c, records))
    }

    /// Reads the records completed since the last call, moving on to newer files when the log
    /// was rotated, up to about `budget` bytes. Returns whether more may be waiting.
    fn poll(&mut self, budget: usize, out: &mut Vec<Record>) -> io::Result<bool> {
        let mut left = budget;
        loop {
            // No file yet counts as rotated: all that has appeared since is new.
            let (rotated, id) = match &self.cur {
                None => (true, None),
                Some(cur) => {
                    // The name is looked at before draining, so lines written before a rename
                    // are all in the file we hold.
                    let rotated = self.queue.is_empty()
                        && existing(fs::metadata(&self.path))?
                            .is_some_and(|m| file_id(&m) != cur.id);
                    let (used, stopped) =
                        read_forward(&cur.file, &mut self.pos, left, &self.opts, out)?;
                    if stopped {
                        return Ok(true);
                    }
                    left = left.saturating_sub(used);
                    (rotated, Some(cur.id))
                }
            };
            if self.queue.is_empty() {
                if !rotated {
                    return Ok(false);
                }
                self.queue = open_chain(&self.path, id)?.into_iter().rev().collect();
            }
            let Some(next) = self.queue.pop_front() else {
                return Ok(false);
            };
            (self.cur, self.pos) = (Some(next), 0);
        }
    }
}

/// The records of the log at `path` (rotated files first, oldest first) that `opts` selects:
/// by stream, since and until, then the last `tail` of those.
pub fn read(path: &Path, opts: &ReadOptions) -> io::Result<Vec<Record>> {
    let (mut cursor, mut records) = Cursor::start(path, opts)?;
    if opts.tail.is_none() {
        while cursor.poll(usize::MAX, &mut records)? {}
    }
    Ok(records)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)
}

/// `docker logs --follow`: sends what [`read`] returns, then each record as it is written, across
/// rotations, until `stop` turns true or its sender is dropped: then sends the rest and returns.
/// Also returns once `opts.until` has passed or the receiver is gone. Errors are read errors.
pub async fn follow(
    path: PathBuf,
    opts: ReadOptions,
    tx: mpsc::Sender<Record>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let start_opts = opts.clone();
    let (mut cursor, mut records) = blocking(move || Cursor::start(&path, &start_opts)).await??;
    let (mut more, mut done, mut stop_gone) = (true, false, false);
    loop {
        for r in records {
            if tx.send(r).await.is_err() {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
        if !more {
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                changed = stop.changed() => stop_gone |= changed.is_err(),
                () = tx.closed() => return Ok(()),
            }
        }
        // Read the signal before the file, so what was written before it is drained.
        let stopping = stop_gone || *stop.borrow_and_update();
        let past_until = matches!(opts.until, Some(u) if unix_nanos(SystemTime::now()) > u);
        let (back, polled) = blocking(move || {
            let mut records = Vec::new();
            let polled = cursor.poll(POLL_BUDGET, &mut records);
            (cursor, polled.map(|more| (records, more)))
        })
        .await?;
        cursor = back;
        (records, more) = polled?;
        done = !more && (stopping || past_until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Stream::{Stderr, Stdout};

    const T0: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z
    const S: i64 = 1_000_000_000;

    fn at(secs: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    }

    /// Both streams, changed by `f`.
    fn opts(f: impl FnOnce(&mut ReadOptions)) -> ReadOptions {
        let mut o = ReadOptions::default();
        (o.stdout, o.stderr) = (true, true);
        f(&mut o);
        o
    }

    fn texts(records: &[Record]) -> Vec<String> {
        let text = |r: &Record| String::from_utf8(r.line.clone()).unwrap();
        records.iter().map(text).collect()
    }

    fn read_all(p: &Path) -> Vec<String> {
        texts(&read(p, &opts(|_| {})).unwrap())
    }

    fn new_log(dir: &Path, max_size: Option<u64>, max_file: u32) -> (PathBuf, LogWriter) {
        let p = dir.join("c-json.log");
        (p.clone(), LogWriter::open(&p, max_size, max_file).unwrap())
    }

    /// Every line of the file as parsed JSON; panics on a torn line.
    fn json_lines(path: &Path) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{path:?}");
        let parse = |l: &str| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        text.lines().map(parse).collect()
    }

    fn log_files(dir: &Path) -> Vec<String> {
        let name = |e: io::Result<fs::DirEntry>| e.unwrap().file_name().into_string().unwrap();
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(name).collect();
        names.sort();
        names
    }

    #[test]
    fn lines_split_partials_wait_per_stream_flush_at_exit_format_and_survive_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), None, 1);
        w.write(Stdout, b"one\ntw", at(T0)).unwrap();
        w.write(Stderr, b"err", at(T0 + 1)).unwrap();
        assert_eq!(json_lines(&p).len(), 1, "partial lines wait");
        w.write(Stdout, b"o\nthree\nhalf", at(T0 + 2)).unwrap();
        w.write(Stderr, b"or\nno newline", at(T0 + 3)).unwrap();
        w.flush_partial().unwrap();
        w.flush_partial().unwrap();
        let got = read(&p, &opts(|_| {})).unwrap();
        let expected = ["one\n", "two\n", "three\n", "error\n", "half", "no newline"];
        assert_eq!(texts(&got), expected);
        let streams: Vec<Stream> = got.iter().map(|r| r.stream).collect();
        assert_eq!(streams, [Stdout, Stdout, Stdout, Stderr, Stdout, Stderr]);
        // A line takes the time of the write that completed it.
        assert_eq!(got[1].time_nanos, (T0 + 2) * S);
        assert_eq!(got[3].time_nanos, (T0 + 3) * S);
        assert_eq!(format_line(&got[0], false), b"one\n");
        let stamped = format_line(&got[1], true);
        assert_eq!(stamped, b"2023-11-14T22:13:22.000000000Z two\n");
        // A crash tore the last line: reopening closes it off and new records stay whole.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"log\":\"tor").unwrap();
        let (p, mut w) = new_log(dir.path(), None, 1);
        w.write(Stdout, b"after\n", at(T0)).unwrap();
        assert_eq!(read_all(&p)[5..], ["no newline", "after\n"]);
    }

    #[test]
    fn long_lines_become_16k_pieces_however_they_arrive() {
        let (x, y) = ("x".repeat(MAX_PARTIAL), "y".repeat(MAX_PARTIAL));
        let data = format!("{x}xxxxend\n{y}\nshort\n");
        let expected = [&x, "xxxxend\n", &y, "\n", "short\n"];
        for chunk in [data.len(), 1000, 7, MAX_PARTIAL] {
            let dir = tempfile::tempdir().unwrap();
            let (p, mut w) = new_log(dir.path(), None, 1);
            for (i, piece) in data.as_bytes().chunks(chunk).enumerate() {
                w.write(Stdout, piece, at(T0 + i as i64)).unwrap();
            }
            let got = read(&p, &opts(|_| {})).unwrap();
            assert_eq!(texts(&got), expected, "written in chunks of {chunk}");
            // The pieces of one long line share the time of the first piece.
            assert_eq!(got[0].time_nanos, got[1].time_nanos, "chunks of {chunk}");
        }
        // A piece never ends inside a UTF-8 character.
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), None, 1);
        let a = "a".repeat(MAX_PARTIAL - 1);
        w.write(Stdout, format!("{a}é€😀\n").as_bytes(), at(T0))
            .unwrap();
        assert_eq!(read_all(&p), [a, "é€😀\n".into()]);
        assert_eq!(utf8_cut("aa€".as_bytes(), 4), 2);
        assert_eq!(utf8_cut(&[b'a', 0xff, 0xfe, 0xfd], 4), 4);
    }

    #[test]
    fn json_escapes_quotes_and_controls_and_makes_invalid_utf8_fffd_like_go() {
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), None, 1);
        let inputs: [&[u8]; 4] = [
            b"say \"hi\" \\ back\n",
            b"\x00\x01\x1b[31m\t\r\x7f<a&b>\n",
            b"bad \xff, cut \xe2\x82a\n",
            "sep \u{2028} ok \u{fc}\n".as_bytes(),
        ];
        let expected = [
            "say \"hi\" \\ back\n",
            "\u{0}\u{1}\u{1b}[31m\t\r\u{7f}<a&b>\n",
            "bad \u{fffd}, cut \u{fffd}\u{fffd}a\n",
            "sep \u{2028} ok ü\n",
        ];
        for input in inputs {
            w.write(Stderr, input, at(T0)).unwrap();
        }
        let lines = json_lines(&p);
        assert_eq!(lines.len(), expected.len());
        for (v, text) in lines.iter().zip(expected) {
            assert_eq!(v["log"], text);
            assert_eq!(v["stream"], "stderr");
            assert_eq!(v["time"], "2023-11-14T22:13:20.000000000Z");
            assert_eq!(v.as_object().unwrap().len(), 3);
        }
    }

    /// Writes numbered stdout lines, 79 bytes a record.
    fn write_numbered(w: &mut LogWriter, range: std::ops::Range<usize>) {
        for i in range {
            w.write(Stdout, format!("line {i:03}\n").as_bytes(), at(T0))
                .unwrap();
        }
    }

    fn numbers(texts: &[String]) -> Vec<usize> {
        let number = |t: &String| t.trim_start_matches("line ").trim_end().parse().unwrap();
        texts.iter().map(number).collect()
    }

    #[test]
    fn rotation_keeps_max_file_whole_files_and_a_gapless_window() {
        for max_file in [1u32, 2, 3, 5] {
            let dir = tempfile::tempdir().unwrap();
            let (p, mut w) = new_log(dir.path(), Some(300), max_file);
            write_numbered(&mut w, 0..100);
            let files = log_files(dir.path());
            assert_eq!(files.len(), max_file as usize, "{files:?}");
            let names: Vec<_> = (1..max_file).map(|n| format!("c-json.log.{n}")).collect();
            let ok = files.iter().all(|f| f == "c-json.log" || names.contains(f));
            assert!(ok, "{files:?}");
            for name in &files {
                let f = dir.path().join(name);
                assert!(fs::metadata(&f).unwrap().len() <= 300, "{name} too big");
                assert!(!json_lines(&f).is_empty(), "{name} is empty");
            }
            // Three 79-byte records fit in 300 bytes; only the live file may have room left.
            let got = numbers(&read_all(&p));
            assert!(got.len() > 3 * (max_file as usize - 1), "{got:?}");
            assert_eq!(got, (got[0]..100).collect::<Vec<_>>(), "{max_file}");
        }
        // A record bigger than max_size gets a file of its own.
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), Some(100), 3);
        w.write(Stdout, b"a\n", at(T0)).unwrap();
        w.write(Stdout, &[b'b'; 200], at(T0)).unwrap();
        w.write(Stdout, b"\nc\n", at(T0)).unwrap();
        let b = format!("{}\n", "b".repeat(200));
        assert_eq!(read_all(&p), ["a\n", &b, "c\n"]);
        assert_eq!(log_files(dir.path()).len(), 3);
    }

    #[test]
    fn read_filters_by_stream_since_until_then_tails_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), Some(400), 100);
        // 0..40 alternating stdout/stderr, one second apart, over eight files.
        for i in 0..40i64 {
            let stream = if i % 2 == 0 { Stdout } else { Stderr };
            w.write(stream, format!("{i}\n").as_bytes(), at(T0 + i))
                .unwrap();
        }
        assert_eq!(log_files(dir.path()).len(), 8);
        let read_with = |f: fn(&mut ReadOptions)| -> Vec<i64> {
            let texts = texts(&read(&p, &opts(f)).unwrap());
            texts.iter().map(|t| t.trim().parse().unwrap()).collect()
        };
        let range = |r: std::ops::Range<i64>, step| r.step_by(step).collect::<Vec<_>>();
        fn s(i: i64) -> Option<i64> {
            Some((T0 + i) * S)
        }
        assert_eq!(read_with(|_| {}), range(0..40, 1));
        assert_eq!(read_with(|o| o.stderr = false), range(0..40, 2));
        let stderr_tail = read_with(|o| (o.stdout, o.tail) = (false, Some(12)));
        assert_eq!(stderr_tail, range(17..40, 2));
        let window = read_with(|o| (o.since, o.until) = (s(5), s(9)));
        assert_eq!(window, [5, 6, 7, 8, 9]);
        let tail_of_window = |o: &mut ReadOptions| {
            (o.stderr, o.since, o.until, o.tail) = (false, s(5), s(30), Some(3));
        };
        assert_eq!(read_with(tail_of_window), [26, 28, 30]);
        assert!(read_with(|o| o.tail = Some(0)).is_empty());
        assert_eq!(read_with(|o| o.tail = Some(1)), [39]);
        assert_eq!(read_with(|o| o.tail = Some(25)), range(15..40, 1));
        assert_eq!(read_with(|o| o.tail = Some(1000)), range(0..40, 1));
        assert!(read_all(&dir.path().join("none-json.log")).is_empty());
    }

    #[test]
    fn cursor_waits_for_the_log_and_catches_up_over_rotations_and_unlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let (mut c, mut got) = Cursor::start(&p, &opts(|_| {})).unwrap();
        assert!(!c.poll(POLL_BUDGET, &mut got).unwrap() && got.is_empty());
        let (_, mut w) = new_log(dir.path(), Some(300), 10);
        write_numbered(&mut w, 0..5);
        while c.poll(POLL_BUDGET, &mut got).unwrap() {}
        write_numbered(&mut w, 5..25); // six rotations between two polls
        while c.poll(100, &mut got).unwrap() {}
        assert_eq!(numbers(&texts(&got)), (0..25).collect::<Vec<_>>());
        // max_file 1 unlinks the full log: a follower holding it still reads its last lines.
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), Some(300), 1);
        write_numbered(&mut w, 0..2);
        let (mut c, mut got) = Cursor::start(&p, &opts(|o| o.tail = Some(1))).unwrap();
        write_numbered(&mut w, 2..5);
        while c.poll(POLL_BUDGET, &mut got).unwrap() {}
        assert_eq!(numbers(&texts(&got)), [1, 2, 3, 4]);
    }

    #[test]
    fn parse_time_param_takes_unix_seconds_rfc3339_and_go_durations() {
        let exact = [
            ("1700000000", T0 * S),
            ("0", 0),
            ("1700000000.123456789", T0 * S + 123_456_789),
            ("1700000000.1234567891", T0 * S + 123_456_789),
            ("2023-11-14T22:13:20.5Z", T0 * S + S / 2),
            ("2023-11-14T23:13:20+01:00", T0 * S),
            ("2023-11-14T22:13:20", T0 * S),
            ("2023-11-14", (T0 - 80_000) * S),
        ];
        for (text, nanos) in exact {
            assert_eq!(parse_time_param(text), Some(nanos), "{text}");
        }
        let now = unix_nanos(SystemTime::now());
        for (text, secs) in [("10m", 600), ("1h30m", 5400), ("-1m", -60)] {
            let t = parse_time_param(text).unwrap_or_else(|| panic!("{text}"));
            assert!((now - secs * S - t).abs() < 10 * S, "{text}: {t}");
        }
        for bad in [
            "", "soon", "10x", "1h30", "h", ".", "1.2.3", "12:00", "-", "9e9", "+5",
        ] {
            assert_eq!(parse_time_param(bad), None, "{bad:?}");
        }
        assert_eq!(parse_go_duration("2h0m3.5s"), Some(7203 * S + S / 2));
        assert_eq!(parse_go_duration("1.5h"), Some(5400 * S));
        assert_eq!(parse_go_duration(".5us"), Some(500));
        assert_eq!(parse_go_duration("250ms"), Some(S / 4));
        assert_eq!(parse_go_duration("3000000h"), None);
    }

    /// The next `n` texts the follower sends (or `None` once it has hung up).
    async fn recv(rx: &mut mpsc::Receiver<Record>, n: usize) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            out.extend(texts(&[next.expect("nothing within 10 s")?]));
        }
        Some(out)
    }

    async fn finishes(task: tokio::task::JoinHandle<io::Result<()>>) {
        let done = tokio::time::timeout(Duration::from_secs(10), task).await;
        done.expect("follow did not return").unwrap().unwrap();
    }

    #[tokio::test]
    async fn follow_sees_every_line_in_order_across_rotations_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (p, mut w) = new_log(dir.path(), Some(400), 8);
        let now = SystemTime::now;
        w.write(Stdout, b"early 1\nearly 2\n", now()).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(p.clone(), opts(|_| {}), tx, stop_rx));
        assert_eq!(recv(&mut rx, 2).await.unwrap(), ["early 1\n", "early 2\n"]);
        for round in 0..8 {
            let mut expected: Vec<_> = (0..3).map(|i| format!("round {round} {i}\n")).collect();
            for line in &expected {
                w.write(Stdout, line.as_bytes(), now()).unwrap();
            }
            w.write(Stderr, b"par", now()).unwrap();
            w.write(Stderr, b"tial\n", now()).unwrap();
            expected.push("partial\n".into());
            assert_eq!(recv(&mut rx, expected.len()).await.unwrap(), expected);
        }
        // A burst over several rotations before the follower looks again.
        let burst: Vec<String> = (0..15).map(|i| format!("burst {i}\n")).collect();
        for line in &burst {
            w.write(Stdout, line.as_bytes(), now()).unwrap();
        }
        assert_eq!(recv(&mut rx, burst.len()).await.unwrap(), burst);
        assert_eq!(log_files(dir.path()).len(), 8);
        // The container exits: its last lines, the unfinished one flushed, then the signal.
        w.write(Stdout, b"last\nbye", now()).unwrap();
        w.flush_partial().unwrap();
        stop_tx.send(true).unwrap();
        finishes(task).await;
        assert_eq!(recv(&mut rx, 2).await.unwrap(), ["last\n", "bye"]);
        assert_eq!(recv(&mut rx, 1).await, None, "follow dropped its sender");
    }

    #[tokio::test]
    async fn follow_with_tail_and_its_other_ends_receiver_gone_until_passed_stop_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let (tx, rx) = mpsc::channel(8);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(p.clone(), opts(|_| {}), tx, stop_rx.clone()));
        drop(rx);
        finishes(task).await;

        let (_, mut w) = new_log(dir.path(), None, 1);
        w.write(Stdout, b"a\nb\n", at(T0)).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let past = opts(|o| o.until = Some((T0 + 1) * S));
        finishes(tokio::spawn(follow(p.clone(), past, tx, stop_rx))).await;
        assert_eq!(recv(&mut rx, 2).await.unwrap(), ["a\n", "b\n"]);

        let (tx, mut rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(p.clone(), opts(|o| o.tail = Some(1)), tx, stop_rx));
        assert_eq!(recv(&mut rx, 1).await.unwrap(), ["b\n"]);
        w.write(Stdout, b"c\n", SystemTime::now()).unwrap();
        assert_eq!(recv(&mut rx, 1).await.unwrap(), ["c\n"]);
        drop(stop_tx);
        finishes(task).await;
        assert_eq!(recv(&mut rx, 1).await, None);
    }
}
