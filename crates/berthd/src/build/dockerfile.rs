//! The Dockerfile front end: parser directives (`syntax`, `escape`), line continuations,
//! comments, instructions with their `--flags`, JSON and shell forms, heredocs (`RUN <<EOF`,
//! `COPY <<EOF`), and the word expansion of `$VAR`, `${VAR}`, `${VAR:-x}` and `${VAR:+x}` with
//! Docker's quoting. Errors name the line and the text that is wrong. Pure: no I/O.

use std::fmt;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The `# syntax=` directive, if any (a frontend image BuildKit would run; noted only).
    pub syntax: Option<String>,
    /// The escape character (`# escape=`), `\` by default.
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The 1-based line it starts on.
    pub line: usize,
    /// Upper-cased (`RUN`).
    pub keyword: String,
    /// Leading `--name=value` flags (`--from=build`); a bare `--name` has an empty value.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The bodies of the heredocs the instruction names, in order.
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written (continuations joined), for messages and history.
    pub original: String,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The JSON (exec) form: `["a", "b"]`.
    Json(Vec<String>),
    /// Everything after the keyword and flags, as written.
    Shell(String),
}

/// A heredoc: `<<EOF` … `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the terminator was quoted (`<<"EOF"`): no variable expansion in the body.
    pub expand: bool,
}

/// What is wrong, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
    /// The offending text.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dockerfile parse error on line {}: {}: {}",
            self.line, self.message, self.text
        )
    }
}

impl std::error::Error for ParseError {}

/// Every instruction the builder knows.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may be heredocs.
const HEREDOC_KEYWORDS: &[&str] = &["RUN", "COPY", "ADD"];

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let (syntax, escape, mut i) = directives(&lines)?;
    let mut instructions = Vec::new();
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let (logical, next) = join_continuations(&lines, i, escape);
        i = next;
        let mut ins = instruction(start + 1, &logical)?;
        if HEREDOC_KEYWORDS.contains(&ins.keyword.as_str()) {
            for (name, strip_tabs, expand) in heredoc_names(&logical) {
                let (content, next) =
                    heredoc_body(&lines, i, &name, strip_tabs).ok_or_else(|| ParseError {
                        line: start + 1,
                        message: format!("unterminated heredoc {name}"),
                        text: logical.clone(),
                    })?;
                i = next;
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        instructions.push(ins);
    }
    Ok(Dockerfile {
        syntax,
        escape,
        instructions,
    })
}

/// The parser directives at the top (`# syntax=…`, `# escape=…`): the first line that is not
/// one ends them. Returns them and the index of the first line after them.
fn directives(lines: &[&str]) -> Result<(Option<String>, char, usize), ParseError> {
    let (mut syntax, mut escape) = (None, '\\');
    let mut seen = std::collections::HashSet::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = l.trim().strip_prefix('#') else {
            return Ok((syntax, escape, i));
        };
        let Some((k, v)) = body.split_once('=') else {
            return Ok((syntax, escape, i));
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok((syntax, escape, i));
        }
        let v = v.trim();
        let err = |message: String| ParseError {
            line: i + 1,
            message,
            text: l.to_string(),
        };
        if !seen.insert(k.clone()) {
            return Err(err(format!("only one {k} parser directive can be used")));
        }
        match k.as_str() {
            "syntax" => syntax = Some(v.to_string()),
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(format!(
                            "invalid escape token '{v}' does not match ` or \\"
                        )));
                    }
                }
            }
            // Unknown directives are comments, as in Docker.
            _ => {}
        }
    }
    Ok((syntax, escape, lines.len()))
}

/// The logical line starting at `i`: continuation lines joined (comment lines and empty lines
/// inside them dropped), and the index of the line after it.
fn join_continuations(lines: &[&str], mut i: usize, escape: char) -> (String, usize) {
    let mut out = String::new();
    loop {
        let line = lines[i];
        i += 1;
        let body = line.trim_end();
        match body.strip_suffix(escape) {
            Some(rest) => {
                out.push_str(rest);
                // The next line that is neither empty nor a comment continues this one.
                while i < lines.len() {
                    let t = lines[i].trim();
                    if t.is_empty() || t.starts_with('#') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i >= lines.len() {
                    return (out, i);
                }
            }
            None => {
                out.push_str(body);
                return (out, i);
            }
        }
    }
}

/// One logical line as an instruction.
fn instruction(line: usize, logical: &str) -> Result<Instruction, ParseError> {
    let t = logical.trim_start();
    let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let keyword = kw.to_ascii_uppercase();
    let err = |message: String| ParseError {
        line,
        message,
        text: logical.trim().to_string(),
    };
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(err(format!("unknown instruction: {kw}")));
    }
    let (flags, rest) = flags(rest.trim_start());
    let rest = rest.trim();
    let args = match json_array(rest) {
        Some(words) if takes_json(&keyword) => Args::Json(words),
        _ => Args::Shell(rest.to_string()),
    };
    if keyword == "SHELL" && !matches!(args, Args::Json(_)) {
        return Err(err("SHELL requires the arguments to be in JSON form".into()));
    }
    let needs_args = !matches!(keyword.as_str(), "HEALTHCHECK");
    if needs_args && matches!(&args, Args::Shell(s) if s.is_empty()) && keyword != "CMD" {
        return Err(err(format!("{keyword} requires at least one argument")));
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        heredocs: Vec::new(),
        original: logical.trim().to_string(),
    })
}

/// Whether `keyword`'s arguments may be a JSON array.
fn takes_json(keyword: &str) -> bool {
    matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME"
    )
}

/// The leading `--flag[=value]` words of `s`, and the rest.
fn flags(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    while let Some(f) = s.strip_prefix("--") {
        if f.is_empty() || f.starts_with(char::is_whitespace) {
            break;
        }
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        out.push((k.to_string(), v.to_string()));
        s = f[end..].trim_start();
    }
    (out, s)
}

/// `s` as a JSON array of strings, if it is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// The heredocs a logical line names: (terminator, strip leading tabs, expand variables).
fn heredoc_names(logical: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let mut rest = logical;
    while let Some(at) = rest.find("<<") {
        let mut s = &rest[at + 2..];
        let strip = s.starts_with('-');
        if strip {
            s = &s[1..];
        }
        let (quoted, body) = match s.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &s[1..]),
            _ => (None, s),
        };
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(body.len());
        let name = &body[..end];
        let after = match quoted {
            Some(q) if body[end..].starts_with(q) => end + 1,
            Some(_) => {
                rest = &body[end..];
                continue;
            }
            None => end,
        };
        if !name.is_empty() {
            out.push((name.to_string(), strip, quoted.is_none()));
        }
        rest = &body[after..];
    }
    out
}

/// The body of the heredoc `name` starting at line `i`, and the index after its terminator.
fn heredoc_body(
    lines: &[&str],
    mut i: usize,
    name: &str,
    strip_tabs: bool,
) -> Option<(String, usize)> {
    let mut content = String::new();
    while i < lines.len() {
        let l = if strip_tabs {
            lines[i].trim_start_matches('\t')
        } else {
            lines[i]
        };
        i += 1;
        if l == name {
            return Some((content, i));
        }
        content.push_str(l);
        content.push('\n');
    }
    None
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` in `word`, as the
/// builder does for FROM, COPY, ENV, WORKDIR and the rest: single quotes keep their content
/// as it is, double quotes allow expansion, both are removed; the escape character keeps the
/// next character as it is. `lookup` gives a variable's value (None: unset).
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let (mut i, mut in_double) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c == escape && i + 1 < chars.len() => {
                let next = chars[i + 1];
                // Inside double quotes only `"`, `$` and the escape itself are escaped.
                if in_double && !matches!(next, '"' | '$') && next != escape {
                    out.push(c);
                }
                out.push(next);
                i += 2;
            }
            '\'' if !in_double => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or_else(|| format!("unexpected end of statement while looking for matching single-quote: {word}"))?;
                out.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                in_double = !in_double;
                i += 1;
            }
            '$' => {
                let (value, used) = variable(&chars[i + 1..], lookup, escape)?;
                out.push_str(&value);
                i += 1 + used;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if in_double {
        return Err(format!(
            "unexpected end of statement while looking for matching double-quote: {word}"
        ));
    }
    Ok(out)
}

/// The value of the variable reference after a `$` and how many characters it took.
fn variable(
    chars: &[char],
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<(String, usize), String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.first() {
        Some('{') => {
            let close = chars
                .iter()
                .position(|&c| c == '}')
                .ok_or_else(|| "missing '}' in a variable reference".to_string())?;
            let inner: String = chars[1..close].iter().collect();
            let value = braced(&inner, lookup, escape)?;
            Ok((value, close + 1))
        }
        Some(&c) if is_name(c) => {
            let n = chars.iter().take_while(|&&c| is_name(c)).count();
            let name: String = chars[..n].iter().collect();
            Ok((lookup(&name).unwrap_or_default(), n))
        }
        // A lone `$` stays.
        _ => Ok(("$".into(), 0)),
    }
}

/// `${…}`: `NAME`, `NAME:-default`, `NAME:+alternative`.
fn braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, String> {
    let valid = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if let Some((name, word)) = inner.split_once(":-") {
        if !valid(name) {
            return Err(format!("bad substitution: ${{{inner}}}"));
        }
        return match lookup(name).filter(|v| !v.is_empty()) {
            Some(v) => Ok(v),
            None => expand(word, escape, lookup),
        };
    }
    if let Some((name, word)) = inner.split_once(":+") {
        if !valid(name) {
            return Err(format!("bad substitution: ${{{inner}}}"));
        }
        return match lookup(name).filter(|v| !v.is_empty()) {
            Some(_) => expand(word, escape, lookup),
            None => Ok(String::new()),
        };
    }
    if !valid(inner) {
        return Err(format!("bad substitution: ${{{inner}}}"));
    }
    Ok(lookup(inner).unwrap_or_default())
}

/// The `key=value` pairs of ENV, LABEL and ARG (`ENV k v`, the legacy one-pair form, too for
/// ENV): quotes grouped and removed, variables expanded. ARG's pairs may have no value.
pub fn pairs(
    keyword: &str,
    args: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let words = split_words(args, escape)?;
    if keyword == "ENV" && words.first().is_some_and(|w| !w.contains('=')) {
        // ENV key value with spaces
        let (k, v) = args
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("ENV must have two arguments: {args}"))?;
        return Ok(vec![(
            k.to_string(),
            Some(expand(v.trim(), escape, lookup)?),
        )]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() {
                    return Err(format!("{keyword} names a value without a key: {w}"));
                }
                out.push((expand(k, escape, lookup)?, Some(expand(v, escape, lookup)?)));
            }
            None if keyword == "ARG" => out.push((w, None)),
            None => return Err(format!("{keyword} must be key=value: {w}")),
        }
    }
    Ok(out)
}

/// `s` split at unquoted whitespace, quotes and escapes kept for `expand`.
pub fn split_words(s: &str, escape: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, e) if e == escape && quote != Some('\'') => {
                cur.push(e);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, q @ ('"' | '\'')) => {
                quote = Some(q);
                cur.push(q);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unmatched quote in: {s}"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NAME" => Some("world".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn x(word: &str) -> String {
        expand(word, '\\', &env).unwrap()
    }

    #[test]
    fn instructions_continuations_comments_and_forms() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n\
             # escape=\\\n\
             \n\
             FROM busybox AS base\n\
             # a comment\n\
             RUN echo one \\\n\
             # a comment inside\n\
             \x20   && echo two\n\
             CMD [\"sh\", \"-c\", \"echo hi\"]\n\
             COPY --from=base --chown=1:1 /a /b\n\
             copy [\"x y\", \"/z\"]\n\
             ENTRYPOINT [not json\n",
        )
        .unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        let k: Vec<&str> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "CMD", "COPY", "COPY", "ENTRYPOINT"]);
        assert_eq!(df.instructions[0].line, 4);
        assert_eq!(
            df.instructions[1].args,
            Args::Shell("echo one     && echo two".into())
        );
        assert_eq!(
            df.instructions[2].args,
            Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            df.instructions[3].flags,
            [
                ("from".into(), "base".into()),
                ("chown".into(), "1:1".into())
            ]
        );
        assert_eq!(df.instructions[3].args, Args::Shell("/a /b".into()));
        assert_eq!(
            df.instructions[4].args,
            Args::Json(vec!["x y".into(), "/z".into()])
        );
        // Not valid JSON: the shell form, as Docker takes it.
        assert_eq!(df.instructions[5].args, Args::Shell("[not json".into()));
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo x\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.instructions[1].args,
            Args::Shell("dir c:\\   && echo x".into())
        );
        // A directive after the first instruction is a comment.
        let df = parse("FROM scratch\n# escape=`\n").unwrap();
        assert_eq!(df.escape, '\\');
        let e = parse("# escape=x\nFROM scratch\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().contains("invalid escape token"), "{e}");
    }

    #[test]
    fn heredocs_are_taken_with_their_instruction() {
        let df = parse(
            "FROM busybox\n\
             RUN <<EOF\n\
             echo $NAME\n\
             echo two\n\
             EOF\n\
             COPY <<-\"A\" <<B /dir/\n\
             \tfirst $NAME\n\
             \tA\n\
             second\n\
             B\n\
             CMD [\"true\"]\n",
        )
        .unwrap();
        let run = &df.instructions[1];
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].content, "echo $NAME\necho two\n");
        assert!(run.heredocs[0].expand);
        let copy = &df.instructions[2];
        assert_eq!(copy.heredocs[0].name, "A");
        assert_eq!(copy.heredocs[0].content, "first $NAME\n");
        assert!(!copy.heredocs[0].expand);
        assert_eq!(copy.heredocs[1].content, "second\n");
        assert_eq!(df.instructions[3].keyword, "CMD");
        let e = parse("FROM busybox\nRUN <<EOF\necho\n").unwrap_err();
        assert!(e.message.contains("unterminated heredoc EOF"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_text() {
        let e = parse("FROM busybox\n\nFROMM x\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3: unknown instruction: FROMM: FROMM x"
        );
        let e = parse("FROM busybox\nSHELL /bin/sh -c\n").unwrap_err();
        assert!(e.message.contains("JSON form"), "{e}");
        let e = parse("FROM busybox\nWORKDIR\n").unwrap_err();
        assert!(e.message.contains("requires at least one argument"), "{e}");
    }

    #[test]
    fn words_expand_as_the_builder_expands_them() {
        assert_eq!(x("hello $NAME"), "hello world");
        assert_eq!(x("${NAME}s"), "worlds");
        assert_eq!(x("${UNSET:-fallback}"), "fallback");
        assert_eq!(x("${EMPTY:-fallback}"), "fallback");
        assert_eq!(x("${NAME:-fallback}"), "world");
        assert_eq!(x("${NAME:+set}"), "set");
        assert_eq!(x("${UNSET:+set}"), "");
        assert_eq!(x("'$NAME'"), "$NAME");
        assert_eq!(x("\"$NAME two\""), "world two");
        assert_eq!(x("\\$NAME"), "$NAME");
        assert_eq!(x("a$"), "a$");
        assert!(expand("${NAME", '\\', &env).is_err());
        assert!(expand("\"open", '\\', &env).is_err());
        assert!(expand("${1x:-y}", '\\', &env).is_ok());
        assert!(expand("${a-b:-y}", '\\', &env).is_err());
    }

    #[test]
    fn env_label_and_arg_pairs() {
        let p = pairs("ENV", "A=1 B=\"two words\" C=$NAME", '\\', &env).unwrap();
        assert_eq!(
            p,
            [
                ("A".into(), Some("1".into())),
                ("B".into(), Some("two words".into())),
                ("C".into(), Some("world".into()))
            ]
        );
        let p = pairs("ENV", "GREETING hello $NAME", '\\', &env).unwrap();
        assert_eq!(p, [("GREETING".into(), Some("hello world".into()))]);
        let p = pairs("ARG", "V=1 NOVALUE", '\\', &env).unwrap();
        assert_eq!(
            p,
            [("V".into(), Some("1".into())), ("NOVALUE".into(), None)]
        );
        assert!(pairs("LABEL", "novalue", '\\', &env).is_err());
        assert!(pairs("LABEL", "a=\"open", '\\', &env).is_err());
    }
}
