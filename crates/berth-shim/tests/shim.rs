//! berth-shim end to end: real busybox containers under the real berth-runc, driven through
//! `berth-shim start` and the shim's socket as berth-containerd drives them.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use common::{
    Task, alive, processes_mentioning, read_response, rss_kb, send_request, stat_field, wait_for,
};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

fn open_reader(path: &std::path::Path) -> BufReader<std::fs::File> {
    BufReader::new(std::fs::File::open(path).unwrap())
}

#[test]
fn lifecycle_start_state_output_wait_delete_leaves_nothing() {
    let mut t = Task::new("life", &["sh", "-c", "echo hello; read code; exit $code"]);
    let stdin = t.fifo("stdin");
    let stdout = t.fifo("stdout");
    t.start_ok(&[
        "--stdin",
        stdin.to_str().unwrap(),
        "--stdout",
        stdout.to_str().unwrap(),
    ]);
    let shim = t.shim_pid.unwrap();
    assert_eq!(t.req(json!({"op":"state"}))["status"], "created");
    assert_eq!(t.req(json!({"op":"start"})), json!({}));
    let st = t.req(json!({"op":"state"}));
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_u64(), t.init_pid.map(u64::from));

    let mut out = open_reader(&stdout);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    // Release builds measure about half of a debug build (no line tables, smaller text).
    let budget = if cfg!(debug_assertions) { 6 } else { 3 } * 1024;
    println!("berth-shim VmRSS: {} kB (budget {budget} kB)", rss_kb(shim));
    assert!(rss_kb(shim) <= budget, "shim RSS {} kB", rss_kb(shim));

    // A waiter parked on the socket must not hold up other requests.
    let sock = t.socket();
    let waiter = std::thread::spawn(move || common::request(&sock, &json!({"op":"wait"})));
    assert_eq!(t.req(json!({"op":"state"}))["status"], "running");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&stdin)
        .unwrap()
        .write_all(b"0\n")
        .unwrap();
    let w = waiter.join().unwrap();
    assert_eq!(w["status"], 0, "{w}");
    assert!(w["exited_at"].as_str().unwrap().ends_with('Z'));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.dir().join("exit.json")).unwrap()).unwrap();
    assert_eq!(file, w);
    let st = t.req(json!({"op":"state"}));
    assert_eq!(
        (st["status"].as_str(), st["exit_status"].as_i64()),
        (Some("stopped"), Some(0))
    );

    let d = t.req(json!({"op":"delete"}));
    assert_eq!(d["status"], 0, "{d}");
    wait_for(T, "the shim to exit", || !alive(shim)).unwrap();
    assert!(!t.socket().exists(), "socket left behind");
    assert!(t.runtime_state().is_none(), "runtime state left behind");
}

#[test]
fn exit_codes_reach_wait_and_exit_file() {
    let mut t = Task::new("exit3", &["sh", "-c", "exit 3"]);
    t.start_ok(&[]);
    t.req(json!({"op":"start"}));
    assert_eq!(t.req(json!({"op":"wait"}))["status"], 3);
    assert_eq!(t.req(json!({"op":"delete"}))["status"], 3);

    let mut k = Task::new("kill9", &["sleep", "1000"]);
    k.start_ok(&[]);
    k.req(json!({"op":"start"}));
    assert_eq!(k.req(json!({"op":"kill","signal":9})), json!({}));
    assert_eq!(k.req(json!({"op":"wait"}))["status"], 137);
    let file = std::fs::read_to_string(k.dir().join("exit.json")).unwrap();
    assert!(file.contains("\"status\":137"), "{file}");
    assert_eq!(k.req(json!({"op":"delete"}))["status"], 137);
}

#[test]
fn container_outlives_the_caller_of_start() {
    let mut t = Task::new("survive", &["sleep", "1000"]);
    t.start_ok(&[]);
    t.req(json!({"op":"start"}));
    let (shim, init) = (t.shim_pid.unwrap(), t.init_pid.unwrap());
    // `berth-shim start` has returned and exited; the shim is in its own session, not our
    // child, and it is the parent of the container's init.
    assert_ne!(stat_field(shim, 1).unwrap(), std::process::id().to_string());
    assert_eq!(
        stat_field(shim, 3).unwrap(),
        shim.to_string(),
        "not a session leader"
    );
    assert_eq!(
        stat_field(init, 1).unwrap(),
        shim.to_string(),
        "init not the shim's child"
    );
    assert!(alive(init));
    assert_eq!(t.req(json!({"op":"state"}))["status"], "running");
    let pids = t.req(json!({"op":"pids"}));
    assert!(
        pids["pids"].as_array().unwrap().contains(&json!(init)),
        "{pids}"
    );
    assert_eq!(t.req(json!({"op":"shutdown"})), json!({}));
    wait_for(T, "the shim to exit", || !alive(shim)).unwrap();
    assert!(!alive(init));
    assert!(t.runtime_state().is_none());
}

#[test]
fn departed_stdout_reader_does_not_kill_the_container() {
    let mut t = Task::new(
        "reader",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.02; done",
        ],
    );
    let stdout = t.fifo("stdout");
    t.start_ok(&["--stdout", stdout.to_str().unwrap()]);
    t.req(json!({"op":"start"}));
    let mut first = String::new();
    open_reader(&stdout).read_line(&mut first).unwrap();
    assert!(first.starts_with("line"), "{first:?}");
    // No reader for a while: the container keeps writing into the shim-held FIFO.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.req(json!({"op":"state"}))["status"], "running");
    let mut more = String::new();
    let mut r = open_reader(&stdout);
    for _ in 0..3 {
        more.clear();
        r.read_line(&mut more).unwrap();
        assert!(more.starts_with("line"), "{more:?}");
    }
    assert_eq!(t.req(json!({"op":"state"}))["status"], "running");
    t.req(json!({"op":"kill","signal":9}));
    assert_eq!(t.req(json!({"op":"wait"}))["status"], 137);
    t.req(json!({"op":"delete"}));
}

#[test]
fn exec_output_and_exit_code() {
    let mut t = Task::new("exec", &["sleep", "1000"]);
    t.start_ok(&[]);
    t.req(json!({"op":"start"}));
    let out = t.dir().join("exec.out");
    let mut process = serde_json::to_value(t.bundle.spec().unwrap().process()).unwrap();
    process["args"] = json!(["sh", "-c", "echo from-exec; exit 5"]);
    let r = t.req(json!({
        "op":"exec","exec_id":"e1","process":process,"stdout":out.to_str().unwrap()
    }));
    assert!(r["pid"].as_u64().is_some(), "{r}");
    assert_eq!(t.req(json!({"op":"wait","exec_id":"e1"}))["status"], 5);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "from-exec\n");
    assert!(t.dir().join("exec-e1.exit.json").exists());
    assert_eq!(t.req(json!({"op":"delete","exec_id":"e1"}))["status"], 5);
    assert!(t.req(json!({"op":"wait","exec_id":"e1"}))["error"].is_string());
    assert_eq!(t.req(json!({"op":"state"}))["status"], "running");
    t.req(json!({"op":"shutdown"}));
}

#[test]
fn exec_with_a_terminal_goes_through_the_pty() {
    let mut t = Task::new("exectty", &["sleep", "1000"]);
    t.start_ok(&[]);
    t.req(json!({"op":"start"}));
    let out = t.fifo("tty.out");
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&out)
        .unwrap();
    let mut process = serde_json::to_value(t.bundle.spec().unwrap().process()).unwrap();
    process["args"] = json!(["sh", "-c", "[ -t 1 ] && echo is-a-tty"]);
    process["terminal"] = json!(true);
    let r = t.req(json!({
        "op":"exec","exec_id":"tty","process":process,"stdout":out.to_str().unwrap(),"terminal":true
    }));
    assert!(r["pid"].as_u64().is_some(), "{r}");
    assert_eq!(t.req(json!({"op":"wait","exec_id":"tty"}))["status"], 0);
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert!(
        String::from_utf8_lossy(&got).contains("is-a-tty"),
        "{got:?}"
    );
    t.req(json!({"op":"shutdown"}));
}

#[test]
fn runtime_failure_reports_its_error_and_leaves_nothing() {
    let mut t = Task::new("fail", &["/no/such"]);
    let out = t.start_shim(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("start failed with: {err}");
    assert!(err.contains("/no/such") || err.contains("no such"), "{err}");
    assert!(!t.socket().exists());
    assert!(t.runtime_state().is_none());
    let dir = t.dir().to_str().unwrap().to_string();
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
}

#[test]
fn bad_requests_get_errors_not_a_dead_shim() {
    let mut t = Task::new("badreq", &["sleep", "1000"]);
    t.start_ok(&[]);
    assert!(t.req(json!({"op":"nope"}))["error"].is_string());
    assert!(t.req(json!({"op":"wait","exec_id":"missing"}))["error"].is_string());
    assert!(t.req(json!({"op":"resize","width":80,"height":24}))["error"].is_string());
    // A client that connects and leaves without a word.
    drop(std::os::unix::net::UnixStream::connect(t.socket()).unwrap());
    assert_eq!(t.req(json!({"op":"state"}))["status"], "created");
    t.req(json!({"op":"shutdown"}));
    wait_for(T, "the shim to exit", || !alive(t.shim_pid.unwrap())).unwrap();
}

/// A task limited to 16 MiB of memory (and of memory+swap where the host limits swap), with a
/// tmpfs at /tmp of no size of its own: what is written there is charged to the container.
fn memory_limited_task(name: &str, args: &[&str]) -> Task {
    let t = Task::new(name, args);
    let limit: u64 = 16 << 20;
    let swap_active = std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1);
    let limits_swap = std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        .exists()
        || (std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() && swap_active);
    t.bundle
        .edit_spec_json(|v| {
            let mut memory = json!({ "limit": limit });
            if limits_swap {
                memory["swap"] = json!(limit);
            }
            v["linux"]["resources"]["memory"] = memory;
            v["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"]
            }));
        })
        .unwrap();
    t
}

/// Fails when the shim logged that it could not watch the container's memory cgroup.
fn assert_oom_watched(t: &Task) {
    let log = std::fs::read_to_string(t.dir().join("shim.log")).unwrap_or_default();
    assert!(!log.contains("watching for OOM kills"), "shim.log: {log}");
}

#[test]
fn oom_kill_answers_oom_wait_and_counts_in_state() {
    let mut t = memory_limited_task(
        "oom",
        &["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=64"],
    );
    t.start_ok(&[]);
    assert_oom_watched(&t);
    assert_eq!(t.req(json!({"op":"state"}))["oom_count"], 0);
    // Parked before anything runs; it must not hold up other requests.
    let waiter = send_request(&t.socket(), &json!({"op":"oom_wait","after":0}), T);
    assert_eq!(t.req(json!({"op":"state"}))["status"], "created");
    assert_eq!(t.req(json!({"op":"start"})), json!({}));
    let w = read_response(waiter).expect("oom_wait closed unanswered");
    assert!(w["oom_count"].as_u64() >= Some(1), "{w}");

    let exit = t.req(json!({"op":"wait"}));
    println!("after the OOM kill: {exit}");
    let st = t.req(json!({"op":"state"}));
    assert!(st["oom_count"].as_u64() >= w["oom_count"].as_u64(), "{st}");
    let count = st["oom_count"].as_u64().unwrap();
    // Already exceeded: answered at once.
    let again = t.req(json!({"op":"oom_wait","after":count - 1}));
    assert_eq!(again, json!({ "oom_count": count }));
    assert!(t.req(json!({"op":"delete"}))["status"].is_number());
    wait_for(T, "the shim to exit", || !alive(t.shim_pid.unwrap())).unwrap();
    assert_oom_watched(&t);
}

#[test]
fn container_within_its_memory_limit_has_no_oom_kills() {
    let mut t = memory_limited_task(
        "nooom",
        &["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=4"],
    );
    t.start_ok(&[]);
    let waiter = send_request(&t.socket(), &json!({"op":"oom_wait","after":0}), T);
    t.req(json!({"op":"start"}));
    assert_eq!(t.req(json!({"op":"wait"}))["status"], 0);
    let st = t.req(json!({"op":"state"}));
    assert_eq!(
        (st["status"].as_str(), st["oom_count"].as_u64()),
        (Some("stopped"), Some(0)),
        "{st}"
    );
    // The shim's exit closes a pending oom_wait without an answer.
    assert_eq!(t.req(json!({"op":"delete"}))["status"], 0);
    assert_eq!(read_response(waiter), None);
    wait_for(T, "the shim to exit", || !alive(t.shim_pid.unwrap())).unwrap();
    assert_oom_watched(&t);
}
