//! The Engine API's request bodies other than create, through berthd's own parsers (berthd is
//! a library): `POST /volumes/create`, `POST /networks/create`, an exec's config turned into
//! its OCI process, and a network endpoint's settings (`POST /networks/{id}/connect` and
//! create's `EndpointsConfig`), `POST /containers/{id}/update` bodies applied to a
//! container, a container config (`POST /commit`'s body, read back as written), and detach
//! keys with the scanner that finds them in a client's stdin. The first byte picks the parser. None may panic, and what each
//! accepts must hold what the daemon relies on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

use berthd::model::ids::valid_name;
use berthd::net::Network;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        5 => {
            // What berthd writes of a config it accepted reads back the same.
            let Ok(c) = serde_json::from_slice::<berth_api::config::ContainerConfig>(body) else {
                return;
            };
            let written = serde_json::to_vec(&c).expect("a config serializes");
            let back: berth_api::config::ContainerConfig =
                serde_json::from_slice(&written).expect("a written config reads back");
            assert_eq!(back, c);
        }
        6 => {
            // Keys, then a stream: fed whole or a byte at a time, the scanner agrees.
            let text = String::from_utf8_lossy(body);
            let (spec, stream) = text.split_once('\n').unwrap_or((&text, ""));
            let Ok(keys) = berth_api::query::detach_keys(spec) else {
                return;
            };
            assert!(!keys.is_empty());
            let mut whole = berth_api::query::DetachScanner::new(keys.clone());
            let at_once = whole.feed(stream.as_bytes());
            let mut bytewise = berth_api::query::DetachScanner::new(keys.clone());
            let mut out = Vec::new();
            let mut detached = false;
            for b in stream.as_bytes() {
                let (pass, d) = bytewise.feed(std::slice::from_ref(b));
                out.extend(pass);
                if d {
                    detached = true;
                    break;
                }
            }
            assert_eq!(at_once, (out.clone(), detached));
            // Nothing is passed on that was not typed, and without the keys all of it is.
            assert!(out.len() <= stream.len());
            if !detached {
                let held = stream.len() - out.len();
                assert!(held < keys.len(), "{held} bytes held back");
                assert_eq!(out, stream.as_bytes()[..out.len()]);
            }
        }
        0 => {
            if let Ok(v) = berthd::api::volumes::parse_create(body) {
                assert!(valid_name(&v.name), "volume name {:?}", v.name);
            }
        }
        1 => {
            if let Ok(n) = berthd::api::networks::parse_create(body) {
                let ok = !n.name.trim().is_empty() && !n.name.chars().any(char::is_control);
                assert!(ok, "network name {:?}", n.name);
            }
        }
        2 => {
            let Ok(c) = serde_json::from_slice::<berth_api::models::ExecConfig>(body) else {
                return;
            };
            let base: oci_spec::runtime::Process = serde_json::from_value(
                json!({"args": ["sh"], "env": ["PATH=/bin", "HOME=/root"], "cwd": "/",
                    "user": {"uid": 0, "gid": 0}}),
            )
            .expect("a process");
            if let Ok(p) = berthd::engine::exec::process_spec(&base, &c, "/nonexistent") {
                assert_eq!(p.args().clone().unwrap_or_default(), c.cmd.clone().unwrap_or_default());
                let env: Vec<&str> = p.env().iter().flatten().map(String::as_str).collect();
                let mut keys: Vec<&str> = env.iter().map(|e| e.split('=').next().unwrap()).collect();
                assert!(env.iter().all(|e| e.contains('=')), "{env:?}");
                keys.sort_unstable();
                let n = keys.len();
                keys.dedup();
                assert_eq!(keys.len(), n, "a variable set twice: {env:?}");
            }
        }
        4 => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            static HOST: std::sync::OnceLock<berthd::oci::sysinfo::SysInfo> =
                std::sync::OnceLock::new();
            let si = HOST.get_or_init(berthd::oci::sysinfo::SysInfo::detect);
            let Ok(checked) = berthd::engine::update::check(si, v) else {
                return;
            };
            let mut hc = berth_api::host_config::HostConfig::default();
            hc.restart_policy.name = "no".into();
            let auto_remove = which & 0x80 != 0;
            if let Ok(u) = berthd::engine::update::apply(checked, &hc, None, auto_remove) {
                assert!(u.resources.devices().is_some(), "{:?}", u.resources);
                let policy = berthd::engine::create::restart_policy(&u.host_config.restart_policy)
                    .expect("an applied update keeps a valid restart policy");
                assert!(!auto_remove || matches!(policy.as_str(), "" | "no"));
            }
        }
        _ => {
            let Ok(cfg) = serde_json::from_slice::<berth_api::models::EndpointSettings>(body) else {
                return;
            };
            let mut user = Network::new("user", "bridge");
            user.subnet = "172.30.0.0/24".into();
            for net in [user, Network::new("bridge", "bridge")] {
                if let Ok(a) = berthd::engine::endpoints::attachment_from(&net, &cfg) {
                    if !a.ipv4.is_empty() {
                        let ip: std::net::Ipv4Addr = a.ipv4.parse().expect("a checked address");
                        assert!(net.user_defined_bridge());
                        assert_eq!(ip.octets()[..3], [172, 30, 0]);
                    }
                }
            }
        }
    }
});
