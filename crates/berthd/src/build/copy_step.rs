//! The COPY and ADD step: sources expanded (wildcards) inside their root, keyed for the cache
//! by the digests the context's index took as it arrived (or, for a stage's or an image's
//! files, by the layer made from them), and the layer added on a miss.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::build::cache;
use crate::build::copy::{Ownership, copy_layer, source_image};
use crate::build::dockerfile::{self, Args, Instruction};
use crate::build::run::{
    Options, Stage, config_text, config_value, flush, ids_in_stage, lookup_in, open_context, reuse,
    step_image, store, workdir,
};
use crate::engine::Daemon;
use berth_image::images::ImageRecord;

use crate::model::Error;

/// COPY/ADD: one layer with every source (from the context, a heredoc, a stage or an image;
/// ADD also a URL or a local archive), wildcards expanded, under the destination.
#[allow(clippy::too_many_arguments)]
pub(super) async fn step(
    d: &Arc<Daemon>,
    ctx: &OwnedFd,
    s: &mut Stage,
    ins: &Instruction,
    escape: char,
    done: &super::stages::Done,
    o: &Options,
    say: &(dyn Fn(String) + Sync),
) -> Result<(), Error> {
    let no_cache = o.no_cache;
    super::copy::check_flags(ins)?;
    flush(d, s, no_cache).await?;
    let vars = lookup_in(s);
    let (sources, dest, shown_dest) = arguments(s, ins, escape, &vars)?;
    let sources = sources.as_slice();
    let dest_is_dir = dest.ends_with('/');
    let own = ownership(d, s, ins)?;
    let add = ins.keyword == "ADD";
    let from = match ins.flags.iter().find(|(k, _)| k == "from") {
        None => None,
        Some((_, f)) => Some(source_image(d, f, done)?),
    };
    // `COPY <<EOF /dest`: the heredocs are the sources, written to a directory of their own.
    let heredocs = super::copy::heredoc_sources(d, ins, sources, &vars)?;
    let ctx = match &heredocs {
        Some((dir, _)) => open_context(dir.path())?,
        None => ctx
            .try_clone()
            .map_err(|e| Error::internal(e.to_string()))?,
    };
    // Sources from the context are keyed by the digests taken as it arrived.
    let index = (from.is_none() && heredocs.is_none()).then(|| o.context_index.clone());
    let sources = match &heredocs {
        Some((_, names)) => names.clone(),
        None => sources.to_vec(),
    };
    let parent_id = s
        .image
        .as_ref()
        .map_or("scratch".to_string(), |i| i.id.to_string());
    let key_of = CopyKey {
        parent: parent_id.clone(),
        original: ins.original.clone(),
        config: config_text(s),
        dest: dest.clone(),
    };
    let key_of2 = key_of.clone();
    let tmp_dir = d.data_root.join("tmp");
    let layers = from.map(|image| d.images.layer_dirs(&image));
    let d3 = d.clone();
    let copied = tokio::task::spawn_blocking(move || {
        let copy = |root: BorrowedFd<'_>| {
            let sources = super::glob::expand(root, &sources)?;
            let into_dir = dest_is_dir || sources.len() > 1;
            let known = index
                .as_deref()
                .and_then(|i| indexed_digest(i, &sources, add));
            let key = known.map(|k| key_of2.key("context", &sources, &k));
            if let Some(hit) = key
                .as_ref()
                .filter(|_| !no_cache)
                .and_then(|k| cache::get(&d3, k))
            {
                return Ok(Copied::Hit(Box::new(hit)));
            }
            let kind = super::copy::source_kind(root, &sources);
            let layer = copy_layer(root, &sources, (&dest, into_dir, own, add), &tmp_dir)?;
            Ok(Copied::Layer {
                layer,
                kind,
                sources,
                key,
            })
        };
        match layers {
            None => copy(ctx.as_fd()),
            Some(lowers) => crate::build::image_root::with_root(&lowers, &tmp_dir, copy),
        }
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))??;
    let (mut layer, kind, key) = match copied {
        Copied::Hit(hit) => {
            say(" ---> Using cache\n".into());
            s.image = Some(*hit);
            return Ok(());
        }
        Copied::Layer {
            layer,
            kind,
            sources,
            key,
        } => (layer, kind, (sources, key)),
    };
    let digest = cache::file_digest(&mut layer)
        .map_err(|e| Error::internal(format!("reading the layer: {e}")))?;
    let key = match key {
        (_, Some(k)) => k,
        (sources, None) => key_of.key("layer", &sources, &digest),
    };
    if let Some(hit) = (!no_cache).then(|| cache::get(d, &key)).flatten() {
        say(" ---> Using cache\n".into());
        s.image = Some(hit);
        return Ok(());
    }
    let (d2, parent, config) = (d.clone(), s.image.clone(), config_value(s));
    let author = s.author.clone();
    // dockerd's words: `COPY file:<hash> in /dest `, `dir:` for a directory, `multi:` for several.
    let created_by = format!(
        "/bin/sh -c #(nop) {} {kind}:{} in {shown_dest} ",
        ins.keyword,
        digest.hex()
    );
    if let Some(parent) = s.image.clone().filter(|_| !no_cache) {
        if let Some(hit) = reuse(d, s, &o.cache_from, &parent, &created_by).await? {
            say(" ---> Using cache\n".into());
            cache::put(d, &key, &hit);
            s.image = Some(hit);
            return Ok(());
        }
    }
    store(d, s, &key, move || {
        d2.images.add_layer(
            layer,
            step_image(parent.as_ref(), config, created_by, author),
        )
    })
    .await
}

/// `--chown`/`--chmod`, names looked up in the stage's own passwd and group files.
fn ownership(d: &Arc<Daemon>, s: &Stage, ins: &Instruction) -> Result<Ownership, Error> {
    let stage_layers = s
        .image
        .as_ref()
        .map(|i| d.images.layer_dirs(i))
        .unwrap_or_default();
    let tmp = d.data_root.join("tmp");
    Ownership::of(&ins.flags, |spec| {
        crate::engine::blocking(|| ids_in_stage(&stage_layers, &tmp, spec))
    })
}

/// The sources and destination of a COPY/ADD, variables expanded; the destination made
/// absolute from the working directory, and as written.
fn arguments(
    s: &Stage,
    ins: &Instruction,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<String>, String, String), Error> {
    let mut words = match &ins.args {
        Args::Json(w) => w.clone(),
        Args::Shell(t) => dockerfile::split_words(t, escape).map_err(Error::invalid)?,
    };
    let words: Vec<String> = words
        .drain(..)
        .map(|w| dockerfile::expand(&w, escape, vars).map_err(Error::invalid))
        .collect::<Result<_, _>>()?;
    let too_few = || Error::invalid(format!("{} requires at least two arguments", ins.keyword));
    let [sources @ .., dest] = words.as_slice() else {
        return Err(too_few());
    };
    if sources.is_empty() {
        return Err(too_few());
    }
    let shown_dest = dest.clone();
    let dest = match dest.starts_with('/') {
        true => dest.clone(),
        false => format!("{}/{dest}", workdir(&s.config).trim_end_matches('/')),
    };
    Ok((sources.to_vec(), dest, shown_dest))
}

/// What a COPY step's cache key is made of besides its sources.
#[derive(Clone)]
struct CopyKey {
    parent: String,
    original: String,
    config: String,
    dest: String,
}

impl CopyKey {
    /// The key for `sources` whose content has the digest `digest` (`what`: of the layer
    /// made, or as the context's index recorded it).
    fn key(
        &self,
        what: &str,
        sources: &[String],
        digest: &berth_image::Digest,
    ) -> berth_image::Digest {
        let named = format!("{sources:?} {}", self.dest);
        let parts = [
            what,
            &self.parent,
            &self.original,
            &named,
            digest.as_str(),
            &self.config,
        ];
        cache::key(&parts)
    }
}

/// What a COPY step's blocking part made: a cache hit found from the context's index, or
/// the layer of its sources (with the index's key for them, when it had one).
enum Copied {
    Hit(Box<ImageRecord>),
    Layer {
        layer: std::fs::File,
        kind: &'static str,
        sources: Vec<String>,
        key: Option<berth_image::Digest>,
    },
}

/// One digest of the sources' content as the context index recorded it; None when a source
/// is not plainly in it (a URL, a path through a symlink, a name not there), and the layer
/// is then made and hashed instead.
fn indexed_digest(
    index: &berth_image::content_index::ContentIndex,
    sources: &[String],
    add: bool,
) -> Option<berth_image::Digest> {
    let mut all = String::new();
    for src in sources {
        if add && (src.starts_with("http://") || src.starts_with("https://")) {
            return None;
        }
        let path = berth_inroot::clean(src).trim_start_matches('/').to_string();
        let mut at = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            at = match at.is_empty() {
                true => comp.to_string(),
                false => format!("{at}/{comp}"),
            };
            if index.is_symlink(&at) {
                return None;
            }
        }
        let digest = index.digest_under(&path)?;
        all.push_str(&format!("{path}\0{digest}\n"));
    }
    Some(berth_image::Digest::of(all.as_bytes()))
}
