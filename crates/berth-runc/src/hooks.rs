//! OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and an
//! optional timeout; a failing hook fails the step that ran it, except poststart/poststop,
//! where each failure is logged and the remaining hooks still run.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use oci_spec::runtime::Hook;

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub fn run_all(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
) -> anyhow::Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let input = serde_json::to_vec(state)?;
    for hook in hooks {
        run_one(hook, &input)
            .with_context(|| format!("running {kind} hook {}", hook.path().display()))?;
    }
    Ok(())
}

/// Runs every hook of `hooks` in order with `state` on stdin, as for poststart and poststop:
/// a failing hook is logged as a warning and the remaining ones still run.
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) {
    let Some(hooks) = hooks else { return };
    let input = match serde_json::to_vec(state) {
        Ok(i) => i,
        Err(e) => return crate::log::warn(&format!("encoding the state for {kind} hooks: {e}")),
    };
    for hook in hooks {
        if let Err(e) = run_one(hook, &input) {
            crate::log::warn(&format!(
                "running {kind} hook {}: {e:#}",
                hook.path().display()
            ));
        }
    }
}

#[allow(clippy::disallowed_methods)] // hooks are external programs by contract (runtime spec)
fn run_one(hook: &Hook, input: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting it")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not fail the write.
        let _ = stdin.write_all(input);
    }
    // A timeout of 0 or less was refused at create (validate::check).
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(0) as u64));
    let mut pause = Duration::from_micros(200);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("timed out after {}s", hook.timeout().unwrap_or_default());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    anyhow::ensure!(status.success(), "it exited with {status}");
    Ok(())
}
