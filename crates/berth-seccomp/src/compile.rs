//! Translation of an OCI `LinuxSeccomp` profile into a libseccomp filter, and its loading.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::Error;

/// Syscalls take at most six arguments (indexes 0..=5).
const MAX_ARGS: usize = 6;

/// Above this many rules, ask libseccomp for a binary-tree filter (as runc does; libseccomp
/// <= 2.5.4 misbehaves with the tree and no rules at all).
const BINARY_TREE_THRESHOLD: usize = 32;

/// libseccomp API level with working user notification (as runc requires).
const NOTIFY_API_LEVEL: u32 = 6;

/// A compiled seccomp filter, ready to be loaded with [`Filter::load`].
///
/// It wraps a libseccomp context, which is neither `Send` nor `Sync`: compile it on the thread
/// that loads it (berth-runc's single-threaded init).
pub struct Filter {
    pub(crate) ctx: ScmpFilterContext,
    skipped: Vec<String>,
    rules: usize,
    pub(crate) notify: bool,
    /// The seccomp(2) flags the profile's `flags` stand for.
    pub(crate) flags: u32,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("rules", &self.rules)
            .field("skipped", &self.skipped)
            .field("notify", &self.notify)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Loads the filter into the calling thread, or into every thread of the process when the
    /// profile has `SECCOMP_FILTER_FLAG_TSYNC`.
    ///
    /// The caller must have set no_new_privs or hold CAP_SYS_ADMIN (the kernel answers EACCES
    /// otherwise); this function never sets no_new_privs itself, since that is the process
    /// config's `noNewPrivileges` to decide.
    ///
    /// A filter with SCMP_ACT_NOTIFY rules is refused ([`Error::NotifyFdUnclaimed`]): use
    /// [`Filter::load_with_notify_fd`] for it.
    pub fn load(&self) -> Result<(), Error> {
        if self.notify {
            return Err(Error::NotifyFdUnclaimed);
        }
        self.load_into_kernel()
    }

    /// Loads the filter like [`Filter::load`] and, when it has SCMP_ACT_NOTIFY rules, returns
    /// the seccomp user-notification fd (close-on-exec). The runtime sends it to the seccomp
    /// agent at `listenerPath` (with SCM_RIGHTS and the container process state) and closes its
    /// copy; until the agent answers, the notified syscalls block.
    pub fn load_with_notify_fd(&self) -> Result<Option<OwnedFd>, Error> {
        self.load_into_kernel()?;
        if !self.notify {
            return Ok(None);
        }
        let raw = self
            .ctx
            .get_notify_fd()
            .map_err(|source| Error::NotifyFd { source })?;
        // SAFETY: `raw` is the listener fd that libseccomp keeps open in its own state for the
        // life of the process (it never closes it while we run); we only borrow it long enough
        // to duplicate it, so the caller owns an fd of its own and libseccomp's stays untouched.
        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
        borrowed
            .try_clone_to_owned()
            .map(Some)
            .map_err(|source| Error::NotifyFdDup { source })
    }

    /// Whether the filter has SCMP_ACT_NOTIFY rules (and so needs a seccomp agent).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    fn load_into_kernel(&self) -> Result<(), Error> {
        self.ctx.load().map_err(|source| Error::Load { source })
    }

    /// Syscall names of the profile that libseccomp does not know on the native architecture,
    /// and which were therefore skipped (runc skips them too). For the runtime's debug log.
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }

    /// How many libseccomp rules were added (after skipping unknown names, rules equal to the
    /// default action, and splitting OR'ed args).
    pub fn rule_count(&self) -> usize {
        self.rules
    }
}

/// Compiles the OCI profile into a libseccomp filter context without loading it.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, Error> {
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::NotifyAsDefault);
    }
    let default_action = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|source| Error::Init {
        action: profile.default_action().to_string(),
        source,
    })?;

    // no_new_privs is the process config's business, not the filter's.
    ctx.set_ctl_nnp(false).map_err(|source| Error::SetAttr {
        attr: "no_new_privs handling",
        source,
    })?;
    // Report the kernel's own errno on a failed load rather than a generic ECANCELED. Older
    // libseccomp lacks the attribute; the load still works, only with a vaguer error.
    let _ = ctx.set_api_sysrawrc(true);

    for arch in profile.architectures().iter().flatten() {
        let name = arch.to_string();
        let scmp_arch = ScmpArch::from_str(&name).map_err(|source| Error::UnknownArch {
            arch: name.clone(),
            source,
        })?;
        let present = ctx
            .is_arch_present(scmp_arch)
            .map_err(|source| Error::AddArch {
                arch: name.clone(),
                source,
            })?;
        if !present {
            ctx.add_arch(scmp_arch)
                .map_err(|source| Error::AddArch { arch: name, source })?;
        }
    }

    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        set_flag(&mut ctx, *flag)?;
        flags |= kernel_flag(*flag);
    }

    let syscalls = profile.syscalls().as_deref().unwrap_or_default();
    if syscalls.len() > BINARY_TREE_THRESHOLD {
        // Only an optimisation: older libseccomp lacks it and the filter is correct without.
        let _ = ctx.set_ctl_optimize(2);
    }

    let mut filter = Filter {
        ctx,
        skipped: Vec::new(),
        rules: 0,
        notify: false,
        flags,
    };
    for (index, rule) in syscalls.iter().enumerate() {
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            check_notify(profile, rule)?;
        }
        add_rule(&mut filter, index, rule, default_action)?;
    }
    Ok(filter)
}

/// runc's rules for SCMP_ACT_NOTIFY, checked before any rule is added.
fn check_notify(profile: &LinuxSeccomp, rule: &LinuxSyscall) -> Result<(), Error> {
    let site = rule.names().join(",");
    if rule.names().iter().any(|name| name == "write") {
        return Err(Error::NotifyOnWrite);
    }
    if profile.listener_path().is_none() {
        return Err(Error::NotifyWithoutListener { site });
    }
    let api = libseccomp::get_api();
    if api < NOTIFY_API_LEVEL {
        return Err(Error::NotifyUnsupported { site, api });
    }
    Ok(())
}

/// The seccomp(2) flag of an OCI filter flag.
fn kernel_flag(flag: LinuxSeccompFilterFlag) -> u32 {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
    }
}

/// Sets one OCI filter flag through its libseccomp attribute.
fn set_flag(ctx: &mut ScmpFilterContext, flag: LinuxSeccompFilterFlag) -> Result<(), Error> {
    let result = match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        // Needs libseccomp >= 2.6: with an older one this fails with a clear error.
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
    };
    result.map(|_| ()).map_err(|source| Error::SetFlag {
        flag: flag.to_string(),
        source,
    })
}

/// Adds the libseccomp rules for one entry of `syscalls[]`.
fn add_rule(
    filter: &mut Filter,
    index: usize,
    rule: &LinuxSyscall,
    default_action: ScmpAction,
) -> Result<(), Error> {
    let first_name = rule.names().first().map(String::as_str).unwrap_or("");
    let rule_action = action(rule.action(), rule.errno_ret())?;
    let args = rule.args().as_deref().unwrap_or_default();
    let conditions = args
        .iter()
        .map(|arg| condition(arg, first_name))
        .collect::<Result<Vec<_>, _>>()?;
    // runc: if an argument index appears more than once, each condition is its own rule (OR);
    // otherwise all conditions go into one rule (AND).
    let mut seen = [0usize; MAX_ARGS];
    for arg in args {
        if let Some(count) = seen.get_mut(arg.index()) {
            *count += 1;
        }
    }
    let or_each = seen.iter().any(|count| *count > 1);

    for name in rule.names() {
        if name.is_empty() {
            return Err(Error::EmptySyscallName { rule: index });
        }
        if rule_action == default_action {
            // libseccomp refuses a rule equal to the default action; it is redundant anyway.
            continue;
        }
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            filter.skipped.push(name.clone());
            continue;
        };
        let add = |ctx: &mut ScmpFilterContext, conds: &[ScmpArgCompare]| {
            ctx.add_rule_conditional(rule_action, syscall, conds)
                .map(|_| ())
                .map_err(|source| Error::AddRule {
                    syscall: name.clone(),
                    action: rule.action().to_string(),
                    source,
                })
        };
        if or_each {
            for cond in &conditions {
                add(&mut filter.ctx, std::slice::from_ref(cond))?;
                filter.rules += 1;
            }
        } else {
            add(&mut filter.ctx, &conditions)?;
            filter.rules += 1;
        }
        filter.notify |= rule_action == ScmpAction::Notify;
    }
    Ok(())
}

/// Translates one argument comparison. For SCMP_CMP_MASKED_EQ, `value` is the mask and
/// `valueTwo` the value compared with the masked argument (as in runc and libseccomp).
fn condition(arg: &LinuxSeccompArg, syscall: &str) -> Result<ScmpArgCompare, Error> {
    let index = arg.index();
    let arg_no = u32::try_from(index)
        .ok()
        .filter(|_| index < MAX_ARGS)
        .ok_or_else(|| Error::ArgIndex {
            syscall: syscall.to_string(),
            index,
        })?;
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(arg_no, op, datum))
}

/// Translates an OCI action and its optional errnoRet.
fn action(act: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction, Error> {
    // SECCOMP_RET_DATA is 16 bits wide; EPERM is the spec's default.
    let ret_data = || -> Result<u16, Error> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(v) => u16::try_from(v).map_err(|_| Error::ErrnoRetOutOfRange {
                action: act.to_string(),
                errno_ret: v,
            }),
        }
    };
    let scmp = match act {
        LinuxSeccompAction::ScmpActErrno => return Ok(ScmpAction::Errno(ret_data()?.into())),
        LinuxSeccompAction::ScmpActTrace => return Ok(ScmpAction::Trace(ret_data()?)),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    };
    match errno_ret {
        // The runtime spec: an errnoRet on an action that takes none MUST fail.
        Some(errno_ret) => Err(Error::ErrnoRetNotAllowed {
            action: act.to_string(),
            errno_ret,
        }),
        None => Ok(scmp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_defaults_to_eperm_and_takes_errno_ret() {
        let act = LinuxSeccompAction::ScmpActErrno;
        assert_eq!(action(act, None).unwrap(), ScmpAction::Errno(libc::EPERM));
        assert_eq!(action(act, Some(38)).unwrap(), ScmpAction::Errno(38));
        assert!(matches!(
            action(act, Some(70_000)),
            Err(Error::ErrnoRetOutOfRange {
                errno_ret: 70_000,
                ..
            })
        ));
        assert_eq!(
            action(LinuxSeccompAction::ScmpActTrace, None).unwrap(),
            ScmpAction::Trace(libc::EPERM as u16)
        );
    }

    #[test]
    fn errno_ret_on_allow_is_an_error() {
        let err = action(LinuxSeccompAction::ScmpActAllow, Some(1)).unwrap_err();
        assert!(matches!(err, Error::ErrnoRetNotAllowed { .. }), "{err}");
    }

    #[test]
    fn kill_is_kill_thread() {
        assert_eq!(
            action(LinuxSeccompAction::ScmpActKill, None).unwrap(),
            ScmpAction::KillThread
        );
    }
}
