//! OCI seccomp profiles (`linux.seccomp` of config.json) compiled and loaded with libseccomp.
//!
//! [`compile`] turns a profile into a [`Filter`] without touching the calling process;
//! [`Filter::load`] installs it into the calling thread (or, with `SECCOMP_FILTER_FLAG_TSYNC`,
//! every thread of the process). [`Filter::program`] exports the BPF program it stands for, as a
//! [`Program`] that can be saved and loaded again without libseccomp. [`features`] is what
//! `berth-runc features` reports.
//!
//! The translation follows runc's behaviour so that profiles written for runc (Docker's default
//! profile among them) behave the same here:
//! - a syscall name unknown to libseccomp is skipped (and listed in [`Filter::skipped_syscalls`]);
//! - a rule whose action equals the default action is skipped;
//! - SCMP_ACT_NOTIFY needs `listenerPath`, is refused as default action and for `write`, and
//!   its listener fd comes from [`Filter::load_with_notify_fd`];
//! - args with distinct indexes are ANDed in one rule; if any index appears twice, every arg
//!   becomes a rule of its own (an OR).

mod compile;
mod error;
mod features;
mod program;

pub use compile::{Filter, compile};
pub use error::Error;
pub use features::{Features, features, library_version};
pub use program::Program;

/// The source of the profile translation, as built into this binary: part of the key of a
/// cache of compiled programs, so a changed translation never loads a program an older build
/// made, whatever the version number says.
pub const TRANSLATION_SOURCE: &str =
    concat!(include_str!("compile.rs"), include_str!("program.rs"));
