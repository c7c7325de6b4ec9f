//! `docker commit`: a container's changes (its overlayfs upper directory, whiteouts included)
//! become a new layer on its image's, with the container's config (changed by the request's
//! config and Dockerfile-style `changes`) as the new image's. A running container is paused
//! while its layer is read, unless the caller says not to.

use std::os::fd::AsFd;
use std::sync::Arc;

use berth_api::config::ContainerConfig;
use berth_image::Reference;
use berth_image::images::ImageRecord;
use berth_image::service::NewImage;

use crate::engine::Daemon;
use crate::model::Error;
use crate::model::record::Status;

/// What `POST /commit` asks for.
#[derive(Debug, Default)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    pub comment: String,
    pub author: String,
    /// Pause a running container while its layer is read (Docker's default).
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`docker commit -c`).
    pub changes: Vec<String>,
    /// The new image's config (the request body); what it leaves empty comes from the
    /// container's, as dockerd merges them.
    pub config: Option<ContainerConfig>,
    /// `config` is the whole new config, with nothing taken from the container's (the
    /// builder's).
    pub replace_config: bool,
    /// The history entry's `created_by` (else the container's command).
    pub created_by: Option<String>,
}

/// Commits the container `name` as a new image.
pub async fn commit(d: &Arc<Daemon>, name: &str, o: CommitOptions) -> Result<ImageRecord, Error> {
    let h = d.containers.find(name)?;
    let rec = h.lock().await.clone();
    let parent = d.image_of(&rec)?;
    let container = rec.config.clone();
    let mut config = o.config.clone().unwrap_or_else(|| container.clone());
    let changes: Vec<&str> = o.changes.iter().map(String::as_str).collect();
    apply_changes(&mut config, &changes)?;
    if !o.replace_config {
        merge(&mut config, &container);
    }
    config.image = parent.id.to_string();
    let paused = o.pause && rec.state.status == Status::Running;
    if paused {
        set_paused(d, &rec.id, true).await?;
    }
    let upper = d.containers.dir(&rec.id).join("upper");
    let tmp_dir = d.data_root.join("tmp");
    let layer = tokio::task::spawn_blocking(move || layer_of(&upper, &tmp_dir)).await;
    if paused {
        set_paused(d, &rec.id, false).await?;
    }
    let layer = layer.map_err(|e| Error::internal(format!("worker failed: {e}")))??;
    let (d2, id) = (d.clone(), rec.id.clone());
    let created_by = o
        .created_by
        .clone()
        .unwrap_or_else(|| config.cmd.as_deref().unwrap_or_default().join(" "));
    let config = serde_json::to_value(&config).unwrap_or_default();
    let history = serde_json::to_value(berth_api::config::History {
        created_by,
        comment: o.comment.clone(),
        ..Default::default()
    })
    .unwrap_or_default();
    let image = tokio::task::spawn_blocking(move || {
        d2.images.add_layer(
            layer,
            NewImage {
                parent: Some(&parent),
                config,
                history,
                author: Some(o.author),
                container: Some(id),
                tag: o.reference.as_ref(),
            },
        )
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))?
    .map_err(|e| Error::internal(format!("committing {}: {e}", rec.id)))?;
    d.events.emit(
        "container",
        "commit",
        &rec.id,
        crate::engine::events::attrs([
            ("name", rec.name.clone()),
            ("imageID", image.id.to_string()),
            ("comment", image_comment(&image)),
        ]),
    );
    Ok(image)
}

/// The comment attribute of the commit event: the image's first tag, as dockerd reports it.
fn image_comment(image: &ImageRecord) -> String {
    image.familiar_tags().into_iter().next().unwrap_or_default()
}

/// Pauses or resumes the container's task.
async fn set_paused(d: &Daemon, id: &str, pause: bool) -> Result<(), Error> {
    use berth_proto::v1::{PauseTaskRequest, ResumeTaskRequest};
    let mut tasks = d.containerd.tasks();
    let container_id = id.to_string();
    let done = match pause {
        true => tasks
            .pause(crate::containerd::req(PauseTaskRequest { container_id }))
            .await
            .map(|_| ()),
        false => tasks
            .resume(crate::containerd::req(ResumeTaskRequest { container_id }))
            .await
            .map(|_| ()),
    };
    done.map_err(crate::containerd::grpc)
}

/// The container's upper directory as a layer tar (overlayfs whiteouts as `.wh.` entries), in
/// an unnamed temp file under `tmp_dir` read back from its start. A container that never ran
/// has no upper directory: its layer is empty.
fn layer_of(upper: &std::path::Path, tmp_dir: &std::path::Path) -> Result<std::fs::File, Error> {
    use std::io::{Seek, Write};
    let io = |what: &str, e: std::io::Error| Error::internal(format!("{what}: {e}"));
    std::fs::create_dir_all(tmp_dir).map_err(|e| io("making the temp dir", e))?;
    let mut file = tempfile::tempfile_in(tmp_dir).map_err(|e| io("making a temp file", e))?;
    // The path is the daemon's own (under the data root); what is inside the directory is
    // the container's, walked by descriptors without following links.
    let flags = rustix::fs::OFlags::RDONLY
        | rustix::fs::OFlags::DIRECTORY
        | rustix::fs::OFlags::NOFOLLOW
        | rustix::fs::OFlags::CLOEXEC;
    match rustix::fs::open(upper, flags, rustix::fs::Mode::empty()) {
        Ok(dir) => berth_image::layer_tar::write_layer_at(
            dir.as_fd(),
            &mut file,
            berth_image::layer_tar::TreeOptions::default(),
        )
        .map_err(|e| io("reading the container's changes", e))?,
        Err(rustix::io::Errno::NOENT) => {
            tar::Builder::new(&mut file)
                .finish()
                .map_err(|e| io("writing an empty layer", e))?;
        }
        Err(e) => return Err(io("opening the container's changes", e.into())),
    }
    file.flush().map_err(|e| io("writing the layer", e))?;
    file.rewind().map_err(|e| io("writing the layer", e))?;
    Ok(file)
}

/// Applies Dockerfile-style `changes` (`docker commit -c`, `docker import -c`) to the image
/// config `c`: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL,
/// ONBUILD.
pub fn apply_changes(c: &mut ContainerConfig, changes: &[&str]) -> Result<(), Error> {
    for ch in changes {
        let (instr, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch.trim(), ""));
        let rest = rest.trim();
        let words = || -> Option<Vec<String>> {
            Some(
                serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.into()]),
            )
        };
        match instr.to_uppercase().as_str() {
            "CMD" => c.cmd = words(),
            "ENTRYPOINT" => c.entrypoint = words(),
            "WORKDIR" => c.working_dir = rest.to_string(),
            "USER" => c.user = rest.to_string(),
            "STOPSIGNAL" => c.stop_signal = rest.to_string(),
            "ENV" => {
                let (k, v) = rest
                    .split_once('=')
                    .or_else(|| rest.split_once(' '))
                    .unwrap_or((rest, ""));
                c.set_env(k, v);
            }
            "LABEL" => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                c.set_label(k.trim_matches('"'), v.trim_matches('"'));
            }
            "VOLUME" => {
                let paths = serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
                for p in paths {
                    c.add_volume(&p);
                }
            }
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    match p.contains('/') {
                        true => c.expose(p),
                        false => c.expose(&format!("{p}/tcp")),
                    }
                }
            }
            "ONBUILD" => c.on_build.get_or_insert_with(Vec::new).push(rest.into()),
            other => {
                return Err(Error::invalid(format!(
                    "{other} is not a valid change command"
                )));
            }
        }
    }
    Ok(())
}

/// Fills what the new config `user` leaves empty from the container's, as dockerd's commit
/// does: scalars when unset, lists and sets merged (the user's entries win), the command
/// only when the user gave no entrypoint.
fn merge(user: &mut ContainerConfig, container: &ContainerConfig) {
    fn or(mine: &mut String, theirs: &str) {
        if mine.is_empty() {
            *mine = theirs.to_string();
        }
    }
    or(&mut user.user, &container.user);
    or(&mut user.working_dir, &container.working_dir);
    or(&mut user.stop_signal, &container.stop_signal);
    for p in container.exposed_ports.iter().flatten().map(|(p, _)| p) {
        user.expose(p);
    }
    for p in container.volumes.iter().flatten().map(|(p, _)| p) {
        user.add_volume(p);
    }
    for e in container.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or_default();
        let env = user.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|u| u.split('=').next() == Some(key)) {
            env.push(e.clone());
        }
    }
    let labels = user.labels.get_or_insert_with(Default::default);
    for (k, v) in container.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if user.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if user.cmd.as_ref().is_none_or(Vec::is_empty) {
            user.cmd.clone_from(&container.cmd);
            user.args_escaped = container.args_escaped;
        }
        if user.entrypoint.is_none() {
            user.entrypoint.clone_from(&container.entrypoint);
        }
    }
    if user.healthcheck.is_none() {
        user.healthcheck.clone_from(&container.healthcheck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_set_the_config_as_dockerfile_instructions_do() {
        let mut c: ContainerConfig =
            serde_json::from_value(json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"]})).unwrap();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["cat", "/hello"]"#,
                "ENV A 2",
                "ENV B=3",
                "EXPOSE 80",
                "LABEL x=y",
                "WORKDIR /w",
            ],
        )
        .unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["Cmd"], json!(["cat", "/hello"]));
        assert_eq!(v["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(v["Labels"], json!({"x": "y"}));
        assert_eq!(v["WorkingDir"], "/w");
        let bad = apply_changes(&mut c, &["RUN true"]).unwrap_err();
        assert!(
            bad.to_string()
                .contains("RUN is not a valid change command"),
            "{bad}"
        );
    }

    #[test]
    fn a_given_config_is_filled_from_the_containers_as_dockerd_merges() {
        let container: ContainerConfig = serde_json::from_value(json!({
            "Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "User": "nobody",
            "Labels": {"a": "1", "b": "2"}, "ExposedPorts": {"80/tcp": {}}
        }))
        .unwrap();
        let mut user: ContainerConfig = serde_json::from_value(json!({
            "Env": ["A=2"], "Labels": {"a": "9"}, "ExposedPorts": {"53/udp": {}}
        }))
        .unwrap();
        merge(&mut user, &container);
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(v["Env"], json!(["A=2", "PATH=/bin"]));
        assert_eq!(v["Labels"], json!({"a": "9", "b": "2"}));
        assert_eq!(v["ExposedPorts"], json!({"53/udp": {}, "80/tcp": {}}));
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["User"], "nobody");
    }
}
