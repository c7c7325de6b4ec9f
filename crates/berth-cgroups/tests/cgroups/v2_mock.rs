//! cgroup v2 file logic against a temporary directory shaped like a cgroup2 tree.

use std::fs;

use berth_cgroups::{Cgroup, Error, Layout, Version};
use serde_json::json;

use crate::common::{read, resources};

const LEAF_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.freeze",
    "cgroup.events",
    "cgroup.kill",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpu.stat",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.swap.max",
    "memory.swap.current",
    "memory.current",
    "memory.peak",
    "memory.stat",
    "memory.events",
    "pids.max",
    "pids.current",
    "io.weight",
    "io.max",
    "io.stat",
    "hugetlb.2MB.max",
    "rdma.max",
];

/// A root with controllers, and `/berth` already delegating `cpu` only.
fn mock_tree() -> (tempfile::TempDir, Cgroup) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma\n",
    )
    .unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    fs::create_dir(root.join("berth")).unwrap();
    fs::write(root.join("berth/cgroup.controllers"), "cpu memory\n").unwrap();
    fs::write(root.join("berth/cgroup.subtree_control"), "cpu\n").unwrap();
    let layout = Layout::v2_at(root.to_path_buf());
    assert_eq!(layout.version(), Version::V2);
    let cg = Cgroup::new(&layout, "/berth/c1", "c1").unwrap();
    cg.create().unwrap();
    let leaf = root.join("berth/c1");
    for file in LEAF_FILES {
        fs::write(leaf.join(file), "").unwrap();
    }
    (tmp, cg)
}

fn leaf(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    tmp.path().join("berth/c1")
}

#[test]
fn v2_create_delegates_controllers_in_every_parent() {
    let (tmp, cg) = mock_tree();
    assert_eq!(
        read(tmp.path(), "cgroup.subtree_control"),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    );
    assert_eq!(
        read(&tmp.path().join("berth"), "cgroup.subtree_control"),
        "+memory"
    );
    assert_eq!(cg.paths(), vec![(String::new(), leaf(&tmp))]);
}

#[test]
fn v2_apply_writes_converted_values() {
    let (tmp, cg) = mock_tree();
    let r = resources(json!({
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432, "disableOOMKiller": false, "kernel": 0},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}},
        "unified": {"memory.high": "50000000"}
    }));
    cg.apply(&r).unwrap();
    let dir = leaf(&tmp);
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "67108864");
    assert_eq!(read(&dir, "memory.low"), "33554432");
    assert_eq!(read(&dir, "memory.high"), "50000000");
    assert_eq!(read(&dir, "cpu.weight"), "39");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.max.burst"), "1000");
    assert_eq!(read(&dir, "cpu.idle"), "0");
    assert_eq!(read(&dir, "cpuset.cpus"), "0-1");
    assert_eq!(read(&dir, "cpuset.mems"), "0");
    assert_eq!(read(&dir, "pids.max"), "max");
    assert_eq!(read(&dir, "io.weight"), "default 4950");
    assert_eq!(read(&dir, "io.max"), "8:0 wiops=100");
    assert_eq!(read(&dir, "hugetlb.2MB.max"), "4194304");
    // A page size the kernel does not offer is refused (runc fails too), and never created.
    let err = cg
        .apply(&resources(
            json!({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::NotSupported { .. }), "{err}");
    assert!(!dir.join("hugetlb.1GB.max").exists());
    assert_eq!(
        read(&dir, "rdma.max"),
        "mlx5_0 hca_handle=3 hca_object=1000"
    );

    cg.apply(&resources(
        json!({"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 50000}}),
    ))
    .unwrap();
    assert_eq!(read(&dir, "memory.max"), "max");
    assert_eq!(read(&dir, "memory.swap.max"), "max");
    assert_eq!(read(&dir, "cpu.max"), "max 50000");

    // With BFQ present, the v1 weight goes there unconverted.
    fs::write(dir.join("io.bfq.weight"), "").unwrap();
    cg.apply(&resources(json!({"blockIO": {"weight": 500}})))
        .unwrap();
    assert_eq!(read(&dir, "io.bfq.weight"), "500");
}

#[test]
fn v2_rejects_bad_values() {
    let (tmp, cg) = mock_tree();
    let dir = leaf(&tmp);
    let bad = |r: serde_json::Value| cg.apply(&resources(r)).unwrap_err();
    assert!(matches!(
        bad(json!({"memory": {"swap": 100}})),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        bad(json!({"memory": {"limit": 200, "swap": 100}})),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        bad(json!({"unified": {"../escape": "1"}})),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        bad(json!({"unified": {"memory.high": "1\nmax"}})),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        bad(json!({"cpu": {"mems": "0 1"}})),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        bad(json!({"cpu": {"realtimeRuntime": 100}})),
        Error::Unsupported { .. }
    ));
    assert!(matches!(
        bad(json!({"unified": {"nonexistent.file": "1"}})),
        Error::NotSupported { .. }
    ));
    assert!(!tmp.path().join("escape").exists());
    assert_eq!(read(&dir, "memory.high"), "");
    fs::remove_file(dir.join("memory.swap.max")).unwrap();
    assert!(matches!(
        bad(json!({"memory": {"limit": 100, "swap": 200}})),
        Error::SwapAccountingDisabled { .. }
    ));
    cg.apply(&resources(json!({"memory": {"limit": 100, "swap": -1}})))
        .unwrap();
}

#[test]
fn v2_refuses_a_set_value_it_has_no_file_for() {
    let (tmp, cg) = mock_tree();
    let dir = leaf(&tmp);
    let cases = [
        (
            json!({"memory": {"limit": 4096, "swappiness": 10}}),
            "memory.swappiness",
        ),
        (json!({"memory": {"swappiness": 0}}), "memory.swappiness"),
        (
            json!({"memory": {"limit": 4096, "disableOOMKiller": true}}),
            "memory.disableOOMKiller",
        ),
        (json!({"memory": {"kernel": 1048576}}), "memory.kernel"),
        (
            json!({"memory": {"kernelTCP": 1048576}}),
            "memory.kernelTCP",
        ),
        (json!({"network": {"classID": 1048577}}), "network.classID"),
        (
            json!({"network": {"priorities": [{"name": "eth0", "priority": 5}]}}),
            "network.priorities",
        ),
        (
            json!({"blockIO": {"leafWeight": 300}}),
            "blockIO leafWeight",
        ),
    ];
    for (r, setting) in cases {
        let err = cg.apply(&resources(r.clone())).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{r}: {err}");
        assert!(err.to_string().contains(setting), "{r}: {err}");
        assert!(err.to_string().contains("cgroup v2"), "{r}: {err}");
    }
    // Refused before anything is written.
    assert_eq!(read(&dir, "memory.max"), "");
    // Values equal to "unset", as Docker's daemon may pass them, are accepted.
    cg.apply(&resources(json!({
        "memory": {"limit": 4096, "disableOOMKiller": false, "kernel": 0, "kernelTCP": 0},
        "network": {"priorities": []},
        "blockIO": {"leafWeight": 0}
    })))
    .unwrap();
    assert_eq!(read(&dir, "memory.max"), "4096");
}

#[test]
fn v2_freeze_stats_pids_and_kill_files() {
    let (tmp, cg) = mock_tree();
    let dir = leaf(&tmp);
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze().unwrap();
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(cg.is_frozen().unwrap());
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    cg.thaw().unwrap();
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    assert!(!cg.is_frozen().unwrap());

    fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n").unwrap();
    fs::write(dir.join("memory.current"), "4096\n").unwrap();
    fs::write(dir.join("memory.peak"), "8192\n").unwrap();
    fs::write(dir.join("memory.max"), "max\n").unwrap();
    fs::write(
        dir.join("memory.stat"),
        "anon 1024\nfile 2048\ninactive_file 512\n",
    )
    .unwrap();
    fs::write(dir.join("memory.swap.current"), "0\n").unwrap();
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
    )
    .unwrap();
    fs::write(dir.join("pids.current"), "2\n").unwrap();
    fs::write(dir.join("pids.max"), "100\n").unwrap();
    fs::write(
        dir.join("io.stat"),
        "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    )
    .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(
        (
            s.cpu.usage_total_ns,
            s.cpu.usage_user_ns,
            s.cpu.usage_system_ns
        ),
        (1_500_000, 1_000_000, 500_000)
    );
    assert_eq!(
        (
            s.cpu.nr_periods,
            s.cpu.nr_throttled,
            s.cpu.throttled_time_ns
        ),
        (4, 1, 20_000)
    );
    assert_eq!(
        (s.memory.usage, s.memory.max_usage, s.memory.limit),
        (4096, 8192, None)
    );
    assert_eq!(
        (s.memory.cache, s.memory.inactive_file, s.memory.oom_kills),
        (2048, 512, 1)
    );
    assert_eq!((s.pids.current, s.pids.limit), (2, Some(100)));
    assert_eq!((s.io.read_bytes, s.io.write_bytes), (10, 20));
    assert_eq!(cg.oom_kill_count().unwrap(), 1);

    fs::write(dir.join("cgroup.procs"), "12\n13\n").unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/cgroup.procs"), "14\n").unwrap();
    let mut pids = cg.pids().unwrap();
    pids.sort();
    assert_eq!(pids, vec![12, 13, 14]);

    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(read(&dir, "cgroup.kill"), "1");
}

#[test]
fn v2_freeze_times_out_and_thaws_back() {
    let (tmp, cg) = mock_tree();
    let dir = leaf(&tmp);
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let err = cg.freeze().unwrap_err();
    assert!(matches!(err, Error::FreezeTimeout { .. }), "{err}");
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
}
