//! Container lifecycle commands: start (with `-a`), stop, restart, kill, rm, wait, pause,
//! unpause, rename, update and prune. Listing lives in `ps.rs`, the per-container views (logs,
//! top, stats, port, diff, export, cp) in `container_views.rs`; both are re-exported here.

use clap::Args;
use serde_json::{Value, json};

use crate::api::{self, Client, query};
use crate::commands::create::ctr_path;
use crate::commands::run::{Attached, start_or_exit};
use crate::status::Exit;

pub use crate::commands::container_views::{
    ExportArgs, LogsArgs, One, PortArgs, StatsArgs, TopArgs,
};
pub use crate::commands::copy::CpArgs;
pub use crate::commands::ps::PsArgs;

/// Runs `f` on every name; prints what it returns; errors go to stderr and make the status 1
/// (as the docker CLI does for multi-container commands).
pub fn for_each(
    names: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<i32> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(Some(out)) => println!("{out}"),
            Ok(None) => {}
            Err(e) => {
                if e.chain()
                    .any(|c| c.downcast_ref::<crate::http::ConnectError>().is_some())
                {
                    return Err(e);
                }
                failed = true;
                eprintln!("{}", crate::commands::error_line(&e));
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Args, Debug)]
pub struct Names {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (only ctrl-p,ctrl-q is supported)
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn start(client: &Client, a: &StartArgs) -> anyhow::Result<i32> {
    if a.attach || a.interactive {
        anyhow::ensure!(
            a.containers.len() == 1,
            "you cannot start and attach multiple containers at once"
        );
        let info = client.get(&ctr_path(&a.containers[0], "json"))?;
        let id = api::s(&info, "Id").to_string();
        let tty = info
            .pointer("/Config/Tty")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let open = info
            .pointer("/Config/OpenStdin")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let attached = Attached {
            id: id.clone(),
            tty,
            stdin: a.interactive && open,
        };
        return attached.run(client, "next-exit", || {
            start_or_exit(client, &id, false, "")
        });
    }
    let mut failed = Vec::new();
    let code = for_each(&a.containers, |n| {
        client.post(&ctr_path(n, "start"), None).inspect_err(|_| {
            failed.push(n.to_string());
        })?;
        Ok(Some(n.to_string()))
    })?;
    if !failed.is_empty() {
        // The docker CLI's closing line after the per-container errors.
        eprintln!("Error: failed to start containers: {}", failed.join(", "));
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container (default: its stop signal)
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Seconds to wait for stop before killing it
    #[arg(short = 't', long = "time")]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn stop(client: &Client, a: &StopArgs, action: &str) -> anyhow::Result<i32> {
    let q = query(&[
        ("t", a.time.map(|t| t.to_string())),
        ("signal", a.signal.clone()),
    ]);
    for_each(&a.containers, |n| {
        client.post(&format!("{}{q}", ctr_path(n, action)), None)?;
        Ok(Some(n.to_string()))
    })
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn kill(client: &Client, a: &KillArgs) -> anyhow::Result<i32> {
    let q = query(&[("signal", Some(a.signal.clone()))]);
    for_each(&a.containers, |n| {
        client.post(&format!("{}{q}", ctr_path(n, "kill")), None)?;
        Ok(Some(n.to_string()))
    })
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn rm(client: &Client, a: &RmArgs) -> anyhow::Result<i32> {
    let q = query(&[
        ("force", a.force.then(|| "1".into())),
        ("v", a.volumes.then(|| "1".into())),
        ("link", a.link.then(|| "1".into())),
    ]);
    for_each(&a.containers, |n| {
        client.delete(&format!("{}{q}", ctr_path(n, "")))?;
        Ok(Some(n.to_string()))
    })
}

pub fn wait(client: &Client, a: &Names) -> anyhow::Result<i32> {
    for_each(&a.containers, |n| {
        let v = client.post(&ctr_path(n, "wait"), None)?;
        Ok(Some(api::i(&v, "StatusCode").to_string()))
    })
}

pub fn pause(client: &Client, a: &Names, action: &str) -> anyhow::Result<i32> {
    for_each(&a.containers, |n| {
        client.post(&ctr_path(n, action), None)?;
        Ok(Some(n.to_string()))
    })
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

pub fn rename(client: &Client, a: &RenameArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        !a.new_name.trim().is_empty(),
        "Neither old nor new names may be empty"
    );
    client.post(
        &format!(
            "{}{}",
            ctr_path(&a.container, "rename"),
            query(&[("name", Some(a.new_name.clone()))])
        ),
        None,
    )?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn update(client: &Client, a: &UpdateArgs) -> anyhow::Result<i32> {
    let mut body = json!({});
    if let Some(m) = &a.memory {
        body["Memory"] = Value::from(crate::units::ram_in_bytes(m)?);
    }
    if let Some(c) = a.cpus {
        body["NanoCpus"] = Value::from((c * 1e9) as i64);
    }
    if let Some(s) = a.cpu_shares {
        body["CpuShares"] = Value::from(s);
    }
    if let Some(p) = a.pids_limit {
        body["PidsLimit"] = Value::from(p);
    }
    if let Some(r) = &a.restart {
        let (name, n) = r.split_once(':').unwrap_or((r, "0"));
        body["RestartPolicy"] =
            json!({"Name": name, "MaximumRetryCount": n.parse::<i64>().unwrap_or(0)});
    }
    for_each(&a.containers, |n| {
        let v = client.post(&ctr_path(n, "update"), Some(&body))?;
        for w in v
            .get("Warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            eprintln!("WARNING: {}", w.as_str().unwrap_or_default());
        }
        Ok(Some(n.to_string()))
    })
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

/// Asks "Are you sure you want to continue? [y/N]" unless `force`.
pub fn confirm(warning: &str, force: bool) -> bool {
    if force {
        return true;
    }
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

pub fn prune(client: &Client, a: &PruneArgs) -> anyhow::Result<i32> {
    if !confirm("WARNING! This will remove all stopped containers.", a.force) {
        return Ok(0);
    }
    let q = query(&[("filters", api::filters_json(&a.filter)?)]);
    let v = client.post(&format!("/containers/prune{q}"), None)?;
    let ids: Vec<&str> = v
        .get("ContainersDeleted")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in ids {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::units::human_size(api::i(&v, "SpaceReclaimed"))
    );
    Ok(0)
}

/// `Exit` with status 1 and a message (used where docker prints a client-side error).
pub fn fail(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        message: Some(msg.into()),
    }
    .into()
}
