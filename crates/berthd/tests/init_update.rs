//! `docker run --init` (tini as PID 1, the command's exit code passed through) and `docker
//! update` (limits applied to the running container's cgroup at once, the restart policy
//! changed, bad values refused with Docker's words and nothing changed).

mod common;

use common::{Berthd, daemon_with_image};

#[test]
fn init_runs_as_pid_1_and_passes_the_exit_code_through() {
    let (_reg, d, image) = daemon_with_image();
    let pid1 = |init: bool| {
        let mut args = vec!["run", "--rm"];
        if init {
            args.push("--init");
        }
        args.extend([image.as_str(), "readlink", "/proc/1/exe"]);
        d.docker_ok(&args).trim().to_string()
    };
    assert_eq!(pid1(true), "/sbin/docker-init");
    assert_eq!(pid1(false), "/bin/busybox");
    let out = d.docker(&["run", "--rm", "--init", &image, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
}

/// A v1 controller file of the container's cgroup (this host is v1), or the v2 one.
fn cgroup_file(d: &Berthd, id: &str, v1: &str, v2: &str) -> String {
    let parent = common::cgroup_parent(&d.roots);
    let (dir, file) = v1.split_once('/').unwrap();
    let p1 = format!("/sys/fs/cgroup/{dir}{parent}/{id}/{file}");
    let p2 = format!("/sys/fs/cgroup{parent}/{id}/{v2}");
    std::fs::read_to_string(&p1)
        .or_else(|_| std::fs::read_to_string(&p2))
        .unwrap_or_else(|e| panic!("{p1} / {p2}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn update_changes_limits_of_a_running_container_and_its_restart_policy() {
    let (_reg, d, image) = daemon_with_image();
    let id = d.docker_ok(&[
        "run", "-d", "--name", "upd", "-m", "64m", &image, "sleep", "300",
    ]);
    let id = id.trim();
    assert_eq!(
        cgroup_file(&d, id, "memory/memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    d.docker_ok(&[
        "update",
        "-m",
        "128m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:2",
        "upd",
    ]);
    assert_eq!(
        cgroup_file(&d, id, "memory/memory.limit_in_bytes", "memory.max"),
        "134217728"
    );
    assert_eq!(cgroup_file(&d, id, "pids/pids.max", "pids.max"), "50");
    let hc = d.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "upd"]);
    assert_eq!(hc.trim(), "134217728 50 on-failure:2");
    let out = d.docker(&["update", "-m", "1m", "upd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Minimum memory limit allowed is 6MB"));
    assert_eq!(
        cgroup_file(&d, id, "memory/memory.limit_in_bytes", "memory.max"),
        "134217728"
    );
    let out = d.docker(&["update", "-m", "64m", "nosuch"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such container: nosuch"));
    d.docker_ok(&["rm", "-f", "upd"]);
}

#[test]
fn healthchecks_go_from_starting_to_healthy_or_unhealthy() {
    let (_reg, d, image) = daemon_with_image();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--health-cmd",
        "test -f /tmp/ready && echo ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        &image,
        "sh",
        "-c",
        "sleep 3; touch /tmp/ready; sleep 300",
    ]);
    let status = |name: &str| {
        d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", name])
            .trim()
            .to_string()
    };
    // Checked at once: a loaded machine may take a second to start the next two.
    assert_eq!(status("fine"), "starting");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo failing; exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        &image,
        "sleep",
        "300",
    ]);
    d.docker_ok(&["run", "-d", "--name", "plain", &image, "sleep", "300"]);
    berth_testkit::wait_for(
        std::time::Duration::from_secs(20),
        "fine to be healthy",
        || status("fine") == "healthy",
    )
    .unwrap();
    berth_testkit::wait_for(
        std::time::Duration::from_secs(20),
        "sick to be unhealthy",
        || status("sick") == "unhealthy",
    )
    .unwrap();
    let log = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .State.Health.Log}}{{.ExitCode}}:{{.Output}}|{{end}}",
        "sick",
    ]);
    assert!(log.contains("1:failing\n|"), "{log}");
    let streak = d.docker_ok(&["inspect", "-f", "{{.State.Health.FailingStreak}}", "sick"]);
    assert!(streak.trim().parse::<u32>().unwrap() >= 2, "{streak}");
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("fine Up") && l.ends_with("(healthy)")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with("sick Up") && l.ends_with("(unhealthy)")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with("plain Up") && !l.contains('(')),
        "{ps}"
    );
    let plain = d.docker_ok(&["inspect", "-f", "{{json .State}}", "plain"]);
    assert!(!plain.contains("Health"), "{plain}");
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "container=fine",
        "--format",
        "{{.Action}}",
    ]);
    assert!(ev.lines().any(|l| l == "health_status: healthy"), "{ev}");
    d.docker_ok(&["rm", "-f", "fine", "sick", "plain"]);
}

#[test]
fn containers_get_the_default_seccomp_profile_unless_unconfined_or_privileged() {
    let (_reg, d, image) = daemon_with_image();
    let mode = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend([image.as_str(), "grep", "^Seccomp:", "/proc/self/status"]);
        d.docker_ok(&args)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(mode(&[]), "2", "no filter by default");
    assert_eq!(mode(&["--security-opt", "seccomp=unconfined"]), "0");
    assert_eq!(mode(&["--privileged"]), "0");
    // A user namespace needs no capability; the profile refuses it (as Docker's does) ...
    let out = d.docker(&["run", "--rm", &image, "unshare", "-U", "true"]);
    assert!(
        !out.status.success(),
        "unshare -U allowed under the default profile"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    // ... which unconfined containers may do.
    d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        &image,
        "unshare",
        "-U",
        "true",
    ]);
    // A profile file, as the docker CLI sends its content.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("deny-mkdir.json");
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#).unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        &image,
        "mkdir",
        "/tmp/x",
    ]);
    assert!(!out.status.success(), "the profile's rule did not apply");
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp={bad",
        &image,
        "true",
    ]);
    assert!(!out.status.success());
}

/// The host's cgroup features decide, as with dockerd: what it has is applied and read back from
/// the container's cgroup; what it lacks (here, commonly, the I/O weight of hosts whose disks
/// use mq-deadline or none) is dropped with Docker's warning and the container still runs.
#[test]
fn limits_the_host_cannot_enforce_are_dropped_with_dockers_warnings() {
    let features = berth_cgroups::Features::detect_host();
    let (_reg, d, image) = daemon_with_image();
    let (status, _, body) = d.raw("GET", "/info", b"");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (field, has) in [
        ("MemoryLimit", features.memory_limit),
        ("SwapLimit", features.swap_limit),
        ("CpuCfsQuota", features.cpu_cfs_quota),
        ("CPUShares", features.cpu_shares),
        ("CPUSet", features.cpuset),
        ("PidsLimit", features.pids),
        ("OomKillDisable", features.oom_kill_disable),
        ("KernelMemory", features.kernel_memory),
    ] {
        assert_eq!(info[field], has, "/info {field}: {info}");
    }
    let warned = |w: &str| info["Warnings"].as_array().unwrap().iter().any(|x| x == w);
    assert_eq!(
        warned("WARNING: No swap limit support"),
        !features.swap_limit
    );

    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "weighted",
        "--blkio-weight",
        "300",
        "-m",
        "64m",
        &image,
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let weight_warning = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";
    let swap_warning = "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.";
    assert_eq!(
        stderr.contains(weight_warning),
        !features.blkio_weight,
        "{stderr}"
    );
    assert_eq!(
        stderr.contains(swap_warning),
        !features.swap_limit,
        "{stderr}"
    );
    let inspect = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.BlkioWeight}} {{.State.Running}}",
        "weighted",
    ]);
    if features.blkio_weight {
        assert_eq!(inspect.trim(), "300 true");
        let parent = common::cgroup_parent(&d.roots);
        let v1 = |f: &str| format!("/sys/fs/cgroup/blkio{parent}/{id}/{f}");
        let v2 = |f: &str| format!("/sys/fs/cgroup{parent}/{id}/{f}");
        let io_weight = berth_cgroups::blkio_weight_to_io_weight(300).to_string();
        let candidates = [
            (v1("blkio.weight"), "300"),
            (v1("blkio.bfq.weight"), "300"),
            (v2("io.bfq.weight"), "300"),
            (v2("io.weight"), io_weight.as_str()),
        ];
        let (path, value) = candidates
            .iter()
            .find_map(|(p, want)| Some((std::fs::read_to_string(p).ok()?, *want)))
            .expect("the container's cgroup has an I/O weight file");
        assert!(path.trim().ends_with(value), "{path}");
    } else {
        assert_eq!(inspect.trim(), "0 true");
    }
    assert_eq!(
        cgroup_file(&d, &id, "memory/memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    d.docker_ok(&["rm", "-f", "weighted"]);
}
