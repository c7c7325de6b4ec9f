//! Docker's json-file log driver: one JSON object per line (`{"log","stream","time"}`, time
//! RFC 3339 with nanoseconds), partial lines flushed at 16 KiB, rotation by size
//! (`max-size`, `max-file`), and the reader behind `docker logs` (since, until, tail,
//! timestamps, follow across rotations).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest partial line kept before it is written as its own record.
const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: Stream,
    pub line: Vec<u8>,
    pub time_nanos: i64,
}

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn rfc3339(n: i64) -> String {
    berth_clock::rfc3339(
        n.div_euclid(1_000_000_000),
        n.rem_euclid(1_000_000_000) as u32,
    )
}

impl LogWriter {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> std::io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.max_file > 1 {
            for n in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(rotated(n), rotated(n + 1));
            }
            std::fs::rename(&self.path, rotated(1))?;
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn record(&mut self, stream: Stream, line: &[u8], t: i64) -> std::io::Result<()> {
        let mut out = serde_json::to_vec(&serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream.name(),
            "time": rfc3339(t),
        }))
        .unwrap_or_default();
        out.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + out.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&out)?;
        self.size += out.len() as u64;
        Ok(())
    }

    /// Appends output of `stream`: whole lines become records, a partial line waits for more.
    pub fn write(&mut self, stream: Stream, data: &[u8], time: SystemTime) -> std::io::Result<()> {
        let t = nanos(time);
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            self.record(stream, &buf[start..end], t)?;
            start = end;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_PARTIAL {
            let tail = rest.split_off(MAX_PARTIAL);
            self.record(stream, &rest, t)?;
            rest = tail;
        }
        self.partial[i] = rest;
        Ok(())
    }

    /// Writes any partial lines (at container exit).
    pub fn flush_partial(&mut self) -> std::io::Result<()> {
        let t = nanos(SystemTime::now());
        for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let p = std::mem::take(&mut self.partial[i]);
            if !p.is_empty() {
                self.record(s, &p, t)?;
            }
        }
        self.file.flush()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub follow: bool,
}

impl ReadOptions {
    fn wants(&self, r: &Record) -> bool {
        let stream_ok = match r.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream_ok
            && self.since.is_none_or(|s| r.time_nanos >= s)
            && self.until.is_none_or(|u| r.time_nanos <= u)
    }
}

/// Docker's `since`/`until`: unix seconds (with a fraction), RFC 3339, or a duration ago.
pub fn parse_time_param(s: &str) -> Option<i64> {
    if let Some(n) = berth_clock::parse_rfc3339(s) {
        return Some(n);
    }
    if let Some((secs, frac)) = s.split_once('.') {
        let secs: i64 = secs.parse().ok()?;
        let digits = &frac[..frac.len().min(9)];
        let f: i64 = format!("{digits:0<9}").parse().ok()?;
        return Some(secs * 1_000_000_000 + f);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs * 1_000_000_000);
    }
    // A Go duration: 1h30m, 10m, 42s, 500ms.
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(nanos(SystemTime::now()) - (total * 1e9) as i64)
}

fn parse_line(line: &str) -> Option<Record> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(Record {
        stream: if v["stream"] == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        line: v["log"].as_str()?.as_bytes().to_vec(),
        time_nanos: berth_clock::parse_rfc3339(v["time"].as_str()?)?,
    })
}

/// The live log and its rotated files, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = (1..100)
        .map(|n| (n, PathBuf::from(format!("{}.{n}", path.display()))))
        .take_while(|(_, p)| p.exists())
        .collect();
    rotated.reverse();
    rotated
        .into_iter()
        .map(|(_, p)| p)
        .chain(std::iter::once(path.to_path_buf()))
        .collect()
}

/// The records `opts` selects, in order.
pub fn read(path: &Path, opts: &ReadOptions) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for f in files(path) {
        let Ok(file) = File::open(&f) else { continue };
        for line in BufReader::new(file).lines() {
            if let Some(r) = parse_line(&line?) {
                if opts.wants(&r) {
                    out.push(r);
                }
            }
        }
    }
    if let Some(n) = opts.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok(out)
}

/// Sends what `read` gives, then new records as they are written, until `stop` turns true
/// (then what remains) or the receiver goes away.
pub async fn follow(
    path: PathBuf,
    opts: ReadOptions,
    tx: tokio::sync::mpsc::Sender<Record>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (initial, mut pos, mut ino) = {
        let p = path.clone();
        let o = opts.clone();
        match tokio::task::spawn_blocking(move || {
            let recs = read(&p, &o).unwrap_or_default();
            let meta = std::fs::metadata(&p).ok();
            (
                recs,
                meta.as_ref().map_or(0, |m| m.len()),
                meta.map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m)),
            )
        })
        .await
        {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    for r in initial {
        if tx.send(r).await.is_err() {
            return;
        }
    }
    let mut carry = String::new();
    loop {
        let stopping = *stop.borrow();
        // New bytes of the current file (or the rest of the old one after a rotation).
        let p = path.clone();
        let got = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64, u64)> {
            let meta = std::fs::metadata(&p)?;
            let now_ino = std::os::unix::fs::MetadataExt::ino(&meta);
            let (file_path, from) = if now_ino != ino {
                // Rotated: finish the old file (now .1), then start the new one.
                (PathBuf::from(format!("{}.1", p.display())), pos)
            } else {
                (p.clone(), pos)
            };
            let mut f = File::open(&file_path)?;
            f.seek(SeekFrom::Start(from))?;
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s)?;
            let end = from + s.len() as u64;
            Ok((s, end, now_ino))
        })
        .await;
        let Ok(Ok((text, newpos, now_ino))) = got else {
            return;
        };
        carry.push_str(&text);
        while let Some(i) = carry.find('\n') {
            let line: String = carry.drain(..=i).collect();
            if let Some(r) = parse_line(line.trim_end()) {
                if opts.wants(&r) && tx.send(r).await.is_err() {
                    return;
                }
            }
        }
        if now_ino != ino {
            ino = now_ino;
            pos = 0;
            continue;
        }
        pos = newpos;
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
            _ = tx.closed() => return,
        }
    }
}

/// The bytes `docker logs` prints for a record.
pub fn format_line(r: &Record, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.line.len() + 32);
    if timestamps {
        out.extend_from_slice(rfc3339(r.time_nanos).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&r.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReadOptions {
        ReadOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    #[test]
    fn lines_partials_escaping_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(300), 3).unwrap();
        let t = SystemTime::now();
        w.write(Stream::Stdout, b"one\ntw", t).unwrap();
        w.write(Stream::Stderr, b"\"quoted\"\t\xff\n", t).unwrap();
        w.write(Stream::Stdout, b"o\n", t).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_PARTIAL + 10], t)
            .unwrap();
        w.write(Stream::Stdout, b"end", t).unwrap();
        w.flush_partial().unwrap();
        let all = read(&p, &opts()).unwrap();
        let texts: Vec<String> = all
            .iter()
            .map(|r| String::from_utf8_lossy(&r.line).into_owned())
            .collect();
        assert_eq!(texts[0], "one\n");
        assert_eq!(texts[1], "\"quoted\"\t\u{fffd}\n");
        assert_eq!(all[1].stream, Stream::Stderr);
        assert_eq!(texts[2], "two\n");
        assert_eq!(texts[3].len(), MAX_PARTIAL);
        assert_eq!(texts.last().unwrap(), &format!("{}end", "x".repeat(10)));
        // Rotation kept at most max-file files, each a sequence of whole JSON lines.
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(n <= 3, "{n} files");
        for f in files(&p) {
            for l in std::fs::read_to_string(f).unwrap().lines() {
                assert!(parse_line(l).is_some(), "torn line {l}");
            }
        }
        let tail = read(
            &p,
            &ReadOptions {
                tail: Some(1),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(tail.len(), 1);
        let errs = read(
            &p,
            &ReadOptions {
                stdout: false,
                ..opts()
            },
        )
        .unwrap();
        assert!(errs.iter().all(|r| r.stream == Stream::Stderr));
    }

    #[test]
    fn time_params() {
        assert_eq!(
            parse_time_param("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time_param("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_time_param("1970-01-01T00:00:01Z"),
            Some(1_000_000_000)
        );
        let ago = parse_time_param("1h30m").unwrap();
        let now = nanos(SystemTime::now());
        assert!((now - ago - 5_400_000_000_000).abs() < 5_000_000_000);
        assert!(parse_time_param("soon").is_none());
    }

    #[tokio::test]
    async fn follow_sees_new_lines_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f-json.log");
        let mut w = LogWriter::open(&p, None, 1).unwrap();
        w.write(Stream::Stdout, b"before\n", SystemTime::now())
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let h = tokio::spawn(follow(p.clone(), opts(), tx, stop_rx));
        assert_eq!(rx.recv().await.unwrap().line, b"before\n");
        w.write(Stream::Stdout, b"after\n", SystemTime::now())
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().line, b"after\n");
        w.write(Stream::Stdout, b"last\n", SystemTime::now())
            .unwrap();
        stop_tx.send(true).unwrap();
        h.await.unwrap();
        assert_eq!(rx.recv().await.unwrap().line, b"last\n");
        assert!(rx.recv().await.is_none());
    }
}
