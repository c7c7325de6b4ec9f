//! Failpoints: named steps of an operation (`start.after-task-create`, `pull.after-blob`, …)
//! where a test makes the process die as `kill -9` would, to prove that a crash there leaves a
//! consistent state behind. They exist in debug builds (the ones the tests run) only: in a
//! release build [`point`] is empty and reads no environment.
//!
//! - `BERTH_FAILPOINTS=name[,name…]` arms points (the variable is inherited, so one setting
//!   reaches berthd, the berth-containerd it starts and the shims that one starts);
//!   `name=delay:MS` instead makes [`delay`] answer MS milliseconds there, every time (for
//!   tests that need an operation held up in the middle);
//! - `BERTH_FAILPOINTS_LOG=FILE` records each point hit, a line per name, before dying, and
//!   makes each point fire once: a point already in the log is passed, so the restarted process
//!   (and a supervisor's restart of it) goes on. Tests read the log to know the crash happened
//!   where they meant it to.

/// Dies here, by SIGKILL, when `name` is armed (and, with a log, not yet hit).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    armed::hit(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// How long to hold up the operation at `name`, when it is armed with `delay:MS`.
#[inline]
pub fn delay(name: &str) -> Option<std::time::Duration> {
    #[cfg(debug_assertions)]
    return armed::delay(name);
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        None
    }
}

/// The names armed in `BERTH_FAILPOINTS` (empty, the usual case, costs one load).
#[cfg(debug_assertions)]
mod armed {
    use std::io::Write;
    use std::sync::OnceLock;

    /// Each armed point: its name and, for a delay, the milliseconds.
    fn points() -> &'static [(String, Option<u64>)] {
        static POINTS: OnceLock<Vec<(String, Option<u64>)>> = OnceLock::new();
        POINTS.get_or_init(|| {
            std::env::var("BERTH_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| match n.split_once("=delay:") {
                    Some((name, ms)) => (name.to_string(), Some(ms.parse().unwrap_or(0))),
                    None => (n.to_string(), None),
                })
                .collect()
        })
    }

    pub fn delay(name: &str) -> Option<std::time::Duration> {
        points()
            .iter()
            .find_map(|(n, ms)| (n == name).then_some(*ms).flatten())
            .map(std::time::Duration::from_millis)
    }

    pub fn hit(name: &str) {
        if !points().iter().any(|(n, ms)| n == name && ms.is_none()) {
            return;
        }
        if let Some(log) = std::env::var_os("BERTH_FAILPOINTS_LOG") {
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            if seen.lines().any(|l| l == name) {
                return;
            }
            let logged = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| {
                    f.write_all(format!("{name}\n").as_bytes())?;
                    f.sync_all()
                });
            if logged.is_err() {
                // Without the record the point would fire again after every restart.
                return;
            }
        }
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL to oneself is delivered before the call returns.
        std::process::abort();
    }
}
