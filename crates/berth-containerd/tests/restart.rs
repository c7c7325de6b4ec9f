//! Containers outlive berth-containerd: kill -9 it while ten run, let one exit meanwhile,
//! restart it, and find all ten with their real state, their output intact; and many short
//! lifecycles in parallel leave nothing behind.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use berth_proto::v1::envelope::Event;
use berth_proto::v1::{
    CreateTaskRequest, DeleteContainerRequest, DeleteTaskRequest, KillRequest, ListTasksRequest,
    StartRequest, Status as TaskStatus, SubscribeRequest, WaitRequest,
};
use berth_proto::with_namespace;
use common::{Api, Ctr, Daemon, Sweep, TestRoots, container, wait_for};

fn cyc<T>(msg: T) -> tonic::Request<T> {
    with_namespace("cycles", msg)
}

const T: Duration = Duration::from_secs(20);

/// A subscription to the exit events.
async fn exit_events(api: &mut Api) -> tonic::Streaming<berth_proto::v1::Envelope> {
    api.events
        .subscribe(SubscribeRequest {
            filters: vec!["topic==/tasks/exit".into()],
        })
        .await
        .unwrap()
        .into_inner()
}

fn read_line(fifo: &Path) -> String {
    // The shim holds the FIFO open, so opening its read end never blocks.
    let mut line = String::new();
    BufReader::new(std::fs::File::open(fifo).unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

async fn start(api: &mut Api, c: &Ctr) {
    api.tasks
        .start(c.req(StartRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
        }))
        .await
        .unwrap();
}

async fn wait(api: &mut Api, c: &Ctr) -> u32 {
    let w = api.tasks.wait(c.req(WaitRequest {
        container_id: c.id.clone(),
        exec_id: String::new(),
    }));
    tokio::time::timeout(T, w)
        .await
        .expect("wait timed out")
        .unwrap()
        .into_inner()
        .exit_status
}

/// SIGKILLs the task's init and returns its exit status.
async fn kill9_and_wait(api: &mut Api, c: &Ctr) -> u32 {
    api.tasks
        .kill(c.req(KillRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
            signal: 9,
            all: false,
        }))
        .await
        .unwrap();
    wait(api, c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_containers_survive_kill_9_and_one_exit_meanwhile() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    let mut ctrs = Vec::new();
    for i in 0..10 {
        let end = if i == 0 { "exit 7" } else { "exec sleep 1000" };
        let script =
            format!("echo before; while [ ! -e /go ]; do sleep 0.1; done; echo during; {end}");
        let c = container(
            &mut api,
            "berth",
            &format!("r{i}"),
            &["sh", "-c", &script],
            |_| {},
        )
        .await;
        let fifo = c.stdout_path();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        api.tasks
            .create(c.req(CreateTaskRequest {
                container_id: c.id.clone(),
                rootfs: c.bundle.rootfs().to_string_lossy().into_owned(),
                stdout: fifo.to_string_lossy().into_owned(),
                ..Default::default()
            }))
            .await
            .unwrap();
        start(&mut api, &c).await;
        ctrs.push(c);
    }
    // Every reader goes away with the daemon: only the shims hold the FIFOs.
    for c in &ctrs {
        assert_eq!(read_line(&c.stdout_path()), "before\n");
    }
    drop(api);
    d.kill9();

    for c in &ctrs {
        std::fs::write(c.bundle.rootfs().join("go"), b"").unwrap();
    }
    let exited = roots.exec_root().join("tasks/berth/r0/exit.json");
    wait_for(T, "r0 to exit while the daemon is down", || exited.exists()).unwrap();

    let _d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    let mut events = exit_events(&mut api).await;
    let tasks = api
        .tasks
        .list(with_namespace(
            "berth",
            ListTasksRequest { filters: vec![] },
        ))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 10, "{tasks:?}");
    for t in &tasks {
        if t.id == "r0" {
            assert_eq!(
                (t.status(), t.exit_status),
                (TaskStatus::Stopped, 7),
                "{t:?}"
            );
        } else {
            assert_eq!(t.status(), TaskStatus::Running, "{t:?}");
        }
    }
    assert_eq!(wait(&mut api, &ctrs[0]).await, 7);
    // What they wrote while nobody read is all there.
    for c in &ctrs {
        assert_eq!(read_line(&c.stdout_path()), "during\n", "{}", c.id);
    }

    // New operations work on the re-attached tasks; each exit is reported once.
    for c in &ctrs[1..] {
        assert_eq!(kill9_and_wait(&mut api, c).await, 137, "{}", c.id);
    }
    let mut exits = Vec::new();
    while exits.len() < 9 {
        let e = tokio::time::timeout(T, events.message())
            .await
            .expect("exit events")
            .unwrap()
            .unwrap();
        if let Some(Event::Exit(x)) = e.event {
            exits.push(x.container_id);
        }
    }
    exits.sort();
    let want: Vec<String> = (1..10).map(|i| format!("r{i}")).collect();
    assert_eq!(
        exits, want,
        "one exit event per killed task, none for r0 again"
    );
    for c in &ctrs {
        let d = api
            .tasks
            .delete(c.req(DeleteTaskRequest {
                container_id: c.id.clone(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.exit_status, if c.id == "r0" { 7 } else { 137 });
    }
    assert!(common::shims_of(&roots).is_empty());
    assert!(
        std::fs::read_dir(roots.exec_root().join("tasks/berth"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_shim_is_buried_with_its_exit() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    let c = common::created(&mut api, "berth", "orphan", &["sleep", "1000"]).await;
    start(&mut api, &c).await;
    let task_json = roots.exec_root().join("tasks/berth/orphan/task.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&task_json).unwrap()).unwrap();
    let shim = rustix::process::Pid::from_raw(meta["shim_pid"].as_i64().unwrap() as i32).unwrap();
    rustix::process::kill_process(shim, rustix::process::Signal::KILL).unwrap();
    // The daemon notices, kills the orphaned container and reports exit 255 (no record).
    assert_eq!(wait(&mut api, &c).await, 255);
    let init = meta["pid"].as_i64().unwrap();
    wait_for(T, "the orphaned container to be gone", || {
        !Path::new(&format!("/proc/{init}")).exists()
            || std::fs::read_to_string(format!("/proc/{init}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    })
    .unwrap();
    let d = api
        .tasks
        .delete(c.req(DeleteTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.exit_status, 255);
    assert!(!roots.exec_root().join("tasks/berth/orphan").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_lifecycles_twenty_at_a_time_leave_nothing() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let _d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    // One rootfs for all of them (read only in practice: `true` writes nothing).
    let proto = container(&mut api, "cycles", "proto", &["true"], |_| {}).await;
    let spec = std::fs::read(proto.bundle.config_path()).unwrap();
    let rootfs = proto.bundle.rootfs().to_string_lossy().into_owned();
    let mut workers = Vec::new();
    for w in 0..20 {
        let (mut api, spec, rootfs) = (common::api(&roots).await, spec.clone(), rootfs.clone());
        workers.push(tokio::spawn(async move {
            for n in 0..5 {
                let id = format!("cyc-{}-{w}-{n}", std::process::id());
                api.containers
                    .create(cyc(berth_proto::v1::CreateContainerRequest {
                        container: Some(berth_proto::v1::Container {
                            id: id.clone(),
                            spec: spec.clone(),
                            ..Default::default()
                        }),
                    }))
                    .await
                    .unwrap();
                api.tasks
                    .create(cyc(CreateTaskRequest {
                        container_id: id.clone(),
                        rootfs: rootfs.clone(),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
                api.tasks
                    .start(cyc(StartRequest {
                        container_id: id.clone(),
                        exec_id: String::new(),
                    }))
                    .await
                    .unwrap();
                let code = api
                    .tasks
                    .wait(cyc(WaitRequest {
                        container_id: id.clone(),
                        exec_id: String::new(),
                    }))
                    .await
                    .unwrap()
                    .into_inner()
                    .exit_status;
                assert_eq!(code, 0, "{id}");
                api.tasks
                    .delete(cyc(DeleteTaskRequest {
                        container_id: id.clone(),
                    }))
                    .await
                    .unwrap();
                api.containers
                    .delete(cyc(DeleteContainerRequest { id: id.clone() }))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let left = api
        .tasks
        .list(with_namespace(
            "cycles",
            ListTasksRequest { filters: vec![] },
        ))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert!(left.is_empty(), "{left:?}");
    assert!(common::shims_of(&roots).is_empty(), "shims left");
    let tasks_dir = roots.exec_root().join("tasks/cycles");
    assert_eq!(
        std::fs::read_dir(&tasks_dir).unwrap().count(),
        0,
        "task dirs left"
    );
    let runc_root = roots.exec_root().join("runc/cycles");
    assert_eq!(
        std::fs::read_dir(&runc_root).unwrap().count(),
        0,
        "runtime state left"
    );
    assert!(common::mounts_under(&roots.exec_root()).is_empty());
    assert!(common::mounts_under(proto.bundle.path()).is_empty());
    let prefix = format!("cyc-{}-", std::process::id());
    let cgroups: Vec<_> = common::cgroups_named_prefix(&prefix);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// An exec request whose output goes to a file in the bundle.
fn exec_request(c: &Ctr, exec_id: &str, script: &str) -> berth_proto::v1::ExecProcessRequest {
    berth_proto::v1::ExecProcessRequest {
        container_id: c.id.clone(),
        exec_id: exec_id.into(),
        stdout: c
            .bundle
            .path()
            .join(format!("{exec_id}.out"))
            .to_string_lossy()
            .into_owned(),
        spec: serde_json::to_vec(&serde_json::json!({
            "args": ["sh", "-c", script],
            "cwd": "/",
            "env": ["PATH=/bin:/usr/bin"],
            "user": {"uid": 0, "gid": 0},
        }))
        .unwrap(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn execs_running_across_a_restart_are_waited_for_and_evented() {
    let roots = TestRoots::new().unwrap();
    let _sweep = Sweep::new(&roots);
    let d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    let c = container(&mut api, "berth", "ex", &["sleep", "1000"], |_| {}).await;
    api.tasks
        .create(c.req(CreateTaskRequest {
            container_id: c.id.clone(),
            rootfs: c.bundle.rootfs().to_string_lossy().into_owned(),
            ..Default::default()
        }))
        .await
        .unwrap();
    start(&mut api, &c).await;
    // "early" ends while the daemon is down, "late" after it is back.
    for (eid, script) in [
        (
            "early",
            "while [ ! -e /early ]; do sleep 0.05; done; exit 3",
        ),
        ("late", "while [ ! -e /late ]; do sleep 0.05; done; exit 4"),
    ] {
        api.tasks
            .exec(c.req(exec_request(&c, eid, script)))
            .await
            .unwrap();
        api.tasks
            .start(c.req(StartRequest {
                container_id: c.id.clone(),
                exec_id: eid.into(),
            }))
            .await
            .unwrap();
    }
    drop(api);
    d.kill9();
    std::fs::write(c.bundle.rootfs().join("early"), b"").unwrap();
    let shim_sock = roots.exec_root().join("tasks/berth/ex/shim.sock");
    wait_for(T, "the early exec to exit while the daemon is down", || {
        common::shim_call(&shim_sock, r#"{"op":"state"}"#).contains("\"exit_status\":3")
    })
    .unwrap();

    let _d = Daemon::start(&roots);
    let mut api = common::api(&roots).await;
    let mut events = exit_events(&mut api).await;
    // The early exit was published as the daemon came back, before anyone could subscribe
    // (like the init's in the test above): Wait answers it. The late one is an event.
    std::fs::write(c.bundle.rootfs().join("late"), b"").unwrap();
    let exit = loop {
        let e = tokio::time::timeout(T, events.message())
            .await
            .expect("the late exec's exit event")
            .unwrap()
            .unwrap();
        if let Some(Event::Exit(x)) = e.event {
            break x;
        }
    };
    assert_eq!((exit.exec_id.as_str(), exit.exit_status), ("late", 4));
    for (eid, want) in [("early", 3), ("late", 4)] {
        let w = api
            .tasks
            .wait(c.req(WaitRequest {
                container_id: c.id.clone(),
                exec_id: eid.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(w.exit_status, want, "{eid}");
    }
    assert_eq!(kill9_and_wait(&mut api, &c).await, 137);
    api.tasks
        .delete(c.req(DeleteTaskRequest {
            container_id: c.id.clone(),
        }))
        .await
        .unwrap();
    assert!(common::shims_of(&roots).is_empty());
}
