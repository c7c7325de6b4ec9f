//! `.dockerignore`, with Docker's rules: one pattern a line (`#` comments, blank lines
//! skipped), a leading `/` and `./` dropped and the rest cleaned as a path; `*`, `?` and
//! `[…]` within one path element, `**` for any number of elements; a pattern that matches a
//! directory excludes all under it; `!` re-includes; the last matching line wins.

/// The patterns of a `.dockerignore`.
#[derive(Debug, Default)]
pub struct Ignore {
    /// (re-include, the pattern's elements).
    rules: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (keep, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let elements = clean(pat);
                (!elements.is_empty()).then_some((keep, elements))
            })
            .collect();
        Ignore { rules }
    }

    /// Whether some pattern re-includes files (then an excluded directory is still walked).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(keep, _)| *keep)
    }

    /// Whether `rel` (a path inside the context, `/`-separated) is left out.
    pub fn excluded(&self, rel: &str) -> bool {
        let path = clean(rel);
        let mut out = false;
        for (keep, pat) in &self.rules {
            // The pattern matches the path or one of the directories above it.
            let hit = (1..=path.len()).any(|n| matches(pat, &path[..n]));
            if hit {
                out = !keep;
            }
        }
        out
    }
}

/// A pattern or path as its elements, cleaned as Go's `filepath.Clean` does.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in p.split('/') {
        match e {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            e => out.push(e.to_string()),
        }
    }
    out
}

/// Whether the pattern's elements match the path's, `**` standing for any number of them.
fn matches(pat: &[String], path: &[String]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => glob(first.as_bytes(), p.as_bytes()) && matches(rest, prest),
            None => false,
        },
    }
}

/// One element against one glob: `*`, `?`, `[…]` (with `^` or `!` negation and ranges),
/// `\` escaping the next character.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some((&c, srest)) = s.split_first() else {
                return false;
            };
            let Some(end) = p.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return false;
            };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'^' | b'!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&p[end + 1..], srest)
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_pattern_rules() {
        let i = Ignore::parse(
            "# comment\n\n/secret\n*.log\n!keep.log\nbuild/**/*.o\ntmp?\n[ab]x\n./docs/../notes\n",
        );
        assert!(i.excluded("secret"));
        assert!(
            i.excluded("secret/inner/file"),
            "a directory's content goes with it"
        );
        assert!(i.excluded("app.log"));
        assert!(!i.excluded("keep.log"), "! re-includes");
        assert!(!i.excluded("logs/app.log"), "* stays within one element");
        assert!(i.excluded("build/a/b/c.o"));
        assert!(i.excluded("build/c.o"), "** matches no element too");
        assert!(!i.excluded("build/c.c"));
        assert!(i.excluded("tmp1") && !i.excluded("tmp12"));
        assert!(i.excluded("ax") && i.excluded("bx") && !i.excluded("cx"));
        assert!(i.excluded("notes"));
        assert!(!i.excluded("Dockerfile"));
        assert!(i.has_exceptions());
        let last_wins = Ignore::parse("!a.txt\n*.txt\n");
        assert!(last_wins.excluded("a.txt"));
        assert!(!Ignore::parse("").excluded("anything"));
    }
}
