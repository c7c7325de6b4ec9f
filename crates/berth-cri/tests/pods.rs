//! Pods and containers through berth-cri as kubelet drives them, with the CRI v1 client: a pod
//! on a CNI network of the test's own (Debian's bridge, host-local and portmap plugins, a bridge
//! and subnet reserved for the test) runs two containers that share its network, IPC, UTS and
//! PID namespaces; the host reaches it on its IP and on a hostPort through 127.0.0.1; its DNS
//! config and hostname are what it asked for; logs are in the CRI format; ExecSync passes exit
//! codes and times out; the security context is applied; and after the pod is removed nothing
//! of it is left (namespaces, mounts, veths, CNI addresses and port rules, processes).

use std::io::{Read, Write};
use std::time::Duration;

use berth_cri::v1;
use berth_testkit::{BusyboxImage, Registry};

mod common;
use common::{Network, Runtime, Server, sh};

const IMAGE: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";

/// berth-cri with the test's network, a loopback registry as registry.k8s.io's mirror, and a
/// pause image there.
async fn setup(net: &Network) -> (Registry, Server, Runtime) {
    let reg = Registry::start().unwrap();
    let busybox = BusyboxImage::build().unwrap();
    reg.push_image(&busybox, "e2e-test-images/busybox", "1.29-2")
        .unwrap();
    let pause = busybox.with_cmd(&["sleep", "2147483647"]).unwrap();
    reg.push_image(&pause, "pause", "3.9").unwrap();
    let mut flags = net.flags();
    flags.extend([
        "--sandbox-image".into(),
        format!("{}/pause:3.9", reg.host()),
    ]);
    let server = Server::start(&format!("registry.k8s.io=http://{}", reg.host()), &flags);
    let (rt, mut img) = server.clients().await;
    img.pull_image(v1::PullImageRequest {
        image: Some(v1::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    (reg, server, rt)
}

fn pod_config(name: &str, logs: &std::path::Path, host_port: u16) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "test".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: logs.display().to_string(),
        dns_config: Some(v1::DnsConfig {
            servers: vec!["10.9.9.9".into()],
            searches: vec!["pods.test".into()],
            options: vec!["ndots:3".into()],
        }),
        port_mappings: vec![v1::PortMapping {
            protocol: v1::Protocol::Tcp as i32,
            container_port: 80,
            host_port: i32::from(host_port),
            host_ip: String::new(),
        }],
        linux: Some(v1::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

fn container_config(name: &str, cmd: &[&str]) -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(v1::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// Runs a pod sandbox; its id.
async fn run_pod(rt: &mut Runtime, config: &v1::PodSandboxConfig) -> String {
    let req = v1::RunPodSandboxRequest {
        config: Some(config.clone()),
        ..Default::default()
    };
    rt.run_pod_sandbox(req)
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id
}

async fn run(
    rt: &mut Runtime,
    pod: &str,
    pod_config: &v1::PodSandboxConfig,
    c: v1::ContainerConfig,
) -> String {
    let id = rt
        .create_container(v1::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(c),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    rt.start_container(v1::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    id
}

async fn exec(rt: &mut Runtime, id: &str, cmd: &[&str]) -> v1::ExecSyncResponse {
    rt.exec_sync(v1::ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: 10,
    })
    .await
    .unwrap()
    .into_inner()
}

fn http_get(addr: (std::net::IpAddr, u16)) -> String {
    let mut s = std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /name HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_shares_its_namespaces_is_reachable_and_leaves_nothing() {
    let net = Network::new();
    let (_reg, server, mut rt) = setup(&net).await;
    let logs = tempfile::tempdir().unwrap();
    let port = berth_testkit::alloc::free_port().unwrap();
    let config = pod_config("web", logs.path(), port);
    let pod = run_pod(&mut rt, &config).await;
    let serve = "mkdir /w && echo served > /w/name && echo to-out && echo to-err >&2 && \
                 exec httpd -f -p 80 -h /w";
    let web = run(
        &mut rt,
        &pod,
        &config,
        container_config("web", &["sh", "-c", serve]),
    )
    .await;
    let side = run(
        &mut rt,
        &pod,
        &config,
        container_config("side", &["sleep", "3600"]),
    )
    .await;
    let status = rt
        .pod_sandbox_status(v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip: std::net::IpAddr = status.network.unwrap().ip.parse().unwrap();
    let prefix = net.sub.cidr().trim_end_matches(".0/24").to_string();
    assert!(
        ip.to_string().starts_with(&prefix),
        "{ip} not in {}",
        net.sub.cidr()
    );
    // The host reaches the pod on its IP and on the hostPort through 127.0.0.1.
    let mut got = String::new();
    let _ = berth_testkit::wait_for(Duration::from_secs(10), "httpd", || {
        got = http_get((ip, 80));
        got.contains("served")
    });
    assert!(got.contains("served"), "{got}");
    assert!(http_get(([127, 0, 0, 1].into(), port)).contains("served"));
    shares_the_pod(&mut rt, &side).await;
    check_pod_stats(&mut rt, &pod).await;
    check_log(&logs.path().join("web.log"));
    // Stop: the container exits by SIGTERM after its timeout, and is listed as exited.
    rt.stop_container(v1::StopContainerRequest {
        container_id: web.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    let st = rt
        .container_status(v1::ContainerStatusRequest {
            container_id: web.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.state, v1::ContainerState::ContainerExited as i32);
    assert!(st.finished_at >= st.started_at && st.started_at > 0);
    let exited = rt
        .list_containers(v1::ListContainersRequest {
            filter: Some(v1::ContainerFilter {
                state: Some(v1::ContainerStateValue {
                    state: v1::ContainerState::ContainerExited as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        exited.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [web.as_str()]
    );
    remove_and_check_nothing_is_left(&mut rt, &pod, &net, &server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_security_context_is_applied() {
    let net = Network::new();
    let (_reg, _server, mut rt) = setup(&net).await;
    let logs = tempfile::tempdir().unwrap();
    let mut config = pod_config("sec", logs.path(), 0);
    config.port_mappings.clear();
    let pod = run_pod(&mut rt, &config).await;
    let mut c = container_config("locked", &["sleep", "3600"]);
    c.linux = Some(v1::LinuxContainerConfig {
        security_context: Some(v1::LinuxContainerSecurityContext {
            run_as_user: Some(v1::Int64Value { value: 1000 }),
            run_as_group: Some(v1::Int64Value { value: 2000 }),
            supplemental_groups: vec![3000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(v1::Capability {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = run(&mut rt, &pod, &config, c).await;
    let ids = exec(&mut rt, &id, &["id"]).await;
    let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
    assert!(
        ids.starts_with("uid=1000 gid=2000") && ids.contains("3000"),
        "{ids}"
    );
    let touch = exec(&mut rt, &id, &["touch", "/file"]).await;
    assert_ne!(touch.exit_code, 0);
    assert!(String::from_utf8_lossy(&touch.stderr).contains("Read-only file system"));
    let status = exec(&mut rt, &id, &["cat", "/proc/self/status"]).await;
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    // Only CAP_NET_BIND_SERVICE (bit 10) is in the bounding set; no new privileges.
    assert!(status.contains("CapBnd:\t0000000000000400"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // A privileged container needs a privileged sandbox; a group without a user is refused.
    let mut bad = container_config("priv", &["true"]);
    bad.linux = Some(v1::LinuxContainerConfig {
        security_context: Some(v1::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let refused = rt
        .create_container(v1::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(bad),
            sandbox_config: Some(config.clone()),
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
    rt.remove_pod_sandbox(v1::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .unwrap();
    assert!(net.allocations().is_empty());
}

/// The second container shares the pod's network, PID and UTS namespaces and its files, and
/// ExecSync passes exit codes and stderr through and gives up at its timeout.
async fn shares_the_pod(rt: &mut Runtime, side: &str) {
    let side = side.to_string();
    let r = exec(rt, &side, &["wget", "-qO-", "http://127.0.0.1/name"]).await;
    assert_eq!(String::from_utf8_lossy(&r.stdout), "served\n");
    let ps = exec(rt, &side, &["ps"]).await;
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains("httpd"),
        "{ps:?}"
    );
    let name = exec(rt, &side, &["hostname"]).await;
    assert_eq!(String::from_utf8_lossy(&name.stdout), "web-host\n");
    let resolv = exec(rt, &side, &["cat", "/etc/resolv.conf"]).await;
    let resolv = String::from_utf8_lossy(&resolv.stdout).into_owned();
    for want in ["nameserver 10.9.9.9", "search pods.test", "options ndots:3"] {
        assert!(resolv.contains(want), "{resolv}");
    }
    // ExecSync passes the exit code and stderr through, and gives up at its timeout.
    let r = exec(rt, &side, &["sh", "-c", "echo e >&2; exit 3"]).await;
    assert_eq!((r.exit_code, r.stderr.as_slice()), (3, &b"e\n"[..]));
    let slow = rt
        .exec_sync(v1::ExecSyncRequest {
            container_id: side.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        })
        .await;
    assert_eq!(slow.unwrap_err().code(), tonic::Code::DeadlineExceeded);
}

/// The pod's stats: its two containers' (not the pause process), and their memory summed.
async fn check_pod_stats(rt: &mut Runtime, pod: &str) {
    let stats = rt
        .pod_sandbox_stats(v1::PodSandboxStatsRequest {
            pod_sandbox_id: pod.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = stats.linux.unwrap();
    assert_eq!(linux.containers.len(), 2);
    let each: u64 = linux
        .containers
        .iter()
        .map(|c| {
            c.memory
                .as_ref()
                .unwrap()
                .usage_bytes
                .as_ref()
                .unwrap()
                .value
        })
        .sum();
    let total = linux.memory.unwrap().usage_bytes.unwrap().value;
    assert!(total > 0 && total == each, "{total} vs {each}");
    let listed = rt
        .list_pod_sandbox_stats(v1::ListPodSandboxStatsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
}

/// The log: CRI lines, stdout and stderr told apart.
fn check_log(path: &std::path::Path) {
    let log = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert!(
        lines.iter().any(|l| l[1..] == ["stdout", "F", "to-out"]),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l[1..] == ["stderr", "F", "to-err"]),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l[0].ends_with('Z') && l[0].contains('T')),
        "{log}"
    );
}

/// Stops and removes the pod, then checks nothing of it is left.
async fn remove_and_check_nothing_is_left(
    rt: &mut Runtime,
    pod: &str,
    net: &Network,
    server: &Server,
) {
    let pod = pod.to_string();
    rt.stop_pod_sandbox(v1::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(v1::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    let pods = rt
        .list_pod_sandbox(v1::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(pods.items.is_empty());
    assert!(net.allocations().is_empty(), "{:?}", net.allocations());
    assert!(
        berth_net::netns::bridge_ports(&net.sub.bridge_name())
            .unwrap()
            .is_empty()
    );
    let root = server.dir.path().display().to_string();
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&root)
    );
    assert!(
        !sh("iptables-save -t nat").contains(&pod[..12]),
        "port rules left"
    );
    // (The pattern does not match the shell that runs pgrep.)
    let shims = sh(&format!("pgrep -af {root}/[s]tate/tasks"));
    assert!(shims.is_empty(), "shims left: {shims}");
}

/// A SPDY/3.1 session to a streaming URL, as client-go opens one.
struct Spdy {
    conn: std::net::TcpStream,
    codec: berth_cri::spdy::HeaderCodec,
    buf: Vec<u8>,
}

impl Spdy {
    fn connect(url: &str, protocol: &str) -> Spdy {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut conn = std::net::TcpStream::connect(host).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            conn,
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains(&format!("x-stream-protocol-version: {protocol}")),
            "{head}"
        );
        Spdy {
            conn,
            codec: Default::default(),
            buf: Vec::new(),
        }
    }

    fn open(&mut self, id: u32, headers: &[(&str, &str)]) {
        let mut data = id.to_be_bytes().to_vec();
        data.extend([0, 0, 0, 0, 0, 0]);
        data.extend(self.codec.encode(headers));
        self.conn
            .write_all(&berth_cri::spdy::control(
                berth_cri::spdy::SYN_STREAM,
                0,
                &data,
            ))
            .unwrap();
    }

    fn send(&mut self, id: u32, fin: bool, data: &[u8]) {
        let flags = if fin { berth_cri::spdy::FLAG_FIN } else { 0 };
        self.conn
            .write_all(&berth_cri::spdy::data(id, flags, data))
            .unwrap();
    }

    /// Data per stream until `until` is finished by the server.
    fn read_until_fin(&mut self, until: u32) -> std::collections::HashMap<u32, Vec<u8>> {
        let mut got: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        let mut chunk = [0u8; 8192];
        loop {
            while let Some((frame, n)) = berth_cri::spdy::parse(&self.buf).unwrap() {
                self.buf.drain(..n);
                if let berth_cri::spdy::Frame::Data {
                    stream,
                    flags,
                    data,
                } = frame
                {
                    got.entry(stream).or_default().extend(data);
                    if stream == until && flags & berth_cri::spdy::FLAG_FIN != 0 {
                        return got;
                    }
                }
            }
            let n = self.conn.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "the server closed before finishing stream {until}: {got:?}"
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_attach_and_port_forward_stream_over_spdy() {
    let net = Network::new();
    let (_reg, _server, mut rt) = setup(&net).await;
    let logs = tempfile::tempdir().unwrap();
    let mut config = pod_config("stream", logs.path(), 0);
    config.port_mappings.clear();
    let pod = run_pod(&mut rt, &config).await;
    let serve = "mkdir /w && echo forwarded > /w/f && httpd -p 127.0.0.1:8080 -h /w && cat";
    let mut c = container_config("web", &["sh", "-c", serve]);
    (c.stdin, c.stdin_once) = (true, true);
    let id = run(&mut rt, &pod, &config, c).await;
    // httpd may still be starting on a loaded host: the port forward below needs it up.
    let wait =
        "for i in $(seq 100); do wget -qO- 127.0.0.1:8080/f && exit 0; sleep 0.1; done; exit 1";
    assert_eq!(exec(&mut rt, &id, &["sh", "-c", wait]).await.exit_code, 0);
    // Exec: stdin in, stdout and stderr apart, the exit code on the error stream.
    let url = rt
        .exec(v1::ExecRequest {
            container_id: id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "read x; echo got-$x; echo e >&2; exit 3".into(),
            ],
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (s, u) = tokio::task::spawn_blocking(move || {
        let mut s = Spdy::connect(&url, "v4.channel.k8s.io");
        for (n, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            s.open(n, &[("streamtype", kind)]);
        }
        s.send(3, true, b"abc\n");
        let got = s.read_until_fin(1);
        (s, got)
    })
    .await
    .unwrap();
    assert_eq!(
        u.get(&5).map(Vec::as_slice),
        Some(&b"got-abc\n"[..]),
        "{:?}",
        u.iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(v)))
            .collect::<Vec<_>>()
    );
    assert_eq!(u[&7], b"e\n");
    let status: serde_json::Value = serde_json::from_slice(&u[&1]).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");
    drop(s);
    // Port forward: a connection to 127.0.0.1:8080 inside the pod.
    let url = rt
        .port_forward(v1::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let page = tokio::task::spawn_blocking(move || {
        let mut s = Spdy::connect(&url, "portforward.k8s.io");
        let h = |kind| [("streamtype", kind), ("port", "8080"), ("requestid", "0")];
        s.open(1, &h("error"));
        s.open(3, &h("data"));
        s.send(3, true, b"GET /f HTTP/1.0\r\n\r\n");
        s.read_until_fin(3).remove(&3).unwrap_or_default()
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&page).ends_with("forwarded\n"),
        "{page:?}"
    );
    // Attach: the container's own stdin and stdout; its end closes the session.
    let url = rt
        .attach(v1::AttachRequest {
            container_id: id.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let got = tokio::task::spawn_blocking(move || {
        let mut s = Spdy::connect(&url, "v4.channel.k8s.io");
        for (n, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            s.open(n, &[("streamtype", kind)]);
        }
        std::thread::sleep(Duration::from_millis(300));
        s.send(3, true, b"through-attach\n");
        s.read_until_fin(1)
    })
    .await
    .unwrap();
    assert_eq!(got[&5], b"through-attach\n");
    rt.remove_pod_sandbox(v1::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .unwrap();
}
