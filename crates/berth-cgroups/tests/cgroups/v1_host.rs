//! cgroup v1 for real on this host: create, apply and read back, processes, freezer, stats, devices, OOM.

use berth_cgroups::{Cgroup, Error, Features};
use serde_json::json;

use crate::common::{GatedChild, TestCgroup, read, resources, v1_host};

const MIB: i64 = 1024 * 1024;

/// A block device's `MAJ:MIN` for throttle rules: a disk other than loop/zram/ram when the
/// host has one, else any block device it has (names and kinds differ between hosts).
fn block_device() -> Option<(i64, i64)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| ["loop", "zram", "ram"].iter().any(|p| n.starts_with(p)));
    names.iter().find_map(|name| {
        let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

/// The I/O weight needs CFQ's or BFQ's files, which hosts whose disks use mq-deadline or
/// none lack: there the apply must fail, naming the missing file. The read throttle, set by
/// the caller on `disk`, reads back.
fn check_blkio(t: &TestCgroup, features: &Features, disk: Option<(i64, i64)>) {
    let blkio = t.dir("blkio");
    let weight = t.cg.apply(&resources(json!({"blockIO": {"weight": 500}})));
    if features.blkio_weight {
        weight.unwrap();
        let weight_file = if blkio.join("blkio.weight").exists() {
            "blkio.weight"
        } else {
            "blkio.bfq.weight"
        };
        assert!(read(&blkio, weight_file).ends_with("500"));
    } else {
        let err = weight.unwrap_err();
        assert!(matches!(err, Error::NotSupported { .. }), "{err}");
        assert!(err.to_string().contains("weight does not exist"), "{err}");
    }
    match disk {
        Some((major, minor)) if features.blkio_read_bps => assert_eq!(
            read(&blkio, "blkio.throttle.read_bps_device"),
            format!("{major}:{minor} 1048576")
        ),
        Some(_) => panic!("the blkio throttle files are missing: {features:?}"),
        None => eprintln!("no block device on this host: throttle rules not exercised"),
    }
}

/// Raising both memory limits needs memsw written first, lowering needs the limit first.
fn check_memory_resizing(cg: &Cgroup, memory: &std::path::Path) {
    cg.apply(&resources(
        json!({"memory": {"limit": 256 * MIB, "swap": 512 * MIB}}),
    ))
    .unwrap();
    assert_eq!(
        read(memory, "memory.limit_in_bytes"),
        (256 * MIB).to_string()
    );
    assert_eq!(
        read(memory, "memory.memsw.limit_in_bytes"),
        (512 * MIB).to_string()
    );
    cg.apply(&resources(
        json!({"memory": {"limit": 32 * MIB, "swap": 48 * MIB}}),
    ))
    .unwrap();
    assert_eq!(
        read(memory, "memory.limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(
        read(memory, "memory.memsw.limit_in_bytes"),
        (48 * MIB).to_string()
    );
}

#[test]
fn v1_nested_create_copies_cpuset_and_apply_reads_back() {
    let Some(layout) = v1_host() else { return };
    let t = TestCgroup::create(&layout, true);
    let cpuset = t.dir("cpuset");
    assert_eq!(
        read(&cpuset, "cpuset.cpus"),
        read(cpuset.parent().unwrap(), "cpuset.cpus")
    );
    assert!(!read(&cpuset, "cpuset.cpus").is_empty());
    assert!(!read(&cpuset, "cpuset.mems").is_empty());
    assert!(
        t.cg.paths().iter().any(|(name, _)| name.is_empty()),
        "hybrid hosts join cgroup2 too"
    );
    for (_, dir) in t.cg.paths() {
        assert!(dir.is_dir(), "{dir:?}");
    }

    let features = Features::detect(&layout);
    assert!(
        features.memory_limit && features.cpu_shares && features.cpuset && features.pids,
        "{features:?}"
    );
    let mut r = json!({
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 10},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]
    });
    if features.swap_limit {
        r["memory"]["swap"] = json!(128 * MIB);
    }
    let disk = block_device();
    if let Some((major, minor)) = disk.filter(|_| features.blkio_read_bps) {
        r["blockIO"]["throttleReadBpsDevice"] =
            json!([{"major": major, "minor": minor, "rate": 1048576}]);
    }
    t.cg.apply(&resources(r.clone())).unwrap();

    let memory = t.dir("memory");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    if features.swap_limit {
        assert_eq!(
            read(&memory, "memory.memsw.limit_in_bytes"),
            (128 * MIB).to_string()
        );
    } else {
        let err =
            t.cg.apply(&resources(json!({"memory": {"swap": 128 * MIB}})))
                .unwrap_err();
        assert!(matches!(err, Error::SwapAccountingDisabled { .. }), "{err}");
    }
    assert_eq!(
        read(&memory, "memory.soft_limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(read(&memory, "memory.swappiness"), "10");
    assert!(read(&memory, "memory.oom_control").contains("oom_kill_disable 1"));
    let cpu = t.dir("cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    assert_eq!(read(&t.dir("pids"), "pids.max"), "10");
    check_blkio(&t, &features, disk);
    let devices = read(&t.dir("devices"), "devices.list");
    assert_eq!(
        devices.lines().collect::<Vec<_>>(),
        ["c 1:3 rwm", "c 136:* rw"]
    );

    if features.swap_limit {
        check_memory_resizing(&t.cg, &memory);
    }
    t.cg.apply(&resources(
        json!({"memory": {"limit": -1}, "pids": {"limit": 0}}),
    ))
    .unwrap();
    // v1's "unlimited" (the largest page-aligned i64 for this page size), as the root shows it.
    let unlimited = read(
        &layout.v1_mounts()["memory"].mountpoint,
        "memory.limit_in_bytes",
    );
    assert_eq!(read(&memory, "memory.limit_in_bytes"), unlimited);
    if features.swap_limit {
        assert_eq!(read(&memory, "memory.memsw.limit_in_bytes"), unlimited);
    }
    assert_eq!(read(&t.dir("pids"), "pids.max"), "max");

    let paths = t.cg.paths();
    t.cg.destroy().unwrap();
    for (_, dir) in &paths {
        assert!(!dir.exists(), "{dir:?} left behind");
    }
    t.cg.destroy().unwrap();
}

#[test]
fn v1_process_stats_freeze_and_kill() {
    let Some(layout) = v1_host() else { return };
    let t = TestCgroup::create(&layout, false);
    t.cg.apply(&resources(
        json!({"pids": {"limit": 20}, "memory": {"limit": 256 * MIB}}),
    ))
    .unwrap();
    let mut child = GatedChild::spawn(
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; exec sleep 100",
    );
    t.cg.add_pid(child.pid()).unwrap();
    for (_, dir) in t.cg.paths() {
        assert_eq!(
            read(&dir, "cgroup.procs"),
            child.pid().to_string(),
            "{dir:?}"
        );
    }
    assert_eq!(t.cg.pids().unwrap(), vec![child.pid()]);
    child.release();
    assert_eq!(child.line(), "done");

    let stats = t.cg.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, Some(20));
    assert!(stats.cpu.usage_total_ns > 0, "{stats:?}");
    assert!(
        stats.cpu.usage_user_ns + stats.cpu.usage_system_ns > 0,
        "{stats:?}"
    );
    assert!(stats.memory.usage > 0, "{stats:?}");
    assert_eq!(stats.memory.limit, Some(256 * MIB as u64));
    assert!(stats.memory.raw.contains_key("total_inactive_file"));

    assert!(!t.cg.is_frozen().unwrap());
    t.cg.freeze().unwrap();
    assert!(t.cg.is_frozen().unwrap());
    assert_eq!(read(&t.dir("freezer"), "freezer.state"), "FROZEN");
    t.cg.thaw().unwrap();
    assert!(!t.cg.is_frozen().unwrap());

    t.cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
    assert!(t.cg.pids().unwrap().is_empty());
    t.cg.destroy().unwrap();
}

#[test]
fn v1_device_rules_are_enforced() {
    let Some(layout) = v1_host() else { return };
    let t = TestCgroup::create(&layout, false);
    t.cg.apply(&resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .unwrap();
    let mut child = GatedChild::spawn(
        "if true </dev/zero; then echo zero-ok; else echo zero-denied; fi; if true </dev/null; then echo null-ok; else echo null-denied; fi",
    );
    t.cg.add_pid(child.pid()).unwrap();
    child.release();
    assert_eq!(child.line(), "zero-denied");
    assert_eq!(child.line(), "null-ok");
}

#[test]
fn v1_oom_kill_is_counted() {
    let Some(layout) = v1_host() else { return };
    let t = TestCgroup::create(&layout, false);
    // No room in swap either: memory+swap where the host accounts swap, else swappiness 0.
    let features = Features::detect(&layout);
    let memory = if features.swap_limit {
        json!({"limit": 16 * MIB, "swap": 16 * MIB})
    } else {
        json!({"limit": 16 * MIB, "swappiness": 0})
    };
    t.cg.apply(&resources(json!({ "memory": memory }))).unwrap();
    assert_eq!(t.cg.oom_kill_count().unwrap(), 0);
    let mut child =
        GatedChild::spawn("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived");
    t.cg.add_pid(child.pid()).unwrap();
    child.release();
    assert_eq!(child.line(), "", "the shell must not survive");
    let _ = child.wait_signal();
    assert!(t.cg.oom_kill_count().unwrap() >= 1);
    assert!(t.cg.stats().unwrap().memory.oom_kills >= 1);
}

#[test]
fn v1_rejects_bad_input_before_writing() {
    let Some(layout) = v1_host() else { return };
    assert!(matches!(
        Cgroup::new(&layout, "system.slice:berth:x", "x"),
        Err(Error::SystemdUnsupported { .. })
    ));
    let t = TestCgroup::create(&layout, false);
    let cpuset = t.dir("cpuset");
    let before = read(&cpuset, "cpuset.cpus");
    let err =
        t.cg.apply(&resources(json!({"cpu": {"cpus": "0\n1"}})))
            .unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert_eq!(read(&cpuset, "cpuset.cpus"), before);
    let err =
        t.cg.apply(&resources(
            json!({"memory": {"limit": 64 * MIB, "swap": 32 * MIB}}),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    let err =
        t.cg.apply(&resources(json!({"unified": {"memory.high": "1"}})))
            .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    // Refused either way: a bad page size where hugetlb is mounted, the missing controller where not.
    let err = t.cg.apply(&resources(
        json!({"hugepageLimits": [{"pageSize": "2MB/../../x", "limit": 1}]}),
    ));
    assert!(err.is_err());
    if !layout.v1_mounts().contains_key("net_cls") {
        let err =
            t.cg.apply(&resources(json!({"network": {"classID": 1}})))
                .unwrap_err();
        assert!(matches!(err, Error::ControllerMissing { .. }), "{err}");
    }
    let err =
        t.cg.apply(&resources(json!({"cpu": {"shares": 1024, "period": 1}})))
            .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("cpu.cfs_period_us"), "{err}");
}
