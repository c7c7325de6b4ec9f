//! A streamed exec (the CRI's `Exec`, served by `streaming.rs`): a process in a running
//! container through berth-containerd, its stdin, stdout and stderr FIFOs relayed to and from
//! the client's SPDY streams, its terminal resized as the client asks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::v1 as lower;
use tokio::sync::mpsc;
use tonic::Status;

use crate::lower::req;
use crate::runtime::Runtime;
use crate::store::State;

/// Where an exec's streams go: stdin chunks in (None: its end), stdout and stderr out as data
/// frames of their stream ids, terminal sizes in.
pub struct ExecStreams {
    pub stdin: Option<mpsc::Receiver<Option<Vec<u8>>>>,
    pub stdout: Option<(u32, mpsc::Sender<Vec<u8>>)>,
    pub stderr: Option<(u32, mpsc::Sender<Vec<u8>>)>,
    pub resize: Option<mpsc::Receiver<(u32, u32)>>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Reads a FIFO to its end into `to` (data frames of stream `id`), or to nowhere.
fn pump_out(
    path: PathBuf,
    to: Option<(u32, mpsc::Sender<Vec<u8>>)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some((id, tx)) = &to {
                        let _ = tx.blocking_send(crate::spdy::data(*id, 0, &buf[..n]));
                    }
                }
            }
        }
    })
}

/// Writes the client's stdin into a FIFO until its end.
fn pump_in(
    path: PathBuf,
    mut from: mpsc::Receiver<Option<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Blocks until the shim opens the read end.
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return;
        };
        while let Some(Some(chunk)) = from.blocking_recv() {
            if std::io::Write::write_all(&mut f, &chunk).is_err() {
                return;
            }
        }
    })
}

/// Opens the other end of a FIFO once, so a thread waiting in `open` on it goes on.
fn release(p: &Path, write: bool) {
    use rustix::fs::OFlags;
    let side = if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    let _ = rustix::fs::open(
        p,
        side | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
}

impl Runtime {
    /// The process of an exec in container `id`: the container's own, with `cmd`.
    pub(crate) fn exec_process(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
    ) -> Result<Vec<u8>, Status> {
        if cmd.is_empty() {
            return Err(Status::invalid_argument("no command given"));
        }
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(
            &std::fs::read(self.container_dir(id).join("config.json")).map_err(internal)?,
        )
        .map_err(internal)?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(cmd)).set_terminal(Some(tty));
        serde_json::to_vec(&process).map_err(internal)
    }

    /// Runs `cmd` in running container `id` with its stdio on `s`; its exit status.
    pub async fn exec_streaming(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
        s: ExecStreams,
    ) -> Result<u32, Status> {
        self.store
            .container(id)
            .filter(|c| c.state == State::Running)
            .ok_or_else(|| Status::not_found(format!("container {id} is not running")))?;
        let spec = self.exec_process(id, cmd, tty)?;
        let exec_id = format!("exec-{}", &crate::store::new_id()[..12]);
        let dir = self.fifo_dir(id);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let path = |s: &str| dir.join(format!("{exec_id}-{s}"));
        let (inp, out, err) = (path("stdin"), path("stdout"), path("stderr"));
        let mut fifos = vec![out.clone()];
        if s.stdin.is_some() {
            fifos.push(inp.clone());
        }
        if !tty {
            fifos.push(err.clone());
        }
        for f in &fifos {
            crate::containers::mkfifo(f)?;
        }
        let mut pumps = vec![pump_out(out.clone(), s.stdout)];
        if !tty {
            pumps.push(pump_out(err.clone(), s.stderr));
        }
        let stdin = s.stdin.map(|rx| pump_in(inp.clone(), rx));
        let mut tasks = self.lower.tasks();
        let text = |p: &Path, on: bool| {
            if on {
                p.display().to_string()
            } else {
                String::new()
            }
        };
        let ran = async {
            tasks
                .exec(req(lower::ExecProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                    stdin: text(&inp, stdin.is_some()),
                    stdout: out.display().to_string(),
                    stderr: text(&err, !tty),
                    terminal: tty,
                    spec,
                }))
                .await?;
            tasks
                .start(req(lower::StartRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await?;
            if let Some(mut sizes) = s.resize {
                let (mut t, cid, eid) = (self.lower.tasks(), id.to_string(), exec_id.clone());
                tokio::spawn(async move {
                    while let Some((width, height)) = sizes.recv().await {
                        let r = lower::ResizePtyRequest {
                            container_id: cid.clone(),
                            exec_id: eid.clone(),
                            width,
                            height,
                        };
                        let _ = t.resize_pty(req(r)).await;
                    }
                });
            }
            let w = tasks
                .wait(req(lower::WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await?;
            Ok::<u32, Status>(w.into_inner().exit_status)
        }
        .await;
        // Whatever did not start is let go: the FIFO threads never hang.
        release(&out, true);
        release(&err, true);
        release(&inp, false);
        // The output is read to its end; a terminal's is ended by deleting the process (the
        // shim keeps the terminal until then).
        let joined = tokio::task::spawn_blocking(move || {
            for p in pumps {
                let _ = p.join();
            }
        });
        let delete = || async {
            let _ = self
                .lower
                .tasks()
                .delete_process(req(lower::DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await;
        };
        if tty {
            tokio::time::sleep(Duration::from_millis(100)).await;
            delete().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
        drop(stdin);
        if !tty {
            delete().await;
        }
        for f in &fifos {
            let _ = std::fs::remove_file(f);
        }
        ran
    }
}
