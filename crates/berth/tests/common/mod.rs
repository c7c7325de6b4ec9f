//! Shared setup of the client tests: a berthd under test on private roots and its own cgroup
//! parent (as berthd's own tests start it), the `berth` binary under test pointed at it with a
//! private config directory, and the busybox image imported through `berth import`.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

/// Data and exec roots under one short `/tmp` directory. Shorter than the test kit's
/// `TestRoots`: a TTY container's console socket lives at
/// `<exec>/tasks/berth/<64-hex id>/console.sock`, which must fit in 107 bytes.
pub struct Roots {
    dir: tempfile::TempDir,
}

impl Roots {
    fn new() -> Roots {
        let dir = tempfile::Builder::new()
            .prefix("bc-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::create_dir(dir.path().join("x")).unwrap();
        Roots { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_root(&self) -> std::path::PathBuf {
        self.dir.path().join("d")
    }

    pub fn exec_root(&self) -> std::path::PathBuf {
        self.dir.path().join("x")
    }

    pub fn api_socket(&self) -> std::path::PathBuf {
        self.exec_root().join("berth.sock")
    }
}

/// The client under test.
pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// Debian's docker CLI, the reference client.
pub const DOCKER: &str = "/usr/bin/docker";

/// The image every test runs.
pub const IMAGE: &str = "busybox:latest";

/// Runs `berth -H host ARGS`, feeding `stdin`, with a private config directory and no
/// BERTH_HOST/DOCKER_HOST leaking in from the environment.
pub fn berth_at(host: &str, config: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut all = vec!["-H", host];
    all.extend_from_slice(args);
    berth_env(config, &[], &all, stdin)
}

/// Runs `berth ARGS` with the config directory `config` and the variables `env`, feeding
/// `stdin`; none of BERTH_HOST, DOCKER_HOST, DOCKER_TLS_VERIFY or DOCKER_CERT_PATH leaks in
/// from the test's own environment.
pub fn berth_env<S: AsRef<std::ffi::OsStr>>(
    config: &Path,
    env: &[(&str, &Path)],
    args: &[S],
    stdin: Option<&[u8]>,
) -> Output {
    #[allow(clippy::disallowed_methods)] // the client under test
    let mut cmd = std::process::Command::new(BERTH);
    cmd.env_remove("BERTH_HOST")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env("DOCKER_CONFIG", config)
        .envs(env.iter().copied())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success; returns stdout.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// This daemon's own parent cgroup (tests run side by side).
pub fn cgroup_parent(roots: &Roots) -> String {
    berth_testkit::leftovers::cgroup_parent_for(roots.path(), "berth-client-test")
}

/// A berthd under test, stopped on drop (its containers swept).
pub struct Berthd {
    child: Option<Child>,
    pub roots: Roots,
    pub config: tempfile::TempDir,
    /// The default bridge's name and subnet, this daemon's alone (tests run side by side).
    subnet: berth_testkit::Subnet,
    /// Where its networks created without a subnet get theirs.
    _pool: berth_testkit::Subnet,
}

impl Berthd {
    pub fn start() -> Berthd {
        let roots = Roots::new();
        let subnet = berth_testkit::Subnet::reserve().unwrap();
        let pool = berth_testkit::Subnet::reserve().unwrap();
        let berthd = berth_testkit::workspace_bin("berthd");
        assert!(
            berthd.exists(),
            "{} missing: build it first (cargo build -p berthd -p berth-containerd -p berth-shim -p berth-runc)",
            berthd.display()
        );
        let child = berth_testkit::leftovers::spawn_berthd(
            &berthd,
            &berth_testkit::leftovers::BerthdSetup {
                env: &[],
                data_root: &roots.data_root(),
                exec_root: &roots.exec_root(),
                socket: &roots.api_socket(),
                cgroup_parent: &cgroup_parent(&roots),
                bridge: &subnet,
                pool: &pool,
                registry_certs_dir: &roots.path().join("certs.d"),
            },
            "warn",
        )
        .unwrap();
        Berthd {
            child: Some(child),
            roots,
            config: tempfile::tempdir().unwrap(),
            subnet,
            _pool: pool,
        }
    }

    /// A daemon with the busybox image imported as [`IMAGE`].
    pub fn with_busybox() -> Berthd {
        let d = Berthd::start();
        d.import_busybox(IMAGE);
        d
    }

    /// `berth import -c 'CMD ["sh"]' rootfs.tar NAME` of the test kit's busybox layer.
    pub fn import_busybox(&self, name: &str) {
        let tar = berth_testkit::busybox::layer_tar().unwrap();
        let out = self.berth_in(&["import", "-c", "CMD [\"sh\"]", "-", name], &tar);
        let id = ok(out, "berth import");
        assert!(id.trim().starts_with("sha256:"), "{id}");
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.roots.api_socket().display())
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        berth_at(&self.host(), self.config.path(), args, None)
    }

    pub fn berth_in(&self, args: &[&str], stdin: &[u8]) -> Output {
        berth_at(&self.host(), self.config.path(), args, Some(stdin))
    }

    pub fn berth_ok(&self, args: &[&str]) -> String {
        ok(self.berth(args), &format!("berth {args:?}"))
    }

    /// The docker CLI against the same daemon (the reference output).
    pub fn docker_ok(&self, args: &[&str]) -> String {
        #[allow(clippy::disallowed_methods)] // the reference client
        let out = std::process::Command::new(DOCKER)
            .env("DOCKER_CONFIG", self.config.path())
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ok(out, &format!("docker {args:?}"))
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Remove what the test left (a failing test leaves containers behind).
        let ids = self.berth(&["ps", "-aq"]);
        for id in text(&ids.stdout).lines() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let mut stopped = false;
        for _ in 0..150 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
        berth_testkit::leftovers::sweep(
            &self.roots.exec_root(),
            &self.roots.data_root(),
            &cgroup_parent(&self.roots),
            &self.subnet.bridge_name(),
        );
    }
}
