//! cgroup v2 for real on the controller-less cgroup2 mount of a hybrid host: processes, freeze,
//! cgroup.kill, and device filters (eBPF) that the kernel enforces.

use berth_cgroups::attached_device_programs;
use serde_json::json;

use crate::common::{GatedChild, TestCgroup, resources, v2_unified_host};

#[test]
fn v2_real_process_freeze_and_kill() {
    let Some(layout) = v2_unified_host() else {
        return;
    };
    let t = TestCgroup::create(&layout, true);
    let mut child = GatedChild::spawn("echo started; exec sleep 100");
    t.cg.add_pid(child.pid()).unwrap();
    assert_eq!(t.cg.pids().unwrap(), vec![child.pid()]);
    child.release();
    assert_eq!(child.line(), "started");
    t.cg.freeze().unwrap();
    assert!(t.cg.is_frozen().unwrap());
    t.cg.thaw().unwrap();
    assert!(!t.cg.is_frozen().unwrap());
    t.cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
    t.cg.destroy().unwrap();
    assert!(!t.dir("").exists());
}

#[test]
fn v2_real_signal_other_than_kill_goes_through_freezer() {
    let Some(layout) = v2_unified_host() else {
        return;
    };
    let t = TestCgroup::create(&layout, false);
    let mut child = GatedChild::spawn("echo started; exec sleep 100");
    t.cg.add_pid(child.pid()).unwrap();
    child.release();
    assert_eq!(child.line(), "started");
    t.cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGTERM));
    assert!(!t.cg.is_frozen().unwrap());
}

#[test]
fn v2_real_device_filter_is_enforced_and_replaced() {
    let Some(layout) = v2_unified_host() else {
        return;
    };
    let t = TestCgroup::create(&layout, false);
    let dir = t.dir("");
    let rules = resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]}));
    t.cg.apply(&rules).unwrap();
    assert_eq!(attached_device_programs(&dir).unwrap(), 1);
    // Applying again (an update) replaces the program instead of stacking another.
    t.cg.apply(&rules).unwrap();
    assert_eq!(attached_device_programs(&dir).unwrap(), 1);

    let mut child = GatedChild::spawn(
        "if true </dev/zero; then echo zero-ok; else echo zero-denied; fi; if true </dev/null; then echo null-ok; else echo null-denied; fi",
    );
    t.cg.add_pid(child.pid()).unwrap();
    child.release();
    assert_eq!(child.line(), "zero-denied");
    assert_eq!(child.line(), "null-ok");

    // Allow-by-default with one denied device.
    t.cg.apply(&resources(json!({"devices": [
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]})))
    .unwrap();
    assert_eq!(attached_device_programs(&dir).unwrap(), 1);
    let mut child = GatedChild::spawn(
        "if true </dev/zero; then echo zero-ok; else echo zero-denied; fi; if true </dev/null; then echo null-ok; else echo null-denied; fi; if true >/dev/null; then echo null-w-ok; fi",
    );
    t.cg.add_pid(child.pid()).unwrap();
    child.release();
    assert_eq!(child.line(), "zero-ok");
    assert_eq!(child.line(), "null-denied");
    assert_eq!(child.line(), "null-w-ok");
}
