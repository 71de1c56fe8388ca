//! microdash dashboard: a dark-mode Yew single-page app, compiled to wasm32 and served by the
//! server binary from `web/dist` (built by `scripts/build-web.sh`).
//!
//! - [`model`]: the state (series per widget, the page's time range and what to query for
//!   it, the live link's transport decisions, what a chart draws, the fleet, the tenant's
//!   layout, the onboarding snippets), with no browser API, so it is unit-tested natively.
//! - `app`: the routes and the page each one shows.
//! - `pages`: the screens (sign-in, overview, tenant, tokens, admin, alerting).
//! - `components`: pieces of screens (the shell, charts, widgets, dialogs, badges).
//! - `hooks`: where data comes from (loads, the live link, the clock, the route).
//! - `api`: typed calls to the server's JSON API (same-origin, session cookie).
//! - `live`: the live link: Server-Sent Events, falling back to long-polling the cursor
//!   endpoint when the stream keeps failing, and back again.
//! - `uplot`: the typed surface over uPlot, the chart library, and its JavaScript bridge.
//!
//! It shares its wire types with the server through `microdash_core::api`.

mod api;
mod app;
mod components;
mod hooks;
mod live;
pub mod model;
mod pages;
mod uplot;

/// Entry point of the wasm module.
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
