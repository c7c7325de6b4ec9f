//! Running one iteration: each command line of a contender in turn, timed on the wall clock,
//! with the peak RSS of each process read from wait4's rusage.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

/// One iteration's cost.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub wall: Duration,
    /// Largest peak RSS of the commands of the iteration, in KiB.
    pub max_rss_kib: u64,
}

/// Replaced in a command line by the round number, for ids that must differ from run to run.
pub const RUN: &str = "{run}";

/// The command lines of `steps` with [`RUN`] replaced by `round`.
pub fn numbered(steps: &[Vec<String>], round: usize) -> Vec<Vec<String>> {
    let n = round.to_string();
    steps
        .iter()
        .map(|argv| argv.iter().map(|a| a.replace(RUN, &n)).collect())
        .collect()
}

/// Finds `prog` as a path or on PATH.
pub fn locate(prog: &str) -> Option<PathBuf> {
    let p = Path::new(prog);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.is_file())
}

/// Waits for `pid` and returns its exit status word and peak RSS (KiB).
fn wait4(pid: u32) -> anyhow::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: `ru` is a plain C struct filled by the kernel; `status` is a valid out pointer;
    // `pid` is our own child, not yet reaped.
    let (r, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let r = libc::wait4(pid as i32, &mut status, 0, &mut ru);
        (r, ru)
    };
    anyhow::ensure!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
    Ok((status, ru.ru_maxrss as u64))
}

/// Runs the command lines in order; fails on the first non-zero exit.
#[allow(clippy::disallowed_methods)] // running the contenders' command lines is what a benchmark does
pub fn run_steps(steps: &[Vec<String>]) -> anyhow::Result<Sample> {
    let mut wall = Duration::ZERO;
    let mut max_rss_kib = 0;
    for argv in steps {
        let start = Instant::now();
        let child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", argv.join(" ")))?;
        let pid = child.id();
        let stderr = child.stderr;
        let (status, rss) = wait4(pid)?;
        wall += start.elapsed();
        max_rss_kib = max_rss_kib.max(rss);
        if status != 0 {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                use std::io::Read;
                let _ = e.read_to_string(&mut text);
            }
            anyhow::bail!(
                "{} exited with status {status:#x}: {}",
                argv.join(" "),
                text.trim()
            );
        }
    }
    Ok(Sample { wall, max_rss_kib })
}

/// Runs one command line (untimed) and returns its stdout; fails on a non-zero exit, with its
/// stderr in the error.
#[allow(clippy::disallowed_methods)] // the peers' CLIs (ctr, runc) are how a suite drives them
pub fn output(argv: &[String]) -> anyhow::Result<String> {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed ({}): {}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_placeholder_becomes_the_round() {
        let steps = vec![vec!["ctr".to_string(), "run".into(), "id-{run}".into()]];
        assert_eq!(numbered(&steps, 7), vec![vec!["ctr", "run", "id-7"]]);
    }
}
