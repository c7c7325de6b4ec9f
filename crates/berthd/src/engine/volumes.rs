//! What the engine knows of volumes that the volume store does not: which containers use one,
//! and removing one with its event.

use crate::engine::Daemon;

/// Containers using a volume.
pub async fn users(d: &Daemon, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in d.containers.all() {
        let r = h.lock().await;
        if r.volumes.iter().any(|v| v == name) {
            out.push(r.id.clone());
        }
    }
    out
}

/// Removes a volume no container uses (the caller checked) and says so in the events; the
/// bytes it held.
pub fn destroy(d: &Daemon, name: &str) -> u64 {
    d.events.emit(
        "volume",
        "destroy",
        name,
        crate::engine::events::attrs([("driver", "local".into())]),
    );
    d.volumes.destroy(name)
}

/// Removes the anonymous volumes of a removed container (`docker rm -v`, `--rm`).
pub async fn remove_anonymous(d: &Daemon, names: &[String]) {
    for n in names {
        let anon = d
            .volumes
            .get(n)
            .is_some_and(|v| v.labels.contains_key(crate::volumes::ANONYMOUS));
        if anon && users(d, n).await.is_empty() {
            destroy(d, n);
        }
    }
}
