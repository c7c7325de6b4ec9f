//! A compiled filter as the kernel takes it: the classic BPF instructions libseccomp generates
//! and the seccomp(2) flags. It can be saved as bytes and loaded again without libseccomp, so a
//! runtime that meets the same profile again (every container of a daemon has Docker's default
//! one) skips libseccomp's rule building and code generation, about 1 ms.

use std::io::{Read, Seek};

use crate::{Error, Filter};

/// seccomp(2) operation that installs a filter.
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// The seccomp(2) flags a saved program may carry (TSYNC, LOG, SPEC_ALLOW); a filter that needs
/// others (a user-notification listener) is loaded through libseccomp only.
const SAVABLE_FLAGS: u32 = 1 | 2 | 4;
/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// Start of the saved form: a name and a format version.
const MAGIC: &[u8; 8] = b"BSECCMP1";

/// Classic BPF instructions and seccomp(2) flags, ready for [`Program::load`].
pub struct Program {
    insns: Vec<libc::sock_filter>,
    flags: u32,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("instructions", &self.insns.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Program {
    /// The saved form: [`MAGIC`], the flags, then each instruction (code, jt, jf, k) in this
    /// machine's byte order, as libseccomp exports them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.insns.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.flags.to_ne_bytes());
        for i in &self.insns {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// Reads the saved form back; None unless it is well formed.
    pub fn from_bytes(b: &[u8]) -> Option<Program> {
        let rest = b.strip_prefix(MAGIC.as_slice())?;
        let (flags, insns) = rest.split_at_checked(4)?;
        let flags = u32::from_ne_bytes(flags.try_into().ok()?);
        if flags & !SAVABLE_FLAGS != 0 {
            return None;
        }
        Some(Program {
            insns: parse_insns(insns)?,
            flags,
        })
    }

    /// Installs the program into the calling thread (every thread with TSYNC). As with
    /// [`Filter::load`], the caller must have set no_new_privs or hold CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<(), Error> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr().cast_mut(),
        };
        // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) only reads `prog` and the `len` instructions
        // it points to, all owned by `self` and alive for the call; the kernel copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(self.flags),
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(Error::LoadProgram {
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

fn parse_insns(b: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if b.is_empty() || b.len() % 8 != 0 || b.len() / 8 > MAX_INSNS {
        return None;
    }
    Some(
        b.chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

impl Filter {
    /// The program libseccomp would load for this filter, or None for a filter only libseccomp
    /// can load (user notification, wait-killable receive).
    pub fn program(&self) -> Result<Option<Program>, Error> {
        if self.notify || self.flags & !SAVABLE_FLAGS != 0 {
            return Ok(None);
        }
        let export = |source: std::io::Error| Error::Export { source };
        let memfd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| export(e.into()))?;
        self.ctx
            .export_bpf(&memfd)
            .map_err(|e| export(std::io::Error::other(e)))?;
        let mut file = std::fs::File::from(memfd);
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(export)?;
        let insns = parse_insns(&bytes).ok_or_else(|| {
            export(std::io::Error::other(format!(
                "libseccomp exported {} bytes, not a BPF program",
                bytes.len()
            )))
        })?;
        Ok(Some(Program {
            insns,
            flags: self.flags,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_form_round_trips_and_rejects_garbage() {
        let p = Program {
            insns: vec![libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }],
            flags: 2,
        };
        let b = p.to_bytes();
        let q = Program::from_bytes(&b).expect("round trip");
        assert_eq!(q.to_bytes(), b);
        assert!(
            Program::from_bytes(&b[..b.len() - 1]).is_none(),
            "truncated"
        );
        assert!(
            Program::from_bytes(b"BSECCMP1\x02\0\0\0").is_none(),
            "no instructions"
        );
        let mut bad_flags = b.clone();
        bad_flags[8] = 8; // SECCOMP_FILTER_FLAG_NEW_LISTENER
        assert!(Program::from_bytes(&bad_flags).is_none(), "listener flag");
        assert!(Program::from_bytes(b"not a program").is_none());
    }
}
