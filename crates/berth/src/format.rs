//! List output the docker CLI's way: a `--format` that is `table …` (aligned columns with a
//! header), `json` (one JSON object per line) or a plain template; Docker's tabwriter settings
//! (minimum cell width 10, padding 3); and the truncation rules (12-character ids, `…`).

use serde_json::Value;

use crate::template::Template;

/// Aligns tab-separated lines like Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: every cell
/// but the last of a line is padded to its column's width (text + 3, at least 10).
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.resize(i + 1, 0);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        // Go's tabwriter leaves trailing spaces of a line whose last cell is empty.
        out.push('\n');
    }
    out
}

/// `s` cut to `max` characters with a trailing `…` (Docker's `formatter.Ellipsis`).
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A 64-hex id (optionally `sha256:`-prefixed) cut to 12 characters.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// One list command's output: rows are JSON objects of display strings.
pub struct Lister<'a> {
    /// The default `table …` format.
    pub default: &'a str,
    /// Header titles of the fields.
    pub headers: &'a [(&'a str, &'a str)],
    /// What `--format` said (empty for the default).
    pub format: &'a str,
    /// `-q`: print only `quiet_field`.
    pub quiet: bool,
    pub quiet_field: &'a str,
}

impl Lister<'_> {
    pub fn render(&self, rows: &[Value]) -> anyhow::Result<String> {
        if self.quiet {
            let mut out = String::new();
            for r in rows {
                out.push_str(crate::api::s(r, self.quiet_field));
                out.push('\n');
            }
            return Ok(out);
        }
        let fmt = if self.format.is_empty() || self.format == "table" {
            self.default
        } else {
            self.format
        };
        if fmt == "json" {
            let mut out = String::new();
            for r in rows {
                out.push_str(&serde_json::to_string(r)?);
                out.push('\n');
            }
            return Ok(out);
        }
        let (table, body) = match fmt.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, fmt),
        };
        let body = unescape(body);
        let tpl = Template::parse(&body)?;
        let mut out = String::new();
        if table {
            let mut head = serde_json::Map::new();
            for f in tpl.fields() {
                let title = self
                    .headers
                    .iter()
                    .find(|(k, _)| *k == f)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_else(|| f.to_uppercase());
                head.insert(f, Value::String(title));
            }
            out.push_str(&tpl.render(&Value::Object(head))?);
            out.push('\n');
        }
        for r in rows {
            out.push_str(&tpl.render(r)?);
            out.push('\n');
        }
        Ok(if table { tabwrite(&out) } else { out })
    }
}

/// `\t` and `\n` typed literally in a format become the characters (as Docker does).
pub fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_like_dockers_tabwriter() {
        let t = tabwrite("CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tx\n");
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   x\n"
        );
        assert_eq!(tabwrite("A\tB\n"), "A         B\n");
    }

    #[test]
    fn truncation() {
        assert_eq!(
            ellipsis("sleep 1000000000000000000", 20),
            "sleep 1000000000000…"
        );
        assert_eq!(ellipsis("sh", 20), "sh");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn lister_formats() {
        let rows = vec![json!({"ID": "a1", "Names": "web"})];
        let l = Lister {
            default: "table {{.ID}}\t{{.Names}}",
            headers: &[("ID", "CONTAINER ID"), ("Names", "NAMES")],
            format: "",
            quiet: false,
            quiet_field: "ID",
        };
        assert_eq!(
            l.render(&rows).unwrap(),
            "CONTAINER ID   NAMES\na1             web\n"
        );
        let l = Lister {
            format: "{{.Names}}",
            ..l
        };
        assert_eq!(l.render(&rows).unwrap(), "web\n");
        let l = Lister { quiet: true, ..l };
        assert_eq!(l.render(&rows).unwrap(), "a1\n");
    }
}
