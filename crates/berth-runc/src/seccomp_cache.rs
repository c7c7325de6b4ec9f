//! The seccomp programs of the profiles a runtime root has seen, kept as compiled BPF under
//! `<root>/@seccomp/<sha256>.bpf` (`@` is not allowed in a container id, so no container's state
//! can collide with it). A profile met again (every container of a daemon carries Docker's
//! default one) is loaded from there instead of being compiled by libseccomp again, which saves
//! about 1 ms per container and per exec. The key covers the profile, this runtime's version and
//! the source of its profile translation (so a rebuilt translation never loads an older build's
//! program), libseccomp's version, the kernel release and the architecture; a file that does not parse
//! is ignored and replaced. Filters that only libseccomp can load (user notification) are not
//! kept.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

/// A profile ready for the container process: compiled here, or read back compiled.
pub enum Seccomp {
    Filter(berth_seccomp::Filter),
    Program(berth_seccomp::Program),
}

impl Seccomp {
    /// Installs it into the calling thread (see [`berth_seccomp::Filter::load`]).
    pub fn load(&self) -> anyhow::Result<()> {
        match self {
            Seccomp::Filter(f) => f.load(),
            Seccomp::Program(p) => p.load(),
        }
        .context("loading the seccomp filter")
    }
}

/// The profile compiled, from the cache under `root` when it is there.
pub fn prepare(profile: &LinuxSeccomp, root: &Path) -> anyhow::Result<Seccomp> {
    let path = cache_path(profile, root);
    if let Some(p) = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| berth_seccomp::Program::from_bytes(&b))
    {
        return Ok(Seccomp::Program(p));
    }
    let filter = berth_seccomp::compile(profile).context("compiling the seccomp profile")?;
    match (filter.program(), path) {
        (Ok(Some(program)), Some(path)) => {
            // A cache that cannot be written costs the next container a compile, nothing more.
            let _ = save(&path, &program.to_bytes());
            Ok(Seccomp::Program(program))
        }
        _ => Ok(Seccomp::Filter(filter)),
    }
}

fn cache_path(profile: &LinuxSeccomp, root: &Path) -> Option<PathBuf> {
    let mut h = Sha256::new();
    h.update(b"berth-runc seccomp cache 1\0");
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(berth_seccomp::TRANSLATION_SOURCE);
    h.update(include_str!("seccomp_cache.rs"));
    h.update(b"\0");
    h.update(berth_seccomp::library_version().unwrap_or_default());
    h.update(b"\0");
    h.update(rustix::system::uname().release().to_bytes());
    h.update(b"\0");
    h.update(std::env::consts::ARCH);
    h.update(b"\0");
    h.update(serde_json::to_vec(profile).ok()?);
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(root.join("@seccomp").join(format!("{key}.bpf")))
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed), readable by root only.
fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
