//! The `lifecycle` suite's daemons: berth-containerd and Debian's containerd 1.6, each with its
//! own root, state and socket under one scratch directory. Dropping one removes what it started
//! — tasks, containers, shims, the runtime's leftovers, mounts, cgroups — then stops it.
//!
//! Not private: containerd 1.6 puts its shims' sockets in `/run/containerd/s/` whatever its
//! `--state` (the shims remove them when they exit).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::Context;
use berth_testkit::wait_for;

use crate::grpc_client::{Api, runtime};
use crate::measure::output;
use crate::proc_mem::processes_mentioning;
use crate::suites::{argv, path_str};

/// The namespace both daemons keep the suite's containers in (containerd also names its
/// cgroups after it: `/<namespace>/<id>`).
pub const NAMESPACE: &str = "berth-bench";

/// How long a daemon gets to listen after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon gets to exit on SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the removal of all containers may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A daemon we spawned, its output in a log file.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `argv` and waits until `socket` accepts connections.
    #[allow(clippy::disallowed_methods)] // the daemons under comparison are the point of the suite
    fn start(
        name: &'static str,
        argv: &[String],
        socket: &Path,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", argv.join(" ")))?;
        let mut daemon = Daemon { name, child, log };
        let mut exited = false;
        let up = wait_for(
            START_TIMEOUT,
            &format!("{name} to listen on {}", socket.display()),
            || {
                exited = !matches!(daemon.child.try_wait(), Ok(None));
                exited || std::os::unix::net::UnixStream::connect(socket).is_ok()
            },
        );
        if let Err(e) = up.and_then(|()| {
            anyhow::ensure!(!exited, "{name} exited");
            Ok(())
        }) {
            daemon.stop();
            anyhow::bail!(
                "{e:#}; its log ({}):\n{}",
                daemon.log.display(),
                daemon.log_tail()
            );
        }
        Ok(daemon)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; reaps it.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let name = self.name;
            let child = &mut self.child;
            if let Err(e) = wait_for(STOP_TIMEOUT, &format!("{name} to exit on SIGTERM"), || {
                !matches!(child.try_wait(), Ok(None))
            }) {
                eprintln!("{e:#}; killing it");
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }

    /// The last lines of the daemon's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A private berth-containerd; its berth-shim and berth-runc are found next to it.
pub struct BerthContainerd {
    daemon: Daemon,
    pub socket: PathBuf,
    state: PathBuf,
    bin_dir: PathBuf,
    /// Whether the default cgroup parent `/berth` was there before us (if not, we remove it).
    had_cgroup_parent: bool,
}

impl BerthContainerd {
    pub fn start(bin_dir: &Path, dir: &Path) -> anyhow::Result<Self> {
        let exe = bin_dir.join("berth-containerd");
        for bin in ["berth-containerd", "berth-shim", "berth-runc"] {
            anyhow::ensure!(
                bin_dir.join(bin).is_file(),
                "{} not found: build every binary (cargo build --release --bins)",
                bin_dir.join(bin).display()
            );
        }
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("containerd.sock");
        let state = dir.join("state");
        let had_cgroup_parent = !cgroup_dirs("berth").is_empty();
        let cmd = argv(&[
            &path_str(&exe),
            "--root",
            &path_str(&dir.join("root")),
            "--state",
            &path_str(&state),
            "--address",
            &path_str(&socket),
            "--log-level",
            "warn",
        ]);
        let daemon = Daemon::start("berth-containerd", &cmd, &socket, dir.join("daemon.log"))?;
        Ok(BerthContainerd {
            daemon,
            socket,
            state,
            bin_dir: bin_dir.to_path_buf(),
            had_cgroup_parent,
        })
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The berth-shim processes of this daemon's tasks.
    pub fn shim_pids(&self) -> Vec<u32> {
        processes_mentioning(&["berth-shim", &path_str(&self.state)])
    }

    /// Kills and deletes every task and container of [`NAMESPACE`] through the API.
    pub fn remove_all(&self) -> anyhow::Result<()> {
        runtime()?.block_on(async {
            tokio::time::timeout(REMOVE_TIMEOUT, async {
                Api::connect(&self.socket, NAMESPACE)
                    .await?
                    .remove_all()
                    .await
            })
            .await
            .context("removing the containers timed out")?
        })
    }
}

impl Drop for BerthContainerd {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            eprintln!("berth-containerd: removing the suite's containers: {e:#}");
        }
        self.daemon.stop();
        kill_all(&self.shim_pids(), "berth-shim");
        // Containers a killed shim left: the runtime's root is `<state>/runc/<namespace>`.
        let runc = path_str(&self.bin_dir.join("berth-runc"));
        force_delete_under(&runc, &self.state.join("runc"));
        if !self.had_cgroup_parent {
            remove_cgroups("berth");
        }
    }
}

/// A private containerd 1.6 (no CRI plugin), its runc state and FIFOs under its directory too.
pub struct Containerd {
    daemon: Daemon,
    pub socket: PathBuf,
    dir: PathBuf,
    runc_root: PathBuf,
    fifo_dir: PathBuf,
}

/// Debian's containerd 1.6.
pub const CONTAINERD: &str = "/usr/bin/containerd";

impl Containerd {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Path::new(CONTAINERD).is_file(),
            "{CONTAINERD} not found (apt-get install containerd)"
        );
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("containerd.sock");
        let (root, state) = (dir.join("root"), dir.join("state"));
        let config = dir.join("config.toml");
        // Only what keeps it off the host's /var/lib, /run and /opt: no CRI plugin (it would set
        // up CNI), and the `opt` plugin's directory here.
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
                path_str(&dir.join("opt"))
            ),
        )?;
        let cmd = argv(&[
            CONTAINERD,
            "--config",
            &path_str(&config),
            "--root",
            &path_str(&root),
            "--state",
            &path_str(&state),
            "--address",
            &path_str(&socket),
        ]);
        let daemon = Daemon::start("containerd", &cmd, &socket, dir.join("daemon.log"))?;
        let fifo_dir = dir.join("fifo");
        std::fs::create_dir_all(&fifo_dir)?;
        Ok(Containerd {
            daemon,
            socket,
            dir: dir.to_path_buf(),
            runc_root: dir.join("runc"),
            fifo_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// `ctr` with this daemon's address and [`NAMESPACE`], then `args`.
    pub fn ctr(&self, args: &[&str]) -> Vec<String> {
        let mut v = argv(&["ctr", "-a", &path_str(&self.socket), "-n", NAMESPACE]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// `ctr run` options that keep runc's state and the FIFOs under this daemon's directory and
    /// give the task no stdio (as Berth's are), before `--rm`/`-d` and the image.
    pub fn run_opts(&self) -> Vec<String> {
        argv(&[
            "--null-io",
            "--fifo-dir",
            &path_str(&self.fifo_dir),
            "--runc-root",
            &path_str(&self.runc_root),
        ])
    }

    /// The containerd-shim-runc-v2 processes of this daemon.
    pub fn shim_pids(&self) -> Vec<u32> {
        processes_mentioning(&["containerd-shim-runc-v2", &path_str(&self.socket)])
    }

    /// Kills and deletes every task, then deletes every container (and its snapshot). Keeps
    /// going past a task that fails and reports the first failure.
    pub fn remove_all(&self) -> anyhow::Result<()> {
        let mut first_err = None;
        let tasks = output(&self.ctr(&["tasks", "ls", "-q"]))?;
        for id in tasks.split_whitespace() {
            if let Err(e) = output(&self.ctr(&["tasks", "rm", "-f", id])) {
                first_err.get_or_insert(e);
            }
        }
        let containers = output(&self.ctr(&["containers", "ls", "-q"]))?;
        let ids: Vec<&str> = containers.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["containers", "rm"];
            args.extend(&ids);
            output(&self.ctr(&args))?;
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            eprintln!("containerd: removing the suite's containers: {e:#}");
        }
        self.daemon.stop();
        kill_all(&self.shim_pids(), "containerd-shim-runc-v2");
        // runc's root for the shims is `<--runc-root>/<namespace>`.
        force_delete_under("runc", &self.runc_root);
        if let Err(e) = unmount_under(&self.dir) {
            eprintln!("containerd: {e:#}");
        }
        remove_cgroups(NAMESPACE);
    }
}

fn kill_all(pids: &[u32], what: &str) {
    for &pid in pids {
        eprintln!("killing a leftover {what} ({pid})");
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// `RUNTIME --root R delete --force ID` for every container state `R/ID` under `roots`.
fn force_delete_under(runtime: &str, roots: &Path) {
    let children = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for root in children(roots) {
        for state in children(&root) {
            let id = state.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(id) = id else { continue };
            eprintln!("deleting a leftover container {id} with {runtime}");
            let cmd = argv(&[
                runtime,
                "--root",
                &path_str(&root),
                "delete",
                "--force",
                &id,
            ]);
            if let Err(e) = output(&cmd) {
                eprintln!("{e:#}");
            }
        }
    }
}

/// The directories named `name` at the top of each cgroup hierarchy.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .map(|h| h.path().join(name))
                .filter(|d| d.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the (empty) cgroup `/<name>` from every hierarchy.
fn remove_cgroups(name: &str) {
    for d in cgroup_dirs(name) {
        if let Err(e) = std::fs::remove_dir(&d) {
            eprintln!("removing the cgroup {}: {e}", d.display());
        }
    }
}

/// Lazily unmounts everything mounted at or under `dir`, deepest first. Our paths have no
/// characters that mountinfo escapes.
fn unmount_under(dir: &Path) -> anyhow::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH)
            .with_context(|| format!("unmounting {}", m.display()))?;
    }
    Ok(())
}

/// A private berthd (which starts its own berth-containerd), found in `bin_dir`.
pub struct Berthd {
    daemon: Daemon,
    pub socket: PathBuf,
    cgroup_parent: String,
    /// The default bridge's name and subnet, reserved like a test daemon's.
    _subnet: berth_testkit::alloc::Subnet,
    /// The exec root: on tmpfs like the /run of a usual host, and short (directly in
    /// /dev/shm), so shim socket paths stay under the 108-byte limit.
    exec: tempfile::TempDir,
}

impl Berthd {
    /// Starts berthd with its data root under the suite's work directory and its exec root on
    /// tmpfs.
    pub fn start(ctx: &crate::suites::Ctx) -> anyhow::Result<Self> {
        Self::start_from(&ctx.bin_dir, &ctx.work.join("berthd"))
    }

    /// Starts the berthd of `bin_dir` with its files under `dir` (a second one, such as a
    /// baseline build's, gets its own directory, cgroup parent, bridge and subnet).
    pub fn start_from(bin_dir: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("berth.sock");
        let tag = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cgroup_parent = format!("berth-bench-{}-{tag}", std::process::id());
        let subnet = berth_testkit::alloc::Subnet::reserve()?;
        let exec = tempfile::Builder::new()
            .prefix("bb-")
            .tempdir_in(crate::suites::TMPFS)?;
        let cmd = argv(&[
            &path_str(&bin_dir.join("berthd")),
            "--data-root",
            &path_str(&dir.join("data")),
            "--exec-root",
            &path_str(exec.path()),
            "-H",
            &format!("unix://{}", path_str(&socket)),
            "--cgroup-parent",
            &format!("/{cgroup_parent}"),
            "--bridge",
            &subnet.bridge_name(),
            "--bip",
            &subnet.bip(),
            "--log-level",
            "warn",
        ]);
        let daemon = Daemon::start("berthd", &cmd, &socket, dir.join("berthd.log"))?;
        Ok(Berthd {
            daemon,
            socket,
            cgroup_parent,
            _subnet: subnet,
            exec,
        })
    }

    pub fn host(&self) -> String {
        format!("unix://{}", path_str(&self.socket))
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The berth-containerd berthd started (it records the pid in its exec root).
    pub fn containerd_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.exec.path().join("containerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        self.daemon.stop();
        remove_cgroups(&self.cgroup_parent);
    }
}
