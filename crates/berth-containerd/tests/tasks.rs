//! The Tasks and Events services end to end: real busybox containers under real shims and the
//! real berth-runc, driven over the gRPC socket as berthd drives them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::v1::envelope::Event;
use berth_proto::v1::{
    DeleteProcessRequest, DeleteTaskRequest, Envelope, ExecProcessRequest, GetRequest, KillRequest,
    ListPidsRequest, ListTasksRequest, MetricsRequest, PauseTaskRequest, ResumeTaskRequest,
    StartRequest, Status as TaskStatus, SubscribeRequest, UpdateTaskRequest, WaitRequest,
};
use common::{Api, Ctr, Daemon, Sweep, TestRoots, api, container, created, task_request, wait_for};
use serde_json::json;
use tonic::Code;

const T: Duration = Duration::from_secs(15);

/// Every event of the filter, recorded in the background.
struct Recorder(Arc<Mutex<Vec<Envelope>>>);

impl Recorder {
    async fn start(api: &mut Api, filters: &[&str]) -> Recorder {
        let mut stream = api
            .events
            .subscribe(SubscribeRequest {
                filters: filters.iter().map(|f| f.to_string()).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(e)) = stream.message().await {
                s.lock().unwrap().push(e);
            }
        });
        Recorder(seen)
    }

    fn topics_of(&self, id: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| container_of(e) == id)
            .map(|e| e.topic.clone())
            .collect()
    }

    async fn wait_topic(&self, id: &str, topic: &str) {
        let deadline = tokio::time::Instant::now() + T;
        while !self.topics_of(id).iter().any(|t| t == topic) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {topic} for {id}: {:?}",
                self.topics_of(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn container_of(e: &Envelope) -> &str {
    match e.event.as_ref() {
        Some(Event::Created(x)) => &x.container_id,
        Some(Event::Started(x)) => &x.container_id,
        Some(Event::Exit(x)) => &x.container_id,
        Some(Event::Oom(x)) => &x.container_id,
        Some(Event::Paused(x)) => &x.container_id,
        Some(Event::Resumed(x)) => &x.container_id,
        Some(Event::Deleted(x)) => &x.container_id,
        Some(Event::ExecAdded(x)) => &x.container_id,
        Some(Event::ExecStarted(x)) => &x.container_id,
        None => "",
    }
}

async fn status(api: &mut Api, c: &Ctr) -> (TaskStatus, u32) {
    let p = api
        .tasks
        .get(c.req(GetRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    (p.status(), p.exit_status)
}

async fn start(api: &mut Api, c: &Ctr, exec_id: &str) -> u32 {
    api.tasks
        .start(c.req(StartRequest {
            container_id: c.id.clone(),
            exec_id: exec_id.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .pid
}

async fn wait(api: &mut Api, c: &Ctr, exec_id: &str) -> u32 {
    let w = api.tasks.wait(c.req(WaitRequest {
        container_id: c.id.clone(),
        exec_id: exec_id.into(),
    }));
    tokio::time::timeout(T, w)
        .await
        .expect("wait timed out")
        .unwrap()
        .into_inner()
        .exit_status
}

async fn delete(api: &mut Api, c: &Ctr) -> u32 {
    api.tasks
        .delete(c.req(DeleteTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .exit_status
}

async fn kill(api: &mut Api, c: &Ctr, signal: u32) {
    api.tasks
        .kill(c.req(KillRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
            signal,
            all: false,
        }))
        .await
        .unwrap();
}

fn exec_request(c: &Ctr, exec_id: &str, args: &[&str], terminal: bool) -> ExecProcessRequest {
    let out = c.bundle.path().join(format!("{exec_id}.out"));
    ExecProcessRequest {
        container_id: c.id.clone(),
        exec_id: exec_id.into(),
        stdin: String::new(),
        stdout: out.to_string_lossy().into_owned(),
        stderr: String::new(),
        terminal,
        spec: serde_json::to_vec(&json!({
            "args": args,
            "cwd": "/",
            "env": ["PATH=/bin:/usr/bin"],
            "user": {"uid": 0, "gid": 0},
            "terminal": terminal,
        }))
        .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn output_exit_code_and_event_order() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let ev = Recorder::start(&mut api, &["namespace==berth"]).await;
    let c = created(
        &mut api,
        "berth",
        "codes",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    )
    .await;
    assert_eq!(status(&mut api, &c).await.0, TaskStatus::Created);
    let pid = start(&mut api, &c, "").await;
    assert!(pid > 0);
    assert_eq!(wait(&mut api, &c, "").await, 3);
    assert_eq!(c.stdout(), "out\n");
    assert_eq!(c.stderr(), "err\n");
    assert_eq!(status(&mut api, &c).await, (TaskStatus::Stopped, 3));
    assert_eq!(delete(&mut api, &c).await, 3);
    ev.wait_topic("codes", "/tasks/delete").await;
    assert_eq!(
        ev.topics_of("codes"),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    let e = api
        .tasks
        .get(c.req(GetRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(!roots.exec_root().join("tasks/berth/codes").exists());
    // Another tenant saw none of it.
    let other = Recorder::start(&mut api, &["namespace==k8s"]).await;
    let c2 = created(&mut api, "berth", "codes2", &["true"]).await;
    start(&mut api, &c2, "").await;
    assert_eq!(wait(&mut api, &c2, "").await, 0);
    delete(&mut api, &c2).await;
    ev.wait_topic("codes2", "/tasks/delete").await;
    assert!(other.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_pause_resume_pids_and_sigkill() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let ev = Recorder::start(&mut api, &[]).await;
    let c = created(&mut api, "berth", "busy", &["sleep", "1000"]).await;
    let pid = start(&mut api, &c, "").await;
    assert_eq!(status(&mut api, &c).await.0, TaskStatus::Running);
    let pids = api
        .tasks
        .list_pids(c.req(ListPidsRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .pids;
    assert_eq!(pids, [pid]);

    // Exec without a terminal: its output and exit code.
    api.tasks
        .exec(c.req(exec_request(
            &c,
            "e1",
            &["sh", "-c", "echo from-exec; exit 5"],
            false,
        )))
        .await
        .unwrap();
    let dup = api
        .tasks
        .exec(c.req(exec_request(&c, "e1", &["true"], false)))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    start(&mut api, &c, "e1").await;
    assert_eq!(wait(&mut api, &c, "e1").await, 5);
    let out = std::fs::read_to_string(c.bundle.path().join("e1.out")).unwrap();
    assert_eq!(out, "from-exec\n");
    let d = api
        .tasks
        .delete_process(c.req(DeleteProcessRequest {
            container_id: c.id.clone(),
            exec_id: "e1".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.exit_status, 5);

    // Exec with a terminal: the process sees a pty.
    api.tasks
        .exec(c.req(exec_request(&c, "e2", &["tty"], true)))
        .await
        .unwrap();
    start(&mut api, &c, "e2").await;
    assert_eq!(wait(&mut api, &c, "e2").await, 0);
    let path = c.bundle.path().join("e2.out");
    wait_for(T, "the tty's output", || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains("/dev/pts/"))
    })
    .unwrap();

    // Pause and resume.
    api.tasks
        .pause(c.req(PauseTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(status(&mut api, &c).await.0, TaskStatus::Paused);
    api.tasks
        .resume(c.req(ResumeTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(status(&mut api, &c).await.0, TaskStatus::Running);

    // A running task cannot be deleted; SIGKILL ends it with 137.
    let e = api
        .tasks
        .delete(c.req(DeleteTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    kill(&mut api, &c, 9).await;
    assert_eq!(wait(&mut api, &c, "").await, 137);
    assert_eq!(delete(&mut api, &c).await, 137);
    ev.wait_topic("busy", "/tasks/delete").await;
    let topics = ev.topics_of("busy");
    for t in [
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing from {topics:?}");
    }
    // Two exec exits and the init's, each once.
    assert_eq!(topics.iter().filter(|t| *t == "/tasks/exit").count(), 3);
    assert_eq!(topics.first().map(String::as_str), Some("/tasks/create"));
    assert_eq!(topics.last().map(String::as_str), Some("/tasks/delete"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_memory_and_update_changes_limits() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let c = created(&mut api, "berth", "metered", &["sleep", "1000"]).await;
    start(&mut api, &c, "").await;
    let metric = |api: &mut Api| {
        let req = c.req(MetricsRequest {
            container_ids: vec![c.id.clone()],
        });
        let mut tasks = api.tasks.clone();
        async move { tasks.metrics(req).await.unwrap().into_inner().metrics[0].clone() }
    };
    let before = metric(&mut api).await;
    assert!(before.pids_current >= 1, "{before:?}");
    // 48 MiB in the container's /dev/shm (tmpfs) is charged to its memory cgroup.
    api.tasks
        .exec(c.req(exec_request(
            &c,
            "fill",
            &[
                "dd",
                "if=/dev/zero",
                "of=/dev/shm/fill",
                "bs=1M",
                "count=48",
            ],
            false,
        )))
        .await
        .unwrap();
    start(&mut api, &c, "fill").await;
    assert_eq!(wait(&mut api, &c, "fill").await, 0);
    let after = metric(&mut api).await;
    assert!(
        after.memory_usage_bytes >= before.memory_usage_bytes + (40 << 20),
        "memory did not move: before {} after {}",
        before.memory_usage_bytes,
        after.memory_usage_bytes
    );
    assert!(after.cpu_usage_nanos > before.cpu_usage_nanos);

    api.tasks
        .update(c.req(UpdateTaskRequest {
            container_id: c.id.clone(),
            resources: serde_json::to_vec(&json!({"pids": {"limit": 77}})).unwrap(),
        }))
        .await
        .unwrap();
    assert_eq!(metric(&mut api).await.pids_limit, 77);
    let bad = api
        .tasks
        .update(c.req(UpdateTaskRequest {
            container_id: c.id.clone(),
            resources: b"[1,2".to_vec(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    kill(&mut api, &c, 9).await;
    wait(&mut api, &c, "").await;
    delete(&mut api, &c).await;
}

/// The tasks of `c`'s namespace.
async fn tasks_in(api: &mut Api, c: &Ctr) -> Vec<berth_proto::v1::Process> {
    api.tasks
        .list(c.req(ListTasksRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner()
        .tasks
}

/// A runtime that fails or refuses: its own words reach the caller, and nothing is left (`c`
/// gives the namespace).
async fn runtime_failures_leave_nothing(api: &mut Api, roots: &TestRoots, c: &Ctr) {
    // A runtime that fails: its own error text comes back, and nothing is left.
    let broken = container(api, "berth", "broken", &["/no/such/binary"], |_| {}).await;
    let e = api
        .tasks
        .create(broken.req(task_request(&broken)))
        .await
        .err();
    let e = match e {
        Some(e) => e,
        // Some runtimes only find out at start: then start must fail with the text.
        None => api
            .tasks
            .start(broken.req(StartRequest {
                container_id: "broken".into(),
                exec_id: String::new(),
            }))
            .await
            .unwrap_err(),
    };
    assert!(
        e.message().contains("/no/such/binary"),
        "the runtime's error should name the binary: {}",
        e.message()
    );
    let listed = tasks_in(api, c).await;
    if listed.iter().any(|t| t.id == "broken") {
        delete(api, &broken).await;
    } else {
        assert!(!roots.exec_root().join("tasks/berth/broken").exists());
    }

    // A runtime that refuses: its words reach the caller, nothing is left.
    let script = roots.path().join("bogus-runtime");
    std::fs::write(
        &script,
        // Like runc, it reports through its --log file in JSON.
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --log ] && log=$2; shift; done\n\
         echo '{\"level\":\"error\",\"msg\":\"bogus runtime refuses\"}' >> \"$log\"\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bundle = common::Bundle::new(&["true"]).unwrap();
    api.containers
        .create(c.req(berth_proto::v1::CreateContainerRequest {
            container: Some(berth_proto::v1::Container {
                id: "bogus".into(),
                runtime: script.to_string_lossy().into_owned(),
                spec: std::fs::read(bundle.config_path()).unwrap(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    let bogus = Ctr {
        bundle,
        id: "bogus".into(),
        ns: "berth".into(),
    };
    let e = api
        .tasks
        .create(bogus.req(task_request(&bogus)))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("bogus runtime refuses"),
        "{}",
        e.message()
    );
    assert!(!roots.exec_root().join("tasks/berth/bogus").exists());
    let left = tasks_in(api, c).await;
    assert!(left.is_empty(), "{left:?}");
    assert!(common::shims_of(roots).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_leaves_no_task() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let ghost = Ctr {
        bundle: common::Bundle::new(&["true"]).unwrap(),
        id: "ghost".into(),
        ns: "berth".into(),
    };
    // No such container.
    let e = api
        .tasks
        .create(ghost.req(task_request(&ghost)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    // No such task, for every call that names one.
    let e = api
        .tasks
        .start(ghost.req(StartRequest {
            container_id: "ghost".into(),
            exec_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = api
        .tasks
        .kill(ghost.req(KillRequest {
            container_id: "ghost".into(),
            exec_id: String::new(),
            signal: 9,
            all: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = api
        .tasks
        .delete(ghost.req(DeleteTaskRequest {
            container_id: "ghost".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // A task twice.
    let c = created(&mut api, "berth", "twice", &["sleep", "1000"]).await;
    let e = api.tasks.create(c.req(task_request(&c))).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    // A container with a task cannot be removed.
    let e = api
        .containers
        .delete(c.req(berth_proto::v1::DeleteContainerRequest { id: c.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Bad exec specs and signals.
    let mut bad = exec_request(&c, "x", &["true"], false);
    bad.spec = b"{".to_vec();
    let e = api.tasks.exec(c.req(bad)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = api
        .tasks
        .exec(c.req(exec_request(&c, "../x", &["true"], false)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = api
        .tasks
        .kill(c.req(KillRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
            signal: 1000,
            all: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    api.tasks
        .kill(c.req(KillRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
            signal: 9,
            all: true,
        }))
        .await
        .unwrap();
    wait(&mut api, &c, "").await;
    delete(&mut api, &c).await;

    runtime_failures_leave_nothing(&mut api, &roots, &c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_over_its_memory_limit_produces_an_oom_event() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let ev = Recorder::start(&mut api, &["namespace==berth"]).await;
    let limit: u64 = 16 << 20;
    // Where swap is limited separately, cap it too so the tmpfs pages cannot escape to swap.
    let memsw = std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let fill = |v: &mut serde_json::Value| {
        let mut memory = json!({ "limit": limit });
        if memsw {
            memory["swap"] = json!(limit);
        }
        v["linux"]["resources"]["memory"] = memory;
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"]
        }));
    };
    let args = ["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=64"];
    let c = container(&mut api, "berth", "hog", &args, fill).await;
    api.tasks.create(c.req(task_request(&c))).await.unwrap();
    start(&mut api, &c, "").await;
    ev.wait_topic("hog", "/tasks/oom").await;
    assert_eq!(
        wait(&mut api, &c, "").await,
        137,
        "killed by the OOM killer"
    );
    assert_eq!(delete(&mut api, &c).await, 137);
    let topics = ev.topics_of("hog");
    let at = |t: &str| topics.iter().position(|x| x == t).unwrap();
    assert!(at("/tasks/start") < at("/tasks/oom"), "{topics:?}");

    // One that stays within its limit gets none.
    let args = ["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=4"];
    let c = container(&mut api, "berth", "modest", &args, fill).await;
    api.tasks.create(c.req(task_request(&c))).await.unwrap();
    start(&mut api, &c, "").await;
    assert_eq!(wait(&mut api, &c, "").await, 0);
    assert_eq!(delete(&mut api, &c).await, 0);
    ev.wait_topic("modest", "/tasks/delete").await;
    assert!(!ev.topics_of("modest").iter().any(|t| t == "/tasks/oom"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_task_gets_a_pty_that_resizes() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let c = container(
        &mut api,
        "berth",
        "tty",
        &["sh", "-c", "tty; exec sleep 1000"],
        |v| {
            v["process"]["terminal"] = json!(true);
        },
    )
    .await;
    let mut req = task_request(&c);
    req.terminal = true;
    api.tasks.create(c.req(req)).await.unwrap();
    start(&mut api, &c, "").await;
    let out = c.stdout_path();
    wait_for(T, "the pty's output", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("/dev/pts/"))
    })
    .unwrap();
    api.tasks
        .resize_pty(c.req(berth_proto::v1::ResizePtyRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
            width: 100,
            height: 40,
        }))
        .await
        .unwrap();
    // The container's console is its pty: an exec sees the new size there.
    api.tasks
        .exec(c.req(exec_request(
            &c,
            "size",
            &["stty", "-F", "/dev/console", "size"],
            false,
        )))
        .await
        .unwrap();
    start(&mut api, &c, "size").await;
    assert_eq!(wait(&mut api, &c, "size").await, 0);
    let size = std::fs::read_to_string(c.bundle.path().join("size.out")).unwrap();
    assert_eq!(size.trim(), "40 100");
    kill(&mut api, &c, 9).await;
    assert_eq!(wait(&mut api, &c, "").await, 137);
    delete(&mut api, &c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runc_serves_as_the_runtime_by_name() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = api(&roots).await;
    let bundle = common::Bundle::new(&["sh", "-c", "echo via-runc; exit 4"]).unwrap();
    let c = Ctr {
        bundle,
        id: "by-runc".into(),
        ns: "berth".into(),
    };
    api.containers
        .create(c.req(berth_proto::v1::CreateContainerRequest {
            container: Some(berth_proto::v1::Container {
                id: c.id.clone(),
                runtime: "runc".into(),
                spec: std::fs::read(c.bundle.config_path()).unwrap(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    api.tasks.create(c.req(task_request(&c))).await.unwrap();
    // runc's own state proves who created it.
    let state = roots.exec_root().join("runc/berth/by-runc/state.json");
    assert!(state.exists(), "{} missing", state.display());
    start(&mut api, &c, "").await;
    assert_eq!(wait(&mut api, &c, "").await, 4);
    assert_eq!(c.stdout(), "via-runc\n");
    assert_eq!(delete(&mut api, &c).await, 4);
}
