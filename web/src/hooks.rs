//! Hooks: where the dashboard's data comes from and how it follows the browser.
//!
//! - [`use_route`]: the page the URL's hash names, following `hashchange`.
//! - [`use_clock`]: the time, in whole seconds, ticking once a second.
//! - [`use_load`]: one call to the API for some inputs, reloaded on demand; the one way pages
//!   load what they show.
//! - [`use_live_link`]: a tenant's live link (stream, or polling) while it is wanted.
//! - [`use_firing`]: the header's count of firing alerts.
//! - [`use_title`]: the document's title for a page.
//! - [`use_live_control`]: the one truth about live updates being on or paused.

mod use_clock;
mod use_firing;
mod use_live;
mod use_load;
mod use_route;
mod use_title;

pub use use_clock::{now_ms, use_clock};
pub use use_firing::{Firing, use_firing};
pub use use_live::{LiveControl, use_live_control, use_live_link};
pub use use_load::{Load, use_load};
pub use use_route::use_route;
pub use use_title::use_title;
