//! microdash dashboard (arrives with the live dashboard issue).
//!
//! A dark-mode Yew single-page app, compiled to wasm32 and served by the server binary. It
//! shares its wire types with the server through `microdash-core::api`, subscribes to the
//! live Server-Sent Events stream, falls back to polling a cursor endpoint when SSE fails, and
//! switches to rollups for history.
