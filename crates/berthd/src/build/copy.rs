//! COPY and ADD, the part that needs no build state: where a `--from` reads, the owner and
//! mode `--chown`/`--chmod` set, ADD's archives and URLs, heredoc sources (`COPY <<EOF`), and
//! the layer tar of the sources, each resolved inside its root by descriptors and never
//! followed out through a link.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use berth_image::images::ImageRecord;

use crate::build::dockerfile::Instruction;
use crate::engine::Daemon;
use crate::model::Error;

/// `COPY --from=`: an earlier stage by name or index, else an image (here, not pulled).
pub(crate) fn source_image(
    d: &Daemon,
    from: &str,
    done: &super::stages::Done,
) -> Result<ImageRecord, Error> {
    let lower = from.to_ascii_lowercase();
    if let Some((_, image)) = done
        .iter()
        .rev()
        .find(|(n, _)| n.as_deref() == Some(&lower))
    {
        return image
            .clone()
            .ok_or_else(|| Error::internal(format!("stage {from} is used before it is built")));
    }
    if let Ok(i) = from.parse::<usize>() {
        return done
            .get(i)
            .and_then(|(_, image)| image.clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid from flag value {from}: no stage {i} before this one"
                ))
            });
    }
    d.images.images.resolve(from).map_err(|_| {
        Error::not_found(format!(
            "invalid from flag value {from}: no stage or local image of that name"
        ))
    })
}

/// COPY's `--chown` (`user[:group]`, numbers or names; a group left out is the user's string
/// again, as Docker takes it) and `--chmod` (octal), applied to every entry it copies.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ownership {
    uid: Option<u64>,
    gid: Option<u64>,
    mode: Option<u32>,
}

impl Ownership {
    /// The flags' ownership; names are looked up by `names` (`user:group` → ids, in the
    /// stage's `/etc/passwd` and `/etc/group`).
    pub(crate) fn of(
        flags: &[(String, String)],
        names: impl FnOnce(&str) -> Result<(u64, u64), Error>,
    ) -> Result<Ownership, Error> {
        let mut own = Ownership::default();
        let mut names = Some(names);
        for (k, v) in flags {
            match k.as_str() {
                "chown" => {
                    let (u, g) = v.split_once(':').unwrap_or((v, v));
                    if u.contains(':') || g.contains(':') || u.is_empty() || g.is_empty() {
                        return Err(Error::invalid(format!("invalid chown string format: {v}")));
                    }
                    let (uid, gid) = match (u.parse::<u64>(), g.parse::<u64>()) {
                        (Ok(uid), Ok(gid)) => (uid, gid),
                        _ => match names.take() {
                            Some(lookup) => lookup(&format!("{u}:{g}"))?,
                            None => return Err(Error::invalid("--chown given twice")),
                        },
                    };
                    own.uid = Some(uid);
                    own.gid = Some(gid);
                }
                "chmod" => {
                    let m = u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| Error::invalid(format!("invalid --chmod={v}")))?;
                    own.mode = Some(m);
                }
                _ => {}
            }
        }
        Ok(own)
    }

    fn is_empty(&self) -> bool {
        self.uid.is_none() && self.mode.is_none()
    }

    /// `tar` with every entry's owner and mode set (links keep their mode).
    fn restamp(&self, tar: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = tar::Builder::new(Vec::new());
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let mut e = entry?;
            let mut h = e.header().clone();
            if let (Some(u), Some(g)) = (self.uid, self.gid) {
                h.set_uid(u);
                h.set_gid(g);
            }
            let kind = h.entry_type();
            if let Some(m) = self
                .mode
                .filter(|_| !kind.is_symlink() && !kind.is_hard_link())
            {
                h.set_mode(m);
            }
            let path = e.path()?.into_owned();
            match e.link_name()?.map(|l| l.into_owned()) {
                Some(target) => out.append_link(&mut h, &path, &target)?,
                None => out.append_data(&mut h, &path, &mut e)?,
            }
        }
        out.into_inner()
    }
}

/// ADD's own sources as a tar piece: a URL downloaded as one file, or a local archive
/// (plain, gzip or zstd tar) unpacked under `dest`; None for an ordinary file or directory.
fn added_source(
    ctx: std::os::fd::BorrowedFd<'_>,
    src: &str,
    dest: &str,
    into_dir: bool,
    tmp_dir: &Path,
) -> Result<Option<Vec<u8>>, Error> {
    use std::io::{Read, Seek};
    let io = |what: &str, e: std::io::Error| Error::internal(format!("{what}: {e}"));
    let mut b = tar::Builder::new(Vec::new());
    if src.starts_with("http://") || src.starts_with("https://") {
        let mut f = tempfile::tempfile_in(tmp_dir).map_err(|e| io("making a temp file", e))?;
        let size = berth_image::service::download(src, &mut f)
            .map_err(|e| Error::invalid(format!("ADD failed: cannot fetch {src}: {e}")))?;
        f.rewind().map_err(|e| io("reading the download", e))?;
        let base = src
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|b| !b.is_empty())
            .unwrap_or("download");
        let name = match into_dir {
            true => format!("{dest}/{base}"),
            false => dest.to_string(),
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, f)
            .map_err(|e| io("writing the download", e))?;
        return b
            .into_inner()
            .map(Some)
            .map_err(|e| io("writing the layer", e));
    }
    let Ok(fd) = berth_inroot::open(
        ctx,
        Path::new(src.trim_start_matches('/')),
        rustix::fs::OFlags::RDONLY,
    ) else {
        return Ok(None);
    };
    let mut f = std::fs::File::from(fd);
    let mut head = [0u8; 512];
    let n = f.read(&mut head).unwrap_or(0);
    let archive = head[..n].starts_with(&[0x1f, 0x8b])
        || head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar");
    if !archive || f.rewind().is_err() {
        return Ok(None);
    }
    let (_, plain) =
        berth_image::unpack::decompress(f).map_err(|e| io("reading the archive", e))?;
    let mut a = tar::Archive::new(plain);
    for entry in a.entries().map_err(|e| io("reading the archive", e))? {
        let mut e = entry.map_err(|e| io("reading the archive", e))?;
        let mut h = e.header().clone();
        let path = Path::new(dest).join(e.path().map_err(|e| io("reading the archive", e))?);
        let link = e
            .link_name()
            .map_err(|e| io("reading the archive", e))?
            .map(|l| l.into_owned());
        match link {
            Some(t) => b.append_link(&mut h, &path, t),
            None => b.append_data(&mut h, &path, &mut e),
        }
        .map_err(|e| io("writing the layer", e))?;
    }
    b.into_inner()
        .map(Some)
        .map_err(|e| io("writing the layer", e))
}

/// The layer tar of COPY: each source (resolved inside the context, never following a link
/// out of it) under `dest`: a directory's content into it, a file as `dest` itself unless
/// `into_dir`.
pub(crate) fn copy_layer(
    ctx: std::os::fd::BorrowedFd<'_>,
    sources: &[String],
    (dest, into_dir, own, add): (&str, bool, Ownership, bool),
    tmp_dir: &Path,
) -> Result<std::fs::File, Error> {
    use std::io::{Seek, Write};
    let io = |what: &str, e: std::io::Error| Error::internal(format!("{what}: {e}"));
    std::fs::create_dir_all(tmp_dir).map_err(|e| io("making the temp dir", e))?;
    let mut file = tempfile::tempfile_in(tmp_dir).map_err(|e| io("making a temp file", e))?;
    let dest = dest.trim_start_matches('/').trim_end_matches('/');
    for src in sources {
        let special = match add {
            true => added_source(ctx, src, dest, into_dir, tmp_dir)?,
            false => None,
        };
        let mut one = match special {
            Some(one) => one,
            None => context_piece(ctx, src, dest, into_dir)?,
        };
        if !own.is_empty() {
            one = own
                .restamp(&one)
                .map_err(|e| io("setting --chown/--chmod", e))?;
        }
        // Each piece ends with the two zero blocks of an archive's end: one end, at the end.
        let body = one.len().saturating_sub(1024);
        file.write_all(&one[..body])
            .map_err(|e| io("writing the layer", e))?;
    }
    file.write_all(&[0u8; 1024])
        .map_err(|e| io("writing the layer", e))?;
    file.rewind().map_err(|e| io("writing the layer", e))?;
    Ok(file)
}

/// One source of the context (or of a `--from` root) as a tar piece under `dest`.
fn context_piece(
    ctx: std::os::fd::BorrowedFd<'_>,
    src: &str,
    dest: &str,
    into_dir: bool,
) -> Result<Vec<u8>, Error> {
    let io = |what: &str, e: std::io::Error| Error::internal(format!("{what}: {e}"));
    let missing = || {
        Error::invalid(format!(
            "COPY failed: file not found in build context: {src}"
        ))
    };
    // A symlink named as a source is followed (inside the root), as Docker's builders do; the
    // copy keeps the name it was asked by.
    let asked = berth_inroot::clean(src);
    let shown = Path::new(&asked).file_name().map(|n| n.to_os_string());
    let mut rel = asked.clone();
    let mut hops = 0;
    let (pdir, name, is_dir) = loop {
        let path = Path::new(rel.trim_start_matches('/'));
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, Some(n)),
            (_, n) => (Path::new("."), n),
        };
        let pdir = berth_inroot::open_dir(ctx, parent).map_err(|_| missing())?;
        let Some(n) = name else {
            break (pdir, None, true);
        };
        let st = rustix::fs::statat(&pdir, n, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|_| missing())?;
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        if kind != rustix::fs::FileType::Symlink {
            let is_dir = kind == rustix::fs::FileType::Directory;
            break (pdir, Some(n.to_os_string()), is_dir);
        }
        hops += 1;
        if hops > 40 {
            return Err(missing());
        }
        let link = berth_inroot::read_link(pdir.as_fd(), n).map_err(|_| missing())?;
        rel = match link.is_absolute() {
            true => berth_inroot::clean(&link.to_string_lossy()),
            false => berth_inroot::clean(&parent.join(link).to_string_lossy()),
        };
    };
    let name = name.as_deref();
    let target = match (is_dir, into_dir, shown.as_deref()) {
        (false, true, Some(n)) => Path::new(dest).join(n),
        _ => Path::new(dest).to_path_buf(),
    };
    let mut one = Vec::new();
    berth_image::layer_tar::write_tree_at(
        pdir.as_fd(),
        name,
        &target,
        &mut one,
        berth_image::layer_tar::TreeOptions::default(),
    )
    .map_err(|e| io(&format!("reading {src} from the context"), e))?;
    Ok(one)
}

/// The flags COPY/ADD take: `--chown`, `--chmod`, `--from`, and `--link`, which asks that the
/// layer not depend on what is below it (every COPY layer here is made from its sources
/// alone, so it is honoured as it is).
pub(crate) fn check_flags(ins: &Instruction) -> Result<(), Error> {
    let unknown = ins.flags.iter().find(|(k, v)| {
        let link = k == "link" && matches!(v.as_str(), "" | "true" | "false");
        !link && !matches!(k.as_str(), "chown" | "chmod" | "from")
    });
    match unknown {
        Some((k, _)) => Err(Error::invalid(format!(
            "{} --{k} is not supported by this builder yet",
            ins.keyword
        ))),
        None => Ok(()),
    }
}

/// The heredocs a COPY/ADD names as its sources (`<<EOF`), written as files (mode 0644) in a
/// temp dir, variables expanded unless the delimiter was quoted; None when it names none.
pub(crate) fn heredoc_sources(
    d: &Daemon,
    ins: &Instruction,
    sources: &[String],
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(tempfile::TempDir, Vec<String>)>, Error> {
    use std::os::unix::fs::PermissionsExt;
    if !sources.iter().any(|w| w.starts_with("<<")) {
        return Ok(None);
    }
    let tmp = d.data_root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::internal(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("heredoc-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::internal(format!("making the heredocs' dir: {e}")))?;
    let mut names = Vec::new();
    for w in sources {
        let name = w.trim_start_matches("<<").trim_start_matches('-');
        let name = name.trim_matches(|c| c == '"' || c == '\'');
        let h = ins
            .heredocs
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: a heredoc source and a context source cannot be mixed: {w}",
                    ins.keyword
                ))
            })?;
        let content = match h.expand {
            true => expand_text(&h.content, vars),
            false => h.content.clone(),
        };
        let path = dir.path().join(name);
        std::fs::write(&path, content).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::internal(e.to_string()))?;
        names.push(name.to_string());
    }
    Ok(Some((dir, names)))
}

/// `$NAME` and `${NAME}` in a heredoc's text (quotes kept as they are; `\$` is a `$`).
fn expand_text(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (String::new(), 0);
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1) == Some(&'$') => {
                out.push('$');
                i += 2;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                let end = chars[i + 2..].iter().position(|c| *c == '}');
                match end {
                    Some(e) => {
                        let name: String = chars[i + 2..i + 2 + e].iter().collect();
                        out.push_str(&vars(&name).unwrap_or_default());
                        i += e + 3;
                    }
                    None => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            '$' if chars
                .get(i + 1)
                .is_some_and(|c| is_name(*c) && !c.is_ascii_digit()) =>
            {
                let len = chars[i + 1..].iter().take_while(|c| is_name(**c)).count();
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push_str(&vars(&name).unwrap_or_default());
                i += len + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// How dockerd's history names what a COPY/ADD copies: one `file`, one `dir`, or `multi`.
pub(crate) fn source_kind(root: BorrowedFd<'_>, sources: &[String]) -> &'static str {
    let [one] = sources else {
        return "multi";
    };
    if one.contains(['*', '?', '[']) {
        return "multi";
    }
    let rel = berth_inroot::clean(&format!("/{one}"));
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return "dir";
    }
    let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC;
    let stat =
        berth_inroot::open(root, Path::new(rel), flags).and_then(|fd| rustix::fs::fstat(&fd));
    match stat {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            "dir"
        }
        _ => "file",
    }
}
