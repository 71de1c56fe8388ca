//! The typed surface over uPlot, the chart library (axes, ticks, crosshair and its sync across
//! charts, drag to zoom, min-max bands), and the alert overlay drawn in its draw hook. All JavaScript interop for charts goes through this
//! module and its bridge, `static/chart-bridge.js` (the global `MicrodashChart`, loaded by
//! `index.html` next to the module rather than imported by it, so the page does not wait for
//! one more fetch before starting); what to draw is decided natively in
//! [`crate::model::plot`].

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::HtmlElement;
use yew::Callback;

use crate::model::alerts::Overlay;
use crate::model::plot::{Frame, Layout};
use crate::model::units::Unit;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = MicrodashChart)]
    type JsChart;

    #[wasm_bindgen(constructor, js_class = "MicrodashChart", catch)]
    fn new(
        target: &HtmlElement,
        layout_json: &str,
        height: f64,
        sync_key: &str,
        format_value: &js_sys::Function,
        format_ticks: &js_sys::Function,
        on_zoom: &js_sys::Function,
    ) -> Result<JsChart, JsValue>;

    #[wasm_bindgen(method, js_name = setData)]
    #[allow(clippy::too_many_arguments)]
    fn set_data(this: &JsChart, xs: &[f64], ys: &[f64], columns: u32, x_min: f64, x_max: f64, y_min: f64, y_max: f64);

    #[wasm_bindgen(method, js_name = setOverlay)]
    fn set_overlay(this: &JsChart, overlay_json: &str);

    #[wasm_bindgen(method)]
    fn destroy(this: &JsChart);
}

/// Where a chart sends a drag across it: `(start, end)` in Unix milliseconds. Shared, so the
/// component can swap in the latest callback without rebuilding the chart.
pub type ZoomTarget = Rc<RefCell<Callback<(i64, i64)>>>;

/// One uPlot chart in an element; dropping it removes the chart.
pub struct Chart {
    js: JsChart,
    layout: Layout,
    // Called from JavaScript; they live as long as the chart.
    _format_value: Closure<dyn Fn(f64) -> String>,
    _format_ticks: Closure<dyn Fn(Vec<f64>) -> Vec<String>>,
    _on_zoom: Closure<dyn Fn(f64, f64)>,
}

impl Chart {
    /// A chart in `target`, `height` pixels tall, as wide as `target`; its crosshair follows
    /// the other charts with the same `sync_key`.
    pub fn new(
        target: &HtmlElement,
        layout: Layout,
        unit: Unit,
        height: u32,
        sync_key: &str,
        on_zoom: ZoomTarget,
    ) -> Result<Chart, String> {
        let format_value = Closure::<dyn Fn(f64) -> String>::new(move |v: f64| unit.format(v));
        let format_ticks =
            Closure::<dyn Fn(Vec<f64>) -> Vec<String>>::new(move |ticks: Vec<f64>| unit.format_ticks(&ticks));
        let on_zoom = Closure::<dyn Fn(f64, f64)>::new(move |start: f64, end: f64| {
            let callback = on_zoom.borrow().clone();
            callback.emit((start as i64, end as i64));
        });
        let layout_json = serde_json::to_string(&layout).map_err(|e| e.to_string())?;
        let js = JsChart::new(
            target,
            &layout_json,
            f64::from(height),
            sync_key,
            format_value.as_ref().unchecked_ref(),
            format_ticks.as_ref().unchecked_ref(),
            on_zoom.as_ref().unchecked_ref(),
        )
        .map_err(|e| format!("the chart library failed: {e:?}"))?;
        Ok(Chart { js, layout, _format_value: format_value, _format_ticks: format_ticks, _on_zoom: on_zoom })
    }

    /// The layout it was built with: a frame with another layout needs a new chart.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Draw `frame` with the time axis spanning `window` (Unix milliseconds).
    pub fn show(&self, frame: &Frame, window: (i64, i64)) {
        let ys: Vec<f64> = frame.columns.concat();
        let (y_min, y_max) = frame.y_range.unwrap_or((f64::NAN, f64::NAN));
        self.js.set_data(&frame.xs, &ys, frame.columns.len() as u32, window.0 as f64, window.1 as f64, y_min, y_max);
    }

    /// Draw `overlay` over the data: a vertical line per alert transition (named in the
    /// tooltip), a dashed line per threshold (kept inside the value axis).
    pub fn set_overlay(&self, overlay: &Overlay) {
        // Serialising plain numbers and strings cannot fail; an empty overlay is the fallback.
        let json = serde_json::to_string(overlay).unwrap_or_else(|_| "{\"markers\":[],\"thresholds\":[]}".into());
        self.js.set_overlay(&json);
    }
}

impl Drop for Chart {
    fn drop(&mut self) {
        self.js.destroy();
    }
}
