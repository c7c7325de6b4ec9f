//! Manifests, indexes and image configs from a registry or an archive: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 5] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let _ = berth_image::manifest::parse(TYPES[usize::from(pick) % TYPES.len()], bytes);
    let _ = berth_image::manifest::ImageConfig::parse(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = berth_image::manifest::Platform::parse(s);
    }
});
