//! `berth build`'s live view on a terminal, in BuildKit's manner: one line per step with its
//! state (running, `CACHED`, done) and time, the last lines of the running step's output
//! under it, and a header with the elapsed time and the steps done; redrawn in place as the
//! daemon's progress lines come and every 100 ms between them. A step that fails is followed by
//! its whole output. On a pipe `berth build` prints the daemon's lines as they are instead.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::DaemonError;
use crate::http::Response;

/// How many of the running step's last output lines the view shows.
const TAIL: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    Cached,
    Done,
}

#[derive(Debug)]
struct Step {
    number: String,
    text: String,
    state: State,
    started: Instant,
    took: Option<Duration>,
    output: Vec<String>,
}

/// The build's progress as read so far.
#[derive(Debug, Default)]
pub struct View {
    steps: Vec<Step>,
    total: String,
    /// A partial line of stream text.
    pending: String,
    /// The final `Successfully …` lines.
    summary: Vec<String>,
}

impl View {
    /// Takes one piece of the daemon's `stream` text (whole lines or parts of them).
    pub fn feed(&mut self, text: &str, now: Instant) {
        self.pending.push_str(text);
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            self.line(line.trim_end_matches('\n'), now);
        }
    }

    fn finish_current(&mut self, state: State, now: Instant) {
        if let Some(s) = self.steps.last_mut().filter(|s| s.state == State::Running) {
            s.took = Some(now.duration_since(s.started));
            s.state = state;
        }
    }

    fn line(&mut self, line: &str, now: Instant) {
        if let Some(rest) = line.strip_prefix("Step ") {
            self.finish_current(State::Done, now);
            let (count, text) = rest.split_once(" : ").unwrap_or((rest, ""));
            let (number, total) = count.split_once('/').unwrap_or((count, "?"));
            self.total = total.to_string();
            self.steps.push(Step {
                number: number.to_string(),
                text: text.to_string(),
                state: State::Running,
                started: now,
                took: None,
                output: Vec::new(),
            });
        } else if line == " ---> Using cache" {
            self.finish_current(State::Cached, now);
        } else if line.starts_with(" ---> ") || line.starts_with("Removing intermediate container ")
        {
            // The step's image, or its container: nothing to show.
        } else if line.starts_with("Successfully ") {
            self.finish_current(State::Done, now);
            self.summary.push(line.to_string());
        } else if let Some(s) = self.steps.last_mut() {
            s.output.push(line.to_string());
        }
    }

    /// The view as text, `width` columns wide.
    pub fn render(&self, started: Instant, now: Instant, width: usize, finished: bool) -> String {
        let done = self
            .steps
            .iter()
            .filter(|s| s.state != State::Running)
            .count();
        let mut out = format!(
            "[+] Building {:.1}s ({done}/{}){}\n",
            now.duration_since(started).as_secs_f64(),
            if self.total.is_empty() {
                "?"
            } else {
                &self.total
            },
            if finished { " FINISHED" } else { "" }
        );
        for s in &self.steps {
            let took = s.took.unwrap_or_else(|| now.duration_since(s.started));
            let mark = if s.state == State::Cached {
                "CACHED "
            } else {
                ""
            };
            let left = format!(" => {mark}[{}/{}] {}", s.number, self.total, s.text);
            let time = format!("{:.1}s", took.as_secs_f64());
            let room = width.saturating_sub(time.len() + 1);
            let left: String = left.chars().take(room).collect();
            let pad = room.saturating_sub(left.chars().count());
            out.push_str(&format!("{left}{}{time}\n", " ".repeat(pad + 1)));
            if s.state == State::Running {
                for l in s.output.iter().rev().take(TAIL).rev() {
                    let l: String = format!(" => > {l}").chars().take(width).collect();
                    out.push_str(&format!("\x1b[2m{l}\x1b[0m\n"));
                }
            }
        }
        out
    }

    /// The output of the step that was running when the build failed.
    fn failed_output(&self) -> Vec<String> {
        let running = self.steps.iter().rev().find(|s| s.state == State::Running);
        running.map(|s| s.output.clone()).unwrap_or_default()
    }
}

/// One message of the daemon's build stream, as the reader thread passes it on.
enum Message {
    Stream(String),
    Aux(Value),
    Error(String),
    End(Option<String>),
}

fn read_all(mut resp: Response, tx: mpsc::Sender<Message>) {
    loop {
        let msg = match resp.next_line() {
            Err(e) => Message::End(Some(e.to_string())),
            Ok(None) => Message::End(None),
            Ok(Some(line)) => match serde_json::from_slice::<Value>(&line) {
                Err(_) => continue,
                Ok(m) => {
                    if let Some(e) = m.get("errorDetail").or_else(|| m.get("error")) {
                        let text = e
                            .get("message")
                            .and_then(Value::as_str)
                            .or_else(|| e.as_str());
                        Message::Error(text.unwrap_or("unknown error").to_string())
                    } else if let Some(a) = m.get("aux") {
                        Message::Aux(a.clone())
                    } else {
                        let s = m.get("stream").and_then(Value::as_str).unwrap_or_default();
                        Message::Stream(s.to_string())
                    }
                }
            },
        };
        let end = matches!(msg, Message::End(_) | Message::Error(_));
        if tx.send(msg).is_err() || end {
            return;
        }
    }
}

/// Shows a build's progress live on the terminal `out`; its `aux` objects (the image id).
pub fn show(resp: Response, out: &mut dyn Write) -> anyhow::Result<Vec<Value>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || read_all(resp, tx));
    let width = crate::term::size().map_or(100, |(_, w)| w as usize).max(40);
    let started = Instant::now();
    let (mut view, mut aux, mut drawn) = (View::default(), Vec::new(), 0usize);
    let mut redraw = |view: &View, out: &mut dyn Write, finished: bool| -> std::io::Result<()> {
        let text = view.render(started, Instant::now(), width, finished);
        if drawn > 0 {
            write!(out, "\x1b[{drawn}A")?;
        }
        write!(out, "\x1b[J{text}")?;
        drawn = text.lines().count();
        out.flush()
    };
    let failure = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Message::Stream(s)) => view.feed(&s, Instant::now()),
            Ok(Message::Aux(a)) => aux.push(a),
            Ok(Message::Error(e)) => break Some(e),
            Ok(Message::End(e)) => break e,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
        }
        redraw(&view, out, false)?;
    };
    redraw(&view, out, failure.is_none())?;
    if let Some(message) = failure {
        for l in view.failed_output() {
            writeln!(out, "{l}")?;
        }
        return Err(DaemonError {
            status: 500,
            message,
        }
        .into());
    }
    for l in &view.summary {
        writeln!(out, "{l}")?;
    }
    Ok(aux)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_show_their_state_time_and_output() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut v = View::default();
        v.feed(
            "Step 1/3 : FROM busybox\n ---> 1234\nStep 2/3 : ENV A=b\n ---> Using cache\n",
            at(0),
        );
        v.feed(" ---> 5678\nStep 3/3 : RUN echo hi && ech", at(100));
        v.feed("o there\n ---> Running in abc\nhi\nthere\n", at(200));
        let running = v.render(t0, at(1200), 80, false);
        assert!(
            running.starts_with("[+] Building 1.2s (2/3)\n"),
            "{running}"
        );
        assert!(running.contains(" => CACHED [2/3] ENV A=b"), "{running}");
        assert!(
            running.contains(" => [3/3] RUN echo hi && echo there"),
            "{running}"
        );
        assert!(
            running.contains(" => > hi\n") || running.contains(" => > hi\u{1b}"),
            "{running}"
        );
        assert!(
            // Its line was whole only at 200 ms.
            running.lines().nth(3).unwrap().ends_with("1.0s"),
            "{running}"
        );
        assert_eq!(v.failed_output(), ["hi", "there"]);
        v.feed(
            " ---> 9abc\nRemoving intermediate container abc\nSuccessfully built 9abc\n",
            at(1500),
        );
        let done = v.render(t0, at(1600), 80, true);
        assert!(
            done.starts_with("[+] Building 1.6s (3/3) FINISHED\n"),
            "{done}"
        );
        assert!(
            !done.contains(" => > "),
            "a finished step's output is not shown: {done}"
        );
        assert_eq!(v.summary, ["Successfully built 9abc"]);
        assert!(done.lines().all(|l| l.chars().count() <= 80), "{done}");
    }
}
