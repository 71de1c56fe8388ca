//! One widget of a tenant's page: a metric drawn as a line chart, a big value with a sparkline,
//! or a gauge (percentages), sized as the tenant arranged it, with its live state, its pause
//! and expand buttons and, while arranging, the controls to move, pin, hide, resize and change
//! it.

use std::rc::Rc;

use microdash_core::layout::{WidgetKind, WidgetSize};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::components::badges::resolution_note;
use crate::components::chart::{Legend, TimeChart};
use crate::components::style::{CARD, CHIP};
use crate::model::alerts::Overlay;
use crate::model::layout::{LayoutChange, Placed, kinds_for};
use crate::model::plot::color_of;
use crate::model::units::Unit;
use crate::model::widget::{Level, fill, gauge_arc, sparkline, value_range};
use crate::model::{self, Widget};

/// Whether a widget follows the live data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    /// Not a live view (a past range).
    History,
    /// Following.
    Live,
    /// Paused, this widget alone.
    Paused,
    /// Paused with the whole dashboard (the header's switch).
    PausedAll,
}

/// What a card shows.
#[derive(Properties, PartialEq)]
pub struct WidgetProps {
    /// The data shown (a snapshot while paused).
    pub widget: Rc<Widget>,
    /// Its place, size and kind.
    pub placed: Placed,
    /// The time axis.
    pub window: (i64, i64),
    /// The range in words.
    pub range_text: AttrValue,
    /// For ages (whole seconds).
    pub now_ms: i64,
    /// Alert markers and thresholds.
    pub overlay: Rc<Overlay>,
    /// Live, paused or history.
    pub live: LiveState,
    /// Pause or resume this widget.
    pub on_pause: Callback<()>,
    /// Open it large.
    pub on_expand: Callback<()>,
    /// A drag across the chart.
    pub on_zoom: Callback<(i64, i64)>,
    /// The arranging controls are shown.
    pub arranging: bool,
    /// A change of the arrangement.
    pub on_change: Callback<LayoutChange>,
}

/// How many columns a size takes in the page's grid.
fn span(size: WidgetSize) -> &'static str {
    match size {
        WidgetSize::Small => "",
        WidgetSize::Medium => "md:col-span-2",
        WidgetSize::Large => "col-span-full",
    }
}

/// A widget card.
#[function_component]
pub fn WidgetCard(props: &WidgetProps) -> Html {
    let metric = props.placed.metric.clone();
    let widget = &props.widget;
    let body = match props.placed.kind {
        WidgetKind::Line => html! {
            <>
                <TimeChart widget={widget.clone()} window={props.window} range_text={props.range_text.clone()}
                    on_zoom={props.on_zoom.clone()} overlay={props.overlay.clone()} />
                <Legend widget={widget.clone()} now_ms={props.now_ms} />
            </>
        },
        WidgetKind::Stat => stat(widget, props.window, props.now_ms),
        WidgetKind::Gauge => gauge(widget, props.now_ms),
    };
    let (state_text, state_icon) = match props.live {
        LiveState::History => ("", ""),
        LiveState::Live => ("live", "●"),
        LiveState::Paused | LiveState::PausedAll => ("paused", "❚❚"),
    };
    let pause = matches!(props.live, LiveState::Live | LiveState::Paused).then(|| {
        let on_pause = props.on_pause.clone();
        let verb = if props.live == LiveState::Live { "Pause" } else { "Resume" };
        html! {
            <button type="button" class={CHIP} onclick={move |_| on_pause.emit(())}>
                { verb }<span class="sr-only">{ format!(" {metric}") }</span>
            </button>
        }
    });
    let expand = {
        let on_expand = props.on_expand.clone();
        html! {
            <button type="button" onclick={move |_| on_expand.emit(())} aria-label={format!("Expand {metric}")} class={CHIP}>
                { "Expand" }
            </button>
        }
    };
    html! {
        <li class={classes!(CARD, "min-w-0", "p-4", span(props.placed.size))} data-metric={metric.clone()}
            data-kind={props.placed.kind.as_str()} data-size={props.placed.size.as_str()} data-pinned={props.placed.pinned.to_string()}>
            <div class="mb-2 flex flex-wrap items-center gap-2">
                <h2 class="min-w-0 truncate font-mono text-sm text-slate-100" title={metric.clone()}>
                    if props.placed.pinned {
                        <span aria-hidden="true" class="mr-1 text-sky-300">{ "📌" }</span><span class="sr-only">{ "Pinned: " }</span>
                    }
                    { &metric }
                </h2>
                { resolution_note(widget) }
                <span class="ml-auto"></span>
                if !state_text.is_empty() {
                    <span data-testid="card-live" data-state={state_text} class="inline-flex items-center gap-1 text-xs text-slate-300">
                        <span aria-hidden="true">{ state_icon }</span>{ state_text }
                    </span>
                }
                { pause.unwrap_or_default() }
                { expand }
            </div>
            if props.arranging {
                { arrange_controls(&props.placed, &props.on_change) }
            }
            { body }
        </li>
    }
}

/// Move, pin, hide, resize and change a widget.
fn arrange_controls(placed: &Placed, on_change: &Callback<LayoutChange>) -> Html {
    let metric = placed.metric.clone();
    let button = |label: &str, change: LayoutChange, pressed: Option<bool>| {
        let on_change = on_change.clone();
        html! {
            <button type="button" class={CHIP} aria-pressed={pressed.map(|p| p.to_string())} onclick={move |_| on_change.emit(change.clone())}>
                { label.to_owned() }<span class="sr-only">{ format!(" {metric}") }</span>
            </button>
        }
    };
    let size = {
        let (on_change, metric) = (on_change.clone(), metric.clone());
        Callback::from(move |event: Event| {
            let Some(select) = event.target_dyn_into::<HtmlSelectElement>() else { return };
            if let Ok(size) = select.value().parse::<WidgetSize>() {
                on_change.emit(LayoutChange::SetSize(metric.clone(), size));
            }
        })
    };
    let kind = {
        let (on_change, metric) = (on_change.clone(), metric.clone());
        Callback::from(move |event: Event| {
            let Some(select) = event.target_dyn_into::<HtmlSelectElement>() else { return };
            if let Ok(kind) = select.value().parse::<WidgetKind>() {
                on_change.emit(LayoutChange::SetKind(metric.clone(), kind));
            }
        })
    };
    let select_class = "min-h-7 rounded-lg bg-slate-800 px-2 py-1 text-xs text-slate-100 ring-1 ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 max-sm:min-h-11";
    html! {
        <div role="group" aria-label={format!("Arrange {metric}")} class="mb-3 flex flex-wrap items-center gap-2" data-testid="arrange">
            { button("Move earlier", LayoutChange::Move(metric.clone(), -1), None) }
            { button("Move later", LayoutChange::Move(metric.clone(), 1), None) }
            { button("Pin", LayoutChange::SetPinned(metric.clone(), !placed.pinned), Some(placed.pinned)) }
            { button("Hide", LayoutChange::SetHidden(metric.clone(), true), None) }
            <label class="inline-flex items-center gap-1 text-xs text-slate-300">
                { "Size" }
                <select onchange={size} class={select_class} aria-label={format!("Size of {metric}")}>
                    { for WidgetSize::ALL.iter().map(|s| html! { <option value={s.as_str()} selected={*s == placed.size}>{ s.as_str() }</option> }) }
                </select>
            </label>
            <label class="inline-flex items-center gap-1 text-xs text-slate-300">
                { "Type" }
                <select onchange={kind} class={select_class} aria-label={format!("Type of {metric}")}>
                    { for kinds_for(&metric).iter().map(|k| html! { <option value={k.as_str()} selected={*k == placed.kind}>{ kind_label(*k) }</option> }) }
                </select>
            </label>
        </div>
    }
}

/// A kind in words.
pub fn kind_label(kind: WidgetKind) -> &'static str {
    match kind {
        WidgetKind::Line => "line chart",
        WidgetKind::Stat => "value and sparkline",
        WidgetKind::Gauge => "gauge",
    }
}

/// Series shown by a stat or gauge widget, at most this many.
const MAX_SMALL_SERIES: usize = 8;

/// The latest value of each series, large, each over a sparkline of the window.
fn stat(widget: &Widget, window: (i64, i64), now_ms: i64) -> Html {
    let unit = Unit::of(&widget.metric);
    let (width, height) = (240.0, 36.0);
    let items = widget.series.iter().take(MAX_SMALL_SERIES).map(|(id, series)| {
        let points: Vec<(i64, f64)> = series.points().filter(|(t, _)| *t >= window.0 && *t <= window.1).collect();
        let range = value_range(points.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
        let path = sparkline(&points, window, range, width, height);
        let last = series.last();
        html! {
            <li key={id.label()} class="grid gap-1">
                <div class="flex items-baseline gap-2">
                    <span class="truncate text-xs text-slate-300">{ id.label() }</span>
                    <span class="ml-auto font-mono text-2xl tabular-nums text-slate-50" data-testid="last-value"
                        data-value={last.map(|p| p.1.to_string()).unwrap_or_default()}>
                        { last.map(|p| unit.format(p.1)).unwrap_or_else(|| "–".into()) }
                    </span>
                    <span class="w-14 shrink-0 text-right font-mono text-xs tabular-nums text-slate-300" data-testid="last-age">
                        { last.map(|p| format!("{} ago", model::format_age(now_ms - p.0))).unwrap_or_default() }
                    </span>
                </div>
                <svg viewBox={format!("0 0 {width} {height}")} preserveAspectRatio="none" class="h-9 w-full" aria-hidden="true">
                    <path d={path} fill="none" stroke={color_of(id)} stroke-width="2" stroke-linecap="round" stroke-linejoin="round" vector-effect="non-scaling-stroke" />
                </svg>
            </li>
        }
    });
    html! { <ul class="grid gap-3" aria-label="Latest values" data-testid="stat">{ for items }</ul> }
}

/// A gauge from 0 to 100 per series, with the value in words.
fn gauge(widget: &Widget, now_ms: i64) -> Html {
    let unit = Unit::of(&widget.metric);
    let items = widget.series.iter().take(MAX_SMALL_SERIES).map(|(id, series)| {
        let last = series.last();
        let value = last.map(|p| p.1);
        let color = match value.map(Level::of) {
            Some(Level::Crit) => "#f87171",
            Some(Level::Warn) => "#fbbf24",
            _ => "#34d399",
        };
        html! {
            <li key={id.label()} class="flex min-w-28 flex-col items-center">
                <svg viewBox="0 0 100 56" class="w-28" aria-hidden="true">
                    <path d={gauge_arc(1.0, 50.0, 50.0, 40.0)} fill="none" stroke="#334155" stroke-width="10" stroke-linecap="round" />
                    if let Some(v) = value {
                        <path d={gauge_arc(fill(v), 50.0, 50.0, 40.0)} fill="none" stroke={color} stroke-width="10" stroke-linecap="round" />
                    }
                </svg>
                <span class="-mt-4 font-mono text-xl tabular-nums text-slate-50" data-testid="last-value"
                    data-value={value.map(|v| v.to_string()).unwrap_or_default()}>
                    { value.map(|v| unit.format(v)).unwrap_or_else(|| "–".into()) }
                </span>
                <span class="max-w-full truncate text-xs text-slate-300">{ id.label() }</span>
                <span class="font-mono text-xs text-slate-300" data-testid="last-age">
                    { last.map(|p| format!("{} ago", model::format_age(now_ms - p.0))).unwrap_or_default() }
                </span>
            </li>
        }
    });
    html! { <ul class="flex flex-wrap justify-around gap-4" aria-label="Latest values" data-testid="gauge">{ for items }</ul> }
}
