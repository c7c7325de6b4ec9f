//! Giving back to the system the memory the C allocator keeps after a burst of work. glibc
//! keeps freed memory in its per-thread arenas (a daemon that served 200 concurrent requests
//! held ~60 MiB more than idle, all of it free); `malloc_trim(0)` returns what is free in
//! every arena, and one arena for the whole process keeps a burst's leftovers from being
//! spread over many (after 200 concurrent runs berthd kept 23 % above its idle figure with an
//! arena per thread, 17 % with one).
//!
//! What `malloc_trim` cannot return is what glibc's per-thread caches (tcache: up to seven
//! free chunks of each of 64 sizes, per thread) hold: free to the program, in use to the
//! allocator, scattered over the heap, each pinning its page. The runtime's worker threads
//! never exit, so their caches never empty; after 200 concurrent runs they kept berthd 11-16 %
//! above idle. glibc sets the cache size only from `GLIBC_TUNABLES` at start-up, so a daemon
//! that wants none executes itself again with it ([`without_thread_caches`]); berthd then ends
//! the same load within 3-4 % of idle.
//!
//! Architecture invariant: the two `unsafe` calls here are the whole crate; the daemons that
//! use it forbid `unsafe` themselves.

/// The tunable that turns glibc's per-thread caches off.
const NO_THREAD_CACHES: &str = "glibc.malloc.tcache_count=0";

/// Executes this program again (same pid, arguments and environment) with glibc's per-thread
/// caches turned off, unless `GLIBC_TUNABLES` already sets their size (an operator's choice
/// wins). Returns only when there is nothing to do (None) or the execution failed (its error;
/// the program then goes on with the caches). Call first thing in `main`, before any thread.
pub fn without_thread_caches() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    let tunables = tunables_without_caches(&current)?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    #[allow(clippy::disallowed_methods)] // replaces this process; no child to supervise
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    Some(err)
}

/// `current` (a `GLIBC_TUNABLES` value) with the caches turned off, or None when it already
/// sets their size.
fn tunables_without_caches(current: &std::ffi::OsStr) -> Option<std::ffi::OsString> {
    if current
        .to_string_lossy()
        .contains("glibc.malloc.tcache_count")
    {
        return None;
    }
    let mut tunables = current.to_os_string();
    if !tunables.is_empty() {
        tunables.push(":");
    }
    tunables.push(NO_THREAD_CACHES);
    Some(tunables)
}

/// Makes every thread allocate from one arena; call before any thread starts.
pub fn single_arena() {
    // SAFETY: mallopt sets an allocator parameter under the allocator's lock; it takes no
    // pointer and has no precondition.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the allocator's free memory to the system; true if any was returned.
pub fn trim() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks; it takes
    // no pointer and has no precondition.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn the_caches_go_off_and_an_operators_setting_is_kept() {
        let t = |s: &str| super::tunables_without_caches(OsStr::new(s));
        assert_eq!(t("").unwrap(), "glibc.malloc.tcache_count=0");
        assert_eq!(
            t("glibc.malloc.check=3").unwrap(),
            "glibc.malloc.check=3:glibc.malloc.tcache_count=0"
        );
        assert_eq!(t("glibc.malloc.tcache_count=7"), None);
    }

    #[test]
    fn freed_memory_goes_back() {
        let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 256 << 10]).collect();
        drop(blocks);
        // Whether anything was left to return depends on the allocator's state; the call must
        // simply be safe and answer.
        let _ = super::trim();
    }
}
