//! DNS queries from containers to the embedded resolver: never a panic, never an answer
//! larger than a UDP DNS message may be.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lookup = |name: &str| {
        (name == "web").then(|| vec![std::net::Ipv4Addr::new(172, 30, 0, 2)])
    };
    if let Some(answer) = berth_net::dns::answer(data, &lookup) {
        assert!(answer.len() <= 512, "an answer of {} bytes", answer.len());
    }
});
