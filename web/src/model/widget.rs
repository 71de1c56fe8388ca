//! What the small drawings show: a stat widget's sparkline, a gauge's arc, and how full a
//! resource bar is and how worrying that is. Drawn as SVG by the components; the geometry is
//! here, so it is tested natively.

use std::fmt::Write;

/// How worrying a percentage is, for bars and gauges (always shown with the number itself,
/// never by colour alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Below [`WARN_PERCENT`].
    Ok,
    /// From [`WARN_PERCENT`].
    Warn,
    /// From [`CRIT_PERCENT`].
    Crit,
}

/// Where a percentage starts to look busy.
pub const WARN_PERCENT: f64 = 75.0;
/// Where it looks critical.
pub const CRIT_PERCENT: f64 = 90.0;

impl Level {
    /// The level of `percent`.
    pub fn of(percent: f64) -> Level {
        if percent >= CRIT_PERCENT {
            Level::Crit
        } else if percent >= WARN_PERCENT {
            Level::Warn
        } else {
            Level::Ok
        }
    }
}

/// How much of a bar or gauge `percent` fills: 0 to 1.
pub fn fill(percent: f64) -> f64 {
    if percent.is_finite() { (percent / 100.0).clamp(0.0, 1.0) } else { 0.0 }
}

/// An SVG path through `points` (time, value) in a `width` x `height` box: time across
/// `window`, values across `range` (bottom to top). Empty with no point; one point is a dot
/// (a zero-length line with round caps).
pub fn sparkline(points: &[(i64, f64)], window: (i64, i64), range: (f64, f64), width: f64, height: f64) -> String {
    let span_t = (window.1 - window.0).max(1) as f64;
    let span_v = if range.1 > range.0 { range.1 - range.0 } else { 1.0 };
    let mut path = String::new();
    for (i, (ts, value)) in points.iter().enumerate() {
        let x = ((ts - window.0) as f64 / span_t * width).clamp(0.0, width);
        let y = height - ((value - range.0) / span_v * height).clamp(0.0, height);
        // Writing into a String cannot fail.
        let _ = write!(path, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { " L" });
    }
    if points.len() == 1 {
        path.push_str(" h0.01");
    }
    path
}

/// The smallest and largest of `values`, widened so a flat line sits in the middle.
pub fn value_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return None;
    }
    if hi > lo { Some((lo, hi)) } else { Some((lo - 1.0, hi + 1.0)) }
}

/// A gauge's arc: the upper half of a circle of `radius` around (`cx`, `cy`), from the left
/// end, filled to `fraction` (0 to 1) clockwise.
pub fn gauge_arc(fraction: f64, cx: f64, cy: f64, radius: f64) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let angle = std::f64::consts::PI * (1.0 - f);
    let (x, y) = (cx + radius * angle.cos(), cy - radius * angle.sin());
    format!("M{:.2} {cy:.2} A{radius:.2} {radius:.2} 0 0 1 {x:.2} {y:.2}", cx - radius)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_fills() {
        assert_eq!([Level::of(10.0), Level::of(75.0), Level::of(90.0)], [Level::Ok, Level::Warn, Level::Crit]);
        assert_eq!([fill(-5.0), fill(50.0), fill(250.0), fill(f64::NAN)], [0.0, 0.5, 1.0, 0.0]);
    }

    #[test]
    fn sparklines_span_their_box_and_one_point_is_a_dot() {
        let path = sparkline(&[(0, 0.0), (50, 5.0), (100, 10.0)], (0, 100), (0.0, 10.0), 100.0, 20.0);
        assert_eq!(path, "M0.0 20.0 L50.0 10.0 L100.0 0.0");
        assert_eq!(sparkline(&[(50, 1.0)], (0, 100), (0.0, 2.0), 100.0, 20.0), "M50.0 10.0 h0.01");
        assert_eq!(sparkline(&[], (0, 100), (0.0, 2.0), 100.0, 20.0), "");
        assert_eq!(value_range([3.0, 1.0, 2.0].into_iter()), Some((1.0, 3.0)));
        assert_eq!(value_range([4.0].into_iter()), Some((3.0, 5.0)), "a flat line sits in the middle");
        assert_eq!(value_range(std::iter::empty()), None);
    }

    #[test]
    fn gauges_fill_the_upper_half_circle() {
        assert_eq!(gauge_arc(0.0, 50.0, 50.0, 40.0), "M10.00 50.00 A40.00 40.00 0 0 1 10.00 50.00");
        assert_eq!(gauge_arc(0.5, 50.0, 50.0, 40.0), "M10.00 50.00 A40.00 40.00 0 0 1 50.00 10.00");
        assert_eq!(gauge_arc(1.0, 50.0, 50.0, 40.0), "M10.00 50.00 A40.00 40.00 0 0 1 90.00 50.00");
    }
}
