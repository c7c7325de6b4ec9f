//! The shim's socket protocol (one JSON line per request, from berth-containerd or any local
//! root client): parsing never panics, and a request that parses prints back to one that
//! parses the same. The protocol module is the shim's own source, included as is.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/berth-shim/src/protocol.rs"]
mod protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<protocol::Request>(data) else {
        return;
    };
    let printed = serde_json::to_string(&req).expect("a parsed request prints");
    let again: protocol::Request =
        serde_json::from_str(&printed).expect("a printed request parses");
    assert_eq!(format!("{req:?}"), format!("{again:?}"));
});
