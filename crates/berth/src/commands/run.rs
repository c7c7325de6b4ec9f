//! `run`: create (pulling a missing image), then — unless `-d` — attach before start, register
//! the wait (`next-exit`, or `removed` with `--rm`) before start too, start, relay the streams
//! (raw terminal and resizes for `-it`, ctrl-p ctrl-q to detach) and exit with the container's
//! status. A start failure exits 125, or 126/127 when the command cannot be invoked or found.

use clap::Args;
use serde_json::Value;

use crate::api::{self, Client, DaemonError};
use crate::commands::create::{CreateArgs, create_container, ctr_path};
use crate::http::Response;
use crate::status::{Exit, start_error_code};
use crate::stream::{Ended, hijack};
use crate::term;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container (only ctrl-p,ctrl-q is supported)
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process (accepted; signals are not proxied)
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// The output of an attached container: where its session ends, what it exits with.
pub struct Attached {
    pub id: String,
    pub tty: bool,
    pub stdin: bool,
}

impl Attached {
    /// Attaches, registers the wait, starts (with `start`), relays and returns the exit status.
    pub fn run(
        &self,
        client: &Client,
        condition: &str,
        start: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<i32> {
        let path = format!(
            "{}?stream=1&stdout=1&stderr=1{}",
            ctr_path(&self.id, "attach"),
            if self.stdin { "&stdin=1" } else { "" }
        );
        let session = hijack(client, &path, None)?;
        let wait = client.send(
            "POST",
            &format!("{}?condition={condition}", ctr_path(&self.id, "wait")),
            crate::http::Body::Empty,
        )?;
        start()?;
        let raw = if self.tty && self.stdin && term::stdin_is_tty() {
            Some(term::RawMode::enable()?)
        } else {
            None
        };
        let _watch = self
            .tty
            .then(|| resize_on_change(client, &ctr_path(&self.id, "resize")));
        let ended = session.pump(self.tty, self.stdin);
        drop(raw);
        if ended? == Ended::Detached {
            eprintln!();
            return Ok(0);
        }
        exit_status(wait)
    }
}

/// Sends the terminal's size now and whenever it changes.
pub fn resize_on_change(client: &Client, resize_path: &str) -> term::ResizeWatcher {
    let send = {
        let host = client.host_str.clone();
        let path = resize_path.to_string();
        move |h: u16, w: u16| {
            if let Ok(c) = Client::new(&host) {
                let _ = c.post(&format!("{path}?h={h}&w={w}"), None);
            }
        }
    };
    if let Some((h, w)) = term::size() {
        send(h, w);
    }
    term::ResizeWatcher::start(send)
}

/// Reads `{"StatusCode": N, "Error": …}` from a wait response.
pub fn exit_status(wait: Response) -> anyhow::Result<i32> {
    let v = api::json_of(wait)?;
    if let Some(m) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        if !m.is_empty() {
            eprintln!("Error waiting for container: {m}");
        }
    }
    Ok(i32::try_from(api::i(&v, "StatusCode")).unwrap_or(1))
}

/// Starts a created container, mapping a failure to Docker's 125/126/127.
pub fn start_or_exit(client: &Client, id: &str, remove: bool, prefix: &str) -> anyhow::Result<()> {
    match client.post(&ctr_path(id, "start"), None) {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = e
                .downcast_ref::<DaemonError>()
                .map_or_else(|| format!("{e:#}"), |d| d.to_string());
            if remove {
                let _ = client.delete(&format!("{}?force=1&v=1", ctr_path(id, "")));
            }
            Err(Exit {
                code: start_error_code(&msg),
                message: Some(format!("{prefix}{msg}")),
            }
            .into())
        }
    }
}

pub fn run(client: &Client, a: &RunArgs) -> anyhow::Result<i32> {
    let c = &a.create;
    if let Some(k) = &a.detach_keys {
        anyhow::ensure!(
            k == "ctrl-p,ctrl-q",
            "only the detach keys ctrl-p,ctrl-q are supported"
        );
    }
    if c.tty && c.interactive && !a.detach && !term::stdin_is_tty() {
        return Err(Exit {
            code: 1,
            message: Some("the input device is not a TTY".into()),
        }
        .into());
    }
    let id = create_container(client, c, !a.detach)?;
    if a.detach {
        start_or_exit(client, &id, c.rm, "berth: ")?;
        println!("{id}");
        return Ok(0);
    }
    let attached = Attached {
        id: id.clone(),
        tty: c.tty,
        stdin: c.interactive,
    };
    let condition = if c.rm { "removed" } else { "next-exit" };
    attached.run(client, condition, || {
        start_or_exit(client, &id, c.rm, "berth: ")
    })
}
