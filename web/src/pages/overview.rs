//! The fleet overview: per tenant, a row per host with CPU, memory and disk bars and values,
//! network, uptime, when it last reported and its status (icon and word), and how many alerts
//! fire on it; searchable and sortable; live.
//!
//! Data: `GET /api/v1/fleet` per tenant (again every [`FLEET_REFRESH_MS`], for alert counts and
//! hosts that went quiet), and the live stream of up to [`MAX_LIVE_TENANTS`] tenants, whose
//! points go into the model at once and onto the screen with the next tick of the clock, so a
//! busy tenant costs one render a second, not one per point. On phones each row is a card.

use std::cell::RefCell;
use std::rc::Rc;

use microdash_core::api::TenantOut;
use microdash_core::fleet::HostStatus;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api;
use crate::app::{tenant_href, tokens_href};
use crate::components::badges::host_status;
use crate::components::style::{CARD, FOCUS, H1, INPUT, SECONDARY};
use crate::hooks::{Load, now_ms, use_clock, use_live_control, use_load, use_title};
use crate::live::{LiveLink, LiveUpdate};
use crate::model::fleet::{Fleet, Row, Sort, SortKey, format_uptime};
use crate::model::units::Unit;
use crate::model::widget::{Level, fill};
use crate::model::{format_age, format_value};
use crate::pages::alerts::Screen;

/// How often every tenant's hosts are loaded again.
pub const FLEET_REFRESH_MS: u32 = 10_000;
/// How often the list of tenants is.
pub const TENANTS_REFRESH_MS: u32 = 60_000;
/// Tenants followed live at once (browsers hold few connections per server over HTTP/1.1);
/// the others are refreshed by [`FLEET_REFRESH_MS`].
pub const MAX_LIVE_TENANTS: usize = 3;

/// Who is looking.
#[derive(Properties, PartialEq)]
pub struct OverviewProps {
    /// An admin (sees every tenant, may create them).
    pub admin: bool,
}

/// Load `slugs`' fleets into `fleet`, each as it arrives; `done` after each.
fn load_fleets(slugs: Vec<String>, fleet: Rc<RefCell<Fleet>>, done: Callback<Option<String>>) {
    for slug in slugs {
        let (fleet, done) = (fleet.clone(), done.clone());
        wasm_bindgen_futures::spawn_local(async move {
            match api::fleet(&slug).await {
                Ok((answer, arrived_ms)) => {
                    fleet.borrow_mut().load(&answer, arrived_ms);
                    done.emit(None);
                }
                Err(err) => done.emit(Some(format!("{slug}: {}", err.message))),
            }
        });
    }
}

/// The overview page.
#[function_component]
pub fn Overview(props: &OverviewProps) -> Html {
    use_title("Overview".into());
    let now = use_clock();
    let live = use_live_control();
    let tenants = use_load((), Some(TENANTS_REFRESH_MS), |()| api::tenants());
    let fleet = use_mut_ref(Fleet::default);
    // Bumped when an answer lands, so it shows without waiting for the clock.
    let loaded = use_state(|| 0u64);
    let error = use_state(|| None::<String>);
    let query = use_state(String::new);
    let sort = use_state(Sort::default);
    let slugs: Vec<String> =
        tenants.get().ready().map(|list| list.iter().map(|t| t.slug.clone()).collect()).unwrap_or_default();
    {
        let (fleet, loaded, error) = (fleet.clone(), loaded.clone(), error.clone());
        let done = Callback::from(move |failure: Option<String>| {
            error.set(failure);
            loaded.set(now_ms() as u64);
        });
        use_effect_with(slugs.clone(), move |slugs| {
            load_fleets(slugs.clone(), fleet.clone(), done.clone());
            let slugs = slugs.clone();
            let interval = gloo_timers::callback::Interval::new(FLEET_REFRESH_MS, move || {
                load_fleets(slugs.clone(), fleet.clone(), done.clone());
            });
            move || drop(interval)
        });
    }
    // Live points of the first tenants, while live updates are on.
    {
        let fleet = fleet.clone();
        let live_slugs: Vec<String> = slugs.iter().take(MAX_LIVE_TENANTS).cloned().collect();
        use_effect_with((live_slugs, live.paused), move |(slugs, paused)| {
            let links: Vec<LiveLink> = if *paused {
                Vec::new()
            } else {
                slugs
                    .iter()
                    .map(|slug| {
                        let (fleet, tenant) = (fleet.clone(), slug.clone());
                        let on_update = Callback::from(move |update: LiveUpdate| match update {
                            LiveUpdate::Points(points) => {
                                fleet.borrow_mut().apply(&tenant, &points, now_ms());
                            }
                            // The stream could not resume: the next refresh brings what was missed.
                            LiveUpdate::Reset | LiveUpdate::Status(_) => {}
                        });
                        LiveLink::start(slug, None, on_update)
                    })
                    .collect()
            };
            move || drop(links)
        });
    }
    let on_search = {
        let query = query.clone();
        Callback::from(move |event: InputEvent| {
            if let Some(input) = event.target_dyn_into::<HtmlInputElement>() {
                query.set(input.value());
            }
        })
    };
    let on_sort_select = {
        let sort = sort.clone();
        Callback::from(move |event: Event| {
            let Some(select) = event.target_dyn_into::<HtmlSelectElement>() else { return };
            if let Some(key) = SortKey::parse(&select.value()) {
                sort.set(Sort { key, descending: key.default_descending() });
            }
        })
    };
    let on_sort_column = {
        let sort = sort.clone();
        Callback::from(move |key: SortKey| sort.set(sort.toggle(key)))
    };
    let body = match tenants.get() {
        Load::Loading => html! { <p class="text-slate-300">{ "Loading tenants…" }</p> },
        Load::Failed(err) => html! { <p role="alert" class="text-rose-300">{ &err.message }</p> },
        Load::Ready(list) if list.is_empty() => no_tenants(props.admin),
        Load::Ready(list) => {
            let fleet = fleet.borrow();
            html! {
                <div class="grid gap-8">
                    { for list.iter().map(|tenant| tenant_section(tenant, &fleet, &query, *sort, now, &on_sort_column)) }
                </div>
            }
        }
    };
    let sort_options = SortKey::ALL.iter().map(|key| {
        let direction = if key.default_descending() { " (highest first)" } else { "" };
        let label = match key {
            SortKey::Status => "Status (worst first)".to_owned(),
            SortKey::LastSeen => "Last seen (longest ago first)".to_owned(),
            SortKey::Name => "Host (A to Z)".to_owned(),
            other => format!("{}{direction}", other.label()),
        };
        html! { <option value={key.key()} selected={sort.key == *key}>{ label }</option> }
    });
    html! {
        <>
            <div class="mb-5 flex flex-wrap items-end gap-4">
                <h1 class={H1}>{ "Overview" }</h1>
                <div class="ml-auto flex w-full flex-wrap items-end gap-3 sm:w-auto">
                    <label class="grid min-w-0 grow gap-1 text-sm text-slate-300 sm:w-72 sm:grow-0">
                        { "Search hosts" }
                        <input type="search" value={(*query).clone()} oninput={on_search} placeholder="name, tenant, offline, firing…" class={INPUT} />
                    </label>
                    <label class="grid min-w-0 grow gap-1 text-sm text-slate-300 sm:grow-0">
                        { "Sort by" }
                        <select onchange={on_sort_select} class={INPUT}>{ for sort_options }</select>
                    </label>
                </div>
            </div>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            { body }
        </>
    }
}

/// No tenant yet: admins are sent to create one.
fn no_tenants(admin: bool) -> Html {
    html! {
        <div class={classes!(CARD, "max-w-2xl", "p-6")}>
            <h2 class="mb-2 text-lg font-medium text-slate-50">{ "No tenants yet" }</h2>
            if admin {
                <p class="mb-4 text-slate-300">{ "A tenant holds a team's hosts, metrics and users. Create the first one, then a token to send metrics with." }</p>
                <a href="#/admin" class={SECONDARY}>{ "Create a tenant" }</a>
            } else {
                <p class="text-slate-300">{ "You see no tenant. Ask an admin to add you to one." }</p>
            }
        </div>
    }
}

/// A percentage as a bar and its value. What it is comes from its column's header, or on
/// phones from its cell's label.
fn bar(testid: &'static str, percent: Option<f64>, detail: Option<String>) -> Html {
    let Some(percent) = percent else {
        return html! { <span class="text-slate-400" data-testid={testid}>{ "–" }</span> };
    };
    let level = match Level::of(percent) {
        Level::Crit => "md-bar md-bar-crit",
        Level::Warn => "md-bar md-bar-warn",
        Level::Ok => "md-bar md-bar-ok",
    };
    // One element per bar, filled by a gradient (static/app.css): 200 rows of three bars
    // are a sizeable part of the overview's first draw.
    html! {
        <span class="flex min-w-0 items-center gap-2" data-testid={testid} data-value={percent.to_string()}>
            <span class={level} style={format!("--fill:{}%", (fill(percent) * 1000.0).round() / 10.0)} aria-hidden="true"></span>
            <span class="whitespace-nowrap font-mono text-xs tabular-nums text-slate-100">
                { Unit::Percent.format(percent) }
                if let Some(detail) = detail {
                    <span class="text-slate-300">{ format!(" {detail}") }</span>
                }
            </span>
        </span>
    }
}

/// One tenant: its name, counts, links and hosts.
fn tenant_section(
    tenant: &TenantOut,
    fleet: &Fleet,
    query: &str,
    sort: Sort,
    now: i64,
    on_sort: &Callback<SortKey>,
) -> Html {
    let slug = &tenant.slug;
    let summary = fleet.summary(slug, now);
    let rows = fleet.rows(slug, query, sort, now);
    let heading = format!("tenant-{slug}");
    let content = if !fleet.loaded(slug) {
        html! { <p class="text-slate-300">{ "Loading hosts…" }</p> }
    } else if summary.online + summary.stale + summary.offline == 0 {
        html! {
            <div class={classes!(CARD, "p-4", "text-slate-300")} data-testid="no-hosts">
                <p class="mb-3">{ "No host reports to this tenant yet. Create a token and send the first metric: the host appears here the moment it arrives." }</p>
                <a href={tokens_href(Some(slug))} class={SECONDARY}>{ format!("Create a token for {slug}") }</a>
            </div>
        }
    } else if rows.is_empty() {
        html! { <p class="text-slate-300">{ "No host matches the search." }</p> }
    } else {
        hosts_table(slug, &rows, sort, on_sort)
    };
    html! {
        <section key={slug.clone()} aria-labelledby={heading.clone()} data-testid="tenant-fleet" data-tenant={slug.clone()}>
            <div class="mb-3 flex flex-wrap items-baseline gap-x-4 gap-y-1">
                <h2 id={heading} class="text-lg font-medium text-slate-50">
                    <a href={tenant_href(slug, None, crate::model::range::TimeRange::Live)} class={classes!("rounded", "hover:text-sky-300", FOCUS)}>{ &tenant.name }</a>
                </h2>
                <span class="font-mono text-sm text-slate-300">{ slug }</span>
                <span class="text-sm text-slate-300" data-testid="fleet-summary">
                    { format!("{} online · {} stale · {} offline", summary.online, summary.stale, summary.offline) }
                </span>
                if summary.firing > 0 {
                    <a href={Screen::Inbox.href(slug)} class={classes!("inline-flex", "items-center", "rounded-full", "bg-red-700", "px-2", "py-0.5", "text-xs", "font-medium", "text-white", "max-sm:min-h-11", FOCUS)}>
                        { format!("{} firing", summary.firing) }
                    </a>
                }
            </div>
            { content }
        </section>
    }
}

/// A host's row; on phones, a card.
const ROW: &str = "border-t border-white/5 max-md:grid max-md:grid-cols-2 max-md:gap-x-4 max-md:gap-y-3 max-md:rounded-xl max-md:border-0 max-md:bg-slate-900/70 max-md:p-3 max-md:ring-1 max-md:ring-white/10";
/// The row of a host that is not online: set apart by its background too.
const ROW_NOT_ONLINE: &str = "border-t border-white/5 max-md:grid max-md:grid-cols-2 max-md:gap-x-4 max-md:gap-y-3 max-md:rounded-xl max-md:border-0 max-md:bg-slate-900/70 max-md:p-3 max-md:ring-1 max-md:ring-white/10 bg-slate-900/40";

/// The hosts of a tenant: a table with sortable columns; on phones, a card per host.
fn hosts_table(slug: &str, rows: &[Row], sort: Sort, on_sort: &Callback<SortKey>) -> Html {
    let header = |key: SortKey| {
        let aria_sort = if sort.key != key {
            "none"
        } else if sort.descending != (key == SortKey::Status) {
            "descending"
        } else {
            "ascending"
        };
        let on_sort = on_sort.clone();
        html! {
            <th scope="col" aria-sort={aria_sort} class="px-3 py-2 text-left font-normal">
                <button type="button" onclick={move |_| on_sort.emit(key)} class={classes!("inline-flex", "items-center", "gap-1", "rounded", "text-slate-300", "hover:text-slate-50", FOCUS)}>
                    { key.label() }
                    <span aria-hidden="true" class="text-slate-400">{ match aria_sort { "ascending" => "▲", "descending" => "▼", _ => "" } }</span>
                </button>
            </th>
        }
    };
    // On phones each row is a card, whose cells show their `data-label` (static/app.css):
    // a pseudo-element rather than a hidden copy of the header in every row, which made
    // 200 rows cost a fifth more to build, style and lay out.
    let cell = "px-3 py-2 align-middle max-md:px-0 max-md:py-0";
    // Once per table, shared by every row (cloning one is counting a reference).
    let host_link = AttrValue::from(format!(
        "inline-flex min-h-6 items-center rounded font-mono text-slate-50 hover:text-sky-300 max-md:min-h-11 max-md:min-w-11 {FOCUS}"
    ));
    let firing_link = AttrValue::from(format!(
        "inline-flex min-h-6 items-center rounded-full bg-red-700 px-2 font-medium text-white max-md:min-h-11 max-md:min-w-11 {FOCUS}"
    ));
    let mono = "px-3 py-2 align-middle max-md:px-0 max-md:py-0 whitespace-nowrap font-mono text-xs text-slate-100";
    let body = rows.iter().map(|row| {
        let host = &row.host;
        let mem_detail = host.mem_bytes.map(|b| Unit::Bytes.format(b));
        let disk = host.disk();
        let network = match (host.rx, host.tx) {
            (None, None) => "–".to_owned(),
            (rx, tx) => format!(
                "↓ {} ↑ {}",
                rx.map(|v| Unit::BytesPerSecond.format(v)).unwrap_or_else(|| "–".into()),
                tx.map(|v| Unit::BytesPerSecond.format(v)).unwrap_or_else(|| "–".into())
            ),
        };
        let seen = if host.last_seen_ms > 0 { format!("{} ago", format_age(row.age_ms)) } else { "never".into() };
        let firing = host.firing_alerts;
        html! {
            <tr key={host.agent_id.clone()} data-testid="host-row" data-agent={host.agent_id.clone()} data-status={row.status.as_str()}
                class={if row.status == HostStatus::Online { ROW } else { ROW_NOT_ONLINE }}>
                <th scope="row" class={classes!(cell, "text-left", "font-normal", "max-md:col-span-2")}>
                    <a href={tenant_href(slug, Some(&host.agent_id), crate::model::range::TimeRange::Live)}
                        class={host_link.clone()}>
                        { &host.agent_id }
                    </a>
                </th>
                <td class={cell} data-label="Status">{ host_status(row.status) }</td>
                <td class={cell} data-label="CPU">{ bar("bar-cpu", host.cpu, host.load.map(|l| format!("load {}", format_value(l)))) }</td>
                <td class={cell} data-label="Memory">{ bar("bar-mem", host.mem, mem_detail) }</td>
                <td class={cell} data-label="Disk">{ bar("bar-disk", disk.map(|d| d.0), disk.map(|d| d.1.to_owned())) }</td>
                <td class={mono} data-label="Network">{ network }</td>
                <td class={mono} data-label="Uptime" data-testid="uptime">{ row.uptime_s.map(format_uptime).unwrap_or_else(|| "–".into()) }</td>
                <td class="px-3 py-2 align-middle max-md:px-0 max-md:py-0 whitespace-nowrap text-xs text-slate-100" data-label="Last seen" data-testid="last-seen">{ seen }</td>
                <td class="px-3 py-2 align-middle max-md:px-0 max-md:py-0 text-xs" data-label="Alerts">
                    if firing > 0 {
                        <a href={Screen::Inbox.href(slug)} class={firing_link.clone()} data-testid="host-firing">
                            { format!("{firing} firing") }
                        </a>
                    } else {
                        <span class="text-slate-300">{ "none" }</span>
                    }
                </td>
            </tr>
        }
    });
    html! {
        <div class="md:overflow-x-auto md:rounded-2xl md:bg-slate-900/70 md:ring-1 md:ring-white/10">
            <table class="w-full text-sm max-md:block">
                <caption class="sr-only">{ format!("Hosts of {slug}") }</caption>
                <thead class="text-xs text-slate-300 max-md:hidden">
                    <tr>
                        { header(SortKey::Name) }
                        { header(SortKey::Status) }
                        { header(SortKey::Cpu) }
                        { header(SortKey::Memory) }
                        { header(SortKey::Disk) }
                        { header(SortKey::Network) }
                        { header(SortKey::Uptime) }
                        { header(SortKey::LastSeen) }
                        { header(SortKey::Alerts) }
                    </tr>
                </thead>
                <tbody class="max-md:grid max-md:gap-3">{ for body }</tbody>
            </table>
        </div>
    }
}
