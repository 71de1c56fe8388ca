//! Small status marks. Each says what it means in words beside any colour or icon: status
//! is never told by colour alone.

use microdash_core::fleet::HostStatus;
use yew::prelude::*;

use crate::model::{self, Widget};

/// What a rollup chart shows, next to its title: raw data needs no note.
pub fn resolution_note(widget: &Widget) -> Html {
    match widget.resolution.bucket_ms() {
        None => html! {},
        Some(_) => html! {
            <span class="shrink-0 rounded bg-slate-800 px-1.5 py-0.5 font-mono text-[11px] text-slate-300" data-testid="resolution"
                title="average per bucket, with the band from its minimum to its maximum">
                { format!("{} avg · min–max", widget.resolution) }
            </span>
        },
    }
}

/// The live badge: a dot (pulsing while data arrives, unless the reader asked for less
/// motion), the words, and which transport carries the data.
pub fn link_badge(badge: &model::Badge) -> Html {
    let color = match (badge.receiving, badge.connected, badge.transport) {
        (true, _, "stream") => "bg-emerald-400",
        (true, _, _) => "bg-amber-300",
        (false, true, _) => "bg-sky-400",
        _ => "bg-slate-400",
    };
    html! {
        <span role="status" data-testid="link-status" data-transport={badge.transport} data-connected={badge.connected.to_string()}
            data-receiving={badge.receiving.to_string()}
            class="inline-flex items-center gap-2 rounded-full bg-slate-900 px-3 py-1 text-xs text-slate-200 ring-1 ring-white/10">
            <span class="relative flex h-2 w-2" aria-hidden="true">
                if badge.receiving {
                    <span class={classes!("absolute", "inline-flex", "h-full", "w-full", "motion-safe:animate-ping", "rounded-full", "opacity-60", color)}></span>
                }
                <span class={classes!("relative", "inline-flex", "h-2", "w-2", "rounded-full", color)}></span>
            </span>
            { &badge.text }
        </span>
    }
}

/// A host's status: an icon of its own shape per status, and the word.
pub fn host_status(status: HostStatus) -> Html {
    let (icon, class) = match status {
        HostStatus::Online => ("●", "text-emerald-300"),
        HostStatus::Stale => ("◐", "text-amber-300"),
        HostStatus::Offline => ("○", "text-rose-300"),
    };
    html! {
        <span class={classes!("inline-flex", "items-center", "gap-1.5", "whitespace-nowrap", class)} data-testid="host-status" data-status={status.as_str()}>
            <span aria-hidden="true">{ icon }</span>
            { status.as_str() }
        </span>
    }
}
