//! The subset of Go's text/template that `--format` needs: `{{.Field.Sub}}`, `{{.}}`,
//! `{{json .X}}`, `{{upper}}`/`{{lower}}`/`{{title}}`, `{{index .Map "key"}}`, `{{join .List ","}}`,
//! `{{len .X}}`, `{{println}}`, and `{{range .X}}…{{end}}` / `{{if .X}}…{{else}}…{{end}}`,
//! with variables (`{{range $k, $v := .Map}}{{$k}}={{$v.Field}}{{end}}`, `$` for the top);
//! values print the way Go prints decoded JSON (`[a b]`, `map[k:v]`).

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Arg>),
    /// The variables it declares (`$k, $v :=`), the expression, the body, the `else`.
    Range(Vec<String>, Vec<Arg>, Vec<Node>, Vec<Node>),
    If(Vec<Arg>, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Num(i64),
    Ident(String),
    /// `$name.Path` (`$` alone: the template's top value).
    Var(String, Vec<String>),
}

impl Template {
    pub fn parse(src: &str) -> anyhow::Result<Template> {
        let toks = tokenize(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&toks, &mut pos)?;
        anyhow::ensure!(
            end.is_none(),
            "template: unexpected {{{{{}}}}}",
            end.unwrap_or_default()
        );
        Ok(Template { nodes })
    }

    pub fn render(&self, data: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut vars = vec![(String::new(), data.clone())];
        render_nodes(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }

    /// The fields the template names at the top level (`{{.ID}}` → "ID"), in order.
    pub fn fields(&self) -> Vec<String> {
        let mut v = Vec::new();
        for n in &self.nodes {
            if let Node::Action(args) = n {
                for a in args {
                    if let Arg::Field(p) = a {
                        if let Some(f) = p.first() {
                            v.push(f.clone());
                        }
                    }
                }
            }
        }
        v
    }
}

enum Tok {
    Text(String),
    Action(String),
}

fn tokenize(src: &str) -> anyhow::Result<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            toks.push(Tok::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| anyhow::anyhow!("template: unclosed action in {src:?}"))?;
        let mut inner = after[..j].trim();
        inner = inner.strip_prefix('-').unwrap_or(inner);
        inner = inner.strip_suffix('-').unwrap_or(inner);
        toks.push(Tok::Action(inner.trim().to_string()));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        toks.push(Tok::Text(rest.to_string()));
    }
    Ok(toks)
}

fn parse_args(s: &str) -> anyhow::Result<Vec<Arg>> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == '(' || c == ')' {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut lit = String::new();
            while let Some(ch) = chars.next() {
                if ch == c {
                    break;
                }
                if ch == '\\' && c == '"' {
                    match chars.next() {
                        Some('n') => lit.push('\n'),
                        Some('t') => lit.push('\t'),
                        Some(o) => lit.push(o),
                        None => {}
                    }
                } else {
                    lit.push(ch);
                }
            }
            args.push(Arg::Str(lit));
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '(' || ch == ')' {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            if w == "|" {
                anyhow::bail!("template: pipelines are not supported: {s:?}");
            } else if let Some(v) = w.strip_prefix('$') {
                let mut parts = v.split('.').map(str::to_string);
                let name = parts.next().unwrap_or_default();
                args.push(Arg::Var(name, parts.filter(|p| !p.is_empty()).collect()));
            } else if let Some(path) = w.strip_prefix('.') {
                let parts = if path.is_empty() {
                    Vec::new()
                } else {
                    path.split('.').map(str::to_string).collect()
                };
                args.push(Arg::Field(parts));
            } else if let Ok(n) = w.parse::<i64>() {
                args.push(Arg::Num(n));
            } else {
                args.push(Arg::Ident(w));
            }
        }
    }
    Ok(args)
}

/// Parses until `{{end}}`/`{{else}}` (returned) or the end of input.
fn parse_nodes(toks: &[Tok], pos: &mut usize) -> anyhow::Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < toks.len() {
        let t = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Text(s) => nodes.push(Node::Text(s.clone())),
            Tok::Action(a) if a == "end" || a == "else" => return Ok((nodes, Some(a.clone()))),
            Tok::Action(a) if a.starts_with("/*") => {}
            Tok::Action(a) => {
                let (kw, rest) = a.split_once(char::is_whitespace).unwrap_or((a, ""));
                if kw == "range" || kw == "if" {
                    let (vars, expr) = match rest.split_once(":=") {
                        Some((decl, expr)) if kw == "range" => (
                            decl.split(',')
                                .map(|v| v.trim().trim_start_matches('$').to_string())
                                .collect(),
                            expr,
                        ),
                        _ => (Vec::new(), rest),
                    };
                    let args = parse_args(expr)?;
                    let (body, end) = parse_nodes(toks, pos)?;
                    let els = match end.as_deref() {
                        Some("else") => {
                            let (e, end2) = parse_nodes(toks, pos)?;
                            anyhow::ensure!(
                                end2.as_deref() == Some("end"),
                                "template: missing {{{{end}}}}"
                            );
                            e
                        }
                        Some("end") => Vec::new(),
                        _ => anyhow::bail!("template: missing {{{{end}}}}"),
                    };
                    nodes.push(if kw == "range" {
                        Node::Range(vars, args, body, els)
                    } else {
                        Node::If(args, body, els)
                    });
                } else {
                    nodes.push(Node::Action(parse_args(a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

fn lookup(data: &Value, path: &[String]) -> Value {
    let mut v = data;
    for p in path {
        match v.get(p) {
            Some(x) => v = x,
            None => return Value::Null,
        }
    }
    v.clone()
}

/// Variables in scope, innermost last; `""` is `$`, the top value.
type Vars = Vec<(String, Value)>;

fn arg_value(a: &Arg, data: &Value, vars: &Vars) -> Value {
    match a {
        Arg::Field(p) => lookup(data, p),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => Value::from(*n),
        Arg::Ident(s) => Value::String(s.clone()),
        Arg::Var(name, p) => vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Value::Null, |(_, v)| lookup(v, p)),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn eval(args: &[Arg], data: &Value, vars: &Vars) -> anyhow::Result<Value> {
    let Some(first) = args.first() else {
        return Ok(Value::String(String::new()));
    };
    let Arg::Ident(f) = first else {
        return Ok(arg_value(first, data, vars));
    };
    let vals: Vec<Value> = args[1..].iter().map(|a| arg_value(a, data, vars)).collect();
    let one = || vals.first().cloned().unwrap_or(Value::Null);
    Ok(match f.as_str() {
        "json" => Value::String(serde_json::to_string(&one())?),
        "upper" => Value::String(go_string(&one()).to_uppercase()),
        "lower" => Value::String(go_string(&one()).to_lowercase()),
        "title" => {
            let s = go_string(&one());
            let mut c = s.chars();
            Value::String(match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            })
        }
        "len" => Value::from(match one() {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "index" => {
            let mut v = one();
            for k in &vals[1..] {
                v = match (&v, k) {
                    (Value::Object(o), _) => o.get(&go_string(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_u64().unwrap_or(u64::MAX) as usize)
                        .cloned()
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            v
        }
        "join" => {
            let sep = vals.get(1).map(go_string).unwrap_or_default();
            match one() {
                Value::Array(a) => {
                    Value::String(a.iter().map(go_string).collect::<Vec<_>>().join(&sep))
                }
                other => Value::String(go_string(&other)),
            }
        }
        "println" => Value::String(vals.iter().map(go_string).collect::<Vec<_>>().join(" ") + "\n"),
        "print" => Value::String(vals.iter().map(go_string).collect::<Vec<_>>().join(" ")),
        "not" => Value::Bool(!truthy(&one())),
        "eq" => Value::Bool(vals.len() >= 2 && vals[1..].iter().any(|v| *v == vals[0])),
        "ne" => Value::Bool(vals.len() >= 2 && vals[0] != vals[1]),
        other => anyhow::bail!("template: function {other:?} not defined"),
    })
}

/// Prints a value the way Go prints decoded JSON.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => {
            let mut keys: Vec<_> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_nested(&o[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn go_nested(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        _ => go_string(v),
    }
}

fn render_nodes(
    nodes: &[Node],
    data: &Value,
    vars: &mut Vars,
    out: &mut String,
) -> anyhow::Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(args) => out.push_str(&go_string(&eval(args, data, vars)?)),
            Node::If(args, body, els) => {
                if truthy(&eval(args, data, vars)?) {
                    render_nodes(body, data, vars, out)?;
                } else {
                    render_nodes(els, data, vars, out)?;
                }
            }
            Node::Range(names, args, body, els) => {
                // (key or index, element)
                let items: Vec<(Value, Value)> = match eval(args, data, vars)? {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    Value::Object(o) => {
                        let mut keys: Vec<_> = o.keys().cloned().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), o[&k].clone()))
                            .collect()
                    }
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    render_nodes(els, data, vars, out)?;
                }
                for (key, it) in &items {
                    let depth = vars.len();
                    match names.as_slice() {
                        [v] => vars.push((v.clone(), it.clone())),
                        [k, v, ..] => {
                            vars.push((k.clone(), key.clone()));
                            vars.push((v.clone(), it.clone()));
                        }
                        [] => {}
                    }
                    render_nodes(body, it, vars, out)?;
                    vars.truncate(depth);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_json_and_functions() {
        let v = json!({"ID": "abc", "Names": "web", "Config": {"Cmd": ["sh", "-c"], "Labels": {"a": "1"}}, "N": 3});
        assert_eq!(r("{{.ID}} {{.Names}}", &v), "abc web");
        assert_eq!(r("{{.Config.Cmd}}", &v), "[sh -c]");
        assert_eq!(r("{{json .Config.Cmd}}", &v), "[\"sh\",\"-c\"]");
        assert_eq!(r("{{index .Config.Labels \"a\"}}", &v), "1");
        assert_eq!(r("{{.Config.Labels}}", &v), "map[a:1]");
        assert_eq!(r("{{upper .Names}}/{{.N}}", &v), "WEB/3");
        assert_eq!(r("{{join .Config.Cmd \",\"}}", &v), "sh,-c");
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
    }

    #[test]
    fn range_and_if() {
        let v = json!({"Nets": {"a": {"IP": "1"}, "b": {"IP": "2"}}, "On": true});
        assert_eq!(r("{{range .Nets}}{{.IP}};{{end}}", &v), "1;2;");
        let m = serde_json::json!({"Networks": {"b": {"IP": "2"}, "a": {"IP": "1"}}, "Name": "x"});
        assert_eq!(
            r(
                "{{range $k, $v := .Networks}}{{$k}}={{$v.IP}} {{$.Name}};{{end}}",
                &m
            ),
            "a=1 x;b=2 x;"
        );
        assert_eq!(r("{{range $n := .Networks}}{{$n.IP}}{{end}}", &m), "12");
        assert_eq!(r("{{if .On}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(r("{{if .Off}}yes{{else}}no{{end}}", &v), "no");
    }
}
