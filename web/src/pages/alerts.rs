//! The alerting screens of a tenant, under `#/t/{tenant}/alerts`: the inbox (what fires now,
//! what is pending, the history), the rules (list, and a form with a live preview) and the
//! notification channels (list, form, test message and delivery log). The header's count of
//! firing alerts is [`crate::hooks::use_firing`].
//!
//! - `inbox`: [`inbox::Inbox`].
//! - `rules`: [`rules::RuleList`], [`rules::RuleEdit`].
//! - `channels`: [`channels::ChannelList`], [`channels::ChannelEdit`].
//!
//! What the screens compute (forms to API bodies, errors per field, previews, order) is in
//! [`crate::model::alerts`], unit-tested natively. A server without the alerting API answers
//! its endpoints with 404; the screens say so instead of failing.

mod channels;
mod inbox;
mod rules;

use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::api::ApiError;
use crate::components::style::{DANGER, INPUT, PRIMARY, SECONDARY};
use crate::model::alerts::Tone;

/// How often the inbox reloads what fires and is pending.
pub const INBOX_REFRESH_MS: i64 = 5_000;

/// Which alerting screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Firing, pending, history.
    Inbox,
    /// The rules.
    Rules,
    /// A rule's form: a new one, or the rule with this id.
    Rule(Option<i64>),
    /// The channels and the delivery log.
    Channels,
    /// A channel's form: a new one, or the channel with this id.
    Channel(Option<i64>),
}

impl Screen {
    /// The screen of the path after `#/t/{tenant}/alerts`; `None` for a path that names none.
    pub fn parse(rest: &[&str]) -> Option<Screen> {
        let id = |text: &str| text.parse::<i64>().ok().filter(|id| *id > 0);
        match rest {
            [] => Some(Screen::Inbox),
            ["rules"] => Some(Screen::Rules),
            ["rules", "new"] => Some(Screen::Rule(None)),
            ["rules", rule] => id(rule).map(|id| Screen::Rule(Some(id))),
            ["channels"] => Some(Screen::Channels),
            ["channels", "new"] => Some(Screen::Channel(None)),
            ["channels", channel] => id(channel).map(|id| Screen::Channel(Some(id))),
            _ => None,
        }
    }

    /// The hash that opens this screen of `tenant`.
    pub fn href(&self, tenant: &str) -> String {
        let base = format!("#/t/{tenant}/alerts");
        match self {
            Screen::Inbox => base,
            Screen::Rules => format!("{base}/rules"),
            Screen::Rule(None) => format!("{base}/rules/new"),
            Screen::Rule(Some(id)) => format!("{base}/rules/{id}"),
            Screen::Channels => format!("{base}/channels"),
            Screen::Channel(None) => format!("{base}/channels/new"),
            Screen::Channel(Some(id)) => format!("{base}/channels/{id}"),
        }
    }
}

/// The screen `screen` of `tenant`.
pub fn page(tenant: &str, screen: Screen) -> Html {
    let slug = tenant.to_owned();
    match screen {
        Screen::Inbox => html! { <inbox::Inbox {slug} /> },
        Screen::Rules => html! { <rules::RuleList {slug} /> },
        Screen::Rule(id) => html! { <rules::RuleEdit key={format!("{id:?}")} {slug} {id} /> },
        Screen::Channels => html! { <channels::ChannelList {slug} /> },
        Screen::Channel(id) => html! { <channels::ChannelEdit key={format!("{id:?}")} {slug} {id} /> },
    }
}

/// The tabs of the alerting screens.
fn tabs(tenant: &str, current: Screen) -> Html {
    let tab = |screen: Screen, label: &str| {
        let selected = match (current, screen) {
            (Screen::Rule(_), Screen::Rules) | (Screen::Channel(_), Screen::Channels) => true,
            (a, b) => a == b,
        };
        let class = if selected {
            "bg-slate-800 text-slate-50 ring-1 ring-sky-400/60"
        } else {
            "text-slate-300 hover:bg-slate-800/60 hover:text-slate-100"
        };
        html! {
            <a href={screen.href(tenant)} aria-current={selected.then_some("page")}
                class={classes!("inline-flex", "items-center", "rounded-lg", "px-3", "py-1.5", "text-sm", "max-sm:min-h-11", "focus-visible:outline", "focus-visible:outline-2", "focus-visible:outline-sky-400", class)}>
                { label }
            </a>
        }
    };
    html! {
        <nav aria-label="Alerting" class="mb-5 flex flex-wrap items-center gap-2">
            { tab(Screen::Inbox, "Inbox") }
            { tab(Screen::Rules, "Rules") }
            { tab(Screen::Channels, "Channels") }
            <a href={crate::app::tenant_href(tenant, None, crate::model::range::TimeRange::Live)}
                class="ml-auto inline-flex items-center rounded text-sm text-slate-300 hover:text-slate-100 max-sm:min-h-11 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                { format!("Charts of {tenant}") }
            </a>
        </nav>
    }
}

/// A badge with the tone's colour and, never colour alone, its name.
fn tone_badge(tone: Tone) -> Html {
    let class = match tone {
        Tone::Critical => "bg-red-500/15 text-red-200 ring-red-500/60",
        Tone::Warning => "bg-amber-500/15 text-amber-200 ring-amber-500/60",
        Tone::Pending => "bg-slate-700/60 text-slate-200 ring-slate-500/60",
        Tone::Resolved => "bg-emerald-500/15 text-emerald-200 ring-emerald-500/60",
    };
    html! {
        <span class={classes!("inline-flex", "shrink-0", "items-center", "rounded-full", "px-2", "py-0.5", "text-xs", "font-medium", "uppercase", "tracking-wide", "ring-1", class)}>
            { tone.label() }
        </span>
    }
}

/// A failed load: a server without alerting (404) is told apart from other failures.
fn load_failure(err: &ApiError) -> Html {
    if err.is_not_found() {
        html! {
            <p role="status" data-testid="alerting-unavailable" class="rounded-xl bg-slate-900/70 p-4 text-sm text-slate-300 ring-1 ring-white/5">
                { "Alerting is not available on this server yet (it answered 404). The screens work once the server has the alerting API." }
            </p>
        }
    } else {
        html! { <p role="alert" class="rounded-xl bg-rose-950/50 p-4 text-sm text-rose-200">{ &err.message }</p> }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the browser's time zone.
fn local_time(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds()
    )
}

/// A server time (RFC 3339) for reading, in local time; the text itself if it does not read.
fn server_time(timestamp: &str) -> String {
    crate::model::parse_millis(timestamp).map(local_time).unwrap_or_else(|| timestamp.to_owned())
}

/// Move the keyboard focus to the element with `id`, if there is one.
fn focus(id: &str) {
    let element = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id));
    if let Some(element) = element.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        let _ = element.focus();
    }
}

/// Ask before destroying something; `false` when the person declines (or there is no window).
fn confirm(question: &str) -> bool {
    web_sys::window().and_then(|w| w.confirm_with_message(question).ok()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_survive_the_url() {
        for screen in [
            Screen::Inbox,
            Screen::Rules,
            Screen::Rule(None),
            Screen::Rule(Some(7)),
            Screen::Channels,
            Screen::Channel(None),
            Screen::Channel(Some(3)),
        ] {
            let href = screen.href("acme");
            let rest: Vec<&str> =
                href.trim_start_matches("#/t/acme/alerts").split('/').filter(|p| !p.is_empty()).collect();
            assert_eq!(Screen::parse(&rest), Some(screen), "{href}");
        }
        assert_eq!(Screen::parse(&["rules", "x"]), None);
        assert_eq!(Screen::parse(&["rules", "-1"]), None);
        assert_eq!(Screen::parse(&["elsewhere"]), None);
    }
}
