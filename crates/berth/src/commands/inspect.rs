//! `inspect`: containers, images, networks and volumes (tried in that order without `--type`,
//! relying on the daemon's JSON 404s), printed as an indented JSON array or through `--format`.

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::api::{self, Client};
use crate::commands::create::ctr_path;
use crate::format::unescape;
use crate::http;
use crate::template::Template;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Return JSON for specified type
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// `container inspect` / `image inspect`: the same flags without `--type`.
#[derive(Args, Debug)]
pub struct ObjectInspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

impl ObjectInspectArgs {
    pub fn with_type(self, kind: &str) -> InspectArgs {
        InspectArgs {
            format: self.format,
            kind: Some(kind.into()),
            size: self.size,
            names: self.names,
        }
    }
}

fn path_for(kind: &str, name: &str, size: bool) -> String {
    match kind {
        "container" => format!(
            "{}{}",
            ctr_path(name, "json"),
            if size { "?size=1" } else { "" }
        ),
        "image" => format!("/images/{name}/json"),
        "network" => format!("/networks/{}", http::encode(name)),
        _ => format!("/volumes/{}", http::encode(name)),
    }
}

/// Fetches one object; `Ok(None)` when no object of the kinds tried has that name.
fn find(
    client: &Client,
    kind: Option<&str>,
    name: &str,
    size: bool,
) -> anyhow::Result<Option<Value>> {
    let kinds: &[&str] = match kind {
        Some("container") => &["container"],
        Some("image") => &["image"],
        Some("network") => &["network"],
        Some("volume") => &["volume"],
        Some(other) => anyhow::bail!("\"{other}\" is not a valid value for --type"),
        None => &["container", "image", "network", "volume"],
    };
    for k in kinds {
        match client.get(&path_for(k, name, size)) {
            Ok(v) => return Ok(Some(v)),
            Err(e) if api::is_not_found(&e) => continue,
            // A daemon without that route (older berthd without networks) is "not this kind".
            Err(e) if kind.is_none() && e.downcast_ref::<api::DaemonError>().is_some() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Docker's indented JSON (four spaces).
pub fn pretty(v: &Value) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(buf)?)
}

pub fn inspect(client: &Client, a: &InspectArgs) -> anyhow::Result<i32> {
    let tpl = match a.format.as_deref() {
        Some(f) if !f.is_empty() && f != "json" => Some(Template::parse(&unescape(f))?),
        _ => None,
    };
    let mut found = Vec::new();
    let mut status = 0;
    for n in &a.names {
        match find(client, a.kind.as_deref(), n, a.size)? {
            Some(v) => found.push(v),
            None => {
                status = 1;
                let what = a.kind.as_deref().unwrap_or("object");
                eprintln!("Error: No such {what}: {n}");
            }
        }
    }
    match tpl {
        Some(t) => {
            for v in &found {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", pretty(&Value::Array(found))?),
    }
    Ok(status)
}
