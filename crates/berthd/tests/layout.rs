//! berthd's layers, checked from its source: the top-level modules of `src/` (`api`, `engine`,
//! `net`, `volumes`, `oci`, `containerd`, `model`) import each other in one direction only, the
//! model imports nothing of berthd, nothing below the API imports it, and the engine's own
//! modules have no import circle either. A `crate::x` path anywhere in a file (a `use`, or a
//! path in code) counts as an import of `x`; comments do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without its `//` comments.
fn code(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules named after `prefix` in `src`: `crate::x::…` and `crate::{x, y::…}`.
fn imported(src: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in src.match_indices(prefix) {
        let rest = &src[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                out.insert(ident(item.trim()));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The import graph of the modules directly under `dir` (a file `x.rs` or a folder `x/`), by
/// paths that start with `prefix`.
fn graph(dir: &Path, prefix: &str) -> Graph {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let module_of = |p: &Path| -> String {
        let rel = p.strip_prefix(dir).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let names: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut g: Graph = names.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
    for f in &files {
        let m = module_of(f);
        for dep in imported(&code(f), prefix) {
            if dep != m && names.contains(&dep) {
                g.get_mut(&m).unwrap().insert(dep);
            }
        }
    }
    g
}

/// A circle of imports in `g`, if there is one.
fn circle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in &g[n] {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_top_level_modules_import_each_other_one_way() {
    let mut g = graph(&src(), "crate::");
    // The binary's root wires everything together.
    g.remove("main");
    for (m, deps) in &g {
        eprintln!("{m} -> {deps:?}");
    }
    assert_eq!(
        circle(&g),
        None,
        "an import circle between top-level modules"
    );
    assert!(g["model"].is_empty(), "model imports {:?}", g["model"]);
    for (m, deps) in &g {
        assert!(
            m == "api" || !deps.contains("api"),
            "{m} imports the API layer"
        );
    }
    for low in ["oci", "containerd", "net", "volumes"] {
        assert!(
            !g[low].contains("engine"),
            "{low} (below or beside the engine) imports it: {:?}",
            g[low]
        );
    }
}

#[test]
fn the_engine_modules_have_no_import_circle() {
    let g = graph(&src().join("engine"), "crate::engine::");
    assert_eq!(circle(&g), None, "an import circle inside the engine");
}

#[test]
fn the_checker_sees_a_circle() {
    let g: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(m, d)| (m.to_string(), BTreeSet::from([d.to_string()])))
        .collect();
    assert!(circle(&g).is_some());
    assert_eq!(
        imported(
            "use crate::{api::x, model};\nlet _ = crate::net::y;",
            "crate::"
        ),
        BTreeSet::from(["api".into(), "model".into(), "net".into()])
    );
}
