//! Ways out of a container, each tried as an attacker would against a real berthd, each a
//! regression test that fails if its protection is removed: a local user going through the
//! data root, a volume's copy-up walking out of the image, writable submounts under `ro`
//! binds, and containers reaching the host's loopback.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Berthd, daemon_with_image};

/// The unprivileged user the local-user attacks run as.
const NOBODY: u32 = 65534;

/// Runs `argv` as `nobody` (no supplementary groups); returns (success, stdout+stderr).
fn as_nobody(argv: &[&str]) -> (bool, String) {
    #[allow(clippy::disallowed_methods)] // the attacker's own command
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    match out {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// Every file under `dir` (as root, not following links) whose content holds `needle`.
fn files_holding(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() && !p.ends_with("merged") && !p.ends_with("rootfs") {
            files_holding(&p, needle, out);
        } else if t.is_file() {
            let holds =
                std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle));
            if holds {
                out.push(p);
            }
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// CVE-2021-41091's class: a setuid-root binary planted from inside a container, run by a
/// local user through the data root, and containers' environment secrets read from their
/// records. The test roots' own temp directory is opened up first, so only berthd's modes
/// stand between `nobody` and the files.
#[test]
fn local_users_cannot_run_planted_setuid_binaries_or_read_records() {
    let (_reg, d, image) = daemon_with_image();
    std::fs::set_permissions(d.roots.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "-e",
            "SECRET=hunter2-berth",
            &image,
            "sh",
            "-c",
            "cp /bin/busybox /suid && chmod 4755 /suid && touch /planted && sleep 300",
        ])
        .trim()
        .to_string();
    let data = d.roots.data_root();
    let merged = data.join("containers").join(&id).join("merged");
    berth_testkit::wait::wait_for(Duration::from_secs(20), "the planted binary", || {
        merged.join("planted").exists()
    })
    .unwrap();
    assert_eq!(mode(&merged.join("suid")), 0o4755, "the plant worked");

    let suid = merged.join("suid");
    let (ran, out) = as_nobody(&[suid.to_str().unwrap(), "id", "-u"]);
    assert!(
        !ran && !out.lines().any(|l| l.trim() == "0"),
        "nobody ran the planted binary: {out}"
    );
    let record = data.join("containers").join(&id).join("config.v2.json");
    let (read, out) = as_nobody(&["/bin/cat", record.to_str().unwrap()]);
    assert!(!read, "nobody read the record: {out}");
    assert_eq!(mode(&record), 0o600);

    // Every file that holds the secret, under either root, is out of nobody's reach.
    let mut holding = Vec::new();
    for root in [data.clone(), d.roots.exec_root()] {
        files_holding(&root, b"hunter2-berth", &mut holding);
        assert_eq!(mode(&root), 0o710, "{}", root.display());
        let (listed, out) = as_nobody(&["/bin/ls", root.to_str().unwrap()]);
        assert!(!listed, "nobody listed {}: {out}", root.display());
    }
    assert!(holding.len() >= 2, "the record and the bundle: {holding:?}");
    for p in &holding {
        let (read, out) = as_nobody(&["/bin/cat", p.to_str().unwrap()]);
        assert!(
            !read && !out.contains("hunter2"),
            "nobody read {}: {out}",
            p.display()
        );
    }

    // An existing root made world-readable (an older version's) is repaired at start.
    for p in [&data, &data.join("containers")] {
        std::fs::set_permissions(p, PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&record, PermissionsExt::from_mode(0o644)).unwrap();
    let d: Berthd = d.crash_and_restart();
    // Answered once the daemon has loaded its records (the socket is bound before).
    assert!(d.docker_ok(&["ps", "-aq"]).contains(&id[..12]));
    let data = d.roots.data_root();
    assert_eq!(mode(&data), 0o710);
    assert_eq!(mode(&data.join("containers")), 0o710);
    assert_eq!(mode(&record), 0o600);
    d.docker_ok(&["rm", "-f", &id]);
}

/// An IPv4/UDP datagram in an Ethernet frame, as a process with CAP_NET_RAW (every default
/// container) can write one onto its interface.
fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(dst_mac);
    f.extend(src_mac);
    f.extend([0x08, 0x00]);
    let total = u16::try_from(20 + 8 + payload.len()).unwrap();
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !u16::try_from((sum & 0xffff) + (sum >> 16)).unwrap();
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend(40000u16.to_be_bytes());
    f.extend(port.to_be_bytes());
    f.extend(u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    f.extend([0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend(payload);
    f
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// Writes `frame` on `eth0` of the network namespace of process `pid`, from a thread that
/// entered it (the rest of the test process stays in the host's namespace).
fn send_from_container(pid: u32, frame: Vec<u8>) {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a thread of our own with a valid namespace descriptor; the thread
        // ends after the send, so no other code runs in that namespace.
        let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "{}", std::io::Error::last_os_error());
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        assert!(index > 0);
        // SAFETY: all-zero is a valid sockaddr_ll, filled in below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = i32::try_from(index).unwrap();
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the buffer and address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
            )
        };
        assert_eq!(usize::try_from(sent).ok(), Some(frame.len()));
        // SAFETY: closing the descriptor we opened.
        unsafe { libc::close(fd) };
    })
    .join()
    .unwrap();
}

/// CVE-2020-8558's class: the bridges carry `route_localnet` so that published ports answer on
/// the host's 127.0.0.1, which would also let a container's crafted datagrams reach services
/// bound to the host's loopback. A service on the gateway address receives the same crafted
/// datagram (so the crafting works); one on 127.0.0.1 must not; and the host still reaches a
/// port published on 127.0.0.1.
#[test]
fn containers_cannot_reach_the_hosts_loopback() {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream, UdpSocket};
    let (_reg, d, image) = daemon_with_image();
    let port = berth_testkit::alloc::free_port().unwrap();
    let map = format!("127.0.0.1:{port}:80");
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "-p",
            &map,
            &image,
            "sh",
            "-c",
            "mkdir /w && echo loopback-published > /w/index.html && httpd -f -p 80 -h /w",
        ])
        .trim()
        .to_string();
    let fields = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Pid}} {{.NetworkSettings.IPAddress}} {{.NetworkSettings.MacAddress}} {{.NetworkSettings.Gateway}}",
        &id,
    ]);
    let f: Vec<&str> = fields.split_whitespace().collect();
    let (pid, ip, mac, gateway): (u32, Ipv4Addr, _, Ipv4Addr) = (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        parse_mac(f[2]),
        f[3].parse().unwrap(),
    );
    let bridge_mac = parse_mac(
        &std::fs::read_to_string(format!("/sys/class/net/{}/address", d.subnet.bridge_name()))
            .unwrap(),
    );
    let receives = |bind: Ipv4Addr, dst: Ipv4Addr| {
        let sock = UdpSocket::bind((bind, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut buf = [0u8; 64];
        // A few tries: the first frame may wait for the bridge to learn the container's MAC.
        (0..5).any(|_| {
            send_from_container(
                pid,
                udp_frame(bridge_mac, mac, ip, dst, port, b"from-the-container"),
            );
            sock.recv(&mut buf)
                .is_ok_and(|n| &buf[..n] == b"from-the-container")
        })
    };
    assert!(
        receives(gateway, gateway),
        "a crafted datagram to the gateway arrives (the probe works)"
    );
    assert!(
        !receives(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
        "a container reached a service bound to the host's 127.0.0.1"
    );

    let mut reply = String::new();
    berth_testkit::wait::wait_for(Duration::from_secs(10), "the published port", || {
        reply = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(s, "GET / HTTP/1.0\r\n\r\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .unwrap_or_default();
        reply.contains("loopback-published")
    })
    .unwrap();
    d.docker_ok(&["rm", "-f", &id]);
}

/// A tmpfs mounted below a directory of the test's own, unmounted (and the directory removed)
/// when dropped.
struct Submount {
    dir: tempfile::TempDir,
}

impl Submount {
    fn new() -> Submount {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        rustix::mount::mount(
            "tmpfs",
            dir.path().join("sub"),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        Submount { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

impl Drop for Submount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(
            self.dir.path().join("sub"),
            rustix::mount::UnmountFlags::DETACH,
        );
    }
}

/// `-v /:/host:ro` used to leave every mount below the bind writable: the host's
/// `/proc/sys/kernel/core_pattern` (host code execution) and any other submount. `ro` is now
/// read-only all the way down; `ro-non-recursive` keeps Docker's old meaning (top only),
/// which shows the probe would see a writable submount.
#[test]
fn ro_binds_are_read_only_all_the_way_down() {
    let (_reg, d, image) = daemon_with_image();
    let sub = Submount::new();
    let host_ro = format!("{}:/host:ro", sub.path());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &host_ro,
        "-v",
        "/:/hostroot:ro",
        &image,
        "sh",
        "-c",
        "touch /host/x 2>/dev/null; echo top=$?; touch /host/sub/y 2>/dev/null; echo sub=$?; \
         (exec 3>>/hostroot/proc/sys/kernel/core_pattern) 2>/dev/null && echo core_pattern=open; \
         touch /hostroot/sys/fs/cgroup/x 2>/dev/null && echo cgroupfs=written; echo done",
    ]);
    assert!(out.contains("top=1"), "{out}");
    assert!(
        out.contains("sub=1"),
        "a submount of an ro bind is writable: {out}"
    );
    assert!(!out.contains("core_pattern=open"), "{out}");
    assert!(!out.contains("cgroupfs=written"), "{out}");
    assert!(out.contains("done"), "{out}");
    assert!(!sub.dir.path().join("sub/y").exists());

    let top_only = format!("{}:/host:ro-non-recursive", sub.path());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &top_only,
        &image,
        "sh",
        "-c",
        "touch /host/x 2>/dev/null; echo top=$?; touch /host/sub/y 2>/dev/null; echo sub=$?",
    ]);
    assert!(out.contains("top=1") && out.contains("sub=0"), "{out}");
    assert!(sub.dir.path().join("sub/y").exists());
}

fn symlink_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, name, target)
}

/// A host directory with a file only the host has: what an escaping copy-up would bring in.
fn host_secret_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host-secret"), "host only").unwrap();
    dir
}

fn volume_dir(d: &Berthd, name: &str) -> PathBuf {
    let src = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", name]);
    PathBuf::from(src.trim())
}

/// A volume's copy-up used the mount target raw and walked the image's layers by path on the
/// host: `-v v1:/../../..<host dir>` copied the host's directory into the volume, and an
/// image `VOLUME` through a symlink (`x -> /`) handed the container the host's files. Now the
/// target is cleaned as Docker cleans it and resolved inside the image.
#[test]
fn volume_copy_up_never_reads_the_host() {
    let d = Berthd::start();
    let secret = host_secret_dir();
    let host = secret.path().to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("rootfs.tar");
    std::fs::write(
        &tar,
        berth_testkit::busybox::layer_tar_plus(|b| {
            symlink_entry(b, "x", "/")?;
            symlink_entry(b, "hostlink", host)
        })
        .unwrap(),
    )
    .unwrap();
    let volume_through_link = format!("VOLUME [\"/x{host}\", \"/hostlink\"]");
    d.docker_ok(&[
        "import",
        "-c",
        &volume_through_link,
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "hostile:volumes",
    ]);

    // A target climbing out of the layer directory: cleaned to `<host dir>` in the image,
    // where the image has nothing.
    let climbing = format!("v1:/../../../../../../../../../../../..{host}");
    d.docker_ok(&[
        "create",
        "--name",
        "climb",
        "-v",
        &climbing,
        "hostile:volumes",
    ]);
    let v1 = volume_dir(&d, "v1");
    assert!(v1.is_dir(), "{}", v1.display());
    assert!(
        std::fs::read_dir(&v1).unwrap().next().is_none(),
        "the host's directory was copied into the volume"
    );

    // VOLUMEs through symlinks: `/x/<host dir>` is `<host dir>` in the image (nothing there);
    // `/hostlink` is a link to a path the image does not have.
    d.docker_ok(&["create", "--name", "linked", "hostile:volumes"]);
    let srcs = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}} {{end}}",
        "linked",
    ]);
    for src in srcs.split_whitespace() {
        let mut found = Vec::new();
        files_holding(Path::new(src), b"host only", &mut found);
        assert!(found.is_empty(), "host files in a volume: {found:?}");
        assert!(!Path::new(src).join("host-secret").exists());
    }
    assert!(secret.path().join("host-secret").exists());
    assert_eq!(
        std::fs::read_dir(secret.path()).unwrap().count(),
        1,
        "the host dir changed"
    );
    d.docker_ok(&["rm", "-v", "climb", "linked"]);
    d.docker_ok(&["volume", "rm", "v1"]);
}

/// `GET path` over HTTP/1.0 (so the body is the raw bytes up to the close); the status and body.
fn get_bytes(d: &Berthd, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.roots.api_socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp[end + 4..].to_vec())
}

/// Every entry of a tar: (name, content), parsed strictly (a cut-short tar fails).
fn tar_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// `docker cp` out of a container while it exchanges a file and a symlink to a host path
/// (`renameat2(RENAME_EXCHANGE)`, done here through the container's root, as a process in it
/// would): the copy used to open the walked names by path and returned the host file's
/// content in some responses. And a copy of `/` leaves the kernel's file systems out instead
/// of being cut short inside `/proc` with a 200.
#[test]
fn cp_out_never_follows_a_swapped_link_and_stops_at_pseudo_file_systems() {
    let (_reg, d, image) = daemon_with_image();
    let secret = host_secret_dir();
    let host_file = secret.path().join("host-secret");
    // Twenty file/link pairs: twenty chances per response.
    let script = format!(
        "mkdir /race && for i in $(seq 0 19); do echo inside > /race/f$i; ln -s {} /race/l$i; done; \
         touch /ready; sleep 300",
        host_file.display()
    );
    let id = d
        .docker_ok(&["run", "-d", &image, "sh", "-c", &script])
        .trim()
        .to_string();
    let pid: u32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    berth_testkit::wait::wait_for(Duration::from_secs(20), "the race set-up", || {
        root.join("ready").exists()
    })
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let dir = std::fs::File::open(root.join("race")).unwrap();
        std::thread::spawn(move || {
            let pairs: Vec<(String, String)> = (0..20)
                .map(|i| (format!("f{i}"), format!("l{i}")))
                .collect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (f, l) in &pairs {
                    let _ = rustix::fs::renameat_with(
                        &dir,
                        f.as_str(),
                        &dir,
                        l.as_str(),
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            }
        })
    };
    let path = format!("/containers/{id}/archive?path=/race");
    let mut files = 0;
    for i in 0..200 {
        let (status, body) = get_bytes(&d, &path);
        assert_eq!(status, 200);
        for (name, data) in tar_entries(&body) {
            // (A prefix: the entry's size is the one the walk saw for the container's file.)
            assert!(
                !data.windows(4).any(|w| w == b"host"),
                "response {i} held the host's file as {name}"
            );
            files += usize::from(data == b"inside\n");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(files > 0, "the container's own file was copied at times");

    // The whole filesystem: a well-formed tar with the image's files, /proc and /sys as
    // empty directories.
    let (status, body) = get_bytes(&d, &format!("/containers/{id}/archive?path=/"));
    assert_eq!(status, 200);
    let names: Vec<String> = tar_entries(&body).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "/bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("/race/")));
    for pseudo in ["/proc/", "/sys/"] {
        assert!(
            !names.iter().any(|n| n.starts_with(pseudo)),
            "{pseudo} content copied: {:?}",
            names
                .iter()
                .filter(|n| n.starts_with(pseudo))
                .take(5)
                .collect::<Vec<_>>()
        );
    }
    d.docker_ok(&["rm", "-f", &id]);
}

/// The hostile corpus (berth-testkit's `hostile`: `..` and absolute names, writes through
/// symlinks, hard links out, devices, setuid files, whiteouts of `..`, PAX and GNU overrides,
/// huge headers), each through import, load, pull, cp in, run and cp out: whatever berthd
/// refuses or takes in, the host directory they aim at keeps exactly its secret, unchanged,
/// and no response or container output ever holds the secret.
#[test]
fn the_hostile_corpus_never_reaches_outside_the_roots() {
    use berth_testkit::hostile;
    let (reg, d, image) = daemon_with_image();
    let sentinel = tempfile::tempdir().unwrap();
    hostile::make_sentinel(sentinel.path()).unwrap();
    let corpus = hostile::layers(sentinel.path()).unwrap();
    assert!(corpus.len() >= 20);
    let leaks = |what: &str, bytes: &[u8]| {
        assert!(
            !bytes
                .windows(hostile::SECRET_TEXT.len())
                .any(|w| w == hostile::SECRET_TEXT),
            "{what}: the secret came out"
        );
    };
    let target = d.docker_ok(&["create", &image, "true"]).trim().to_string();
    let tmp = tempfile::tempdir().unwrap();
    for (i, (what, tar)) in corpus.iter().enumerate() {
        let file = tmp.path().join(format!("{i}.tar"));
        std::fs::write(&file, tar).unwrap();
        let mut accepted = Vec::new();
        // docker import
        let tag = format!("hostile-import:{i}");
        let out = d.docker(&["import", file.to_str().unwrap(), &tag]);
        leaks(what, &out.stderr);
        if out.status.success() {
            accepted.push(tag);
        }
        // docker load (a docker-archive of the layer)
        let img = berth_testkit::BusyboxImage::from_layer_tar(tar, None).unwrap();
        let archive = tmp.path().join(format!("{i}.docker.tar"));
        let tag = format!("hostile-load:{i}");
        img.write_docker_archive(&archive, &tag).unwrap();
        let out = d.docker(&["load", "-i", archive.to_str().unwrap()]);
        leaks(what, &out.stderr);
        if out.status.success() {
            accepted.push(tag);
        }
        // docker pull from a registry
        let repo = format!("hostile{i}");
        reg.push_image(&img, &repo, "latest").unwrap();
        let tag = format!("{}/{repo}:latest", reg.host());
        let out = d.docker(&["pull", "-q", &tag]);
        leaks(what, &out.stderr);
        if out.status.success() {
            accepted.push(tag);
        }
        // docker cp into a container
        let (_, _, body) = d.raw("PUT", &format!("/containers/{target}/archive?path=/"), tar);
        leaks(what, body.as_bytes());
        hostile::check_sentinel(sentinel.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        // What was taken in runs confined, and copies out of it hold only its own files.
        // Harmless for the host, and taken in by Docker too: the corpus's tars are well formed.
        if ["setuid-root file", "character device of host memory"].contains(what) {
            assert_eq!(accepted.len(), 3, "{what}: refused by {accepted:?}");
        }
        if let Some(tag) = accepted.first() {
            let out = d.docker(&[
                "run", "--rm", tag, "sh", "-c",
                "cat /hl /hl2 /hl3 /hl4 /hl5 /over /lnk/secret /sd/secret /mem /disk 2>/dev/null | head -c 4096; \
                 echo x > /mem; echo x > /disk; ls /",
            ]);
            leaks(what, &out.stdout);
            let ctr = d.docker_ok(&["create", tag, "true"]).trim().to_string();
            let (_, everything) = get_bytes(&d, &format!("/containers/{ctr}/archive?path=/"));
            leaks(what, &everything);
            let (_, _, diff) = d.raw("GET", &format!("/containers/{ctr}/export"), b"");
            leaks(what, diff.as_bytes());
            d.docker_ok(&["rm", &ctr]);
        }
        for tag in &accepted {
            let _ = d.docker(&["rmi", "-f", tag]);
        }
        hostile::check_sentinel(sentinel.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    d.docker_ok(&["rm", &target]);
}

/// Loads an image of several layers (`layers`, bottom first) with `VOLUME`s, through a
/// `docker save` archive.
fn load_layers(d: &Berthd, tag: &str, layers: &[Vec<u8>], volumes: &[&str]) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| berth_testkit::busybox::sha256_digest(l))
        .collect();
    let vols: serde_json::Map<String, serde_json::Value> = volumes
        .iter()
        .map(|v| (v.to_string(), serde_json::json!({})))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Volumes": vols,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let names: Vec<String> = diff_ids
        .iter()
        .map(|id| format!("{}/layer.tar", id.trim_start_matches("sha256:")))
        .collect();
    let config_name = format!(
        "{}.json",
        berth_testkit::busybox::sha256_digest(&config).trim_start_matches("sha256:")
    );
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [tag], "Layers": names}
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    for (name, layer) in names.iter().zip(layers) {
        add(name, layer);
    }
    add(&config_name, &config);
    add("manifest.json", &manifest);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    d.docker_ok(&["load", "-i", path.to_str().unwrap()]);
}

/// One layer tar with the files `(name, content)`.
fn layer_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A volume's copy-up merges every layer of the image (a `VOLUME` filled by several layers,
/// the common case of database images), never more than the image holds.
#[test]
fn volume_copy_up_merges_many_layers() {
    let d = Berthd::start();
    let mut layers = vec![berth_testkit::busybox::layer_tar().unwrap()];
    for i in 0..4 {
        layers.push(layer_of(&[(&format!("data/from-layer-{i}"), "x")]));
    }
    load_layers(&d, "layered:1", &layers, &["/data"]);
    let out = d.docker_ok(&["run", "--rm", "layered:1", "ls", "/data"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [
            "from-layer-0",
            "from-layer-1",
            "from-layer-2",
            "from-layer-3"
        ]
    );
}
