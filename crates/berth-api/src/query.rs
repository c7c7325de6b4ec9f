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

#[cfg(test)]
mod tests {
    use super::*;

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
