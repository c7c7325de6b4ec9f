//! The sync channel between the runtime and the process it cloned (a SOCK_SEQPACKET pair):
//! one message per step, so the child never runs ahead of what the parent set up for it.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::Context;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Steps of the create/exec handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: ids mapped, cgroup joined; go on.
    Go,
    /// Child → parent: namespaces and mounts are ready; run prestart/createRuntime hooks.
    RunCreateHooks,
    /// Parent → child: those hooks are done.
    HooksDone,
    /// Child → parent: ready to exec (blocked on the exec fifo, or about to exec).
    Ready,
    /// Child → parent: setting up failed.
    Error(String),
}

pub struct Channel(OwnedFd);

impl Channel {
    /// A connected pair, close-on-exec: (parent end, child end).
    pub fn pair() -> anyhow::Result<(Channel, Channel)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .context("creating the sync socket pair")?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Msg) -> anyhow::Result<()> {
        let buf: Vec<u8> = match msg {
            Msg::Go => vec![b'G'],
            Msg::RunCreateHooks => vec![b'H'],
            Msg::HooksDone => vec![b'D'],
            Msg::Ready => vec![b'R'],
            Msg::Error(text) => {
                let mut v = vec![b'E'];
                v.extend_from_slice(text.as_bytes());
                v
            }
        };
        rustix::net::send(self.0.as_fd(), &buf, SendFlags::NOSIGNAL)
            .context("sending on the sync socket")?;
        Ok(())
    }

    /// Receives the next message; `None` when the other end closed (it exited).
    pub fn recv(&self) -> anyhow::Result<Option<Msg>> {
        let mut buf = vec![0u8; 8192];
        let n = loop {
            match rustix::net::recv(self.0.as_fd(), &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e).context("reading the sync socket"),
            }
        };
        let Some((&tag, rest)) = buf[..n].split_first() else {
            return Ok(None);
        };
        Ok(Some(match tag {
            b'G' => Msg::Go,
            b'H' => Msg::RunCreateHooks,
            b'D' => Msg::HooksDone,
            b'R' => Msg::Ready,
            b'E' => Msg::Error(String::from_utf8_lossy(rest).into_owned()),
            other => anyhow::bail!("unexpected sync message {other:#x}"),
        }))
    }

    /// Waits for `want`; an error message or a closed channel becomes an error.
    pub fn expect(&self, want: Msg) -> anyhow::Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(e)) => anyhow::bail!("{e}"),
            Some(other) => anyhow::bail!("unexpected sync message {other:?}, wanted {want:?}"),
            None => anyhow::bail!("the other side exited before {want:?}"),
        }
    }
}
