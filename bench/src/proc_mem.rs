//! Memory of live processes, read from /proc: resident (RSS) and proportional (PSS, shared pages
//! divided among the processes mapping them) set sizes from `smaps_rollup`, and finding the
//! processes a daemon started by their command line.

use std::path::Path;

use anyhow::Context;

/// One process's memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl Usage {
    /// Reads `/proc/PID/smaps_rollup`.
    pub fn of(pid: u32) -> anyhow::Result<Usage> {
        let path = format!("/proc/{pid}/smaps_rollup");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Usage::parse(&text).with_context(|| format!("no Rss/Pss lines in {path}"))
    }

    fn parse(smaps_rollup: &str) -> Option<Usage> {
        let field = |name: &str| {
            smaps_rollup.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Some(Usage {
            rss_kib: field("Rss:")?,
            pss_kib: field("Pss:")?,
        })
    }

    /// The median RSS and the median PSS of `all` (each taken on its own).
    pub fn median(all: &[Usage]) -> Usage {
        let med = |mut v: Vec<u64>| {
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        Usage {
            rss_kib: med(all.iter().map(|u| u.rss_kib).collect()),
            pss_kib: med(all.iter().map(|u| u.pss_kib).collect()),
        }
    }

    /// The sum over `all`.
    pub fn total(all: &[Usage]) -> Usage {
        Usage {
            rss_kib: all.iter().map(|u| u.rss_kib).sum(),
            pss_kib: all.iter().map(|u| u.pss_kib).sum(),
        }
    }
}

/// Processes whose command line (arguments joined by spaces) contains every one of `needles`.
pub fn processes_mentioning(needles: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
            else {
                return false;
            };
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            needles.iter().all(|n| cmd.contains(n))
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_and_pss_of_smaps_rollup() {
        let text = "00400000-7fff3230b000 ---p 00000000 00:00 0    [rollup]\n\
                    Rss:               38560 kB\n\
                    Pss:               37608 kB\n\
                    Pss_Dirty:          8136 kB\n";
        assert_eq!(
            Usage::parse(text),
            Some(Usage {
                rss_kib: 38560,
                pss_kib: 37608
            })
        );
        assert_eq!(Usage::parse("Rss: 1 kB\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let u = Usage::of(std::process::id()).unwrap();
        assert!(
            u.rss_kib > 0 && u.pss_kib > 0 && u.pss_kib <= u.rss_kib,
            "{u:?}"
        );
    }

    #[test]
    fn median_and_total() {
        let u = |r, p| Usage {
            rss_kib: r,
            pss_kib: p,
        };
        let all = [u(3, 30), u(1, 10), u(2, 20)];
        assert_eq!(Usage::median(&all), u(2, 20));
        assert_eq!(Usage::total(&all), u(6, 60));
    }
}
