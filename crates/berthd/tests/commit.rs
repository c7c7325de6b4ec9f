//! `docker commit` against berthd: a container's changes (added files and deletions alike)
//! become a new layer on its image, with the `-c` changes, message and author in the image;
//! a running container is paused for it and runs on; bad requests change nothing.

mod common;

use common::daemon_with_image;

#[test]
fn commit_makes_an_image_of_a_containers_changes() {
    let (_reg, d, image) = daemon_with_image();
    d.docker_ok(&[
        "run",
        "--name",
        "src",
        &image,
        "sh",
        "-c",
        "echo hello > /hello && rm /bin/sleep",
    ]);
    let id = d.docker_ok(&[
        "commit",
        "-c",
        r#"CMD ["cat", "/hello"]"#,
        "-c",
        "ENV FOO=bar",
        "-m",
        "a message",
        "-a",
        "Me <me@example.com>",
        "src",
        "committed:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.docker_ok(&["run", "--rm", "committed:v1"]), "hello\n");
    let env_and_gone = d.docker_ok(&[
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "echo $FOO; test -e /bin/sleep || echo gone",
    ]);
    assert_eq!(env_and_gone, "bar\ngone\n");
    let meta = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}|{{len .RootFS.Layers}}",
        "committed:v1",
    ]);
    assert_eq!(
        meta.trim(),
        r#"Me <me@example.com>|a message|["cat","/hello"]|2"#
    );
    let history = d.docker_ok(&["history", "--no-trunc", "committed:v1"]);
    assert!(history.contains("a message"), "{history}");
    // The source image is unchanged.
    let out = d.docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "test -e /bin/sleep && cat /hello",
    ]);
    assert!(!out.status.success());

    // A running container is paused while its layer is read, and runs on after.
    d.docker_ok(&["run", "-d", "--name", "live", &image, "sleep", "1000"]);
    d.docker_ok(&["exec", "live", "sh", "-c", "echo live > /state"]);
    d.docker_ok(&["commit", "live", "live:v1"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "live"])
            .trim(),
        "running"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "live:v1", "cat", "/state"]),
        "live\n"
    );

    // Bad requests: an unknown container, a change that is not allowed. No image is made.
    let before = d.docker_ok(&["images", "-q"]);
    let out = d.docker(&["commit", "nosuch", "x:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such container: nosuch"), "{err}");
    let out = d.docker(&["commit", "-c", "RUN true", "src", "x:2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RUN is not a valid change command"), "{err}");
    assert_eq!(d.docker_ok(&["images", "-q"]), before);

    d.docker_ok(&["rm", "-f", "src", "live"]);
    d.docker_ok(&["rmi", "committed:v1", "live:v1"]);
}
