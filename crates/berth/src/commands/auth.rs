//! Registry credentials the docker CLI's way: `login`/`logout`, stored base64 in
//! `<config dir>/config.json` under `auths` (the docker CLI's file and format, other keys kept),
//! and sent to the daemon as base64url JSON in `X-Registry-Auth`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context;
use base64::Engine;
use berth_api::models::AuthConfig;
use clap::Args;
use serde_json::{Value, json};

use crate::api::{self, Client};

/// Docker Hub's key in `auths`.
const HUB: &str = "https://index.docker.io/v1/";

static CONFIG_DIR: OnceLock<PathBuf> = OnceLock::new();

/// `--config DIR`.
pub fn set_config_dir(dir: &str) {
    let _ = CONFIG_DIR.set(PathBuf::from(dir));
}

/// The client's config directory: `--config`, else `DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    CONFIG_DIR.get().cloned().unwrap_or_else(|| {
        std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".docker")
            })
    })
}

fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

fn load_config() -> Value {
    std::fs::read(config_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

fn save_config(v: &Value) -> anyhow::Result<()> {
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, crate::commands::inspect::pretty(v)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The `auths` key of a registry host ("docker.io" is Docker Hub's URL).
fn key_of(registry: &str) -> String {
    match registry {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => HUB.into(),
        r => r
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// The `X-Registry-Auth` header value for images on `registry` (`{}` when no login is stored).
pub fn header_for(registry: &str) -> String {
    let cfg = load_config();
    let key = key_of(registry);
    let entry = cfg.get("auths").and_then(|a| a.get(&key));
    let mut auth = AuthConfig::default();
    if let Some(e) = entry {
        if let Some(decoded) = e
            .get("auth")
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        {
            let text = String::from_utf8_lossy(&decoded).into_owned();
            if let Some((u, p)) = text.split_once(':') {
                auth = auth_config(u, p, &key);
            }
        }
    }
    let text = serde_json::to_string(&auth).unwrap_or_else(|_| "{}".into());
    base64::engine::general_purpose::URL_SAFE.encode(text)
}

/// The Engine API's auth config for a login to `server`.
fn auth_config(username: &str, password: &str, server: &str) -> AuthConfig {
    AuthConfig {
        username: Some(username.into()),
        password: Some(password.into()),
        serveraddress: Some(server.into()),
        ..Default::default()
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// SERVER
    pub server: Option<String>,
}

fn prompt(label: &str, hide: bool) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let raw = if hide && crate::term::stdin_is_tty() {
        Some(crate::term::NoEcho::enable()?)
    } else {
        None
    };
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if raw.is_some() {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn login(client: &Client, a: &LoginArgs) -> anyhow::Result<i32> {
    let server = a.server.clone().unwrap_or_default();
    let key = key_of(&server);
    let username = match &a.username {
        Some(u) => u.clone(),
        None => prompt("Username: ", false)?,
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        prompt("Password: ", true)?
    };
    anyhow::ensure!(
        !username.is_empty() && !password.is_empty(),
        "Username and password are required"
    );
    let body = serde_json::to_value(auth_config(&username, &password, &key))?;
    let resp = client.post("/auth", Some(&body))?;
    let mut cfg = load_config();
    if !cfg.get("auths").is_some_and(Value::is_object) {
        cfg["auths"] = json!({});
    }
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][&key] = json!({"auth": enc});
    save_config(&cfg)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config_path().display()
    );
    let status = api::s(&resp, "Status");
    println!(
        "{}",
        if status.is_empty() {
            "Login Succeeded"
        } else {
            status
        }
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// SERVER
    pub server: Option<String>,
}

pub fn logout(a: &LogoutArgs) -> anyhow::Result<i32> {
    let key = key_of(a.server.as_deref().unwrap_or(""));
    let mut cfg = load_config();
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(&key))
        .is_some();
    if removed {
        println!("Removing login credentials for {key}");
        save_config(&cfg)?;
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}
