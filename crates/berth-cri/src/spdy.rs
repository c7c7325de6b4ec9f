//! SPDY/3.1 framing, as far as Kubernetes' streaming protocols use it (kubelet's and client-go's
//! `remotecommand` and `portforward` over `moby/spdystream`): control frames (SYN_STREAM,
//! SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and data frames, and
//! the header blocks, zlib-compressed with the dictionary the SPDY/3 draft defines (one stream
//! of compression per direction for the whole connection). Every length read from the peer is
//! bounded.

use std::collections::BTreeMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The largest frame accepted (spdystream sends at most 32 KiB of data per frame).
pub const MAX_FRAME: usize = 1 << 20;
/// The most header bytes one block may inflate to.
const MAX_HEADERS: usize = 64 << 10;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;
/// The flag that ends a stream's half.
pub const FLAG_FIN: u8 = 0x01;

/// The names and values of the SPDY/3 header dictionary: each one 4-byte-length-prefixed.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// What follows the words in the dictionary, as is.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, ",
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1424);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// One frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// Parses one frame from the front of `buf`: the frame and its length, None if more bytes are
/// needed, an error for a frame too large.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("a SPDY frame of {len} bytes"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let (flags, data) = (buf[4], buf[8..8 + len].to_vec());
    let frame = if buf[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([buf[0] & 0x7f, buf[1]]);
        if version != 3 {
            return Err(format!("SPDY version {version}"));
        }
        Frame::Control {
            kind: u16::from_be_bytes([buf[2], buf[3]]),
            flags,
            data,
        }
    } else {
        let stream = u32::from_be_bytes([buf[0] & 0x7f, buf[1], buf[2], buf[3]]);
        Frame::Data {
            stream,
            flags,
            data,
        }
    };
    Ok(Some((frame, 8 + len)))
}

/// A control frame's bytes.
pub fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, 3];
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

/// A data frame's bytes.
pub fn data(stream: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut out = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
    out.push(flags);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

/// A stream id from the first 4 bytes of a control frame's data.
pub fn stream_of(data: &[u8]) -> Option<u32> {
    let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b) & 0x7fff_ffff)
}

/// Header blocks in and out of one connection.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    dict: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            dict: dictionary(),
        }
    }
}

impl HeaderCodec {
    /// Inflates one header block and reads its name/value pairs (values split at NUL).
    pub fn decode(&mut self, block: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut out = Vec::with_capacity(1024);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADERS {
                    return Err("a SPDY header block too large".into());
                }
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let status = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            match status {
                Ok(Status::Ok | Status::BufError)
                    if input.is_empty() && out.len() < out.capacity() =>
                {
                    break;
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dict)
                        .map_err(|e| format!("the SPDY header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("inflating SPDY headers: {e}")),
            }
        }
        parse_headers(&out)
    }

    /// A header block of `pairs`, deflated.
    pub fn encode(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (k, v) in pairs {
            for s in [k, v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            let _ = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// Name/value pairs of an inflated header block.
fn parse_headers(b: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    let bad = || "a malformed SPDY header block".to_string();
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = b
            .get(at..at.checked_add(n).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let word = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
    let count = word(take(4)?);
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let n = word(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = word(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        let e: &mut Vec<String> = out.entry(name).or_default();
        e.extend(value.split('\0').map(str::to_string));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_drafts() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b",*,enq=0."));
        // The zlib dictionary id (Adler-32) that spdystream's streams carry.
        let (mut a, mut b) = (1u32, 0u32);
        for x in &d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6a7c2);
    }

    #[test]
    fn frames_round_trip_and_partial_input_waits() {
        let f = control(SYN_REPLY, 0, &[0, 0, 0, 5]);
        assert_eq!(parse(&f[..5]).unwrap(), None);
        let (frame, n) = parse(&f).unwrap().unwrap();
        assert_eq!(n, f.len());
        assert_eq!(
            frame,
            Frame::Control {
                kind: SYN_REPLY,
                flags: 0,
                data: vec![0, 0, 0, 5]
            }
        );
        let d = data(7, FLAG_FIN, b"hi");
        assert_eq!(
            parse(&d).unwrap().unwrap().0,
            Frame::Data {
                stream: 7,
                flags: 1,
                data: b"hi".to_vec()
            }
        );
        let mut huge = control(PING, 0, &[]);
        huge[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn header_blocks_survive_both_directions_with_a_shared_dictionary() {
        let mut ours = HeaderCodec::default();
        let mut theirs = HeaderCodec::default();
        for round in 0..3 {
            let port = format!("{}", 8000 + round);
            let block = ours.encode(&[("streamtype", "data"), ("port", &port)]);
            let h = theirs.decode(&block).unwrap();
            assert_eq!(h["streamtype"], ["data"]);
            assert_eq!(h["port"], [port]);
        }
        assert!(theirs.decode(b"\x78\x9c garbage").is_err());
    }
}
