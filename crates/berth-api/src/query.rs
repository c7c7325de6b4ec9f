//! Engine API query strings: `a=1&b=x%20y` into pairs (percent-decoding, `+` as a space), and
//! the `filters` parameter (`{"key":["v1","v2"]}`, or the old `{"key":{"v1":true}}`) into
//! key/value pairs. Client input: parsing never panics and refuses what is not a filter.

/// Decodes `%XX` escapes and `+`; a `%` not followed by two hex digits stays as it is, and
/// bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// A URL path decoded as Go's `URL.Path` is (where dockerd routes): `%XX` escapes only, `+`
/// stays a plus.
pub fn path_decode(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string's parameters, in order, decoded; a parameter without `=` has an empty value.
pub fn pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// The `filters` parameter's value as key/value pairs (a key once per value); the error is
/// the message dockerd gives.
pub fn filters(raw: &str) -> Result<Vec<(String, String)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "invalid filter: not an object".to_string())?;
    let mut out = Vec::new();
    for (k, vals) in obj {
        match vals {
            serde_json::Value::Array(a) => {
                for x in a {
                    out.push((k.clone(), x.as_str().unwrap_or_default().to_string()));
                }
            }
            serde_json::Value::Object(m) => {
                for (x, on) in m {
                    if on.as_bool().unwrap_or(false) {
                        out.push((k.clone(), x.clone()));
                    }
                }
            }
            _ => return Err(format!("invalid filter {k}")),
        }
    }
    Ok(out)
}

/// The default detach keys of attach and exec: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Docker's detach key list (`ctrl-p,ctrl-q`, `a`, `ctrl-@` … `ctrl-_`, `DEL`) as bytes; the
/// unknown key is the error.
pub fn detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    const CTRL: &[u8] = b"@abcdefghijklmnopqrstuvwxyz[\\]^_";
    spec.split(',')
        .map(|key| match key.as_bytes() {
            [one] => Ok(*one),
            _ if key == "DEL" => Ok(127),
            _ => key
                .strip_prefix("ctrl-")
                .filter(|c| c.len() == 1)
                .and_then(|c| CTRL.iter().position(|x| *x == c.as_bytes()[0]))
                .and_then(|code| u8::try_from(code).ok())
                .ok_or_else(|| format!("Unknown character: '{key}'")),
        })
        .collect()
}

/// Finds the detach keys in what a client types: bytes that may start the sequence are held
/// back until it completes (the client detaches; they are dropped) or breaks (they go on).
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// The bytes of `data` to pass on, and whether the keys were typed (what follows them in
    /// `data` is dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match_as_dockers() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), DEFAULT_DETACH_KEYS);
        assert_eq!(
            detach_keys("a,ctrl-@,ctrl-_,DEL").unwrap(),
            [b'a', 0, 31, 127]
        );
        assert_eq!(
            detach_keys("ctrl-pp").unwrap_err(),
            "Unknown character: 'ctrl-pp'"
        );
        let mut s = DetachScanner::new(detach_keys("ctrl-x,y").unwrap());
        assert_eq!(s.feed(b"ab\x18"), (b"ab".to_vec(), false));
        // The held byte goes on when the sequence breaks.
        assert_eq!(s.feed(b"z"), (b"\x18z".to_vec(), false));
        assert_eq!(s.feed(b"q\x18"), (b"q".to_vec(), false));
        assert_eq!(s.feed(b"yrest"), (Vec::new(), true));
        let mut s = DetachScanner::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }

    #[test]
    fn paths_decode_escapes_but_keep_plus() {
        assert_eq!(path_decode("/networks/my%20net"), "/networks/my net");
        assert_eq!(path_decode("/images/a+b/json"), "/images/a+b/json");
        assert_eq!(path_decode("/x/%zz%4"), "/x/%zz%4");
    }

    #[test]
    fn pairs_and_filters_decode_like_dockers() {
        assert_eq!(
            pairs("all=1&filters=%7B%22a%22%3A%5B%22x+y%22%5D%7D&bad=%zz&flag"),
            vec![
                ("all".to_string(), "1".to_string()),
                ("filters".to_string(), r#"{"a":["x y"]}"#.to_string()),
                ("bad".to_string(), "%zz".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(
            filters(r#"{"label":["a=b","c"],"dangling":{"true":true,"false":false}}"#).unwrap(),
            vec![
                ("dangling".to_string(), "true".to_string()),
                ("label".to_string(), "a=b".to_string()),
                ("label".to_string(), "c".to_string()),
            ]
        );
        assert_eq!(filters("[]").unwrap_err(), "invalid filter: not an object");
        assert_eq!(filters(r#"{"a":1}"#).unwrap_err(), "invalid filter a");
    }
}
