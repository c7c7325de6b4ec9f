//! Legacy links (`--link name:alias`) on the default bridge, as dockerd makes them: the linked
//! container's address in `/etc/hosts` under the alias, its hostname and its name, and the
//! `ALIAS_NAME`, `ALIAS_PORT…` and `ALIAS_ENV_…` variables in the linking container's
//! environment. A link is stored in `HostConfig.Links` as `child:alias` (the child by name) and
//! shown as dockerd shows it, `/child:/parent/alias`; it is resolved at each start, when the
//! child must be running.

use berth_api::host_config::HostConfig;

use crate::engine::Daemon;
use crate::model::Error;
use crate::model::record::Record;

/// What a start needs of one linked container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub alias: String,
    pub child_name: String,
    pub child_hostname: String,
    pub ip: String,
    /// Its exposed ports, `(port, proto)`, in dockerd's order (by number, tcp first).
    pub ports: Vec<(u16, String)>,
    pub env: Vec<String>,
}

/// Splits `name[:alias]` (a leading `/` on either allowed); the alias defaults to the name.
pub fn parse(link: &str) -> Result<(String, String), Error> {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || alias.is_empty() {
        return Err(Error::invalid(format!("invalid link: {link}")));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// The `HostConfig.Links` of a create, checked and stored as `child:alias`: every child must
/// exist, and links need a network namespace of the container's own.
pub fn check(d: &Daemon, host_config: &mut HostConfig) -> Result<(), Error> {
    let links = host_config.links();
    if links.is_empty() {
        return Ok(());
    }
    if host_config.network_mode == "host" {
        return Err(Error::invalid(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ));
    }
    let mut stored = Vec::new();
    for l in links {
        let (name, alias) = parse(l)?;
        let child = d.containers.view(&name).map_err(|_| {
            Error::invalid(format!(
                "could not get container for {name}: No such container: {name}"
            ))
        })?;
        stored.push(format!("{}:{alias}", child.name));
    }
    host_config.links = Some(stored);
    Ok(())
}

/// The links of `rec` as `(child, alias)`.
pub fn of(rec: &Record) -> Vec<(String, String)> {
    let links = rec.host_config.links().iter();
    links.filter_map(|l| parse(l).ok()).collect()
}

/// `HostConfig.Links` as dockerd shows them: `/child:/parent/alias`.
pub fn shown(rec: &Record) -> Vec<String> {
    of(rec)
        .into_iter()
        .map(|(child, alias)| format!("/{child}:/{}/{alias}", rec.name))
        .collect()
}

/// Resolves the links of `rec` for a start: each child must run, on the default bridge.
pub fn resolve(d: &Daemon, rec: &Record) -> Result<Vec<Resolved>, Error> {
    let mut out = Vec::new();
    for (name, alias) in of(rec) {
        let not_running = || {
            Error::conflict(format!(
                "Cannot link to a non running container: /{name} AS /{}/{alias}",
                rec.name
            ))
        };
        let child = d.containers.view(&name).map_err(|_| not_running())?;
        if !child.running() {
            return Err(not_running());
        }
        let ip = child
            .networks
            .iter()
            .find(|a| a.network == "bridge")
            .and_then(|a| a.endpoint.as_ref())
            .map(|e| e.address.to_string())
            .ok_or_else(|| {
                Error::conflict(format!(
                    "Cannot link to /{name}, as it does not belong to the default network"
                ))
            })?;
        let mut ports: Vec<(u16, String)> = child
            .config
            .exposed_ports
            .iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| {
                let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                Some((port.parse().ok()?, proto.to_ascii_lowercase()))
            })
            .collect();
        ports.sort_by(|a, b| a.0.cmp(&b.0).then((a.1 != "tcp").cmp(&(b.1 != "tcp"))));
        out.push(Resolved {
            alias,
            child_name: child.name.clone(),
            child_hostname: child.config.hostname.clone(),
            ip,
            ports,
            env: child.config.env.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The variables a link gives the linking container `parent`, as dockerd's `links.ToEnv`.
pub fn env(parent: &str, l: &Resolved) -> Vec<String> {
    let prefix = l.alias.to_ascii_uppercase().replace('-', "_");
    let mut env = Vec::new();
    if let Some((port, proto)) = l.ports.first() {
        env.push(format!("{prefix}_PORT={proto}://{}:{port}", l.ip));
    }
    for (port, proto) in &l.ports {
        let key = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
        env.push(format!("{key}={proto}://{}:{port}", l.ip));
        env.push(format!("{key}_ADDR={}", l.ip));
        env.push(format!("{key}_PORT={port}"));
        env.push(format!("{key}_PROTO={proto}"));
    }
    env.push(format!("{prefix}_NAME=/{parent}/{}", l.alias));
    for e in &l.env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k != "HOME" && k != "PATH" {
            env.push(format!("{prefix}_ENV_{k}={v}"));
        }
    }
    env
}

/// The `/etc/hosts` line of a link: its address, then the alias, the child's hostname and
/// (when the alias is not it) its name.
pub fn hosts_line(l: &Resolved) -> String {
    let mut names = vec![l.alias.as_str(), l.child_hostname.as_str()];
    if l.alias != l.child_name {
        names.push(&l.child_name);
    }
    names.retain(|n| !n.is_empty());
    format!("{}\t{}\n", l.ip, names.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_and_become_dockers_variables_and_hosts_lines() {
        assert_eq!(parse("web:db").unwrap(), ("web".into(), "db".into()));
        assert_eq!(parse("/web:/app/db").unwrap(), ("web".into(), "db".into()));
        assert_eq!(parse("web").unwrap(), ("web".into(), "web".into()));
        assert!(parse(":x").is_err());
        let l = Resolved {
            alias: "my-db".into(),
            child_name: "web".into(),
            child_hostname: "abc123".into(),
            ip: "172.17.0.2".into(),
            ports: vec![(80, "tcp".into()), (53, "udp".into())],
            env: vec!["PATH=/bin".into(), "PASSWORD=x=y".into()],
        };
        let env = env("app", &l);
        assert_eq!(env[0], "MY_DB_PORT=tcp://172.17.0.2:80");
        assert!(env.contains(&"MY_DB_PORT_53_UDP_ADDR=172.17.0.2".to_string()));
        assert!(env.contains(&"MY_DB_PORT_80_TCP_PROTO=tcp".to_string()));
        assert!(env.contains(&"MY_DB_NAME=/app/my-db".to_string()));
        assert!(env.contains(&"MY_DB_ENV_PASSWORD=x=y".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("MY_DB_ENV_PATH")));
        assert_eq!(hosts_line(&l), "172.17.0.2\tmy-db abc123 web\n");
    }
}
