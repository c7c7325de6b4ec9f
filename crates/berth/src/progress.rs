//! Docker's JSON progress stream (pull, push, load, import): on a terminal one line per layer
//! id, rewritten in place with ANSI cursor movement and a progress bar; elsewhere plain lines
//! ("<id>: Pull complete") without the bars. An `errorDetail` in the stream is an error.

use std::io::Write;

use serde_json::Value;

use crate::api::{self, DaemonError};
use crate::http::Response;
use crate::units::human_size;

/// Renders `resp`'s JSON lines to `out`. Returns the `aux` objects seen (push digests, load ids).
pub fn display(mut resp: Response, out: &mut dyn Write, tty: bool) -> anyhow::Result<Vec<Value>> {
    let mut ids: Vec<String> = Vec::new();
    let mut aux = Vec::new();
    let width = crate::term::size().map_or(200, |(_, w)| w as usize);
    while let Some(line) = resp.next_line()? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(m) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if let Some(e) = m.get("errorDetail").or_else(|| m.get("error")) {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .unwrap_or("unknown error")
                .to_string();
            out.flush()?;
            return Err(DaemonError {
                status: 500,
                message: msg,
            }
            .into());
        }
        if let Some(a) = m.get("aux") {
            aux.push(a.clone());
            continue;
        }
        let id = api::s(&m, "id").to_string();
        let has_progress = m
            .get("progressDetail")
            .is_some_and(|p| p.get("total").is_some() || p.get("current").is_some());
        if !tty {
            if has_progress || !api::s(&m, "progress").is_empty() {
                continue;
            }
            write_message(out, &m)?;
            continue;
        }
        // Terminal: one line per layer id, rewritten in place; anything else ends the block.
        let status = api::s(&m, "status");
        let tracked = !id.is_empty() && !status.starts_with("Pulling from");
        if !tracked {
            ids.clear();
            write_message(out, &m)?;
            continue;
        }
        let pos = match ids.iter().position(|x| *x == id) {
            Some(p) => p,
            None => {
                ids.push(id.clone());
                writeln!(out)?;
                ids.len() - 1
            }
        };
        let up = ids.len() - pos;
        write!(out, "\x1b[{up}A\x1b[2K\r{id}: {status}")?;
        if has_progress {
            write!(out, " {}", progress_bar(&m, width))?;
        }
        write!(out, "\r\x1b[{up}B")?;
        out.flush()?;
    }
    out.flush()?;
    Ok(aux)
}

fn write_message(out: &mut dyn Write, m: &Value) -> std::io::Result<()> {
    let id = api::s(m, "id");
    if let Some(stream) = m.get("stream").and_then(Value::as_str) {
        return write!(out, "{stream}");
    }
    if !id.is_empty() {
        write!(out, "{id}: ")?;
    }
    writeln!(out, "{}", api::s(m, "status"))
}

/// Docker's `JSONProgress.String()`: `[=========>        ]  1.2MB/4.5MB` (the bar only on
/// terminals wider than 110 columns).
fn progress_bar(m: &Value, width: usize) -> String {
    let d = m.get("progressDetail").cloned().unwrap_or(Value::Null);
    let current = api::i(&d, "current");
    let total = api::i(&d, "total");
    if total <= 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = if width > 110 {
        format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
    } else {
        String::new()
    };
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn feed(lines: &[&str], tty: bool) -> anyhow::Result<String> {
        let (mut a, b) = UnixStream::pair().unwrap();
        let body = lines.join("\n") + "\n";
        write!(
            a,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        drop(a);
        let mut out = Vec::new();
        display(crate::http::response_from(b).unwrap(), &mut out, tty)?;
        Ok(String::from_utf8(out).unwrap())
    }

    const PULL: &[&str] = &[
        r#"{"status":"Pulling from library/bb","id":"latest"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":500,"total":1000},"progress":"[==>  ]","id":"abc"}"#,
        r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
        r#"{"status":"Status: Downloaded newer image for bb:latest"}"#,
    ];

    #[test]
    fn plain_lines_without_bars_on_a_pipe() {
        assert_eq!(
            feed(PULL, false).unwrap(),
            "latest: Pulling from library/bb\nabc: Pulling fs layer\nabc: Pull complete\nStatus: Downloaded newer image for bb:latest\n"
        );
    }

    #[test]
    fn a_line_per_layer_rewritten_in_place_on_a_terminal() {
        let out = feed(PULL, true).unwrap();
        assert!(
            out.contains("\x1b[1A\x1b[2K\rabc: Downloading ["),
            "{out:?}"
        );
        let bar = format!("[{}>{}]     500B/1kB", "=".repeat(25), " ".repeat(25));
        assert!(out.contains(&bar), "{out:?}");
        assert!(
            out.contains("\x1b[1A\x1b[2K\rabc: Pull complete\r\x1b[1B"),
            "{out:?}"
        );
        assert!(
            out.ends_with("Status: Downloaded newer image for bb:latest\n"),
            "{out:?}"
        );
    }

    #[test]
    fn an_error_in_the_stream_fails() {
        let e = feed(
            &[r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error response from daemon: manifest unknown"
        );
    }
}
