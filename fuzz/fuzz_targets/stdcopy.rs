//! Docker's stdcopy framing and the API's version prefix: decoding never panics, and what is
//! encoded decodes back.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth_api::stdcopy::decode_frame(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = berth_api::strip_version(s);
    }
    let mut out = Vec::new();
    berth_api::stdcopy::encode_frame(berth_api::stdcopy::Stream::Stdout, data, &mut out);
    let (_, payload, used) = berth_api::stdcopy::decode_frame(&out)
        .expect("an encoded frame decodes")
        .expect("a whole frame");
    assert_eq!(payload, data);
    assert_eq!(used, out.len());
});
