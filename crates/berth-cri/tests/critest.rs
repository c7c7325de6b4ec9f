//! critest (cri-tools v1.26.1), the CRI conformance suite SIG Node runs against every runtime,
//! against berth-cri, offline: the specs of the parts berth-cri serves today (the image
//! service, critest's "Image Manager") pass wherever containerd 1.6 passes them on this kind
//! of machine (the kit's `containerd-1.6-specs.tsv`). The critest kit (cri-tools' sources, the
//! scripts that build it and serve its stand-in images, containerd's reference result) is
//! not part of the project: where it is not installed beside the checkout the test says so and
//! skips; CI has it (`scripts/test.sh` builds critest first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The critest kit, beside the checkout, if installed there.
fn shared() -> Option<PathBuf> {
    // `shared/critest` in the folder that holds the checkout.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = checkout.join("..").join("shared").join("critest");
    p.join("run-critest.sh")
        .is_file()
        .then(|| p.canonicalize().unwrap_or(p))
}

/// critest's work dir, where `scripts/test.sh` built it.
const WORK: &str = "/tmp/berth-critest";
/// The loopback registry critest's stand-in images are served from.
const REGISTRY: &str = "127.0.0.1:5060";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.env("CRI_WORK", WORK).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `status<TAB>spec` lines of a specs.tsv, for the specs whose name has `focus`.
fn statuses(tsv: &str, focus: &str) -> Vec<(String, String)> {
    tsv.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, spec)| spec.contains(focus))
        .map(|(s, spec)| (s.to_string(), spec.to_string()))
        .collect()
}

// Subprocesses here are the judge (critest) and its fixture scripts, as a user runs them.
#[allow(clippy::disallowed_methods)]
#[test]
fn critest_image_specs_pass_as_they_do_on_containerd() {
    let Some(dir) = shared() else {
        eprintln!(
            "SKIPPED: the critest kit (shared/critest beside the checkout) is not installed; CI runs critest"
        );
        return;
    };
    run(&mut Command::new(dir.join("build-critest.sh")));
    run(Command::new(dir.join("prepare-images.sh")).arg(REGISTRY));
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("cri.sock");
    let mirror = format!("http://{REGISTRY}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_berth-cri"))
        .arg("--address")
        .arg(format!("unix://{}", sock.display()))
        .arg("--root")
        .arg(tmp.path().join("root"))
        .arg("--state")
        .arg(tmp.path().join("state"))
        .args(["--registry-mirror", &format!("registry.k8s.io={mirror}")])
        .args(["--registry-mirror", &format!("gcr.io={mirror}")])
        .spawn()
        .unwrap();
    berth_testkit::wait_for(Duration::from_secs(20), "berth-cri's socket", || {
        sock.exists()
    })
    .unwrap();
    let report = tmp.path().join("report");
    std::fs::create_dir_all(&report).unwrap();
    let endpoint = format!("unix://{}", sock.display());
    let junit = report.join("junit.xml");
    let critest = Command::new(Path::new(WORK).join("critest"))
        .env("TMPDIR", tmp.path())
        .args(["-runtime-endpoint", &endpoint, "-image-endpoint", &endpoint])
        .args(["-ginkgo.focus=Image Manager", "-ginkgo.no-color"])
        .arg(format!("-ginkgo.junit-report={}", junit.display()))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = Command::new(dir.join("teardown.sh"))
        .env("CRI_WORK", WORK)
        .output();
    let log = report.join("critest.log");
    std::fs::write(&log, &critest.stdout).unwrap();
    let tsv = report.join("specs.tsv");
    run(Command::new("python3")
        .arg(dir.join("summarize-junit.py"))
        .arg("--tsv")
        .arg(&tsv)
        .arg(&junit)
        .arg(&log));
    let ours = statuses(&std::fs::read_to_string(&tsv).unwrap(), "Image Manager");
    let theirs = std::fs::read_to_string(dir.join("containerd-1.6-specs.tsv")).unwrap();
    let theirs = statuses(&theirs, "Image Manager");
    assert!(
        !theirs.is_empty(),
        "the reference has no Image Manager specs"
    );
    for (status, spec) in &theirs {
        let got = ours
            .iter()
            .find(|(_, s)| s == spec)
            .map(|(st, _)| st.as_str());
        if status == "passed" {
            assert_eq!(
                got,
                Some("passed"),
                "{spec}: passes on containerd 1.6; critest said:\n{}",
                String::from_utf8_lossy(&critest.stdout)
            );
        }
    }
}
