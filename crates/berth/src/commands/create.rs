//! `create` and the container flags it shares with `run`: Docker's flags turned into the
//! Engine API's create body, and the create request itself, pulling a missing image first
//! (with progress on stderr, as `docker run` does) unless `--pull never`.

use std::io::Write;

use anyhow::Context;
use berth_api::config::ContainerConfig;
use berth_api::host_config::{
    CreateRequest, HostConfig, NetworkingConfig, PortBinding, PortMap, RestartPolicy, StringMap,
};
use berth_api::models::EndpointSettings;
use clap::{ArgAction, Args};

use crate::api::{self, Client, DaemonError, query};
use crate::commands::images;
use crate::http;

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped aliases for the container
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Signal to stop a container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Set platform if server is multi-platform capable (accepted, passed on)
    #[arg(long)]
    pub platform: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    #[command(flatten)]
    pub more: crate::commands::container_flags::ContainerFlags,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

/// The environment of `--env-file` files, then `-e` flags, as Docker reads them.
pub fn env_list(env: &[String], files: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading env file {f}"))?;
        for line in text.lines() {
            let line = line.trim_start();
            if !line.is_empty() && !line.starts_with('#') {
                out.extend(env_entry(line));
            }
        }
    }
    out.extend(env.iter().filter_map(|e| env_entry(e)));
    Ok(out)
}

/// `-e K=V` as given; `-e K` takes K from the environment (and is dropped when unset).
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

/// `[ip:][hostPort:]containerPort[/proto]` → (`port/proto`, host ip, host port).
pub fn parse_publish(p: &str) -> anyhow::Result<(String, String, String)> {
    let (spec, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (ctr, host_port, ip) = match parts.as_slice() {
        [c] => (*c, "", ""),
        [c, h] => (*c, *h, ""),
        [c, h, ip] => (*c, *h, ip.trim_start_matches('[').trim_end_matches(']')),
        _ => anyhow::bail!("invalid port format: {p}"),
    };
    anyhow::ensure!(
        !ctr.is_empty() && ctr.chars().all(|c| c.is_ascii_digit() || c == '-'),
        "invalid containerPort: {ctr}"
    );
    Ok((
        format!("{ctr}/{proto}"),
        ip.to_string(),
        host_port.to_string(),
    ))
}

impl CreateArgs {
    pub fn image(&self) -> &str {
        &self.args[0]
    }

    /// The Engine API's create body.
    pub fn body(&self, attach: bool) -> anyhow::Result<CreateRequest> {
        let mut config = ContainerConfig {
            hostname: self.hostname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin: self.interactive && attach,
            attach_stdout: attach,
            attach_stderr: attach,
            tty: self.tty,
            open_stdin: self.interactive,
            stdin_once: self.interactive && attach,
            env: Some(env_list(&self.env, &self.env_file)?),
            cmd: Some(self.args[1..].to_vec()).filter(|c| !c.is_empty()),
            image: self.image().to_string(),
            working_dir: self.workdir.clone().unwrap_or_default(),
            labels: Some(Default::default()),
            exposed_ports: Some(Default::default()),
            volumes: Some(Default::default()),
            entrypoint: self.entrypoint.clone().map(|e| vec![e]),
            stop_signal: self.stop_signal.clone().unwrap_or_default(),
            stop_timeout: self.stop_timeout,
            ..Default::default()
        };
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            config.set_label(k, v);
        }
        let mut binds = Vec::new();
        for v in &self.volume {
            if v.contains(':') {
                binds.push(v.clone());
            } else {
                config.add_volume(v);
            }
        }
        let mut bindings = PortMap::new();
        for e in &self.expose {
            config.expose(&if e.contains('/') {
                e.clone()
            } else {
                format!("{e}/tcp")
            });
        }
        for p in &self.publish {
            let (port, ip, host_port) = parse_publish(p)?;
            config.expose(&port);
            let list = bindings.entry(port).or_default().get_or_insert_default();
            list.push(PortBinding {
                host_ip: ip,
                host_port,
            });
        }
        let (policy, retries) = match self.restart.split_once(':') {
            Some((n, c)) => (
                n.to_string(),
                c.parse::<i64>().context("invalid restart policy count")?,
            ),
            None => (self.restart.clone(), 0),
        };
        anyhow::ensure!(
            matches!(
                policy.as_str(),
                "no" | "always" | "unless-stopped" | "on-failure" | ""
            ),
            "invalid restart policy {policy:?}"
        );
        let mut tmpfs = StringMap::new();
        for t in &self.tmpfs {
            let (p, o) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(p.to_string(), o.to_string());
        }
        let memory = self
            .memory
            .as_deref()
            .map(crate::units::ram_in_bytes)
            .transpose()?;
        let mut host_config = HostConfig {
            binds: Some(binds),
            network_mode: self.network.clone().unwrap_or_else(|| "default".into()),
            port_bindings: Some(bindings),
            restart_policy: RestartPolicy {
                name: policy,
                maximum_retry_count: retries,
            },
            auto_remove: self.rm,
            privileged: self.privileged,
            cap_add: Some(self.cap_add.clone()),
            cap_drop: Some(self.cap_drop.clone()),
            readonly_rootfs: self.read_only,
            extra_hosts: Some(self.add_host.clone()),
            dns: Some(self.dns.clone()),
            tmpfs: Some(tmpfs),
            init: self.init.then_some(true),
            ..Default::default()
        };
        let r = &mut host_config.resources;
        r.memory = memory.unwrap_or(0);
        r.nano_cpus = self.cpus.map_or(0, |c| (c * 1e9) as i64);
        r.cgroup_parent = self.cgroup_parent.clone().unwrap_or_default();
        let mut req = CreateRequest {
            config,
            host_config,
            networking_config: None,
        };
        if let Some(n) = &self.network {
            if !matches!(n.as_str(), "none" | "host" | "bridge" | "default")
                && !n.starts_with("container:")
            {
                let endpoint = EndpointSettings {
                    aliases: Some(self.network_alias.clone()),
                    ..Default::default()
                };
                req.networking_config = Some(NetworkingConfig {
                    endpoints_config: Some([(n.clone(), endpoint)].into()),
                });
            }
        }
        self.more.apply(&mut req)?;
        Ok(req)
    }
}

/// Creates the container (pulling its image first when needed); returns its id.
pub fn create_container(client: &Client, a: &CreateArgs, attach: bool) -> anyhow::Result<String> {
    let body = serde_json::to_value(a.body(attach)?).context("encoding the create request")?;
    // As the docker CLI: the cidfile is made first (so a bad path fails before any container
    // exists) and removed again if the create fails.
    let cidfile = match &a.more.cidfile {
        Some(f) => match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(f)
        {
            Ok(file) => Some((f.clone(), file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "Container ID file found, make sure the other container isn't running or delete {f}"
            ),
            Err(e) => anyhow::bail!("failed to create the container ID file: {e}"),
        },
        None => None,
    };
    let created = create_request(client, a, &body);
    if let (Err(_), Some((f, _))) = (&created, &cidfile) {
        let _ = std::fs::remove_file(f);
    }
    let id = created?;
    if let Some((f, mut file)) = cidfile {
        file.write_all(id.as_bytes())
            .with_context(|| format!("failed to write the container ID to {f}"))?;
    }
    Ok(id)
}

/// The create request itself, pulling the image first when asked or missing.
fn create_request(
    client: &Client,
    a: &CreateArgs,
    body: &serde_json::Value,
) -> anyhow::Result<String> {
    let mut q = vec![("name", a.name.clone())];
    if let Some(p) = &a.platform {
        q.push(("platform", Some(p.clone())));
    }
    let path = format!("/containers/create{}", query(&q));
    let pull_to_stderr = |client: &Client| -> anyhow::Result<()> {
        let mut err = std::io::stderr();
        let tty = std::io::IsTerminal::is_terminal(&err);
        images::pull_image(client, a.image(), &mut err, tty, false).map(drop)
    };
    match a.pull.as_str() {
        "always" => pull_to_stderr(client)?,
        "missing" | "never" => {}
        other => anyhow::bail!(
            "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
        ),
    }
    let resp = match client.post(&path, Some(body)) {
        Err(e) if api::is_not_found(&e) && a.pull == "missing" && is_image_error(&e) => {
            let _ = writeln!(
                std::io::stderr(),
                "Unable to find image '{}' locally",
                images::familiar_with_tag(a.image())
            );
            pull_to_stderr(client)?;
            client.post(&path, Some(body))?
        }
        r => r?,
    };
    for w in resp
        .get("Warnings")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = api::s(&resp, "Id").to_string();
    anyhow::ensure!(!id.is_empty(), "the daemon returned no container id");
    Ok(id)
}

fn is_image_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DaemonError>()
        .is_some_and(|d| d.message.to_lowercase().contains("no such image"))
}

/// `berth create`: prints the new container's id.
pub fn create(client: &Client, a: &CreateArgs) -> anyhow::Result<i32> {
    let id = create_container(client, a, true)?;
    println!("{id}");
    Ok(0)
}

/// The path of a container route (`/containers/<name>/<action>`), name percent-encoded.
pub fn ctr_path(name: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/containers/{}", http::encode(name))
    } else {
        format!("/containers/{}/{action}", http::encode(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse() {
        assert_eq!(
            parse_publish("80").unwrap(),
            ("80/tcp".into(), "".into(), "".into())
        );
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            ("80/tcp".into(), "".into(), "8080".into())
        );
        assert_eq!(
            parse_publish("127.0.0.1:53:53/udp").unwrap(),
            ("53/udp".into(), "127.0.0.1".into(), "53".into())
        );
        assert!(parse_publish("a:b").is_err());
    }
}
