//! Layer tars (plain or compressed) unpacked into a fresh directory: never a panic, and nothing
//! is ever written outside it (the directory's parent holds only it afterwards).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().expect("a temp dir");
    let dest = outer.path().join("layer");
    std::fs::create_dir(&dest).expect("the layer dir");
    let limits = berth_image::unpack::Limits {
        max_bytes: 16 << 20,
        max_entries: 10_000,
    };
    let _ = berth_image::unpack::unpack(&dest, data, limits);
    let names: Vec<_> = std::fs::read_dir(outer.path())
        .expect("the temp dir")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(names, ["layer"], "an entry was written beside the layer");
});
