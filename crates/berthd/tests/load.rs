//! Load as operators' machines see it: 200 concurrent `run --rm` from separate clients, 50
//! concurrent pulls of images that share their layer, 1,000 sequential execs. Zero errors,
//! nothing left behind (`system check` clean, no shim without a container), no growth of
//! berthd's memory over the 1,000 execs (each used to keep ~62 kB), and the memory of the
//! burst given back to the system afterwards.

mod common;

use std::process::Stdio;
use std::time::Duration;

use berth_testkit::{BusyboxImage, Registry};
use common::{Berthd, DOCKER};

/// One exec, detached, waited for until it has ended and been inspected.
fn exec_once(d: &Berthd, ctr: &str) {
    let id = d.exec_detached(ctr);
    berth_testkit::wait_for(Duration::from_secs(20), "the exec's end", || {
        let (status, _, body) = d.raw("GET", &format!("/exec/{id}/json"), b"");
        status == 404 || body.contains(r#""Running":false"#)
    })
    .unwrap();
}

#[test]
fn a_loaded_daemon_makes_no_error_and_leaves_nothing() {
    let reg = Registry::start().unwrap();
    let image = BusyboxImage::build().unwrap();
    for i in 0..50 {
        reg.push_image(&image, &format!("bb{i}"), "latest").unwrap();
    }
    let d = Berthd::start();
    let bb = format!("{}/bb0", reg.host());
    d.docker_ok(&["pull", "-q", &bb]);
    let keeper = d
        .docker_ok(&["run", "-d", &bb, "sleep", "100000"])
        .trim()
        .to_string();
    // Warm up, then the idle figure.
    d.docker_ok(&["run", "--rm", &bb, "true"]);
    for _ in 0..20 {
        exec_once(&d, &keeper);
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = d.rss_kib();

    // 200 concurrent runs, each its own client process.
    let host = d.host();
    let runs: Vec<_> = (0..200)
        .map(|_| {
            let (host, bb) = (host.clone(), bb.clone());
            std::thread::spawn(move || {
                #[allow(clippy::disallowed_methods)] // the real client, many at once
                std::process::Command::new(DOCKER)
                    .args(["-H", &host, "run", "--rm", &bb, "true"])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let failed: Vec<String> = runs
        .into_iter()
        .map(|r| r.join().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 200 runs failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );

    // 50 concurrent pulls of images sharing their layer.
    let pulls: Vec<_> = (1..50)
        .map(|i| {
            let (host, name) = (host.clone(), format!("{}/bb{i}", reg.host()));
            std::thread::spawn(move || {
                #[allow(clippy::disallowed_methods)] // the real client, many at once
                std::process::Command::new(DOCKER)
                    .args(["-H", &host, "pull", "-q", &name])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for p in pulls {
        let o = p.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 50);

    // 1,000 sequential execs (after 50 more to let the allocator settle).
    for _ in 0..50 {
        exec_once(&d, &keeper);
    }
    let before_execs = d.rss_kib();
    for _ in 0..1000 {
        exec_once(&d, &keeper);
    }
    let after_execs = d.rss_kib();
    assert!(
        after_execs <= before_execs + 1024,
        "berthd grew from {before_execs} to {after_execs} KiB over 1,000 execs"
    );

    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), &keeper[..12]);
    assert_eq!(common::shims_of(&d), 1);
    let (status, _, leftovers) = d.raw("POST", "/system/check", b"");
    assert_eq!((status, leftovers.trim()), (200, "[]"));
    // The allocator's free memory goes back to the system within seconds, and berthd ends
    // within 10 % of idle (glibc kept ~60 MiB in its thread arenas after the concurrent runs;
    // with one arena, 11-16 % above idle stayed pinned by the worker threads' tcache chunks
    // scattered over the heap; with the caches off it ends about 3 % above idle).
    let settled = berth_testkit::wait_for(Duration::from_secs(30), "memory given back", || {
        d.rss_kib() <= idle + idle / 10
    });
    eprintln!(
        "berthd RSS: idle {idle} KiB, after the load {} KiB",
        d.rss_kib()
    );
    assert!(
        settled.is_ok(),
        "berthd kept {} KiB (idle {idle})",
        d.rss_kib()
    );
    d.docker_ok(&["rm", "-f", &keeper]);
}
