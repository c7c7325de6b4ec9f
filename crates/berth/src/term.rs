//! The terminal: whether a stream is one, raw mode for `-it` (restored on drop), its size, and
//! a watcher that reports size changes (polling `TIOCGWINSZ`, so no signal handler is needed).

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::termios::{self, OptionalActions, Termios};

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// `(rows, columns)` of the terminal on stdout (or stdin).
pub fn size() -> Option<(u16, u16)> {
    let get = |fd: std::os::fd::BorrowedFd<'_>| {
        termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| (w.ws_row, w.ws_col))
    };
    get(std::io::stdout().as_fd()).or_else(|| get(std::io::stdin().as_fd()))
}

/// Puts stdin's terminal in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enable() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        // Keep output post-processing so "\n" from our own messages still returns the carriage.
        raw.output_modes.insert(termios::OutputModes::OPOST);
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// Calls `on_resize(rows, cols)` whenever the terminal's size changes, until dropped.
pub struct ResizeWatcher {
    stop: Arc<AtomicBool>,
}

impl ResizeWatcher {
    pub fn start(on_resize: impl Fn(u16, u16) + Send + 'static) -> ResizeWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut last = size();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = size();
                if now != last {
                    if let Some((h, w)) = now {
                        on_resize(h, w);
                    }
                    last = now;
                }
            }
        });
        ResizeWatcher { stop }
    }
}

impl Drop for ResizeWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Turns off echo on stdin's terminal (password prompts) until dropped.
pub struct NoEcho {
    saved: Termios,
}

impl NoEcho {
    pub fn enable() -> anyhow::Result<NoEcho> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut t = saved.clone();
        t.local_modes.remove(termios::LocalModes::ECHO);
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &t)?;
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}
