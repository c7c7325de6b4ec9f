//! COPY and ADD source patterns, by Go's `filepath.Match` rules as the classic builder uses
//! them: per path component, `*` any run of characters, `?` one, `[...]` a class (ranges,
//! `^` negation), `\` escaping the next character. A pattern is expanded inside the build
//! root by descriptors, never by joining host paths.

use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::model::Error;

/// Whether `s` holds a wildcard (an unescaped `*`, `?` or `[`).
pub(crate) fn has_wildcards(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Whether the name `name` matches the one-component `pattern`; an error for a malformed
/// pattern (an unclosed class, a trailing `\`).
pub(crate) fn matches(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let bad = || format!("syntax error in pattern {pattern:?}");
    match_from(&p, &n).ok_or_else(bad)
}

/// Matches `p` against all of `n`; None for a malformed pattern.
fn match_from(p: &[char], n: &[char]) -> Option<bool> {
    let Some((&c, rest)) = p.split_first() else {
        return Some(n.is_empty());
    };
    match c {
        '*' => {
            for skip in 0..=n.len() {
                if match_from(rest, &n[skip..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match n.split_first() {
            Some((_, tail)) => match_from(rest, tail),
            None => check(rest).map(|_| false),
        },
        '[' => {
            let (hit, after) = class(rest, n.first().copied())?;
            match (hit, n.split_first()) {
                (true, Some((_, tail))) => match_from(after, tail),
                _ => check(after).map(|_| false),
            }
        }
        '\\' => {
            let (&lit, after) = rest.split_first()?;
            match n.split_first() {
                Some((&h, tail)) if h == lit => match_from(after, tail),
                _ => check(after).map(|_| false),
            }
        }
        lit => match n.split_first() {
            Some((&h, tail)) if h == lit => match_from(rest, tail),
            _ => check(rest).map(|_| false),
        },
    }
}

/// Checks the rest of a pattern is well-formed (Go reports a bad pattern even after a
/// mismatch).
fn check(p: &[char]) -> Option<()> {
    match_from(p, &[]).map(|_| ())
}

/// A class after its `[`: whether `c` is in it, and the pattern after its `]`.
fn class(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negated, mut p) = match p.first() {
        Some('^') => (true, &p[1..]),
        _ => (false, p),
    };
    let mut hit = false;
    let mut first = true;
    loop {
        let (&lo, rest) = p.split_first()?;
        if lo == ']' && !first {
            return Some((c.is_some() && hit != negated, rest));
        }
        first = false;
        let (lo, rest) = unescape(lo, rest)?;
        let (hi, rest) = match rest {
            ['-', ']', ..] => (lo, rest),
            ['-', h, tail @ ..] => unescape(*h, tail)?,
            _ => (lo, rest),
        };
        if c.is_some_and(|c| lo <= c && c <= hi) {
            hit = true;
        }
        p = rest;
    }
}

fn unescape(c: char, rest: &[char]) -> Option<(char, &[char])> {
    match c {
        '\\' => rest.split_first().map(|(&e, r)| (e, r)),
        c => Some((c, rest)),
    }
}

/// Expands the sources of a COPY or ADD inside `root`: each one with wildcards becomes the
/// paths it matches (sorted, relative to the root), the others stay as they are. A pattern
/// that matches nothing is an error, as the classic builder's.
pub(crate) fn expand(root: BorrowedFd<'_>, sources: &[String]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for src in sources {
        if src.starts_with("http://") || src.starts_with("https://") || !has_wildcards(src) {
            out.push(src.clone());
            continue;
        }
        let found = expand_one(root, src)?;
        if found.is_empty() {
            return Err(Error::invalid(format!(
                "COPY failed: no source files were specified (nothing matches {src})"
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// The paths in `root` that one pattern matches.
fn expand_one(root: BorrowedFd<'_>, pattern: &str) -> Result<Vec<String>, Error> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &found {
            if !has_wildcards(comp) {
                next.push(join(base, &unescaped(comp)));
                continue;
            }
            let dir = match base.is_empty() {
                true => Path::new("."),
                false => Path::new(base.as_str()),
            };
            let Ok(fd) = berth_inroot::open_dir(root, dir) else {
                continue; // not a directory: nothing under it matches
            };
            let entries = berth_inroot::read_dir(std::os::fd::AsFd::as_fd(&fd))
                .map_err(|e| Error::internal(format!("reading {base:?}: {e}")))?;
            for e in entries {
                let name = e.name.to_string_lossy();
                if matches(comp, &name).map_err(Error::invalid)? {
                    next.push(join(base, &name));
                }
            }
        }
        found = next;
    }
    found.retain(|f| !f.is_empty());
    Ok(found)
}

fn join(base: &str, name: &str) -> String {
    match base.is_empty() {
        true => name.to_string(),
        false => format!("{base}/{name}"),
    }
}

/// A literal component with its escapes removed.
fn unescaped(comp: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in comp.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            c => {
                out.push(c);
                escaped = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_cases() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab", true),
            ("*.txt", ".hidden.txt", true),
            ("a*b*c*d*e*", "axbxcxdxe", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abe", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[]a]", "]", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(matches(p, n), Ok(want), "{p} ~ {n}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["[", "[^", "a[", "[a-", "\\", "a\\"] {
            assert!(matches(p, "a").is_err(), "{p}");
        }
        assert!(has_wildcards("*.txt"));
        assert!(!has_wildcards("a\\*b"));
        assert_eq!(unescaped("a\\*b"), "a*b");
    }

    #[test]
    fn patterns_expand_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/one")).unwrap();
        std::fs::create_dir_all(dir.path().join("src/two")).unwrap();
        std::fs::write(dir.path().join("src/one/a.conf"), "1").unwrap();
        std::fs::write(dir.path().join("src/two/b.conf"), "2").unwrap();
        std::fs::write(dir.path().join("src/two/c.txt"), "3").unwrap();
        std::fs::write(dir.path().join("x.txt"), "4").unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&root);
        let got = expand(fd, &["src/*/*.conf".into(), "*.txt".into(), "lit".into()]).unwrap();
        assert_eq!(got, ["src/one/a.conf", "src/two/b.conf", "x.txt", "lit"]);
        assert!(expand(fd, &["../../*".into()]).is_ok_and(|v| !v.contains(&"etc".into())));
        assert!(expand(fd, &["*.none".into()]).is_err());
    }
}
