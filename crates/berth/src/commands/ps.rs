//! `ps`: the container list as Docker prints it (12-character ids, command quoted and cut to 20
//! characters, "Up 3 minutes", ports, names without their `/`), with `-a`, `-q`, `-s`, `-n`,
//! `-l`, `--no-trunc`, `--filter` and `--format`.

use clap::Args;
use serde_json::{Map, Value, json};

use crate::api::{self, Client, query};
use crate::format::{Lister, ellipsis, short_id};
use crate::units;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Pretty-print containers using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Go's `time.Unix(t, 0).UTC().String()`.
pub fn go_time(unix: i64) -> String {
    let s = berth_clock::rfc3339(unix, 0);
    format!("{} {} +0000 UTC", &s[..10], &s[11..19])
}

/// Docker's port column: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn ports(c: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in c
        .get("Ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let private = api::i(p, "PrivatePort");
        let proto = api::s(p, "Type");
        let s = match (api::s(p, "IP"), p.get("PublicPort").and_then(Value::as_i64)) {
            (ip, Some(public)) if public != 0 => format!("{ip}:{public}->{private}/{proto}"),
            _ => format!("{private}/{proto}"),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(", ")
}

fn row(c: &Value, trunc: bool) -> Value {
    let id = api::s(c, "Id");
    let image = api::s(c, "Image");
    let image = if trunc && image.starts_with("sha256:") {
        short_id(image)
    } else {
        image.to_string()
    };
    let command = api::s(c, "Command");
    let command = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    let names: Vec<String> = c
        .get("Names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let created = api::i(c, "Created");
    let mut labels: Vec<String> = c
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let mounts: Vec<String> = c
        .get("Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let n = if api::s(m, "Name").is_empty() {
                api::s(m, "Source")
            } else {
                api::s(m, "Name")
            };
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_string()
            }
        })
        .collect();
    let mut networks: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let size = if c.get("SizeRw").is_some() || c.get("SizeRootFs").is_some() {
        format!(
            "{} (virtual {})",
            units::human_size3(api::i(c, "SizeRw")),
            units::human_size3(api::i(c, "SizeRootFs"))
        )
    } else {
        String::new()
    };
    let local_volumes = c.get("Mounts").and_then(Value::as_array).map_or(0, |m| {
        m.iter().filter(|m| api::s(m, "Driver") == "local").count()
    });
    let mut m = Map::new();
    m.insert(
        "ID".into(),
        json!(if trunc { short_id(id) } else { id.to_string() }),
    );
    m.insert("Image".into(), json!(image));
    m.insert(
        "Command".into(),
        Value::String(serde_json::to_string(&command).unwrap_or_default()),
    );
    m.insert("CreatedAt".into(), json!(go_time(created)));
    m.insert("RunningFor".into(), json!(units::ago(created)));
    m.insert("Ports".into(), json!(ports(c)));
    m.insert("State".into(), json!(api::s(c, "State")));
    m.insert("Status".into(), json!(api::s(c, "Status")));
    m.insert("Size".into(), json!(size));
    m.insert("Names".into(), json!(names.join(",")));
    m.insert("Labels".into(), json!(labels.join(",")));
    m.insert("Mounts".into(), json!(mounts.join(",")));
    m.insert("Networks".into(), json!(networks.join(",")));
    m.insert("LocalVolumes".into(), json!(local_volumes.to_string()));
    Value::Object(m)
}

pub fn ps(client: &Client, a: &PsArgs) -> anyhow::Result<i32> {
    let limit = if a.latest { 1 } else { a.last };
    let format = a.format.clone().unwrap_or_default();
    // Docker asks for sizes when the format shows them.
    let size = a.size || format.contains(".Size");
    let q = query(&[
        ("all", (a.all || limit > 0).then(|| "1".into())),
        ("limit", (limit > 0).then(|| limit.to_string())),
        ("size", size.then(|| "1".into())),
        ("filters", api::filters_json(&a.filter)?),
    ]);
    let list = client.get(&format!("/containers/json{q}"))?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| row(c, !a.no_trunc))
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let out = Lister {
        default,
        headers: HEADERS,
        format: &format,
        quiet: a.quiet,
        quiet_field: "ID",
    }
    .render(&rows)?;
    print!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_like_dockers() {
        let c = json!({
            "Id": "0123456789abcdef0123", "Image": "busybox", "Command": "sleep 1000000000000000000",
            "Created": 0, "Names": ["/web"], "Status": "Up 3 minutes", "State": "running",
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}]
        });
        let r = row(&c, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Command"], "\"sleep 1000000000000…\"");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp, 443/tcp");
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
