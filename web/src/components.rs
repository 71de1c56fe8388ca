//! Components: pieces of screens, each with its own props.
//!
//! - [`shell`]: the frame of every page (skip link, header, live switch, focus on navigation).
//! - [`chart`]: the time series chart (uPlot through [`crate::uplot`]) and its legend.
//! - [`widget`]: a tenant page's widget (line, value with sparkline, gauge) and its arranging.
//! - [`range_picker`]: live, presets, custom range, back to live.
//! - [`dialog`]: a modal dialog that holds the focus and gives it back.
//! - [`badges`]: status marks that never rely on colour alone.
//! - [`copy`], [`snippets`]: copying to the clipboard; ready-to-run ways to send a metric.
//! - [`style`]: class lists shared by every screen.

pub mod badges;
pub mod chart;
pub mod copy;
pub mod dialog;
pub mod range_picker;
pub mod shell;
pub mod snippets;
pub mod style;
pub mod widget;
