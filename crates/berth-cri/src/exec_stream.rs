//! An exec in a running container through berth-containerd, its stdin, stdout and stderr
//! FIFOs relayed to and from channels: the CRI's `Exec` (the client's SPDY streams, served by
//! `streaming.rs`, its terminal resized as the client asks) and `ExecSync` (collected, with a
//! timeout that kills it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::v1 as lower;
use tokio::sync::mpsc;
use tonic::Status;

use crate::lower::req;
use crate::runtime::Runtime;
use crate::store::State;

/// Where an exec's streams go: stdin chunks in (None: its end), stdout and stderr chunks out,
/// terminal sizes in; and how long it may run (it is killed then).
#[derive(Default)]
pub struct ExecStreams {
    pub stdin: Option<mpsc::Receiver<Option<Vec<u8>>>>,
    pub stdout: Option<mpsc::Sender<Vec<u8>>>,
    pub stderr: Option<mpsc::Sender<Vec<u8>>>,
    pub resize: Option<mpsc::Receiver<(u32, u32)>>,
    pub timeout: Option<Duration>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Reads a FIFO to its end into `to`, or to nowhere.
fn pump_out(path: PathBuf, to: Option<mpsc::Sender<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(tx) = &to {
                        let _ = tx.blocking_send(buf[..n].to_vec());
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
pub(crate) fn release(p: &Path, write: bool) {
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
    /// Resizes an exec's terminal to each size that comes.
    fn follow_resizes(&self, id: &str, exec_id: &str, mut sizes: mpsc::Receiver<(u32, u32)>) {
        let (mut t, cid, eid) = (self.lower.tasks(), id.to_string(), exec_id.to_string());
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
            if let Some(sizes) = s.resize {
                self.follow_resizes(id, &exec_id, sizes);
            }
            let wait = tasks.wait(req(lower::WaitRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }));
            let limit = s.timeout.unwrap_or(Duration::MAX);
            match tokio::time::timeout(limit, wait).await {
                Ok(w) => Ok::<u32, Status>(w?.into_inner().exit_status),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "command timed out after {}s",
                    limit.as_secs()
                ))),
            }
        }
        .await;
        if ran.is_err() {
            let kill = lower::KillRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
                signal: 9,
                all: false,
            };
            let _ = self.lower.tasks().kill(req(kill)).await;
        }
        // Whatever did not start is let go: the FIFO threads never hang.
        release(&out, true);
        release(&err, true);
        release(&inp, false);
        // The output is read to its end, which comes when the process is deleted: the shim
        // holds the FIFOs (and a terminal) until then; what is in them is still read.
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
            // What the shim still relays from the terminal gets a moment to arrive.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        delete().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
        drop(stdin);
        for f in &fifos {
            let _ = std::fs::remove_file(f);
        }
        ran
    }
}
