//! `berth cp`: files between a container and the host with Docker's rules. Out of a container:
//! into an existing directory the copy keeps its name, onto a missing path it takes that name,
//! over a file it replaces it; `SRC/.` copies a directory's contents. Into a container the
//! destination is first stat'ed (`HEAD …/archive`) and the tar is named to match, then streamed
//! (`PUT …/archive`, never over a directory with a file). `-` on either side is a raw tar.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use serde_json::Value;

use crate::api::{Client, DaemonError, query};
use crate::commands::containers::fail;
use crate::http::Body;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH, or - (a tar stream on stdin)
    pub src: String,
    /// CONTAINER:DEST_PATH, DEST_PATH, or - (a tar stream on stdout)
    pub dest: String,
}

/// `CONTAINER:PATH` → (container, path); a local path (absolute, `./…`, or with no colon) → None.
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

/// What the daemon's `X-Docker-Container-Path-Stat` header says.
struct PathStat {
    name: String,
    is_dir: bool,
    link_target: String,
}

fn parse_stat(header: Option<&str>) -> Option<PathStat> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header?.trim())
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let mode = v.get("mode").and_then(Value::as_u64).unwrap_or(0);
    Some(PathStat {
        name: crate::api::s(&v, "name").to_string(),
        is_dir: mode & (1 << 31) != 0,
        link_target: crate::api::s(&v, "linkTarget").to_string(),
    })
}

fn archive_path(ctr: &str, q: &[(&str, Option<String>)]) -> String {
    format!(
        "/containers/{}/archive{}",
        crate::http::encode(ctr),
        query(q)
    )
}

/// The daemon's 404 for a path reads like Docker's CLI says it.
fn no_such_path(e: anyhow::Error, ctr: &str, path: &str) -> anyhow::Error {
    match e.downcast_ref::<DaemonError>() {
        Some(d) if d.status == 404 && !d.message.starts_with("No such container:") => {
            fail(format!("Error: No such container:path: {ctr}:{path}"))
        }
        _ => e,
    }
}

fn stat(client: &Client, ctr: &str, path: &str) -> anyhow::Result<Option<PathStat>> {
    match client.send(
        "HEAD",
        &archive_path(ctr, &[("path", Some(path.into()))]),
        Body::Empty,
    ) {
        Ok(r) => Ok(parse_stat(r.header("X-Docker-Container-Path-Stat"))),
        Err(e) if crate::api::is_not_found(&e) => {
            let d = e.downcast_ref::<DaemonError>();
            if d.is_some_and(|d| d.message.starts_with("No such container:")) {
                Err(e)
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

pub fn cp(client: &Client, a: &CpArgs) -> anyhow::Result<i32> {
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => Err(fail("copying between containers is not supported")),
        (None, None) => Err(fail("must specify at least one container source")),
        (Some((ctr, path)), None) => from_container(client, ctr, path, &a.dest, a.follow_link),
        (None, Some((ctr, path))) => to_container(client, &a.src, ctr, path, a),
    }
}

fn from_container(
    client: &Client,
    ctr: &str,
    path: &str,
    dest: &str,
    follow: bool,
) -> anyhow::Result<i32> {
    let mut path = path.to_string();
    if follow
        && let Some(st) = stat(client, ctr, &path)?
        && !st.link_target.is_empty()
    {
        path = st.link_target;
    }
    let resp = client
        .send(
            "GET",
            &archive_path(ctr, &[("path", Some(path.clone()))]),
            Body::Empty,
        )
        .map_err(|e| no_such_path(e, ctr, &path))?;
    if dest == "-" {
        let mut resp = resp;
        std::io::copy(&mut resp, &mut std::io::stdout().lock())?;
        return Ok(0);
    }
    let st = parse_stat(resp.header("X-Docker-Container-Path-Stat"))
        .ok_or_else(|| fail("Error: the daemon sent no stat of the source path"))?;
    let contents_only = path.ends_with("/.");
    let dest_path = Path::new(dest);
    let meta = std::fs::metadata(dest_path).ok();
    // (directory to unpack into, what the top entry becomes there)
    let (into, top): (PathBuf, Option<PathBuf>) = match meta {
        Some(m) if m.is_dir() => {
            if contents_only {
                (dest_path.to_path_buf(), Some(PathBuf::new()))
            } else {
                (dest_path.to_path_buf(), None)
            }
        }
        Some(_) if st.is_dir => {
            return Err(fail(format!(
                "Error: cannot copy directory to file: {dest}"
            )));
        }
        _ if dest.ends_with('/') => {
            return Err(fail(format!(
                "Error: destination directory {dest} does not exist"
            )));
        }
        _ => {
            let parent = dest_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(fail(format!(
                    "Error: destination directory {} does not exist",
                    parent.display()
                )));
            }
            let name = dest_path.file_name().map(PathBuf::from);
            (parent.to_path_buf(), name)
        }
    };
    unpack(resp, &into, &st.name, top.as_deref())?;
    Ok(0)
}

/// Unpacks a tar whose top entry is `src_name` into `into`, renaming that top to `top` (an
/// empty `top`: its contents go straight into `into`).
fn unpack(resp: impl Read, into: &Path, src_name: &str, top: Option<&Path>) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(resp);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let p = entry.path()?.into_owned();
        let rest = p.strip_prefix(src_name).unwrap_or(&p).to_path_buf();
        let target = match top {
            Some(t) => t.join(&rest),
            None => p.clone(),
        };
        if target.as_os_str().is_empty() {
            continue; // the directory copied into itself: `into` is already there
        }
        if target
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            anyhow::bail!(
                "refusing {}: it leads outside {}",
                p.display(),
                into.display()
            );
        }
        entry.unpack(into.join(&target))?;
    }
    Ok(())
}

fn to_container(
    client: &Client,
    src: &str,
    ctr: &str,
    path: &str,
    a: &CpArgs,
) -> anyhow::Result<i32> {
    let put = |dir: &str, body: &mut dyn Read| {
        let q = [
            ("path", Some(dir.to_string())),
            ("noOverwriteDirNonDir", Some("true".to_string())),
            ("copyUIDGID", a.archive.then(|| "true".to_string())),
        ];
        client
            .send(
                "PUT",
                &archive_path(ctr, &q),
                Body::Stream(body, "application/x-tar"),
            )
            .map_err(|e| no_such_path(e, ctr, dir))
    };
    if src == "-" {
        let mut stdin = std::io::stdin().lock();
        put(path, &mut stdin)?;
        return Ok(0);
    }
    let local = Path::new(src);
    let meta = if a.follow_link {
        std::fs::metadata(local)
    } else {
        std::fs::symlink_metadata(local)
    }
    .map_err(|e| fail(format!("Error: lstat {src}: {e}")))?;
    let contents_only = src.ends_with("/.");
    let base = local
        .file_name()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    // (container directory to unpack into, the name the copy gets there)
    let (dir, name) = match stat(client, ctr, path)? {
        Some(st) if st.is_dir => (
            path.to_string(),
            if contents_only {
                PathBuf::from(".")
            } else {
                base
            },
        ),
        Some(_) if meta.is_dir() => {
            return Err(fail(format!(
                "Error: cannot copy directory to a file: {ctr}:{path}"
            )));
        }
        None if path.ends_with('/') => {
            return Err(fail(format!("Error: No such container:path: {ctr}:{path}")));
        }
        _ => {
            let p = Path::new(path);
            let parent = p
                .parent()
                .map_or_else(|| "/".to_string(), |d| d.display().to_string());
            let name = p
                .file_name()
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            (
                if parent.is_empty() {
                    "/".into()
                } else {
                    parent
                },
                name,
            )
        }
    };
    let (reader, writer) = rustix::pipe::pipe()?;
    let (mut reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let src_path = local.to_path_buf();
    let follow = a.follow_link;
    let packer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(writer);
        b.follow_symlinks(follow);
        if meta.is_dir() {
            b.append_dir_all(&name, &src_path)?;
        } else {
            b.append_path_with_name(&src_path, &name)?;
        }
        b.finish()
    });
    let sent = put(&dir, &mut reader);
    drop(reader);
    let packed = packer
        .join()
        .map_err(|_| fail("Error: packing the copy failed"))?;
    sent?;
    packed.map_err(|e| fail(format!("Error: reading {src}: {e}")))?;
    Ok(0)
}
