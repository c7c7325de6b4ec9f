//! `volume create|ls|inspect|rm|prune`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::api::{self, Client, query};
use crate::commands::containers::{confirm, for_each};
use crate::commands::inspect::pretty;
use crate::format::{Lister, unescape};
use crate::http;
use crate::template::Template;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. 'dangling=true')
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. 'label=<label>')
    #[arg(long)]
    pub filter: Vec<String>,
}

fn kv_map(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect()
}

/// Renders each object of `list` through `--format`, or prints them as indented JSON.
pub fn print_inspected(list: Vec<Value>, format: Option<&str>) -> anyhow::Result<()> {
    match format.filter(|f| !f.is_empty() && *f != "json") {
        Some(f) => {
            let t = Template::parse(&unescape(f))?;
            for v in &list {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", pretty(&Value::Array(list))?),
    }
    Ok(())
}

pub fn run(client: &Client, cmd: &VolumeCmd) -> anyhow::Result<i32> {
    match cmd {
        VolumeCmd::Create(a) => {
            let body = json!({
                "Name": a.name.clone().or_else(|| a.name_flag.clone()).unwrap_or_default(),
                "Driver": a.driver,
                "DriverOpts": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            let v = client.post("/volumes/create", Some(&body))?;
            println!("{}", api::s(&v, "Name"));
            Ok(0)
        }
        VolumeCmd::Ls(a) => {
            let q = query(&[("filters", api::filters_json(&a.filter)?)]);
            let v = client.get(&format!("/volumes{q}"))?;
            let rows: Vec<Value> = v
                .get("Volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|vol| {
                    json!({
                        "Name": api::s(vol, "Name"),
                        "Driver": api::s(vol, "Driver"),
                        "Scope": api::s(vol, "Scope"),
                        "Mountpoint": api::s(vol, "Mountpoint"),
                        "Labels": vol.get("Labels").and_then(Value::as_object).map(|m| {
                            let mut l: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
                            l.sort();
                            l.join(",")
                        }).unwrap_or_default(),
                    })
                })
                .collect();
            let out = Lister {
                default: "table {{.Driver}}\t{{.Name}}",
                headers: &[
                    ("Name", "VOLUME NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                    ("Mountpoint", "MOUNTPOINT"),
                    ("Labels", "LABELS"),
                ],
                format: a.format.as_deref().unwrap_or(""),
                quiet: a.quiet,
                quiet_field: "Name",
            }
            .render(&rows)?;
            print!("{out}");
            Ok(0)
        }
        VolumeCmd::Inspect(a) => {
            let mut list = Vec::new();
            let mut status = 0;
            for n in &a.names {
                match client.get(&format!("/volumes/{}", http::encode(n))) {
                    Ok(v) => list.push(v),
                    Err(e) if api::is_not_found(&e) => {
                        status = 1;
                        eprintln!("Error: No such volume: {n}");
                    }
                    Err(e) => return Err(e),
                }
            }
            print_inspected(list, a.format.as_deref())?;
            Ok(status)
        }
        VolumeCmd::Rm(a) => {
            let q = if a.force { "?force=1" } else { "" };
            for_each(&a.names, |n| {
                client.delete(&format!("/volumes/{}{q}", http::encode(n)))?;
                Ok(Some(n.to_string()))
            })
        }
        VolumeCmd::Prune(a) => {
            if !confirm(
                "WARNING! This will remove all local volumes not used by at least one container.",
                a.force,
            ) {
                return Ok(0);
            }
            let mut filters = a.filter.clone();
            if a.all {
                filters.push("all=true".into());
            }
            let q = query(&[("filters", api::filters_json(&filters)?)]);
            let v = client.post(&format!("/volumes/prune{q}"), None)?;
            let deleted = v
                .get("VolumesDeleted")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in &deleted {
                    println!("{}", d.as_str().unwrap_or_default());
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                crate::units::human_size(api::i(&v, "SpaceReclaimed"))
            );
            Ok(0)
        }
    }
}
