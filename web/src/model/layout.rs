//! How a tenant arranged its widgets ([`BoardLayout`], saved on the server through
//! `GET`/`PUT /api/v1/layout`), and what that makes of the tenant's metrics: which widgets show,
//! in which order, how large and of which kind, and which are hidden.
//!
//! The default is today's board: CPU, memory and disk first, then every other metric by name,
//! each a line chart. A metric the layout does not name (a new one) takes its default place
//! after the ones it names, so new metrics appear without anybody arranging them. Pinned
//! widgets come first.

use microdash_core::api::{LayoutIn, LayoutOut, WidgetIn};
use microdash_core::layout::{WidgetKind, WidgetSettings, WidgetSize};

use super::display_key;
use super::units::Unit;

/// A tenant's arrangement of its widgets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardLayout {
    /// In order; each metric at most once.
    widgets: Vec<WidgetSettings>,
}

/// One widget on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The metric.
    pub metric: String,
    /// How much room it takes.
    pub size: WidgetSize,
    /// How it draws.
    pub kind: WidgetKind,
    /// Kept at the top.
    pub pinned: bool,
}

/// The page's widgets: those shown, in order, and those hidden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arranged {
    /// Shown, in order.
    pub shown: Vec<Placed>,
    /// Hidden, by name.
    pub hidden: Vec<String>,
}

/// A change the user makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutChange {
    /// Hide a widget, or show it again.
    SetHidden(String, bool),
    /// Pin a widget to the top, or unpin it.
    SetPinned(String, bool),
    /// Move a widget this many places among the shown ones (negative: earlier).
    Move(String, i32),
    /// Resize a widget.
    SetSize(String, WidgetSize),
    /// Change how a widget draws.
    SetKind(String, WidgetKind),
}

/// The kinds a metric's widget may take: a gauge only for percentages.
pub fn kinds_for(metric: &str) -> &'static [WidgetKind] {
    if Unit::of(metric) == Unit::Percent { &WidgetKind::ALL } else { &[WidgetKind::Line, WidgetKind::Stat] }
}

impl BoardLayout {
    /// The layout the server answered.
    pub fn from_out(out: &LayoutOut) -> BoardLayout {
        BoardLayout { widgets: out.widgets.iter().map(WidgetSettings::from).collect() }
    }

    /// What to save.
    pub fn to_in(&self) -> LayoutIn {
        let widgets = self
            .widgets
            .iter()
            .map(|w| WidgetIn {
                metric_name: Some(w.metric_name.clone()),
                hidden: Some(w.hidden),
                pinned: Some(w.pinned),
                size: Some(w.size.as_str().to_owned()),
                kind: Some(w.kind.as_str().to_owned()),
            })
            .collect();
        LayoutIn { widgets: Some(widgets) }
    }

    /// The settings of `metric`, if the layout names it.
    fn settings(&self, metric: &str) -> Option<&WidgetSettings> {
        self.widgets.iter().find(|w| w.metric_name == metric)
    }

    /// Whether `metric`'s widget is hidden.
    pub fn is_hidden(&self, metric: &str) -> bool {
        self.settings(metric).is_some_and(|w| w.hidden)
    }

    /// `metrics` (repeats ignored), those the layout names in its order, then the rest in
    /// the default order.
    fn ordered<'a>(&self, metrics: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut all: Vec<&str> = metrics.into_iter().collect();
        all.sort_by_key(|m| display_key(m));
        all.dedup();
        let position = |m: &str| self.widgets.iter().position(|w| w.metric_name == m).unwrap_or(usize::MAX);
        all.sort_by_key(|m| position(m));
        all
    }

    /// What becomes of `metrics` (the tenant's, in any order, repeats ignored).
    pub fn arrange<'a>(&self, metrics: impl IntoIterator<Item = &'a str>) -> Arranged {
        let all = self.ordered(metrics);
        let mut arranged = Arranged::default();
        let (mut pinned, mut rest) = (Vec::new(), Vec::new());
        for metric in all {
            let settings = self.settings(metric);
            if settings.is_some_and(|w| w.hidden) {
                arranged.hidden.push(metric.to_owned());
                continue;
            }
            let placed = Placed {
                metric: metric.to_owned(),
                size: settings.map(|w| w.size).unwrap_or_default(),
                kind: settings.map(|w| w.kind).filter(|k| kinds_for(metric).contains(k)).unwrap_or_default(),
                pinned: settings.is_some_and(|w| w.pinned),
            };
            if placed.pinned { pinned.push(placed) } else { rest.push(placed) }
        }
        arranged.shown = pinned.into_iter().chain(rest).collect();
        arranged.hidden.sort_by_key(|m| display_key(m));
        arranged
    }

    /// Apply `change`, given the tenant's `metrics` (moves are among the widgets shown). The
    /// order on the page is written into the layout first, so a change to one widget moves
    /// no other, and metrics that come later go after these.
    pub fn apply<'a>(&mut self, change: &LayoutChange, metrics: impl IntoIterator<Item = &'a str>) {
        let metrics: Vec<&str> = metrics.into_iter().collect();
        for metric in self.ordered(metrics.iter().copied()) {
            self.entry(metric);
        }
        match change {
            LayoutChange::SetHidden(metric, hidden) => self.entry(metric).hidden = *hidden,
            LayoutChange::SetPinned(metric, pinned) => self.entry(metric).pinned = *pinned,
            LayoutChange::SetSize(metric, size) => self.entry(metric).size = *size,
            LayoutChange::SetKind(metric, kind) => self.entry(metric).kind = *kind,
            LayoutChange::Move(metric, by) => self.move_by(metric, *by, &metrics),
        }
    }

    /// The settings of `metric`, added at the end with the defaults if the layout did not
    /// name it.
    fn entry(&mut self, metric: &str) -> &mut WidgetSettings {
        let at = match self.widgets.iter().position(|w| w.metric_name == metric) {
            Some(at) => at,
            None => {
                self.widgets.push(WidgetSettings {
                    metric_name: metric.to_owned(),
                    hidden: false,
                    pinned: false,
                    size: WidgetSize::default(),
                    kind: WidgetKind::default(),
                });
                self.widgets.len() - 1
            }
        };
        &mut self.widgets[at]
    }

    /// Move `metric` `by` places among the shown widgets of its group (pinned or not): the
    /// order on the page is written into the layout first, so the move is exactly what the
    /// user sees.
    fn move_by(&mut self, metric: &str, by: i32, metrics: &[&str]) {
        let arranged = self.arrange(metrics.iter().copied());
        let Some(from) = arranged.shown.iter().position(|p| p.metric == metric) else { return };
        let pinned = arranged.shown[from].pinned;
        let group: Vec<usize> = (0..arranged.shown.len()).filter(|i| arranged.shown[*i].pinned == pinned).collect();
        let Some(at) = group.iter().position(|i| *i == from) else { return };
        let to_at = (at as i64 + i64::from(by)).clamp(0, group.len() as i64 - 1) as usize;
        let mut order: Vec<String> = arranged.shown.iter().map(|p| p.metric.clone()).collect();
        let moved = order.remove(from);
        order.insert(group[to_at], moved);
        // The page's order, then the hidden ones where they were.
        let mut widgets: Vec<WidgetSettings> = order.iter().map(|m| self.entry(m).clone()).collect();
        widgets.extend(self.widgets.iter().filter(|w| !order.contains(&w.metric_name)).cloned());
        self.widgets = widgets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: [&str; 5] =
        ["app.requests", "disk.used_percent", "cpu.usage_percent", "mem.used_percent", "queue.depth"];

    fn shown(layout: &BoardLayout) -> Vec<String> {
        layout.arrange(METRICS).shown.into_iter().map(|p| p.metric).collect()
    }

    fn check(changes: &[LayoutChange], expected: &[&str], hidden: &[&str]) {
        let mut layout = BoardLayout::default();
        for change in changes {
            layout.apply(change, METRICS);
        }
        assert_eq!(shown(&layout), expected, "{changes:?}");
        assert_eq!(layout.arrange(METRICS).hidden, hidden, "{changes:?}");
        // Whatever was done survives the trip to the server and back.
        let out = microdash_core::layout::Layout::from_input(layout.to_in()).unwrap_or_default().to_output(None);
        assert_eq!(BoardLayout::from_out(&out), layout);
    }

    #[test]
    fn the_default_is_host_metrics_first_then_by_name() {
        check(&[], &["cpu.usage_percent", "mem.used_percent", "disk.used_percent", "app.requests", "queue.depth"], &[]);
    }

    #[test]
    fn widgets_hide_show_pin_and_move() {
        use LayoutChange::*;
        let hide = |m: &str| SetHidden(m.into(), true);
        check(
            &[hide("mem.used_percent")],
            &["cpu.usage_percent", "disk.used_percent", "app.requests", "queue.depth"],
            &["mem.used_percent"],
        );
        check(
            &[hide("mem.used_percent"), SetHidden("mem.used_percent".into(), false)],
            &["cpu.usage_percent", "mem.used_percent", "disk.used_percent", "app.requests", "queue.depth"],
            &[],
        );
        check(
            &[SetPinned("queue.depth".into(), true)],
            &["queue.depth", "cpu.usage_percent", "mem.used_percent", "disk.used_percent", "app.requests"],
            &[],
        );
        check(
            &[Move("app.requests".into(), -2)],
            &["cpu.usage_percent", "app.requests", "mem.used_percent", "disk.used_percent", "queue.depth"],
            &[],
        );
        check(
            &[Move("cpu.usage_percent".into(), -1)],
            &["cpu.usage_percent", "mem.used_percent", "disk.used_percent", "app.requests", "queue.depth"],
            &[],
        );
        check(
            &[Move("cpu.usage_percent".into(), 9)],
            &["mem.used_percent", "disk.used_percent", "app.requests", "queue.depth", "cpu.usage_percent"],
            &[],
        );
        // Moves stay within the pinned group, and pass over hidden widgets.
        check(
            &[
                SetPinned("queue.depth".into(), true),
                Move("cpu.usage_percent".into(), -3),
                hide("mem.used_percent"),
                Move("disk.used_percent".into(), -1),
            ],
            &["queue.depth", "disk.used_percent", "cpu.usage_percent", "app.requests"],
            &["mem.used_percent"],
        );
    }

    #[test]
    fn new_metrics_join_after_the_arranged_ones() {
        let mut layout = BoardLayout::default();
        layout.apply(&LayoutChange::Move("queue.depth".into(), -4), ["cpu.usage_percent", "queue.depth"]);
        let arranged = layout.arrange(["queue.depth", "zeta", "cpu.usage_percent", "mem.used_percent"]);
        let order: Vec<&str> = arranged.shown.iter().map(|p| p.metric.as_str()).collect();
        assert_eq!(order, ["queue.depth", "cpu.usage_percent", "mem.used_percent", "zeta"]);
    }

    #[test]
    fn sizes_and_kinds_stick_and_gauges_are_for_percentages() {
        let mut layout = BoardLayout::default();
        layout.apply(&LayoutChange::SetSize("app.requests".into(), WidgetSize::Large), METRICS);
        layout.apply(&LayoutChange::SetKind("cpu.usage_percent".into(), WidgetKind::Gauge), METRICS);
        layout.apply(&LayoutChange::SetKind("queue.depth".into(), WidgetKind::Gauge), METRICS);
        let arranged = layout.arrange(METRICS);
        let of = |m: &str| arranged.shown.iter().find(|p| p.metric == m).cloned().unwrap_or_else(|| panic!("{m}"));
        assert_eq!(of("app.requests").size, WidgetSize::Large);
        assert_eq!(of("cpu.usage_percent").kind, WidgetKind::Gauge);
        assert_eq!(of("queue.depth").kind, WidgetKind::Line, "no gauge for a plain number");
        assert_eq!(kinds_for("queue.depth"), [WidgetKind::Line, WidgetKind::Stat]);
    }
}
