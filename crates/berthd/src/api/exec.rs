//! The exec routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (detached, or with
//! the connection hijacked for the process's streams), `GET /exec/{id}/json` and the resizes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::api::attach::{Relay, StdinTarget, relay, upgraded_response};
use crate::api::http::{ApiResult, Query, empty, json, parse_json, read_body};
use berth_api::models::ExecStartConfig;
use berth_api::responses::IdResponse;

use crate::engine::Daemon;
use crate::engine::exec::{self, Started};
use crate::model::Error;

/// `POST /containers/{id}/exec`.
pub async fn create(d: &Arc<Daemon>, name: &str, r: Request<Incoming>) -> ApiResult {
    let body = read_body(r.into_body(), 1 << 20).await?;
    let id = exec::create(d, name, parse_json(&body)?).await?;
    Ok(json(StatusCode::CREATED, &IdResponse { id }))
}

/// `POST /exec/{id}/start`.
pub async fn start(d: &Arc<Daemon>, id: &str, r: Request<Incoming>) -> ApiResult {
    // An unknown exec is a 404 whatever the body.
    d.execs.get(id)?;
    let (parts, body) = r.into_parts();
    let bytes = read_body(body, 1 << 20).await?;
    let opts: ExecStartConfig = parse_json(&bytes)?;
    let detach = opts.detach.unwrap_or(false);
    let tty = opts.tty.unwrap_or(false);
    if detach {
        return match exec::start(d, id, true, tty).await? {
            Started::Running { .. } => Ok(empty(StatusCode::OK)),
            Started::Refused { tty, message } => {
                let r = Request::from_parts(parts, ());
                tokio::spawn(async move {
                    if let Ok(upgraded) = hyper::upgrade::on(r).await {
                        refuse(upgraded, tty, message).await;
                    }
                });
                Ok(upgraded_response(tty))
            }
        };
    }
    // The upgrade answer goes out (and is flushed) before the process starts, so none of its
    // output shares a read with the response headers (clients that read the headers through a
    // buffer lost it).
    let tty = exec::check_startable(d, id, tty).await?;
    let detach_keys = {
        let c = &d.execs.get(id)?.config;
        let stdin = c.attach_stdin.unwrap_or(false);
        Relay::keys_for(tty, stdin, c.detach_keys.as_deref(), "escape")?
    };
    let r = Request::from_parts(parts, ());
    let (d, id) = (d.clone(), id.to_string());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(r).await else {
            return;
        };
        match exec::start(&d, &id, false, tty).await {
            Ok(Started::Running {
                tty,
                output,
                exited,
                stdin,
            }) => {
                let Ok(e) = d.execs.get(&id) else {
                    return;
                };
                let c = &e.config;
                let relay_opts = Relay {
                    tty,
                    want_out: c.attach_stdout.unwrap_or(true),
                    want_err: c.attach_stderr.unwrap_or(true),
                    stdin: stdin.map(|(container, exec_id, file)| StdinTarget::Exec {
                        container,
                        exec_id,
                        file,
                    }),
                    detach_keys,
                };
                relay(d.clone(), upgraded, output, exited, relay_opts).await;
            }
            // As dockerd: the error travels in the stream; the client then reads exit code
            // 126 from the exec's inspect.
            Ok(Started::Refused { tty, message }) => refuse(upgraded, tty, message).await,
            Err(e) => refuse(upgraded, tty, e.message().to_string()).await,
        }
    });
    Ok(upgraded_response(tty))
}

/// Writes `message` into an upgraded exec stream (framed unless a tty) and closes it.
async fn refuse(upgraded: hyper::upgrade::Upgraded, tty: bool, message: String) {
    let mut text = message.into_bytes();
    text.extend_from_slice(b"\r\n");
    let mut bytes = Vec::with_capacity(text.len() + 8);
    if tty {
        bytes = text;
    } else {
        berth_api::stdcopy::encode_frame(berth_api::stdcopy::Stream::Stdout, &text, &mut bytes);
    }
    let mut io = hyper_util::rt::TokioIo::new(upgraded);
    let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &bytes).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
}

/// `GET /exec/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, id: &str) -> ApiResult {
    let e = exec::inspect(d, id)?;
    let (running, pid) = *e.state.lock().unwrap_or_else(|p| p.into_inner());
    let code = *e.exited.borrow();
    let c = &e.config;
    let cmd = c.cmd.clone().unwrap_or_default();
    let body = berth_api::responses::ExecInspect {
        id: e.id.clone(),
        running,
        exit_code: code,
        process_config: berth_api::responses::ExecProcessConfig {
            tty: c.tty.unwrap_or(false),
            entrypoint: cmd.first().cloned().unwrap_or_default(),
            arguments: cmd.get(1..).unwrap_or_default().to_vec(),
            privileged: c.privileged.unwrap_or(false),
            user: c.user.clone().unwrap_or_default(),
        },
        open_stdin: c.attach_stdin.unwrap_or(false),
        open_stderr: c.attach_stderr.unwrap_or(false),
        open_stdout: c.attach_stdout.unwrap_or(false),
        can_remove: false,
        container_id: e.container.clone(),
        detach_keys: c.detach_keys.clone().unwrap_or_default(),
        pid,
    };
    Ok(json(StatusCode::OK, &body))
}

fn size(q: &Query) -> Result<(u32, u32), Error> {
    let n = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| Error::invalid(format!("invalid {k}")))
    };
    Ok((n("w")?, n("h")?))
}

/// `POST /exec/{id}/resize?h=&w=` and `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(d: &Arc<Daemon>, container: &str, exec_id: &str, q: &Query) -> ApiResult {
    let (width, height) = size(q)?;
    exec::resize(d, container, exec_id, width, height).await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /exec/{id}/resize`.
pub async fn resize_exec(d: &Arc<Daemon>, id: &str, r: Request<Incoming>) -> ApiResult {
    let e = d.execs.get(id)?;
    let q = Query::parse(r.uri().query());
    resize(d, &e.container, &id[..12.min(id.len())], &q).await
}
