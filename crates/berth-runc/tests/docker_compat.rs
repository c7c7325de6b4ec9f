//! berth-runc as a runtime of the real Docker: a private dockerd (Debian's docker.io) started with
//! `--add-runtime berth=<berth-runc>` runs, execs into and removes containers of the busybox image
//! through its containerd and containerd-shim-runc-v2, which drive berth-runc with runc's flags.

use std::path::{Path, PathBuf};
use std::process::Output;

use berth_testkit::{BusyboxImage, Dockerd};

const IMAGE: &str = "berth-test/busybox:latest";
const BERTH_RUNC: &str = env!("CARGO_BIN_EXE_berth-runc");

/// Exit code, stdout and stderr of a docker command.
fn run(d: &Dockerd, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = d.docker(args);
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Every path under the runtimes' state roots (`<exec-root>/runtime-*/`) whose name holds `id`.
fn runtime_state_of(exec_root: &Path, id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(id) {
                out.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, id, out);
            }
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(exec_root).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("runtime-") {
            walk(&entry.path(), id, &mut found);
        }
    }
    found
}

/// Cgroup directories named `id` in any hierarchy (dockerd's cgroupsPath is `/docker/<id>`).
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join("docker").join(id))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn dockerd_runs_and_execs_with_berth_runc() {
    let archive_dir = tempfile::Builder::new()
        .prefix("bimg-")
        .tempdir_in("/tmp")
        .unwrap();
    let archive = archive_dir.path().join("busybox.tar");
    BusyboxImage::build()
        .unwrap()
        .write_docker_archive(&archive, IMAGE)
        .unwrap();
    let dockerd = Dockerd::start(&[("berth", Path::new(BERTH_RUNC))])
        .unwrap_or_else(|e| panic!("starting a private dockerd: {e:#}"));

    let (code, out, err) = run(&dockerd, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "docker load: {out}{err}");
    assert!(out.contains(&format!("Loaded image: {IMAGE}")), "{out}");

    // docker run --runtime berth --rm IMAGE echo hi
    let (code, out, err) = run(
        &dockerd,
        &["run", "--runtime", "berth", "--rm", IMAGE, "echo", "hi"],
    );
    assert_eq!((code, out.as_str()), (0, "hi\n"), "docker run: {err}");

    // The container's exit code comes back through shim, containerd and dockerd.
    let (code, out, err) = run(
        &dockerd,
        &[
            "run",
            "--runtime",
            "berth",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(code, 3, "docker run exit 3: {out}{err}");

    // A detached container, then exec into it.
    let (code, out, err) = run(
        &dockerd,
        &[
            "run",
            "-d",
            "--runtime",
            "berth",
            "--name",
            "berth-x",
            IMAGE,
            "sleep",
            "100",
        ],
    );
    assert_eq!(code, 0, "docker run -d: {out}{err}");
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "docker run -d printed {out:?}");

    let (code, out, err) = run(&dockerd, &["exec", "berth-x", "echo", "from-exec"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "from-exec\n"),
        "docker exec: {err}"
    );
    let (code, out, err) = run(&dockerd, &["exec", "berth-x", "sh", "-c", "exit 4"]);
    assert_eq!(code, 4, "docker exec exit 4: {out}{err}");

    let (code, out, err) = run(
        &dockerd,
        &[
            "inspect",
            "--format",
            "{{.HostConfig.Runtime}} {{.State.Running}}",
            "berth-x",
        ],
    );
    assert_eq!(
        (code, out.trim()),
        (0, "berth true"),
        "docker inspect: {err}"
    );

    // berth-runc itself holds the container: its state is where dockerd's shim keeps runtime
    // state, and berth-runc reports it running.
    let state = runtime_state_of(&dockerd.exec_root(), &id);
    let root = state
        .iter()
        .find(|p| p.join("state.json").is_file())
        .and_then(|p| p.parent())
        .unwrap_or_else(|| panic!("no runtime state for {id} under the exec root: {state:?}"))
        .to_path_buf();
    #[allow(clippy::disallowed_methods)] // the runtime under test, as dockerd's shim calls it
    let out = std::process::Command::new(BERTH_RUNC)
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "berth-runc state: {out:?}");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["status"], "running", "{st}");
    assert!(!cgroups_of(&id).is_empty(), "no cgroup for {id}");

    let (code, out, err) = run(&dockerd, &["rm", "-f", "berth-x"]);
    assert_eq!(code, 0, "docker rm -f: {out}{err}");
    let (code, out, _) = run(&dockerd, &["ps", "-aq", "--no-trunc"]);
    assert_eq!((code, out.as_str()), (0, ""), "containers left after rm -f");
    assert_eq!(
        runtime_state_of(&dockerd.exec_root(), &id),
        Vec::<PathBuf>::new(),
        "runtime state left in {}",
        root.display()
    );
    assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "cgroups left");
}
