//! A berth-cri of the test's own (its own roots, socket and berth-containerd), and its
//! clients; stopped with SIGTERM when dropped, as a service manager stops it, so the
//! berth-containerd it started goes with it. A CNI network of the test's own.

#![allow(dead_code)]

use std::process::Child;
use std::time::Duration;

use berth_cri::v1::image_service_client::ImageServiceClient;
use berth_cri::v1::runtime_service_client::RuntimeServiceClient;
use berth_testkit::alloc::Subnet;

pub type Runtime = RuntimeServiceClient<tonic::transport::Channel>;
pub type Images = ImageServiceClient<tonic::transport::Channel>;

pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let stopped = berth_testkit::wait_for(Duration::from_secs(15), "berth-cri to stop", || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if stopped.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_leftovers(self.dir.path());
        remove_cgroup(&self.cgroup_parent);
    }
}

/// A cgroup parent of the test's own.
pub fn cgroup_parent(dir: &std::path::Path) -> String {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    format!("/berth-cri-test{}", name.trim_start_matches('.'))
}

/// Removes the cgroup `parent` from every hierarchy: first every process still in it (a
/// container whose shim was killed with its server lives on, reparented to init), then its
/// groups, deepest first.
pub fn remove_cgroup(parent: &str) {
    sh(&format!(
        "for d in /sys/fs/cgroup/*{parent} /sys/fs/cgroup{parent}; do [ -d \"$d\" ] && find \"$d\" -name cgroup.procs -exec cat {{}} \\; ; done 2>/dev/null | sort -u | xargs -r kill -9; sleep 0.2; \
         for d in /sys/fs/cgroup/*{parent} /sys/fs/cgroup{parent}; do [ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {{}} \\; ; done 2>/dev/null"
    ));
}

/// Kills whatever still runs from `dir` (a berth-containerd or shim of a berth-cri that had
/// to be killed): a test leaves no process behind.
pub fn kill_leftovers(dir: &std::path::Path) {
    // (The bracket keeps the pattern from matching the shell that runs pkill.)
    let d = dir.display().to_string();
    let (head, tail) = d.split_at(1);
    sh(&format!("pkill -9 -f '[{head}]{tail}/'"));
}

impl Server {
    /// Starts berth-cri with `--registry-mirror mirror` and `extra` flags.
    pub fn start(mirror: &str, extra: &[String]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let cgroup_parent = cgroup_parent(dir.path());
        let p = |n: &str| dir.path().join(n).display().to_string();
        // The binary under test, with the flags a script starts it with.
        #[allow(clippy::disallowed_methods)]
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-cri"))
            .args(["--address", &format!("unix://{}", p("cri.sock"))])
            .args(["--root", &p("root"), "--state", &p("state")])
            .args(["--registry-mirror", mirror])
            .args(["--cgroup-parent", &cgroup_parent])
            .args(extra)
            .spawn()
            .unwrap();
        let sock = dir.path().join("cri.sock");
        berth_testkit::wait_for(Duration::from_secs(20), "berth-cri's socket", || {
            sock.exists()
        })
        .unwrap();
        Server {
            child,
            dir,
            cgroup_parent,
        }
    }

    pub async fn clients(&self) -> (Runtime, Images) {
        let ch = berth_cri::connect_unix(&self.dir.path().join("cri.sock"))
            .await
            .unwrap();
        (
            RuntimeServiceClient::new(ch.clone()),
            ImageServiceClient::new(ch),
        )
    }
}

/// A CNI network of the test's own: its bridge (made here with the gateway address, so the
/// plugin never turns on the host's forwarding) and the config berth-cri reads.
pub struct Network {
    pub sub: Subnet,
    pub dir: tempfile::TempDir,
}

#[allow(clippy::disallowed_methods)] // iproute2 and iptables are the admin's view of the host
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Network {
    pub fn new() -> Network {
        let sub = Subnet::reserve().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (bridge, cidr, gw) = (sub.bridge_name(), sub.cidr(), sub.bip());
        sh(&format!(
            "ip link add {bridge} type bridge && ip addr add {gw} dev {bridge} && ip link set {bridge} up"
        ));
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("{bridge}-net"),
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": false, "ipMasq": false,
                 "ipam": {"type": "host-local", "dataDir": dir.path().join("ipam"),
                          "ranges": [[{"subnet": cidr, "gateway": gw.split('/').next()}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        std::fs::create_dir_all(dir.path().join("net.d")).unwrap();
        std::fs::write(dir.path().join("net.d/10-test.conflist"), conf.to_string()).unwrap();
        Network { sub, dir }
    }

    pub fn flags(&self) -> Vec<String> {
        vec![
            "--cni-conf-dir".into(),
            self.dir.path().join("net.d").display().to_string(),
            "--cni-bin-dir".into(),
            "/usr/lib/cni".into(),
        ]
    }

    /// Addresses host-local still holds.
    pub fn allocations(&self) -> Vec<String> {
        let dir = self
            .dir
            .path()
            .join("ipam")
            .join(format!("{}-net", self.sub.bridge_name()));
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains('.') && !n.starts_with("last_reserved"))
            .collect()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        sh(&format!("ip link del {}", self.sub.bridge_name()));
    }
}
