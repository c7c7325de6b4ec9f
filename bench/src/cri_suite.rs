//! Suite `cri`: pod and container lifecycle latencies through the CRI, berth-cri vs Debian's
//! containerd 1.6 (its CRI plugin, runc 1.1), both measured by critest's own benchmarks
//! (`critest -benchmark`: RunPodSandbox / PodSandboxStatus / StopPodSandbox / RemovePodSandbox,
//! and CreateContainer / StartContainer / ContainerStatus / StopContainer / RemoveContainer),
//! rounds alternating between the two. Each runtime has a CNI network of its own (bridge,
//! host-local, portmap) and the critest kit's stand-in images from its loopback registry. Needs
//! the critest kit beside the checkout (it builds critest and starts containerd); where it is
//! missing the suite says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::suites::{Ctx, Plan, path_str};

pub const ABOUT: &str = "critest -benchmark (pod and container lifecycle over the CRI) against \
berth-cri and containerd 1.6's CRI plugin, interleaved; targets (issue 22): pod sandbox start and \
container create+start ≤ 0.25 × containerd's";

const WORK: &str = "/tmp/berth-critest";
const REGISTRY: &str = "127.0.0.1:5060";
const ROUNDS: usize = 3;
const BRIDGE: &str = "bbench0";
const SUBNET: &str = "10.237.0.0/24";
const GATEWAY: &str = "10.237.0.1";

/// The critest kit beside the checkout.
fn kit() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = checkout.join("..").join("shared").join("critest");
    p.join("run-critest.sh").is_file().then_some(p)
}

#[allow(clippy::disallowed_methods)] // the kit's scripts, critest and iproute2, as a user runs them
fn sh(cmd: &str) -> anyhow::Result<String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .env("CRI_WORK", WORK)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// berth-cri on a CNI network of its own; stopped (and its network removed) when dropped.
struct BerthCri {
    child: std::process::Child,
    dir: PathBuf,
}

impl BerthCri {
    #[allow(clippy::disallowed_methods)] // the binary under test
    fn start(ctx: &Ctx) -> anyhow::Result<BerthCri> {
        let dir = ctx.work.join("berth-cri");
        std::fs::create_dir_all(dir.join("net.d"))?;
        sh(&format!(
            "ip link add {BRIDGE} type bridge 2>/dev/null; ip addr replace {GATEWAY}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
        ))?;
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "bbench-net",
            "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": false, "ipMasq": false,
                 "ipam": {"type": "host-local", "dataDir": dir.join("ipam"),
                          "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        std::fs::write(dir.join("net.d/10-bench.conflist"), conf.to_string())?;
        let mirror = format!("http://{REGISTRY}");
        let sock = dir.join("cri.sock");
        let child = Command::new(ctx.bin_dir.join("berth-cri"))
            .arg("--address")
            .arg(format!("unix://{}", sock.display()))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(ctx.state.join("berth-cri"))
            .args(["--registry-mirror", &format!("registry.k8s.io={mirror}")])
            .args(["--registry-mirror", &format!("gcr.io={mirror}")])
            .args(["--sandbox-image", &format!("{REGISTRY}/pause:3.6")])
            .args(["--cgroup-parent", "/berth-cri-bench"])
            .arg("--cni-conf-dir")
            .arg(dir.join("net.d"))
            .stderr(std::process::Stdio::null())
            .spawn()?;
        for _ in 0..200 {
            if sock.exists() {
                return Ok(BerthCri { child, dir });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("berth-cri did not come up")
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.dir.join("cri.sock").display())
    }
}

impl Drop for BerthCri {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
        let _ = sh(&format!(
            "ip link del {BRIDGE}; for d in /sys/fs/cgroup/*/berth-cri-bench /sys/fs/cgroup/berth-cri-bench; do [ -d $d ] && find $d -depth -type d -exec rmdir {{}} \\; ; done 2>/dev/null; true"
        ));
    }
}

/// One critest benchmark run against `endpoint`: each operation's durations (ns).
#[allow(clippy::disallowed_methods)] // critest is the judge
fn critest(
    endpoint: &str,
    out: &Path,
    params: &Path,
) -> anyhow::Result<BTreeMap<String, Vec<u64>>> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let tmp = Path::new(WORK).join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let run = Command::new(Path::new(WORK).join("critest"))
        .env("TMPDIR", &tmp)
        .args([
            "-runtime-endpoint",
            endpoint,
            "-image-endpoint",
            endpoint,
            "-benchmark",
        ])
        .arg(format!("-benchmarking-params-file={}", params.display()))
        .arg(format!("-benchmarking-output-dir={}", out.display()))
        .arg("-ginkgo.focus=lifecycle of PodSandbox|basic operations on Container")
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "critest -benchmark against {endpoint}: {}",
        String::from_utf8_lossy(&run.stdout)
    );
    let mut ops: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in ["pod_benchmark_data.json", "container_benchmark_data.json"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(f))?)?;
        let names: Vec<String> = serde_json::from_value(v["operationsNames"].clone())?;
        for p in v["datapoints"].as_array().into_iter().flatten() {
            for (name, d) in names
                .iter()
                .zip(p["operationsDurationsNs"].as_array().into_iter().flatten())
            {
                ops.entry(name.clone())
                    .or_default()
                    .push(d.as_u64().unwrap_or(0));
            }
        }
    }
    Ok(ops)
}

fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

pub fn plan(ctx: &Ctx) -> anyhow::Result<Plan> {
    let Some(kit) = kit() else {
        anyhow::bail!("the critest kit (shared/critest beside the checkout) is not installed");
    };
    let k = path_str(&kit);
    sh(&format!(
        "{k}/build-critest.sh && {k}/prepare-images.sh {REGISTRY} && {k}/containerd-up.sh {REGISTRY}"
    ))?;
    let berth = BerthCri::start(ctx)?;
    let params = ctx.work.join("params.yaml");
    std::fs::write(
        &params,
        "containersNumber: 20\ncontainersNumberParallel: 1\ncontainerBenchmarkTimeoutSeconds: 300\n\
         podsNumber: 20\npodsNumberParallel: 1\npodBenchmarkTimeoutSeconds: 300\n",
    )?;
    let work = ctx.work.clone();
    Ok(Plan {
        groups: Vec::new(),
        extra: Some(Box::new(move || {
            let containerd = format!("unix://{WORK}/containerd/containerd.sock");
            let mut ours: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut theirs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let result = (|| {
                for _ in 0..ROUNDS {
                    for (ep, into) in [(&containerd, &mut theirs), (&berth.endpoint(), &mut ours)] {
                        for (op, d) in critest(ep, &work.join("out"), &params)? {
                            into.entry(op).or_default().extend(d);
                        }
                    }
                }
                Ok::<_, anyhow::Error>(())
            })();
            drop(berth);
            let _ = sh(&format!("{k}/teardown.sh --keep-registry"));
            result?;
            let mut md = String::from(
                "\n## CRI lifecycle (critest -benchmark, medians in ms)\n\n| operation | berth-cri | containerd 1.6 | ratio |\n|---|---:|---:|---:|\n",
            );
            let med = |m: &mut BTreeMap<String, Vec<u64>>, op: &str| {
                median(m.entry(op.into()).or_default()) / 1e6
            };
            let ops = [
                "CreatePod",
                "StatusPod",
                "StopPod",
                "RemovePod",
                "CreateContainer",
                "StartContainer",
                "StatusContainer",
                "StopContainer",
                "RemoveContainer",
            ];
            let mut both = |a: &str, b: &str| {
                let (x, y) = (
                    med(&mut ours, a) + med(&mut ours, b),
                    med(&mut theirs, a) + med(&mut theirs, b),
                );
                (x, y)
            };
            let (cs, cs_peer) = both("CreateContainer", "StartContainer");
            for op in ops {
                let (x, y) = (med(&mut ours, op), med(&mut theirs, op));
                md.push_str(&format!("| {op} | {x:.2} | {y:.2} | {:.2} |\n", x / y));
            }
            md.push_str(&format!(
                "| CreateContainer + StartContainer | {cs:.2} | {cs_peer:.2} | {:.2} |\n",
                cs / cs_peer
            ));
            md.push_str(&format!(
                "\n{ROUNDS} interleaved rounds of 20 pods and 20 containers each per runtime.\n"
            ));
            Ok(md)
        })),
    })
}
