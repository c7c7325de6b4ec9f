//! A temporary directory holding given files, such as a build context.

/// A temp dir with each `(relative path, text)` written in it, parent directories made.
pub fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, body) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("its directories");
        std::fs::write(p, body).expect("the file");
    }
    dir
}
