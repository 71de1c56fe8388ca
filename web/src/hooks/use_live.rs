//! Live updates: the one switch that pauses them everywhere, and a tenant's live link.

use yew::prelude::*;

use crate::live::{LiveLink, LiveUpdate};

/// Whether live updates are paused, for the whole dashboard: the header's switch sets it, and
/// the pages that follow a live link, their badges and their cards all read this one value.
#[derive(Clone, PartialEq)]
pub struct LiveControl {
    /// Updates are paused.
    pub paused: bool,
    /// Flip it.
    pub toggle: Callback<()>,
}

/// The dashboard's live switch (not paused, if no shell provides one).
#[hook]
pub fn use_live_control() -> LiveControl {
    use_context::<LiveControl>().unwrap_or(LiveControl { paused: false, toggle: Callback::noop() })
}

/// Follow `tenant`'s live link (only `agent`'s points when given) while `on`, handing every
/// update to `on_update`; a change of tenant, agent or `on` closes the link or opens a new one.
#[hook]
pub fn use_live_link(tenant: Option<String>, agent: Option<String>, on: bool, on_update: Callback<LiveUpdate>) {
    use_effect_with((tenant, agent, on), move |(tenant, agent, on)| {
        let running =
            tenant.as_deref().filter(|_| *on).map(|tenant| LiveLink::start(tenant, agent.as_deref(), on_update));
        move || drop(running)
    });
}
