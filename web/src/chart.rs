//! The line chart: one SVG per widget, one path per series.
//!
//! A chart re-renders only when its widget's data version or the clock's second changes
//! (see [`ChartProps`]'s equality), and then only its path strings and labels change: the
//! frame, grid and legend structure stay in place, so appending a point is a handful of
//! attribute updates, not a rebuilt chart.

use std::rc::Rc;

use yew::prelude::*;

use crate::model::{self, Widget};

/// Line colours: distinguishable with common colour-vision deficiencies and at least 3:1
/// against the dark chart background (WCAG 2.1 non-text contrast).
pub const PALETTE: [&str; 8] = ["#56b4e9", "#e69f00", "#2fd4a0", "#f0e442", "#e07bb5", "#ff7f50", "#8fa8ff", "#c4c4c4"];

const WIDTH: f64 = 600.0;

/// What a chart draws.
#[derive(Properties, Clone)]
pub struct ChartProps {
    /// The data.
    pub widget: Rc<Widget>,
    /// Right edge of the time axis (whole seconds, so charts move together once a second).
    pub now_ms: i64,
    /// Drawing height in SVG units (the width is fixed; the SVG scales to its box).
    #[prop_or(160.0)]
    pub height: f64,
}

impl PartialEq for ChartProps {
    fn eq(&self, other: &Self) -> bool {
        // Comparing versions, not contents: a change always bumps the version.
        Rc::ptr_eq(&self.widget, &other.widget)
            && self.widget.version == other.widget.version
            && self.now_ms == other.now_ms
            && self.height == other.height
    }
}

/// A time series chart with a value grid.
#[function_component]
pub fn LineChart(props: &ChartProps) -> Html {
    let widget = &props.widget;
    let height = props.height;
    let x_range = (props.now_ms - model::WINDOW_MS, props.now_ms);
    let (lo, hi) = model::padded_range(widget.value_range());
    // Grid lines in the SVG; their labels in HTML over it, so text stays crisp and readable
    // at any chart size.
    let levels: Vec<(f64, f64)> = (0..=3)
        .map(|i| {
            let value = lo + (hi - lo) * f64::from(i) / 3.0;
            (value, height - (value - lo) / (hi - lo) * height)
        })
        .collect();
    let grid = levels.iter().map(|(_, y)| {
        html! {
            <line x1="0" x2={WIDTH.to_string()} y1={format!("{y:.1}")} y2={format!("{y:.1}")}
                class="stroke-slate-700/60" stroke-width="1" vector-effect="non-scaling-stroke" />
        }
    });
    let labels = levels.iter().map(|(value, y)| {
        let top = (y / height * 100.0).clamp(8.0, 100.0);
        html! {
            <span class="absolute left-1 -translate-y-full font-mono text-[11px] leading-none text-slate-400" style={format!("top:{top:.1}%")}>
                { model::format_value(*value) }
            </span>
        }
    });
    let lines = widget.series.iter().enumerate().map(|(i, (id, series))| {
        let path = model::line_path(series.points(), x_range, (lo, hi), WIDTH, height);
        html! {
            <path key={id.label()} d={path} fill="none" stroke={PALETTE[i % PALETTE.len()]} stroke-width="1.75"
                stroke-linejoin="round" vector-effect="non-scaling-stroke" />
        }
    });
    let summary = format!("{} over the last {} minutes", widget.metric, model::WINDOW_MS / 60_000);
    let minutes = model::WINDOW_MS / 60_000;
    html! {
        <div>
            <div class="relative">
                <svg viewBox={format!("0 0 {WIDTH} {height}")} role="img" aria-label={summary}
                    class="block h-auto w-full overflow-visible" data-version={widget.version.to_string()}>
                    { for grid }
                    { for lines }
                </svg>
                <div aria-hidden="true" class="pointer-events-none absolute inset-0">{ for labels }</div>
            </div>
            <div aria-hidden="true" class="mt-1 flex justify-between font-mono text-[11px] text-slate-400">
                <span>{ format!("-{minutes}m") }</span><span>{ "now" }</span>
            </div>
        </div>
    }
}

/// Series names with their latest values, coloured like their lines.
#[function_component]
pub fn Legend(props: &ChartProps) -> Html {
    let items = props.widget.series.iter().enumerate().map(|(i, (id, series))| {
        let value = series.last().map(|p| model::format_value(p.1)).unwrap_or_else(|| "–".into());
        let raw = series.last().map(|p| p.1.to_string()).unwrap_or_default();
        html! {
            <li key={id.label()} class="flex items-center gap-2 min-w-0">
                <span aria-hidden="true" class="h-2 w-2 shrink-0 rounded-full" style={format!("background:{}", PALETTE[i % PALETTE.len()])}></span>
                <span class="truncate text-slate-300">{ id.label() }</span>
                <span class="ml-auto font-mono tabular-nums text-slate-100" data-testid="last-value" data-value={raw}>{ value }</span>
            </li>
        }
    });
    html! { <ul class="mt-2 grid gap-1 text-xs" aria-label="Latest values">{ for items }</ul> }
}
