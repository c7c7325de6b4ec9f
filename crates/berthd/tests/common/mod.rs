//! Shared setup of the berthd tests: the daemon under test on private roots, the real docker
//! CLI pointed at it (its own config directory), and a raw HTTP client for the requests the CLI
//! would never send.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

pub use berth_testkit::TestRoots;

/// The Debian docker CLI (20.10, API 1.41): the client users already have.
pub const DOCKER: &str = "/usr/bin/docker";

/// This daemon's own parent cgroup (tests run side by side).
pub fn cgroup_parent(roots: &TestRoots) -> String {
    berth_testkit::leftovers::cgroup_parent_for(roots.path(), "berth-test")
}

/// A berthd under test, stopped on drop.
pub struct Berthd {
    child: Option<Child>,
    pub roots: TestRoots,
    cli_config: tempfile::TempDir,
    /// The default bridge's name and subnet, this daemon's alone.
    pub subnet: std::sync::Arc<berth_testkit::alloc::Subnet>,
    /// Where its networks created without a subnet get one (/26s of a /24 of its own).
    pub pool: std::sync::Arc<berth_testkit::alloc::Subnet>,
}

impl Berthd {
    pub fn start() -> Berthd {
        Berthd::start_with(TestRoots::new().unwrap())
    }

    /// A daemon on the given roots.
    pub fn start_with(roots: TestRoots) -> Berthd {
        Berthd::start_with_env(roots, &[])
    }

    /// A daemon on the given roots, with extra environment (failpoints).
    pub fn start_with_env(roots: TestRoots, env: &[(&str, &std::ffi::OsStr)]) -> Berthd {
        Berthd::start_on(
            roots,
            tempfile::tempdir().unwrap(),
            std::sync::Arc::new(berth_testkit::alloc::Subnet::reserve().unwrap()),
            std::sync::Arc::new(berth_testkit::alloc::Subnet::reserve().unwrap()),
            env,
        )
    }

    fn start_on(
        roots: TestRoots,
        cli_config: tempfile::TempDir,
        subnet: std::sync::Arc<berth_testkit::alloc::Subnet>,
        pool: std::sync::Arc<berth_testkit::alloc::Subnet>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Berthd {
        let child = berth_testkit::leftovers::spawn_berthd(
            env!("CARGO_BIN_EXE_berthd").as_ref(),
            &berth_testkit::leftovers::BerthdSetup {
                data_root: &roots.data_root(),
                exec_root: &roots.exec_root(),
                socket: &roots.api_socket(),
                cgroup_parent: &cgroup_parent(&roots),
                bridge: &subnet,
                pool: &pool,
                registry_certs_dir: &roots.path().join("certs.d"),
                env,
            },
            "info",
        )
        .unwrap();
        Berthd {
            child: Some(child),
            roots,
            cli_config,
            subnet,
            pool,
        }
    }

    /// kill -9 the daemon (its containerd and containers stay), then start it again on the
    /// same roots.
    pub fn crash_and_restart(self) -> Berthd {
        self.crash_and_restart_with(|| {})
    }

    /// Like `crash_and_restart`, running `meanwhile` while no berthd runs.
    pub fn crash_and_restart_with(mut self, meanwhile: impl FnOnce()) -> Berthd {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        meanwhile();
        let roots = std::mem::replace(&mut self.roots, TestRoots::new().unwrap());
        let cli = std::mem::replace(&mut self.cli_config, tempfile::tempdir().unwrap());
        let (subnet, pool) = (self.subnet.clone(), self.pool.clone());
        drop(self);
        Berthd::start_on(roots, cli, subnet, pool, &[])
    }

    /// Whether the daemon process has exited (a failpoint killed it).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// The daemon's resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Creates and starts, detached, an exec of `true` in container `ctr`; returns its id.
    pub fn exec_detached(&self, ctr: &str) -> String {
        let (status, _, body) = self.raw(
            "POST",
            &format!("/containers/{ctr}/exec"),
            br#"{"Cmd":["true"]}"#,
        );
        assert_eq!(status, 201, "{body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, _, body) =
            self.raw("POST", &format!("/exec/{id}/start"), br#"{"Detach":true}"#);
        assert_eq!(status, 200, "{body}");
        id
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.roots.api_socket().display())
    }

    /// Runs the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_env(&[], args)
    }

    /// Runs the docker CLI against this daemon with `env` set.
    pub fn docker_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        #[allow(clippy::disallowed_methods)] // the real client against the daemon under test
        std::process::Command::new(DOCKER)
            .envs(env.iter().copied())
            .env("DOCKER_CONFIG", self.cli_config.path())
            // Nothing of the host's client setup: -H names the daemon under test.
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the docker CLI and insists it succeeds; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends one raw HTTP/1.1 request; returns (status, headers, body).
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
        let mut s = UnixStream::connect(self.roots.api_socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // The daemon may answer (and close) before reading a body it refuses.
        let _ = s.write_all(body);
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let text = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }
}

/// Mount points under `dir`.
pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Live shim processes serving this daemon's containers.
pub fn shims_of(d: &Berthd) -> usize {
    let root = d.roots.exec_root().display().to_string();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains("berth-shim") && c.contains(&root)
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

impl Drop for Berthd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return; // handed over by crash_and_restart
        };
        let _cleanup = SweepOnDrop(
            self.roots.exec_root(),
            self.roots.data_root(),
            cgroup_parent(&self.roots),
            self.subnet.bridge_name(),
        );
        if let Ok(pid) = i32::try_from(child.id()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

struct SweepOnDrop(std::path::PathBuf, std::path::PathBuf, String, String);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        berth_testkit::leftovers::sweep(&self.0, &self.1, &self.2, &self.3);
    }
}

/// A daemon with the busybox image pulled from a registry of its own; returns the registry
/// (kept alive), the daemon and the image's name.
pub fn daemon_with_image() -> (berth_testkit::Registry, Berthd, String) {
    let reg = berth_testkit::Registry::start().unwrap();
    reg.push_image(
        &berth_testkit::BusyboxImage::build().unwrap(),
        "bb",
        "latest",
    )
    .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb", reg.host());
    d.docker_ok(&["pull", "-q", &image]);
    (reg, d, image)
}
