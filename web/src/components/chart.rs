//! The time series chart (drawn by uPlot through [`crate::uplot`]) and its legend.
//!
//! A chart re-renders only when its widget's data version, its window or its size changes
//! (see [`ChartProps`]'s equality); then the frame is rebuilt natively and handed over in one
//! call. The uPlot instance is rebuilt only when the layout changes (a series or band comes
//! or goes), so appending a live point is one `setData`.

use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;

use crate::model::alerts::Overlay;
use crate::model::plot::{self, Frame, Layout};
use crate::model::units::Unit;
use crate::model::{self, Widget};
use crate::uplot::{self, ZoomTarget};

/// Charts with this key share their crosshair.
pub const SYNC_KEY: &str = "microdash-page";

/// What a chart draws.
#[derive(Properties, Clone)]
pub struct ChartProps {
    /// The data.
    pub widget: Rc<Widget>,
    /// The time axis, Unix milliseconds.
    pub window: (i64, i64),
    /// Drawing height in pixels (the width follows the container).
    #[prop_or(180)]
    pub height: u32,
    /// The range in words, for the chart's accessible name.
    #[prop_or_default]
    pub range_text: AttrValue,
    /// A drag across the chart: `(start, end)` in Unix milliseconds.
    #[prop_or_default]
    pub on_zoom: Callback<(i64, i64)>,
    /// Alert transitions and rule thresholds drawn over the data.
    #[prop_or_default]
    pub overlay: Rc<Overlay>,
}

impl PartialEq for ChartProps {
    fn eq(&self, other: &Self) -> bool {
        // Comparing versions, not contents: a change always bumps the version. The callback
        // is left out: it is read through a shared cell, so a new one needs no re-render.
        Rc::ptr_eq(&self.widget, &other.widget)
            && self.widget.version == other.widget.version
            && self.window == other.window
            && self.height == other.height
            && self.range_text == other.range_text
            && (Rc::ptr_eq(&self.overlay, &other.overlay) || self.overlay == other.overlay)
    }
}

/// A time series chart: axes with units, a min-max band for rollups, gaps where data stopped,
/// a crosshair synced across the page, drag to zoom.
#[function_component]
pub fn TimeChart(props: &ChartProps) -> Html {
    let node = use_node_ref();
    let chart = use_mut_ref(|| None::<uplot::Chart>);
    let zoom: ZoomTarget = (*use_memo((), |_| Rc::new(RefCell::new(Callback::noop())))).clone();
    *zoom.borrow_mut() = props.on_zoom.clone();
    let error = use_state(|| None::<String>);
    let key = (props.widget.version, Rc::as_ptr(&props.widget) as usize, props.window);
    let built: Rc<(Layout, Frame)> = use_memo(key, |_| plot::frame(&props.widget, props.window));
    // The overlay a new chart starts with; the effect below keeps a standing chart's current.
    let overlay = use_mut_ref(|| Rc::new(Overlay::default()));
    *overlay.borrow_mut() = props.overlay.clone();
    {
        let (node, chart, built, error) = (node.clone(), chart.clone(), built.clone(), error.clone());
        let unit = Unit::of(&props.widget.metric);
        let (height, window, overlay) = (props.height, props.window, overlay.clone());
        use_effect_with(key, move |_| {
            let Some(target) = node.cast::<web_sys::HtmlElement>() else { return };
            let (layout, frame) = &*built;
            let mut slot = chart.borrow_mut();
            if slot.as_ref().is_none_or(|c| c.layout() != layout) {
                *slot = None;
                match uplot::Chart::new(&target, layout.clone(), unit, height, SYNC_KEY, zoom) {
                    Ok(created) => {
                        created.set_overlay(&overlay.borrow());
                        *slot = Some(created);
                    }
                    Err(message) => return error.set(Some(message)),
                }
            }
            if let Some(chart) = slot.as_ref() {
                chart.show(frame, window);
            }
        });
    }
    {
        let chart = chart.clone();
        use_effect_with(props.overlay.clone(), move |overlay| {
            if let Some(chart) = chart.borrow().as_ref() {
                chart.set_overlay(overlay);
            }
        });
    }
    {
        let chart = chart.clone();
        use_effect_with((), move |_| move || drop(chart.borrow_mut().take()));
    }
    let (layout, frame) = &*built;
    let widget = &props.widget;
    let markers = props.overlay.markers_in(props.window);
    let mut summary = format!("{} {}", widget.metric, props.range_text);
    if markers > 0 {
        summary.push_str(&format!(", {markers} alert {}", if markers == 1 { "change" } else { "changes" }));
    }
    html! {
        <div data-testid="chart" data-resolution={widget.resolution.to_string()} data-points={frame.points.to_string()}
            data-markers={markers.to_string()} data-thresholds={props.overlay.thresholds.len().to_string()}
            data-gaps={frame.gaps.to_string()} data-bands={layout.bands.len().to_string()}
            data-window-start={props.window.0.to_string()} data-window-end={props.window.1.to_string()}>
            <div ref={node} role="img" aria-label={summary} class="md-chart w-full" style={format!("height:{}px", props.height)}></div>
            if let Some(message) = &*error {
                <p role="alert" class="text-xs text-rose-300">{ message }</p>
            }
        </div>
    }
}

/// What a legend shows.
#[derive(Properties, PartialEq)]
pub struct LegendProps {
    /// The data.
    pub widget: Rc<Widget>,
    /// For the ages (whole seconds, so legends move together once a second).
    pub now_ms: i64,
}

/// Series names with their latest values and how old they are, coloured like their lines.
#[function_component]
pub fn Legend(props: &LegendProps) -> Html {
    let unit = Unit::of(&props.widget.metric);
    let items = props.widget.series.iter().map(|(id, series)| {
        let last = series.last();
        let value = last.map(|p| unit.format(p.1)).unwrap_or_else(|| "–".into());
        let raw = last.map(|p| p.1.to_string()).unwrap_or_default();
        let age = last.map(|p| format!("{} ago", model::format_age(props.now_ms - p.0))).unwrap_or_default();
        html! {
            <li key={id.label()} class="flex min-w-0 items-center gap-2">
                <span aria-hidden="true" class="h-2 w-2 shrink-0 rounded-full" style={format!("background:{}", plot::color_of(id))}></span>
                <span class="truncate text-slate-300">{ id.label() }</span>
                <span class="ml-auto font-mono tabular-nums text-slate-100" data-testid="last-value" data-value={raw}>{ value }</span>
                <span class="w-14 shrink-0 text-right font-mono tabular-nums text-slate-400" data-testid="last-age">{ age }</span>
            </li>
        }
    });
    html! { <ul class="mt-2 grid gap-1 text-xs" aria-label="Latest values">{ for items }</ul> }
}
