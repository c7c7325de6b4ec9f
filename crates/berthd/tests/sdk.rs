//! The Python docker SDK (docker-py, as users script Docker) against berthd: pull, run with
//! output, detached run, inspect, commit, build, kill, wait, remove, and its NotFound on a
//! missing image.

mod common;

use berth_testkit::{BusyboxImage, Registry};
use common::Berthd;

const SCRIPT: &str = r#"
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1])
image = sys.argv[2]
assert c.ping()
assert c.version()["ApiVersion"] == "1.45"
c.images.pull(image)
assert c.images.get(image).attrs["Config"]["Cmd"] == ["sh"]
out = c.containers.run(image, "echo hi from python", remove=True)
assert out == b"hi from python\n", out
ct = c.containers.run(image, "sleep 1000", detach=True, name="py")
ct.reload()
assert ct.status == "running", ct.status
assert c.containers.get("py").attrs["State"]["Running"] is True
ct.exec_run("sh -c 'echo kept > /kept'")
# The upgrade answer is flushed before the process starts: docker-py, which reads the headers
# through a buffer, gets every byte of a quick command's output.
for i in range(30):
    code, out = ct.exec_run("echo quick%d" % i)
    assert (code, out) == (0, b"quick%d\n" % i), (i, code, out)
img = ct.commit(repository="pycommit", tag="v1", message="from python", changes=["CMD cat /kept"])
assert img.attrs["Comment"] == "from python", img.attrs["Comment"]
assert c.containers.run("pycommit:v1", remove=True) == b"kept\n"
c.images.remove("pycommit:v1")
import tempfile, os
ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM %s\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n" % image)
built, logs = c.images.build(path=ctx, tag="pybuilt:v1")
assert any("Successfully built" in l.get("stream", "") for l in logs), list(logs)
assert c.containers.run("pybuilt:v1", remove=True) == b"built\n"
try:
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM %s\nRUN exit 4\n" % image)
    c.images.build(path=ctx)
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 4" in str(e), str(e)
for leftover in c.containers.list(all=True):
    if leftover.name != "py":
        leftover.remove(force=True)
c.images.remove("pybuilt:v1")
ct.kill()
assert ct.wait()["StatusCode"] == 137
ct.remove()
try:
    c.containers.get("py")
    raise SystemExit("removed container still found")
except docker.errors.NotFound:
    pass
try:
    c.images.get("no/such-image")
    raise SystemExit("missing image found")
except docker.errors.ImageNotFound:
    pass
print("sdk ok")
"#;

#[test]
fn the_python_docker_sdk_works() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "bb", "latest")
        .unwrap();
    let d = Berthd::start();
    let image = format!("{}/bb:latest", reg.host());
    #[allow(clippy::disallowed_methods)] // the real SDK, as users run it
    let out = std::process::Command::new("/usr/bin/python3")
        .env("DOCKER_CONFIG", d.roots.path().join("sdk-config"))
        .arg("-c")
        .arg(SCRIPT)
        .arg(d.roots.api_socket())
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sdk ok");
}
