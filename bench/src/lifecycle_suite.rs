//! Suite `lifecycle`: berth-containerd against Debian's containerd 1.6, both private daemons
//! started for the run. Timed: one container's whole life (create, start, wait, delete of
//! /bin/true) by a fresh client process, `berth-bench grpc-run` against `ctr run --rm`, the
//! latter both on an imported image (an overlayfs snapshot per run) and on the same prepared
//! rootfs Berth gets (`--rootfs`). Untimed: RSS and PSS of each daemon idle and with 50
//! containers running `sleep 1000`, and of their shims.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use berth_testkit::{Bundle, BusyboxImage};

use crate::daemons::{BerthContainerd, Containerd, NAMESPACE};
use crate::grpc_client::{Api, runtime};
use crate::measure::{RUN, output};
use crate::proc_mem::Usage;
use crate::suites::{Contender, Ctx, Group, Plan, argv, path_str};

pub const ABOUT: &str = "berth-containerd vs containerd 1.6 (containerd-shim-runc-v2, runc 1.1), \
both private daemons of this run: create+start+wait+delete of /bin/true by a fresh client \
process (`berth-bench grpc-run` vs `ctr run --rm`), and RSS/PSS of daemon and shims idle and \
with 50 containers. `ctr run --rm IMAGE` also prepares, mounts and removes an overlayfs \
snapshot per run, which Berth's API (given a prepared rootfs) does not do: the `--rootfs` row \
runs containerd on the same prepared busybox rootfs as Berth and is the like-for-like one";

/// Containers running during the memory measurement.
const CONTAINERS: usize = 50;

/// The busybox image as imported into containerd.
const IMAGE: &str = "docker.io/library/busybox:berth-bench";

/// What the groups and the memory table share. Fields drop in order: the daemons (removing
/// their containers) before the bundle their rootfs is in.
struct Lab {
    berth: BerthContainerd,
    containerd: Containerd,
    /// Each daemon right after it started listening, before any request.
    idle: [Usage; 2],
    /// config.json (the `runc spec` defaults, running /bin/true) and the busybox rootfs.
    bundle: Bundle,
    /// The run's scratch directory (the busybox archive, podman's private storage).
    work: std::path::PathBuf,
    /// Where the Berth binaries under test are.
    bin_dir: std::path::PathBuf,
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let bundle = Bundle::new(&["/bin/true"]).context("writing the busybox bundle")?;
    let berth = BerthContainerd::start(&ctx.bin_dir, &ctx.work.join("berth"))?;
    let containerd = Containerd::start(&ctx.work.join("containerd"))?;
    let idle = [Usage::of(berth.pid())?, Usage::of(containerd.pid())?];
    import_busybox(&containerd, &ctx.work)?;
    let lab = Lab {
        berth,
        containerd,
        idle,
        bundle,
        work: ctx.work.clone(),
        bin_dir: ctx.bin_dir.clone(),
    };
    let groups = vec![lab.lifecycle_group()?];
    Ok(Plan {
        groups,
        extra: Some(Box::new(move || lab.memory_report())),
    })
}

/// Writes the test kit's busybox image as a docker archive and imports (and unpacks) it.
fn import_busybox(containerd: &Containerd, work: &Path) -> anyhow::Result<()> {
    let tar = work.join("busybox.tar");
    BusyboxImage::build()
        .context("building the busybox image")?
        .write_docker_archive(&tar, IMAGE)?;
    output(&containerd.ctr(&["images", "import", &path_str(&tar)]))?;
    let images = output(&containerd.ctr(&["images", "ls", "-q"]))?;
    anyhow::ensure!(
        images.lines().any(|l| l.trim() == IMAGE),
        "{IMAGE} is not among the imported images: {images}"
    );
    Ok(())
}

impl Lab {
    fn lifecycle_group(&self) -> anyhow::Result<Group> {
        let me = path_str(&std::env::current_exe().context("locating the harness")?);
        let rootfs = path_str(&self.bundle.rootfs());
        let berth = argv(&[
            &me,
            "grpc-run",
            "--address",
            &path_str(&self.berth.socket),
            "--namespace",
            NAMESPACE,
            "--rootfs",
            &rootfs,
            "--spec",
            &path_str(&self.bundle.config_path()),
            &format!("lc-{RUN}"),
        ]);
        let ctr_run = |args: &[&str]| {
            let mut v = self.containerd.ctr(&["run", "--rm"]);
            v.extend(self.containerd.run_opts());
            v.extend(argv(args));
            v
        };
        let image_id = format!("img-{RUN}");
        let rootfs_id = format!("rfs-{RUN}");
        Ok(Group {
            title: "create+start+wait+delete of /bin/true through the API (a fresh client process each)"
                .into(),
            contenders: vec![
                Contender::new("berth-containerd (grpc-run)", true, vec![berth]),
                Contender::new(
                    "containerd 1.6 (ctr run --rm IMAGE: overlayfs snapshot)",
                    false,
                    vec![ctr_run(&[IMAGE, &image_id, "/bin/true"])],
                ),
                Contender::new(
                    "containerd 1.6 (ctr run --rm --rootfs: same rootfs as Berth)",
                    false,
                    vec![ctr_run(&["--rootfs", &rootfs, &rootfs_id, "/bin/true"])],
                ),
            ],
            differences: vec![],
        })
    }

    /// Starts [`CONTAINERS`] `sleep 1000` containers in each daemon in turn, measures the daemon
    /// and its shims, removes them; returns the table and the notes.
    fn memory_report(self) -> anyhow::Result<String> {
        let berth = self.berth_loaded()?;
        let containerd = self.containerd_loaded()?;
        let conmon = conmon_loaded(&self.work)?;
        let mut out = String::new();
        writeln!(
            out,
            "## Memory: daemon idle and with {CONTAINERS} containers running `sleep 1000`, and shims\n"
        )?;
        writeln!(
            out,
            "KiB from /proc/PID/smaps_rollup. Idle: right after the daemon listens, before any \
             request. Per shim: the median over the {CONTAINERS} shims. PSS divides shared pages \
             among the processes mapping them, so it is the column that adds up.\n"
        )?;
        writeln!(
            out,
            "| process | berth RSS | berth PSS | containerd RSS | containerd PSS | RSS Berth / containerd | PSS Berth / containerd |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
        let rows = [
            ("daemon, idle".to_string(), self.idle[0], self.idle[1]),
            (
                format!("daemon, {CONTAINERS} containers"),
                berth.daemon,
                containerd.daemon,
            ),
            (
                "per shim (median)".to_string(),
                Usage::median(&berth.shims),
                Usage::median(&containerd.shims),
            ),
            (
                format!("all {CONTAINERS} shims"),
                Usage::total(&berth.shims),
                Usage::total(&containerd.shims),
            ),
            (
                format!("daemon + {CONTAINERS} shims"),
                berth.total(),
                containerd.total(),
            ),
        ];
        for (what, b, c) in rows {
            writeln!(
                out,
                "| {what} | {} | {} | {} | {} | {} | {} |",
                b.rss_kib,
                b.pss_kib,
                c.rss_kib,
                c.pss_kib,
                ratio(b.rss_kib, c.rss_kib),
                ratio(b.pss_kib, c.pss_kib)
            )?;
        }
        writeln!(
            out,
            "\nShims counted: berth-shim {}, containerd-shim-runc-v2 {}.\n",
            berth.shims.len(),
            containerd.shims.len()
        )?;
        out.push_str(&monitor_table(&berth.shims, conmon.as_deref())?);
        writeln!(out, "{}\n", shim_linkage(&self.bin_dir.join("berth-shim")))?;
        out.push_str(NOTES);
        Ok(out)
    }

    /// Berth with [`CONTAINERS`] `sleep` containers, started in-process through the API.
    fn berth_loaded(&self) -> anyhow::Result<Loaded> {
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.bundle.config_path())?)?;
        spec["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]);
        let spec = serde_json::to_vec(&spec)?;
        let rootfs = self.bundle.rootfs();
        let ids: Vec<String> = (0..CONTAINERS).map(|i| format!("mem-{i}")).collect();
        runtime()?.block_on(async {
            let mut api = Api::connect(&self.berth.socket, NAMESPACE).await?;
            for id in &ids {
                api.create(id, spec.clone(), &rootfs).await?;
                api.start(id).await?;
            }
            for id in &ids {
                anyhow::ensure!(api.is_running(id).await?, "{id} is not running");
            }
            Ok(())
        })?;
        let loaded = Loaded::measure(self.berth.pid(), &self.berth.shim_pids())?;
        self.berth.remove_all()?;
        Ok(loaded)
    }

    /// containerd with [`CONTAINERS`] `sleep` containers from the image (`ctr run -d`).
    fn containerd_loaded(&self) -> anyhow::Result<Loaded> {
        for i in 0..CONTAINERS {
            let mut cmd = self.containerd.ctr(&["run", "-d"]);
            cmd.extend(self.containerd.run_opts());
            cmd.extend(argv(&[IMAGE, &format!("mem-{i}"), "/bin/sleep", "1000"]));
            output(&cmd)?;
        }
        let tasks = output(&self.containerd.ctr(&["tasks", "ls"]))?;
        let running = tasks.lines().filter(|l| l.contains("RUNNING")).count();
        anyhow::ensure!(
            running == CONTAINERS,
            "{running} of {CONTAINERS} containerd tasks running:\n{tasks}"
        );
        let loaded = Loaded::measure(self.containerd.pid(), &self.containerd.shim_pids())?;
        self.containerd.remove_all()?;
        Ok(loaded)
    }
}

/// podman 4.3's per-container monitor, conmon, with [`CONTAINERS`] `sleep` containers (podman on
/// private storage under `work`, wiped afterwards); None when podman or conmon is missing.
fn conmon_loaded(work: &Path) -> anyhow::Result<Option<Vec<Usage>>> {
    use crate::measure::locate;
    if locate("podman").is_none() || locate("conmon").is_none() {
        return Ok(None);
    }
    let root = work.join("podman-mem");
    let base = crate::engines::podman_argv(&root, &root.join("run"));
    let podman = |args: &[&str]| {
        let mut v = base.clone();
        v.extend(argv(args));
        v
    };
    let measured = (|| {
        output(&podman(&[
            "load",
            "-q",
            "-i",
            &path_str(&work.join("busybox.tar")),
        ]))?;
        for i in 0..CONTAINERS {
            let mut cmd = podman(&[
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &format!("mem-{i}"),
            ]);
            cmd.extend(argv(&crate::engines::PODMAN_ULIMITS));
            cmd.extend(argv(&[IMAGE, "/bin/sleep", "1000"]));
            output(&cmd)?;
        }
        let pids = crate::proc_mem::processes_mentioning(&["conmon", &path_str(&root)]);
        anyhow::ensure!(
            pids.len() == CONTAINERS,
            "found {} conmon processes for {CONTAINERS} podman containers",
            pids.len()
        );
        pids.iter()
            .map(|&p| Usage::of(p))
            .collect::<anyhow::Result<Vec<_>>>()
    })();
    let _ = output(&podman(&["rm", "-f", "-t", "0", "-a"]));
    let _ = output(&podman(&["system", "reset", "--force"]));
    // conmon outlives `podman rm` for a moment: leave only when they are all gone.
    for _ in 0..200 {
        if crate::proc_mem::processes_mentioning(&["conmon", &path_str(&root)]).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    measured.map(Some)
}

/// How the measured berth-shim was linked (scripts/build-release.sh links it statically; a plain
/// `cargo build --release` does not), which moves its RSS by ~0.7 MB.
fn shim_linkage(shim: &Path) -> String {
    // A dynamically linked executable names its loader in a PT_INTERP segment.
    let dynamic = std::fs::read(shim).is_ok_and(|b| has_interp(&b));
    match dynamic {
        true => "berth-shim measured: dynamically linked (build with scripts/build-release.sh \
                 for the static shim users get)"
            .into(),
        false => "berth-shim measured: statically linked (scripts/build-release.sh)".into(),
    }
}

/// Whether an ELF64 file has a PT_INTERP program header.
fn has_interp(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        elf.get(at..at + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

/// berth-shim against conmon, both per container with [`CONTAINERS`] running.
fn monitor_table(shims: &[Usage], conmon: Option<&[Usage]>) -> anyhow::Result<String> {
    let mut out = String::from(
        "## Per-container process: berth-shim vs podman 4.3's conmon\n\n\
         Median over the 50 processes of each, measured while only that engine's 50 containers \
         ran. conmon keeps the container's stdio and exit status for podman as berth-shim does.\n\n\
         | process | RSS KiB | PSS KiB | Berth RSS / this | Berth PSS / this |\n|---|---:|---:|---:|---:|\n",
    );
    let b = Usage::median(shims);
    writeln!(
        out,
        "| berth-shim | {} | {} | — | — |",
        b.rss_kib, b.pss_kib
    )?;
    match conmon {
        Some(c) => {
            let c = Usage::median(c);
            writeln!(
                out,
                "| conmon (podman 4.3) | {} | {} | {} | {} |",
                c.rss_kib,
                c.pss_kib,
                ratio(b.rss_kib, c.rss_kib),
                ratio(b.pss_kib, c.pss_kib)
            )?;
        }
        None => writeln!(out, "| conmon (podman 4.3) | not installed | | | |")?,
    }
    out.push('\n');
    Ok(out)
}

/// A daemon's memory with the containers running, and each of its shims'.
struct Loaded {
    daemon: Usage,
    shims: Vec<Usage>,
}

impl Loaded {
    fn measure(daemon: u32, shims: &[u32]) -> anyhow::Result<Loaded> {
        anyhow::ensure!(
            shims.len() == CONTAINERS,
            "found {} shims for {CONTAINERS} containers",
            shims.len()
        );
        Ok(Loaded {
            daemon: Usage::of(daemon)?,
            shims: shims
                .iter()
                .map(|&p| Usage::of(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The daemon and all its shims.
    fn total(&self) -> Usage {
        Usage::total(&[self.daemon, Usage::total(&self.shims)])
    }
}

/// Berth / peer, two decimals.
fn ratio(berth: u64, peer: u64) -> String {
    crate::stats::ratio_cell(berth as f64, peer as f64)
}

const NOTES: &str = "## What differs between the contenders\n\n\
- Both clients are fresh processes talking gRPC over a unix socket; the peak RSS column of the \
  timing table is the client process only (`berth-bench` vs `ctr`).\n\
- The stacks differ all the way down: berth-containerd → berth-shim → berth-runc against \
  containerd → containerd-shim-runc-v2 → runc 1.1 (see the `runtime` suite for the runtimes \
  alone).\n\
- `ctr run --rm IMAGE` is what a containerd user gets: containerd resolves the image, prepares \
  and mounts an overlayfs snapshot, and removes it after the task (its garbage collection runs \
  in the background after the client returns). Berth's API takes a rootfs the caller prepared, so \
  that work has no counterpart on the Berth side; the `--rootfs` row (same busybox directory as \
  Berth, no snapshot) is the like-for-like comparison.\n\
- Specs: Berth gets the `runc spec` defaults from config.json; ctr builds containerd's default \
  spec. Both create pid, ipc, uts, mount and network namespaces and a cgroup per container \
  (`/berth/<id>` and `/berth-bench/<id>`); Berth's spec also asks for a cgroup namespace. \
  Neither has a seccomp filter. No stdio on either side (`--null-io` for ctr).\n\
- Memory: Berth's 50 containers share one rootfs directory; containerd's have one snapshot \
  each. Each daemon is measured with only its own 50 containers running, one after the other.\n\
- containerd 1.6 puts its shims' sockets in `/run/containerd/s/` whatever its `--state`; \
  everything else of both daemons lives under the run's scratch directory.\n";
