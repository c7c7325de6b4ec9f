//! Image commands: images, pull (progress bars on a terminal, plain lines elsewhere), push, tag,
//! rmi, save, load, import, history and prune; plus Docker's reference normalization
//! (`busybox` → `docker.io/library/busybox:latest`).

use std::io::{Read, Write};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use crate::api::{self, Client, query};
pub use crate::commands::auth::{LoginArgs, LogoutArgs};
use crate::commands::container_views::body_to_output;
use crate::format::{Lister, ellipsis, short_id};
use crate::http::Body;
use crate::{progress, units};

/// `(domain, path, tag, digest)` of a reference, normalized the way Docker does.
pub fn parse_ref(name: &str) -> (String, String, Option<String>, Option<String>) {
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (name, None),
    };
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (rest, None),
    };
    let (domain, path) = match repo.split_once('/') {
        Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_string(), p.to_string())
        }
        _ => ("docker.io".to_string(), repo.to_string()),
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (domain, path, tag, digest)
}

/// `busybox` → `busybox:latest`; `docker.io/library/x` → `x:latest` (what "Unable to find
/// image" names).
pub fn familiar_with_tag(name: &str) -> String {
    let (domain, path, tag, digest) = parse_ref(name);
    let repo = if domain == "docker.io" {
        path.strip_prefix("library/").unwrap_or(&path).to_string()
    } else {
        format!("{domain}/{path}")
    };
    match (tag, digest) {
        (_, Some(d)) => format!("{repo}@{d}"),
        (Some(t), None) => format!("{repo}:{t}"),
        (None, None) => format!("{repo}:latest"),
    }
}

/// Pulls `name`, rendering the daemon's progress on `out`; returns the full reference.
pub fn pull_image(
    client: &Client,
    name: &str,
    out: &mut dyn Write,
    tty: bool,
    quiet: bool,
) -> anyhow::Result<String> {
    let (domain, path, tag, digest) = parse_ref(name);
    let from = format!("{domain}/{path}");
    let tag = digest.clone().or(tag).unwrap_or_else(|| "latest".into());
    let q = query(&[
        ("fromImage", Some(from.clone())),
        ("tag", Some(tag.clone())),
    ]);
    let headers = [(
        "X-Registry-Auth",
        crate::commands::auth::header_for(&domain),
    )];
    let resp = client.send_with("POST", &format!("/images/create{q}"), Body::Empty, &headers)?;
    if quiet {
        progress::display(resp, &mut std::io::sink(), false)?;
    } else {
        progress::display(resp, out, tty)?;
    }
    let sep = if digest.is_some() { '@' } else { ':' };
    Ok(format!("{from}{sep}{tag}"))
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Download all tagged images in the repository (not supported)
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    pub name: String,
}

pub fn pull(client: &Client, a: &PullArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(!a.all_tags, "--all-tags is not supported by this client");
    let mut out = std::io::stdout().lock();
    let full = pull_image(
        client,
        &a.name,
        &mut out,
        crate::term::stdout_is_tty(),
        a.quiet,
    )?;
    writeln!(out, "{full}")?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub name: String,
}

pub fn push(client: &Client, a: &PushArgs) -> anyhow::Result<i32> {
    let (domain, _, tag, _) = parse_ref(&a.name);
    let repo = match a.name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => r.to_string(),
        _ => a.name.clone(),
    };
    let q = query(&[("tag", tag)]);
    let headers = [(
        "X-Registry-Auth",
        crate::commands::auth::header_for(&domain),
    )];
    let resp = client.send_with(
        "POST",
        &format!("/images/{repo}/push{q}"),
        Body::Empty,
        &headers,
    )?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        progress::display(resp, &mut std::io::sink(), false)?;
        writeln!(out, "{}", a.name)?;
    } else {
        progress::display(resp, &mut out, crate::term::stdout_is_tty())?;
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

pub fn images(client: &Client, a: &ImagesArgs) -> anyhow::Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let q = query(&[
        ("all", a.all.then(|| "1".into())),
        ("filters", api::filters_json(&filters)?),
    ]);
    let list = client.get(&format!("/images/json{q}"))?;
    let mut rows = Vec::new();
    for img in list.as_array().into_iter().flatten() {
        let id = api::s(img, "Id");
        let created = api::i(img, "Created");
        let mut tags: Vec<String> = img
            .get("RepoTags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if tags.is_empty() {
            tags.push("<none>:<none>".into());
        }
        let digest = img
            .get("RepoDigests")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(Value::as_str)
            .and_then(|d| d.split_once('@'))
            .map_or("<none>".to_string(), |(_, d)| d.to_string());
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((&t, "<none>"));
            rows.push(json!({
                "Repository": repo,
                "Tag": tag,
                "ID": if a.no_trunc { id.to_string() } else { short_id(id) },
                "Digest": digest,
                "CreatedSince": units::ago(created),
                "CreatedAt": crate::commands::ps::go_time(created),
                "Size": units::human_size3(api::i(img, "Size")),
                "Containers": api::i(img, "Containers").to_string(),
            }));
        }
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let out = Lister {
        default,
        headers: &[
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("ID", "IMAGE ID"),
            ("Digest", "DIGEST"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("Size", "SIZE"),
            ("Containers", "CONTAINERS"),
        ],
        format: a.format.as_deref().unwrap_or(""),
        quiet: a.quiet,
        quiet_field: "ID",
    }
    .render(&rows)?;
    print!("{out}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

pub fn tag(client: &Client, a: &TagArgs) -> anyhow::Result<i32> {
    let (repo, tag) = match a.target.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (a.target.clone(), "latest".to_string()),
    };
    let q = query(&[("repo", Some(repo)), ("tag", Some(tag))]);
    client.post(&format!("/images/{}/tag{q}", a.source), None)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

fn print_deleted(v: &Value) {
    for item in v.as_array().into_iter().flatten() {
        if let Some(u) = item.get("Untagged").and_then(Value::as_str) {
            println!("Untagged: {u}");
        }
        if let Some(d) = item.get("Deleted").and_then(Value::as_str) {
            println!("Deleted: {d}");
        }
    }
}

pub fn rmi(client: &Client, a: &RmiArgs) -> anyhow::Result<i32> {
    let q = query(&[
        ("force", a.force.then(|| "1".into())),
        ("noprune", a.no_prune.then(|| "1".into())),
    ]);
    crate::commands::containers::for_each(&a.images, |n| {
        print_deleted(&client.delete(&format!("/images/{n}{q}"))?);
        Ok(None)
    })
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn save(client: &Client, a: &SaveArgs) -> anyhow::Result<i32> {
    let q: Vec<(&str, Option<String>)> = a
        .images
        .iter()
        .map(|i| ("names", Some(i.clone())))
        .collect();
    let resp = client.send("GET", &format!("/images/get{}", query(&q)), Body::Empty)?;
    body_to_output(resp, a.output.as_deref(), "the images")?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

fn open_input(path: Option<&str>) -> anyhow::Result<Box<dyn Read>> {
    Ok(match path {
        Some("-") | None => {
            if crate::term::stdin_is_tty() {
                return Err(crate::commands::containers::fail(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            Box::new(std::io::stdin())
        }
        Some(p) => Box::new(std::fs::File::open(p).with_context(|| format!("opening {p}"))?),
    })
}

pub fn load(client: &Client, a: &LoadArgs) -> anyhow::Result<i32> {
    let mut input = open_input(a.input.as_deref())?;
    let q = if a.quiet { "?quiet=1" } else { "" };
    let resp = client.send(
        "POST",
        &format!("/images/load{q}"),
        Body::Stream(&mut *input, "application/x-tar"),
    )?;
    let json = resp
        .header("Content-Type")
        .is_some_and(|c| c.contains("json"));
    let mut out = std::io::stdout().lock();
    if json {
        progress::display(resp, &mut out, crate::term::stdout_is_tty())?;
    } else {
        let mut resp = resp;
        std::io::copy(&mut resp, &mut out)?;
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|-
    pub source: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

/// `REPOSITORY[:TAG]` split as the API's `repo` and `tag` parameters take it.
pub fn repo_and_tag(reference: Option<&str>) -> (Option<String>, Option<String>) {
    match reference {
        Some(r) => match r.rsplit_once(':') {
            Some((x, t)) if !t.contains('/') => (Some(x.to_string()), Some(t.to_string())),
            _ => (Some(r.to_string()), None),
        },
        None => (None, None),
    }
}

pub fn import(client: &Client, a: &ImportArgs) -> anyhow::Result<i32> {
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    let (repo, tag) = repo_and_tag(a.reference.as_deref());
    let mut q: Vec<(&str, Option<String>)> = vec![
        (
            "fromSrc",
            Some(if is_url { a.source.clone() } else { "-".into() }),
        ),
        ("repo", repo),
        ("tag", tag),
        ("message", a.message.clone()),
        ("platform", a.platform.clone()),
    ];
    for c in &a.change {
        q.push(("changes", Some(c.clone())));
    }
    let path = format!("/images/create{}", query(&q));
    let resp = if is_url {
        client.send("POST", &path, Body::Empty)?
    } else {
        let mut input = open_input(Some(&a.source))?;
        client.send(
            "POST",
            &path,
            Body::Stream(&mut *input, "application/x-tar"),
        )?
    };
    progress::display(resp, &mut std::io::stdout().lock(), false)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Pretty-print using a Go template
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

pub fn history(client: &Client, a: &HistoryArgs) -> anyhow::Result<i32> {
    let v = client.get(&format!("/images/{}/history", a.image))?;
    let mut rows = Vec::new();
    for h in v.as_array().into_iter().flatten() {
        let id = api::s(h, "Id");
        let id = if id == "<missing>" || id.is_empty() {
            "<missing>".to_string()
        } else if a.no_trunc {
            id.to_string()
        } else {
            short_id(id)
        };
        let created = api::i(h, "Created");
        let by = api::s(h, "CreatedBy").replace('\t', " ");
        rows.push(json!({
            "ID": id,
            "CreatedSince": if a.human { units::ago(created) } else { crate::commands::ps::go_time(created) },
            "CreatedAt": crate::commands::ps::go_time(created),
            "CreatedBy": if a.no_trunc { by } else { ellipsis(&by, 45) },
            "Size": if a.human { units::human_size3(api::i(h, "Size")) } else { api::i(h, "Size").to_string() },
            "Comment": api::s(h, "Comment"),
        }));
    }
    let out = Lister {
        default: "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        headers: &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
        format: a.format.as_deref().unwrap_or(""),
        quiet: a.quiet,
        quiet_field: "ID",
    }
    .render(&rows)?;
    print!("{out}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn prune(client: &Client, a: &PruneArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !crate::commands::containers::confirm(warning, a.force) {
        return Ok(0);
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let q = query(&[("filters", api::filters_json(&filters)?)]);
    let v = client.post(&format!("/images/prune{q}"), None)?;
    print_deleted_images(&v);
    println!(
        "Total reclaimed space: {}",
        units::human_size(api::i(&v, "SpaceReclaimed"))
    );
    Ok(0)
}

/// The "Deleted Images:" block of an `/images/prune` answer, as the docker CLI prints it.
pub fn print_deleted_images(answer: &Value) {
    let deleted = answer
        .get("ImagesDeleted")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if deleted.is_empty() {
        return;
    }
    println!("Deleted Images:");
    for d in &deleted {
        if let Some(u) = d.get("Untagged").and_then(Value::as_str) {
            println!("untagged: {u}");
        }
        if let Some(x) = d.get("Deleted").and_then(Value::as_str) {
            println!("deleted: {x}");
        }
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_like_dockers() {
        assert_eq!(
            parse_ref("busybox"),
            ("docker.io".into(), "library/busybox".into(), None, None)
        );
        assert_eq!(
            parse_ref("127.0.0.1:5000/bb:v1"),
            (
                "127.0.0.1:5000".into(),
                "bb".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(parse_ref("me/app:1").1, "me/app");
        assert_eq!(familiar_with_tag("busybox"), "busybox:latest");
        assert_eq!(familiar_with_tag("docker.io/library/alpine:3"), "alpine:3");
        assert_eq!(
            familiar_with_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
    }
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Secret to expose to the build (id=mysecret[,src=/local/secret | ,env=VAR])
    #[arg(long)]
    pub secret: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Size of /dev/shm of the RUN containers
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Set platform (this host's only)
    #[arg(long)]
    pub platform: Option<String>,
    /// Progress output: auto (a live view on a terminal), plain or tty
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// PATH (the build context)
    pub context: String,
}

/// `--secret id=x[,src=FILE | ,env=VAR]` (BuildKit's forms; with neither, the variable named
/// by the id) as the `X-Berth-Build-Secrets` header berthd reads.
fn secrets_header(specs: &[String]) -> anyhow::Result<Option<String>> {
    use base64::Engine;
    if specs.is_empty() {
        return Ok(None);
    }
    let mut all = serde_json::Map::new();
    for spec in specs {
        let mut fields = std::collections::BTreeMap::new();
        for f in spec.split(',') {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            fields.insert(k.trim().to_string(), v.trim().to_string());
        }
        let id = fields
            .get("id")
            .filter(|i| !i.is_empty())
            .with_context(|| format!("invalid secret {spec:?}: it needs an id"))?;
        let file = fields.get("src").or(fields.get("source"));
        let value = match (file, fields.get("env")) {
            (Some(f), _) => {
                std::fs::read(f).with_context(|| format!("reading secret {id} from {f}"))?
            }
            (None, Some(var)) => std::env::var(var)
                .with_context(|| format!("secret {id}: no variable {var}"))?
                .into_bytes(),
            (None, None) => std::env::var(id)
                .with_context(|| format!("secret {id}: give src= or env="))?
                .into_bytes(),
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        all.insert(id.clone(), Value::String(b64));
    }
    let text = Value::Object(all).to_string();
    Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(text)))
}

/// `KEY=VALUE` words as a JSON object (a bare `KEY` takes the client's environment value).
fn key_values(words: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => m.insert(k.to_string(), json!(v)),
            None => m.insert(w.clone(), json!(std::env::var(w).ok())),
        };
    }
    Value::Object(m)
}

/// Adds the context directory `dir` (at `rel` inside it) to the tar, leaving out what
/// `.dockerignore` excludes, but for the Dockerfile and `.dockerignore` themselves (`keep`),
/// which the daemon needs, as the docker CLI sends them.
fn pack_context<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    dir: &std::path::Path,
    rel: &str,
    ignore: &crate::dockerignore::Ignore,
    keep: &[String],
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let excluded = ignore.excluded(&path) && !keep.contains(&path);
        let is_dir = e.file_type()?.is_dir();
        if is_dir {
            if !excluded {
                b.append_dir(&path, e.path())?;
            }
            // An excluded directory is still walked when a `!` line may take back a part.
            if !excluded || ignore.has_exceptions() {
                pack_context(b, &e.path(), &path, ignore, keep)?;
            }
        } else if !excluded {
            b.append_path_with_name(e.path(), &path)?;
        }
    }
    Ok(())
}

/// `berth build PATH`: the context directory sent as a tar (links as links), the Dockerfile
/// added under a private name when it lies outside it.
pub fn build(client: &Client, a: &BuildArgs) -> anyhow::Result<i32> {
    let ctx = std::path::PathBuf::from(&a.context);
    anyhow::ensure!(
        ctx.is_dir(),
        "unable to prepare context: path {:?} not found",
        a.context
    );
    let file = a
        .file
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.join("Dockerfile"));
    let outside = match (std::fs::canonicalize(&file), std::fs::canonicalize(&ctx)) {
        (Ok(f), Ok(c)) => f.strip_prefix(&c).map(|r| r.to_path_buf()).map_err(|_| f),
        _ => anyhow::bail!("Cannot locate specified Dockerfile: {}", file.display()),
    };
    let dockerfile_name = match &outside {
        Ok(inside) => inside.display().to_string(),
        Err(_) => format!(".dockerfile.{}", std::process::id()),
    };
    let mut q: Vec<(&str, Option<String>)> = vec![
        ("dockerfile", Some(dockerfile_name.clone())),
        ("buildargs", Some(key_values(&a.build_arg).to_string())),
        ("labels", Some(key_values(&a.label).to_string())),
        ("q", a.quiet.then(|| "1".into())),
        ("nocache", a.no_cache.then(|| "1".into())),
        ("forcerm", a.force_rm.then(|| "1".into())),
        ("networkmode", Some(a.network.clone())),
        ("platform", a.platform.clone()),
        (
            "shmsize",
            a.shm_size
                .as_deref()
                .map(crate::units::ram_in_bytes)
                .transpose()?
                .map(|n| n.to_string()),
        ),
    ];
    for h in &a.add_host {
        q.push(("extrahosts", Some(h.clone())));
    }
    let headers: Vec<(&str, String)> = secrets_header(&a.secret)?
        .map(|h| ("X-Berth-Build-Secrets", h))
        .into_iter()
        .collect();
    for t in &a.tag {
        q.push(("t", Some(t.clone())));
    }
    let (reader, writer) = rustix::pipe::pipe()?;
    let (mut reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let extra = outside.err();
    let ignore = std::fs::read_to_string(ctx.join(".dockerignore"))
        .map(|t| crate::dockerignore::Ignore::parse(&t))
        .unwrap_or_default();
    let keep = [dockerfile_name.clone(), ".dockerignore".to_string()];
    let packer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(writer);
        b.follow_symlinks(false);
        pack_context(&mut b, &ctx, "", &ignore, &keep)?;
        if let Some(f) = extra {
            b.append_path_with_name(f, &dockerfile_name)?;
        }
        b.finish()
    });
    let resp = client.send_with(
        "POST",
        &format!("/build{}", query(&q)),
        Body::Stream(&mut reader, "application/x-tar"),
        &headers,
    );
    drop(reader);
    let packed = packer
        .join()
        .map_err(|_| anyhow::anyhow!("packing the context failed"))?;
    let resp = resp?;
    packed.context("reading the build context")?;
    let stdout = std::io::stdout();
    let live = match a.progress.as_str() {
        "tty" => true,
        "plain" => false,
        "auto" => std::io::IsTerminal::is_terminal(&stdout) && !a.quiet,
        other => anyhow::bail!("invalid progress mode {other:?}: auto, plain or tty"),
    };
    let aux = match live {
        true => crate::build_view::show(resp, &mut stdout.lock())?,
        false => progress::display(resp, &mut stdout.lock(), false)?,
    };
    let id = aux
        .iter()
        .find_map(|a| a.get("ID").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    if let Some(path) = &a.iidfile {
        std::fs::write(path, &id).with_context(|| format!("writing {path}"))?;
    }
    Ok(0)
}
