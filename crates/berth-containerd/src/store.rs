//! Durable container records, one JSON file per container under
//! `<root>/meta/<namespace>/containers/<id>.json`, written atomically (temp file, fsync, then a
//! hard link that fails if the id exists, or a rename for updates). A crash at any point leaves
//! either the old record or the new one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One container's metadata.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub runtime: String,
    /// The OCI runtime spec, kept as JSON.
    pub spec: serde_json::Value,
    pub created_at_unix_nanos: i64,
    pub updated_at_unix_nanos: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("container {id} already exists in namespace {namespace}")]
    Exists { namespace: String, id: String },
    #[error("container {id} not found in namespace {namespace}")]
    NotFound { namespace: String, id: String },
    #[error("invalid {what} {value:?}: letters, digits and _+-. only")]
    InvalidName { what: &'static str, value: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Checks a namespace or container id: what runc accepts, so the id is usable all the way down.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), StoreError> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            what,
            value: value.into(),
        })
    }
}

pub struct Store {
    root: PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Store {
            root: root.join("meta"),
        }
    }

    fn dir(&self, namespace: &str) -> PathBuf {
        self.root.join(namespace).join("containers")
    }

    fn path(&self, namespace: &str, id: &str) -> PathBuf {
        self.dir(namespace).join(format!("{id}.json"))
    }

    fn write_temp(&self, namespace: &str, rec: &Record) -> Result<PathBuf, StoreError> {
        let dir = self.dir(namespace);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let tmp = dir.join(format!(".{}.{}.tmp", rec.id, std::process::id()));
        let bytes = serde_json::to_vec(rec).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(&bytes).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        Ok(tmp)
    }

    /// Stores a new record; fails if the id exists in the namespace.
    pub fn create(&self, namespace: &str, rec: &Record) -> Result<(), StoreError> {
        validate_name("namespace", namespace)?;
        validate_name("container id", &rec.id)?;
        let tmp = self.write_temp(namespace, rec)?;
        let path = self.path(namespace, &rec.id);
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists {
                namespace: namespace.into(),
                id: rec.id.clone(),
            }),
            Err(e) => Err(io("storing", &path)(e)),
        }
    }

    /// Replaces an existing record.
    pub fn update(&self, namespace: &str, rec: &Record) -> Result<(), StoreError> {
        self.get(namespace, &rec.id)?;
        let tmp = self.write_temp(namespace, rec)?;
        let path = self.path(namespace, &rec.id);
        std::fs::rename(&tmp, &path).map_err(io("storing", &path))
    }

    pub fn get(&self, namespace: &str, id: &str) -> Result<Record, StoreError> {
        validate_name("namespace", namespace)?;
        validate_name("container id", id)?;
        let path = self.path(namespace, id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    namespace: namespace.into(),
                    id: id.into(),
                });
            }
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { path, source })
    }

    /// Every record of a namespace, by id.
    pub fn list(&self, namespace: &str) -> Result<Vec<Record>, StoreError> {
        validate_name("namespace", namespace)?;
        let dir = self.dir(namespace);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_suffix(".json")
                .filter(|_| !name.starts_with('.'))
            {
                out.push(self.get(namespace, id)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub fn delete(&self, namespace: &str, id: &str) -> Result<(), StoreError> {
        validate_name("namespace", namespace)?;
        validate_name("container id", id)?;
        let path = self.path(namespace, id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                namespace: namespace.into(),
                id: id.into(),
            }),
            Err(e) => Err(io("removing", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Record {
        Record {
            id: id.into(),
            labels: BTreeMap::new(),
            runtime: "berth-runc".into(),
            spec: serde_json::json!({}),
            created_at_unix_nanos: 1,
            updated_at_unix_nanos: 1,
        }
    }

    #[test]
    fn create_is_exclusive_and_namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        s.create("a", &rec("x")).unwrap();
        assert!(matches!(
            s.create("a", &rec("x")),
            Err(StoreError::Exists { .. })
        ));
        s.create("b", &rec("x")).unwrap();
        assert_eq!(s.list("a").unwrap().len(), 1);
        s.delete("a", "x").unwrap();
        assert!(matches!(s.get("a", "x"), Err(StoreError::NotFound { .. })));
        assert_eq!(s.get("b", "x").unwrap().id, "x");
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        for bad in ["../x", "a/b", "..", ""] {
            assert!(
                matches!(
                    s.create("ns", &rec(bad)),
                    Err(StoreError::InvalidName { .. })
                ),
                "{bad}"
            );
            assert!(
                matches!(s.list(bad), Err(StoreError::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}
