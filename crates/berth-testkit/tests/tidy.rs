//! Tidy rules for the whole workspace: every Rust file opens with a `//!` doc line saying what it
//! holds, and no file grows past 1,000 lines.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "bench"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found too few files: {files:?}");
    files
}

#[test]
fn every_rust_file_has_a_module_doc() {
    let missing: Vec<_> = workspace_files()
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc line: {missing:#?}"
    );
}

#[test]
fn no_file_over_a_thousand_lines() {
    let long: Vec<_> = workspace_files()
        .into_iter()
        .map(|f| (std::fs::read_to_string(&f).unwrap().lines().count(), f))
        .filter(|(n, _)| *n > 1000)
        .collect();
    assert!(long.is_empty(), "split these files: {long:#?}");
}
