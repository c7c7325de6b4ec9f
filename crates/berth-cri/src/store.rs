//! The CRI server's records: one JSON file per pod sandbox and per container under
//! `<root>/pods/` and `<root>/containers/` (written to a temp file and renamed), loaded at
//! start, kept in memory. A record holds the CRI config it was made from, protobuf-encoded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::v1;

/// One pod sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pod {
    pub id: String,
    /// `PodSandboxConfig`, encoded.
    pub config: Vec<u8>,
    pub created: i64,
    pub ready: bool,
    /// The pinned network namespace (None: the host's).
    pub netns: Option<PathBuf>,
    /// The pinned IPC and UTS namespaces (None: the host's IPC).
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pause container holding the pod's PID namespace, when the pod shares one.
    pub pause: Option<String>,
    pub pause_pid: u32,
    /// The pod's IP addresses from CNI, the first one primary.
    pub ips: Vec<String>,
    /// The CNI network the pod was added to (so DEL uses the same one).
    pub cni: Option<String>,
}

impl Pod {
    pub fn config(&self) -> v1::PodSandboxConfig {
        v1::PodSandboxConfig::decode(self.config.as_slice()).unwrap_or_default()
    }
}

/// A container's state, as the CRI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Created,
    Running,
    Exited,
}

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub pod: String,
    /// `ContainerConfig`, encoded.
    pub config: Vec<u8>,
    /// The image's id (`sha256:…`) and the name it was asked by.
    pub image_id: String,
    pub image: String,
    pub created: i64,
    pub started: i64,
    pub finished: i64,
    pub exit_code: i32,
    pub state: State,
    pub reason: String,
    /// Where its log goes (the pod's log directory + its log path), empty for none.
    pub log_path: String,
    pub pid: u32,
    /// The pod's pause container (not listed as a container of the CRI's).
    #[serde(default)]
    pub sandbox: bool,
}

impl Container {
    pub fn config(&self) -> v1::ContainerConfig {
        v1::ContainerConfig::decode(self.config.as_slice()).unwrap_or_default()
    }
}

/// Every record, in memory and on disk.
pub struct Store {
    root: PathBuf,
    pub pods: Mutex<BTreeMap<String, Pod>>,
    pub containers: Mutex<BTreeMap<String, Container>>,
}

fn load<T: for<'de> Deserialize<'de>>(dir: &Path) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        match std::fs::read(e.path()).map(|b| serde_json::from_slice::<T>(&b)) {
            Ok(Ok(r)) => {
                out.insert(id.to_string(), r);
            }
            _ => tracing::warn!(path = %e.path().display(), "skipping an unreadable record"),
        }
    }
    out
}

impl Store {
    pub fn open(root: &Path) -> std::io::Result<Store> {
        for d in ["pods", "containers"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            pods: Mutex::new(load(&root.join("pods"))),
            containers: Mutex::new(load(&root.join("containers"))),
        })
    }

    fn write<T: Serialize>(&self, kind: &str, id: &str, r: &T) -> std::io::Result<()> {
        let path = self.root.join(kind).join(format!("{id}.json"));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(r).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, &path)
    }

    fn erase(&self, kind: &str, id: &str) {
        let _ = std::fs::remove_file(self.root.join(kind).join(format!("{id}.json")));
    }

    pub fn pod(&self, id: &str) -> Option<Pod> {
        lock(&self.pods).get(id).cloned()
    }

    pub fn put_pod(&self, p: &Pod) -> std::io::Result<()> {
        self.write("pods", &p.id, p)?;
        lock(&self.pods).insert(p.id.clone(), p.clone());
        Ok(())
    }

    pub fn drop_pod(&self, id: &str) {
        self.erase("pods", id);
        lock(&self.pods).remove(id);
    }

    pub fn container(&self, id: &str) -> Option<Container> {
        lock(&self.containers).get(id).cloned()
    }

    pub fn put_container(&self, c: &Container) -> std::io::Result<()> {
        self.write("containers", &c.id, c)?;
        lock(&self.containers).insert(c.id.clone(), c.clone());
        Ok(())
    }

    pub fn drop_container(&self, id: &str) {
        self.erase("containers", id);
        lock(&self.containers).remove(id);
    }

    /// A pod by full id or unique prefix, as crictl allows.
    pub fn find_pod(&self, key: &str) -> Option<Pod> {
        find(&lock(&self.pods), key)
    }

    /// A container by full id or unique prefix.
    pub fn find_container(&self, key: &str) -> Option<Container> {
        find(&lock(&self.containers), key)
    }

    pub fn pods(&self) -> Vec<Pod> {
        lock(&self.pods).values().cloned().collect()
    }

    pub fn containers(&self) -> Vec<Container> {
        lock(&self.containers).values().cloned().collect()
    }
}

fn find<T: Clone>(map: &BTreeMap<String, T>, key: &str) -> Option<T> {
    if key.is_empty() {
        return None;
    }
    if let Some(v) = map.get(key) {
        return Some(v.clone());
    }
    let mut hits = map
        .range(key.to_string()..)
        .take_while(|(k, _)| k.starts_with(key));
    match (hits.next(), hits.next()) {
        (Some((_, v)), None) => Some(v.clone()),
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nanoseconds since the epoch, as the CRI's timestamps are.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A new 64-hex-digit id.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
