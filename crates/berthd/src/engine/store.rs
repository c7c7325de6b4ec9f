//! Container records and their store: one directory per container under
//! `<data-root>/containers/<id>/` holding `config.v2.json` (the record, written atomically on
//! every change), the generated `hostname`, `hosts` and `resolv.conf`, the json-file log, and
//! the overlayfs `upper`/`work`/`merged` dirs. The in-memory table is rebuilt from those files
//! at start; names are unique.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::model::Error;
pub use crate::model::ids::{is_id, new_id, random_name, valid_name};
pub use crate::model::record::{Handle, Record, State};

pub struct Store {
    root: PathBuf,
    table: Mutex<HashMap<String, Handle>>,
    /// Each record as last written, serialized (one allocation, no second copy of its tree):
    /// what list and inspect read while an operation (a start, a stop) holds the record, so
    /// they never wait for one.
    written: Mutex<HashMap<String, Arc<[u8]>>>,
    /// name → id.
    names: Mutex<HashMap<String, String>>,
}

/// Replaces `path` whole (temp file and rename): a reader or a crash sees the old record or the
/// new one. `durable` also syncs it first, for what only the user can redo.
/// Writes a record readable by root alone (it holds the container's environment).
fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // An older version's leftover temp file keeps its mode through open: set it.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Suffix of a removed container's directory while it is being deleted.
const REMOVING: &str = ".removing";

/// Deletes `dir` recursively in the background: one worker thread takes the directories in
/// turn (a prune of hundreds of containers does not start hundreds of threads).
fn delete_in_background(dir: PathBuf) {
    static WORKER: std::sync::OnceLock<Option<Mutex<std::sync::mpsc::Sender<PathBuf>>>> =
        std::sync::OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        std::thread::Builder::new()
            .name("rm-containers".into())
            .spawn(move || {
                for dir in rx {
                    remove_unmounted(&dir);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let sent = worker.as_ref().is_some_and(|tx| {
        tx.lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(dir.clone())
            .is_ok()
    });
    if !sent {
        remove_unmounted(&dir);
    }
}

/// Removes a container directory once nothing is mounted in it: a rootfs or a subpath's
/// staging point left by a crash is unmounted first, so the delete never reaches into an
/// image's layers or a volume through a mount.
fn remove_unmounted(dir: &Path) {
    crate::oci::rootfs::unmount(dir);
    let _ = std::fs::remove_dir_all(dir);
}

impl Store {
    /// Loads every record under `root`.
    pub fn open(root: &Path) -> Store {
        let s = Store {
            root: root.to_path_buf(),
            table: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        };
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o710)
            .create(root);
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(REMOVING) {
                    delete_in_background(e.path());
                    continue;
                }
                let p = e.path().join("config.v2.json");
                // No operation is under way at start: a record's temp file, or a directory
                // without a record (a create that crashed before its record), is a leftover.
                let _ = std::fs::remove_file(e.path().join("config.v2.tmp"));
                if !p.exists() && is_id(&e.file_name().to_string_lossy()) {
                    delete_in_background(e.path());
                    continue;
                }
                // Records written by older versions were world-readable.
                let _ = std::fs::set_permissions(
                    &p,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                );
                let Some((rec, bytes)) = std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Record>(&b).ok().map(|r| (r, b)))
                else {
                    continue;
                };
                s.lock_names().insert(rec.name.clone(), rec.id.clone());
                s.lock_written().insert(rec.id.clone(), Arc::from(bytes));
                s.lock_table()
                    .insert(rec.id.clone(), Arc::new(tokio::sync::Mutex::new(rec)));
            }
        }
        s
    }

    fn lock_table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_written(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[u8]>>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The container's record without waiting: the live one when no operation holds it, else
    /// the one last written.
    pub fn view(&self, name_or_id: &str) -> Result<Record, Error> {
        let (id, h) = self.find_with_id(name_or_id)?;
        self.view_of(&id, &h)
            .ok_or_else(|| Error::not_found(format!("No such container: {name_or_id}")))
    }

    /// Every container's record, without waiting (see [`Store::view`]).
    pub fn views(&self) -> Vec<Record> {
        let all: Vec<(String, Handle)> = self
            .lock_table()
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        all.iter()
            .filter_map(|(id, h)| self.view_of(id, h))
            .collect()
    }

    fn view_of(&self, id: &str, h: &Handle) -> Option<Record> {
        match h.try_lock() {
            Ok(r) => Some(r.clone()),
            Err(_) => {
                let bytes = self.lock_written().get(id).cloned()?;
                serde_json::from_slice(&bytes).ok()
            }
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Writes the record to disk, synced: for what the user asked (creation, rename, update,
    /// network changes, a stop that restart policies must respect).
    pub fn save(&self, rec: &Record) -> Result<(), Error> {
        self.write(rec, true)
    }

    /// Writes the record's run state (running, exited, health, OOM), not synced: after a crash
    /// berthd rebuilds that state from berth-containerd anyway (`run::recover`), and a sync per
    /// start, exit and health probe cost a journal commit each.
    pub fn save_state(&self, rec: &Record) -> Result<(), Error> {
        self.write(rec, false)
    }

    fn write(&self, rec: &Record, durable: bool) -> Result<(), Error> {
        let dir = self.dir(&rec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
        let bytes = serde_json::to_vec(rec).unwrap_or_default();
        let path = dir.join("config.v2.json");
        // A synced write waits for the disk: the async worker lets other tasks run meanwhile.
        let written = if durable {
            tokio::task::block_in_place(|| write_atomic(&path, &bytes, true))
        } else {
            write_atomic(&path, &bytes, false)
        };
        written.map_err(|e| Error::internal(format!("saving container {}: {e}", rec.id)))?;
        self.lock_written().insert(rec.id.clone(), Arc::from(bytes));
        Ok(())
    }

    /// Adds a new record, claiming its name.
    pub fn insert(&self, rec: Record) -> Result<Handle, Error> {
        {
            let mut names = self.lock_names();
            if let Some(other) = names.get(&rec.name) {
                return Err(name_in_use(&rec.name, other));
            }
            names.insert(rec.name.clone(), rec.id.clone());
        }
        if let Err(e) = self.save(&rec) {
            self.lock_names().remove(&rec.name);
            return Err(e);
        }
        let h = Arc::new(tokio::sync::Mutex::new(rec.clone()));
        self.lock_table().insert(rec.id.clone(), h.clone());
        Ok(h)
    }

    /// Fails with Docker's conflict when a container has the name `name`.
    pub fn check_name_free(&self, name: &str) -> Result<(), Error> {
        match self.lock_names().get(name) {
            Some(other) => Err(name_in_use(name, other)),
            None => Ok(()),
        }
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn find(&self, name_or_id: &str) -> Result<Handle, Error> {
        self.find_with_id(name_or_id).map(|(_, h)| h)
    }

    fn find_with_id(&self, name_or_id: &str) -> Result<(String, Handle), Error> {
        let not_found = || Error::not_found(format!("No such container: {name_or_id}"));
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if key.is_empty() {
            return Err(not_found());
        }
        let table = self.lock_table();
        if let Some(h) = table.get(key) {
            return Ok((key.to_string(), h.clone()));
        }
        if let Some(id) = self.lock_names().get(key) {
            if let Some(h) = table.get(id) {
                return Ok((id.clone(), h.clone()));
            }
        }
        let mut hits = table.iter().filter(|(id, _)| id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some((id, h)), None) => Ok((id.clone(), h.clone())),
            (Some(_), Some(_)) => Err(Error::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
            _ => Err(not_found()),
        }
    }

    pub fn all(&self) -> Vec<Handle> {
        self.lock_table().values().cloned().collect()
    }

    /// Drops a record and its directory.
    /// Forgets a container and removes its directory: renamed aside at once (the container is
    /// gone for every reader, its id and name free), then deleted in the background, as a
    /// written-to upper dir can take long to delete. A directory left aside by a crash is deleted
    /// at the next start ([`Store::open`]).
    pub fn remove(&self, rec: &Record) {
        self.lock_table().remove(&rec.id);
        self.lock_written().remove(&rec.id);
        self.lock_names().remove(&rec.name);
        let dir = self.dir(&rec.id);
        let aside = self.root.join(format!("{}{REMOVING}", rec.id));
        match std::fs::rename(&dir, &aside) {
            Ok(()) => {
                berth_failpoint::point("rm.after-rename");
                delete_in_background(aside);
            }
            Err(_) => remove_unmounted(&dir),
        }
    }

    /// Renames, keeping names unique.
    pub fn rename(&self, rec: &mut Record, new: &str) -> Result<(), Error> {
        let mut names = self.lock_names();
        if let Some(other) = names.get(new) {
            return Err(name_in_use(new, other));
        }
        names.remove(&rec.name);
        names.insert(new.to_string(), rec.id.clone());
        rec.name = new.to_string();
        drop(names);
        self.save(rec)
    }
}

/// Docker's conflict for a container name in use.
fn name_in_use(name: &str, other: &str) -> Error {
    Error::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path());
        let rec = |id: &str, name: &str| Record {
            id: id.into(),
            name: name.into(),
            created: String::new(),
            image: "busybox".into(),
            image_id: String::new(),
            config: Default::default(),
            host_config: Default::default(),
            path: "sh".into(),
            args: vec![],
            state: State::default(),
            restart_count: 0,
            spec: Default::default(),
            volumes: vec![],
            mounts: vec![],
            networks: vec![],
            ports: vec![],
            subpaths: vec![],
        };
        s.insert(rec("abc123", "web")).unwrap();
        assert!(s.insert(rec("abd456", "web")).is_err(), "name in use");
        s.insert(rec("abd456", "db")).unwrap();
        assert!(s.find("/web").is_ok() && s.find("abc").is_ok());
        assert!(matches!(
            s.find("ab").unwrap_err(),
            Error::InvalidParameter(_)
        ));
        assert_eq!(s.find("zz").unwrap_err().message(), "No such container: zz");
        // A restart finds them again.
        let s2 = Store::open(dir.path());
        assert!(s2.find("db").is_ok());
    }
}
