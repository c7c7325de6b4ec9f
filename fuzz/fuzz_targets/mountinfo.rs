//! `/proc/self/mountinfo` text (a container's may be crafted): never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = berth_cgroups::Layout::from_mountinfo(s);
});
