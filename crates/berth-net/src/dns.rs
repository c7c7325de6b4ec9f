//! Message logic of berthd's embedded DNS server for user-defined networks.
//!
//! Like Docker's `127.0.0.11` resolver, berthd answers the containers of a user-defined network
//! for the names of their peers: container names and network aliases resolve to the peers'
//! IPv4 addresses (A) and, on networks with IPv6, their IPv6 addresses (AAAA), and every other name is answered "not found" (NXDOMAIN); nothing is recursed
//! or forwarded. This module is only the pure datagram-in, datagram-out part (RFC 1035): it owns
//! no socket, and the daemon supplies a [`Lookup`] for the network the query arrived on.
//!
//! Every byte of input is untrusted: parsing is bounds-checked throughout, never panics, and
//! every reply fits a plain (non-EDNS) UDP datagram of 512 bytes, setting TC when the answer list
//! had to be cut.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a name resolves to on one network.
pub trait Lookup {
    /// The addresses of `name` (lowercase, without a trailing dot), or `None` if it is unknown.
    /// `Some(vec![])` means the name exists but has no IPv4 address.
    fn lookup_v4(&self, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The IPv6 addresses of a name that exists (on a network with `EnableIPv6`); none unless
    /// the daemon has some.
    fn lookup_v6(&self, _name: &str) -> Vec<Ipv6Addr> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> Option<Vec<Ipv4Addr>>> Lookup for F {
    fn lookup_v4(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        self(name)
    }
}

/// Largest reply sent over plain UDP (RFC 1035 §4.2.1); EDNS is not offered.
pub const MAX_REPLY_LEN: usize = 512;
/// TTL of the A records, in seconds.
pub const TTL_SECS: u32 = 600;

const HEADER_LEN: usize = 12;
const MAX_NAME_WIRE_LEN: usize = 255;
const ANSWER_LEN: usize = 16;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const QTYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const QCLASS_ANY: u16 = 255;
const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;

/// The first question of a query.
struct Question<'a> {
    /// QNAME, QTYPE and QCLASS exactly as received (echoed back, preserving the case bits).
    raw: &'a [u8],
    /// The lowercase dotted name, or `None` when no container could have it (a label holding a
    /// dot, a space or a non-ASCII byte; the root name).
    name: Option<String>,
    qtype: u16,
    qclass: u16,
}

/// Parses the question that starts right after the header; `None` on any format error:
/// truncation, compression pointers or extended label types, a name over 255 bytes.
fn parse_question(msg: &[u8]) -> Option<Question<'_>> {
    let mut pos = HEADER_LEN;
    let mut name = String::new();
    let mut plausible = true;
    loop {
        let len = usize::from(*msg.get(pos)?);
        // 0b11 = pointer, 0b01/0b10 = extended/reserved label types; all three mean len > 63.
        if len & 0xC0 != 0 {
            return None;
        }
        pos += 1;
        if len == 0 {
            break;
        }
        let label = msg.get(pos..pos.checked_add(len)?)?;
        pos += len;
        // Wire length so far plus the terminating root label.
        if pos - HEADER_LEN + 1 > MAX_NAME_WIRE_LEN {
            return None;
        }
        plausible &= label.iter().all(|b| b.is_ascii_graphic() && *b != b'.');
        if plausible {
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
    }
    let fixed = msg.get(pos..pos.checked_add(4)?)?;
    Some(Question {
        raw: msg.get(HEADER_LEN..pos + 4)?,
        name: (plausible && !name.is_empty()).then_some(name),
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
    })
}

/// Builds a reply: ID, opcode and RD copied from the query header, QR=1, AA=1, RA=0; the
/// question echoed when given; as many A and AAAA answers as fit in [`MAX_REPLY_LEN`], TC set
/// if cut.
fn reply(header: &[u8; HEADER_LEN], rcode: u8, question: &[u8], addrs: &[IpAddr]) -> Vec<u8> {
    let size = |a: &IpAddr| {
        if a.is_ipv4() {
            ANSWER_LEN
        } else {
            ANSWER_LEN + 12
        }
    };
    let mut room = MAX_REPLY_LEN.saturating_sub(HEADER_LEN + question.len());
    let count = addrs
        .iter()
        .take_while(|a| match room.checked_sub(size(a)) {
            Some(left) => {
                room = left;
                true
            }
            None => false,
        })
        .count();
    let tc = if count < addrs.len() { 0x02 } else { 0 };
    // QR, opcode copied, AA, TC, RD copied; RA=0 (no recursion), Z=0, RCODE.
    let flags = 0x80 | (header[2] & 0x78) | 0x04 | tc | (header[2] & 0x01);
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + count * ANSWER_LEN);
    out.extend_from_slice(&[header[0], header[1], flags, rcode]);
    // QDCOUNT, ANCOUNT (count <= room <= 31: the cast is lossless), NSCOUNT, ARCOUNT.
    for n in [u16::from(!question.is_empty()), count as u16, 0, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(question);
    for addr in addrs.iter().take(count) {
        out.extend_from_slice(&[0xC0, HEADER_LEN as u8]); // NAME: pointer to the question's QNAME
        let (kind, data) = match addr {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        for n in [kind, CLASS_IN] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&TTL_SECS.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes()); // RDLENGTH
        out.extend_from_slice(&data);
    }
    out
}

/// Builds the reply to one query datagram; None when the datagram is not a query worth
/// answering (too short, a response, unparsable header) — the server then drops it.
///
/// Only the first question is considered; records after it (such as an EDNS OPT record) are
/// ignored and never echoed.
pub fn answer(query: &[u8], lookup: &impl Lookup) -> Option<Vec<u8>> {
    let header: &[u8; HEADER_LEN] = query.get(..HEADER_LEN)?.try_into().ok()?;
    if header[2] & 0x80 != 0 {
        return None; // a response: never answer those (no reflection loops)
    }
    let opcode = (header[2] >> 3) & 0x0F;
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let question = (qdcount == 1).then(|| parse_question(query)).flatten();
    if opcode != 0 {
        let raw = question.map_or(&[][..], |q| q.raw);
        return Some(reply(header, RCODE_NOTIMP, raw, &[]));
    }
    let Some(q) = question else {
        return Some(reply(header, RCODE_FORMERR, &[], &[]));
    };
    if q.qclass != CLASS_IN && q.qclass != QCLASS_ANY {
        return Some(reply(header, RCODE_NOTIMP, q.raw, &[]));
    }
    let Some((name, v4)) = q
        .name
        .as_deref()
        .and_then(|name| Some((name, lookup.lookup_v4(name)?)))
    else {
        return Some(reply(header, RCODE_NXDOMAIN, q.raw, &[]));
    };
    let mut addrs: Vec<IpAddr> = Vec::new();
    if q.qtype == TYPE_A || q.qtype == QTYPE_ANY {
        addrs.extend(v4.into_iter().map(IpAddr::V4));
    }
    if q.qtype == TYPE_AAAA || q.qtype == QTYPE_ANY {
        addrs.extend(lookup.lookup_v6(name).into_iter().map(IpAddr::V6));
    }
    // A name without a record of the type asked (other types, AAAA without IPv6): NODATA.
    Some(reply(header, RCODE_NOERROR, q.raw, &addrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const AAAA: u16 = TYPE_AAAA;

    /// A network where `web` also has an IPv6 address.
    struct Dual;
    impl Lookup for Dual {
        fn lookup_v4(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
            table(name)
        }
        fn lookup_v6(&self, name: &str) -> Vec<Ipv6Addr> {
            match name {
                "web" => vec!["fd00::2".parse().unwrap()],
                _ => vec![],
            }
        }
    }

    #[test]
    fn aaaa_answers_on_a_network_with_ipv6() {
        let r = answer(&query(7, "web", AAAA), &Dual).unwrap();
        assert_eq!(sum(&r), (0x85, 0, 1, 1));
        let q = query(7, "web", AAAA);
        let rec = &r[q.len()..];
        assert_eq!(&rec[2..4], &AAAA.to_be_bytes());
        assert_eq!(&rec[10..12], &16u16.to_be_bytes());
        assert_eq!(
            &rec[12..28],
            &"fd00::2".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(r.len(), q.len() + 28);
        // ANY: both; A: only the IPv4 one; a name with no IPv6 address: NODATA.
        assert_eq!(
            count(&answer(&query(7, "web", QTYPE_ANY), &Dual).unwrap(), 1),
            2
        );
        assert_eq!(
            count(&answer(&query(7, "web", TYPE_A), &Dual).unwrap(), 1),
            1
        );
        assert_eq!(
            sum(&answer(&query(7, "db", AAAA), &Dual).unwrap()),
            (0x85, 0, 1, 0)
        );
    }

    fn table(name: &str) -> Option<Vec<Ipv4Addr>> {
        match name {
            "web" => Some(vec![Ipv4Addr::new(10, 0, 0, 2)]),
            "db" | "db.alias" => Some(vec![Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 4)]),
            "many" => Some((0..40).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect()),
            "noaddr" => Some(vec![]),
            _ => None,
        }
    }

    /// A query with RD set; `name` in text form (a trailing dot is the same root label).
    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn ask(q: &[u8]) -> Vec<u8> {
        answer(q, &table).expect("a reply")
    }
    fn rcode(r: &[u8]) -> u8 {
        r[3] & 0x0F
    }
    fn count(r: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([r[4 + 2 * i], r[5 + 2 * i]])
    }
    /// (flags byte, RCODE, QDCOUNT, ANCOUNT)
    fn sum(r: &[u8]) -> (u8, u8, u16, u16) {
        (r[2], rcode(r), count(r, 0), count(r, 1))
    }

    #[test]
    fn a_record_found_exact_bytes() {
        let mut q = query(0xBEEF, "web", TYPE_A);
        let r = ask(&q);
        // ID; QR|AA|RD, RA=0, NOERROR; QD=1 AN=1 NS=0 AR=0.
        assert_eq!(&r[..12], &[0xBE, 0xEF, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&r[12..q.len()], &q[12..]);
        let rr = [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4, 10, 0, 0, 2];
        assert_eq!(&r[q.len()..], &rr);
        q[2] = 0; // RD clear is copied too
        assert_eq!(ask(&q)[2], 0x84);
    }

    #[test]
    fn case_insensitive_and_question_case_preserved() {
        let seen = RefCell::new(Vec::new());
        let lookup = |n: &str| {
            seen.borrow_mut().push(n.to_owned());
            table(n)
        };
        let q = query(7, "WeB", TYPE_A);
        let r = answer(&q, &lookup).unwrap();
        assert_eq!((rcode(&r), count(&r, 1)), (0, 1));
        assert_eq!(&r[12..q.len()], &q[12..], "0x20 case bits echoed as sent");
        let q = query(8, "DB.Alias", TYPE_A);
        assert_eq!(count(&answer(&q, &lookup).unwrap(), 1), 2);
        assert_eq!(*seen.borrow(), ["web", "db.alias"]);
    }

    #[test]
    fn trailing_dot() {
        assert_eq!(
            ask(&query(3, "web.", TYPE_A)),
            ask(&query(3, "web", TYPE_A))
        );
    }

    #[test]
    fn nxdomain() {
        for qtype in [TYPE_A, AAAA, QTYPE_ANY, 15] {
            assert_eq!(sum(&ask(&query(9, "example.com", qtype))), (0x85, 3, 1, 0));
        }
        // The root name and labels with odd bytes never reach the lookup.
        let never = |_: &str| -> Option<Vec<Ipv4Addr>> { panic!("looked up") };
        assert_eq!(rcode(&answer(&query(1, "", TYPE_A), &never).unwrap()), 3);
        let mut q = query(1, "web", TYPE_A);
        q[14] = b'.';
        assert_eq!(rcode(&answer(&q, &never).unwrap()), 3);
        q[14] = 0xE9;
        assert_eq!(rcode(&answer(&q, &never).unwrap()), 3);
    }

    #[test]
    fn aaaa_and_other_types_are_nodata() {
        for (name, qtype) in [("web", AAAA), ("web", 15), ("db", 16), ("noaddr", TYPE_A)] {
            let q = query(5, name, qtype);
            let r = ask(&q);
            assert_eq!(
                (sum(&r), r.len()),
                ((0x85, 0, 1, 0), q.len()),
                "{name} {qtype}"
            );
        }
    }

    #[test]
    fn multiple_addresses_and_any() {
        for qtype in [TYPE_A, QTYPE_ANY] {
            let q = query(6, "db", qtype);
            let r = ask(&q);
            assert_eq!((sum(&r), r.len()), ((0x85, 0, 1, 2), q.len() + 32));
            assert_eq!(&r[q.len() + 12..q.len() + 16], &[10, 0, 0, 3]);
            assert_eq!(&r[q.len() + 28..], &[10, 0, 0, 4]);
        }
    }

    #[test]
    fn too_many_addresses_truncate_with_tc() {
        let q = query(6, "many", TYPE_A);
        let r = ask(&q);
        let fit = (MAX_REPLY_LEN - q.len()) / 16;
        assert!(r.len() <= MAX_REPLY_LEN);
        assert_eq!(
            (r[2] & 0x02, usize::from(count(&r, 1))),
            (0x02, fit),
            "TC set"
        );
        assert_eq!(r.len(), q.len() + fit * 16);
        assert_eq!(ask(&query(6, "db", TYPE_A))[2] & 0x02, 0);
    }

    #[test]
    fn formerr_for_qdcount_not_one() {
        for qd in [0u8, 2] {
            let mut q = query(0x1234, "web", TYPE_A);
            q[5] = qd;
            let r = ask(&q);
            assert_eq!(r, [0x12, 0x34, 0x85, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn formerr_for_bad_names() {
        let mut pointer = query(1, "", TYPE_A);
        pointer.splice(12..13, [0xC0, 0x0C]);
        let mut ext_label = query(1, "web", TYPE_A);
        ext_label[12] = 0x40; // 64: an extended label type, not a length
        let long = [&"a".repeat(63)[..]; 4].join("."); // 4 * 64 + 1 = 257 bytes on the wire
        let ok = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(61)); // 255 bytes
        for q in [pointer, ext_label, query(1, &long, TYPE_A)] {
            assert_eq!(rcode(&ask(&q)), 1);
        }
        assert_eq!(rcode(&answer(&query(1, &ok, TYPE_A), &table).unwrap()), 3);
    }

    #[test]
    fn notimp_for_opcode_and_class() {
        let mut q = query(2, "web", TYPE_A);
        q[2] |= 2 << 3; // STATUS
        assert_eq!(sum(&ask(&q)), (0x95, 4, 1, 0));
        let mut q = query(2, "web", TYPE_A);
        let n = q.len();
        q[n - 1] = 3; // CHAOS
        assert_eq!(sum(&ask(&q)), (0x85, 4, 1, 0));
        q[n - 1] = 255; // QCLASS ANY is fine
        assert_eq!(sum(&ask(&q)), (0x85, 0, 1, 1));
    }

    #[test]
    fn edns_opt_record_ignored() {
        let plain = query(4, "web", TYPE_A);
        let mut q = plain.clone();
        q[11] = 1; // ARCOUNT
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ask(&q), ask(&plain), "OPT neither echoed nor answered");
    }

    #[test]
    fn every_prefix_of_a_query_and_responses() {
        let mut q = query(1, "db.alias", TYPE_A);
        for len in 0..q.len() {
            match answer(&q[..len], &table) {
                None => assert!(len < HEADER_LEN),
                Some(r) => assert_eq!((len >= HEADER_LEN, rcode(&r)), (true, 1), "len {len}"),
            }
        }
        assert_eq!(rcode(&ask(&q)), 0);
        q[2] |= 0x80; // a response
        assert_eq!(answer(&q, &table), None);
    }

    struct XorShift(u64);
    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn check_reply(q: &[u8], r: Option<Vec<u8>>) {
        if let Some(r) = r {
            assert!((HEADER_LEN..=MAX_REPLY_LEN).contains(&r.len()));
            assert_eq!(&r[..2], &q[..2]);
            assert_eq!(r[2] & 0x80, 0x80);
        }
    }

    #[test]
    fn random_datagrams_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..10_000 {
            let len = rng.below(600);
            let q: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            check_reply(&q, answer(&q, &table));
        }
    }

    #[test]
    fn mutated_queries_never_panic() {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let base = query(0xABCD, "many", TYPE_A);
        for _ in 0..10_000 {
            let mut q = base.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(q.len() + 1);
                match rng.below(4) {
                    0 if at < q.len() => q[at] = rng.below(256) as u8,
                    1 if at < q.len() => q[at] ^= 1 << rng.below(8),
                    2 => q.insert(at, rng.below(256) as u8),
                    _ => q.truncate(at.max(1)),
                }
            }
            check_reply(&q, answer(&q, &table));
        }
    }
}
