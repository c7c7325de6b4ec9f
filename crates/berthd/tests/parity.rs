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

#[test]
fn container_prune_honours_its_filters_and_reports_the_space() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&[
        "run",
        "--name",
        "big",
        "--label",
        "team=a",
        &image,
        "sh",
        "-c",
        "dd if=/dev/zero of=/blob bs=1024 count=256 2>/dev/null",
    ]);
    d.docker_ok(&[
        "run", "--name", "other", "--label", "team=b", &image, "true",
    ]);
    d.docker_ok(&["run", "--name", "plain", &image, "true"]);
    let (status, _, body) = d.raw(
        "POST",
        "/containers/prune?filters=%7B%22label%22%3A%5B%22team%3Da%22%5D%7D",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["ContainersDeleted"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert!(
        v["SpaceReclaimed"].as_i64().unwrap() >= 256 * 1024,
        "{body}"
    );
    let mut left: Vec<String> = d
        .docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect();
    left.sort();
    assert_eq!(left, ["other", "plain"]);
    // label! keeps the labelled ones; until in the past selects none.
    d.docker_ok(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "until=2000-01-01T00:00:00Z",
    ]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 2);
    d.docker_ok(&["container", "prune", "-f", "--filter", "label!=team"]);
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "other"
    );
    let (status, _, _) = d.raw(
        "POST",
        "/containers/prune?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(status, 400);
    d.docker_ok(&["rm", "other"]);
}

#[test]
fn volume_prune_honours_its_label_filters() {
    let d = Berthd::start();
    d.docker_ok(&["volume", "create", "--label", "keep=yes", "kept"]);
    d.docker_ok(&["volume", "create", "--label", "keep=no", "dropped"]);
    // The 20.10 CLI speaks API 1.41, where prune takes every unused volume the filters select.
    d.docker_ok(&["volume", "prune", "-f", "--filter", "label=keep=no"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "kept");
    d.docker_ok(&["volume", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "kept");
    // API 1.45 without `all`: anonymous volumes only.
    let (status, _, body) = d.raw("POST", "/v1.45/volumes/prune", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "kept");
    d.docker_ok(&["volume", "rm", "kept"]);
}

#[test]
fn create_checks_limits_and_log_drivers_as_dockerd() {
    let (_reg, d, image) = common::daemon_with_image();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let range =
        format!("Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available");
    let too_many = format!("{}", (cpus as i64 + 1) * 1_000_000_000);
    for (host_config, want) in [
        (
            r#"{"ShmSize":-1}"#.to_string(),
            "SHM size can not be less than 0".to_string(),
        ),
        (r#"{"NanoCpus":-1}"#.to_string(), range.clone()),
        (
            r#"{"CpuShares":-2}"#.to_string(),
            "invalid CPU shares (-2): value must be a positive integer".to_string(),
        ),
        (format!(r#"{{"NanoCpus":{too_many}}}"#), range.clone()),
        (
            r#"{"LogConfig":{"Type":"nosuch"}}"#.to_string(),
            r#"error looking up logging plugin nosuch: plugin "nosuch" not found"#.to_string(),
        ),
        (
            r#"{"LogConfig":{"Type":"syslog"}}"#.to_string(),
            "logging driver syslog is not supported by berthd".to_string(),
        ),
    ] {
        let body = format!(r#"{{"Image":"{image}","Cmd":["true"],"HostConfig":{host_config}}}"#);
        let (status, _, answer) = d.raw("POST", "/containers/create", body.as_bytes());
        assert_eq!(status, 400, "{host_config}: {answer}");
        let message: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let message = message["message"].as_str().unwrap_or_default();
        assert!(message.contains(&want), "{host_config}: {answer}");
    }
    // A config field of the wrong JSON type is refused, as dockerd's decoder refuses it.
    let body = format!(r#"{{"Image":"{image}","Cmd":["true"],"Env":"A=1"}}"#);
    let (status, _, answer) = d.raw("POST", "/containers/create", body.as_bytes());
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "a refused create left a container"
    );
    // A negative pids limit is no limit; an empty log type is the default with its options.
    let body = format!(
        r#"{{"Image":"{image}","Cmd":["true"],"HostConfig":{{"PidsLimit":-5,"LogConfig":{{"Type":"","Config":{{"max-size":"1m"}}}}}}}}"#
    );
    let (status, _, answer) = d.raw("POST", "/containers/create?name=norm", body.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let got = d.docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PidsLimit}} {{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}} {{.HostConfig.Runtime}}",
        "norm",
    ]);
    assert_eq!(got.trim(), r#"null json-file {"max-size":"1m"} berth-runc"#);
    d.docker_ok(&["rm", "norm"]);
}

#[test]
fn kill_returns_once_the_exit_is_recorded() {
    let (_reg, d, image) = common::daemon_with_image();
    for i in 0..5 {
        let name = format!("k{i}");
        d.docker_ok(&["run", "-d", "--name", &name, &image, "sleep", "1000"]);
        let (status, _, body) = d.raw("POST", &format!("/containers/{name}/kill"), b"");
        assert_eq!(status, 204, "{body}");
        let (_, _, inspect) = d.raw("GET", &format!("/containers/{name}/json"), b"");
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["State"]["Running"], false, "{inspect}");
        assert_eq!(v["State"]["ExitCode"], 137, "{inspect}");
        let (status, _, body) = d.raw("DELETE", &format!("/containers/{name}"), b"");
        assert_eq!(status, 204, "a plain remove right after kill: {body}");
    }
}

#[test]
fn attach_with_logs_and_no_stream_sends_the_logs_and_closes() {
    use std::io::{Read, Write};
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&[
        "run",
        "--name",
        "done",
        &image,
        "sh",
        "-c",
        "echo one; echo two >&2",
    ]);
    let mut s = std::os::unix::net::UnixStream::connect(d.roots.api_socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(
        b"POST /v1.41/containers/done/attach?logs=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
    )
    .unwrap();
    let mut all = Vec::new();
    // Without the fix the stream never ends and the read times out.
    s.read_to_end(&mut all)
        .expect("the attach ends after the logs");
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        all.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&all)
    );
    let body = &all[head_end..];
    // Two stdcopy frames, stdout "one\n" and stderr "two\n" (the two pumps may log them in
    // either order).
    let mut frames = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 {
        let n = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        frames.push((rest[0], rest[8..8 + n].to_vec()));
        rest = &rest[8 + n..];
    }
    frames.sort();
    assert_eq!(frames, [(1, b"one\n".to_vec()), (2, b"two\n".to_vec())]);
    d.docker_ok(&["rm", "done"]);
}

#[test]
fn dns_servers_search_and_options_reach_resolv_conf() {
    let (_reg, d, image) = common::daemon_with_image();
    let dns = [
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "a.test",
        "--dns-search",
        "b.test",
        "--dns-option",
        "timeout:3",
    ];
    let run = |net: &str| {
        let mut args = vec!["run", "--rm", "--network", net];
        args.extend(dns);
        args.extend([image.as_str(), "cat", "/etc/resolv.conf"]);
        d.docker_ok(&args)
    };
    assert_eq!(
        run("none"),
        "search a.test b.test\nnameserver 10.9.9.9\noptions timeout:3\n"
    );
    // On a user-defined network the network's own DNS server answers; search and options stay.
    let sub = berth_testkit::alloc::Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "dnsnet"]);
    let gateway = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "dnsnet",
    ]);
    assert_eq!(
        run("dnsnet"),
        format!(
            "search a.test b.test\nnameserver {}\noptions timeout:3 ndots:0\n",
            gateway.trim()
        )
    );
    d.docker_ok(&["network", "rm", "dnsnet"]);
}

#[test]
fn the_none_log_driver_keeps_no_log_and_says_so() {
    let (_reg, d, image) = common::daemon_with_image();
    // Attached clients still get the output.
    let out = d.docker_ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        &image,
        "echo",
        "hello",
    ]);
    assert_eq!(out, "hello\n");
    let logs = d.docker(&["logs", "quiet"]);
    assert!(!logs.status.success());
    let err = String::from_utf8_lossy(&logs.stderr);
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    let (status, _, _) = d.raw("GET", "/containers/quiet/logs?stdout=1", b"");
    assert_eq!(status, 501);
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.LogPath}}|{{.HostConfig.LogConfig.Type}}",
            "quiet"
        ])
        .trim(),
        "|none"
    );
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "quiet"]);
    let dir = d.roots.data_root().join("containers").join(id.trim());
    let logs_kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .collect();
    assert!(logs_kept.is_empty(), "{logs_kept:?}");
    d.docker_ok(&["rm", "quiet"]);
}

#[test]
fn names_and_bodies_are_checked_as_dockerd_checks_them() {
    let d = Berthd::start();
    // A network name may hold a space (libnetwork's rule is "not blank").
    let sub = berth_testkit::alloc::Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "my net"]);
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Name}}", "my net"])
            .trim(),
        "my net"
    );
    d.docker_ok(&["network", "rm", "my net"]);
    for blank in [r#"{"Name":" "}"#, r#"{"Name":"a\nb"}"#] {
        let (status, _, answer) = d.raw("POST", "/networks/create", blank.as_bytes());
        assert_eq!(status, 400, "{blank}: {answer}");
    }
    // A volume name of the wrong JSON type is refused, and nothing is made.
    let (status, _, answer) = d.raw("POST", "/volumes/create", br#"{"Name": 5}"#);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");
}

/// Sends `request` on a new API connection, waits for its 101, types `typed` and then
/// `keys`, and returns what came back once the server closes (a read that never ends fails).
fn hijack_and_detach(d: &Berthd, request: &str, typed: &[u8], keys: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.roots.api_socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !all.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("the upgrade answer");
        assert!(n > 0, "closed before the upgrade");
        all.extend_from_slice(&buf[..n]);
    }
    assert!(
        all.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&all)
    );
    s.write_all(typed).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.write_all(keys).unwrap();
    s.read_to_end(&mut all)
        .expect("the server closes the connection at the detach keys");
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn detach_keys_end_attach_and_exec_and_leave_the_process_running() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&["run", "-dit", "--name", "term", &image, "sh"]);
    let attach = |query: &str| {
        format!(
            "POST /v1.41/containers/term/attach?stream=1&stdin=1&stdout=1{query} HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"
        )
    };
    let running = || d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "term"]);
    // ctrl-p ctrl-q by default.
    let out = hijack_and_detach(&d, &attach(""), b"echo one\n", b"\x10\x11");
    assert!(out.contains("one"), "{out}");
    assert_eq!(running().trim(), "true");
    // The client's own keys; the first key alone is typed on.
    let out = hijack_and_detach(&d, &attach("&detachKeys=ctrl-x,y"), b"echo two\n", b"\x18y");
    assert!(out.contains("two"), "{out}");
    assert_eq!(running().trim(), "true");
    let (status, _, body) = d.raw(
        "POST",
        "/containers/term/attach?stream=1&stdin=1&detachKeys=ctrl-pp",
        b"",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Invalid detach keys (ctrl-pp) provided"),
        "{body}"
    );
    // An exec's keys come from its create body; the exec goes on after the detach.
    let (status, _, body) = d.raw(
        "POST",
        "/containers/term/exec",
        br#"{"Cmd":["cat"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"DetachKeys":"ctrl-x"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let exec = v["Id"].as_str().unwrap().to_string();
    let start = format!(
        "POST /v1.41/exec/{exec}/start HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{{\"Tty\":true}}"
    );
    let out = hijack_and_detach(&d, &start, b"three\n", b"\x18");
    assert!(out.contains("three"), "{out}");
    let (_, _, body) = d.raw("GET", &format!("/exec/{exec}/json"), b"");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], true, "{body}");
    // As dockerd: no exit code while it runs (null, not absent), and its own keys shown.
    assert!(
        v.get("ExitCode").is_some_and(serde_json::Value::is_null),
        "{body}"
    );
    assert_eq!(v["DetachKeys"], "ctrl-x", "{body}");
    d.docker_ok(&["rm", "-f", "term"]);
}

#[test]
fn legacy_links_give_hosts_entries_and_variables_and_can_be_removed() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&[
        "run", "-d", "--name", "web", "-e", "FOO=1", "--expose", "80", &image, "sleep", "300",
    ]);
    let ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    let ip = ip.trim();
    let hostname = d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "web"]);
    let out = d.docker_ok(&[
        "run",
        "--name",
        "app",
        "--link",
        "web:db",
        &image,
        "sh",
        "-c",
        "env; cat /etc/hosts",
    ]);
    for want in [
        format!("DB_PORT=tcp://{ip}:80"),
        format!("DB_PORT_80_TCP_ADDR={ip}"),
        "DB_PORT_80_TCP_PROTO=tcp".to_string(),
        "DB_NAME=/app/db".to_string(),
        "DB_ENV_FOO=1".to_string(),
        format!("{ip}\tdb {} web", hostname.trim()),
    ] {
        assert!(out.contains(&want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("DB_ENV_PATH"), "{out}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "app"])
            .trim(),
        r#"["/web:/app/db"]"#
    );
    // The linked container is listed under the link's name too, until the link goes.
    let names = |d: &Berthd| {
        let (_, _, body) = d.raw("GET", "/containers/json?all=1", b"");
        let body = body
            .lines()
            .find(|l| l.starts_with('['))
            .unwrap_or("[]")
            .to_string();
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        list.iter()
            .flat_map(|c| c["Names"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert!(
        names(&d).contains(&"/app/db".to_string()),
        "{:?}",
        names(&d)
    );
    d.docker_ok(&["rm", "--link", "/app/db"]);
    assert!(!names(&d).contains(&"/app/db".to_string()));
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).lines().count(),
        2,
        "removing a link removed a container"
    );
    // A link to nothing is refused at create; to a stopped container, at start.
    let none = d.docker(&["create", "--link", "nosuch:x", &image, "true"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("could not get container for nosuch"));
    d.docker_ok(&["stop", "-t", "0", "web"]);
    let stopped = d.docker(&["run", "--rm", "--link", "web:db", &image, "true"]);
    let err = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        err.contains("Cannot link to a non running container"),
        "{err}"
    );
    let host = d.docker(&[
        "create",
        "--network",
        "host",
        "--link",
        "web:db",
        &image,
        "true",
    ]);
    assert!(!host.status.success());
    d.docker_ok(&["rm", "-f", "web", "app"]);
}

#[test]
fn connect_keeps_the_endpoint_settings_it_is_given() {
    let (_reg, d, image) = common::daemon_with_image();
    let sub = berth_testkit::alloc::Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "epnet"]);
    d.docker_ok(&["create", "--name", "ep", &image, "true"]);
    let network = sub.cidr().split('/').next().unwrap().to_string();
    let ip = format!("{}.9", network.rsplit_once('.').unwrap().0);
    let body = format!(
        r#"{{"Container":"ep","EndpointConfig":{{"Links":["web:bar"],"DriverOpts":{{"k":"v"}},"MacAddress":"02:42:ac:11:00:99","IPAMConfig":{{"IPv4Address":"{ip}"}}}}}}"#
    );
    let (status, _, answer) = d.raw("POST", "/networks/epnet/connect", body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let got = d.docker_ok(&[
        "inspect",
        "-f",
        "{{with index .NetworkSettings.Networks \"epnet\"}}{{json .Links}} {{json .DriverOpts}} {{.MacAddress}} {{.IPAMConfig.IPv4Address}}{{end}}",
        "ep",
    ]);
    assert_eq!(
        got.trim(),
        format!(r#"["web:bar"] {{"k":"v"}} 02:42:ac:11:00:99 {ip}"#)
    );
    d.docker_ok(&["rm", "ep"]);
    d.docker_ok(&["network", "rm", "epnet"]);
}

#[test]
fn a_container_between_policy_restarts_is_restarting_and_refuses_a_plain_rm() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flap",
        "--restart",
        "always",
        &image,
        "sh",
        "-c",
        "exit 3",
    ]);
    // After a few quick restarts the back-off is seconds long: catch it waiting.
    let state = || {
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.Running}} {{.State.Restarting}} {{.State.ExitCode}}",
            "flap",
        ])
    };
    let mut s = String::new();
    berth_testkit::wait_for(
        std::time::Duration::from_secs(60),
        "a wait for a policy restart",
        || {
            s = state();
            let mut f = s.split_whitespace();
            let count: u32 = f.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            count >= 5 && f.next() == Some("restarting")
        },
    )
    .unwrap();
    assert!(s.trim().ends_with("restarting true true 3"), "{s}");
    let rm = d.docker(&["rm", "flap"]);
    let err = String::from_utf8_lossy(&rm.stderr);
    assert!(
        err.contains("You cannot remove a restarting container"),
        "{err}"
    );
    assert!(
        d.docker_ok(&["ps", "--format", "{{.Status}}"])
            .starts_with("Restarting (3)")
    );
    // A stop calls the restart off: it stays exited.
    d.docker_ok(&["stop", "flap"]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(
        state().trim().ends_with("exited false false 3"),
        "{}",
        state()
    );
    d.docker_ok(&["rm", "flap"]);
}

#[test]
fn bind_propagation_is_applied_and_shown() {
    use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
    let (_reg, d, image) = common::daemon_with_image();
    // An rshared bind needs a shared source (dockerd checks it): a tmpfs of the test's own.
    let dir = tempfile::tempdir().unwrap();
    rustix::mount::mount("tmpfs", dir.path(), "tmpfs", MountFlags::empty(), None).unwrap();
    rustix::mount::mount_change(dir.path(), MountPropagationFlags::SHARED).unwrap();
    let bind = format!("{}:/m:rshared", dir.path().display());
    d.docker_ok(&[
        "run", "-d", "--name", "prop", "-v", &bind, &image, "sleep", "60",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Mode}} {{.RW}} {{.Propagation}}{{end}}",
            "prop"
        ])
        .trim(),
        "rshared true rshared"
    );
    // A mount made on the host under the source after the start reaches the container.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    rustix::mount::mount("tmpfs", &sub, "tmpfs", MountFlags::empty(), None).unwrap();
    let seen = d.docker(&["exec", "prop", "grep", " /m/sub ", "/proc/self/mountinfo"]);
    let _ = rustix::mount::unmount(&sub, UnmountFlags::DETACH);
    d.docker_ok(&["rm", "-f", "prop"]);
    let _ = rustix::mount::unmount(dir.path(), UnmountFlags::DETACH);
    assert!(
        seen.status.success(),
        "the host's new mount did not propagate into the container"
    );
}

#[test]
fn distribution_inspect_asks_the_registry_and_pulls_nothing() {
    let (_reg, d, image) = common::daemon_with_image();
    let images_before = d.docker_ok(&["images", "-q"]);
    let (status, _, body) = d.raw("GET", &format!("/distribution/{image}:latest/json"), b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let digest = v["Descriptor"]["digest"].as_str().unwrap_or_default();
    assert!(
        digest.starts_with("sha256:") && v["Descriptor"]["size"].as_i64() > Some(0),
        "{v}"
    );
    assert!(
        v["Descriptor"]["mediaType"]
            .as_str()
            .is_some_and(|m| m.contains("manifest")),
        "{v}"
    );
    // The digest is the one a pull records.
    let pulled = d.docker_ok(&["inspect", "-f", "{{index .RepoDigests 0}}", &image]);
    assert!(pulled.trim().ends_with(digest), "{pulled} vs {digest}");
    let arch = berth_image::manifest::Platform::host().architecture;
    assert_eq!(v["Platforms"][0]["architecture"], arch.as_str(), "{v}");
    assert_eq!(v["Platforms"][0]["os"], "linux");
    assert_eq!(d.docker_ok(&["images", "-q"]), images_before);
    let (status, _, body) = d.raw("GET", &format!("/distribution/{image}:nosuchtag/json"), b"");
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = d.raw("GET", "/distribution/json", b"");
    assert_eq!(status, 404);
}

#[test]
fn a_container_reads_its_own_limits_in_its_cgroup_views() {
    let (_reg, d, image) = common::daemon_with_image();
    let v2_only = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = match v2_only {
        true => "/sys/fs/cgroup/memory.max",
        false => "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    };
    let out = d.docker_ok(&["run", "--rm", "-m", "64m", &image, "cat", file]);
    assert_eq!(out.trim(), "67108864", "{file}");
    if !v2_only {
        // Every v1 controller of the host is there, as runc mounts them, read-only.
        let ls = d.docker_ok(&["run", "--rm", &image, "ls", "/sys/fs/cgroup"]);
        for c in ["cpu", "cpuacct", "memory", "pids", "devices"] {
            assert!(ls.split_whitespace().any(|x| x == c), "{c} missing: {ls}");
        }
        // A hybrid host's cgroup2 hierarchy is at `unified`, not over the v1 ones.
        if std::path::Path::new("/sys/fs/cgroup/unified").is_dir() {
            assert!(ls.split_whitespace().any(|x| x == "unified"), "{ls}");
        }
        let w = d.docker(&[
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "echo 1 > /sys/fs/cgroup/pids/pids.max",
        ]);
        assert!(!w.status.success(), "a container wrote its cgroup");
    }
}

#[test]
fn info_counts_the_containers_by_state() {
    let (_reg, d, image) = common::daemon_with_image();
    d.docker_ok(&["create", "--name", "made", &image, "true"]);
    d.docker_ok(&["run", "-d", "--name", "up", &image, "sleep", "60"]);
    d.docker_ok(&["run", "--name", "done", &image, "true"]);
    let (_, _, body) = d.raw("GET", "/info", b"");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let counts = [
        "Containers",
        "ContainersRunning",
        "ContainersPaused",
        "ContainersStopped",
    ]
    .map(|k| v[k].as_u64().unwrap_or(99));
    assert_eq!(counts, [3, 1, 0, 2], "{v}");
    for k in [
        "KernelMemory",
        "CgroupVersion",
        "Swarm",
        "Runtimes",
        "Warnings",
    ] {
        assert!(v.get(k).is_some(), "{k} missing from /info");
    }
    d.docker_ok(&["rm", "-f", "made", "up", "done"]);
}

#[test]
fn a_link_on_a_user_network_is_an_alias_only_its_container_resolves() {
    let (_reg, d, image) = common::daemon_with_image();
    let sub = berth_testkit::alloc::Subnet::reserve().unwrap();
    d.docker_ok(&["network", "create", "--subnet", &sub.cidr(), "lnet"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lnet",
        &image,
        "sh",
        "-c",
        "mkdir /w && echo via-link > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let fetch = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "lnet"];
        args.extend_from_slice(extra);
        args.extend([image.as_str(), "wget", "-qO-", "http://db/"]);
        d.docker(&args)
    };
    let mut got = String::new();
    berth_testkit::wait_for(
        std::time::Duration::from_secs(15),
        "httpd through the link",
        || {
            got = String::from_utf8_lossy(&fetch(&["--link", "web:db"]).stdout).into_owned();
            got == "via-link\n"
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {got:?}"));
    assert!(
        !fetch(&[]).status.success(),
        "a container without the link resolved its alias"
    );
    d.docker_ok(&["rm", "-f", "web"]);
    d.docker_ok(&["network", "rm", "lnet"]);
}

#[test]
fn add_host_entries_reach_etc_hosts_and_bad_ones_are_refused() {
    let (_reg, d, image) = common::daemon_with_image();
    let hosts = d.docker_ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.internal:10.9.8.7",
        "--add-host",
        "gw:host-gateway",
        &image,
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.contains("10.9.8.7\tdb.internal\n"), "{hosts}");
    // host-gateway is the default bridge's address on the host.
    let gateway = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "bridge",
    ]);
    assert!(
        hosts.contains(&format!("{}\tgw\n", gateway.trim())),
        "{hosts}"
    );
    let none = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--add-host",
        "x:10.0.0.1",
        &image,
        "cat",
        "/etc/hosts",
    ]);
    assert!(none.contains("10.0.0.1\tx\n"), "{none}");
    // The docker CLI checks the form itself; the API checks it too.
    let body =
        format!(r#"{{"Image": "{image}", "HostConfig": {{"ExtraHosts": ["db:not-an-ip"]}}}}"#);
    let (status, _, text) = d.raw("POST", "/containers/create", body.as_bytes());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid IP address in add-host"), "{text}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "nothing is left of the refused create"
    );
}

#[test]
fn shared_and_slave_binds_need_a_source_mount_that_can_carry_them() {
    use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
    let (_reg, d, image) = common::daemon_with_image();
    let dir = tempfile::tempdir().unwrap();
    rustix::mount::mount("tmpfs", dir.path(), "tmpfs", MountFlags::empty(), None).unwrap();
    rustix::mount::mount_change(dir.path(), MountPropagationFlags::PRIVATE).unwrap();
    let mut cleanup = berth_testkit::Cleanup::new();
    let point = dir.path().to_path_buf();
    cleanup.defer("unmounting the test's tmpfs", move || {
        Ok(rustix::mount::unmount(&point, UnmountFlags::DETACH)?)
    });
    let src = dir.path().display().to_string();
    for (mode, why) in [
        ("rshared", "but it is not a shared mount."),
        ("rslave", "but it is not a shared or slave mount."),
    ] {
        let bind = format!("{src}:/m:{mode}");
        let out = d.docker(&["create", "-v", &bind, &image, "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{mode} on a private mount was accepted"
        );
        assert!(
            err.contains(&format!("path {src} is mounted on {src} {why}")),
            "{err}"
        );
    }
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "nothing is left of the refusals"
    );
    rustix::mount::mount_change(dir.path(), MountPropagationFlags::SHARED).unwrap();
    let bind = format!("{src}:/m:rslave");
    let id = d.docker_ok(&["create", "-v", &bind, &image, "true"]);
    d.docker_ok(&["rm", id.trim()]);
}
