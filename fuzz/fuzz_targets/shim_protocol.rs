//! The shim's socket protocol (one JSON line per request, from berth-containerd or any local
//! root client), through the `berth-shim-protocol` crate both ends use: parsing never panics, a
//! request that parses prints back to one that parses the same, and any JSON read as an answer
//! gives an error kind or none, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

use berth_shim_protocol::{Request, error_of};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = error_of(&v);
    }
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let printed = serde_json::to_string(&req).expect("a parsed request prints");
    let again: Request = serde_json::from_str(&printed).expect("a printed request parses");
    assert_eq!(format!("{req:?}"), format!("{again:?}"));
});
