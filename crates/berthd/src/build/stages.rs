//! A build's stages, run at once where they do not depend on each other: each stage waits only
//! for the earlier stages it names (its `FROM`, `COPY --from`, `RUN --mount=…,from=`), so two
//! independent stages build side by side. The output stays in Dockerfile order: a stage's
//! lines stream as it runs once every earlier stage is done, and wait in its own queue before.
//! As in Docker's classic builder, every stage up to the target is built.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use berth_image::images::ImageRecord;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::watch;

use super::dockerfile::{self, Instruction};
use super::run::{Options, Progress};
use crate::engine::Daemon;
use crate::model::Error;

/// The stages built so far, in Dockerfile order: each one's name and, once made, its image.
pub type Done = [(Option<String>, Option<ImageRecord>)];

/// One stage of the Dockerfile: its FROM and the instructions after it (by index).
struct StageDef {
    name: Option<String>,
    from: usize,
    body: Vec<usize>,
    /// The earlier stages it names.
    deps: Vec<usize>,
}

/// What every stage task shares.
struct Shared {
    d: Arc<Daemon>,
    ctx: OwnedFd,
    o: Options,
    instructions: Vec<Instruction>,
    escape: char,
    meta_args: BTreeMap<String, String>,
    total: usize,
    names: Vec<Option<String>>,
    results: Vec<watch::Receiver<Option<Result<ImageRecord, String>>>>,
}

/// The stage a `--from` value or a FROM image names, among the first `before` stages.
fn stage_named(value: &str, names: &[Option<String>], before: usize) -> Option<usize> {
    let lower = value.to_ascii_lowercase();
    let by_name = names[..before]
        .iter()
        .rposition(|n| n.as_deref() == Some(lower.as_str()));
    by_name.or_else(|| value.parse::<usize>().ok().filter(|i| *i < before))
}

/// `FROM image [AS name]`'s image and name words.
fn from_words(ins: &Instruction) -> (String, Option<String>) {
    let text = match &ins.args {
        dockerfile::Args::Shell(t) => t.clone(),
        dockerfile::Args::Json(w) => w.join(" "),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = match words.as_slice() {
        [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
        _ => None,
    };
    (words.first().copied().unwrap_or_default().to_string(), name)
}

/// Splits the instructions after the leading ARGs into stages, each with its dependencies.
fn plan(df: &dockerfile::Dockerfile, meta_args: &BTreeMap<String, String>) -> Vec<StageDef> {
    let mut stages: Vec<StageDef> = Vec::new();
    for (i, ins) in df.instructions.iter().enumerate() {
        if ins.keyword == "FROM" {
            let (_, name) = from_words(ins);
            stages.push(StageDef {
                name,
                from: i,
                body: Vec::new(),
                deps: Vec::new(),
            });
        } else if let Some(s) = stages.last_mut() {
            s.body.push(i);
        }
    }
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    for (k, s) in stages.iter_mut().enumerate() {
        let args = meta_args.clone();
        let lookup = move |n: &str| args.get(n).cloned();
        let (image, _) = from_words(&df.instructions[s.from]);
        let image = dockerfile::expand(&image, df.escape, &lookup).unwrap_or(image);
        let mut named = vec![image];
        for &i in &s.body {
            let ins = &df.instructions[i];
            for (flag, value) in &ins.flags {
                match flag.as_str() {
                    "from" => named.push(value.clone()),
                    "mount" => named.extend(
                        value
                            .split(',')
                            .filter_map(|f| f.trim().strip_prefix("from="))
                            .map(str::to_string),
                    ),
                    _ => {}
                }
            }
        }
        let mut deps: Vec<usize> = named
            .iter()
            .filter_map(|v| stage_named(v, &names, k))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        s.deps = deps;
    }
    stages
}

/// Builds the image the Dockerfile in `context` describes; tags it.
pub async fn build(
    d: &Arc<Daemon>,
    context: &Path,
    o: &Options,
    out: &UnboundedSender<Progress>,
) -> Result<ImageRecord, Error> {
    let ctx = super::run::open_context(context)?;
    let text = super::run::read_dockerfile(&ctx, &o.dockerfile)?;
    let df = dockerfile::parse(&text).map_err(|e| Error::invalid(e.to_string()))?;
    // ARGs before the first FROM: usable in FROM lines only.
    let mut meta_args: BTreeMap<String, String> = BTreeMap::new();
    let say = |s: String| {
        let _ = out.send(Progress::Stream(s));
    };
    for (n, ins) in df.instructions.iter().enumerate() {
        match ins.keyword.as_str() {
            "FROM" => break,
            "ARG" => {
                say(format!(
                    "Step {}/{} : {}\n",
                    n + 1,
                    df.instructions.len(),
                    ins.original
                ));
                super::run::declare_args(ins, df.escape, o, &mut meta_args)?;
            }
            kw => {
                return Err(Error::invalid(format!(
                    "dockerfile parse error on line {}: {kw} before the first FROM",
                    ins.line
                )));
            }
        }
    }
    let mut stages = plan(&df, &meta_args);
    if stages.is_empty() {
        return Err(Error::invalid("the Dockerfile has no FROM"));
    }
    if let Some(t) = &o.target {
        let at = stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| {
                Error::invalid(format!("failed to reach build target {t} in Dockerfile"))
            })?;
        stages.truncate(at + 1);
    }
    let image = run_stages(d, ctx, o, df, meta_args, stages, out).await?;
    for t in &o.tags {
        d.images
            .images
            .tag(&image.id, t)
            .map_err(|e| Error::internal(e.to_string()))?;
    }
    let _ = out.send(Progress::Built(image.id.to_string()));
    let short = super::run::short(Some(&image));
    say(format!("Successfully built {short}\n"));
    for t in &o.tags {
        say(format!("Successfully tagged {}\n", t.familiar()));
    }
    Ok(image)
}

/// Runs every stage as its own task once its dependencies are made; relays their output in
/// stage order; the last stage's image, or the first error in stage order.
async fn run_stages(
    d: &Arc<Daemon>,
    ctx: OwnedFd,
    o: &Options,
    df: dockerfile::Dockerfile,
    meta_args: BTreeMap<String, String>,
    stages: Vec<StageDef>,
    out: &UnboundedSender<Progress>,
) -> Result<ImageRecord, Error> {
    let mut senders = Vec::new();
    let mut results = Vec::new();
    for _ in &stages {
        let (tx, rx) = watch::channel(None);
        senders.push(tx);
        results.push(rx);
    }
    let shared = Arc::new(Shared {
        d: d.clone(),
        ctx,
        o: o.clone(),
        total: df.instructions.len(),
        escape: df.escape,
        instructions: df.instructions,
        meta_args,
        names: stages.iter().map(|s| s.name.clone()).collect(),
        results,
    });
    let last = stages.len() - 1;
    let mut tasks = tokio::task::JoinSet::new();
    let mut outputs = Vec::new();
    for (k, (def, result)) in stages.into_iter().zip(senders).enumerate() {
        let (tx, rx) = unbounded_channel::<String>();
        outputs.push(rx);
        let shared = shared.clone();
        tasks.spawn(async move {
            let made = stage_task(&shared, k, &def, k == last, tx).await;
            let _ = result.send(Some(made.map_err(|e| e.to_string())));
        });
    }
    for mut rx in outputs {
        while let Some(line) = rx.recv().await {
            let _ = out.send(Progress::Stream(line));
        }
    }
    while tasks.join_next().await.is_some() {}
    let mut first_error = None;
    for rx in &shared.results {
        if let Some(Err(e)) = rx.borrow().as_ref() {
            first_error.get_or_insert_with(|| e.clone());
        }
    }
    if let Some(e) = first_error {
        return Err(Error::invalid(e));
    }
    match shared.results[last].borrow().as_ref() {
        Some(Ok(image)) => Ok(image.clone()),
        _ => Err(Error::internal("the last stage ended without an image")),
    }
}

/// The base image's ONBUILD triggers, run as the stage's first steps (as dockerd does); the
/// image made does not inherit them.
async fn run_triggers(
    sh: &Shared,
    s: &mut super::run::Stage,
    done: &Done,
    say: &(dyn Fn(String) + Sync),
) -> Result<(), Error> {
    let triggers = s.config.on_build.take().unwrap_or_default();
    if triggers.is_empty() {
        return Ok(());
    }
    let n = triggers.len();
    say(format!(
        "# Executing {n} build trigger{}\n",
        if n == 1 { "" } else { "s" }
    ));
    for t in &triggers {
        let df = dockerfile::parse(t).map_err(|e| Error::invalid(format!("ONBUILD {t}: {e}")))?;
        for ins in &df.instructions {
            if matches!(ins.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
                return Err(Error::invalid(format!(
                    "{} isn't allowed as an ONBUILD trigger",
                    ins.keyword
                )));
            }
            super::run::step(
                &sh.d,
                &sh.ctx,
                s,
                ins,
                &ins.keyword,
                sh.escape,
                &sh.o,
                done,
                say,
            )
            .await?;
        }
    }
    Ok(())
}

/// One stage: waits for the stages it names, then runs its FROM and its instructions.
async fn stage_task(
    sh: &Shared,
    k: usize,
    def: &StageDef,
    last: bool,
    tx: UnboundedSender<String>,
) -> Result<ImageRecord, Error> {
    for &dep in &def.deps {
        let mut rx = sh.results[dep].clone();
        let ready = rx.wait_for(Option::is_some).await;
        if !matches!(ready.as_deref(), Ok(Some(Ok(_)))) {
            return Err(Error::invalid(format!("stage {dep} it depends on failed")));
        }
    }
    let done: Vec<(Option<String>, Option<ImageRecord>)> = (0..k)
        .map(|j| {
            let image = sh.results[j]
                .borrow()
                .as_ref()
                .and_then(|r| r.as_ref().ok().cloned());
            (sh.names[j].clone(), image)
        })
        .collect();
    let say = move |s: String| {
        let _ = tx.send(s);
    };
    let (d, o) = (&sh.d, &sh.o);
    let from_ins = &sh.instructions[def.from];
    say(format!(
        "Step {}/{} : {}\n",
        def.from + 1,
        sh.total,
        from_ins.original
    ));
    let mut s = super::run::from(
        d,
        from_ins,
        (sh.escape, &o.registry_auth),
        &sh.meta_args,
        &done,
        &say,
    )
    .await?;
    say(format!(" ---> {}\n", super::run::short(s.image.as_ref())));
    run_triggers(sh, &mut s, &done, &say).await?;
    for &n in &def.body {
        let ins = &sh.instructions[n];
        say(format!("Step {}/{} : {}\n", n + 1, sh.total, ins.original));
        super::run::step(
            d,
            &sh.ctx,
            &mut s,
            ins,
            &ins.keyword,
            sh.escape,
            o,
            &done,
            &say,
        )
        .await?;
        say(format!(" ---> {}\n", super::run::short(s.image.as_ref())));
    }
    if last {
        for (key, value) in &o.labels {
            s.config.set_label(key, value);
            if s.pending.is_empty() {
                s.pending.push(format!("LABEL {key}={value}"));
            }
        }
    }
    super::run::finish(d, s, o.no_cache).await
}
