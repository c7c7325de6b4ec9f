//! cgroup v1 for real on this host: create, apply and read back, processes, freezer, stats, devices, OOM.

use berth_cgroups::{Cgroup, Error};
use serde_json::json;

use crate::common::{GatedChild, TestCgroup, read, resources, v1_host};

const MIB: i64 = 1024 * 1024;

/// A real disk's `MAJ:MIN` for throttle rules (not loop/zram/ram devices).
fn real_disk() -> Option<(i64, i64)> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["loop", "zram", "ram"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = std::fs::read_to_string(entry.path().join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        return Some((major.parse().ok()?, minor.parse().ok()?));
    }
    None
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

    let mut r = json!({
        "memory": {"limit": 64 * MIB, "swap": 128 * MIB, "reservation": 32 * MIB, "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 10},
        "blockIO": {"weight": 500},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]
    });
    if let Some((major, minor)) = real_disk() {
        r["blockIO"]["throttleReadBpsDevice"] =
            json!([{"major": major, "minor": minor, "rate": 1048576}]);
    }
    t.cg.apply(&resources(r.clone())).unwrap();

    let memory = t.dir("memory");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (128 * MIB).to_string()
    );
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
    let blkio = t.dir("blkio");
    let weight_file = if blkio.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    assert!(read(&blkio, weight_file).ends_with("500"));
    if let Some((major, minor)) = real_disk() {
        assert_eq!(
            read(&blkio, "blkio.throttle.read_bps_device"),
            format!("{major}:{minor} 1048576")
        );
    }
    let devices = read(&t.dir("devices"), "devices.list");
    assert_eq!(
        devices.lines().collect::<Vec<_>>(),
        ["c 1:3 rwm", "c 136:* rw"]
    );

    // Raising both limits needs memsw written first, lowering needs the limit first.
    t.cg.apply(&resources(
        json!({"memory": {"limit": 256 * MIB, "swap": 512 * MIB}}),
    ))
    .unwrap();
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (256 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (512 * MIB).to_string()
    );
    t.cg.apply(&resources(
        json!({"memory": {"limit": 32 * MIB, "swap": 48 * MIB}}),
    ))
    .unwrap();
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (48 * MIB).to_string()
    );
    t.cg.apply(&resources(
        json!({"memory": {"limit": -1}, "pids": {"limit": 0}}),
    ))
    .unwrap();
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        "9223372036854771712"
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        "9223372036854771712"
    );
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
    t.cg.apply(&resources(
        json!({"memory": {"limit": 16 * MIB, "swap": 16 * MIB}}),
    ))
    .unwrap();
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
    let err = t.cg.apply(&resources(
        json!({"hugepageLimits": [{"pageSize": "2MB/../../x", "limit": 1}]}),
    ));
    // hugetlb is not mounted here, so the (bad) request is ignored like any hugetlb request.
    if layout.v1_mounts().contains_key("hugetlb") {
        assert!(err.is_err());
    }
    let err =
        t.cg.apply(&resources(json!({"cpu": {"shares": 1024, "period": 1}})))
            .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("cpu.cfs_period_us"), "{err}");
}
