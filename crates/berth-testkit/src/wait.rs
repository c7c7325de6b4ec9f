//! Waiting on a condition with a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// Polls `cond` until it returns true or `timeout` passes, starting at 1 ms between polls and
/// backing off to 50 ms. The error names what was awaited.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_condition_holds() {
        let mut n = 0;
        wait_for(Duration::from_secs(5), "third poll", || {
            n += 1;
            n == 3
        })
        .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn times_out_naming_the_condition() {
        let err = wait_for(Duration::from_millis(20), "never", || false).unwrap_err();
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }
}
