//! The Engine API's `POST /containers/create` body (with an image's config), decoded as berthd
//! decodes it and through berthd's spec builder, the largest parser of client input in the
//! daemon: it never panics, and every spec it builds is a valid OCI runtime spec (it prints
//! and parses back as one).
#![no_main]
use berth_api::config::ContainerConfig;
use berth_api::host_config::HostConfig;
use berthd::oci::spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The body, and the same JSON as the image's config.
    let Ok(config) = serde_json::from_value::<ContainerConfig>(body.clone()) else {
        return;
    };
    let host = match body.get("HostConfig") {
        None | Some(serde_json::Value::Null) => HostConfig::default(),
        Some(hc) => match serde_json::from_value::<HostConfig>(hc.clone()) {
            Ok(hc) => hc,
            Err(_) => return,
        },
    };
    let image = body
        .get("Image")
        .and_then(|i| serde_json::from_value::<ContainerConfig>(i.clone()).ok())
        .unwrap_or_default();
    let input = spec::SpecInput {
        id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        config: &config,
        host: &host,
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
            panic!("berthd built a spec that is not an OCI spec: {e}");
        }
    }
});
