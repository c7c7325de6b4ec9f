//! Shared setup of the berth-containerd tests: the daemon under test on private roots, gRPC
//! clients, containers made from the busybox bundle, and a sweep that removes every shim,
//! container and task dir under the test's exec root even when the test fails.
//!
//! The daemon finds berth-shim and berth-runc next to itself: build every binary into the same
//! target dir first (scripts/test.sh does).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::events_client::EventsClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::{Container, CreateContainerRequest, CreateTaskRequest};
use berth_proto::with_namespace;
pub use berth_testkit::{Bundle, TestRoots, wait_for};
use tonic::transport::Channel;

/// A berth-containerd under test, killed on drop.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    pub fn start(roots: &TestRoots) -> Daemon {
        for bin in ["berth-shim", "berth-runc"] {
            let p = berth_testkit::workspace_bin(bin);
            assert!(
                p.is_file(),
                "{} missing: build every binary first (cargo build --bins)",
                p.display()
            );
        }
        #[allow(clippy::disallowed_methods)] // the daemon under test
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-containerd"))
            .arg("--root")
            .arg(roots.data_root().join("containerd"))
            .arg("--state")
            .arg(roots.exec_root())
            .arg("--address")
            .arg(roots.containerd_socket())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let sock = roots.containerd_socket();
        wait_for(Duration::from_secs(10), "the gRPC socket", || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        })
        .unwrap();
        Daemon { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three services on one channel.
pub struct Api {
    pub containers: ContainersClient<Channel>,
    pub tasks: TasksClient<Channel>,
    pub events: EventsClient<Channel>,
}

pub async fn api(roots: &TestRoots) -> Api {
    let ch = berth_proto::connect_unix(&roots.containerd_socket())
        .await
        .unwrap();
    Api {
        containers: ContainersClient::new(ch.clone()),
        tasks: TasksClient::new(ch.clone()),
        events: EventsClient::new(ch),
    }
}

/// Removes whatever a test left under its exec root: every shim is told to shut down (which
/// force-deletes its container), then the runtime force-deletes anything left. Runs on drop, so
/// a failing test cleans up too.
pub struct Sweep {
    exec_root: PathBuf,
}

impl Sweep {
    pub fn new(roots: &TestRoots) -> Sweep {
        Sweep {
            exec_root: roots.exec_root(),
        }
    }
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

impl Drop for Sweep {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        for ns in children(&self.exec_root.join("tasks")) {
            for task in children(&ns) {
                if let Ok(mut s) = std::os::unix::net::UnixStream::connect(task.join("shim.sock")) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(b"{\"op\":\"shutdown\"}\n");
                    let _ = s.read(&mut [0u8; 256]);
                }
            }
        }
        for root in children(&self.exec_root.join("runc")) {
            for c in children(&root) {
                let id = c.file_name().unwrap_or_default().to_owned();
                #[allow(clippy::disallowed_methods)] // cleanup through the runtime
                let _ = std::process::Command::new(berth_testkit::workspace_bin("berth-runc"))
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(id)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A container made from a busybox bundle, its stdout and stderr as files in the bundle.
pub struct Ctr {
    pub bundle: Bundle,
    pub id: String,
    pub ns: String,
}

impl Ctr {
    pub fn stdout_path(&self) -> PathBuf {
        self.bundle.path().join("stdout")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.bundle.path().join("stderr")
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        with_namespace(&self.ns, msg)
    }
}

/// Stores a container running `args` (spec edited by `edit`); no task yet.
pub async fn container(
    api: &mut Api,
    ns: &str,
    id: &str,
    args: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> Ctr {
    let bundle = Bundle::new(args).unwrap();
    bundle.edit_spec_json(edit).unwrap();
    let spec = std::fs::read(bundle.config_path()).unwrap();
    api.containers
        .create(with_namespace(
            ns,
            CreateContainerRequest {
                container: Some(Container {
                    id: id.into(),
                    spec,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    Ctr {
        bundle,
        id: id.into(),
        ns: ns.into(),
    }
}

/// The task request for `c` with stdout and stderr to its files.
pub fn task_request(c: &Ctr) -> CreateTaskRequest {
    CreateTaskRequest {
        container_id: c.id.clone(),
        rootfs: c.bundle.rootfs().to_string_lossy().into_owned(),
        stdin: String::new(),
        stdout: c.stdout_path().to_string_lossy().into_owned(),
        stderr: c.stderr_path().to_string_lossy().into_owned(),
        terminal: false,
    }
}

/// Stores the container and creates its task.
pub async fn created(api: &mut Api, ns: &str, id: &str, args: &[&str]) -> Ctr {
    let c = container(api, ns, id, args, |_| {}).await;
    api.tasks.create(c.req(task_request(&c))).await.unwrap();
    c
}

/// The berth-shim processes serving tasks under the test's exec root.
pub fn shims_of(roots: &TestRoots) -> Vec<u32> {
    let root = roots.exec_root().to_string_lossy().into_owned();
    processes_mentioning(&["berth-shim", &root])
}

/// Processes whose command line mentions every one of `needles`.
pub fn processes_mentioning(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in children(Path::new("/proc")) {
        let Some(pid) = e
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            if needles.iter().all(|n| cmd.contains(n)) {
                out.push(pid);
            }
        }
    }
    out
}

/// Mount points (from /proc/self/mountinfo) under `prefix`.
pub fn mounts_under(prefix: &Path) -> Vec<String> {
    let p = prefix.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&p))
        .map(str::to_string)
        .collect()
}

/// Cgroup directories whose name starts with `prefix`, in any hierarchy (v1 controllers and
/// the v2 mount).
pub fn cgroups_named_prefix(prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        for c in children(&d) {
            if c.is_dir() && !c.is_symlink() {
                if c.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                {
                    out.push(c.clone());
                }
                stack.push(c);
            }
        }
    }
    out
}

/// One request line to a shim's socket; its answer line.
pub fn shim_call(socket: &Path, request: &str) -> String {
    use std::io::{BufRead, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return String::new();
    };
    let _ = writeln!(s, "{request}");
    let mut line = String::new();
    let _ = std::io::BufReader::new(s).read_line(&mut line);
    line
}
