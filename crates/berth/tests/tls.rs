//! `berth` over TLS to a private dockerd listening with `--tlsverify` on a loopback port:
//! certificates from the flags and from `DOCKER_CERT_PATH`/`DOCKER_TLS_VERIFY`, an upload
//! (import), an attached run with stdin that ends (a close_notify), and the refusals: no client
//! certificate, an untrusted CA, plain HTTP to the TLS port.

mod common;

use std::path::Path;
use std::process::Output;

use berth_testkit::Dockerd;
use common::text;

/// `berth ARGS` with its own config directory and the variables `env`.
fn berth<S: AsRef<std::ffi::OsStr>>(
    env: &[(&str, &Path)],
    args: &[S],
    stdin: Option<&[u8]>,
) -> Output {
    let config = tempfile::tempdir().unwrap();
    common::berth_env(config.path(), env, args, stdin)
}

#[test]
fn tls_with_client_certificates_against_dockerd() {
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    berth_testkit::certs::make(c, "berth test CA").unwrap();
    let port = berth_testkit::free_port().unwrap();
    let p = |n: &str| c.join(n).display().to_string();
    let dockerd = Dockerd::start_with_flags(&[
        "--tlsverify".into(),
        format!("--tlscacert={}", p("ca.pem")),
        format!("--tlscert={}", p("server-cert.pem")),
        format!("--tlskey={}", p("server-key.pem")),
        format!("--host=tcp://127.0.0.1:{port}"),
    ])
    .unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    // The TLS flags with a CA, certificate and key, then `args`.
    let tls = |ca: &str, cert: &str, key: &str, args: &[&str]| -> Vec<String> {
        let flags = [
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            ca,
            "--tlscert",
            cert,
            "--tlskey",
            key,
        ];
        flags.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let with = |args: &[&str]| tls(&ca, &cert, &key, args);

    let v = berth(
        &[],
        &with(&["version", "--format", "{{.Server.Version}}"]),
        None,
    );
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert!(text(&v.stdout).starts_with("20.10"), "{}", text(&v.stdout));

    // An upload and an attached run with stdin that ends, through the relay.
    let tar = berth_testkit::busybox::layer_tar().unwrap();
    let imported = berth(
        &[],
        &with(&["import", "-c", "CMD [\"sh\"]", "-", "bb:tls"]),
        Some(&tar),
    );
    assert!(
        text(&imported.stdout).starts_with("sha256:"),
        "{}",
        text(&imported.stderr)
    );
    let run = berth(
        &[],
        &with(&[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "bb:tls",
            "tr",
            "a-z",
            "A-Z",
        ]),
        Some(b"over tls\n"),
    );
    assert_eq!(text(&run.stdout), "OVER TLS\n", "{}", text(&run.stderr));
    assert_eq!(run.status.code(), Some(0));

    // The environment's way: DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    let hostp = Path::new(&host);
    let ps = berth(
        &[
            ("DOCKER_HOST", hostp),
            ("DOCKER_TLS_VERIFY", Path::new("1")),
            ("DOCKER_CERT_PATH", c),
        ],
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        None,
    );
    assert_eq!(text(&ps.stdout), "bb:tls\n", "{}", text(&ps.stderr));

    // Refusals: no client certificate, a CA that did not sign the daemon's, plain HTTP.
    let nocert = berth(&[], &tls(&ca, "/none", "/none", &["ps"]), None);
    assert_eq!(nocert.status.code(), Some(1), "{}", text(&nocert.stdout));
    let other = tempfile::tempdir().unwrap();
    berth_testkit::certs::make(other.path(), "another CA").unwrap();
    let other_ca = other.path().join("ca.pem").display().to_string();
    let untrusted = berth(&[], &tls(&other_ca, &cert, &key, &["ps"]), None);
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        text(&untrusted.stderr).contains("certificate verify failed"),
        "{}",
        text(&untrusted.stderr)
    );
    let plain = berth(&[], &["-H", &host, "ps"], None);
    assert_eq!(plain.status.code(), Some(1));
    drop(dockerd);
}
