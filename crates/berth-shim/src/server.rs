//! The shim's single-threaded poll loop: the socket and its connections, one pidfd per live
//! process (no signal handling needed: a pidfd turns readable when its process exits, then every
//! zombie child is reaped with `waitpid(-1, WNOHANG)`), stdin FIFOs and pty masters to copy, and
//! the OOM watch's eventfd or inotify fd (see `oom`).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, WaitOptions, WaitStatus};

use crate::exit_file;
use crate::oom::OomWatch;
use crate::runtime::Runtime;
use crate::stdio::{self, Held, StdioPaths};
use berth_shim_protocol::{
    ErrorKind as Kind, ExecState, ExitRecord, Request, Response, StateReply,
};

/// Largest request line accepted.
const MAX_REQUEST: usize = 1 << 20;

/// One process the shim is the parent of: the init or an exec.
pub struct Proc {
    pub pid: Pid,
    pidfd: Option<OwnedFd>,
    pub exit: Option<ExitRecord>,
    io: Held,
    master_eof: bool,
    exit_path: PathBuf,
    waiters: Vec<UnixStream>,
}

impl Proc {
    pub fn new(pid: Pid, io: Held, exit_path: PathBuf) -> anyhow::Result<Self> {
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())
            .with_context(|| format!("opening a pidfd for process {}", pid.as_raw_nonzero()))?;
        if let Some(m) = &io.master {
            rustix::fs::fcntl_setfl(m, rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok(Proc {
            pid,
            pidfd: Some(pidfd),
            exit: None,
            io,
            master_eof: false,
            exit_path,
            waiters: Vec::new(),
        })
    }

    /// Copies what the pty master has to stdout; false once the terminal is closed.
    fn pump_master(&mut self) -> bool {
        let Some(master) = &self.io.master else {
            return false;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => {
                    self.master_eof = true;
                    return false;
                }
                Ok(n) => {
                    if let Some(out) = &mut self.io.stdout {
                        // A full FIFO nobody reads drops output rather than stall the shim.
                        let _ = out.write_all(&buf[..n]);
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    self.master_eof = true;
                    return false;
                }
            }
        }
    }

    /// Copies stdin FIFO → container; closes the container's stdin at the writer's EOF.
    fn pump_stdin(&mut self) {
        let Some(src) = &mut self.io.stdin_src else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match src.read(&mut buf) {
                Ok(0) => {
                    self.close_stdin();
                    return;
                }
                Ok(n) => {
                    let dst = self.io.master.as_ref().or(self.io.stdin_pipe.as_ref());
                    if let Some(dst) = dst {
                        let _ = rustix::io::write(dst, &buf[..n]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close_stdin();
                    return;
                }
            }
        }
    }

    fn close_stdin(&mut self) {
        self.io.stdin_src = None;
        self.io.stdin_pipe = None;
    }

    fn record_exit(&mut self, ws: WaitStatus) {
        if self.io.master.is_some() && !self.master_eof {
            self.pump_master();
        }
        let rec = ExitRecord {
            status: exit_file::status_code(ws),
            exited_at: exit_file::now_rfc3339(),
        };
        if let Err(e) = exit_file::write(&self.exit_path, &rec) {
            eprintln!("berth-shim: writing {}: {e:#}", self.exit_path.display());
        }
        self.pidfd = None;
        self.exit = Some(rec.clone());
        for w in self.waiters.drain(..) {
            reply(w, &Response::Exit(rec.clone()));
        }
    }
}

/// Which thing a ready poll entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tag {
    Master(Option<String>),
    Stdin(Option<String>),
    Oom,
    Pidfd,
    Conn(usize),
    Listener,
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The shim once its container is created.
pub struct Shim {
    pub id: String,
    pub dir: PathBuf,
    pub runtime: Runtime,
    pub init: Proc,
    execs: HashMap<String, Proc>,
    listener: UnixListener,
    socket: PathBuf,
    conns: Vec<Conn>,
    oom: OomWatch,
    /// `oom_wait`s not yet answered, with the count each waits to see exceeded.
    oom_waiters: Vec<(u64, UnixStream)>,
    done: bool,
    /// The connection of the request that ended the shim: answered, then left for the kernel to
    /// close at exit, so its EOF tells the caller that the shim is gone.
    last: Option<UnixStream>,
}

fn reply(mut stream: UnixStream, resp: &Response) {
    let mut line = serde_json::to_vec(resp).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&line);
}

impl Shim {
    pub fn new(
        id: String,
        dir: PathBuf,
        runtime: Runtime,
        init: Proc,
        listener: UnixListener,
        socket: PathBuf,
        oom: OomWatch,
    ) -> anyhow::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Shim {
            id,
            dir,
            runtime,
            init,
            execs: HashMap::new(),
            listener,
            socket,
            conns: Vec::new(),
            oom,
            oom_waiters: Vec::new(),
            done: false,
            last: None,
        })
    }

    fn proc_mut(&mut self, key: &Option<String>) -> anyhow::Result<&mut Proc> {
        match key {
            None => Ok(&mut self.init),
            Some(k) => self
                .execs
                .get_mut(k)
                .ok_or_else(|| anyhow::Error::new(NotFound(format!("no such exec: {k}")))),
        }
    }

    /// Serves until the container is deleted or the shim is told to shut down.
    pub fn run(mut self) -> anyhow::Result<()> {
        while !self.done {
            let ready = self.poll_once()?;
            for (tag, _) in ready {
                match tag {
                    Tag::Master(k) => {
                        if let Ok(p) = self.proc_mut(&k) {
                            p.pump_master();
                        }
                    }
                    Tag::Stdin(k) => {
                        if let Ok(p) = self.proc_mut(&k) {
                            p.pump_stdin();
                        }
                    }
                    Tag::Oom => self.take_oom(),
                    Tag::Pidfd => self.reap_all(),
                    Tag::Conn(i) => self.read_conn(i),
                    Tag::Listener => self.accept_all(),
                }
                if self.done {
                    break;
                }
            }
        }
        self.finish();
        Ok(())
    }

    fn poll_once(&self) -> anyhow::Result<Vec<(Tag, PollFlags)>> {
        let mut tags = vec![Tag::Listener];
        let mut fds = vec![PollFd::new(&self.listener, PollFlags::IN)];
        for (i, c) in self.conns.iter().enumerate() {
            tags.push(Tag::Conn(i));
            fds.push(PollFd::new(&c.stream, PollFlags::IN));
        }
        if let Some(fd) = self.oom.fd() {
            tags.push(Tag::Oom);
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
        let procs = std::iter::once((None, &self.init))
            .chain(self.execs.iter().map(|(k, p)| (Some(k.clone()), p)));
        for (k, p) in procs {
            if let Some(fd) = &p.pidfd {
                tags.push(Tag::Pidfd);
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &p.io.stdin_src {
                tags.push(Tag::Stdin(k.clone()));
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let (Some(fd), false) = (&p.io.master, p.master_eof) {
                tags.push(Tag::Master(k.clone()));
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("polling"),
        }
        let mut ready: Vec<(Tag, PollFlags)> = tags
            .into_iter()
            .zip(fds.iter().map(|f| f.revents()))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        // Output before exits (so a waiter sees all of it), OOM kills before exits (so the init's
        // own shows in `state` once `wait` returns), exits before requests; conns in
        // descending order so removing one never shifts another still to handle.
        ready.sort_by(|a, b| match (&a.0, &b.0) {
            (Tag::Conn(x), Tag::Conn(y)) => y.cmp(x),
            (x, y) => x.cmp(y),
        });
        ready.dedup_by(|a, b| a.0 == Tag::Pidfd && b.0 == Tag::Pidfd);
        Ok(ready)
    }

    /// Takes in the OOM kills the kernel reported and answers the `oom_wait`s they satisfy.
    fn take_oom(&mut self) {
        self.oom.refresh();
        let count = self.oom.count();
        if !self.oom_waiters.iter().any(|(after, _)| count > *after) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.oom_waiters)
            .into_iter()
            .partition(|(after, _)| count > *after);
        self.oom_waiters = waiting;
        for (_, stream) in ready {
            reply(stream, &Response::Oom { oom_count: count });
        }
    }

    /// Reaps every exited child; records the ones that are the init or an exec.
    fn reap_all(&mut self) {
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, ws))) => {
                    let target = std::iter::once(&mut self.init)
                        .chain(self.execs.values_mut())
                        .find(|p| p.pid == pid && p.exit.is_none());
                    if let Some(p) = target {
                        p.record_exit(ws);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn {
                            stream,
                            buf: Vec::new(),
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_conn(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let complete = loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    conn.buf.extend_from_slice(&buf[..n]);
                    if conn.buf.contains(&b'\n') || conn.buf.len() > MAX_REQUEST {
                        break true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if !complete {
            return;
        }
        let conn = self.conns.remove(i);
        let line = conn.buf.split(|b| *b == b'\n').next().unwrap_or_default();
        if line.iter().all(u8::is_ascii_whitespace) {
            return; // the client went away without asking anything
        }
        match serde_json::from_slice::<Request>(line) {
            Err(e) => reply(
                conn.stream,
                &Response::error(Kind::InvalidArgument, format!("bad request: {e}")),
            ),
            Ok(req) => self.dispatch(req, conn.stream),
        }
    }

    fn dispatch(&mut self, req: Request, stream: UnixStream) {
        if let Request::Wait { exec_id } = &req {
            match self.proc_mut(exec_id) {
                Err(e) => reply(stream, &error_response(&e)),
                Ok(p) => match &p.exit {
                    Some(rec) => reply(stream, &Response::Exit(rec.clone())),
                    None => p.waiters.push(stream),
                },
            }
            return;
        }
        if let Request::OomWait { after } = req {
            self.take_oom();
            let count = self.oom.count();
            if count > after {
                reply(stream, &Response::Oom { oom_count: count });
            } else {
                self.oom_waiters.push((after, stream));
            }
            return;
        }
        let resp = self.handle(req).unwrap_or_else(|e| error_response(&e));
        match (self.done, stream.try_clone()) {
            (true, Ok(kept)) => {
                reply(stream, &resp);
                self.last = Some(kept);
            }
            _ => reply(stream, &resp),
        }
    }

    fn handle(&mut self, req: Request) -> anyhow::Result<Response> {
        let id = self.id.clone();
        match req {
            Request::State => Ok(Response::State(self.state()?)),
            Request::Start => {
                self.runtime.run(&["start", &id])?;
                berth_failpoint::point("shim.after-start");
                Ok(Response::Ok {})
            }
            Request::Kill {
                signal,
                all,
                exec_id: None,
            } => {
                let sig = signal.to_string();
                let mut args = vec!["kill"];
                if all {
                    args.push("--all");
                }
                args.extend([id.as_str(), sig.as_str()]);
                self.runtime.run(&args)?;
                Ok(Response::Ok {})
            }
            Request::Kill {
                signal,
                exec_id: key @ Some(_),
                ..
            } => {
                let p = self.proc_mut(&key)?;
                if p.exit.is_some() {
                    bail!("process already finished");
                }
                let sig = rustix::process::Signal::from_named_raw(signal)
                    .with_context(|| format!("unknown signal {signal}"))?;
                rustix::process::kill_process(p.pid, sig).context("signalling the exec")?;
                Ok(Response::Ok {})
            }
            Request::Exec {
                exec_id,
                process,
                stdin,
                stdout,
                stderr,
                terminal,
            } => {
                let paths = StdioPaths {
                    stdin,
                    stdout,
                    stderr,
                    terminal,
                };
                let pid = self.exec(&exec_id, &process, &paths)?;
                Ok(Response::Pid { pid })
            }
            Request::Resize {
                exec_id,
                width,
                height,
            } => {
                let p = self.proc_mut(&exec_id)?;
                let master =
                    p.io.master
                        .as_ref()
                        .context("the process has no terminal")?;
                let ws = rustix::termios::Winsize {
                    ws_row: height,
                    ws_col: width,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                rustix::termios::tcsetwinsize(master, ws).context("resizing the terminal")?;
                Ok(Response::Ok {})
            }
            Request::CloseStdin { exec_id } => {
                self.proc_mut(&exec_id)?.close_stdin();
                Ok(Response::Ok {})
            }
            Request::Wait { .. } => bail!("wait is handled by the loop"),
            Request::OomWait { .. } => bail!("oom_wait is handled by the loop"),
            Request::Pids => {
                let out = self.runtime.run(&["ps", "--format", "json", &id])?;
                let pids: Vec<u32> =
                    serde_json::from_slice(&out).context("parsing the runtime's ps output")?;
                Ok(Response::Pids { pids })
            }
            Request::Pause => {
                self.runtime.run(&["pause", &id])?;
                Ok(Response::Ok {})
            }
            Request::Resume => {
                self.runtime.run(&["resume", &id])?;
                Ok(Response::Ok {})
            }
            Request::Update { resources } => {
                let input = serde_json::to_vec(&resources)?;
                self.runtime
                    .run_with_input(&["update", "-r", "-", &id], Some(&input))?;
                Ok(Response::Ok {})
            }
            Request::Delete {
                exec_id: Some(exec_id),
            } => {
                let p = self.proc_mut(&Some(exec_id.clone()))?;
                let rec = p.exit.clone().context("the exec is still running")?;
                self.execs.remove(&exec_id);
                Ok(Response::Exit(rec))
            }
            Request::Delete { exec_id: None } => {
                self.runtime.run(&["delete", &id])?;
                let rec = self.await_init_exit();
                self.done = true;
                Ok(Response::Exit(rec))
            }
            Request::Shutdown => {
                let res = self.runtime.run(&["delete", "--force", &id]);
                self.await_init_exit();
                self.done = true;
                res.map(|_| Response::Ok {})
            }
        }
    }

    fn state(&mut self) -> anyhow::Result<StateReply> {
        // The kernel may not have woken the poll yet (v2 delays notifications): read it now.
        self.take_oom();
        let status = if self.init.exit.is_some() {
            "stopped".to_string()
        } else {
            let out = self.runtime.run(&["state", &self.id])?;
            let v: serde_json::Value =
                serde_json::from_slice(&out).context("parsing the runtime's state")?;
            v.get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("unknown")
                .to_string()
        };
        Ok(StateReply {
            id: self.id.clone(),
            status,
            pid: self.init.pid.as_raw_nonzero().get() as u32,
            exit_status: self.init.exit.as_ref().map(|e| e.status),
            exited_at: self.init.exit.as_ref().map(|e| e.exited_at.clone()),
            oom_count: self.oom.count(),
            execs: self
                .execs
                .iter()
                .map(|(id, p)| ExecState {
                    exec_id: id.clone(),
                    pid: p.pid.as_raw_nonzero().get() as u32,
                    exit_status: p.exit.as_ref().map(|e| e.status),
                    exited_at: p.exit.as_ref().map(|e| e.exited_at.clone()),
                })
                .collect(),
        })
    }

    /// After the runtime deleted the container, its init is dead or dying: reap it (briefly
    /// waiting for the kernel) so its real status is known.
    fn await_init_exit(&mut self) -> ExitRecord {
        for _ in 0..2 {
            self.reap_all();
            if let Some(rec) = &self.init.exit {
                return rec.clone();
            }
            if let Some(fd) = &self.init.pidfd {
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                let t = rustix::event::Timespec {
                    tv_sec: 2,
                    tv_nsec: 0,
                };
                let _ = rustix::event::poll(&mut fds, Some(&t));
            }
        }
        ExitRecord {
            status: 255,
            exited_at: exit_file::now_rfc3339(),
        }
    }

    fn exec(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        paths: &StdioPaths,
    ) -> anyhow::Result<u32> {
        if exec_id.is_empty()
            || exec_id.len() > 64
            || !exec_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            bail!("invalid exec id {exec_id:?}: use 1-64 of [A-Za-z0-9_.-]");
        }
        if self.execs.contains_key(exec_id) {
            bail!("exec {exec_id} already exists");
        }
        let spec = self.dir.join(format!("exec-{exec_id}.process.json"));
        let pid_file = self.dir.join(format!("exec-{exec_id}.pid"));
        std::fs::write(&spec, serde_json::to_vec(process)?)
            .with_context(|| format!("writing {}", spec.display()))?;
        let console = self.dir.join(format!("exec-{exec_id}.console.sock"));
        let result = (|| {
            let (mut held, io) = stdio::open(paths)?;
            let mut args = vec![
                "exec".to_string(),
                "--process".into(),
                path_str(&spec)?,
                "--detach".into(),
                "--pid-file".into(),
                path_str(&pid_file)?,
            ];
            let (listener, _dir) = if paths.terminal {
                let (l, path, dir) =
                    stdio::console_socket(&self.dir, &format!("exec-{exec_id}.console.sock"))?;
                args.extend(["--console-socket".into(), path]);
                (Some(l), dir)
            } else {
                (None, None)
            };
            args.push(self.id.clone());
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let offset = self.runtime.log_len();
            let mut cmd = self.runtime.command(&argv);
            cmd.stdin(io.stdin).stdout(io.stdout).stderr(io.stderr);
            let mut child = cmd.spawn().context("running the runtime's exec")?;
            if let Some(l) = &listener {
                match stdio::receive_master(l, &mut child) {
                    Ok(m) => held.master = Some(m),
                    Err(e) => {
                        let out = child.wait_with_output()?;
                        self.runtime.check(&out, offset)?;
                        return Err(e);
                    }
                }
            }
            let out = child.wait_with_output()?;
            self.runtime.check(&out, offset)?;
            let pid = read_pid(&pid_file)?;
            let exit_path = self.dir.join(format!("exec-{exec_id}.exit.json"));
            Proc::new(pid, held, exit_path)
        })();
        let _ = std::fs::remove_file(&spec);
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&console);
        let proc = result?;
        let pid = proc.pid.as_raw_nonzero().get() as u32;
        self.execs.insert(exec_id.to_string(), proc);
        // It may have exited already (its zombie came to us when the runtime exited).
        self.reap_all();
        Ok(pid)
    }

    /// Ends the shim: answers the remaining waiters, closes the `oom_wait`s unanswered and
    /// removes the socket.
    fn finish(&mut self) {
        self.oom_waiters.clear();
        let procs = std::iter::once(&mut self.init).chain(self.execs.values_mut());
        for p in procs {
            let resp = match &p.exit {
                Some(rec) => Response::Exit(rec.clone()),
                None => Response::error(Kind::FailedPrecondition, "the shim is shutting down"),
            };
            for w in p.waiters.drain(..) {
                reply(w, &resp);
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        // Closed only by the process's exit (see `last`).
        std::mem::forget(self.last.take());
    }
}

/// A path as a UTF-8 argument.
pub fn path_str(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_string)
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

/// Reads a runtime pid file.
pub fn read_pid(path: &Path) -> anyhow::Result<Pid> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    Pid::from_raw(raw).with_context(|| format!("{} holds no valid pid", path.display()))
}

/// Something the request names does not exist (an exec id the shim does not know).
#[derive(Debug)]
struct NotFound(String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// The answer for a failed request, with its kind: an exec the shim does not know, a process
/// already gone (ESRCH) or a runtime that no longer knows the container are not found;
/// anything else is a failed precondition.
fn error_response(e: &anyhow::Error) -> Response {
    let gone = e.downcast_ref::<NotFound>().is_some()
        || e.downcast_ref::<rustix::io::Errno>() == Some(&rustix::io::Errno::SRCH)
        || e.downcast_ref::<crate::runtime::RuntimeError>()
            .is_some_and(|r| r.not_found);
    let kind = if gone {
        Kind::NotFound
    } else {
        Kind::FailedPrecondition
    };
    Response::error(kind, format!("{e:#}"))
}
