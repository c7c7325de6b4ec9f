//! BuildKit's `RUN --mount` and the build's RUN settings through `berth build` against a real
//! berthd: a secret is readable only during its RUN and is in no layer; a cache mount keeps
//! what one build wrote for the next and is in no image; a tmpfs leaves nothing; a bind mount
//! from the context or an earlier stage is seen but not kept, and a link in the context cannot
//! reach a host file through it; `--add-host` and `--shm-size` reach the RUN containers, and
//! `FROM --platform` takes this host's platform and refuses another.

mod common;

use common::{Berthd, IMAGE, text};

use berth_testkit::files::dir_with as context;

fn build(d: &Berthd, ctx: &tempfile::TempDir, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", "--network", "none"];
    args.extend_from_slice(extra);
    args.push(ctx.path().to_str().unwrap());
    d.berth(&args)
}

fn run(d: &Berthd, image: &str, script: &str) -> String {
    d.berth_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn a_secret_is_seen_by_its_run_only_and_is_in_no_layer() {
    let d = Berthd::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "s3cr3t-Berth-value").unwrap();
    let df = format!(
        "FROM {IMAGE}\nRUN --mount=type=secret,id=tok [ \"$(wc -c < /run/secrets/tok)\" -eq 18 ] && grep -q r3t-B /run/secrets/tok && echo seen > /seen\n\
         RUN --mount=type=secret,id=tok,target=/etc/tok.txt,mode=0440 ls -l /etc/tok.txt > /mode\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /skipped\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let src = format!("id=tok,src={}", secret.display());
    let out = build(&d, &ctx, &["--secret", &src, "-t", "secret:v1"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let seen = run(
        &d,
        "secret:v1",
        "cat /seen /skipped /mode; ls /run; test ! -e /etc/tok.txt && echo gone",
    );
    assert!(seen.starts_with("seen\nskipped\n-r--r-----"), "{seen}");
    assert!(
        seen.ends_with("gone\n") && !seen.contains("secrets"),
        "{seen}"
    );
    // Not in any layer: the saved image holds no byte of it.
    let tar = dir.path().join("image.tar");
    d.berth_ok(&["save", "-o", tar.to_str().unwrap(), "secret:v1"]);
    let bytes = std::fs::read(&tar).unwrap();
    assert!(
        !bytes.windows(18).any(|w| w == b"s3cr3t-Berth-value"),
        "the secret is in the image"
    );
    // A required secret that was not given fails the build.
    let df = format!("FROM {IMAGE}\nRUN --mount=type=secret,id=tok,required true\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(&d, &ctx, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("secret tok: not found"),
        "{}",
        text(&out.stderr)
    );
    d.berth_ok(&["rmi", "secret:v1"]);
}

#[test]
fn cache_tmpfs_and_bind_mounts_are_seen_and_not_kept() {
    let d = Berthd::with_busybox();
    let first = format!(
        "FROM {IMAGE}\nRUN --mount=type=cache,target=/cache,id=berth-test echo kept > /cache/f\n\
         RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/a && grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs > /tmpfs\n\
         RUN --mount=type=bind,source=data,target=/data cat /data/in.txt > /from-bind\n\
         RUN --mount=type=bind,source=data,target=/data,rw echo scribble > /data/in.txt\n"
    );
    let ctx = context(&[("Dockerfile", &first), ("data/in.txt", "bound\n")]);
    let out = build(&d, &ctx, &["-t", "mounts:v1"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = run(
        &d,
        "mounts:v1",
        "cat /tmpfs /from-bind; ls -a / | grep -E '^(cache|scratch|data)$' || echo none",
    );
    assert_eq!(got, "tmpfs\nbound\nnone\n");
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("data/in.txt")).unwrap(),
        "bound\n"
    );
    // The next build finds what the first left in the cache mount.
    let second = format!(
        "FROM {IMAGE}\nRUN --mount=type=cache,target=/c,id=berth-test,sharing=locked cat /c/f > /got\n"
    );
    let ctx2 = context(&[("Dockerfile", &second)]);
    let out = build(&d, &ctx2, &["-t", "mounts:v2"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(run(&d, "mounts:v2", "cat /got"), "kept\n");
    let df = d.berth_ok(&["system", "df"]);
    assert!(df.lines().any(|l| l.starts_with("Build Cache")), "{df}");
    // A bind from an earlier stage.
    let staged = format!(
        "FROM {IMAGE} AS tools\nRUN echo tool > /tool.txt\nFROM {IMAGE}\n\
         RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t.txt cp /t.txt /copied\n"
    );
    let ctx3 = context(&[("Dockerfile", &staged)]);
    let out = build(&d, &ctx3, &["-t", "mounts:v3"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        run(
            &d,
            "mounts:v3",
            "cat /copied; test ! -e /t.txt && echo clean"
        ),
        "tool\nclean\n"
    );
    for i in ["mounts:v1", "mounts:v2", "mounts:v3"] {
        d.berth_ok(&["rmi", i]);
    }
}

#[test]
fn a_link_in_the_context_cannot_bind_a_host_file() {
    let d = Berthd::with_busybox();
    let df = format!(
        "FROM {IMAGE}\nRUN --mount=type=bind,source=evil/passwd,target=/p cat /p > /leak\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    std::os::unix::fs::symlink("/etc", ctx.path().join("evil")).unwrap();
    let out = build(&d, &ctx, &["-t", "evil:v1"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "the link reached the host: {all}");
    assert!(!all.contains("root:x:0:0"), "{all}");
}

#[test]
fn run_containers_take_the_builds_hosts_shm_and_platform() {
    let d = Berthd::with_busybox();
    let df = format!(
        "FROM --platform=$BUILDPLATFORM {IMAGE}\nARG TARGETARCH\n\
         RUN grep -w berth-db /etc/hosts > /hosts && df -k /dev/shm | tail -1 > /shm && echo $TARGETARCH > /arch\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(
        &d,
        &ctx,
        &[
            "--add-host",
            "berth-db:10.1.2.3",
            "--shm-size",
            "32m",
            "-t",
            "hosts:v1",
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = run(&d, "hosts:v1", "cat /hosts /shm /arch");
    assert!(got.starts_with("10.1.2.3\tberth-db\n"), "{got}");
    assert!(got.contains(" 32768 "), "{got}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert!(got.ends_with(&format!("{arch}\n")), "{got}");
    let other = if arch == "amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let df = format!("FROM --platform={other} {IMAGE}\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(&d, &ctx, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("builds for"),
        "{}",
        text(&out.stderr)
    );
    let out = build(&d, &ctx, &["--platform", other]);
    assert!(!out.status.success());
    d.berth_ok(&["rmi", "hosts:v1"]);
}

#[test]
fn independent_stages_build_at_once_and_print_in_order() {
    let d = Berthd::with_busybox();
    // Each of the first two stages waits (10 s at most) for the other's mark in a shared cache
    // mount: built one after the other, the first would give up and fail the build.
    let meet = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,target=/sync,id=meet,sharing=shared touch /sync/{me} && \
             i=0; while [ ! -e /sync/{other} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             test -e /sync/{other} && echo {me} > /{me}\n"
        )
    };
    let df = format!(
        "FROM {IMAGE} AS left\n{}FROM {IMAGE} AS right\n{}FROM {IMAGE}\n\
         COPY --from=left /left /left\nCOPY --link --from=right /right /right\n",
        meet("left", "right"),
        meet("right", "left")
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(&d, &ctx, &["-t", "staged:v1"]);
    let all = text(&out.stdout);
    assert!(out.status.success(), "{all}{}", text(&out.stderr));
    assert_eq!(run(&d, "staged:v1", "cat /left /right"), "left\nright\n");
    let steps: Vec<&str> = all.lines().filter(|l| l.starts_with("Step ")).collect();
    let numbers: Vec<&str> = steps
        .iter()
        .map(|s| s.split('/').next().unwrap_or(""))
        .collect();
    assert_eq!(
        numbers,
        [
            "Step 1", "Step 2", "Step 3", "Step 4", "Step 5", "Step 6", "Step 7"
        ],
        "{all}"
    );
    d.berth_ok(&["rmi", "staged:v1"]);
}

#[test]
fn the_live_view_shows_steps_cache_hits_and_a_failures_output() {
    let d = Berthd::with_busybox();
    let df = format!("FROM {IMAGE}\nENV A=b\nRUN echo built-here > /f\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(&d, &ctx, &["--progress", "tty", "-t", "view:v1"]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("FINISHED"), "{shown}");
    assert!(shown.contains("[3/3] RUN echo built-here > /f"), "{shown}");
    assert!(shown.contains("Successfully tagged view:v1"), "{shown}");
    let again = text(&build(&d, &ctx, &["--progress", "tty"]).stdout);
    assert!(again.contains("CACHED [3/3] RUN"), "{again}");
    let df = format!("FROM {IMAGE}\nRUN echo before-failing && exit 3\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let out = build(&d, &ctx, &["--progress", "tty"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("before-failing"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("returned a non-zero code: 3"),
        "{}",
        text(&out.stderr)
    );
    d.berth_ok(&["rmi", "view:v1"]);
}
