//! `network create|ls|inspect|rm|connect|disconnect|prune`.

use berth_api::models;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api::{self, Client, query};
use crate::commands::containers::{confirm, for_each};
use crate::commands::volumes::print_inspected;
use crate::format::{Lister, short_id};
use crate::http;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(Names),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (e.g. 'driver=bridge')
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Pretty-print networks using a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Names {
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long)]
    pub filter: Vec<String>,
}

fn kv_map(items: &[String]) -> std::collections::HashMap<String, String> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn net_path(name: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/networks/{}", http::encode(name))
    } else {
        format!("/networks/{}/{action}", http::encode(name))
    }
}

pub fn run(client: &Client, cmd: &NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => create(client, a),
        NetworkCmd::Ls(a) => ls(client, a),
        NetworkCmd::Inspect(a) => {
            let mut list = Vec::new();
            let mut status = 0;
            for n in &a.names {
                match client.get(&net_path(n, "")) {
                    Ok(v) => list.push(v),
                    Err(e) if api::is_not_found(&e) => {
                        status = 1;
                        eprintln!("Error: No such network: {n}");
                    }
                    Err(e) => return Err(e),
                }
            }
            print_inspected(list, a.format.as_deref())?;
            Ok(status)
        }
        NetworkCmd::Rm(a) => for_each(&a.names, |n| {
            client.delete(&net_path(n, ""))?;
            Ok(Some(n.to_string()))
        }),
        NetworkCmd::Connect(a) => {
            let endpoint = models::EndpointSettings {
                aliases: Some(a.alias.clone()),
                ipam_config: (a.ip.is_some() || a.ip6.is_some() || !a.link_local_ip.is_empty())
                    .then(|| {
                        crate::commands::container_flags::endpoint_ipam(
                            a.ip.as_ref(),
                            a.ip6.as_ref(),
                            &a.link_local_ip,
                        )
                    }),
                ..Default::default()
            };
            let body = serde_json::to_value(models::NetworkConnectRequest {
                container: Some(a.container.clone()),
                endpoint_config: Some(endpoint),
            })?;
            client.post(&net_path(&a.network, "connect"), Some(&body))?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = serde_json::to_value(models::NetworkDisconnectRequest {
                container: Some(a.container.clone()),
                force: Some(a.force),
            })?;
            client.post(&net_path(&a.network, "disconnect"), Some(&body))?;
            Ok(0)
        }
        NetworkCmd::Prune(a) => prune(client, a),
    }
}

/// `network create`.
fn create(client: &Client, a: &CreateArgs) -> anyhow::Result<i32> {
    let configs: Vec<models::IpamConfig> = a
        .subnet
        .iter()
        .enumerate()
        .map(|(i, s)| models::IpamConfig {
            subnet: Some(s.clone()),
            gateway: a.gateway.get(i).cloned(),
            ip_range: a.ip_range.get(i).cloned(),
            ..Default::default()
        })
        .collect();
    anyhow::ensure!(
        a.gateway.len() <= a.subnet.len(),
        "every --gateway needs a --subnet"
    );
    let body = serde_json::to_value(models::NetworkCreateRequest {
        name: a.name.clone(),
        check_duplicate: Some(true),
        driver: Some(a.driver.clone()),
        internal: Some(a.internal),
        attachable: Some(a.attachable),
        enable_ipv6: Some(a.ipv6),
        options: Some(kv_map(&a.opt)),
        labels: Some(kv_map(&a.label)),
        ipam: Some(models::Ipam {
            driver: Some("default".into()),
            config: Some(configs),
            options: Some(Default::default()),
        }),
        ..Default::default()
    })?;
    let v = client.post("/networks/create", Some(&body))?;
    let w = api::s(&v, "Warning");
    if !w.is_empty() {
        eprintln!("WARNING: {w}");
    }
    println!("{}", api::s(&v, "Id"));
    Ok(0)
}

/// `network ls`.
fn ls(client: &Client, a: &LsArgs) -> anyhow::Result<i32> {
    let q = query(&[("filters", api::filters_json(&a.filter)?)]);
    let v = client.get(&format!("/networks{q}"))?;
    let mut rows: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = api::s(n, "Id");
            json!({
                "ID": if a.no_trunc { id.to_string() } else { short_id(id) },
                "Name": api::s(n, "Name"),
                "Driver": api::s(n, "Driver"),
                "Scope": api::s(n, "Scope"),
                "IPv6": n.get("EnableIPv6").and_then(Value::as_bool).unwrap_or(false).to_string(),
                "Internal": n.get("Internal").and_then(Value::as_bool).unwrap_or(false).to_string(),
                "CreatedAt": api::s(n, "Created"),
            })
        })
        .collect();
    rows.sort_by(|x, y| api::s(x, "Name").cmp(api::s(y, "Name")));
    let out = Lister {
        default: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        headers: &[
            ("ID", "NETWORK ID"),
            ("Name", "NAME"),
            ("Driver", "DRIVER"),
            ("Scope", "SCOPE"),
            ("IPv6", "IPV6"),
            ("Internal", "INTERNAL"),
            ("CreatedAt", "CREATED AT"),
        ],
        format: a.format.as_deref().unwrap_or(""),
        quiet: a.quiet,
        quiet_field: "ID",
    }
    .render(&rows)?;
    print!("{out}");
    Ok(0)
}

/// `network prune`.
fn prune(client: &Client, a: &PruneArgs) -> anyhow::Result<i32> {
    if !confirm(
        "WARNING! This will remove all custom networks not used by at least one container.",
        a.force,
    ) {
        return Ok(0);
    }
    let q = query(&[("filters", api::filters_json(&a.filter)?)]);
    let v = client.post(&format!("/networks/prune{q}"), None)?;
    let deleted = v
        .get("NetworksDeleted")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in &deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    Ok(0)
}
