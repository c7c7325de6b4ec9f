//! The commands the other client tests leave out, against a real berthd: create/start/port/
//! update/restart/kill/wait/attach with Docker's output and exit codes, the network family
//! (create, ls, inspect, connect, disconnect, rm, prune) with containers reaching each other by
//! name, login/logout against a registry with basic auth, templates with variables, shell
//! completions, and Docker's resource, security, mount and healthcheck flags of `run`/`create`.

mod common;

use berth_testkit::Registry;
use common::{Berthd, IMAGE, text};

#[test]
fn start_port_update_restart_kill_wait_and_attach() {
    let d = Berthd::with_busybox();
    let id = d.berth_ok(&[
        "create",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(d.berth_ok(&["start", "web"]), "web\n");
    let port = d.berth_ok(&["port", "web"]);
    assert!(port.starts_with("80/tcp -> 127.0.0.1:"), "{port}");
    assert_eq!(d.berth_ok(&["update", "--memory", "64m", "web"]), "web\n");
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "web"]),
        "67108864\n"
    );
    assert_eq!(d.berth_ok(&["restart", "-t", "0", "web"]), "web\n");
    assert!(
        d.berth_ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
            .starts_with("web Up")
    );
    // exec reads --env-file and takes a bare `-e NAME` from the client's environment.
    let env_dir = tempfile::tempdir().unwrap();
    let env_file = env_dir.path().join("env");
    std::fs::write(&env_file, "# a comment\nA=from-file\n").unwrap();
    let host = d.host();
    let out = common::berth_env(
        d.config.path(),
        &[("FROM_ENV", std::path::Path::new("from-env"))],
        &[
            "-H",
            host.as_str(),
            "exec",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "FROM_ENV",
            "web",
            "sh",
            "-c",
            "echo $A $FROM_ENV",
        ],
        None,
    );
    assert_eq!(
        text(&out.stdout),
        "from-file from-env\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.berth_ok(&["kill", "web"]), "web\n");
    assert_eq!(d.berth_ok(&["wait", "web"]), "137\n");
    let kill_stopped = d.berth(&["kill", "web"]);
    assert_eq!(kill_stopped.status.code(), Some(1));
    assert!(
        text(&kill_stopped.stderr).contains("is not running"),
        "{}",
        text(&kill_stopped.stderr)
    );

    let both = d.berth(&["start", "web", "nosuch"]);
    assert_eq!(both.status.code(), Some(1));
    assert_eq!(text(&both.stdout), "web\n");
    assert_eq!(
        text(&both.stderr),
        "Error response from daemon: No such container: nosuch\nError: failed to start containers: nosuch\n"
    );
    let bad = d.berth(&["create", "--name", "x", IMAGE]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(
        text(&bad.stderr).ends_with("See 'berth create --help'.\n"),
        "{}",
        text(&bad.stderr)
    );

    // attach follows the output to the end and exits with the container's code.
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; echo later; exit 4",
    ]);
    let attached = d.berth(&["attach", "talk"]);
    assert_eq!(text(&attached.stdout), "later\n");
    assert_eq!(attached.status.code(), Some(4));

    // Templates with variables, as `docker inspect -f` users write them.
    let nets = d.berth_ok(&[
        "inspect",
        "-f",
        "{{range $name, $n := .NetworkSettings.Networks}}{{$name}} {{end}}{{$.Name}}",
        "web",
    ]);
    assert_eq!(nets, "bridge /web\n");
    d.berth_ok(&["rm", "-f", "web", "talk"]);
}

#[test]
fn networks_are_created_connected_and_removed() {
    let d = Berthd::with_busybox();
    let id = d.berth_ok(&["network", "create", "front"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    d.berth_ok(&["network", "create", "back"]);
    let ls = d.berth_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in [
        "front bridge",
        "back bridge",
        "bridge bridge",
        "host host",
        "none null",
    ] {
        assert!(ls.lines().any(|l| l == want), "{want} missing:\n{ls}");
    }
    let table = d.berth_ok(&["network", "ls"]);
    assert!(
        table.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{table}"
    );
    let inspect = d.berth_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}}",
        "front",
    ]);
    assert_eq!(inspect, "front bridge local\n");

    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "front",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let ping = d.berth(&[
        "run",
        "--rm",
        "--network",
        "front",
        IMAGE,
        "ping",
        "-c1",
        "-W2",
        "srv",
    ]);
    assert_eq!(
        ping.status.code(),
        Some(0),
        "{}{}",
        text(&ping.stdout),
        text(&ping.stderr)
    );
    d.berth_ok(&["network", "connect", "back", "srv"]);
    let on = d.berth_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "srv",
    ]);
    assert_eq!(on, "back front \n");
    d.berth_ok(&["network", "disconnect", "back", "srv"]);
    let busy = d.berth(&["network", "rm", "front"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        text(&busy.stderr).contains("active endpoints"),
        "{}",
        text(&busy.stderr)
    );
    d.berth_ok(&["rm", "-f", "srv"]);
    assert_eq!(d.berth_ok(&["network", "rm", "front"]), "front\n");
    let pruned = d.berth_ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, "Deleted Networks:\nback\n\n");
    let left = d.berth_ok(&["network", "ls", "-q"]);
    assert_eq!(
        left.lines().count(),
        3,
        "only bridge, host and none stay:\n{left}"
    );
    let unknown = d.berth(&["network", "inspect", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn login_logout_and_completions() {
    let reg = Registry::start_with_auth("ann", "s3cret").unwrap();
    let d = Berthd::start();
    let host = reg.host();
    let wrong = d.berth_in(
        &["login", "-u", "ann", "--password-stdin", &host],
        b"nope\n",
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains("Error response from daemon"),
        "{}",
        text(&wrong.stderr)
    );
    let ok = d.berth_in(
        &["login", "-u", "ann", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert_eq!(
        text(&ok.stdout),
        "Login Succeeded\n",
        "{}",
        text(&ok.stderr)
    );
    let config = std::fs::read_to_string(d.config.path().join("config.json")).unwrap();
    assert!(config.contains(&host), "{config}");
    assert_eq!(
        d.berth_ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    let config = std::fs::read_to_string(d.config.path().join("config.json")).unwrap();
    assert!(!config.contains(&host), "{config}");

    for (shell, marker) in [
        ("bash", "complete "),
        ("zsh", "#compdef berth"),
        ("fish", "complete -c berth"),
    ] {
        let script = d.berth_ok(&["completion", shell]);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(script.contains("network"), "{shell} completes subcommands");
        // Subcommands' flags are defined lazily at parse time: the script must have them all.
        assert!(
            script.contains("publish"),
            "{shell} completes `run`'s flags"
        );
        assert!(
            script.contains("subnet"),
            "{shell} completes `network create`'s flags"
        );
    }
}

#[test]
fn run_flags_reach_the_container_as_dockers_do() {
    let d = Berthd::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let script = "ulimit -n; grep NoNewPrivs /proc/self/status; grep ' /t tmpfs' /proc/mounts; \
                  df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_forward; \
                  cat /proc/sys/net/ipv4/conf/eth0/route_localnet";
    let out = d.berth_ok(&[
        "run",
        "--name",
        "flags",
        "--cidfile",
        cid_s,
        "--ulimit",
        "nofile=100:200",
        "--security-opt",
        "no-new-privileges",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--shm-size",
        "32m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        // A sysctl of the container's own interface: set while the runtime creates the
        // container, so the interface must be there by then.
        "--sysctl",
        "net.ipv4.conf.eth0.route_localnet=1",
        "--pids-limit",
        "50",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "100", "{out}");
    assert!(lines[1].ends_with("\t1"), "no_new_privs: {out}");
    assert!(lines[2].contains("size=1024k"), "tmpfs mount: {out}");
    assert!(lines[3].contains(" 32768 "), "/dev/shm size: {out}");
    assert_eq!(lines[4], "1", "sysctl: {out}");
    assert_eq!(lines[5], "1", "interface sysctl: {out}");
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(id.len(), 64, "cidfile: {id:?}");
    let inspect = |f: &str| d.berth_ok(&["inspect", "-f", f, "flags"]);
    assert_eq!(inspect("{{.Id}}").trim(), id);
    assert_eq!(inspect("{{.HostConfig.PidsLimit}}").trim(), "50");
    assert_eq!(
        inspect("{{json .Config.Healthcheck.Test}}").trim(),
        r#"["CMD-SHELL","true"]"#
    );
    assert_eq!(
        inspect("{{.Config.Healthcheck.Interval}}").trim(),
        "5000000000"
    );

    // An existing cidfile, a bad mount and a bad ulimit fail the docker CLI's way: 125, a
    // clear message, no container.
    let before = d.berth_ok(&["ps", "-aq"]);
    for (flag, value, says) in [
        ("--cidfile", cid_s, "Container ID file found"),
        ("--mount", "type=nfs,target=/x", "mount type unknown"),
        (
            "--ulimit",
            "nofile=2:1",
            "soft limit must be less than or equal",
        ),
        (
            "--runtime",
            "bogus",
            "unknown or invalid runtime name: bogus",
        ),
    ] {
        let out = d.berth(&["run", "--rm", flag, value, IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    assert_eq!(d.berth_ok(&["ps", "-aq"]), before);
    d.berth_ok(&["rm", "flags"]);

    // `stop --signal` sends that signal instead of the container's stop signal.
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 42' USR1; while :; do sleep 0.1; done",
    ]);
    let bad = d.berth(&["stop", "--signal", "NOPE", "trapper"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("Invalid signal"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(
        d.berth_ok(&["stop", "-s", "USR1", "-t", "10", "trapper"]),
        "trapper\n"
    );
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.State.ExitCode}}", "trapper"])
            .trim(),
        "42"
    );
    d.berth_ok(&["rm", "trapper"]);
}

#[test]
fn commit_saves_a_containers_changes_as_an_image() {
    let d = Berthd::with_busybox();
    d.berth_ok(&[
        "run",
        "--name",
        "maker",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo made > /made",
    ]);
    let id = d.berth_ok(&[
        "commit",
        "-m",
        "by berth",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "maker",
        "made:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        d.berth_ok(&["run", "--rm", "--network", "none", "made:v1"]),
        "made\n"
    );
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.Comment}}", "made:v1"]),
        "by berth\n"
    );
    let out = d.berth(&["commit", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: nosuch\n"
    );
    d.berth_ok(&["rm", "maker"]);
    d.berth_ok(&["rmi", "made:v1"]);
}

#[test]
fn build_sends_the_context_and_reports_the_image() {
    let d = Berthd::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("data.txt"), "from the context\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dockerfile = outside.path().join("Build.file");
    std::fs::write(
        &dockerfile,
        format!("FROM {IMAGE}\nCOPY data.txt /data.txt\nRUN echo ran >> /data.txt\nCMD [\"cat\", \"/data.txt\"]\n"),
    )
    .unwrap();
    let iid = outside.path().join("iid");
    let out = d.berth_ok(&[
        "build",
        "--network",
        "none",
        "-f",
        dockerfile.to_str().unwrap(),
        "--iidfile",
        iid.to_str().unwrap(),
        "-t",
        "cli-built:v1",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(out.contains("Successfully tagged cli-built:v1"), "{out}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        d.berth_ok(&["run", "--rm", "--network", "none", "cli-built:v1"]),
        "from the context\nran\n"
    );
    std::fs::write(&dockerfile, format!("FROM {IMAGE}\nRUN exit 5\n")).unwrap();
    let out = d.berth(&[
        "build",
        "--network",
        "none",
        "-q",
        "-f",
        dockerfile.to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("returned a non-zero code: 5"),
        "{}",
        text(&out.stderr)
    );
    for id in d.berth_ok(&["ps", "-aq"]).lines() {
        d.berth_ok(&["rm", "-f", id]);
    }
    d.berth_ok(&["rmi", "cli-built:v1"]);
}

#[test]
fn build_leaves_out_what_dockerignore_excludes() {
    let d = Berthd::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "Dockerfile",
            format!("FROM {IMAGE}\nCOPY . /ctx\nCMD [\"ls\", \"-R\", \"/ctx\"]\n"),
        ),
        (
            ".dockerignore",
            "secret.txt\n*.log\n!keep.log\ncache\n".to_string(),
        ),
        ("secret.txt", "no\n".to_string()),
        ("app.log", "no\n".to_string()),
        ("keep.log", "yes\n".to_string()),
        ("src.txt", "yes\n".to_string()),
    ] {
        std::fs::write(ctx.path().join(name), text).unwrap();
    }
    std::fs::create_dir(ctx.path().join("cache")).unwrap();
    std::fs::write(ctx.path().join("cache/blob"), "no\n").unwrap();
    d.berth_ok(&[
        "build",
        "--network",
        "none",
        "-t",
        "ignored:v1",
        ctx.path().to_str().unwrap(),
    ]);
    let listed = d.berth_ok(&["run", "--rm", "--network", "none", "ignored:v1"]);
    for gone in ["secret.txt", "app.log", "cache", "blob"] {
        assert!(!listed.contains(gone), "{gone} was sent: {listed}");
    }
    for kept in ["keep.log", "src.txt", "Dockerfile", ".dockerignore"] {
        assert!(
            listed.contains(kept) || kept.starts_with('.'),
            "{kept} missing: {listed}"
        );
    }
    d.berth_ok(&["rmi", "ignored:v1"]);
}
