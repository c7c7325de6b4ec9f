//! Exit statuses the docker CLI's way: 1 for a failed command, 125 when `run`/`create` fail
//! before the container runs, 126/127 when its command cannot be invoked or found, and the
//! container's own status where the command waits for it.

use crate::api::DaemonError;
use crate::http::ConnectError;

/// Ends the program with `code`, printing `message` (if any) on stderr.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// Docker's `runStartContainerErr`: 127 when the command is not found, 126 when it cannot be
/// invoked, else 125.
pub fn start_error_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("command not found")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Prints `e` the docker CLI's way and returns the exit status. `prefix` is "berth: " for
/// `run`/`create` (as docker prints "docker: …"), whose own failures exit 125.
pub fn report(e: &anyhow::Error, host: &str, run_like: Option<&str>) -> i32 {
    if let Some(x) = e.downcast_ref::<Exit>() {
        if let Some(m) = &x.message {
            eprintln!("{m}");
        }
        return x.code;
    }
    if e.chain()
        .any(|c| c.downcast_ref::<ConnectError>().is_some())
    {
        eprintln!("Cannot connect to berthd at {host}: is it running?");
        return 1;
    }
    let code = if run_like.is_some() { 125 } else { 1 };
    if let Some(d) = e.downcast_ref::<DaemonError>() {
        if let Some(cmd) = run_like {
            eprintln!("berth: {d}.\nSee 'berth {cmd} --help'.");
        } else {
            eprintln!("{d}");
        }
        return code;
    }
    if let Some(cmd) = run_like {
        eprintln!("berth: {e:#}.\nSee 'berth {cmd} --help'.");
    } else {
        eprintln!("Error: {e:#}");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_dockers_codes() {
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_error_code("exec /etc: permission denied"), 126);
        assert_eq!(start_error_code("something else"), 125);
    }
}
