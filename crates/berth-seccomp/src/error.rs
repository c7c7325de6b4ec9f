//! The error type of berth-seccomp: one variant per failure site, the cause in `#[source]`.

use libseccomp::error::SeccompError;

/// Why a seccomp profile could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libseccomp refused to create a filter context with this default action.
    #[error("cannot create a seccomp filter with default action {action}")]
    Init {
        /// The OCI name of the default action.
        action: String,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// `errnoRet`/`defaultErrnoRet` was given for an action that takes none.
    #[error("seccomp action {action} does not take an errnoRet (got {errno_ret})")]
    ErrnoRetNotAllowed {
        /// The OCI name of the action.
        action: String,
        /// The value given.
        errno_ret: u32,
    },

    /// `errnoRet`/`defaultErrnoRet` does not fit in the 16 bits of SECCOMP_RET_DATA.
    #[error("seccomp errnoRet {errno_ret} for action {action} is out of range (at most 65535)")]
    ErrnoRetOutOfRange {
        /// The OCI name of the action.
        action: String,
        /// The value given.
        errno_ret: u32,
    },

    /// SCMP_ACT_NOTIFY is used, but the linked libseccomp or the kernel cannot do it.
    #[error(
        "seccomp action SCMP_ACT_NOTIFY ({site}) needs libseccomp API level 6, this host has {api}"
    )]
    NotifyUnsupported {
        /// The syscall name the action was given for.
        site: String,
        /// The libseccomp API level of this host (libseccomp and kernel).
        api: u32,
    },

    /// libseccomp could not export the filter's BPF program.
    #[error("exporting the seccomp filter's BPF program")]
    Export {
        /// What failed.
        #[source]
        source: std::io::Error,
    },

    /// The kernel refused a saved BPF program.
    #[error("loading the seccomp BPF program")]
    LoadProgram {
        /// The kernel's errno.
        #[source]
        source: std::io::Error,
    },

    /// SCMP_ACT_NOTIFY as the default action (it would also trap the runtime's own syscalls).
    #[error("seccomp action SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyAsDefault,

    /// SCMP_ACT_NOTIFY for `write`, which the runtime needs after loading the filter (as runc).
    #[error("seccomp action SCMP_ACT_NOTIFY cannot be used for the write syscall")]
    NotifyOnWrite,

    /// SCMP_ACT_NOTIFY without `listenerPath` to send the notification fd to.
    #[error("seccomp action SCMP_ACT_NOTIFY ({site}) needs linux.seccomp.listenerPath")]
    NotifyWithoutListener {
        /// The syscall name the action was given for.
        site: String,
    },

    /// `Filter::load` on a filter with SCMP_ACT_NOTIFY rules: its listener fd would be lost and
    /// the notified syscalls would block for ever.
    #[error("seccomp filter has SCMP_ACT_NOTIFY rules: load it with Filter::load_with_notify_fd")]
    NotifyFdUnclaimed,

    /// The filter was loaded but libseccomp gave no notification fd.
    #[error("cannot get the seccomp notification fd of the loaded filter")]
    NotifyFd {
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// The notification fd could not be duplicated for the caller.
    #[error("cannot duplicate the seccomp notification fd")]
    NotifyFdDup {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The architecture name is not one the linked libseccomp knows.
    #[error("seccomp architecture {arch} is not known to libseccomp")]
    UnknownArch {
        /// The OCI name of the architecture.
        arch: String,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// libseccomp refused to add an architecture to the filter.
    #[error("cannot add seccomp architecture {arch} to the filter")]
    AddArch {
        /// The OCI name of the architecture.
        arch: String,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// A seccomp filter flag could not be set (libseccomp or the kernel lacks it).
    #[error("cannot set seccomp filter flag {flag}")]
    SetFlag {
        /// The OCI name of the flag.
        flag: String,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// A libseccomp filter attribute needed by berth could not be set.
    #[error("cannot set seccomp filter attribute {attr}")]
    SetAttr {
        /// The attribute (e.g. "no_new_privs handling").
        attr: &'static str,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// A `syscalls[].names` entry was the empty string.
    #[error("seccomp rule {rule} has an empty syscall name")]
    EmptySyscallName {
        /// Index of the rule in `syscalls[]`.
        rule: usize,
    },

    /// An argument index outside 0..=5.
    #[error(
        "seccomp rule for syscall {syscall} compares argument {index}, but syscalls have 6 (0..=5)"
    )]
    ArgIndex {
        /// The syscall name.
        syscall: String,
        /// The index given.
        index: usize,
    },

    /// libseccomp refused a rule.
    #[error("cannot add seccomp rule for syscall {syscall} with action {action}")]
    AddRule {
        /// The syscall name.
        syscall: String,
        /// The OCI name of the rule's action.
        action: String,
        /// libseccomp's error.
        #[source]
        source: SeccompError,
    },

    /// Loading the filter into the kernel failed (e.g. EACCES: neither no_new_privs nor
    /// CAP_SYS_ADMIN).
    #[error("cannot load the seccomp filter into the kernel")]
    Load {
        /// libseccomp's error (with the kernel's errno).
        #[source]
        source: SeccompError,
    },
}
