//! A corpus of hostile layer tars, each aimed at a host directory of the test's own (the
//! "sentinel", holding one `secret` file): names with `..` and absolute names, writes through
//! symlinks (absolute, relative, chained, looping), hard links out, device nodes, setuid files,
//! whiteouts of `..`, PAX and GNU long-name overrides and huge headers. Every entry is written
//! with raw header bytes, so nothing here is cleaned up by the tar crate's own checks.
//!
//! Each tar starts with the busybox layer, so what an engine accepts can also be run. The
//! tests assert that whatever an engine does with them (refuse them, or take them in
//! confined), nothing outside its roots is written or read: the sentinel keeps exactly its
//! `secret`, unchanged and with one link.

use std::path::Path;

/// What the hostile entries try to reach.
pub const SECRET: &str = "secret";
/// The secret's content; an engine that leaks it shows these bytes somewhere.
pub const SECRET_TEXT: &[u8] = b"sentinel-secret-4f1c";
/// The name every written-outside file carries.
pub const PWNED: &str = "pwned";

/// One raw tar entry.
struct Raw<'a> {
    name: &'a [u8],
    kind: u8,
    link: &'a [u8],
    mode: u32,
    data: &'a [u8],
    dev: (u32, u32),
}

impl Default for Raw<'_> {
    fn default() -> Self {
        Raw {
            name: b"",
            kind: b'0',
            link: b"",
            mode: 0o644,
            data: b"",
            dev: (0, 0),
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{v:0n$o}");
    field[..n].copy_from_slice(&s.as_bytes()[s.len() - n..]);
    field[n] = 0;
}

/// A 512-byte ustar header with the name and link copied byte for byte (truncated to 100).
fn header(e: &Raw<'_>) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = e.name.len().min(100);
    h[..n].copy_from_slice(&e.name[..n]);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], e.data.len() as u64);
    octal(&mut h[136..148], 0);
    h[156] = e.kind;
    let l = e.link.len().min(100);
    h[157..157 + l].copy_from_slice(&e.link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(e.dev.0));
    octal(&mut h[337..345], u64::from(e.dev.1));
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

fn push(out: &mut Vec<u8>, e: &Raw<'_>) {
    out.extend_from_slice(&header(e));
    out.extend_from_slice(e.data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A GNU long name (`L`) or long link (`K`) record for the entry that follows.
fn gnu_long(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let mut data = value.to_vec();
    data.push(0);
    push(
        out,
        &Raw {
            name: b"././@LongLink",
            kind,
            data: &data,
            ..Raw::default()
        },
    );
}

/// A PAX extended header (`x`) with `records` (`key=value`) for the entry that follows.
fn pax(out: &mut Vec<u8>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        let body_len = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    push(
        out,
        &Raw {
            name: b"PaxHeaders/x",
            kind: b'x',
            data: &data,
            ..Raw::default()
        },
    );
}

fn file(name: &[u8]) -> Raw<'_> {
    Raw {
        name,
        data: b"written by a hostile layer\n",
        ..Raw::default()
    }
}

fn symlink<'a>(name: &'a [u8], target: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: b'2',
        link: target,
        mode: 0o777,
        ..Raw::default()
    }
}

fn hardlink<'a>(name: &'a [u8], target: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: b'1',
        link: target,
        ..Raw::default()
    }
}

/// `s` reached by climbing from anywhere in the layer.
fn climbing(s: &str) -> String {
    format!("../../../../../../../../../../../..{s}")
}

/// The file a successful escape writes, under `prefix`.
fn pwned(prefix: &str) -> Vec<u8> {
    format!("{prefix}/{PWNED}").into_bytes()
}

/// The sentinel's secret, under `prefix`.
fn secret(prefix: &str) -> Vec<u8> {
    format!("{prefix}/{SECRET}").into_bytes()
}

/// Builds one hostile entry sequence onto a layer tar.
type Build = Box<dyn Fn(&mut Vec<u8>)>;

/// Names that climb out, absolute names, and symlinks written through.
fn name_and_symlink_cases(s: &str) -> Vec<(&'static str, Build)> {
    let s = s.to_string();
    let up = climbing(&s);
    vec![
        (
            "dotdot name",
            Box::new({
                let n = pwned(&up);
                move |o| push(o, &file(&n))
            }),
        ),
        (
            "absolute name",
            Box::new({
                let n = pwned(&s);
                move |o| push(o, &file(&n))
            }),
        ),
        (
            "dot-dot after dot",
            Box::new({
                let n = pwned(&format!("./a/../..{up}"));
                move |o| push(o, &file(&n))
            }),
        ),
        (
            "absolute symlink, then a write through it",
            Box::new({
                let t = s.clone().into_bytes();
                move |o| {
                    push(o, &symlink(b"lnk", &t));
                    push(o, &file(&pwned("lnk")))
                }
            }),
        ),
        (
            "relative symlink up, then a write through it",
            Box::new({
                let t = up.clone().into_bytes();
                move |o| {
                    push(o, &symlink(b"rl", &t));
                    push(o, &file(&pwned("rl")))
                }
            }),
        ),
        (
            "symlink chain, then a write through it",
            Box::new({
                let t = s.clone().into_bytes();
                move |o| {
                    push(o, &symlink(b"ca", b"cb"));
                    push(o, &symlink(b"cb", &t));
                    push(o, &file(&pwned("ca")))
                }
            }),
        ),
        (
            "symlink to a file, then the same name as a file",
            Box::new({
                let t = secret(&s);
                move |o| {
                    push(o, &symlink(b"over", &t));
                    push(o, &file(b"over"))
                }
            }),
        ),
        (
            "symlink loop, then a write through it",
            Box::new(|o| {
                push(o, &symlink(b"loop1", b"loop2"));
                push(o, &symlink(b"loop2", b"loop1"));
                push(o, &file(b"loop1/x"));
            }),
        ),
    ]
}

/// Hard links out, device nodes and setuid files.
fn link_and_device_cases(s: &str) -> Vec<(&'static str, Build)> {
    let s = s.to_string();
    let up = climbing(&s);
    vec![
        (
            "hard link to an absolute host path",
            Box::new({
                let t = secret(&s);
                move |o| push(o, &hardlink(b"hl", &t))
            }),
        ),
        (
            "hard link with dot-dot",
            Box::new({
                let t = secret(&up);
                move |o| push(o, &hardlink(b"hl2", &t))
            }),
        ),
        (
            "hard link through a symlink",
            Box::new({
                let t = s.clone().into_bytes();
                move |o| {
                    push(o, &symlink(b"sd", &t));
                    push(o, &hardlink(b"hl3", &secret("sd")))
                }
            }),
        ),
        (
            "hard link to a symlink that points out",
            Box::new({
                let t = secret(&s);
                move |o| {
                    push(o, &symlink(b"sl", &t));
                    push(o, &hardlink(b"hl4", b"sl"))
                }
            }),
        ),
        (
            "character device of host memory",
            Box::new(|o| {
                push(
                    o,
                    &Raw {
                        name: b"mem",
                        kind: b'3',
                        dev: (1, 1),
                        mode: 0o666,
                        ..Raw::default()
                    },
                );
            }),
        ),
        (
            "block device of a host disk",
            Box::new(|o| {
                push(
                    o,
                    &Raw {
                        name: b"disk",
                        kind: b'4',
                        dev: (8, 0),
                        mode: 0o666,
                        ..Raw::default()
                    },
                );
            }),
        ),
        (
            "setuid-root file",
            Box::new(|o| {
                push(
                    o,
                    &Raw {
                        name: b"suid",
                        mode: 0o4755,
                        data: b"#!/bin/sh\nid\n",
                        ..Raw::default()
                    },
                );
            }),
        ),
    ]
}

/// Whiteouts, and headers (PAX, GNU) that rename an entry out of the layer.
fn whiteout_and_header_cases(s: &str) -> Vec<(&'static str, Build)> {
    let s = s.to_string();
    let up = climbing(&s);
    vec![
        (
            "whiteout of dot-dot",
            Box::new(|o| {
                push(o, &file(b".wh.."));
                push(o, &file(b"etc/.wh.."))
            }),
        ),
        (
            "whiteout climbing out",
            Box::new({
                let n = format!("{up}/.wh.{SECRET}").into_bytes();
                move |o| push(o, &file(&n))
            }),
        ),
        (
            "opaque marker outside",
            Box::new({
                let n = format!("{up}/.wh..wh..opq").into_bytes();
                move |o| push(o, &file(&n))
            }),
        ),
        (
            "PAX path override out",
            Box::new({
                let n = pwned(&up);
                move |o| {
                    pax(o, &[("path", &n)]);
                    push(o, &file(b"innocent"))
                }
            }),
        ),
        (
            "PAX linkpath override out",
            Box::new({
                let t = secret(&s);
                move |o| {
                    pax(o, &[("linkpath", &t)]);
                    push(o, &hardlink(b"hl5", b"etc/passwd"))
                }
            }),
        ),
        (
            "GNU long name out",
            Box::new({
                let n = pwned(&format!("{}{up}", "d/".repeat(60)));
                move |o| {
                    gnu_long(o, b'L', &n);
                    push(o, &file(b"short"))
                }
            }),
        ),
        (
            "GNU long link target out, then a write through it",
            Box::new({
                let t = format!("{}{}", "./".repeat(60), s).into_bytes();
                move |o| {
                    gnu_long(o, b'K', &t);
                    push(o, &symlink(b"ll", b"x"));
                    push(o, &file(&pwned("ll")))
                }
            }),
        ),
        (
            "a huge PAX header",
            Box::new(|o| {
                let big = vec![b'a'; 8 << 20];
                pax(o, &[("comment", &big)]);
                push(o, &file(b"after-huge-header"));
            }),
        ),
        (
            "a directory named by an absolute host path",
            Box::new({
                let (d, f) = (format!("{s}/").into_bytes(), pwned(&s));
                move |o| {
                    push(
                        o,
                        &Raw {
                            name: &d,
                            kind: b'5',
                            mode: 0o755,
                            ..Raw::default()
                        },
                    );
                    push(o, &file(&f));
                }
            }),
        ),
    ]
}

/// The corpus for the sentinel directory `s`: (what it tries, the layer tar with the busybox
/// rootfs first). At least twenty.
pub fn layers(s: &Path) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    // The busybox tar without its end-of-archive blocks (the hostile entries follow).
    let base = crate::busybox::layer_tar_plus(|_| Ok(()))?;
    let base = base[..base.len() - 1024].to_vec();
    let s = s.display().to_string();
    let mut cases = name_and_symlink_cases(&s);
    cases.extend(link_and_device_cases(&s));
    cases.extend(whiteout_and_header_cases(&s));
    Ok(cases
        .into_iter()
        .map(|(what, build)| {
            let mut tar = base.clone();
            build(&mut tar);
            tar.resize(tar.len() + 1024, 0);
            (what, tar)
        })
        .collect())
}

/// Makes the sentinel's content: one `secret` file.
pub fn make_sentinel(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join(SECRET), SECRET_TEXT)?;
    Ok(())
}

/// Checks that the sentinel holds exactly its unchanged `secret`, with one link.
pub fn check_sentinel(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(names == [SECRET], "the sentinel changed: {names:?}");
    let meta = std::fs::symlink_metadata(dir.join(SECRET))?;
    anyhow::ensure!(meta.nlink() == 1, "the secret got {} links", meta.nlink());
    anyhow::ensure!(
        std::fs::read(dir.join(SECRET))? == SECRET_TEXT,
        "the secret changed"
    );
    Ok(())
}
