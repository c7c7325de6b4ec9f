//! Image references as users and registries write them: never a panic, and what parses prints
//! back to something that parses to the same reference.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = berth_image::reference::Reference::parse(s) {
        let again = berth_image::reference::Reference::parse(&r.to_string())
            .expect("a parsed reference prints back to a valid one");
        assert_eq!(again.to_string(), r.to_string());
    }
});
