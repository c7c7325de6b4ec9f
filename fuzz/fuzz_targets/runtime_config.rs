//! An OCI `config.json` as berth-runc reads it (the bundle is the caller's, e.g. a CRI or
//! podman user's): parsing and berth-runc's checks before `create` (duplicate namespaces,
//! unsupported properties, what a shared mount namespace cannot do) never panic. The checks
//! are berth-runc's own source, included as is.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/berth-runc/src/validate.rs"]
mod validate;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(data) else {
        return;
    };
    let _ = validate::new_mount_ns(&spec);
    let _ = validate::check(&spec, false);
    let _ = validate::check(&spec, true);
});
