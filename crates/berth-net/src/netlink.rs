//! A small synchronous rtnetlink client: just the requests container networking needs (bridges,
//! veth pairs created straight into a namespace, addresses, routes, link lookup, dump and
//! delete). A socket acts in the network namespace it was opened in, so `open_in` opens one on a
//! short-lived thread that entered the namespace: the calling thread never changes namespace.
//!
//! Messages are built by hand (struct `nlmsghdr` + `ifinfomsg`/`ifaddrmsg`/`rtmsg` + attributes,
//! all native-endian and 4-byte aligned) — a few hundred lines instead of an async netlink stack.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink::SocketAddrNetlink,
};

use crate::NetError;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTA_GATEWAY: u16 = 5;

const IFF_UP: u32 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// No duplicate address detection: the address is usable at once, as Docker's are.
const IFA_F_NODAD: u8 = 0x02;

/// One link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The `IFLA_INFO_KIND` (`bridge`, `veth`, …), empty for plain devices.
    pub kind: String,
    /// Index of the bridge this link is a port of, 0 if none.
    pub master: u32,
}

/// An rtnetlink socket bound to the namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// A request under construction: header, fixed part, attributes (nested ones patched on close).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set on send
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // seq, pid
        Msg { buf, nests: vec![] }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// `struct ifinfomsg`.
    fn ifinfo(&mut self, index: u32, flags: u32, change: u32) -> &mut Self {
        self.bytes(&[0, 0, 0, 0]) // family AF_UNSPEC, pad, type
            .bytes(&index.to_ne_bytes())
            .bytes(&flags.to_ne_bytes())
            .bytes(&change.to_ne_bytes())
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad()
    }

    fn str_attr(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    fn u32_attr(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn pad(&mut self) -> &mut Self {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
        self
    }

    fn nest(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Self {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }
}

/// Walks `rtattr`s: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((kind, data))
    })
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetError> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )
        .map_err(|e| NetError::Netlink("opening a netlink socket", e.into()))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))
            .map_err(|e| NetError::Netlink("binding a netlink socket", e.into()))?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// Opens a socket inside the network namespace at `ns` (a bind-mounted nsfs file or
    /// `/proc/PID/ns/net`), from a thread that enters it and ends.
    pub fn open_in(ns: &Path) -> Result<Self, NetError> {
        in_namespace(ns, Netlink::open)
    }

    /// Sends one request and reads replies until its ack (or, for a dump, its end). Returns
    /// the payloads of the data messages.
    fn call(&mut self, what: &'static str, msg: &mut Msg) -> Result<Vec<Vec<u8>>, NetError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        let dump = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        rustix::net::send(&self.fd, &msg.buf, SendFlags::empty())
            .map_err(|e| NetError::Netlink(what, e.into()))?;
        let mut out = vec![];
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf, RecvFlags::empty())
                .map_err(|e| NetError::Netlink(what, e.into()))?;
            let mut b = &buf[..n];
            while b.len() >= 16 {
                let mlen = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if mlen < 16 || mlen > b.len() {
                    break;
                }
                let payload = &b[16..mlen];
                b = &b[mlen.next_multiple_of(4).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
                            .unwrap_or(-libc::EPROTO);
                        return if code == 0 {
                            Ok(out)
                        } else {
                            Err(NetError::Netlink(what, io::Error::from_raw_os_error(-code)))
                        };
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        out.push(payload.to_vec());
                        if !dump && flags & NLM_F_MULTI == 0 {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_ACK);
        m.ifinfo(0, 0, 0).str_attr(IFLA_IFNAME, name);
        match self.call("looking up a link", &mut m) {
            Ok(replies) => Ok(replies
                .first()
                .and_then(|p| p.get(4..8))
                .map(|i| u32::from_ne_bytes([i[0], i[1], i[2], i[3]]))),
            Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_DUMP);
        m.ifinfo(0, 0, 0);
        let replies = self.call("listing links", &mut m)?;
        Ok(replies
            .iter()
            .filter(|p| p.len() >= 16)
            .map(|p| {
                let mut link = Link {
                    index: u32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
                    name: String::new(),
                    kind: String::new(),
                    master: 0,
                };
                for (kind, data) in attrs(&p[16..]) {
                    match kind {
                        IFLA_IFNAME => link.name = cstr(data),
                        IFLA_MASTER if data.len() >= 4 => {
                            link.master = u32::from_ne_bytes([data[0], data[1], data[2], data[3]])
                        }
                        IFLA_LINKINFO => {
                            for (k, d) in attrs(data) {
                                if k == IFLA_INFO_KIND {
                                    link.kind = cstr(d);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                link
            })
            .collect())
    }

    /// Creates a bridge (not yet up); fails with EEXIST if the name is taken.
    pub fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<u32, NetError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, name)
            .u32_attr(IFLA_MTU, mtu)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "bridge")
            .end();
        self.call("creating a bridge", &mut m)?;
        self.link_index(name)?.ok_or(NetError::Netlink(
            "creating a bridge",
            io::ErrorKind::NotFound.into(),
        ))
    }

    /// Creates a veth pair: `host` here, a port of bridge `master`, up; `peer` (named `peer_name`
    /// there, with `peer_mac`) straight inside the namespace `peer_ns`. Both get `mtu`.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        peer_name: &str,
        peer_ns: BorrowedFd<'_>,
        peer_mac: [u8; 6],
        mtu: u32,
    ) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, IFF_UP, IFF_UP)
            .str_attr(IFLA_IFNAME, host)
            .u32_attr(IFLA_MTU, mtu)
            .u32_attr(IFLA_MASTER, master)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA)
            .nest(VETH_INFO_PEER)
            .ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, peer_name)
            .u32_attr(IFLA_MTU, mtu)
            .attr(IFLA_ADDRESS, &peer_mac)
            .u32_attr(IFLA_NET_NS_FD, raw_fd(peer_ns))
            .end()
            .end()
            .end();
        self.call("creating a veth pair", &mut m).map(drop)
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK);
        m.ifinfo(index, IFF_UP, IFF_UP);
        self.call("bringing a link up", &mut m).map(drop)
    }

    /// Deletes a link (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK);
        m.ifinfo(index, 0, 0);
        self.call("deleting a link", &mut m).map(drop)
    }

    /// Deletes the link called `name`; Ok(false) if there was none.
    pub fn delete_link_named(&mut self, name: &str) -> Result<bool, NetError> {
        match self.link_index(name)? {
            Some(i) => match self.delete_link(i) {
                Ok(()) => Ok(true),
                Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }

    /// Adds `addr/prefix` (with its broadcast address) to a link; an existing one is kept.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let brd = Ipv4Addr::from(u32::from(addr) | !mask);
        m.bytes(&[AF_INET, prefix, 0, 0])
            .bytes(&index.to_ne_bytes())
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets())
            .attr(IFA_BROADCAST, &brd.octets());
        match self.call("adding an address", &mut m) {
            Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds the IPv6 address `addr/prefix` to a link, usable at once (no duplicate address
    /// detection); an existing one is kept.
    pub fn add_address6(&mut self, index: u32, addr: Ipv6Addr, prefix: u8) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&[AF_INET6, prefix, IFA_F_NODAD, 0])
            .bytes(&index.to_ne_bytes())
            .attr(IFA_ADDRESS, &addr.octets());
        match self.call("adding an IPv6 address", &mut m) {
            Err(NetError::Netlink(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds the IPv6 default route via `gateway`.
    pub fn add_default_route6(&mut self, gateway: Ipv6Addr) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.bytes(&[AF_INET6, 0, 0, 0, 254, 3, 0, 1])
            .bytes(&0u32.to_ne_bytes())
            .attr(RTA_GATEWAY, &gateway.octets());
        self.call("adding the IPv6 default route", &mut m).map(drop)
    }

    /// Adds the default route via `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), NetError> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table main, protocol boot, scope universe,
        // type unicast; flags.
        m.bytes(&[AF_INET, 0, 0, 0, 254, 3, 0, 1])
            .bytes(&0u32.to_ne_bytes())
            .attr(RTA_GATEWAY, &gateway.octets());
        self.call("adding the default route", &mut m).map(drop)
    }
}

/// Runs `f` on a short-lived thread that entered the network namespace at `ns` (a
/// bind-mounted nsfs file or `/proc/PID/ns/net`): the caller's thread never changes namespace.
pub fn in_namespace<T: Send>(
    ns: &Path,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let file = std::fs::File::open(ns).map_err(|e| NetError::Namespace {
        path: ns.to_path_buf(),
        source: e,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| NetError::Namespace {
                path: ns.to_path_buf(),
                source: e.into(),
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Netlink(
                "entering a namespace",
                io::ErrorKind::Other.into(),
            ))
        })
    })
}

fn raw_fd(fd: BorrowedFd<'_>) -> u32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_length_and_alignment() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK);
        m.ifinfo(0, 0, 0)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .end();
        let body = &m.buf[32..];
        // nest header (4) + "veth\0" attr (4 + 5 → padded 12) = 16
        assert_eq!(u16::from_ne_bytes([body[0], body[1]]), 16);
        assert_eq!(
            u16::from_ne_bytes([body[2], body[3]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
        let inner: Vec<_> = attrs(&body[4..]).collect();
        assert_eq!(inner, vec![(IFLA_INFO_KIND, &b"veth\0"[..])]);
        assert_eq!(m.buf.len() % 4, 0);
    }

    #[test]
    fn attribute_walk_stops_at_garbage() {
        assert_eq!(attrs(&[8, 0, 3, 0]).count(), 0); // length beyond the buffer
        assert_eq!(attrs(&[2, 0, 3, 0, 1, 2]).count(), 0); // length below the header
        assert_eq!(attrs(&[5, 0, 3, 0, b'x']).count(), 1); // last one unpadded
    }
}
