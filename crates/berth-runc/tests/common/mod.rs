//! Shared setup of the berth-runc integration tests: a runtime with its own state root that
//! force-deletes every container it made when the test ends (pass or fail), and busybox bundles.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use berth_testkit::{Bundle, wait_for};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runc");

/// berth-runc with a private `--root`; deletes its containers on drop.
pub struct Runc {
    root: tempfile::TempDir,
    made: RefCell<Vec<String>>,
    bin: PathBuf,
}

impl Runc {
    pub fn new() -> Self {
        Self::with_binary(Path::new(BIN))
    }

    /// The same harness driving another runtime (runc, crun) to check a test against it.
    pub fn with_binary(bin: &Path) -> Self {
        Runc {
            root: tempfile::Builder::new()
                .prefix("brr-")
                .tempdir_in("/tmp")
                .unwrap(),
            made: RefCell::new(Vec::new()),
            bin: bin.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A container id unique to this test process.
    pub fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}", std::process::id());
        self.made.borrow_mut().push(id.clone());
        id
    }

    /// The runtime binary under test.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        #[allow(clippy::disallowed_methods)] // the runtime under test
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a command and returns its output.
    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-runc {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let o = self.out(&["run", "--bundle", bundle.path().to_str().unwrap(), id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `create`: the container's init inherits stdout and stderr and keeps them open, so they
    /// go to files here (a pipe would never reach EOF while the container lives).
    pub fn create(&self, bundle: &Bundle, id: &str) {
        self.create_with(bundle, id, &[]);
    }

    pub fn create_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) {
        self.create_in_env(bundle, id, extra, &[]);
    }

    /// `create` with extra arguments and environment variables for the runtime.
    pub fn create_in_env(&self, bundle: &Bundle, id: &str, extra: &[&str], env: &[(&str, &str)]) {
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut args = vec!["create", "--bundle", bundle.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        let status = self
            .cmd(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(err.reopen().unwrap())
            .status()
            .unwrap();
        let text = std::fs::read_to_string(err.path()).unwrap_or_default();
        assert!(status.success(), "berth-runc create {id} failed: {text}");
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        wait_for(
            Duration::from_secs(10),
            &format!("{id} to be {want}"),
            || self.status(id) == want,
        )
        .unwrap();
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for id in self.made.borrow().iter() {
            let _ = self.cmd(&["delete", "--force", id]).output();
        }
    }
}

/// A busybox bundle running `sh -c SCRIPT`, edited by `f` (spec JSON).
pub fn bundle(script: &str, f: impl FnOnce(&mut serde_json::Value)) -> Bundle {
    let b = Bundle::new(&["sh", "-c", script]).unwrap();
    b.edit_spec_json(|v| {
        v["hostname"] = "berth-test".into();
        f(v)
    })
    .unwrap();
    b
}

/// Accepts one connection on a console socket and returns the pty master sent over it.
pub fn receive_pty(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use std::os::fd::AsFd;
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(
        conn.as_fd(),
        &mut iov,
        &mut control,
        rustix::net::RecvFlags::empty(),
    )
    .unwrap();
    let fd = control.drain().find_map(|m| match m {
        rustix::net::RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    fd.expect("a pty master over SCM_RIGHTS")
}
