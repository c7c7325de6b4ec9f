//! Engine API behaviours SDKs and tools rely on, as a dockerd outside a swarm shows them: the
//! swarm routes answer 503 with dockerd's words (clients' clean-up paths expect exactly that),
//! and `/info` says the node is inactive.

mod common;

use common::Berthd;

const NOT_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

#[test]
fn swarm_routes_answer_as_a_daemon_outside_a_swarm() {
    let d = Berthd::start();
    for (method, path) in [
        ("GET", "/swarm"),
        ("GET", "/v1.41/nodes"),
        ("GET", "/services"),
        ("GET", "/tasks?filters={}"),
        ("GET", "/secrets"),
        ("GET", "/configs"),
        ("POST", "/swarm/init"),
        ("GET", "/services/web"),
    ] {
        let (status, _, body) = d.raw(method, path, b"");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, v["message"].as_str()),
            (503, Some(NOT_MANAGER)),
            "{method} {path}"
        );
    }
    let (status, _, body) = d.raw("POST", "/swarm/leave?force=1", b"");
    assert_eq!(status, 503);
    assert!(body.contains("This node is not part of a swarm"), "{body}");
    // A route that merely starts like one is not swarm's.
    let (status, _, _) = d.raw("GET", "/swarmish", b"");
    assert_eq!(status, 404);
    let out = d.docker(&["node", "ls"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("This node is not a swarm manager"));
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "inactive"
    );
}
