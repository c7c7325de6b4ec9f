//! `version`, `info`, `system df|prune|events|info`, `events`, and `completion`.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api::{self, Client, query};
use crate::commands::containers::confirm;
use crate::format::{Lister, tabwrite, unescape};
use crate::template::Template;
use crate::units;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum SystemCmd {
    /// Find (and with --fix remove) what crashed operations left behind (Berth)
    Check(CheckArgs),
    /// Show docker disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Remove unused data
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn client_info() -> Value {
    json!({
        "Platform": {"Name": "Berth"},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "DefaultAPIVersion": berth_api::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "Context": "default",
    })
}

pub fn version(client: &Client, a: &VersionArgs) -> anyhow::Result<i32> {
    let cl = client_info();
    let server = client.get("/version");
    if let Some(f) = a.format.as_deref() {
        let data = json!({"Client": cl, "Server": server.as_ref().ok()});
        let out = Template::parse(&unescape(f))?.render(&data)?;
        println!("{out}");
        return server.map(|_| 0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Client: Berth")?;
    writeln!(out, " Version:           {}", api::s(&cl, "Version"))?;
    writeln!(out, " API version:       {}", api::s(&cl, "ApiVersion"))?;
    writeln!(
        out,
        " OS/Arch:           {}/{}",
        api::s(&cl, "Os"),
        api::s(&cl, "Arch")
    )?;
    writeln!(out, " Context:           default")?;
    let s = server?;
    writeln!(out)?;
    let name = s
        .pointer("/Platform/Name")
        .and_then(Value::as_str)
        .unwrap_or("");
    writeln!(out, "Server: {name}")?;
    writeln!(out, " Engine:")?;
    writeln!(out, "  Version:          {}", api::s(&s, "Version"))?;
    writeln!(
        out,
        "  API version:      {} (minimum version {})",
        api::s(&s, "ApiVersion"),
        api::s(&s, "MinAPIVersion")
    )?;
    if !api::s(&s, "GoVersion").is_empty() {
        writeln!(out, "  Go version:       {}", api::s(&s, "GoVersion"))?;
    }
    if !api::s(&s, "GitCommit").is_empty() {
        writeln!(out, "  Git commit:       {}", api::s(&s, "GitCommit"))?;
    }
    writeln!(
        out,
        "  OS/Arch:          {}/{}",
        api::s(&s, "Os"),
        api::s(&s, "Arch")
    )?;
    writeln!(
        out,
        "  Experimental:     {}",
        s.get("Experimental")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    )?;
    for c in s
        .get("Components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let n = api::s(c, "Name");
        if n == "Engine" {
            continue;
        }
        writeln!(out, " {n}:")?;
        writeln!(out, "  Version:          {}", api::s(c, "Version"))?;
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

pub fn info(client: &Client, a: &InfoArgs) -> anyhow::Result<i32> {
    let i = client.get("/info")?;
    if let Some(f) = a.format.as_deref() {
        let f = if f == "json" { "{{json .}}" } else { f };
        println!("{}", Template::parse(&unescape(f))?.render(&i)?);
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let g = |k: &str| match i.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    writeln!(out, "Client:")?;
    writeln!(out, " Context:    default")?;
    writeln!(out, " Debug Mode: false")?;
    writeln!(out)?;
    writeln!(out, "Server:")?;
    writeln!(out, " Containers: {}", g("Containers"))?;
    writeln!(out, "  Running: {}", g("ContainersRunning"))?;
    writeln!(out, "  Paused: {}", g("ContainersPaused"))?;
    writeln!(out, "  Stopped: {}", g("ContainersStopped"))?;
    writeln!(out, " Images: {}", g("Images"))?;
    writeln!(out, " Server Version: {}", g("ServerVersion"))?;
    writeln!(out, " Storage Driver: {}", g("Driver"))?;
    writeln!(out, " Logging Driver: {}", g("LoggingDriver"))?;
    writeln!(out, " Cgroup Driver: {}", g("CgroupDriver"))?;
    writeln!(out, " Cgroup Version: {}", g("CgroupVersion"))?;
    if let Some(rt) = i.get("Runtimes").and_then(Value::as_object) {
        let mut names: Vec<&String> = rt.keys().collect();
        names.sort();
        writeln!(
            out,
            " Runtimes: {}",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )?;
    }
    writeln!(out, " Default Runtime: {}", g("DefaultRuntime"))?;
    writeln!(out, " Kernel Version: {}", g("KernelVersion"))?;
    writeln!(out, " Operating System: {}", g("OperatingSystem"))?;
    writeln!(out, " OSType: {}", g("OSType"))?;
    writeln!(out, " Architecture: {}", g("Architecture"))?;
    writeln!(out, " CPUs: {}", g("NCPU"))?;
    writeln!(
        out,
        " Total Memory: {}",
        units::bytes_size(api::i(&i, "MemTotal") as f64)
    )?;
    writeln!(out, " Name: {}", g("Name"))?;
    writeln!(out, " ID: {}", g("ID"))?;
    writeln!(out, " Docker Root Dir: {}", g("DockerRootDir"))?;
    writeln!(out, " Debug Mode: {}", g("Debug"))?;
    writeln!(out, " Experimental: {}", g("ExperimentalBuild"))?;
    writeln!(out, " Live Restore Enabled: {}", g("LiveRestoreEnabled"))?;
    for w in i
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Pretty-print using a Go template
    #[arg(long)]
    pub format: Option<String>,
}

fn pct(part: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", units::human_size(part), part * 100 / total)
    } else {
        units::human_size(part)
    }
}

pub fn df(client: &Client, a: &DfArgs) -> anyhow::Result<i32> {
    let v = client.get("/system/df")?;
    let arr = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let cache = arr("BuildCache");
    let img_size: i64 = if v.get("LayersSize").is_some() {
        api::i(&v, "LayersSize")
    } else {
        images.iter().map(|i| api::i(i, "Size")).sum()
    };
    let img_used: i64 = images
        .iter()
        .filter(|i| api::i(i, "Containers") > 0)
        .map(|i| api::i(i, "Size"))
        .sum();
    let ctr_size: i64 = containers.iter().map(|c| api::i(c, "SizeRw")).sum();
    let ctr_idle: i64 = containers
        .iter()
        .filter(|c| api::s(c, "State") != "running")
        .map(|c| api::i(c, "SizeRw"))
        .sum();
    let vol_size = |x: &Value| {
        x.pointer("/UsageData/Size")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0)
    };
    let vol_refs = |x: &Value| {
        x.pointer("/UsageData/RefCount")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let vol_total: i64 = volumes.iter().map(vol_size).sum();
    let vol_idle: i64 = volumes
        .iter()
        .filter(|x| vol_refs(x) == 0)
        .map(vol_size)
        .sum();
    let cache_size: i64 = cache.iter().map(|c| api::i(c, "Size")).sum();
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": images.iter().filter(|i| api::i(i, "Containers") > 0).count().to_string(), "Size": units::human_size(img_size), "Reclaimable": pct((img_size - img_used).max(0), img_size)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": containers.iter().filter(|c| api::s(c, "State") == "running").count().to_string(), "Size": units::human_size(ctr_size), "Reclaimable": pct(ctr_idle, ctr_size)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": volumes.iter().filter(|x| vol_refs(x) > 0).count().to_string(), "Size": units::human_size(vol_total), "Reclaimable": pct(vol_idle, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": "0", "Size": units::human_size(cache_size), "Reclaimable": units::human_size(cache_size)}),
    ];
    let out = Lister {
        default: "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        headers: &[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ],
        format: a.format.as_deref().unwrap_or(""),
        quiet: false,
        quiet_field: "Type",
    }
    .render(&rows)?;
    print!("{out}");
    if a.verbose {
        let mut t = String::from("\nImages space usage:\n\n");
        let mut tab = String::from("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tCONTAINERS\n");
        for i in &images {
            let tag = i
                .get("RepoTags")
                .and_then(|t| t.get(0))
                .and_then(Value::as_str)
                .unwrap_or("<none>:<none>");
            let (r, tg) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
            tab.push_str(&format!(
                "{r}\t{tg}\t{}\t{}\t{}\t{}\n",
                crate::format::short_id(api::s(i, "Id")),
                units::ago(api::i(i, "Created")),
                units::human_size(api::i(i, "Size")),
                api::i(i, "Containers")
            ));
        }
        t.push_str(&tabwrite(&tab));
        print!("{t}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Remove what is found
    #[arg(long)]
    pub fix: bool,
}

/// `system check [--fix]`: the daemon's leftovers in a table; exit status 1 when any is found.
pub fn check(client: &Client, a: &CheckArgs) -> anyhow::Result<i32> {
    let path = if a.fix {
        "/system/check?fix=1"
    } else {
        "/system/check"
    };
    let found = client.post(path, None)?;
    let found = found.as_array().cloned().unwrap_or_default();
    if found.is_empty() {
        println!("No leftovers found.");
        return Ok(0);
    }
    let mut table = String::from("KIND\tOBJECT\tFIXED\tDETAIL\n");
    for f in &found {
        let fixed = if f["Fixed"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        };
        table.push_str(&format!(
            "{}\t{}\t{fixed}\t{}\n",
            api::s(f, "Kind"),
            api::s(f, "Object"),
            api::s(f, "Detail")
        ));
    }
    print!("{}", tabwrite(&table));
    Ok(1)
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Prune volumes
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. 'label=<key>=<value>')
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn prune(client: &Client, a: &PruneArgs) -> anyhow::Result<i32> {
    let mut warn = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if a.volumes {
        warn.push_str("  - all volumes not used by at least one container\n");
    }
    warn.push_str(if a.all {
        "  - all images without at least one container associated to them"
    } else {
        "  - all dangling images"
    });
    if !confirm(&warn, a.force) {
        return Ok(0);
    }
    let f = api::filters_json(&a.filter)?;
    let mut total = 0;
    let list = |v: &Value, k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let c = client.post(
        &format!("/containers/prune{}", query(&[("filters", f.clone())])),
        None,
    )?;
    total += api::i(&c, "SpaceReclaimed");
    let ids = list(&c, "ContainersDeleted");
    if !ids.is_empty() {
        println!("Deleted Containers:\n{}\n", ids.join("\n"));
    }
    match client.post(
        &format!("/networks/prune{}", query(&[("filters", f.clone())])),
        None,
    ) {
        Ok(n) => {
            let ids = list(&n, "NetworksDeleted");
            if !ids.is_empty() {
                println!("Deleted Networks:\n{}\n", ids.join("\n"));
            }
        }
        Err(e) if api::is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    if a.volumes {
        let v = client.post(
            &format!("/volumes/prune{}", query(&[("filters", f.clone())])),
            None,
        )?;
        total += api::i(&v, "SpaceReclaimed");
        let ids = list(&v, "VolumesDeleted");
        if !ids.is_empty() {
            println!("Deleted Volumes:\n{}\n", ids.join("\n"));
        }
    }
    let mut img_filters = a.filter.clone();
    img_filters.push(format!("dangling={}", !a.all));
    let i = client.post(
        &format!(
            "/images/prune{}",
            query(&[("filters", api::filters_json(&img_filters)?)])
        ),
        None,
    )?;
    total += api::i(&i, "SpaceReclaimed");
    crate::commands::images::print_deleted_images(&i);
    println!("Total reclaimed space: {}", units::human_size(total));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long)]
    pub format: Option<String>,
}

pub fn events(client: &Client, a: &EventsArgs) -> anyhow::Result<i32> {
    let q = query(&[
        (
            "since",
            a.since.as_deref().map(units::timestamp_arg).transpose()?,
        ),
        (
            "until",
            a.until.as_deref().map(units::timestamp_arg).transpose()?,
        ),
        ("filters", api::filters_json(&a.filter)?),
    ]);
    let tpl = match a.format.as_deref() {
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(&unescape(f))?),
        None => None,
    };
    let mut resp = client.send("GET", &format!("/events{q}"), crate::http::Body::Empty)?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = resp.next_line()? {
        let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        match &tpl {
            Some(t) => writeln!(out, "{}", t.render(&ev)?)?,
            None => writeln!(out, "{}", event_line(&ev))?,
        }
        out.flush()?;
    }
    Ok(0)
}

/// Docker's default event line: `<time> <type> <action> <id> (k=v, …)`.
pub fn event_line(ev: &Value) -> String {
    let nanos = api::i(ev, "timeNano");
    let time = if nanos > 0 {
        berth_clock::rfc3339(
            nanos.div_euclid(1_000_000_000),
            nanos.rem_euclid(1_000_000_000) as u32,
        )
    } else {
        berth_clock::rfc3339(api::i(ev, "time"), 0)
    };
    let kind = api::s(ev, "Type");
    let action = api::s(ev, "Action");
    let actor = ev.get("Actor").cloned().unwrap_or(Value::Null);
    let mut attrs: Vec<String> = actor
        .get("Attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    let mut s = format!("{time} {kind} {action} {}", api::s(&actor, "ID"));
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// bash, zsh or fish
    pub shell: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_read_like_dockers() {
        let ev = json!({"Type": "container", "Action": "start", "timeNano": 1_000_000_001i64,
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}}});
        assert_eq!(
            event_line(&ev),
            "1970-01-01T00:00:01.000000001Z container start abc (image=busybox, name=web)"
        );
    }
}
