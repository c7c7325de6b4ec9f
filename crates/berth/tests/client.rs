//! The `berth` client against a real berthd: version and info, run (output, exit codes, `--rm`,
//! `-d`, stdin, `-it` through a pty), the container lifecycle and its tables, images, inspect,
//! exec, volumes, Docker's error messages and exit codes, an unreachable daemon, and pulls from
//! a loopback registry with progress on a pipe and on a pty.

mod common;

use berth_testkit::{BusyboxImage, Registry};
use common::{Berthd, IMAGE, text};

#[test]
fn answers_help_and_version() {
    berth_testkit::assert_help_and_version(common::BERTH.as_ref(), "berth");
}

#[test]
fn version_and_info_describe_client_and_server() {
    let d = Berthd::start();
    let v = d.berth_ok(&["version"]);
    assert!(v.starts_with("Client: Berth\n"), "{v}");
    assert!(v.contains("Server: Berth"), "{v}");
    assert!(
        v.contains("API version:      1.45 (minimum version 1.24)"),
        "{v}"
    );
    assert_eq!(
        d.berth_ok(&["version", "--format", "{{.Server.ApiVersion}}"])
            .trim(),
        "1.45"
    );
    let info = d.berth_ok(&["info"]);
    assert!(info.contains(" Containers: 0\n"), "{info}");
    assert!(info.contains(" Server Version: "), "{info}");
    assert_eq!(
        d.berth_ok(&["info", "--format", "{{.Containers}}"]).trim(),
        "0"
    );
    assert_eq!(
        d.berth_ok(&["system", "info", "-f", "{{.OSType}}"]).trim(),
        "linux"
    );
}

#[test]
fn run_prints_output_and_propagates_exit_codes() {
    let d = Berthd::with_busybox();
    let out = d.berth(&["run", "--rm", IMAGE, "echo", "hello", "-n"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello -n\n");

    let out = d.berth(&[
        "run",
        "--name",
        "three",
        IMAGE,
        "sh",
        "-c",
        "echo to-err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stderr), "to-err\n");
    let status = d.berth_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(status.starts_with("three Exited (3) "), "{status}");
    assert_eq!(d.berth_ok(&["wait", "three"]).trim(), "3");
    d.berth_ok(&["rm", "three"]);

    // --rm leaves nothing behind.
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");

    // Docker's 127 for a command that is not there, 125 for a daemon-side failure.
    let out = d.berth(&["run", "--rm", IMAGE, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");
    let out = d.berth(&["run", "--pull", "never", "nothing-here:v9", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Error response from daemon: No such image"),
        "{}",
        text(&out.stderr)
    );

    // -i pipes stdin through and closes it at EOF.
    let out = d.berth_in(
        &["run", "-i", "--rm", IMAGE, "sh", "-c", "cat; echo done"],
        b"from stdin\n",
    );
    assert_eq!(
        text(&out.stdout),
        "from stdin\ndone\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn detached_container_lifecycle_with_logs_ps_exec_and_inspect() {
    let d = Berthd::with_busybox();
    let id = d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "tier=front",
        "-e",
        "GREETING=hi",
        IMAGE,
        "sh",
        "-c",
        "echo $GREETING; exec sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    berth_testkit::wait_for(std::time::Duration::from_secs(10), "the log line", || {
        d.berth_ok(&["logs", "web"]) == "hi\n"
    })
    .unwrap();

    // The table: Docker's header and columns, the same as the docker CLI prints.
    let ps = d.berth_ok(&["ps"]);
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID   IMAGE            COMMAND                  CREATED"),
        "{ps}"
    );
    assert!(header.ends_with("NAMES"), "{ps}");
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(row.contains("\"sh -c echo $GREETIN…\""), "{ps}");
    assert!(row.contains(" Up "), "{ps}");
    assert!(row.ends_with("web"), "{ps}");
    let docker_ps = d.docker_ok(&[
        "ps",
        "--format",
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Names}}",
    ]);
    let berth_ps = d.berth_ok(&[
        "ps",
        "--format",
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Names}}",
    ]);
    assert_eq!(berth_ps, docker_ps);
    assert_eq!(d.berth_ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(d.berth_ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    assert_eq!(d.berth_ok(&["ps", "--format", "{{.Names}}"]), "web\n");
    assert_eq!(
        d.berth_ok(&[
            "ps",
            "--filter",
            "label=tier=front",
            "--format",
            "{{.Names}}"
        ]),
        "web\n"
    );
    assert_eq!(d.berth_ok(&["ps", "--filter", "name=nope", "-q"]), "");
    let j = d.berth_ok(&["ps", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(v["Names"], "web");
    assert_eq!(v["Labels"], "tier=front");

    assert_eq!(
        d.berth_ok(&["inspect", "--format", "{{.State.Status}} {{.Name}}", "web"]),
        "running /web\n"
    );
    assert_eq!(
        d.berth_ok(&[
            "container",
            "inspect",
            "-f",
            "{{index .Config.Labels \"tier\"}}",
            "web"
        ]),
        "front\n"
    );
    let full = d.berth_ok(&["inspect", "web"]);
    let v: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(v[0]["Id"], id);

    // exec: output, exit status, env and working directory.
    assert_eq!(d.berth_ok(&["exec", "web", "echo", "inside"]), "inside\n");
    let out = d.berth(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        d.berth_ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /tmp\n"
    );
    let out = d.berth_in(&["exec", "-i", "web", "cat"], b"piped\n");
    assert_eq!(text(&out.stdout), "piped\n");

    assert!(d.berth_ok(&["top", "web"]).contains("sleep 1000"));
    d.berth_ok(&["pause", "web"]);
    assert!(
        d.berth_ok(&["ps", "--format", "{{.Status}}"])
            .contains("(Paused)")
    );
    d.berth_ok(&["unpause", "web"]);
    d.berth_ok(&["rename", "web", "web2"]);
    assert_eq!(d.berth_ok(&["stop", "-t", "1", "web2"]), "web2\n");
    assert_eq!(d.berth_ok(&["ps", "-q"]), "");
    let status = d.berth_ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited ("), "{status}");
    assert_eq!(d.berth_ok(&["container", "rm", "web2"]), "web2\n");
    assert_eq!(d.berth_ok(&["container", "ls", "-aq"]), "");
}

#[test]
fn images_inspect_tag_and_rmi() {
    let d = Berthd::with_busybox();
    let table = d.berth_ok(&["images"]);
    let docker = d.docker_ok(&["images"]);
    // Same columns as Docker's, and each value starts under its header. (Widths follow the
    // values: "Less than a second ago" and "1 second ago" a moment later differ.)
    let (header, row) = (table.lines().next().unwrap(), table.lines().nth(1).unwrap());
    assert_eq!(
        columns(header),
        columns(docker.lines().next().unwrap()),
        "{table}\n{docker}"
    );
    assert_eq!(column_starts(header), column_starts(row), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("busybox      latest    "),
        "{table}"
    );
    assert_eq!(
        d.berth_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\n"
    );
    assert_eq!(
        d.berth_ok(&["image", "inspect", "--format", "{{.Config.Cmd}}", IMAGE]),
        "[sh]\n"
    );
    d.berth_ok(&["tag", IMAGE, "mine:v1"]);
    assert_eq!(d.berth_ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(d.berth_ok(&["rmi", "mine:v1"]), "Untagged: mine:v1\n");
    let hist = d.berth_ok(&["history", IMAGE]);
    assert!(hist.starts_with("IMAGE "), "{hist}");
    let out = d.berth(&["inspect", "--type", "image", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: No such image: nope\n");
}

#[test]
fn volumes_are_created_listed_used_and_removed() {
    let d = Berthd::with_busybox();
    assert_eq!(d.berth_ok(&["volume", "create", "data"]), "data\n");
    let ls = d.berth_ok(&["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     data\n");
    assert_eq!(d.berth_ok(&["volume", "ls", "-q"]), "data\n");
    assert_eq!(
        d.berth_ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "data"]),
        "data local\n"
    );
    d.berth_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.berth_ok(&["run", "--rm", "-v", "data:/data", IMAGE, "cat", "/data/f"]),
        "kept\n"
    );
    assert_eq!(d.berth_ok(&["volume", "rm", "data"]), "data\n");
    assert_eq!(d.berth_ok(&["volume", "ls", "-q"]), "");
    let out = d.berth(&["volume", "rm", "data"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn cp_diff_and_export_follow_dockers_rules() {
    let d = Berthd::with_busybox();
    let host = tempfile::tempdir().unwrap();
    let h = |n: &str| host.path().join(n).display().to_string();
    std::fs::write(h("note.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(h("dir/sub")).unwrap();
    std::fs::write(h("dir/sub/f"), "f\n").unwrap();
    d.berth_ok(&["run", "-d", "--name", "box", IMAGE, "sleep", "1000"]);

    // Into a directory the copy keeps its name; onto a new path it takes that name.
    d.berth_ok(&["cp", &h("note.txt"), "box:/tmp"]);
    d.berth_ok(&["cp", &h("note.txt"), "box:/tmp/renamed.txt"]);
    d.berth_ok(&["cp", &h("dir"), "box:/srv"]);
    d.berth_ok(&["cp", &h("dir/."), "box:/tmp"]);
    let cat = |p: &str| d.berth_ok(&["exec", "box", "cat", p]);
    assert_eq!(cat("/tmp/note.txt"), "hello\n");
    assert_eq!(cat("/tmp/renamed.txt"), "hello\n");
    assert_eq!(
        cat("/srv/sub/f"),
        "f\n",
        "a directory onto a new path takes its name"
    );
    assert_eq!(cat("/tmp/sub/f"), "f\n", "dir/. copies the contents");
    let onto = d.berth(&["cp", &h("dir"), "box:/tmp/note.txt"]);
    assert_eq!(onto.status.code(), Some(1));

    // Out of it, the same rules on the host.
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n).display().to_string();
    d.berth_ok(&["cp", "box:/tmp/note.txt", &o("")]);
    d.berth_ok(&["cp", "box:/srv", &o("copy")]);
    d.berth_ok(&["cp", "box:/srv/.", &o("")]);
    assert_eq!(std::fs::read_to_string(o("note.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(o("copy/sub/f")).unwrap(), "f\n");
    assert_eq!(std::fs::read_to_string(o("sub/f")).unwrap(), "f\n");
    let missing = d.berth(&["cp", "box:/nope", &o("x")]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "Error: No such container:path: box:/nope\n"
    );
    let both = d.berth(&["cp", "box:/a", "box:/b"]);
    assert_eq!(
        text(&both.stderr),
        "copying between containers is not supported\n"
    );

    let diff = d.berth_ok(&["diff", "box"]);
    for want in ["C /tmp", "A /tmp/note.txt", "A /srv", "A /srv/sub/f"] {
        assert!(diff.lines().any(|l| l == want), "{want} missing:\n{diff}");
    }
    let tar = d.berth(&["export", "box"]);
    assert!(tar.status.success());
    let mut ar = tar::Archive::new(&tar.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "tmp/renamed.txt"), "{names:?}");
    d.berth_ok(&["rm", "-f", "box"]);
}

#[test]
fn errors_read_like_dockers() {
    let d = Berthd::start();
    let out = d.berth(&["rm", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: x\n"
    );
    let out = d.berth(&["stop", "x", "y"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 2);
    let out = d.berth(&["run", "--bogus-flag", IMAGE]);
    assert_eq!(out.status.code(), Some(125));

    // Nothing listening.
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/none.sock", dir.path().display());
    let out = common::berth_at(&sock, dir.path(), &["ps"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Cannot connect to berthd at {sock}: is it running?\n")
    );
    let out = common::berth_at(&sock, dir.path(), &["--tlsverify", "ps"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("TLS needs a tcp:// host"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `cmd` under `script` (a pty on its stdin/stdout), feeding `input`; returns
/// (exit status, everything the terminal showed).
fn on_a_pty(cmd: &str, input: &[u8]) -> (Option<i32>, String) {
    use std::io::Write;
    #[allow(clippy::disallowed_methods)] // util-linux `script` provides the pty
    let mut child = std::process::Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stdout))
}

#[test]
fn run_it_through_a_pty_gets_a_terminal_and_the_exit_code() {
    let d = Berthd::with_busybox();
    let cmd = format!(
        "DOCKER_CONFIG={} {} -H {} run -it --rm {IMAGE} sh",
        d.config.path().display(),
        common::BERTH,
        d.host()
    );
    let (code, shown) = on_a_pty(&cmd, b"tty; echo cols=$(stty size); exit 5\n");
    assert_eq!(code, Some(5), "{shown}");
    assert!(shown.contains("/dev/pts/"), "{shown}");
    assert!(shown.contains("cols="), "{shown}");
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");
    // Without a terminal, -it is refused the way docker refuses it.
    let out = d.berth(&["run", "-it", "--rm", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "the input device is not a TTY\n");
}

#[test]
fn ctrl_p_ctrl_q_detaches_and_leaves_the_container_running() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let d = Berthd::with_busybox();
    let cmd = format!(
        "DOCKER_CONFIG={} {} -H {} run -it --name detachable {IMAGE} sh",
        d.config.path().display(),
        common::BERTH,
        d.host()
    );
    #[allow(clippy::disallowed_methods)] // util-linux `script` provides the pty
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shown = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = shown.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // The prompt is relayed only once the terminal is raw, so ctrl-q is not eaten as XON.
    berth_testkit::wait_for(
        std::time::Duration::from_secs(20),
        "the shell prompt",
        || text(&shown.lock().unwrap()).contains("# "),
    )
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\x10\x11").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text(&shown.lock().unwrap()));
    assert_eq!(
        d.berth_ok(&["ps", "--format", "{{.Names}} {{.State}}"]),
        "detachable running\n"
    );
    d.berth_ok(&["rm", "-f", "detachable"]);
}

#[test]
fn pull_shows_plain_lines_on_a_pipe_and_bars_on_a_pty() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "auto", "v1")
        .unwrap();
    let d = Berthd::start();
    let name = format!("{}/bb:latest", reg.host());
    let out = d.berth_ok(&["pull", &name]);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains(": Pull complete\n"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    assert!(out.ends_with(&format!("\n{name}\n")), "{out}");
    assert_eq!(d.berth_ok(&["pull", "-q", &name]), format!("{name}\n"));
    d.berth_ok(&["rmi", &name]);

    // On a terminal: the per-layer lines are rewritten in place.
    let cmd = format!("{} -H {} pull {name}", common::BERTH, d.host());
    let (code, shown) = on_a_pty(&cmd, b"");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("\x1b[2K"), "{shown:?}");
    assert!(shown.contains("Pull complete"), "{shown:?}");

    // run pulls a missing image first, progress on stderr.
    let auto = format!("{}/auto:v1", reg.host());
    let out = d.berth(&["run", "--rm", &auto, "echo", "pulled"]);
    assert_eq!(text(&out.stdout), "pulled\n", "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("Unable to find image '{auto}' locally\n")),
        "{err}"
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {auto}\n")),
        "{err}"
    );
}

#[test]
fn logs_events_stats_and_prune() {
    let d = Berthd::with_busybox();
    let out = d.berth(&[
        "run",
        "--name",
        "talker",
        IMAGE,
        "sh",
        "-c",
        // Apart in time: two streams written in the same instant have no defined order (in
        // Docker neither: one reader per pipe).
        "echo one; echo two; sleep 0.2; echo three >&2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let logs = d.berth(&["logs", "talker"]);
    assert_eq!(text(&logs.stdout), "one\ntwo\n");
    assert_eq!(text(&logs.stderr), "three\n");
    let tail = d.berth(&["logs", "--tail", "1", "talker"]);
    assert_eq!(text(&tail.stdout) + &text(&tail.stderr), "three\n");
    let stamped = d.berth_ok(&["logs", "-t", "talker"]);
    assert!(
        stamped
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z ")),
        "{stamped}"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = d.berth_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &now.to_string(),
        "--filter",
        "container=talker",
    ]);
    assert!(events.contains(" container start "), "{events}");
    assert!(events.contains(" container die "), "{events}");
    assert!(events.contains("exitCode=0"), "{events}");
    assert!(events.contains("name=talker"), "{events}");
    let actions = d.berth_ok(&[
        "system",
        "events",
        "--since",
        "0",
        "--until",
        &now.to_string(),
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(actions, "die talker\n");

    d.berth_ok(&["run", "-d", "--name", "sleeper", IMAGE, "sleep", "1000"]);
    assert_eq!(
        d.berth_ok(&["stats", "--no-stream", "--format", "{{.Name}}", "sleeper"]),
        "sleeper\n"
    );
    let table = d.berth_ok(&["stats", "--no-stream", "sleeper"]);
    assert!(
        table.starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{table}"
    );
    let df = d.berth_ok(&["system", "df"]);
    assert!(
        df.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{df}"
    );

    let pruned = d.berth_ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert!(pruned.contains("Total reclaimed space: "), "{pruned}");
    assert_eq!(
        d.berth_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "sleeper\n"
    );
    d.berth_ok(&["rm", "-f", "sleeper"]);
}

#[test]
fn push_pull_save_and_load_round_trip() {
    let reg = Registry::start().unwrap();
    let d = Berthd::with_busybox();
    let name = format!("{}/pushed:v1", reg.host());
    d.berth_ok(&["tag", IMAGE, &name]);
    let out = d.berth_ok(&["push", &name]);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains(": Pushed\n"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    d.berth_ok(&["rmi", &name]);
    let out = d.berth_ok(&["pull", &name]);
    assert!(out.ends_with(&format!("{name}\n")), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("bb.tar");
    let tar = tar.to_str().unwrap();
    d.berth_ok(&["save", "-o", tar, IMAGE]);
    assert!(std::fs::metadata(tar).unwrap().len() > 1024);
    d.berth_ok(&["rmi", IMAGE, &name]);
    assert_eq!(d.berth_ok(&["images", "-q"]), "");
    let out = d.berth_ok(&["load", "-i", tar]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(
        d.berth_ok(&["run", "--rm", IMAGE, "echo", "loaded"]),
        "loaded\n"
    );
}

/// The cells of a table line: text separated by two spaces or more.
fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Where each cell of a table line starts.
fn column_starts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] != b' ' && (i == 0 || (i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' ')))
        .collect()
}
