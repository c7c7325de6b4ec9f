//! `docker commit`: a container's changes (its overlayfs upper directory, whiteouts included)
//! become a new layer on its image's, with the container's config (changed by the request's
//! config and Dockerfile-style `changes`) as the new image's. A running container is paused
//! while its layer is read, unless the caller says not to.

use std::os::fd::AsFd;
use std::sync::Arc;

use berth_image::Reference;
use berth_image::images::ImageRecord;
use berth_image::service::NewImage;
use serde_json::{Value, json};

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
    /// Config fields that replace the container's (the request body).
    pub config: Option<Value>,
    /// `config` is the whole new config, not fields over the container's (the builder's).
    pub replace_config: bool,
    /// The history entry's `created_by` (else the container's command).
    pub created_by: Option<String>,
}

/// Commits the container `name` as a new image.
pub async fn commit(d: &Arc<Daemon>, name: &str, o: CommitOptions) -> Result<ImageRecord, Error> {
    let h = d.containers.find(name)?;
    let rec = h.lock().await.clone();
    let parent = d.image_of(&rec)?;
    let mut config = match (&o.config, o.replace_config) {
        (Some(c), true) => c.clone(),
        _ => rec.config.clone(),
    };
    if let (Some(Value::Object(over)), false) = (&o.config, o.replace_config) {
        for (k, v) in over {
            if !v.is_null() {
                config[k] = v.clone();
            }
        }
    }
    let changes: Vec<&str> = o.changes.iter().map(String::as_str).collect();
    apply_changes(&mut config, &changes)?;
    config["Image"] = json!(parent.id.to_string());
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
    let created_by = o.created_by.clone().unwrap_or_else(|| {
        config["Cmd"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    });
    let history = json!({"created_by": created_by, "comment": o.comment});
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
        json!({"name": rec.name, "imageID": image.id.to_string(), "comment": image_comment(&image)}),
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
pub fn apply_changes(c: &mut Value, changes: &[&str]) -> Result<(), Error> {
    if !c.is_object() {
        *c = json!({});
    }
    for ch in changes {
        let (instr, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch.trim(), ""));
        let rest = rest.trim();
        let words = || -> Value {
            match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => json!(v),
                Err(_) => json!(["/bin/sh", "-c", rest]),
            }
        };
        match instr.to_uppercase().as_str() {
            "CMD" => c["Cmd"] = words(),
            "ENTRYPOINT" => c["Entrypoint"] = words(),
            "WORKDIR" => c["WorkingDir"] = json!(rest),
            "USER" => c["User"] = json!(rest),
            "STOPSIGNAL" => c["StopSignal"] = json!(rest),
            "ENV" => set_env(c, rest),
            "LABEL" => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                c["Labels"][k.trim_matches('"')] = json!(v.trim_matches('"'));
            }
            "VOLUME" => {
                let paths = serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
                for p in paths {
                    c["Volumes"][p] = json!({});
                }
            }
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    c["ExposedPorts"][p] = json!({});
                }
            }
            "ONBUILD" => {
                let mut onbuild = c["OnBuild"].as_array().cloned().unwrap_or_default();
                onbuild.push(json!(rest));
                c["OnBuild"] = json!(onbuild);
            }
            other => {
                return Err(Error::invalid(format!(
                    "{other} is not a valid change command"
                )));
            }
        }
    }
    Ok(())
}

/// `ENV k=v` or `ENV k v`: replaces the variable if the config sets it, else adds it.
fn set_env(c: &mut Value, rest: &str) {
    let (k, v) = rest
        .split_once('=')
        .or_else(|| rest.split_once(' '))
        .unwrap_or((rest, ""));
    set_env_var(c, k, v);
}

/// Sets the variable `k` to `v` in the config `c`'s `Env`, in place of any value it had.
pub fn set_env_var(c: &mut Value, k: &str, v: &str) {
    let mut env: Vec<Value> = c["Env"].as_array().cloned().unwrap_or_default();
    env.retain(|e| e.as_str().and_then(|e| e.split('=').next()) != Some(k));
    env.push(json!(format!("{k}={v}")));
    c["Env"] = json!(env);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_the_config_as_dockerfile_instructions_do() {
        let mut c = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"]});
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
        assert_eq!(c["Cmd"], json!(["cat", "/hello"]));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(c["Labels"], json!({"x": "y"}));
        assert_eq!(c["WorkingDir"], "/w");
        let bad = apply_changes(&mut c, &["RUN true"]).unwrap_err();
        assert!(
            bad.to_string()
                .contains("RUN is not a valid change command"),
            "{bad}"
        );
    }
}
