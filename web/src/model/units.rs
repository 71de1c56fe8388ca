//! Units of a metric, told from its name, and how values and axis ticks read in them.
//!
//! Names follow the agent's conventions (`cpu.usage_percent`, `mem.used_bytes`,
//! `net.rx_bytes_per_s`, `uptime_s`); a name without a known suffix is a plain number.

/// What a metric's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// 0-100.
    Percent,
    /// Bytes, shown in binary multiples (KiB, MiB, GiB).
    Bytes,
    /// Bytes per second, binary multiples.
    BytesPerSecond,
    /// Seconds, shown as ms, s, min, h or d.
    Seconds,
    /// Milliseconds, shown like seconds.
    Milliseconds,
    /// No known unit: thousands as k, M, G.
    Plain,
}

const BINARY: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

impl Unit {
    /// The unit of `metric`, from the suffix of its name.
    pub fn of(metric: &str) -> Unit {
        let name = metric.rsplit('.').next().unwrap_or(metric).to_ascii_lowercase();
        let ends = |suffixes: &[&str]| suffixes.iter().any(|s| name == s.trim_start_matches('_') || name.ends_with(s));
        if ends(&["percent", "_pct"]) {
            Unit::Percent
        } else if ends(&["bytes_per_s", "bytes_per_second", "bytes_per_sec"]) {
            Unit::BytesPerSecond
        } else if ends(&["bytes"]) {
            Unit::Bytes
        } else if ends(&["_ms", "_millis", "milliseconds"]) {
            Unit::Milliseconds
        } else if ends(&["_s", "_secs", "seconds"]) {
            Unit::Seconds
        } else {
            Unit::Plain
        }
    }

    /// The value axis's fixed range, where the unit has one (percent: 0-100, widened only when
    /// the data leaves it, as a multi-core CPU figure may).
    pub fn fixed_range(self, data: Option<(f64, f64)>) -> Option<(f64, f64)> {
        (self == Unit::Percent).then(|| match data {
            Some((lo, hi)) => (lo.min(0.0), hi.max(100.0)),
            None => (0.0, 100.0),
        })
    }

    /// Tick spacings the chart library chooses from, when the decimal 1-2-5 steps it uses by
    /// default would not be round in this unit: binary multiples for bytes, clock durations
    /// for seconds.
    pub fn increments(self) -> Option<Vec<f64>> {
        let steps = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
        match self {
            Unit::Bytes | Unit::BytesPerSecond => {
                Some((0..BINARY.len() as i32).flat_map(|k| steps.map(|s| s * 1024f64.powi(k))).collect())
            }
            Unit::Seconds | Unit::Milliseconds => {
                let per = if self == Unit::Milliseconds { 1000.0 } else { 1.0 };
                let sub: Vec<f64> = (-3..0).flat_map(|e| [1.0, 2.0, 5.0].map(|s| s * 10f64.powi(e))).collect();
                let clock = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];
                let hours = [7200.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0, 2592000.0];
                Some(sub.iter().chain(&clock).chain(&hours).map(|s| s * per).collect())
            }
            Unit::Percent | Unit::Plain => None,
        }
    }

    /// One value, as a tooltip or legend shows it: three significant digits and the unit.
    pub fn format(self, value: f64) -> String {
        let (factor, suffix) = self.scale(value.abs());
        let number = trimmed(value / factor, significant_decimals(value / factor));
        join(&number, suffix)
    }

    /// Labels of an axis's ticks, all in the same unit (the one the largest tick reads best
    /// in) and with as many decimals as the spacing needs, so `0.5 GiB, 1 GiB, 1.5 GiB` rather
    /// than `512 MiB, 1 GiB, 1.5 GiB`.
    pub fn format_ticks(self, ticks: &[f64]) -> Vec<String> {
        let largest = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        let spacing = ticks.windows(2).map(|w| (w[1] - w[0]).abs()).filter(|s| *s > 0.0).fold(f64::INFINITY, f64::min);
        // The largest tick's unit, unless the spacing is not round in it (100 MiB is
        // 0.0977 GiB): then the next smaller unit, where it is (1300 MiB, 1400 MiB).
        let (mut factor, mut suffix) = self.scale(largest);
        while spacing.is_finite() && decimals_of(spacing / factor) > 1 {
            let smaller = self.scale(factor * 0.999);
            if smaller.0 >= factor {
                break;
            }
            (factor, suffix) = smaller;
        }
        // Ticks are multiples of the spacing, so they need the decimals it needs.
        let decimals = if spacing.is_finite() { decimals_of(spacing / factor) } else { 0 };
        ticks.iter().map(|t| join(&trimmed(t / factor, decimals), suffix)).collect()
    }

    /// The divisor and suffix a magnitude reads best in.
    fn scale(self, magnitude: f64) -> (f64, &'static str) {
        match self {
            Unit::Percent => (1.0, "%"),
            Unit::Bytes | Unit::BytesPerSecond => {
                let mut k = 0;
                while k + 1 < BINARY.len() && magnitude >= 1024f64.powi(k as i32 + 1) {
                    k += 1;
                }
                let names_per_s = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s", "PiB/s"];
                let suffix = if self == Unit::Bytes { BINARY[k] } else { names_per_s[k] };
                (1024f64.powi(k as i32), suffix)
            }
            Unit::Milliseconds => {
                let (factor, suffix) = Unit::Seconds.scale(magnitude / 1000.0);
                (factor * 1000.0, suffix)
            }
            Unit::Seconds => match magnitude {
                0.0 => (1.0, "s"),
                m if m < 1e-3 => (1e-6, "µs"),
                m if m < 1.0 => (1e-3, "ms"),
                m if m < 60.0 => (1.0, "s"),
                m if m < 3600.0 => (60.0, "min"),
                m if m < 86400.0 => (3600.0, "h"),
                _ => (86400.0, "d"),
            },
            Unit::Plain => match magnitude {
                m if m >= 1e12 => (1e12, "T"),
                m if m >= 1e9 => (1e9, "G"),
                m if m >= 1e6 => (1e6, "M"),
                m if m >= 1e4 => (1e3, "k"),
                _ => (1.0, ""),
            },
        }
    }
}

/// The fewest decimals (up to 6) that write `x` exactly enough.
fn decimals_of(x: f64) -> usize {
    (0..=6)
        .find(|d| {
            let scaled = x * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(6)
}

/// Decimals for three significant digits.
fn significant_decimals(x: f64) -> usize {
    match x.abs() {
        a if a >= 100.0 || a == 0.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        a => ((-a.log10()).floor() as usize + 3).min(6),
    }
}

/// `x` with `decimals` decimals, trailing zeros dropped; never `-0`.
fn trimmed(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

fn join(number: &str, suffix: &str) -> String {
    match suffix {
        "" => number.to_owned(),
        "%" => format!("{number}%"),
        _ => format!("{number} {suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_from_metric_names() {
        let check = |name: &str, unit: Unit| assert_eq!(Unit::of(name), unit, "{name}");
        check("cpu.usage_percent", Unit::Percent);
        check("disk.used_percent", Unit::Percent);
        check("mem.used_bytes", Unit::Bytes);
        check("net.rx_bytes_per_s", Unit::BytesPerSecond);
        check("uptime_s", Unit::Seconds);
        check("agent.interval_s", Unit::Seconds);
        check("http.latency_ms", Unit::Milliseconds);
        check("load.1m", Unit::Plain);
        check("queue.depth", Unit::Plain);
        check("e2e.latency", Unit::Plain);
        check("percent", Unit::Percent);
        check("bytes_s", Unit::Seconds);
    }

    #[test]
    fn values_read_in_their_unit() {
        let check = |unit: Unit, value: f64, text: &str| assert_eq!(unit.format(value), text, "{unit:?} {value}");
        check(Unit::Percent, 42.5, "42.5%");
        check(Unit::Percent, 100.0, "100%");
        check(Unit::Bytes, 512.0, "512 B");
        check(Unit::Bytes, 1536.0, "1.5 KiB");
        check(Unit::Bytes, 3.25 * 1024.0 * 1024.0 * 1024.0, "3.25 GiB");
        check(Unit::BytesPerSecond, 2.0 * 1024.0 * 1024.0, "2 MiB/s");
        check(Unit::Seconds, 0.25, "250 ms");
        check(Unit::Seconds, 90.0, "1.5 min");
        check(Unit::Seconds, 3.0 * 86400.0, "3 d");
        check(Unit::Milliseconds, 1500.0, "1.5 s");
        check(Unit::Milliseconds, 12.0, "12 ms");
        check(Unit::Plain, 123_456.0, "123 k");
        check(Unit::Plain, 0.0123, "0.0123");
        check(Unit::Plain, -3.0, "-3");
    }

    #[test]
    fn ticks_share_one_unit_and_enough_decimals() {
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(
            Unit::Bytes.format_ticks(&[0.0, 0.5 * gib, gib, 1.5 * gib]),
            ["0 GiB", "0.5 GiB", "1 GiB", "1.5 GiB"]
        );
        assert_eq!(Unit::Percent.format_ticks(&[0.0, 25.0, 50.0, 75.0, 100.0]), ["0%", "25%", "50%", "75%", "100%"]);
        assert_eq!(Unit::Plain.format_ticks(&[0.0, 0.05, 0.1]), ["0", "0.05", "0.1"]);
        assert_eq!(Unit::Plain.format_ticks(&[10_000.0, 20_000.0]), ["10 k", "20 k"]);
        assert_eq!(Unit::Seconds.format_ticks(&[0.0, 1800.0, 3600.0]), ["0 h", "0.5 h", "1 h"]);
        assert_eq!(Unit::Seconds.format_ticks(&[2700.0, 3600.0, 4500.0]), ["45 min", "60 min", "75 min"]);
        let mib = 1024.0 * 1024.0;
        assert_eq!(Unit::Bytes.format_ticks(&[1300.0 * mib, 1400.0 * mib]), ["1300 MiB", "1400 MiB"]);
        assert_eq!(Unit::Plain.format_ticks(&[0.0, 0.25, 0.5]), ["0", "0.25", "0.5"]);
        assert!(Unit::Plain.format_ticks(&[]).is_empty());
    }

    #[test]
    fn byte_ticks_step_in_binary_multiples_and_percent_stays_on_0_100() {
        let incrs = Unit::Bytes.increments().unwrap_or_default();
        assert!(incrs.contains(&(200.0 * 1024.0 * 1024.0)), "200 MiB");
        assert!(incrs.contains(&(1024.0 * 1024.0 * 1024.0)), "1 GiB");
        assert!(incrs.windows(2).all(|w| w[0] < w[1]));
        let secs = Unit::Seconds.increments().unwrap_or_default();
        assert!(secs.contains(&900.0) && secs.contains(&86400.0) && secs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Unit::Milliseconds.increments().unwrap_or_default()[0], 1.0);
        assert_eq!(Unit::Plain.increments(), None);
        assert_eq!(Unit::Percent.fixed_range(Some((3.0, 40.0))), Some((0.0, 100.0)));
        assert_eq!(Unit::Percent.fixed_range(Some((3.0, 180.0))), Some((0.0, 180.0)));
        assert_eq!(Unit::Bytes.fixed_range(None), None);
    }
}
