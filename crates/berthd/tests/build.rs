//! `docker build` (the classic builder, `DOCKER_BUILDKIT=0`) against berthd: a Dockerfile with
//! ARG before FROM, ENV, WORKDIR, COPY of files and directories, RUN (shell form and heredoc),
//! LABEL, EXPOSE and CMD gives an image that runs as written; a failing RUN and a broken
//! Dockerfile fail the build with Docker's messages.

mod common;

use common::{Berthd, daemon_with_image};

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
COPY hello.txt ./
COPY dir/ sub/
RUN echo "$GREETING from run" > run.txt && cat hello.txt
RUN <<EOF
echo heredoc > /app/heredoc.txt
EOF
LABEL stage="one" other=two
EXPOSE 8080
CMD ["cat", "run.txt", "hello.txt", "sub/inner.txt", "heredoc.txt"]
"#;

fn build(d: &Berthd, args: &[&str]) -> std::process::Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    d.docker_env(&[("DOCKER_BUILDKIT", "0")], &all)
}

use berth_testkit::files::dir_with as context;

fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_dockerfile_builds_an_image_that_runs_as_written() {
    let (_reg, d, image) = daemon_with_image();
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE),
        ("hello.txt", "file\n"),
        ("dir/inner.txt", "inner\n"),
    ]);
    let base = format!("BASE={image}");
    let dir = ctx.path().to_str().unwrap();
    let args = [
        "--build-arg",
        &base,
        "--build-arg",
        "GREETING=hi",
        "-t",
        "built:v1",
        dir,
    ];
    let out = build(&d, &args);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Step 1/12 : ARG BASE"), "{text}");
    // The RUN's own output is in the build's.
    assert!(text.contains("\nfile\n"), "{text}");
    assert!(text.contains("Successfully built "), "{text}");
    assert!(text.contains("Successfully tagged built:v1"), "{text}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "built:v1"]),
        "hi from run\nfile\ninner\nheredoc\n"
    );
    let meta = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.Config.WorkingDir}}|{{json .Config.Labels}}|{{json .Config.ExposedPorts}}",
        "built:v1",
    ]);
    assert_eq!(
        meta.trim(),
        r#"/app|{"other":"two","stage":"one"}|{"8080/tcp":{}}"#
    );
    let env = d.docker_ok(&["inspect", "-f", "{{json .Config.Env}}", "built:v1"]);
    assert!(env.contains("\"APP=/app\""), "{env}");
    // No intermediate container is left; `-q` prints the id alone.
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    let out = build(&d, &["-q", "--build-arg", &base, dir]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "{}", all_output(&out));
    d.docker_ok(&["rmi", "built:v1"]);
}

#[test]
fn failing_steps_and_broken_dockerfiles_fail_the_build() {
    let (_reg, d, image) = daemon_with_image();
    let ctx = context(&[("Dockerfile", &format!("FROM {image}\nRUN exit 3\n"))]);
    let out = build(&d, &["-t", "broken:v1", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let all = all_output(&out);
    assert!(
        all.contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{all}"
    );
    assert_eq!(d.docker(&["inspect", "broken:v1"]).status.code(), Some(1));

    let ctx = context(&[("Dockerfile", &format!("FROM {image}\nFROMM x\n"))]);
    let out = build(&d, &[ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let all = all_output(&out);
    assert!(all.contains("unknown instruction: FROMM"), "{all}");

    let ctx = context(&[("Dockerfile", &format!("FROM {image}\nCOPY missing.txt /\n"))]);
    let out = build(&d, &[ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let all = all_output(&out);
    assert!(all.contains("file not found in build context"), "{all}");
    // The failed RUN's container is kept, as Docker keeps it without --force-rm.
    for id in d.docker_ok(&["ps", "-aq"]).lines() {
        d.docker_ok(&["rm", "-f", id]);
    }
}

#[test]
fn copy_never_reaches_outside_the_context() {
    let (_reg, d, image) = daemon_with_image();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("secret"), "host secret\n").unwrap();
    let ctx = context(&[("Dockerfile", "")]);
    std::os::unix::fs::symlink(secret.path(), ctx.path().join("out")).unwrap();
    let up = format!("../../../../../../../..{}/secret", secret.path().display());
    for src in [
        "out/secret",
        up.as_str(),
        secret.path().join("secret").to_str().unwrap(),
    ] {
        let dockerfile = format!("FROM {image}\nCOPY {src} /got\nCMD [\"cat\", \"/got\"]\n");
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let out = build(&d, &["-t", "probe:v1", ctx.path().to_str().unwrap()]);
        if out.status.success() {
            let got = d.docker(&["run", "--rm", "probe:v1"]);
            assert!(
                !String::from_utf8_lossy(&got.stdout).contains("host secret"),
                "COPY {src} read a host file"
            );
            d.docker_ok(&["rmi", "probe:v1"]);
        }
    }
    // A link named as a source is followed as Docker follows it, but inside the context: its
    // absolute target names a path of the context, never the host's.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY out /link\n"),
    )
    .unwrap();
    build(&d, &["-t", "probe:v2", ctx.path().to_str().unwrap()]);
    let out = d.docker(&[
        "run",
        "--rm",
        "probe:v2",
        "sh",
        "-c",
        "cat /link/secret; readlink /link",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("host secret"), "{text}");
    let _ = d.docker(&["rmi", "probe:v2"]);
}

#[test]
fn from_pulls_an_image_that_is_not_here() {
    let (reg, d, _image) = daemon_with_image();
    reg.push_image(
        &berth_testkit::BusyboxImage::build().unwrap(),
        "other",
        "v2",
    )
    .unwrap();
    let name = format!("{}/other:v2", reg.host());
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {name}\nCMD [\"echo\", \"pulled\"]\n"),
    )]);
    let out = build(&d, &["-t", "frompull:v1", ctx.path().to_str().unwrap()]);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("/other") && text.contains("Downloaded newer image"),
        "{text}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "frompull:v1"]), "pulled\n");
    // The base is an image of its own now, as after a docker pull.
    d.docker_ok(&["inspect", &name]);
    let missing = context(&[("Dockerfile", &format!("FROM {}/nosuch:v1\n", reg.host()))]);
    let out = build(&d, &[missing.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let text = all_output(&out);
    assert!(text.contains("not found"), "{text}");
    d.docker_ok(&["rmi", "frompull:v1"]);
}

#[test]
fn from_pulls_a_private_base_with_the_clients_logins() {
    let reg = berth_testkit::Registry::start_with_auth("berth", "s3cret").unwrap();
    let d = Berthd::start();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::layer_tar().unwrap()).unwrap();
    let base = format!("{}/private/base:v1", reg.host());
    d.docker_ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        &tar.display().to_string(),
        &base,
    ]);
    d.docker_ok(&["login", "-u", "berth", "-p", "s3cret", &reg.host()]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["rmi", &base]);
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {base}\nCMD [\"echo\", \"private\"]\n"),
    )]);
    // The CLI sends its logins (X-Registry-Config); FROM's pull uses the registry's.
    let out = build(&d, &["-t", "fromprivate:v1", ctx.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(d.docker_ok(&["run", "--rm", "fromprivate:v1"]), "private\n");
    d.docker_ok(&["rmi", "fromprivate:v1", &base]);
    // Without the login the pull is refused, and so is the build.
    d.docker_ok(&["logout", &reg.host()]);
    let out = build(&d, &[ctx.path().to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "built from a private image without a login"
    );
}

#[test]
fn stages_copy_from_each_other_and_a_target_stops_the_build() {
    let (_reg, d, image) = daemon_with_image();
    let dockerfile = format!(
        "FROM {image} AS first\n\
         RUN echo staged > /staged.txt\n\
         FROM {image} AS Second\n\
         RUN echo second > /second.txt\n\
         FROM first\n\
         COPY --from=second /second.txt /got2.txt\n\
         COPY --from=0 /staged.txt /got.txt\n\
         CMD [\"cat\", \"/got.txt\", \"/got2.txt\", \"/staged.txt\"]\n"
    );
    let ctx = context(&[("Dockerfile", &dockerfile)]);
    let dir = ctx.path().to_str().unwrap();
    let out = build(&d, &["-t", "stages:v1", dir]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "stages:v1"]),
        "staged\nsecond\nstaged\n"
    );
    let out = build(&d, &["--target", "second", "-t", "stages:second", dir]);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("Step 5/8"),
        "the build went past its target: {text}"
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "stages:second",
        "sh",
        "-c",
        "cat /second.txt; test -e /got.txt || echo none",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\nnone\n");
    let out = build(&d, &["--target", "nosuch", dir]);
    assert!(!out.status.success());
    assert!(all_output(&out).contains("failed to reach build target nosuch"));
    let bad = context(&[(
        "Dockerfile",
        &format!("FROM {image}\nCOPY --from=nosuch /a /b\n"),
    )]);
    let out = build(&d, &[bad.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(all_output(&out).contains("invalid from flag value nosuch"));
    d.docker_ok(&["rmi", "stages:v1", "stages:second"]);
}

#[test]
fn an_unchanged_build_uses_the_cache_and_a_change_does_not() {
    let (_reg, d, image) = daemon_with_image();
    let dockerfile = format!(
        "FROM {image}\nARG V=1\nCOPY a.txt /a.txt\nRUN echo $V > /v.txt\nCMD [\"cat\", \"/a.txt\", \"/v.txt\"]\n"
    );
    let ctx = context(&[("Dockerfile", &dockerfile), ("a.txt", "one\n")]);
    let dir = ctx.path().to_str().unwrap();
    let first = build(&d, &["-t", "cached:v1", dir]);
    assert!(first.status.success(), "{}", all_output(&first));
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "cached:v1"]);
    // The same build again: no step runs, the same image comes out.
    let again = build(&d, &["-t", "cached:v1", dir]);
    let text = all_output(&again);
    assert_eq!(text.matches("Using cache").count(), 2, "{text}");
    assert!(!text.contains("Running in"), "{text}");
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.Id}}", "cached:v1"]), id);
    // A changed build arg reruns the RUN; a changed file the COPY and what follows.
    let text = all_output(&build(&d, &["--build-arg", "V=2", "-t", "cached:v2", dir]));
    assert_eq!(text.matches("Using cache").count(), 1, "{text}");
    assert_eq!(d.docker_ok(&["run", "--rm", "cached:v2"]), "one\n2\n");
    std::fs::write(ctx.path().join("a.txt"), "two\n").unwrap();
    let text = all_output(&build(&d, &["-t", "cached:v3", dir]));
    assert!(!text.contains("Using cache"), "{text}");
    assert_eq!(d.docker_ok(&["run", "--rm", "cached:v3"]), "two\n1\n");
    // --no-cache makes every step anew.
    let text = all_output(&build(&d, &["--no-cache", "-t", "cached:v4", dir]));
    assert!(
        !text.contains("Using cache") && text.contains("Running in"),
        "{text}"
    );
    d.docker_ok(&["rmi", "cached:v1", "cached:v2", "cached:v3", "cached:v4"]);
}

#[test]
fn copy_sets_the_owner_and_mode_it_is_given() {
    let (_reg, d, image) = daemon_with_image();
    let dockerfile = format!(
        "FROM {image}\n\
         COPY --chown=1234:5678 --chmod=640 f.txt /f.txt\n\
         COPY --chown=42 dir /dir\n\
         CMD [\"stat\", \"-c\", \"%n %u:%g %a\", \"/f.txt\", \"/dir\", \"/dir/g.txt\"]\n"
    );
    let ctx = context(&[
        ("Dockerfile", &dockerfile),
        ("f.txt", "f\n"),
        ("dir/g.txt", "g\n"),
    ]);
    let out = build(&d, &["-t", "owned:v1", ctx.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", all_output(&out));
    let got = d.docker_ok(&["run", "--rm", "owned:v1"]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "/f.txt 1234:5678 640");
    assert!(lines[1].starts_with("/dir 42:42 "), "{got}");
    assert!(lines[2].starts_with("/dir/g.txt 42:42 "), "{got}");
    // Names are the image's: user and group looked up in its /etc/passwd and /etc/group.
    let named = context(&[
        (
            "Dockerfile",
            &format!(
                "FROM {image}\nCOPY --chown=nobody:nogroup f.txt /n.txt\nCOPY --chown=root f.txt /r.txt\nCMD [\"stat\", \"-c\", \"%u:%g\", \"/n.txt\", \"/r.txt\"]\n"
            ),
        ),
        ("f.txt", "f\n"),
    ]);
    let out = build(&d, &["-t", "owned:v2", named.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "owned:v2"]),
        "65534:65534\n0:0\n"
    );
    // A user or group the image does not have fails the build, with the name.
    for (chown, want) in [
        ("ghost", "unable to find user ghost"),
        ("nobody", "unable to find group nobody"),
    ] {
        let bad = context(&[
            (
                "Dockerfile",
                &format!("FROM {image}\nCOPY --chown={chown} f.txt /\n"),
            ),
            ("f.txt", ""),
        ]);
        let out = build(&d, &[bad.path().to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(all_output(&out).contains(want), "{}", all_output(&out));
    }
    d.docker_ok(&["rmi", "owned:v1", "owned:v2"]);
}

#[test]
fn add_unpacks_archives_and_fetches_urls_and_run_takes_its_network() {
    let (reg, d, image) = daemon_with_image();
    let mut archive = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    archive
        .append_data(&mut h, "inner/x.txt", &b"inner\n"[..])
        .unwrap();
    let archive = archive.into_inner().unwrap();
    let dockerfile = format!(
        "FROM {image}\n\
         ADD arch.tar /unpacked/\n\
         ADD http://{}/v2/ /got.json\n\
         RUN --network=none sh -c 'ls /sys/class/net > /nets'\n\
         CMD [\"cat\", \"/unpacked/inner/x.txt\", \"/got.json\", \"/nets\"]\n",
        reg.host()
    );
    let ctx = context(&[("Dockerfile", &dockerfile)]);
    std::fs::write(ctx.path().join("arch.tar"), &archive).unwrap();
    let out = build(&d, &["-t", "added:v1", ctx.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(d.docker_ok(&["run", "--rm", "added:v1"]), "inner\n{}lo\n");
    let bad = context(&[(
        "Dockerfile",
        &format!("FROM {image}\nADD http://127.0.0.1:1/nothing /x\n"),
    )]);
    let out = build(&d, &[bad.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("ADD failed: cannot fetch"),
        "{}",
        all_output(&out)
    );
    // The cache can be forgotten (`docker builder prune`).
    d.docker_ok(&["builder", "prune", "-f"]);
    d.docker_ok(&["rmi", "added:v1"]);
}

/// What a user compares of two builds of one Dockerfile: the config, the history's shape
/// (each step's `created_by` and whether it made a layer, the base's own entries left out)
/// and the files the build made.
fn build_facts(
    docker: &dyn Fn(&[&str]) -> String,
    image: &str,
    base_entries: usize,
) -> [String; 3] {
    let config = docker(&[
        "inspect",
        "-f",
        "{{json .Config.Env}}|{{json .Config.Cmd}}|{{json .Config.Entrypoint}}|{{.Config.WorkingDir}}|{{json .Config.Labels}}|{{json .Config.ExposedPorts}}|{{.Config.User}}",
        image,
    ]);
    let history = docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{if eq .Size \"0B\"}}empty{{else}}layer{{end}}",
        image,
    ]);
    let lines: Vec<&str> = history.lines().collect();
    let own = lines[..lines.len().saturating_sub(base_entries)].join("\n");
    let files = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "find /app | sort | while read f; do stat -c '%n %a %u:%g %s' \"$f\"; done; cat /app/*.txt",
    ]);
    [config, own, files]
}

#[test]
fn the_same_dockerfile_built_by_dockerd_gives_the_same_image_shape() {
    let (_reg, d, image) = daemon_with_image();
    let dockerd = berth_testkit::dockerd::Dockerd::start(&[]).unwrap();
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", all_output(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(dockerd.docker(&["pull", &image]));
    let df = format!(
        "FROM {image}\nENV APP=/app\nWORKDIR /app\nCOPY hello.txt ./\nRUN echo run > run.txt\n\
         LABEL a=b\nEXPOSE 8080\nUSER nobody\nCMD [\"cat\", \"run.txt\"]\n"
    );
    let ctx = context(&[("Dockerfile", &df), ("hello.txt", "hello\n")]);
    let dir = ctx.path().to_str().unwrap();
    let args = ["build", "--network", "none", "-t", "shape:v1", dir];
    ok(d.docker_env(&[("DOCKER_BUILDKIT", "0")], &args));
    ok(dockerd.docker_env(&[("DOCKER_BUILDKIT", "0")], &args));
    let base = d.docker_ok(&["history", "-q", &image]).lines().count();
    let ours = build_facts(&|a| d.docker_ok(a), "shape:v1", base);
    let want = build_facts(&|a| ok(dockerd.docker(a)), "shape:v1", base);
    assert_eq!(ours[0], want[0], "config");
    // dockerd names a copied file by its content hash; so do we, but the hash's input differs.
    let unhash = |h: &str| {
        h.lines()
            .map(|l| match l.split_once("COPY file:") {
                Some((a, rest)) => {
                    format!("{a}COPY file:…{}", &rest[rest.find(' ').unwrap_or(0)..])
                }
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(unhash(&ours[1]), unhash(&want[1]), "history");
    assert_eq!(ours[2], want[2], "files");
}

#[test]
fn onbuild_triggers_heredoc_copies_and_proxy_args() {
    let (_reg, d, image) = daemon_with_image();
    let base =
        format!("FROM {image}\nONBUILD RUN echo triggered > /trig\nONBUILD ENV FROM_TRIGGER=yes\n");
    let ctx = context(&[("Dockerfile", &base)]);
    let out = build(
        &d,
        &[
            "--network",
            "none",
            "-t",
            "onbuild-base",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", all_output(&out));
    let child = "FROM onbuild-base\nENV NAME=world\nCOPY <<EOF /greeting.txt\nhello $NAME\nEOF\n\
                 COPY <<'RAW' /raw.txt\nkeep $NAME\nRAW\nRUN echo \"proxy=$HTTP_PROXY\" > /proxy\n";
    let ctx = context(&[("Dockerfile", child)]);
    let out = build(
        &d,
        &[
            "--network",
            "none",
            "--build-arg",
            "HTTP_PROXY=http://127.0.0.1:3128",
            "-t",
            "onbuild-child",
            ctx.path().to_str().unwrap(),
        ],
    );
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("# Executing 2 build triggers"), "{text}");
    let got = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "onbuild-child",
        "cat",
        "/trig",
        "/greeting.txt",
        "/raw.txt",
        "/proxy",
    ]);
    assert_eq!(
        got,
        "triggered\nhello world\nkeep $NAME\nproxy=http://127.0.0.1:3128\n"
    );
    let config = d.docker_ok(&[
        "inspect",
        "-f",
        "{{json .Config.OnBuild}}|{{json .Config.Env}}",
        "onbuild-child",
    ]);
    let (onbuild, env) = config.trim().split_once('|').unwrap();
    assert!(
        matches!(onbuild, "null" | "[]"),
        "the triggers are not inherited: {config}"
    );
    assert!(
        env.contains("FROM_TRIGGER=yes") && !env.contains("PROXY"),
        "{config}"
    );
    d.docker_ok(&["rmi", "onbuild-child", "onbuild-base"]);
}

#[test]
fn cache_from_reuses_the_layers_of_a_given_image() {
    let (_reg, d, image) = daemon_with_image();
    let df = format!(
        "FROM {image}\nCOPY data.txt /data.txt\nRUN cat /proc/sys/kernel/random/uuid > /id\nCMD [\"cat\", \"/id\"]\n"
    );
    let ctx = context(&[("Dockerfile", &df), ("data.txt", "data\n")]);
    let dir = ctx.path().to_str().unwrap();
    let out = build(&d, &["--network", "none", "-t", "src:v1", dir]);
    assert!(out.status.success(), "{}", all_output(&out));
    let original = d.docker_ok(&["run", "--rm", "--network", "none", "src:v1"]);
    // Without the step cache, only --cache-from can give the same layers.
    let (status, _, body) = d.raw("POST", "/build/prune", b"");
    assert_eq!(status, 200, "{body}");
    let out = build(
        &d,
        &[
            "--network",
            "none",
            "--cache-from",
            "src:v1",
            "-t",
            "again:v1",
            dir,
        ],
    );
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("Using cache").count(),
        2,
        "COPY and RUN: {text}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--network", "none", "again:v1"]),
        original
    );
    // An image that does not share the steps gives nothing; a missing one is left out.
    d.raw("POST", "/build/prune", b"");
    let out = build(
        &d,
        &[
            "--network",
            "none",
            "--cache-from",
            "nosuch:v1",
            "-t",
            "fresh:v1",
            dir,
        ],
    );
    assert!(out.status.success(), "{}", all_output(&out));
    assert_ne!(
        d.docker_ok(&["run", "--rm", "--network", "none", "fresh:v1"]),
        original
    );
    d.docker_ok(&["rmi", "src:v1", "again:v1", "fresh:v1"]);
}

#[test]
fn copy_expands_wildcards_and_keys_its_cache_on_the_content_it_copies() {
    let (_reg, d, image) = daemon_with_image();
    let dockerfile = format!(
        "FROM {image}\nCOPY *.txt /t/\nCOPY src/*/*.conf /c/\nCOPY link/ /l/\n\
         CMD [\"sh\", \"-c\", \"ls /t /c; cat /l/f; stat -c %a /t/a.txt\"]\n"
    );
    let ctx = context(&[
        ("Dockerfile", &dockerfile),
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        ("src/one/x.conf", "x"),
        ("src/two/y.conf", "y"),
        ("src/two/z.txt", "z"),
        ("real/f", "1\n"),
    ]);
    std::os::unix::fs::symlink("real", ctx.path().join("link")).unwrap();
    let dir = ctx.path().to_str().unwrap();
    // `--compress`: the context arrives gzipped and is unpacked as it streams in.
    let out = build(&d, &["--compress", "-t", "globs:1", dir]);
    assert!(out.status.success(), "{}", all_output(&out));
    let ran = d.docker_ok(&["run", "--rm", "globs:1"]);
    assert_eq!(ran, "/c:\nx.conf\ny.conf\n\n/t:\na.txt\nb.txt\n1\n644\n");
    // Unchanged: every COPY is a hit, found from the context's digests.
    let text = all_output(&build(&d, &["-t", "globs:2", dir]));
    assert_eq!(text.matches("Using cache").count(), 3, "{text}");
    // A file reached through a symlink in the context changed: that COPY is made again.
    std::fs::write(ctx.path().join("real/f"), "2\n").unwrap();
    let text = all_output(&build(&d, &["-t", "globs:3", dir]));
    assert_eq!(text.matches("Using cache").count(), 2, "{text}");
    assert!(
        d.docker_ok(&["run", "--rm", "globs:3"])
            .ends_with("2\n644\n")
    );
    // A mode change is a change (times are not, as in Docker's checksum).
    std::fs::set_permissions(
        ctx.path().join("a.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let text = all_output(&build(&d, &["-t", "globs:4", dir]));
    assert!(!text.contains("Using cache"), "{text}");
    assert!(d.docker_ok(&["run", "--rm", "globs:4"]).ends_with("755\n"));
    // A pattern that matches nothing fails the build.
    let bad = context(&[("Dockerfile", &format!("FROM {image}\nCOPY *.none /x/\n"))]);
    let out = build(&d, &[bad.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("no source files were specified"),
        "{}",
        all_output(&out)
    );
    d.docker_ok(&["rmi", "globs:1", "globs:2", "globs:3", "globs:4"]);
}

/// A newer docker CLI than Debian's, where the machine has one (`/usr/local/bin/docker`).
fn newer_cli() -> Option<&'static str> {
    const CLI: &str = "/usr/local/bin/docker";
    #[allow(clippy::disallowed_methods)] // asking the client its version
    let out = std::process::Command::new(CLI)
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    let major: u32 = version.split('.').next()?.trim().parse().ok()?;
    (major >= 23).then_some(CLI)
}

#[test]
fn a_newer_docker_cli_builds_with_the_classic_builder() {
    let Some(cli) = newer_cli() else {
        eprintln!("SKIPPED: no docker CLI 23 or newer at /usr/local/bin/docker");
        return;
    };
    let (_reg, d, image) = daemon_with_image();
    let dockerfile = format!(
        "FROM {image}\nCOPY a.txt /a.txt\nRUN echo ran > /r.txt\nCMD [\"cat\", \"/a.txt\", \"/r.txt\"]\n"
    );
    let ctx = context(&[("Dockerfile", &dockerfile), ("a.txt", "from-cli-28\n")]);
    let dir = ctx.path().to_str().unwrap();
    let iid = ctx.path().join("iid");
    let run = |args: &[&str]| {
        #[allow(clippy::disallowed_methods)] // the real client against the daemon under test
        std::process::Command::new(cli)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", ctx.path())
            .env_remove("DOCKER_HOST")
            .args(["-H", &d.host()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "build",
        "-t",
        "cli28:v1",
        "--iidfile",
        iid.to_str().unwrap(),
        dir,
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
    let id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Id}}", "cli28:v1"])
            .trim(),
        id
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "cli28:v1"]),
        "from-cli-28\nran\n"
    );
    let again = run(&["build", "-q", "-t", "cli28:v2", dir]);
    assert!(again.status.success(), "{}", all_output(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);
    d.docker_ok(&["rmi", "cli28:v1", "cli28:v2"]);
}
