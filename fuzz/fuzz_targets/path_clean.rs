//! Mount targets from create requests: `clean` always gives an absolute path without `.`, `..`
//! or empty components, and cleaning twice changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let c = berth_inroot::clean(s);
    assert!(c.starts_with('/'));
    assert!(c == "/" || !c.ends_with('/'));
    assert!(!c.split('/').skip(1).any(|p| p.is_empty() && c != "/" || p == "." || p == ".."));
    assert_eq!(berth_inroot::clean(&c), c);
});
