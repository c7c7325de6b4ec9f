//! The Engine API's `POST /containers/create` body (with an image's config), through berthd's
//! spec builder, the largest parser of client input in the daemon: it never panics, and every
//! spec it builds is a valid OCI runtime spec (it parses as one). The builder and the seccomp
//! profiles it adds are berthd's own source, included as is.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/berthd/src/oci/seccomp_profile.rs"]
mod seccomp_profile;
#[allow(dead_code)]
#[path = "../../crates/berthd/src/oci/spec.rs"]
mod spec;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The body, and the same JSON as the image's config.
    let image = body.get("Image").cloned().unwrap_or_default();
    let input = spec::SpecInput {
        id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        create: &body,
        image_config: &image,
        rootfs: "/nonexistent/rootfs",
        user_root: "/nonexistent/rootfs",
        container_dir: "/nonexistent/container",
        hard_nofile: Some(1 << 20),
        cgroup_parent: "/berth",
        netns_path: None,
        init_path: None,
    };
    if let Ok(built) = spec::build(&input) {
        let text = serde_json::to_vec(&built).expect("a spec prints");
        if let Err(e) = serde_json::from_slice::<oci_spec::runtime::Spec>(&text) {
            panic!("berthd built a spec that is not an OCI spec: {e}: {built}");
        }
    }
});
