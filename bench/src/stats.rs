//! Order statistics over timings.

use std::time::Duration;

/// Median, 10th and 90th percentile of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: Duration,
    pub p10: Duration,
    pub p90: Duration,
    pub n: usize,
}

pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2
    };
    Some(Summary {
        median,
        p10: at(0.1),
        p90: at(0.9),
        n: s.len(),
    })
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Berth / peer; None when the peer's figure is zero (or less).
pub fn ratio(berth: f64, peer: f64) -> Option<f64> {
    (peer > 0.0).then(|| berth / peer)
}

/// [`ratio`] as a table cell: two decimals, or "—".
pub fn ratio_cell(berth: f64, peer: f64) -> String {
    ratio(berth, peer)
        .map(|r| format!("{r:.2}"))
        .unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let d = |n| Duration::from_millis(n);
        assert_eq!(summarize(&[d(3), d(1), d(2)]).unwrap().median, d(2));
        assert_eq!(
            summarize(&[d(4), d(1), d(2), d(3)]).unwrap().median,
            Duration::from_micros(2500)
        );
        assert!(summarize(&[]).is_none());
    }
}
