//! microdash dashboard: a dark-mode Yew single-page app, compiled to wasm32 and served by the
//! server binary from `web/dist` (built by `scripts/build-web.sh`).
//!
//! - [`model`]: the state (series per widget, the page's time range and what to query for
//!   it, the live link's transport decisions, what a chart draws: aligned series, gaps,
//!   bands, units, colours), with no browser API, so it is unit-tested natively.
//! - `api`: typed calls to the server's JSON API (same-origin, session cookie).
//! - `live`: the live link: Server-Sent Events, falling back to long-polling the cursor
//!   endpoint when the stream keeps failing, and back again.
//! - `uplot`: the typed surface over uPlot, the chart library, and its JavaScript bridge.
//! - `chart`, `app`: the components and screens; `alerts`: the alerting screens (inbox, rules,
//!   channels) and the header's count of firing alerts.
//!
//! It shares its wire types with the server through `microdash_core::api`.

mod alerts;
mod api;
mod app;
mod chart;
mod live;
pub mod model;
mod uplot;

/// Entry point of the wasm module.
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
