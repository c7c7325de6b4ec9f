//! docker-compose (Debian's 1.29, on docker-py) against berthd: a two-service project on its own
//! network — the client finds the web service by its service name, the published port answers
//! the host on 127.0.0.1 — then `down` removes its containers and its network.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use berth_testkit::{BusyboxImage, Registry, wait_for};
use common::Berthd;

const COMPOSE: &str = "/usr/bin/docker-compose";

fn compose(d: &Berthd, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    #[allow(clippy::disallowed_methods)] // the real docker-compose against the daemon under test
    std::process::Command::new(COMPOSE)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("COMPOSE_PROJECT_NAME", "proj")
        // The host user's client configuration (proxies injected into containers, contexts)
        // stays out.
        .env("DOCKER_CONFIG", dir.join(".docker"))
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("COMPOSE_FILE")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "docker-compose failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_compose_project_comes_up_talks_by_service_name_and_goes_down() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb", reg.host());
    let port = berth_testkit::alloc::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "3"
services:
  web:
    image: {image}
    command: sh -c "mkdir /w && echo compose-ok > /w/index.html && httpd -f -p 80 -h /w"
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: {image}
    command: sh -c "until wget -qO- http://web/; do sleep 0.2; done; sleep 300"
    depends_on: [web]
"#
        ),
    )
    .unwrap();
    ok(compose(&d, dir.path(), &["up", "-d"]));
    let mut logs = String::new();
    wait_for(
        Duration::from_secs(20),
        "the client to reach web by name",
        || {
            logs = ok(compose(&d, dir.path(), &["logs", "--no-color", "client"]));
            logs.contains("compose-ok")
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}: {logs}"));
    let mut reply = String::new();
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.ends_with("compose-ok\n"), "{reply}");
    let ps = ok(compose(&d, dir.path(), &["ps"]));
    assert!(
        ps.contains("proj_web_1") && ps.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{ps}"
    );
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|n| n == "proj_default"), "{nets}");
    ok(compose(&d, dir.path(), &["down", "-t", "1"]));
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"]);
}

#[test]
fn compose_builds_a_service_and_runs_it() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb", reg.host());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        format!("FROM {image}\nARG WORD\nRUN echo built-by-compose $WORD > /out\nCMD [\"cat\", \"/out\"]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "version: \"3\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        WORD: \"yes\"\n    image: proj-app:built\n    network_mode: none\n",
    )
    .unwrap();
    ok(compose(&d, dir.path(), &["build"]));
    let out = ok(compose(&d, dir.path(), &["up", "--build", "--no-color"]));
    assert!(out.contains("built-by-compose yes"), "{out}");
    ok(compose(&d, dir.path(), &["down", "--rmi", "local"]));
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}
