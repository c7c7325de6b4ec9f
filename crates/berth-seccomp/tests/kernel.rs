//! Seccomp profiles compiled, loaded into a forked child and checked against the real kernel.
//!
//! Each test compiles its profile in the parent, forks, and in the child sets no_new_privs, loads
//! the filter, makes raw syscalls and `_exit`s with 0 when every result was as expected, or with
//! the number of the first step that was not. The parent only reads the wait status.
//!
//! Forking from the multi-threaded test harness is sound here: the child touches no lock but
//! malloc's (glibc resets its arenas in the child), makes syscalls, then `_exit`s.

use berth_seccomp::{Error, Filter, compile, features};
use oci_spec::runtime::LinuxSeccomp;

/// Exit code of a child whose `Filter::load` failed.
const LOAD_FAILED: i32 = 200;
/// Exit code of a child that could not set no_new_privs.
const NNP_FAILED: i32 = 201;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test profile parses")
}

/// Forks; the child runs `body` and `_exit`s with its result. Returns how the child ended.
fn in_child(body: impl FnOnce() -> i32) -> Outcome {
    wait(spawn(body))
}

/// Forks; the child runs `body` and `_exit`s with its result. Returns the child's pid.
fn spawn(body: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory-safety preconditions. The child only runs `body` (prctl,
    // setrlimit, seccomp and other raw syscalls, and libseccomp's malloc-using load, which glibc
    // makes safe after fork) and then `_exit`s without returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = body();
        // SAFETY: `_exit` ends the child at once, running no destructor or atexit handler
        // inherited from the parent.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for the child `pid` and says how it ended.
fn wait(pid: libc::pid_t) -> Outcome {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::Interrupted,
            "waitpid: {err}"
        );
    }
    if libc::WIFSIGNALED(status) {
        Outcome::Signaled(libc::WTERMSIG(status))
    } else {
        Outcome::Exited(libc::WEXITSTATUS(status))
    }
}

/// In the child: no core dumps, no_new_privs, load `filter`. Returns an exit code on failure.
fn child_setup(filter: &Filter) -> Result<(), i32> {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `no_core` is a valid rlimit that outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(NNP_FAILED);
    }
    filter.load().map_err(|_| LOAD_FAILED)
}

/// Runs `steps` in a child under `filter`.
fn run(filter: &Filter, steps: impl FnOnce() -> i32) -> Outcome {
    in_child(|| match child_setup(filter) {
        Ok(()) => steps(),
        Err(code) => code,
    })
}

/// errno of a raw syscall result: 0 for success.
fn errno_of(ret: libc::c_long) -> i32 {
    if ret < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn getcwd() -> i32 {
    let mut buf = [0u8; 256];
    // SAFETY: getcwd writes at most `buf.len()` bytes into `buf`.
    errno_of(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })
}

fn getppid() -> i32 {
    // SAFETY: getppid takes no arguments.
    errno_of(unsafe { libc::syscall(libc::SYS_getppid) })
}

fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments.
    errno_of(unsafe { libc::syscall(libc::SYS_getpid) })
}

fn mkdir(path: &std::ffi::CStr) -> i32 {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    errno_of(unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o700) })
}

fn socket(domain: i32, ty: i32) -> i32 {
    // SAFETY: socket takes plain integers; the fd is left to the child's `_exit`.
    errno_of(unsafe { libc::syscall(libc::SYS_socket, domain, ty, 0) })
}

fn personality(persona: libc::c_ulong) -> i32 {
    // SAFETY: personality takes a plain integer.
    errno_of(unsafe { libc::syscall(libc::SYS_personality, persona) })
}

/// Checks each (actual, expected) errno pair in order; returns 0 or the 1-based failing step.
fn expect(results: &[(i32, i32)]) -> i32 {
    results
        .iter()
        .position(|(actual, expected)| actual != expected)
        .map_or(0, |i| i as i32 + 1)
}

#[test]
fn baseline_child_without_filter_runs_syscalls() {
    let outcome = in_child(|| expect(&[(getcwd(), 0), (getppid(), 0)]));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn errno_rule_returns_eperm_by_default() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[(getcwd(), libc::EPERM), (getppid(), 0)])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn errno_rule_returns_custom_errno_ret() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[(mkdir(c"/nonexistent-berth-seccomp/x"), 38), (getcwd(), 0)])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn default_errno_with_allow_list() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "syscalls":[{"names":["exit_group","exit","getpid","write","rt_sigreturn","munmap",
                                   "brk","madvise"],
                         "action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[
            (getpid(), 0),
            (getppid(), libc::EPERM),
            (getcwd(), libc::EPERM),
        ])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn default_errno_ret_is_honoured() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":6,
            "syscalls":[{"names":["exit_group","exit","getpid","munmap","brk","madvise"],
                         "action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[(getpid(), 0), (getppid(), libc::ENXIO)])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn arg_equal_condition_allows_only_matching_call() {
    // personality(0xffffffff) only queries the persona: allow it, refuse any change.
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "syscalls":[
              {"names":["exit_group","exit","munmap","brk","madvise"],"action":"SCMP_ACT_ALLOW"},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[(personality(0xffff_ffff), 0), (personality(0), libc::EPERM)])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn socket_domain_denied_while_unix_works() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO",
                         "args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[
            (socket(libc::AF_INET, libc::SOCK_STREAM), libc::EPERM),
            (socket(libc::AF_UNIX, libc::SOCK_STREAM), 0),
        ])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn same_index_args_are_ored() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO",
                         "args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"},
                                 {"index":0,"value":10,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    assert_eq!(filter.rule_count(), 2);
    let outcome = run(&filter, || {
        expect(&[
            (socket(libc::AF_INET, libc::SOCK_STREAM), libc::EPERM),
            (socket(libc::AF_INET6, libc::SOCK_STREAM), libc::EPERM),
            (socket(libc::AF_UNIX, libc::SOCK_STREAM), 0),
        ])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn different_index_args_are_anded() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO",
                         "args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"},
                                 {"index":1,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    assert_eq!(filter.rule_count(), 1);
    let outcome = run(&filter, || {
        expect(&[
            (socket(libc::AF_INET, libc::SOCK_DGRAM), libc::EPERM),
            (socket(libc::AF_INET, libc::SOCK_STREAM), 0),
            (socket(libc::AF_UNIX, libc::SOCK_DGRAM), 0),
        ])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{{"names":["socket"],"action":"SCMP_ACT_ERRNO",
                         "args":[{{"index":1,"value":{cloexec},"valueTwo":{cloexec},
                                  "op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#,
        cloexec = libc::SOCK_CLOEXEC
    );
    let filter = compile(&profile(&json)).unwrap();
    let outcome = run(&filter, || {
        expect(&[
            (
                socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
                libc::EPERM,
            ),
            (socket(libc::AF_UNIX, libc::SOCK_STREAM), 0),
        ])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn kill_process_kills_with_sigsys() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, getppid);
    assert_eq!(outcome, Outcome::Signaled(libc::SIGSYS));
}

#[test]
fn kill_and_trap_end_a_single_threaded_child_with_sigsys() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"] {
        let filter = compile(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
        )))
        .unwrap();
        let outcome = run(&filter, getppid);
        assert_eq!(outcome, Outcome::Signaled(libc::SIGSYS), "{action}");
    }
}

#[test]
fn trace_without_tracer_fails_with_enosys() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_TRACE","errnoRet":1234}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || expect(&[(getppid(), libc::ENOSYS)]));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn log_action_allows_the_call() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_LOG"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || expect(&[(getppid(), 0)]));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["berth_no_such_syscall","getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    assert_eq!(filter.skipped_syscalls(), ["berth_no_such_syscall"]);
    let outcome = run(&filter, || expect(&[(getcwd(), libc::EPERM)]));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn rule_equal_to_default_action_is_skipped() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"},
                        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                        {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    ))
    .unwrap();
    // ERRNO and ERRNO(EPERM=1) equal the default; ERRNO(38) does not.
    assert_eq!(filter.rule_count(), 1);
}

#[test]
fn extra_architectures_load_and_native_rules_still_apply() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{"names":["getcwd","socketcall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || {
        expect(&[(getcwd(), libc::EPERM), (getppid(), 0)])
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn flags_log_tsync_spec_allow_load() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_TSYNC",
                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    let outcome = run(&filter, || expect(&[(getcwd(), libc::EPERM)]));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn wait_killable_recv_follows_features() {
    let result = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    ));
    let supported = features()
        .supported_flags
        .iter()
        .any(|f| f == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    if supported {
        assert!(result.is_ok(), "{result:?}");
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::SetFlag { .. }), "{err:?}");
    }
}

#[test]
fn load_without_no_new_privs_or_cap_sys_admin_fails_cleanly() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    let outcome = in_child(|| {
        // Dropping to an unprivileged uid clears every capability (no keep-caps).
        // SAFETY: setuid takes a plain integer.
        if unsafe { libc::setuid(65534) } != 0 {
            return 2;
        }
        match filter.load() {
            Err(Error::Load { .. }) => 0,
            Err(_) => 3,
            Ok(()) => 1,
        }
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn unknown_action_or_arch_string_is_a_parse_error() {
    let bad_action =
        serde_json::from_str::<LinuxSeccomp>(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).unwrap_err();
    assert!(
        bad_action.to_string().contains("SCMP_ACT_BOGUS"),
        "{bad_action}"
    );
    let bad_arch = serde_json::from_str::<LinuxSeccomp>(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
    )
    .unwrap_err();
    assert!(bad_arch.to_string().contains("SCMP_ARCH_VAX"), "{bad_arch}");
}

#[test]
fn arch_unknown_to_linked_libseccomp_is_an_error() {
    // LoongArch64 arrived in libseccomp 2.6; with an older one this must be a clean error.
    let result = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_LOONGARCH64"]}"#,
    ));
    let known = features()
        .archs
        .iter()
        .any(|a| a == "SCMP_ARCH_LOONGARCH64");
    match result {
        Ok(_) => assert!(known),
        Err(err) => {
            assert!(!known);
            assert!(
                matches!(err, Error::AddArch { .. } | Error::UnknownArch { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("SCMP_ARCH_LOONGARCH64"), "{err}");
        }
    }
}

#[test]
fn invalid_profiles_give_clear_errors() {
    let cases = [
        (
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/agent.sock"}"#,
            "cannot be the default action",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "needs linux.seccomp.listenerPath",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "write syscall",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#,
            "does not take an errnoRet",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_KILL","errnoRet":1}]}"#,
            "does not take an errnoRet",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
            "out of range",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO",
                             "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            "argument 6",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":[""],"action":"SCMP_ACT_ERRNO"}]}"#,
            "empty syscall name",
        ),
    ];
    for (json, needle) in cases {
        let err = compile(&profile(json)).unwrap_err();
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
}

#[test]
fn features_report_the_oci_seccomp_object() {
    let f = features();
    assert!(f.enabled);
    assert!(f.actions.iter().any(|a| a == "SCMP_ACT_KILL_PROCESS"));
    assert!(!f.actions.iter().any(|a| a == "SCMP_ACT_NOTIFY"));
    assert_eq!(f.operators.len(), 7);
    for arch in [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
    ] {
        assert!(
            f.archs.iter().any(|a| a == arch),
            "{arch} missing: {:?}",
            f.archs
        );
    }
    assert_eq!(f.known_flags.len(), 4);
    // Kernel 6.x with libseccomp >= 2.5 supports these three.
    for flag in [
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ] {
        assert!(f.supported_flags.iter().any(|s| s == flag), "{flag}: {f:?}");
    }
    let json = serde_json::to_value(&f).unwrap();
    assert!(json.get("knownFlags").is_some() && json.get("supportedFlags").is_some());
    assert!(berth_seccomp::library_version().is_some());
}

#[test]
fn notify_hands_the_listener_fd_to_an_agent_that_answers() {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap();
    assert!(filter.uses_notify());
    // A notify filter refuses the plain load: its fd would be lost.
    let outcome = in_child(|| match child_setup(&filter) {
        Err(LOAD_FAILED) => 0,
        _ => 1,
    });
    assert_eq!(outcome, Outcome::Exited(0));

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two fds, owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let pid = spawn(|| {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `no_core` is a valid rlimit; PR_SET_NO_NEW_PRIVS takes plain integers.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        }
        let Ok(Some(fd)) = filter.load_with_notify_fd() else {
            return LOAD_FAILED;
        };
        let raw = fd.as_raw_fd().to_ne_bytes();
        // SAFETY: `raw` is 4 readable bytes; the write end is open in the child.
        if unsafe { libc::write(write_end.as_raw_fd(), raw.as_ptr().cast(), raw.len()) } != 4 {
            return 2;
        }
        // The agent (our parent) answers 4242 in the kernel's place.
        // SAFETY: getppid takes no arguments.
        let answer = unsafe { libc::syscall(libc::SYS_getppid) };
        if answer == 4242 { 0 } else { 3 }
    });
    drop(write_end);

    // The agent: take the listener fd out of the child, answer one notification.
    let agent = || -> Result<(), String> {
        let mut raw = [0u8; 4];
        // SAFETY: `raw` is 4 writable bytes.
        let n = unsafe { libc::read(read_end.as_raw_fd(), raw.as_mut_ptr().cast(), raw.len()) };
        if n != 4 {
            return Err(format!("child sent no fd (read {n})"));
        }
        let child_fd = i32::from_ne_bytes(raw);
        // SAFETY: pidfd_open takes a pid and flags.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd < 0 {
            return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: pidfd_getfd takes a pidfd, an fd number in that process and flags.
        let listener = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, child_fd, 0) };
        if listener < 0 {
            return Err(format!("pidfd_getfd: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both syscalls just returned these fds, owned by nobody else.
        let (pidfd, listener) = unsafe {
            (
                OwnedFd::from_raw_fd(pidfd as i32),
                OwnedFd::from_raw_fd(listener as i32),
            )
        };
        let req = ScmpNotifReq::receive(listener.as_raw_fd()).map_err(|e| e.to_string())?;
        let getppid = ScmpSyscall::from_name("getppid").map_err(|e| e.to_string())?;
        if req.data.syscall != getppid {
            return Err(format!("notified for {:?}", req.data.syscall));
        }
        ScmpNotifResp::new_val(req.id, 4242, ScmpNotifRespFlags::empty())
            .respond(listener.as_raw_fd())
            .map_err(|e| e.to_string())?;
        drop(pidfd);
        Ok(())
    };
    let result = agent();
    if result.is_err() {
        // SAFETY: `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let outcome = wait(pid);
    result.unwrap();
    assert_eq!(outcome, Outcome::Exited(0));
}
