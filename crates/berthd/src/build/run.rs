//! The classic builder (`DOCKER_BUILDKIT=0 docker build`): each instruction of the Dockerfile in
//! turn on the image so far. RUN is a real container on the current layers whose changes are
//! committed as the next layer; COPY and ADD of the context write their layer directly; the
//! other instructions change the config, stored as an empty layer of history. Progress goes out
//! as Docker's build stream lines.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::config::{ContainerConfig, HealthConfig, ImageConfig};
use berth_image::Reference;
use berth_image::images::ImageRecord;
use berth_image::manifest::MAX_CONFIG;
use berth_image::service::NewImage;

use crate::build::cache;
use crate::build::dockerfile::{self, Args, Instruction};
use crate::engine::Daemon;
use crate::model::Error;

/// What the client sees of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Text for the build output (`{"stream": ...}`).
    Stream(String),
    /// The built image's id (`{"aux": {"ID": ...}}`).
    Built(String),
}

/// `POST /build`'s parameters.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// `HostConfig.NetworkMode` of RUN containers (`default`, `none`, `host`).
    pub network_mode: String,
    /// Remove intermediate containers even after a failed step.
    pub force_rm: bool,
    /// The stage to build (`--target`); the last one when None.
    pub target: Option<String>,
    /// Make every step anew (`--no-cache`); what is made is still recorded.
    pub no_cache: bool,
    /// Credentials per registry domain (`X-Registry-Config`), for FROM's pulls.
    pub registry_auth: BTreeMap<String, berth_image::registry::Credentials>,
    /// Images whose steps a step may reuse (`cachefrom`), found here.
    pub cache_from: Vec<ImageRecord>,
    /// Secrets by id, for `RUN --mount=type=secret` (`berth build --secret`).
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// What RUN containers get besides their network mode: `shmsize`, `extrahosts` and the
    /// resource limits of the request.
    pub run_host_config: berth_api::host_config::HostConfig,
    /// What each path of the context holds, hashed as it arrived: COPY's cache key.
    pub context_index: Arc<berth_image::content_index::ContentIndex>,
}

/// The largest Dockerfile read.
const MAX_DOCKERFILE: u64 = 4 << 20;

/// The stage being built.
pub(super) struct Stage {
    /// The image so far (None: `FROM scratch` before its first layer).
    pub(super) image: Option<ImageRecord>,
    pub(super) config: ContainerConfig,
    /// MAINTAINER: the image's author.
    pub(super) author: Option<String>,
    /// Config steps since the last image, as history entries.
    pub(super) pending: Vec<String>,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, String>,
}

/// One instruction after FROM.
#[allow(clippy::too_many_arguments)]
pub(super) async fn step(
    d: &Arc<Daemon>,
    ctx: &OwnedFd,
    s: &mut Stage,
    ins: &Instruction,
    kw: &str,
    escape: char,
    o: &Options,
    done: &super::stages::Done,
    say: &(dyn Fn(String) + Sync),
) -> Result<(), Error> {
    let shell_text = |a: &Args| match a {
        Args::Shell(t) => t.clone(),
        Args::Json(w) => w.join(" "),
    };
    let vars = lookup_in(s);
    let expand = |w: &str| dockerfile::expand(w, escape, &vars).map_err(Error::invalid);
    match kw {
        "RUN" => {
            let src = super::mounts::Sources {
                context: ctx.as_fd(),
                done,
                secrets: &o.secrets,
            };
            return run(d, s, ins, o, (&src, escape), say).await;
        }
        "COPY" | "ADD" => {
            return super::copy_step::step(d, ctx, s, ins, escape, done, o, say).await;
        }
        "ARG" => {
            let mut declared = BTreeMap::new();
            declare_args(ins, escape, o, &mut declared)?;
            s.args.extend(declared);
        }
        "ENV" => {
            let pairs = dockerfile::pairs("ENV", &shell_text(&ins.args), escape, &vars)
                .map_err(Error::invalid)?;
            for (k, v) in pairs {
                s.config.set_env(&k, &v.unwrap_or_default());
            }
        }
        "LABEL" => {
            let pairs = dockerfile::pairs("LABEL", &shell_text(&ins.args), escape, &vars)
                .map_err(Error::invalid)?;
            for (k, v) in pairs {
                s.config.set_label(&k, &v.unwrap_or_default());
            }
        }
        "WORKDIR" => {
            let w = expand(&shell_text(&ins.args))?;
            s.config.working_dir = match w.starts_with('/') {
                true => w,
                false => format!("{}/{w}", workdir(&s.config).trim_end_matches('/')),
            };
        }
        "USER" => s.config.user = expand(&shell_text(&ins.args))?,
        "STOPSIGNAL" => s.config.stop_signal = expand(&shell_text(&ins.args))?,
        "MAINTAINER" => s.author = Some(shell_text(&ins.args)),
        "EXPOSE" => {
            for p in expand(&shell_text(&ins.args))?.split_whitespace() {
                let p = match p.contains('/') {
                    true => p.to_string(),
                    false => format!("{p}/tcp"),
                };
                s.config.expose(&p);
            }
        }
        "VOLUME" => {
            let paths = match &ins.args {
                Args::Json(w) => w.clone(),
                Args::Shell(t) => expand(t)?.split_whitespace().map(str::to_string).collect(),
            };
            for p in paths {
                s.config.add_volume(&p);
            }
        }
        "CMD" | "ENTRYPOINT" | "SHELL" => {
            let words = match &ins.args {
                Args::Json(w) => w.clone(),
                Args::Shell(t) => {
                    let mut w = shell_of(&s.config);
                    w.push(t.clone());
                    w
                }
            };
            let field = match kw {
                "CMD" => &mut s.config.cmd,
                "ENTRYPOINT" => &mut s.config.entrypoint,
                _ => &mut s.config.shell,
            };
            *field = Some(words);
        }
        "ONBUILD" => {
            let text = shell_text(&ins.args);
            s.config.on_build.get_or_insert_with(Vec::new).push(text);
        }
        "HEALTHCHECK" => healthcheck(s, ins)?,
        other => {
            return Err(Error::invalid(format!(
                "{other} is not supported by this builder yet"
            )));
        }
    }
    s.pending.push(history_comment(s, ins, kw));
    Ok(())
}

/// What dockerd's classic builder writes after `#(nop)` for a config step: WORKDIR with one
/// space and its resolved path, CMD/ENTRYPOINT/SHELL as Go prints a list, the rest as written.
fn history_comment(s: &Stage, ins: &Instruction, kw: &str) -> String {
    let go_list = |w: &Option<Vec<String>>| {
        let quoted: Vec<String> = w
            .iter()
            .flatten()
            .map(|x| serde_json::Value::String(x.clone()).to_string())
            .collect();
        format!("[{}]", quoted.join(" "))
    };
    match kw {
        "WORKDIR" => format!("WORKDIR {}", s.config.working_dir),
        "CMD" => format!("CMD {}", go_list(&s.config.cmd)),
        "ENTRYPOINT" => format!("ENTRYPOINT {}", go_list(&s.config.entrypoint)),
        "SHELL" => format!("SHELL {}", go_list(&s.config.shell)),
        _ => ins.original.clone(),
    }
}

/// HEALTHCHECK [--interval=..] CMD ... | NONE.
fn healthcheck(s: &mut Stage, ins: &Instruction) -> Result<(), Error> {
    let text = match &ins.args {
        Args::Shell(t) => t.clone(),
        Args::Json(w) => w.join(" "),
    };
    let (kind, rest) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
    let test = match kind.to_ascii_uppercase().as_str() {
        "NONE" => vec!["NONE".to_string()],
        "CMD" => match serde_json::from_str::<Vec<String>>(rest.trim()) {
            Ok(w) => std::iter::once("CMD".to_string()).chain(w).collect(),
            Err(_) => vec!["CMD-SHELL".to_string(), rest.trim().to_string()],
        },
        _ => return Err(Error::invalid("HEALTHCHECK must be CMD ... or NONE")),
    };
    let mut hc = HealthConfig {
        test: Some(test),
        ..Default::default()
    };
    for (k, v) in &ins.flags {
        let field = match k.as_str() {
            "interval" => &mut hc.interval,
            "timeout" => &mut hc.timeout,
            "start-period" => &mut hc.start_period,
            "retries" => {
                hc.retries = v
                    .parse::<i64>()
                    .map_err(|_| Error::invalid(format!("invalid --retries: {v}")))?;
                continue;
            }
            other => return Err(Error::invalid(format!("unknown flag: --{other}"))),
        };
        let nanos = crate::engine::logs::parse_go_duration(v)
            .ok_or_else(|| Error::invalid(format!("invalid --{k}: {v}")))?;
        *field = nanos;
    }
    s.config.healthcheck = Some(hc);
    Ok(())
}

/// The shell of shell-form commands: SHELL's, else `/bin/sh -c`.
fn shell_of(config: &ContainerConfig) -> Vec<String> {
    config
        .shell
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// The working directory steps are relative to: WORKDIR's, else `/`.
pub(super) fn workdir(config: &ContainerConfig) -> &str {
    match config.working_dir.as_str() {
        "" => "/",
        w => w,
    }
}

/// Variables for expansion: the stage's ARGs, then its ENV (which wins).
pub(super) fn lookup_in(s: &Stage) -> impl Fn(&str) -> Option<String> + use<> {
    let mut vars = s.args.clone();
    for e in s.config.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    move |name: &str| vars.get(name).cloned()
}

/// ARG name[=default]: the build's `--build-arg` value wins over the default.
pub(super) fn declare_args(
    ins: &Instruction,
    escape: char,
    o: &Options,
    into: &mut BTreeMap<String, String>,
) -> Result<(), Error> {
    let text = match &ins.args {
        Args::Shell(t) => t.clone(),
        Args::Json(w) => w.join(" "),
    };
    let known = into.clone();
    let lookup = move |n: &str| known.get(n).cloned();
    for (k, v) in dockerfile::pairs("ARG", &text, escape, &lookup).map_err(Error::invalid)? {
        let predefined = || {
            let mut platform = platform_args().into_iter();
            platform.find(|(n, _)| *n == k).map(|(_, v)| v)
        };
        if let Some(value) = o.build_args.get(&k).cloned().or(v).or_else(predefined) {
            into.insert(k, value);
        }
    }
    Ok(())
}

/// BuildKit's predefined platform ARGs, for this host (the only platform it builds for).
fn platform_args() -> [(&'static str, String); 8] {
    let p = berth_image::manifest::Platform::host();
    let (os, arch) = (p.os.clone(), p.architecture.clone());
    let both = format!("{os}/{arch}");
    [
        ("BUILDPLATFORM", both.clone()),
        ("TARGETPLATFORM", both),
        ("BUILDOS", os.clone()),
        ("TARGETOS", os),
        ("BUILDARCH", arch.clone()),
        ("TARGETARCH", arch),
        ("BUILDVARIANT", String::new()),
        ("TARGETVARIANT", String::new()),
    ]
}

/// `FROM --platform=`: empty or this host's; another is refused (its programs cannot run here).
fn check_platform(p: &str) -> Result<(), Error> {
    if p.is_empty() {
        return Ok(());
    }
    let asked =
        berth_image::manifest::Platform::parse(p).map_err(|e| Error::invalid(e.to_string()))?;
    let host = berth_image::manifest::Platform::host();
    if (asked.os, asked.architecture) != (host.os.clone(), host.architecture.clone()) {
        return Err(Error::invalid(format!(
            "FROM --platform={p}: this builder builds for {}/{} only",
            host.os, host.architecture
        )));
    }
    Ok(())
}

/// FROM image [AS name]: the image here, else pulled (without credentials).
pub(super) async fn from(
    d: &Arc<Daemon>,
    ins: &Instruction,
    (escape, auth): (char, &BTreeMap<String, berth_image::registry::Credentials>),
    meta_args: &BTreeMap<String, String>,
    done: &super::stages::Done,
    say: &(dyn Fn(String) + Sync),
) -> Result<Stage, Error> {
    let text = match &ins.args {
        Args::Shell(t) => t.clone(),
        Args::Json(w) => w.join(" "),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    // The stage's name is the planner's (`stages.rs`); here only its form is checked.
    let name = match words.as_slice() {
        [name] => *name,
        [name, as_, _] if as_.eq_ignore_ascii_case("as") => *name,
        _ => {
            return Err(Error::invalid(format!(
                "FROM requires one image (and AS name): {text}"
            )));
        }
    };
    let mut args = meta_args.clone();
    for (k, v) in platform_args() {
        args.entry(k.to_string()).or_insert(v);
    }
    let lookup = move |n: &str| args.get(n).cloned();
    let name = dockerfile::expand(name, escape, &lookup).map_err(Error::invalid)?;
    for (k, v) in &ins.flags {
        let v = dockerfile::expand(v, escape, &lookup).map_err(Error::invalid)?;
        match k.as_str() {
            "platform" => check_platform(&v)?,
            other => {
                return Err(Error::invalid(format!(
                    "FROM --{other} is not supported by this builder"
                )));
            }
        }
    }
    let fresh = |image: Option<ImageRecord>, config: ContainerConfig| Stage {
        image,
        config,
        author: None,
        pending: Vec::new(),
        args: BTreeMap::new(),
    };
    if name == "scratch" {
        return Ok(fresh(None, ContainerConfig::default()));
    }
    let earlier = done
        .iter()
        .rev()
        .find(|(n, _)| n.as_deref() == Some(name.to_ascii_lowercase().as_str()));
    let image = match (earlier, d.images.images.resolve(&name)) {
        (Some((_, image)), _) => image
            .clone()
            .ok_or_else(|| Error::internal(format!("stage {name} is used before it is built")))?,
        (None, Ok(image)) => image,
        (None, Err(_)) => pull(d, &name, auth, say).await?,
    };
    let config = d
        .images
        .content
        .read(&image.id, MAX_CONFIG)
        .ok()
        .and_then(|b| serde_json::from_slice::<ImageConfig>(&b).ok())
        .map(|c| c.container_config())
        .unwrap_or_default();
    Ok(fresh(Some(image), config))
}

/// Pulls `name` for FROM, its status lines in the build's output.
async fn pull(
    d: &Arc<Daemon>,
    name: &str,
    auth: &BTreeMap<String, berth_image::registry::Credentials>,
    say: &(dyn Fn(String) + Sync),
) -> Result<ImageRecord, Error> {
    use berth_image::service::Progress as Pull;
    let r = Reference::parse(name).map_err(|e| Error::invalid(e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (d2, r2) = (d.clone(), r.clone());
    let creds = auth.get(r.domain()).cloned();
    let job = tokio::task::spawn_blocking(move || {
        let client = crate::engine::registry::client_for(&d2, r2.domain(), creds);
        let platform = berth_image::manifest::Platform::host();
        let progress = |p: Pull| {
            let line = match p {
                Pull::Status {
                    id: Some(id),
                    status,
                } => format!("{id}: {status}\n"),
                Pull::Status { id: None, status } => format!("{status}\n"),
                Pull::Layer {
                    id,
                    status,
                    current: None,
                    ..
                } => format!("{id}: {status}\n"),
                Pull::Layer { .. } => return,
            };
            let _ = tx.send(line);
        };
        d2.images.pull(&client, &r2, &platform, &progress)
    });
    while let Some(line) = rx.recv().await {
        say(line);
    }
    let pulled = job
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    pulled.map_err(|e| crate::engine::registry::pull_error(&r, &e))
}

/// Stores the stage's pending config steps as an image (if any), tagged `tag`.
pub(super) async fn finish(
    d: &Arc<Daemon>,
    mut s: Stage,
    no_cache: bool,
) -> Result<ImageRecord, Error> {
    flush(d, &mut s, no_cache).await?;
    s.image
        .ok_or_else(|| Error::invalid("the image has no layers (FROM scratch with nothing added)"))
}

/// Makes an image of the config steps since the last image (or finds it in the cache).
pub(super) async fn flush(d: &Arc<Daemon>, s: &mut Stage, no_cache: bool) -> Result<(), Error> {
    let Some(parent) = s.image.clone() else {
        return Ok(());
    };
    if s.pending.is_empty() {
        return Ok(());
    }
    let steps = s.pending.join("\n");
    let config_text = config_text(s);
    let key = cache::key(&["config/2", parent.id.as_str(), &steps, &config_text]);
    // One history entry per instruction, as dockerd's classic builder writes them.
    let entries: Vec<serde_json::Value> = s
        .pending
        .drain(..)
        // dockerd writes WORKDIR with one space after `#(nop)`, the others with two.
        .map(|step| match step.starts_with("WORKDIR ") {
            true => history(format!("/bin/sh -c #(nop) {step}")),
            false => history(format!("/bin/sh -c #(nop)  {step}")),
        })
        .collect();
    if let Some(hit) = (!no_cache).then(|| cache::get(d, &key)).flatten() {
        s.image = Some(hit);
        return Ok(());
    }
    let (d2, config, author) = (d.clone(), config_value(s), s.author.clone());
    store(d, s, &key, move || {
        let history = serde_json::Value::Array(entries);
        d2.images
            .with_config(&parent, config, history, author.as_deref(), None)
    })
    .await
}

/// Makes the step's image on a blocking thread, records it in the cache under `key` and
/// makes it the stage's image.
pub(super) async fn store(
    d: &Daemon,
    s: &mut Stage,
    key: &berth_image::Digest,
    make: impl FnOnce() -> Result<ImageRecord, berth_image::service::PullError> + Send + 'static,
) -> Result<(), Error> {
    let image = tokio::task::spawn_blocking(make)
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?
        .map_err(|e| Error::internal(e.to_string()))?;
    cache::put(d, key, &image);
    s.image = Some(image);
    Ok(())
}

/// Docker's predefined proxy ARGs.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// RUN: a container of the image so far runs the command; its changes become the next layer.
async fn run(
    d: &Arc<Daemon>,
    s: &mut Stage,
    ins: &Instruction,
    o: &Options,
    (src, escape): (&super::mounts::Sources<'_>, char),
    say: &(dyn Fn(String) + Sync),
) -> Result<(), Error> {
    flush(d, s, o.no_cache).await?;
    let Some(image) = s.image.clone() else {
        return Err(Error::invalid(
            "RUN needs an image with a shell (not FROM scratch)",
        ));
    };
    let mut cmd = match &ins.args {
        Args::Json(w) => w.clone(),
        Args::Shell(t) => {
            let mut w = shell_of(&s.config);
            w.push(t.clone());
            w
        }
    };
    for h in &ins.heredocs {
        // The heredoc is the script when the command names only it (`RUN <<EOF`).
        if cmd.last().is_some_and(|c| {
            c.trim() == format!("<<{}", h.name) || c.trim() == format!("<<-{}", h.name)
        }) {
            cmd.pop();
            cmd.push(h.content.clone());
        }
    }
    let mut env = s.config.env.clone().unwrap_or_default();
    // The predefined proxy ARGs reach RUN from `--build-arg` without an ARG line (and, like
    // any ARG, are in no image config).
    let proxies = o
        .build_args
        .iter()
        .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()));
    for (k, v) in s.args.iter().chain(proxies) {
        if !env.iter().any(|e| e.starts_with(&format!("{k}="))) {
            env.push(format!("{k}={v}"));
        }
    }
    // RUN --network=none|host|default wins over the build's network mode.
    let mut network = match o.network_mode.as_str() {
        "" | "default" => "default",
        m => m,
    };
    let vars = lookup_in(s);
    let mut specs = Vec::new();
    for (k, v) in &ins.flags {
        match (k.as_str(), v.as_str()) {
            ("mount", m) => {
                let m = dockerfile::expand(m, escape, &vars).map_err(Error::invalid)?;
                specs.push(super::mounts::parse(&m)?);
            }
            ("network", n @ ("none" | "host" | "default")) => network = n,
            ("network", n) => {
                return Err(Error::invalid(format!(
                    "RUN --network={n}: none, host or default"
                )));
            }
            (other, _) => {
                return Err(Error::invalid(format!(
                    "RUN --{other} is not supported by this builder yet"
                )));
            }
        }
    }
    let mut config = ContainerConfig {
        image: image.id.to_string(),
        cmd: Some(cmd.clone()),
        entrypoint: Some(Vec::new()),
        env: Some(env),
        working_dir: s.config.working_dir.clone(),
        user: s.config.user.clone(),
        ..Default::default()
    };
    config.set_label("com.berth.build", "intermediate");
    let mut host = o.run_host_config.clone();
    host.network_mode = network.to_string();
    let mut body = serde_json::to_value(&config).map_err(|e| Error::internal(e.to_string()))?;
    body["HostConfig"] = serde_json::to_value(&host).map_err(|e| Error::internal(e.to_string()))?;
    let prepared = super::mounts::prepare(d, &specs, src).await?;
    // The mounts by what they are (their flags, a bind's content), not where their copies are.
    let mut mounts_text: Vec<&str> = specs.iter().map(|m| m.text.as_str()).collect();
    mounts_text.extend(prepared.digests.iter().map(String::as_str));
    let key = cache::key(&[
        "run",
        image.id.as_str(),
        &body.to_string(),
        &config_text(s),
        &mounts_text.join("\n"),
    ]);
    if let Some(hit) = (!o.no_cache).then(|| cache::get(d, &key)).flatten() {
        say(" ---> Using cache\n".into());
        s.image = Some(hit);
        return Ok(());
    }
    let sources: &[ImageRecord] = if o.no_cache { &[] } else { &o.cache_from };
    if let Some(hit) = reuse(d, s, sources, &image, &cmd.join(" ")).await? {
        say(" ---> Using cache\n".into());
        cache::put(d, &key, &hit);
        s.image = Some(hit);
        return Ok(());
    }
    body["HostConfig"]["Mounts"] =
        serde_json::to_value(&prepared.mounts).map_err(|e| Error::internal(e.to_string()))?;
    let created = crate::engine::create::create(d, None, body).await?;
    let id = created.id;
    say(format!(" ---> Running in {}\n", &id[..12]));
    let result = run_and_commit(d, s, &id, &cmd, &specs, say).await;
    if let (Ok(()), Some(made)) = (&result, &s.image) {
        cache::put(d, &key, made);
    }
    if result.is_ok() || o.force_rm {
        remove_container(d, &id).await;
        say(format!("Removing intermediate container {}\n", &id[..12]));
    }
    drop(prepared);
    result
}

/// The image a `--cache-from` image gives for a layer step with history `created_by` on
/// `parent`, made with the stage's config; None when no source has it.
pub(super) async fn reuse(
    d: &Arc<Daemon>,
    s: &Stage,
    sources: &[ImageRecord],
    parent: &ImageRecord,
    created_by: &str,
) -> Result<Option<ImageRecord>, Error> {
    let Some(diff) = cache::from_sources(d, sources, parent, created_by) else {
        return Ok(None);
    };
    let (d2, parent, config) = (d.clone(), parent.clone(), config_value(s));
    let (author, created_by) = (s.author.clone(), created_by.to_string());
    let made = tokio::task::spawn_blocking(move || {
        d2.images
            .reuse_layer(&diff, step_image(Some(&parent), config, created_by, author))
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    Ok(made.ok())
}

/// A build step's image for the store: on `parent`, with the stage's config and the step's
/// history entry.
pub(super) fn step_image(
    parent: Option<&ImageRecord>,
    config: serde_json::Value,
    created_by: String,
    author: Option<String>,
) -> NewImage<'_> {
    NewImage {
        parent,
        config,
        history: history(created_by),
        author,
        container: None,
        tag: None,
    }
}

/// The history entry of a step, as the image store takes it.
fn history(created_by: String) -> serde_json::Value {
    let entry = berth_api::config::History {
        created_by,
        ..Default::default()
    };
    serde_json::to_value(entry).unwrap_or_default()
}

/// Starts the RUN container, relays its output, and commits it when it exits with 0.
async fn run_and_commit(
    d: &Arc<Daemon>,
    s: &mut Stage,
    id: &str,
    cmd: &[String],
    mounts: &[super::mounts::Spec],
    say: &(dyn Fn(String) + Sync),
) -> Result<(), Error> {
    let h = d.containers.find(id)?;
    crate::engine::run::start(d, &h).await?;
    let code = crate::engine::run::wait_exit(d, id, None)
        .await
        .unwrap_or(-1);
    let opts = crate::engine::logs::ReadOptions {
        stdout: true,
        stderr: true,
        since: None,
        until: None,
        tail: None,
        timestamps: false,
        follow: false,
    };
    let log = crate::engine::run::log_path(d, id);
    let records = tokio::task::spawn_blocking(move || crate::engine::logs::read(&log, &opts))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?
        .unwrap_or_default();
    for r in records {
        say(String::from_utf8_lossy(&r.line).into_owned());
    }
    if code != 0 {
        return Err(Error::invalid(format!(
            "The command '{}' returned a non-zero code: {code}",
            cmd.join(" ")
        )));
    }
    let upper = d.containers.dir(id).join("upper");
    let specs = mounts.to_vec();
    tokio::task::spawn_blocking(move || super::mounts::remove_mount_points(&upper, &specs))
        .await
        .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    let image = crate::engine::commit::commit(
        d,
        id,
        crate::engine::commit::CommitOptions {
            pause: false,
            config: Some(s.config.clone()),
            author: s.author.clone().unwrap_or_default(),
            replace_config: true,
            created_by: Some(cmd.join(" ")),
            ..Default::default()
        },
    )
    .await?;
    s.image = Some(image);
    Ok(())
}

/// Removes an intermediate container and its files.
async fn remove_container(d: &Arc<Daemon>, id: &str) {
    let Ok(h) = d.containers.find(id) else {
        return;
    };
    let rec = h.lock().await.clone();
    crate::engine::reconcile::purge_task(d, id).await;
    crate::engine::run::remove_files(d, &rec);
}

/// The stage's config as the image config's `config`.
pub(super) fn config_value(s: &Stage) -> serde_json::Value {
    serde_json::to_value(&s.config).unwrap_or_default()
}

/// The stage's config and author as a cache key part: a config step changes the image.
pub(super) fn config_text(s: &Stage) -> String {
    format!(
        "{}{}",
        config_value(s),
        s.author.as_deref().unwrap_or_default()
    )
}

/// `user:group` names as the stage's own `/etc/passwd` and `/etc/group` give them (COPY
/// `--chown`), read inside the stage's layers.
pub(super) fn ids_in_stage(
    layers: &[PathBuf],
    tmp: &Path,
    spec: &str,
) -> Result<(u64, u64), Error> {
    let unknown = |e: String| Error::invalid(format!("--chown={spec}: {e}"));
    if layers.is_empty() {
        return Err(unknown(
            "the stage has no /etc/passwd (FROM scratch)".into(),
        ));
    }
    crate::build::image_root::with_root(layers, tmp, |root| {
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", root.as_raw_fd());
        let (uid, gid) = berth_oci::users::user(spec, &path).map_err(|e| unknown(e.to_string()))?;
        Ok((u64::from(uid), u64::from(gid)))
    })
}

/// Opens the build context directory.
pub(super) fn open_context(context: &Path) -> Result<OwnedFd, Error> {
    rustix::fs::open(
        context,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening the build context: {e}")))
}

/// The Dockerfile's text, read inside the context.
pub(super) fn read_dockerfile(ctx: &OwnedFd, path: &str) -> Result<String, Error> {
    use std::io::Read;
    let missing = || Error::invalid(format!("Cannot locate specified Dockerfile: {path}"));
    let fd = berth_inroot::open(ctx.as_fd(), Path::new(path), rustix::fs::OFlags::RDONLY)
        .map_err(|_| missing())?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_DOCKERFILE)
        .read_to_string(&mut text)
        .map_err(|_| missing())?;
    Ok(text)
}

/// The 12-character id Docker's build output shows.
pub(super) fn short(image: Option<&ImageRecord>) -> String {
    image.map_or_else(|| "scratch".into(), |i| berth_image::service::short(&i.id))
}
