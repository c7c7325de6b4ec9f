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
    crate::engine::blocking(|| d.volumes.destroy(name))
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

/// `HostConfig.VolumesFrom` (`container[:ro|:rw]`): the named containers' volumes and binds
/// become binds of this one, at the same places, read-only with `:ro`, else as they were; a
/// place the request mounts something at itself keeps that. `VolumesFrom` is then cleared
/// from `hc` (what the spec builder sees).
pub fn volumes_from(
    d: &Daemon,
    hc: &mut berth_api::host_config::HostConfig,
) -> Result<(), crate::model::Error> {
    use berth_api::models::MountPointTypeEnum as Kind;
    let from: Vec<String> = hc.volumes_from().to_vec();
    if from.is_empty() {
        return Ok(());
    }
    let mut taken: Vec<String> = hc
        .binds()
        .iter()
        .filter_map(|b| b.split(':').nth(1).map(str::to_string))
        .collect();
    taken.extend(hc.mounts().iter().map(|m| m.target.clone()));
    let mut binds = hc.binds().to_vec();
    for spec in from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
            Some((_, m)) => {
                return Err(crate::model::Error::invalid(format!(
                    "invalid mode for volumes-from: {m}"
                )));
            }
            None => (spec.as_str(), None),
        };
        let source = d.containers.view(name)?;
        for m in &source.mounts {
            let (Some(dest), Some(src)) = (m.destination.as_deref(), m.source.as_deref()) else {
                continue;
            };
            if taken
                .iter()
                .any(|t| t.trim_end_matches('/') == dest.trim_end_matches('/'))
            {
                continue;
            }
            let from = match (m.typ, m.name.as_deref()) {
                (Some(Kind::VOLUME), Some(volume)) => volume,
                (Some(Kind::BIND), _) => src,
                _ => continue,
            };
            let rw = match mode {
                Some(m) => m == "rw",
                None => m.rw.unwrap_or(true),
            };
            binds.push(format!("{from}:{dest}:{}", if rw { "rw" } else { "ro" }));
            taken.push(dest.to_string());
        }
    }
    hc.binds = Some(binds);
    hc.volumes_from = None;
    Ok(())
}
