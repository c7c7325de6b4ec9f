//! `exec` (an exec instance started over a hijacked connection, exit code from its inspect) and
//! `attach` (to a running container, until it exits or the user detaches).

use clap::Args;
use serde_json::{Value, json};

use crate::api::{self, Client};
use crate::commands::create::ctr_path;
use crate::commands::run::{Attached, resize_on_change};
use crate::status::Exit;
use crate::stream::{Ended, hijack};
use crate::term;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Override the key sequence for detaching a container (only ctrl-p,ctrl-q is supported)
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

pub fn exec(client: &Client, a: &ExecArgs) -> anyhow::Result<i32> {
    let container = &a.args[0];
    if let Some(k) = &a.detach_keys {
        anyhow::ensure!(
            k == "ctrl-p,ctrl-q",
            "only the detach keys ctrl-p,ctrl-q are supported"
        );
    }
    let env = crate::commands::create::env_list(&a.env, &a.env_file)?;
    if a.tty && a.interactive && !a.detach && !term::stdin_is_tty() {
        return Err(Exit {
            code: 1,
            message: Some("the input device is not a TTY".into()),
        }
        .into());
    }
    let attach = !a.detach;
    let body = json!({
        "AttachStdin": a.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": a.tty,
        "Cmd": &a.args[1..],
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
    });
    let created = client.post(&ctr_path(container, "exec"), Some(&body))?;
    let id = api::s(&created, "Id").to_string();
    anyhow::ensure!(!id.is_empty(), "the daemon returned no exec id");
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    let start_path = format!("/exec/{id}/start");
    if a.detach {
        client.post(&start_path, Some(&start))?;
        return Ok(0);
    }
    let session = hijack(client, &start_path, Some(&start))?;
    let raw = if a.tty && a.interactive && term::stdin_is_tty() {
        Some(term::RawMode::enable()?)
    } else {
        None
    };
    let _watch = a
        .tty
        .then(|| resize_on_change(client, &format!("/exec/{id}/resize")));
    let ended = session.pump(a.tty, a.interactive);
    drop(raw);
    if ended? == Ended::Detached {
        return Ok(0);
    }
    let info = client.get(&format!("/exec/{id}/json"))?;
    Ok(info
        .get("ExitCode")
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(0))
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (accepted; signals are not proxied)
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (only ctrl-p,ctrl-q is supported)
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
}

pub fn attach(client: &Client, a: &AttachArgs) -> anyhow::Result<i32> {
    let info = client.get(&ctr_path(&a.container, "json"))?;
    let running = info
        .pointer("/State/Running")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !running {
        return Err(Exit {
            code: 1,
            message: Some("You cannot attach to a stopped container, start it first".into()),
        }
        .into());
    }
    let tty = info
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let open_stdin = info
        .pointer("/Config/OpenStdin")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let attached = Attached {
        id: api::s(&info, "Id").to_string(),
        tty,
        stdin: open_stdin && !a.no_stdin,
    };
    attached.run(client, "next-exit", || Ok(()))
}
