//! Docker's human units: sizes in decimal units (`units.HumanSize`: "1.23MB"), durations
//! ("Up 3 minutes", "2 hours ago"), memory flags in binary units ("512m"), and `--since`
//! values (RFC 3339, unix seconds or a duration like "10m" before now).

use std::time::{SystemTime, UNIX_EPOCH};

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Go's `%.{prec}g` for the positive values the size functions print.
fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i64 + 1;
    let decimals = (prec as i64 - digits).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

fn custom_size(size: f64, base: f64, units: &[&str], prec: usize) -> String {
    let mut v = size;
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    format!("{}{}", go_g(v, prec), units[i])
}

/// `units.HumanSize`: "1.23MB", "4.096kB", "0B".
pub fn human_size(bytes: i64) -> String {
    custom_size(bytes as f64, 1000.0, &DECIMAL, 4)
}

/// `units.HumanSizeWithPrecision(size, 3)` as `docker ps -s` prints it.
pub fn human_size3(bytes: i64) -> String {
    custom_size(bytes as f64, 1000.0, &DECIMAL, 3)
}

/// `units.BytesSize`: binary units ("1.5GiB"), as `docker stats` and `info` print memory.
pub fn bytes_size(bytes: f64) -> String {
    custom_size(bytes, 1024.0, &BINARY, 4)
}

/// `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let hours_rounded = (secs as f64 / 3600.0 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if secs / 60 == 1 {
        "About a minute".into()
    } else if secs / 60 < 60 {
        format!("{} minutes", secs / 60)
    } else if hours_rounded == 1 {
        "About an hour".into()
    } else if hours_rounded < 48 {
        format!("{hours_rounded} hours")
    } else if hours_rounded < 24 * 7 * 2 {
        format!("{} days", hours_rounded / 24)
    } else if hours_rounded < 24 * 30 * 2 {
        format!("{} weeks", hours_rounded / 24 / 7)
    } else if hours_rounded < 24 * 365 * 2 {
        format!("{} months", hours_rounded / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// Seconds since the unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "2 hours ago" for a unix time.
pub fn ago(unix: i64) -> String {
    format!("{} ago", human_duration(now() - unix))
}

/// `RAMInBytes`: "512m", "1g", "100000" (binary multipliers, as docker's -m).
pub fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t).to_string();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => anyhow::bail!("invalid size: '{s}'"),
    };
    Ok((num * mult) as i64)
}

/// A Go duration ("10m", "1h30m", "45s", "1.5h") in seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Some(total)
}

/// A `--since`/`--until` value as the API wants it (unix seconds, possibly fractional).
pub fn timestamp_arg(s: &str) -> anyhow::Result<String> {
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') && !s.is_empty() {
        return Ok(s.to_string());
    }
    if let Some(d) = parse_go_duration(s) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            - d;
        return Ok(format!("{t:.9}"));
    }
    if let Some(ns) = berth_clock::parse_rfc3339(s) {
        return Ok(format!(
            "{}.{:09}",
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000)
        ));
    }
    anyhow::bail!(
        "invalid value for timestamp {s:?}: use RFC 3339, unix seconds or a duration like 10m"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_230_000), "1.23MB");
        assert_eq!(human_size(4_096), "4.096kB");
        assert_eq!(human_size(1_234_567_890), "1.235GB");
        assert_eq!(human_size3(1_234_567), "1.23MB");
        assert_eq!(bytes_size(1536.0 * 1024.0 * 1024.0), "1.5GiB");
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
    }

    #[test]
    fn memory_and_durations_parse() {
        assert_eq!(ram_in_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert!(ram_in_bytes("x").is_err());
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(timestamp_arg("1700000000").unwrap(), "1700000000");
    }
}
