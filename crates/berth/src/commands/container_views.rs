//! Views of one container: `logs` (follow, since/until, timestamps, tail), `top`, `stats`
//! (Docker's CPU% and memory arithmetic), `port`, `diff`, `export`, and `cp` as tar streams
//! (`-` on one side, as `docker cp` accepts).

use std::io::Write;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::api::{self, Client, query};
use crate::commands::create::ctr_path;
use crate::format::{short_id, tabwrite};
use crate::http::Body;
use crate::stream;
use crate::units;

#[derive(Args, Debug)]
pub struct One {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    pub container: String,
}

pub fn logs(client: &Client, a: &LogsArgs) -> anyhow::Result<i32> {
    let info = client.get(&ctr_path(&a.container, "json"))?;
    let tty = info
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let q = query(&[
        ("stdout", Some("1".into())),
        ("stderr", Some("1".into())),
        ("follow", a.follow.then(|| "1".into())),
        (
            "since",
            a.since.as_deref().map(units::timestamp_arg).transpose()?,
        ),
        (
            "until",
            a.until.as_deref().map(units::timestamp_arg).transpose()?,
        ),
        ("timestamps", a.timestamps.then(|| "1".into())),
        ("details", a.details.then(|| "1".into())),
        ("tail", Some(a.tail.clone())),
    ]);
    let mut resp = client.send(
        "GET",
        &format!("{}{q}", ctr_path(&a.container, "logs")),
        Body::Empty,
    )?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    if tty {
        stream::copy_raw(&mut resp, &mut stdout.lock())?;
    } else {
        stream::demux(&mut resp, &mut stdout.lock(), &mut stderr.lock())?;
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn top(client: &Client, a: &TopArgs) -> anyhow::Result<i32> {
    let q = query(&[(
        "ps_args",
        (!a.ps_args.is_empty()).then(|| a.ps_args.join(" ")),
    )]);
    let v = client.get(&format!("{}{q}", ctr_path(&a.container, "top")))?;
    let mut text = String::new();
    let titles: Vec<&str> = v
        .get("Titles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    text.push_str(&titles.join("\t"));
    text.push('\n');
    for p in v
        .get("Processes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cells: Vec<&str> = p
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite(&text));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print stats using a Go template
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

/// One `docker stats` row from a stats sample.
fn stats_row(name: &str, id: &str, s: &Value, trunc: bool) -> Value {
    let f = |p: &str| s.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let cpu_delta =
        f("/cpu_stats/cpu_usage/total_usage") - f("/precpu_stats/cpu_usage/total_usage");
    let sys_delta = f("/cpu_stats/system_cpu_usage") - f("/precpu_stats/system_cpu_usage");
    let mut cpus = f("/cpu_stats/online_cpus");
    if cpus == 0.0 {
        cpus = s
            .pointer("/cpu_stats/cpu_usage/percpu_usage")
            .and_then(Value::as_array)
            .map_or(1.0, |a| a.len() as f64);
    }
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let usage = f("/memory_stats/usage");
    let cache = s
        .pointer("/memory_stats/stats/inactive_file")
        .or_else(|| s.pointer("/memory_stats/stats/total_inactive_file"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mem = if cache < usage { usage - cache } else { usage };
    let limit = f("/memory_stats/limit");
    let mem_pct = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in s
        .get("networks")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += api::i(n, "rx_bytes") as f64;
        tx += api::i(n, "tx_bytes") as f64;
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match api::s(e, "op").to_lowercase().as_str() {
            "read" => rd += api::i(e, "value") as f64,
            "write" => wr += api::i(e, "value") as f64,
            _ => {}
        }
    }
    let hs = |b: f64| units::human_size(b as i64);
    serde_json::json!({
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Container": name,
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", units::bytes_size(mem), units::bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", hs(rx), hs(tx)),
        "BlockIO": format!("{} / {}", hs(rd), hs(wr)),
        "PIDs": api::i(s.get("pids_stats").unwrap_or(&Value::Null), "current").to_string(),
    })
}

pub fn stats(client: &Client, a: &StatsArgs) -> anyhow::Result<i32> {
    let names: Vec<String> = if a.containers.is_empty() {
        let list = client.get(&format!(
            "/containers/json{}",
            if a.all { "?all=1" } else { "" }
        ))?;
        list.as_array()
            .into_iter()
            .flatten()
            .map(|c| api::s(c, "Id").to_string())
            .collect()
    } else {
        a.containers.clone()
    };
    let format = a.format.clone().unwrap_or_default();
    loop {
        let mut rows = Vec::new();
        for n in &names {
            let s = client.get(&format!("{}?stream=0", ctr_path(n, "stats")))?;
            let name = api::s(&s, "name").trim_start_matches('/').to_string();
            let id = api::s(&s, "id").to_string();
            rows.push(stats_row(&name, &id, &s, !a.no_trunc));
        }
        let out = crate::format::Lister {
            default: "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
            headers: &[
                ("ID", "CONTAINER ID"),
                ("Name", "NAME"),
                ("Container", "CONTAINER"),
                ("CPUPerc", "CPU %"),
                ("MemUsage", "MEM USAGE / LIMIT"),
                ("MemPerc", "MEM %"),
                ("NetIO", "NET I/O"),
                ("BlockIO", "BLOCK I/O"),
                ("PIDs", "PIDS"),
            ],
            format: &format,
            quiet: false,
            quiet_field: "ID",
        }
        .render(&rows)?;
        if a.no_stream {
            print!("{out}");
            return Ok(0);
        }
        print!("\x1b[2J\x1b[H{out}");
        std::io::stdout().flush()?;
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

pub fn port(client: &Client, a: &PortArgs) -> anyhow::Result<i32> {
    let info = client.get(&ctr_path(&a.container, "json"))?;
    let ports = info
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort();
    let mut found = false;
    for k in keys {
        if want.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in ports[k].as_array().into_iter().flatten() {
            found = true;
            let ip = api::s(b, "HostIp");
            let hp = api::s(b, "HostPort");
            let addr = if ip.contains(':') {
                format!("[{ip}]:{hp}")
            } else {
                format!("{ip}:{hp}")
            };
            if want.is_some() {
                println!("{addr}");
            } else {
                println!("{k} -> {addr}");
            }
        }
    }
    if let (Some(w), false) = (&want, found) {
        return Err(crate::commands::containers::fail(format!(
            "Error: No public port '{w}' published for {}",
            a.container
        )));
    }
    Ok(0)
}

pub fn diff(client: &Client, a: &One) -> anyhow::Result<i32> {
    let v = client.get(&ctr_path(&a.container, "changes"))?;
    for c in v.as_array().into_iter().flatten() {
        let kind = match api::i(c, "Kind") {
            0 => "C",
            1 => "A",
            _ => "D",
        };
        println!("{kind} {}", api::s(c, "Path"));
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    pub container: String,
}

/// Copies a response body to `-o FILE` or stdout (refusing a terminal, as docker does).
pub fn body_to_output(
    mut resp: crate::http::Response,
    output: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            std::io::copy(&mut resp, &mut f)?;
        }
        None => {
            if crate::term::stdout_is_tty() {
                return Err(crate::commands::containers::fail(format!(
                    "cowardly refusing to save {what} to a terminal. Use the -o flag or redirect"
                )));
            }
            std::io::copy(&mut resp, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

pub fn export(client: &Client, a: &ExportArgs) -> anyhow::Result<i32> {
    let resp = client.send("GET", &ctr_path(&a.container, "export"), Body::Empty)?;
    body_to_output(resp, a.output.as_deref(), "the export")?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// CONTAINER
    pub container: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

/// `berth commit`: prints the new image's id.
pub fn commit(client: &Client, a: &CommitArgs) -> anyhow::Result<i32> {
    let (repo, tag) = crate::commands::images::repo_and_tag(a.reference.as_deref());
    let mut q: Vec<(&str, Option<String>)> = vec![
        ("container", Some(a.container.clone())),
        ("repo", repo),
        ("tag", tag),
        ("comment", a.message.clone()),
        ("author", a.author.clone()),
        ("pause", Some(a.pause.to_string())),
    ];
    for c in &a.change {
        q.push(("changes", Some(c.clone())));
    }
    let v = client.post(&format!("/commit{}", query(&q)), None)?;
    println!("{}", api::s(&v, "Id"));
    Ok(0)
}
