//! Screens: sign-in, overview, tenant detail (live or past charts, with alert markers and rule
//! thresholds), tokens, and a tenant's alerting screens ([`crate::alerts`]). Routing is by URL
//! hash (`#/`, `#/t/{tenant}`, `#/t/{tenant}/a/{agent}`, `#/t/{tenant}/alerts/...`, `#/tokens`;
//! a tenant page's range in the hash's query, `?range=24h` or `?from=..&to=..`), so the server
//! serves one `index.html` and deep links survive a reload.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use microdash_core::api::alert::{AlertEventOut, AlertRuleOut};
use microdash_core::api::{
    AgentOut, AgentStatus, CreateToken, CreatedToken, PointOut, QueryResponse, Resolution, SessionOut, TenantOut,
    TokenOut,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::alerts::{self, Firing, Screen};
use crate::api::{self, ApiError};
use crate::chart::{Legend, TimeChart};
use crate::live::{LiveLink, LiveUpdate};
use crate::model::alerts::Overlay;
use crate::model::range::{Preset, QueryPlan, TimeRange};
use crate::model::{self, Board, Link, PageMode, View, Widget};

/// Where the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Overview,
    Tenant { slug: String, agent: Option<String>, range: TimeRange },
    Alerts { slug: String, screen: Screen },
    Tokens,
}

impl Route {
    /// Tenant slugs and agent ids are limited to URL-safe characters, so the hash needs no
    /// decoding. The tenant page's range rides in the hash's query (`#/t/acme?range=24h`), so
    /// a link opens the same view.
    fn parse(hash: &str) -> Route {
        let hash = hash.trim_start_matches('#');
        let (path, query) = hash.split_once('?').unwrap_or((hash, ""));
        let range = TimeRange::parse_query(query);
        match path.trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
            ["t", slug] => Route::Tenant { slug: (*slug).to_owned(), agent: None, range },
            ["t", slug, "a", agent] => {
                Route::Tenant { slug: (*slug).to_owned(), agent: Some((*agent).to_owned()), range }
            }
            ["t", slug, "alerts", rest @ ..] => match Screen::parse(rest) {
                Some(screen) => Route::Alerts { slug: (*slug).to_owned(), screen },
                None => Route::Overview,
            },
            ["tokens"] => Route::Tokens,
            _ => Route::Overview,
        }
    }

    /// The tenant the page is about, if any.
    fn tenant(&self) -> Option<&str> {
        match self {
            Route::Tenant { slug, .. } | Route::Alerts { slug, .. } => Some(slug),
            Route::Overview | Route::Tokens => None,
        }
    }
}

/// The hash of a tenant's charts (of one agent), over `range`.
pub(crate) fn tenant_href(slug: &str, agent: Option<&str>, range: TimeRange) -> String {
    let path = match agent {
        Some(agent) => format!("#/t/{slug}/a/{agent}"),
        None => format!("#/t/{slug}"),
    };
    match range.to_query() {
        query if query.is_empty() => path,
        query => format!("{path}?{query}"),
    }
}

/// Go to another hash; the route follows through `hashchange`.
pub(crate) fn navigate(href: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_hash(href);
    }
}

/// The browser's clock, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The current route, following `hashchange`.
#[hook]
fn use_route() -> Route {
    let read = || Route::parse(&web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default());
    let route = use_state(read);
    {
        let route = route.clone();
        use_effect_with((), move |_| {
            let listener = Closure::<dyn FnMut()>::new(move || route.set(read()));
            let window = web_sys::window();
            if let Some(window) = &window {
                let _ = window.add_event_listener_with_callback("hashchange", listener.as_ref().unchecked_ref());
            }
            move || {
                if let Some(window) = window {
                    let _ = window.remove_event_listener_with_callback("hashchange", listener.as_ref().unchecked_ref());
                }
            }
        });
    }
    (*route).clone()
}

/// The clock, in whole seconds, ticking once a second.
#[hook]
pub(crate) fn use_clock() -> i64 {
    let now = use_state(|| now_ms() / 1000 * 1000);
    {
        let now = now.clone();
        use_effect_with((), move |_| {
            let interval = Interval::new(1_000, move || now.set(now_ms() / 1000 * 1000));
            move || drop(interval)
        });
    }
    *now
}

#[derive(Debug, Clone, PartialEq)]
enum SessionState {
    Checking,
    SignedOut,
    SignedIn(SessionOut),
}

/// The whole app.
#[function_component]
pub fn App() -> Html {
    let session = use_state(|| SessionState::Checking);
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                session.set(match api::session().await {
                    Ok(user) => SessionState::SignedIn(user),
                    Err(_) => SessionState::SignedOut,
                });
            });
        });
    }
    let on_signed_in = {
        let session = session.clone();
        Callback::from(move |user: SessionOut| session.set(SessionState::SignedIn(user)))
    };
    let on_signed_out = {
        let session = session.clone();
        Callback::from(move |()| session.set(SessionState::SignedOut))
    };
    // While the session is being checked the page already renders and loads its data: a
    // signed-in user (the usual case) sees charts one round trip sooner, and a signed-out one
    // is sent to sign in as soon as the check answers.
    match &*session {
        SessionState::Checking => html! { <Shell user={None::<SessionOut>} {on_signed_out} /> },
        SessionState::SignedOut => html! { <SignInPage {on_signed_in} /> },
        SessionState::SignedIn(user) => html! { <Shell user={Some(user.clone())} {on_signed_out} /> },
    }
}

#[derive(Properties, PartialEq)]
struct SignInProps {
    on_signed_in: Callback<SessionOut>,
}

#[function_component]
fn SignInPage(props: &SignInProps) -> Html {
    let username = use_node_ref();
    let password = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let onsubmit = {
        let (username, password, error, busy) = (username.clone(), password.clone(), error.clone(), busy.clone());
        let on_signed_in = props.on_signed_in.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let value = |node: &NodeRef| node.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let (user, pass) = (value(&username), value(&password));
            let (error, busy, on_signed_in) = (error.clone(), busy.clone(), on_signed_in.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_in(&user, &pass).await {
                    Ok(session) => on_signed_in.emit(session),
                    Err(err) => {
                        error.set(Some(err.message));
                        busy.set(false);
                    }
                }
            });
        })
    };
    html! {
        <main class="grid min-h-screen place-items-center bg-gradient-to-b from-slate-900 to-slate-950 p-4">
            <form {onsubmit} class="w-full max-w-sm rounded-2xl bg-slate-900/80 p-8 shadow-2xl ring-1 ring-white/5">
                <h1 class="mb-1 text-xl font-semibold tracking-tight text-slate-50">{ "microdash" }</h1>
                <p class="mb-6 text-sm text-slate-400">{ "Sign in to your dashboard" }</p>
                <label for="username" class="block text-sm text-slate-300">{ "Username" }</label>
                <input id="username" ref={username} autocomplete="username" required=true
                    class="mt-1 mb-4 w-full rounded-lg bg-slate-800 px-3 py-2 text-slate-100 outline-none ring-1 ring-slate-700 focus-visible:ring-2 focus-visible:ring-sky-400" />
                <label for="password" class="block text-sm text-slate-300">{ "Password" }</label>
                <input id="password" ref={password} type="password" autocomplete="current-password" required=true
                    class="mt-1 mb-6 w-full rounded-lg bg-slate-800 px-3 py-2 text-slate-100 outline-none ring-1 ring-slate-700 focus-visible:ring-2 focus-visible:ring-sky-400" />
                if let Some(message) = &*error {
                    <p role="alert" class="mb-4 rounded-lg bg-rose-950/60 px-3 py-2 text-sm text-rose-200">{ message }</p>
                }
                <button type="submit" disabled={*busy}
                    class="w-full rounded-lg bg-sky-500 px-3 py-2 font-medium text-slate-950 hover:bg-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-300 disabled:opacity-60">
                    { if *busy { "Signing in…" } else { "Sign in" } }
                </button>
            </form>
        </main>
    }
}

#[derive(Properties, PartialEq)]
struct ShellProps {
    /// `None` while the session is being checked.
    user: Option<SessionOut>,
    on_signed_out: Callback<()>,
}

/// Header, navigation and the routed page.
#[function_component]
fn Shell(props: &ShellProps) -> Html {
    let route = use_route();
    let live = use_state(|| true);
    let sign_out = {
        let on_signed_out = props.on_signed_out.clone();
        Callback::from(move |_| {
            let on_signed_out = on_signed_out.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = api::sign_out().await;
                on_signed_out.emit(());
            });
        })
    };
    let toggle_live = {
        let live = live.clone();
        Callback::from(move |_| live.set(!*live))
    };
    let nav = |href: &str, label: &str, current: bool| {
        let class = if current {
            "text-slate-50 underline decoration-sky-400 underline-offset-8"
        } else {
            "text-slate-400 hover:text-slate-100"
        };
        html! { <a href={href.to_owned()} class={classes!("rounded", "focus-visible:outline", "focus-visible:outline-2", "focus-visible:outline-sky-400", class)} aria-current={current.then_some("page")}>{ label }</a> }
    };
    let who = match &props.user {
        Some(SessionOut { username, tenant: Some(tenant), .. }) => format!("{username} · {tenant}"),
        Some(SessionOut { username, tenant: None, .. }) => format!("{username} · admin"),
        None => String::new(),
    };
    // The tenant whose alerts the header counts: the page's, else the user's own, else the
    // last one visited (an admin on the overview).
    let last_tenant = use_mut_ref(|| None::<String>);
    if let Some(slug) = route.tenant() {
        *last_tenant.borrow_mut() = Some(slug.to_owned());
    }
    let alert_tenant = route
        .tenant()
        .map(str::to_owned)
        .or_else(|| props.user.as_ref().and_then(|u| u.tenant.clone()))
        .or_else(|| last_tenant.borrow().clone());
    let firing = alerts::use_firing(alert_tenant.clone(), format!("{route:?}"));
    let page = match &route {
        Route::Overview => html! { <Overview /> },
        Route::Tenant { slug, agent, range } => {
            html! { <TenantPage slug={slug.clone()} agent={agent.clone()} range={*range} live={*live} /> }
        }
        Route::Alerts { slug, screen } => alerts::page(slug, *screen),
        Route::Tokens => html! { <TokensPage admin={props.user.as_ref().is_some_and(|u| u.admin)} /> },
    };
    let alerts_nav = alert_tenant.as_deref().map(|slug| {
        let current = matches!(route, Route::Alerts { .. });
        nav(&Screen::Inbox.href(slug), "Alerts", current)
    });
    // A live region from the start, so a change of the count is announced.
    let (count_text, count_class) = match firing {
        Firing::Count(0) => ("none firing".to_owned(), "text-slate-400"),
        Firing::Count(n) => (format!("{n} firing"), "rounded-full bg-red-600 px-2 py-0.5 font-medium text-white"),
        Firing::Unknown | Firing::Unavailable => (String::new(), ""),
    };
    let firing_count = firing_count_of(firing);
    html! {
        <div class="min-h-screen bg-slate-950 text-slate-100">
            <header class="sticky top-0 z-10 bg-gradient-to-r from-slate-900 via-slate-900 to-slate-950/95 backdrop-blur">
                <div class="mx-auto flex max-w-7xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
                    <a href="#/" class="font-semibold tracking-tight text-slate-50">{ "microdash" }</a>
                    <nav aria-label="Main" class="flex gap-5 text-sm">
                        { nav("#/", "Overview", matches!(route, Route::Overview | Route::Tenant { .. })) }
                        { for alerts_nav }
                        { nav("#/tokens", "Tokens", route == Route::Tokens) }
                    </nav>
                    <span data-testid="firing-count" data-count={firing_count} aria-live="polite" aria-atomic="true"
                        class={classes!("text-xs", count_class)}>
                        if !count_text.is_empty() {
                            <span class="sr-only">{ "Alerts: " }</span>
                        }
                        { count_text }
                    </span>
                    <div class="ml-auto flex items-center gap-4 text-sm">
                        <button type="button" onclick={toggle_live} aria-pressed={live.to_string()}
                            class="rounded-full px-3 py-1 ring-1 ring-slate-700 hover:ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                            { if *live { "Live: on" } else { "Live: paused" } }
                        </button>
                        <span class="hidden text-slate-400 sm:inline">{ who }</span>
                        <button type="button" onclick={sign_out} class="text-slate-400 hover:text-slate-100 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">{ "Sign out" }</button>
                    </div>
                </div>
            </header>
            <main class="mx-auto max-w-7xl px-4 py-6">{ page }</main>
        </div>
    }
}

/// The header count's `data-count`: the number, or empty while it is not known.
fn firing_count_of(firing: Firing) -> String {
    match firing {
        Firing::Count(n) => n.to_string(),
        Firing::Unknown | Firing::Unavailable => String::new(),
    }
}

fn relative(ms: i64, now: i64) -> String {
    format!("{} ago", model::format_age(now - ms))
}

fn status_dot(online: bool) -> Html {
    let (color, label) = if online { ("bg-emerald-400", "online") } else { ("bg-slate-500", "offline") };
    html! {
        <span class="inline-flex items-center gap-1.5">
            <span aria-hidden="true" class={classes!("h-2", "w-2", "rounded-full", color)}></span>
            <span class="sr-only">{ label }</span>
        </span>
    }
}

/// How often the overview reloads its agents.
const OVERVIEW_REFRESH_MS: i64 = 5_000;

/// Every tenant the user can see, with its agents.
#[function_component]
fn Overview() -> Html {
    let tenants = use_state(|| None::<Result<Vec<(TenantOut, Vec<AgentOut>)>, String>>);
    let now = use_clock();
    // Agents come and go: the list is refreshed every few seconds.
    let refresh = now / OVERVIEW_REFRESH_MS;
    {
        let tenants = tenants.clone();
        use_effect_with(refresh, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let loaded = async {
                    let mut out = Vec::new();
                    for tenant in api::tenants().await? {
                        let agents = api::agents(&tenant.slug).await?;
                        out.push((tenant, agents));
                    }
                    Ok::<_, api::ApiError>(out)
                };
                tenants.set(Some(loaded.await.map_err(|e| e.message)));
            });
        });
    }
    let body = match &*tenants {
        None => html! { <p class="text-slate-400">{ "Loading tenants…" }</p> },
        Some(Err(message)) => html! { <p role="alert" class="text-rose-300">{ message }</p> },
        Some(Ok(list)) if list.is_empty() => {
            html! { <p class="text-slate-400">{ "No tenants yet. Create one with microdash tenant create." }</p> }
        }
        Some(Ok(list)) => html! {
            <ul class="grid gap-4 md:grid-cols-2 xl:grid-cols-3">
                { for list.iter().map(|(tenant, agents)| {
                    let online = agents.iter().filter(|a| a.status == AgentStatus::Online).count();
                    html! {
                        <li key={tenant.slug.clone()} class="rounded-2xl bg-slate-900/70 p-5 ring-1 ring-white/5">
                            <a href={tenant_href(&tenant.slug, None, TimeRange::Live)} class="text-lg font-medium text-slate-50 hover:text-sky-300 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">{ &tenant.name }</a>
                            <p class="mb-3 text-sm text-slate-400">{ format!("{} · {online}/{} agents online", tenant.slug, agents.len()) }</p>
                            <ul class="grid gap-1 text-sm">
                                { for agents.iter().map(|agent| {
                                    let seen = model::parse_millis(&agent.last_seen).map(|ms| relative(ms, now)).unwrap_or_default();
                                    html! {
                                        <li key={agent.agent_id.clone()} class="flex items-center gap-2">
                                            { status_dot(agent.status == AgentStatus::Online) }
                                            <a href={tenant_href(&tenant.slug, Some(&agent.agent_id), TimeRange::Live)} class="font-mono text-slate-200 hover:text-sky-300 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">{ &agent.agent_id }</a>
                                            <span class="ml-auto text-slate-400" title={agent.interval_s.map(|s| format!("reports every {} s", model::format_value(s))).unwrap_or_default()}>{ seen }</span>
                                        </li>
                                    }
                                }) }
                            </ul>
                        </li>
                    }
                }) }
            </ul>
        },
    };
    html! {
        <>
            <h1 class="mb-4 text-xl font-semibold tracking-tight">{ "Overview" }</h1>
            { body }
        </>
    }
}

/// The board and how it changes.
#[derive(Clone, Default, PartialEq)]
struct BoardState {
    board: Board,
}

enum BoardAction {
    Begin(View),
    Load { view: u64, metric: String, resolution: Resolution, points: Vec<PointOut> },
    Finish { view: u64, metrics: Vec<String>, failed: Vec<String> },
    Apply(Vec<PointOut>),
    Trim(i64),
}

impl Reducible for BoardState {
    type Action = BoardAction;

    fn reduce(self: Rc<Self>, action: BoardAction) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        match action {
            BoardAction::Begin(view) => next.board.begin_view(view),
            BoardAction::Load { view, metric, resolution, points } => {
                next.board.load(view, &metric, resolution, &points);
            }
            BoardAction::Finish { view, metrics, failed } => next.board.finish(view, &metrics, &failed),
            BoardAction::Apply(points) => {
                next.board.apply(&points);
            }
            BoardAction::Trim(now) => next.board.trim(now),
        }
        Rc::new(next)
    }
}

#[derive(Properties, PartialEq)]
struct TenantProps {
    slug: String,
    agent: Option<String>,
    range: TimeRange,
    live: bool,
}

/// How often a preset range ("the last 24 h") is loaded again to follow the clock: a minute is
/// the finest rollup.
const PRESET_REFRESH_MS: i64 = 60_000;

/// History loads in flight at once (see the loads in [`TenantPage`]).
const LOADS_AT_ONCE: usize = 3;
/// How often the live view asks for new alert transitions to mark on its charts.
const MARKER_REFRESH_MS: i64 = 5_000;
/// How often a tenant page reloads the rules whose thresholds its charts draw.
const RULES_REFRESH_MS: i64 = 30_000;

/// One metric's load, asked again from rollups when a raw answer was cut short.
async fn load_metric(
    slug: &str,
    metric: &str,
    agent: Option<&str>,
    plan: QueryPlan,
) -> Result<QueryResponse, ApiError> {
    let answer = api::history(slug, metric, agent, &plan).await?;
    match plan.retry_after(answer.count) {
        Some(retry) => api::history(slug, metric, agent, &retry).await,
        None => Ok(answer),
    }
}

/// One tenant's charts: live, or a past range.
#[function_component]
fn TenantPage(props: &TenantProps) -> Html {
    let board = use_reducer(BoardState::default);
    let link = use_state(|| None::<Link>);
    let agents = use_state(Vec::<AgentOut>::new);
    let error = use_state(|| None::<String>);
    let reloads = use_state(|| 0u32);
    let expanded = use_state(|| None::<String>);
    let paused = use_state(BTreeMap::<String, Rc<Widget>>::new);
    let views = use_mut_ref(|| 0u64);
    // When the live link last delivered points (browser clock).
    let last_frame = use_mut_ref(|| None::<i64>);
    let now = use_clock();
    let range = props.range;
    let following = range.is_live() && props.live;
    // Alert rules (their thresholds) and transitions (markers) over the view; a server
    // without alerting, or a user who may not read them, just gets charts without them.
    // Equal answers (the usual case between polls) re-render nothing.
    let rules = use_state_eq(Vec::<AlertRuleOut>::new);
    let events = use_state_eq(Vec::<AlertEventOut>::new);
    {
        let rules = rules.clone();
        use_effect_with((props.slug.clone(), now / RULES_REFRESH_MS), move |(slug, _)| {
            let slug = slug.clone();
            wasm_bindgen_futures::spawn_local(async move {
                rules.set(api::alert_rules(&slug).await.unwrap_or_default());
            });
        });
    }
    {
        let events = events.clone();
        let tick = match range {
            TimeRange::Live => now / MARKER_REFRESH_MS,
            TimeRange::Last(_) => now / PRESET_REFRESH_MS,
            TimeRange::Between { .. } => 0,
        };
        use_effect_with((props.slug.clone(), props.agent.clone(), range, tick), move |(slug, agent, range, _)| {
            let (slug, params) = (slug.clone(), model::alerts::marker_params(range.window(now_ms()), agent.as_deref()));
            wasm_bindgen_futures::spawn_local(async move {
                events.set(api::alert_history(&slug, &params).await.unwrap_or_default());
            });
        });
    }
    let overlay_of = |metric: &str| Rc::new(model::alerts::overlay(metric, props.agent.as_deref(), &rules, &events));

    {
        let board = board.clone();
        use_effect_with(now, move |now| board.dispatch(BoardAction::Trim(*now)));
    }
    // Each metric's data for the range: series list, then every metric's load in parallel.
    // A new range starts a new view; the old data stays on screen until the new arrives.
    let refresh = match range {
        TimeRange::Last(_) => now / PRESET_REFRESH_MS,
        _ => 0,
    };
    {
        let (board, agents, error) = (board.clone(), agents.clone(), error.clone());
        let views = views.clone();
        use_effect_with(
            (props.slug.clone(), props.agent.clone(), range, *reloads, refresh),
            move |(slug, agent, range, _, _)| {
                let (slug, agent) = (slug.clone(), agent.clone());
                let view = {
                    let mut views = views.borrow_mut();
                    *views += 1;
                    *views
                };
                let started = now_ms();
                board.dispatch(BoardAction::Begin(View { id: view, range: *range, anchor_ms: started }));
                let plan = range.plan(started);
                wasm_bindgen_futures::spawn_local(async move {
                    // Each metric on its own: small answers draw the first chart soonest.
                    // State changes re-render the page at once, so the loads go out before
                    // anything else is shown.
                    let (agent_list, series) = futures_util::join!(api::agents(&slug), api::series(&slug));
                    let series = match series {
                        Ok(series) => series,
                        Err(err) => return error.set(Some(err.message)),
                    };
                    let mut metrics: Vec<String> = series
                        .into_iter()
                        .filter(|s| agent.is_none() || s.agent_id == agent)
                        .map(|s| s.metric_name)
                        .collect();
                    metrics.sort_by_key(|m| model::display_key(m));
                    metrics.dedup();
                    // A few at a time, in display order: the server answers a long range's
                    // queries no faster side by side, so fewer at once bring the first charts
                    // on screen sooner.
                    let loads = futures_util::StreamExt::map(futures_util::stream::iter(metrics.iter()), |metric| {
                        let (slug, agent) = (&slug, agent.as_deref());
                        async move { (metric.clone(), load_metric(slug, metric, agent, plan).await) }
                    });
                    let mut loads = futures_util::StreamExt::buffer_unordered(loads, LOADS_AT_ONCE);
                    let mut shown = false;
                    let (mut failure, mut failed) = (None, Vec::new());
                    while let Some((metric, answer)) = futures_util::StreamExt::next(&mut loads).await {
                        match answer {
                            Ok(answer) => board.dispatch(BoardAction::Load {
                                view,
                                metric,
                                resolution: answer.resolution,
                                points: answer.data,
                            }),
                            Err(err) => {
                                failure = Some(err.message);
                                failed.push(metric);
                            }
                        }
                        if !shown {
                            shown = true;
                            match &agent_list {
                                Ok(list) => agents.set(list.clone()),
                                Err(err) => failure = Some(err.message.clone()),
                            }
                        }
                    }
                    drop(loads);
                    // Metrics without points in the range still get their (empty) chart.
                    board.dispatch(BoardAction::Finish { view, metrics, failed });
                    if !shown && let Ok(list) = agent_list {
                        agents.set(list);
                    }
                    error.set(failure);
                });
            },
        );
    }
    // The live link, while the live view is on.
    {
        let (board, link, reloads, last_frame) = (board.clone(), link.clone(), reloads.clone(), last_frame.clone());
        use_effect_with((props.slug.clone(), props.agent.clone(), following), move |(slug, agent, following)| {
            if !following {
                link.set(None);
            }
            let running = following.then(|| {
                let reload_count = Rc::new(RefCell::new(*reloads));
                let on_update = Callback::from(move |update: LiveUpdate| match update {
                    LiveUpdate::Points(points) => {
                        *last_frame.borrow_mut() = Some(now_ms());
                        board.dispatch(BoardAction::Apply(points));
                    }
                    LiveUpdate::Status(state) => link.set(Some(state)),
                    LiveUpdate::Reset => {
                        let next = *reload_count.borrow() + 1;
                        *reload_count.borrow_mut() = next;
                        reloads.set(next);
                    }
                });
                LiveLink::start(slug, agent.as_deref(), on_update)
            });
            move || drop(running)
        });
    }

    let go = {
        let (slug, agent) = (props.slug.clone(), props.agent.clone());
        Callback::from(move |range: TimeRange| navigate(&tenant_href(&slug, agent.as_deref(), range)))
    };
    let on_zoom = {
        let go = go.clone();
        Callback::from(move |(start, end): (i64, i64)| go.emit(TimeRange::zoom(start, end)))
    };
    let select_agent = {
        let (slug, range) = (props.slug.clone(), range);
        Callback::from(move |event: Event| {
            let Some(select) = event.target_dyn_into::<HtmlSelectElement>() else { return };
            let value = select.value();
            navigate(&tenant_href(&slug, (!value.is_empty()).then_some(value.as_str()), range));
        })
    };
    let mode = match (range.is_live(), props.live) {
        (false, _) => PageMode::History,
        (true, false) => PageMode::Paused,
        (true, true) => PageMode::Live,
    };
    let last_data = (*last_frame.borrow()).max(board.board.latest_ms());
    let stale_after = model::stale_after_ms(agents.iter().map(|a| a.interval_s));
    let status = link_badge(&model::badge(mode, link.as_ref(), last_data, now, stale_after));
    // The picker's custom range starts from the axis of the view asked for.
    let view = board.board.view();
    let window = if range.is_live() { range.window(now) } else { range.window(view.anchor_ms) };
    let widgets = board.board.widgets();
    let cards = widgets.iter().map(|widget| {
        let metric = widget.metric.clone();
        let frozen = paused.get(&metric).cloned().filter(|_| range.is_live());
        let shown = frozen.clone().unwrap_or_else(|| widget.clone());
        let open = {
            let expanded = expanded.clone();
            let metric = metric.clone();
            Callback::from(move |_| expanded.set(Some(metric.clone())))
        };
        let toggle = {
            let (paused, metric, widget) = (paused.clone(), metric.clone(), widget.clone());
            Callback::from(move |_: MouseEvent| {
                let mut next = (*paused).clone();
                if next.remove(&metric).is_none() {
                    next.insert(metric.clone(), widget.clone());
                }
                paused.set(next);
            })
        };
        let widget_live = frozen.is_none();
        // Each chart's axis goes with its data: until a new view's data arrives, the old
        // data stays on its old axis.
        let chart_window = match &frozen {
            Some(f) => TimeRange::Live.window(f.latest_ms().unwrap_or(now)),
            None => widget.window(now),
        };
        html! {
            <li key={metric.clone()} class="rounded-2xl bg-slate-900/70 p-4 ring-1 ring-white/5" data-metric={metric.clone()}>
                <div class="mb-2 flex items-center gap-2">
                    <h2 class="truncate font-mono text-sm text-slate-200">{ &metric }</h2>
                    { resolution_note(&shown) }
                    <span class="ml-auto"></span>
                    if range.is_live() {
                        <button type="button" onclick={toggle} aria-pressed={widget_live.to_string()}
                            aria-label={format!("Live updates for {metric}")}
                            class="rounded-full px-2 py-0.5 text-xs text-slate-300 ring-1 ring-slate-700 hover:ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                            { if widget_live { "live" } else { "paused" } }
                        </button>
                    }
                    <button type="button" onclick={open} aria-label={format!("Expand {metric}")}
                        class="rounded-full px-2 py-0.5 text-xs text-slate-300 ring-1 ring-slate-700 hover:ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                        { "Expand" }
                    </button>
                </div>
                <TimeChart widget={shown.clone()} window={chart_window} range_text={shown.range().describe()} on_zoom={on_zoom.clone()}
                    overlay={overlay_of(&metric)} />
                <Legend widget={shown} now_ms={now} />
            </li>
        }
    });
    let modal = expanded.as_ref().and_then(|metric| board.board.widget(metric)).map(|widget| {
        let close = {
            let expanded = expanded.clone();
            Callback::from(move |_| expanded.set(None))
        };
        let overlay = overlay_of(&widget.metric);
        html! {
            <Expanded window={widget.window(now)} range_text={widget.range().describe()} {widget} now_ms={now} {range}
                on_range={go.clone()} on_zoom={on_zoom.clone()} on_close={close} {overlay} />
        }
    });
    let agent_options = agents.iter().map(|a| {
        let selected = props.agent.as_deref() == Some(a.agent_id.as_str());
        html! { <option key={a.agent_id.clone()} value={a.agent_id.clone()} {selected}>{ format!("{} ({})", a.agent_id, a.status) }</option> }
    });
    html! {
        <>
            <div class="mb-5 flex flex-wrap items-center gap-4">
                <h1 class="text-xl font-semibold tracking-tight">{ &props.slug }</h1>
                { status }
                <RangePicker id="page" {range} {window} on_change={go.clone()} />
                <label class="ml-auto flex items-center gap-2 text-sm text-slate-300">
                    { "Agent" }
                    <select onchange={select_agent} class="rounded-lg bg-slate-800 px-2 py-1 text-slate-100 ring-1 ring-slate-700 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                        <option value="" selected={props.agent.is_none()}>{ "All agents" }</option>
                        { for agent_options }
                    </select>
                </label>
            </div>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            if widgets.is_empty() {
                <p class="text-slate-400">{ "No metrics yet. Push one and it appears here live." }</p>
            }
            <ul class="grid gap-4 md:grid-cols-2 xl:grid-cols-3" data-testid="widgets">{ for cards }</ul>
            { for modal }
        </>
    }
}

/// What a rollup chart shows, next to its title: raw data needs no note.
fn resolution_note(widget: &Widget) -> Html {
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

/// The live badge: a pulsing dot while data arrives, and which transport carries it.
fn link_badge(badge: &model::Badge) -> Html {
    let color = match (badge.receiving, badge.connected, badge.transport) {
        (true, _, "stream") => "bg-emerald-400",
        (true, _, _) => "bg-amber-300",
        (false, true, _) => "bg-sky-400",
        _ => "bg-slate-500",
    };
    html! {
        <span role="status" data-testid="link-status" data-transport={badge.transport} data-connected={badge.connected.to_string()}
            data-receiving={badge.receiving.to_string()}
            class="inline-flex items-center gap-2 rounded-full bg-slate-900 px-3 py-1 text-xs text-slate-200 ring-1 ring-white/5">
            <span class="relative flex h-2 w-2" aria-hidden="true">
                if badge.receiving {
                    <span class={classes!("absolute", "inline-flex", "h-full", "w-full", "animate-ping", "rounded-full", "opacity-60", color)}></span>
                }
                <span class={classes!("relative", "inline-flex", "h-2", "w-2", "rounded-full", color)}></span>
            </span>
            { &badge.text }
        </span>
    }
}

#[derive(Properties, PartialEq)]
struct RangePickerProps {
    /// Prefix of the element ids, unique on the page.
    id: AttrValue,
    range: TimeRange,
    /// The time axis shown, to start a custom range from.
    window: (i64, i64),
    on_change: Callback<TimeRange>,
}

/// `YYYY-MM-DDTHH:MM` in the browser's time zone, what a `datetime-local` input holds.
fn local_input_value(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// Milliseconds of a `datetime-local` value, read in the browser's time zone.
fn parse_local_input(value: &str) -> Option<i64> {
    let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(value)).get_time();
    ms.is_finite().then_some(ms as i64)
}

/// Live, the presets, a custom range, and the way back to live.
#[function_component]
fn RangePicker(props: &RangePickerProps) -> Html {
    let custom_open = use_state(|| matches!(props.range, TimeRange::Between { .. }));
    let custom_error = use_state(|| None::<String>);
    let (from, to) = (use_node_ref(), use_node_ref());
    {
        // Filled once when opened, not on every render: the inputs are the user's to edit.
        let (from, to, window) = (from.clone(), to.clone(), props.window);
        use_effect_with(*custom_open, move |open| {
            if *open {
                for (node, ms) in [(&from, window.0), (&to, window.1)] {
                    if let Some(input) = node.cast::<HtmlInputElement>() {
                        input.set_value(&local_input_value(ms));
                    }
                }
            }
        });
    }
    let class = |pressed: bool| {
        classes!(
            "px-3",
            "py-1",
            "text-sm",
            "focus-visible:outline",
            "focus-visible:outline-2",
            "focus-visible:-outline-offset-2",
            "focus-visible:outline-sky-300",
            if pressed {
                "bg-sky-500 text-slate-950 font-medium"
            } else {
                "bg-slate-900 text-slate-300 hover:bg-slate-800"
            }
        )
    };
    let choice = |label: &'static str, target: TimeRange| {
        let on_change = props.on_change.clone();
        let custom_open = custom_open.clone();
        let onclick = Callback::from(move |_| {
            custom_open.set(false);
            on_change.emit(target);
        });
        let pressed = props.range == target;
        html! { <button type="button" {onclick} aria-pressed={pressed.to_string()} class={class(pressed)}>{ label }</button> }
    };
    let toggle_custom = {
        let custom_open = custom_open.clone();
        Callback::from(move |_| custom_open.set(!*custom_open))
    };
    let onsubmit = {
        let (from, to, on_change, custom_error) =
            (from.clone(), to.clone(), props.on_change.clone(), custom_error.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let read = |node: &NodeRef| node.cast::<HtmlInputElement>().and_then(|i| parse_local_input(&i.value()));
            match (read(&from), read(&to)) {
                (Some(start_ms), Some(end_ms)) if end_ms > start_ms => {
                    custom_error.set(None);
                    on_change.emit(TimeRange::Between { start_ms, end_ms });
                }
                (Some(_), Some(_)) => custom_error.set(Some("The end must be after the start.".into())),
                _ => custom_error.set(Some("Enter a start and an end.".into())),
            }
        })
    };
    let back = {
        let on_change = props.on_change.clone();
        Callback::from(move |_| on_change.emit(TimeRange::Live))
    };
    let custom_id = format!("{}-custom", props.id);
    let is_custom = matches!(props.range, TimeRange::Between { .. });
    let input_class = "rounded-lg bg-slate-800 px-2 py-1 text-slate-100 ring-1 ring-slate-700 [color-scheme:dark] focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400";
    html! {
        <div class="flex flex-wrap items-center gap-2">
            <div role="group" aria-label="Time range" class="inline-flex divide-x divide-slate-700 overflow-hidden rounded-lg ring-1 ring-slate-700">
                { choice("Live", TimeRange::Live) }
                { for Preset::ALL.iter().map(|p| choice(p.label(), TimeRange::Last(*p))) }
                <button type="button" onclick={toggle_custom} aria-expanded={custom_open.to_string()} aria-controls={custom_id.clone()}
                    aria-pressed={is_custom.to_string()} class={class(is_custom)}>{ "Custom" }</button>
            </div>
            if !props.range.is_live() {
                <button type="button" onclick={back}
                    class="rounded-lg bg-emerald-400 px-3 py-1 text-sm font-medium text-slate-950 hover:bg-emerald-300 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-emerald-300">
                    { "Back to live" }
                </button>
            }
            if *custom_open {
                <form id={custom_id.clone()} {onsubmit} aria-label="Custom range" class="flex flex-wrap items-center gap-2 text-sm text-slate-300">
                    <label for={format!("{custom_id}-from")}>{ "From" }</label>
                    <input id={format!("{custom_id}-from")} ref={from} type="datetime-local" required=true class={input_class} />
                    <label for={format!("{custom_id}-to")}>{ "To" }</label>
                    <input id={format!("{custom_id}-to")} ref={to} type="datetime-local" required=true class={input_class} />
                    <button type="submit" class="rounded-lg bg-sky-500 px-3 py-1 font-medium text-slate-950 hover:bg-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-300">{ "Apply" }</button>
                    if let Some(message) = &*custom_error {
                        <p role="alert" class="text-rose-300">{ message }</p>
                    }
                </form>
            }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ExpandedProps {
    widget: Rc<Widget>,
    window: (i64, i64),
    now_ms: i64,
    range: TimeRange,
    range_text: AttrValue,
    on_range: Callback<TimeRange>,
    on_zoom: Callback<(i64, i64)>,
    on_close: Callback<()>,
    overlay: Rc<Overlay>,
}

/// One metric, large, over the page, with its own range picker (the page's range: the URL
/// holds one); Escape or the button closes it.
#[function_component]
fn Expanded(props: &ExpandedProps) -> Html {
    let close_button = use_node_ref();
    {
        let close_button = close_button.clone();
        use_effect_with((), move |_| {
            if let Some(button) = close_button.cast::<web_sys::HtmlElement>() {
                let _ = button.focus();
            }
        });
    }
    let on_close = props.on_close.clone();
    let onkeydown = {
        let on_close = on_close.clone();
        Callback::from(move |event: KeyboardEvent| {
            if event.key() == "Escape" {
                on_close.emit(());
            }
        })
    };
    let title = props.widget.metric.clone();
    html! {
        <div class="fixed inset-0 z-20 grid place-items-center bg-slate-950/80 p-4" {onkeydown}>
            <section role="dialog" aria-modal="true" aria-labelledby="expanded-title" data-metric={title.clone()}
                class="w-full max-w-5xl rounded-2xl bg-slate-900 p-6 shadow-2xl ring-1 ring-white/10">
                <div class="mb-4 flex flex-wrap items-center gap-3">
                    <h2 id="expanded-title" class="font-mono text-lg text-slate-100">{ &title }</h2>
                    { resolution_note(&props.widget) }
                    <RangePicker id="expanded" range={props.range} window={props.window} on_change={props.on_range.clone()} />
                    <button ref={close_button} type="button" onclick={move |_| on_close.emit(())}
                        class="ml-auto rounded-lg px-3 py-1 text-sm text-slate-300 ring-1 ring-slate-700 hover:ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                        { "Close" }
                    </button>
                </div>
                <TimeChart widget={props.widget.clone()} window={props.window} height={360} range_text={props.range_text.clone()}
                    on_zoom={props.on_zoom.clone()} overlay={props.overlay.clone()} />
                <Legend widget={props.widget.clone()} now_ms={props.now_ms} />
            </section>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct TokensProps {
    admin: bool,
}

/// List, create (secret shown once) and revoke tokens.
#[function_component]
fn TokensPage(props: &TokensProps) -> Html {
    let tokens = use_state(|| None::<Result<Vec<TokenOut>, String>>);
    let tenants = use_state(Vec::<TenantOut>::new);
    let created = use_state(|| None::<CreatedToken>);
    let error = use_state(|| None::<String>);
    let refresh = use_state(|| 0u32);
    let name = use_node_ref();
    let tenant = use_node_ref();
    let ingest = use_node_ref();
    let read = use_node_ref();
    {
        let (tokens, tenants) = (tokens.clone(), tenants.clone());
        use_effect_with(*refresh, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                tokens.set(Some(api::tokens().await.map_err(|e| e.message)));
                if let Ok(list) = api::tenants().await {
                    tenants.set(list);
                }
            });
        });
    }
    let onsubmit = {
        let (name, tenant, ingest, read) = (name.clone(), tenant.clone(), ingest.clone(), read.clone());
        let (created, error, refresh) = (created.clone(), error.clone(), refresh.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let checked = |node: &NodeRef| node.cast::<HtmlInputElement>().is_some_and(|i| i.checked());
            let scopes: Vec<&str> =
                [("ingest", checked(&ingest)), ("read", checked(&read))].iter().filter(|s| s.1).map(|s| s.0).collect();
            let body = CreateToken {
                tenant: tenant.cast::<HtmlSelectElement>().map(|s| s.value()).filter(|v| !v.is_empty()),
                scopes: scopes.join(","),
                name: name.cast::<HtmlInputElement>().map(|i| i.value()).filter(|v| !v.is_empty()),
            };
            let (created, error, refresh) = (created.clone(), error.clone(), refresh.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_token(&body).await {
                    Ok(token) => {
                        created.set(Some(token));
                        error.set(None);
                        refresh.set(*refresh + 1);
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let revoke = |id: i64| {
        let (error, refresh) = (error.clone(), refresh.clone());
        Callback::from(move |_| {
            let confirmed = web_sys::window()
                .and_then(|w| w.confirm_with_message("Revoke this token? Programs using it stop working at once.").ok())
                .unwrap_or(false);
            if !confirmed {
                return;
            }
            let (error, refresh) = (error.clone(), refresh.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::revoke_token(id).await {
                    Ok(_) => refresh.set(*refresh + 1),
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let rows = match &*tokens {
        None => html! { <tr><td colspan="6" class="py-3 text-slate-400">{ "Loading…" }</td></tr> },
        Some(Err(message)) => {
            html! { <tr><td colspan="6" role="alert" class="py-3 text-rose-300">{ message }</td></tr> }
        }
        Some(Ok(list)) => html! {
            { for list.iter().map(|t| {
                let active = t.revoked_at.is_none();
                html! {
                    <tr key={t.id} class="border-t border-white/5">
                        <td class="py-2 pr-4 font-mono">{ &t.prefix }{ "…" }</td>
                        <td class="py-2 pr-4">{ if t.name.is_empty() { "–" } else { &t.name } }</td>
                        <td class="py-2 pr-4">{ t.tenant.as_deref().unwrap_or("(admin)") }</td>
                        <td class="py-2 pr-4 font-mono">{ t.scopes.to_string() }</td>
                        <td class="py-2 pr-4 text-slate-400">{ t.last_used_at.as_deref().unwrap_or("never") }</td>
                        <td class="py-2 text-right">
                            if active {
                                <button type="button" onclick={revoke(t.id)} aria-label={format!("Revoke token {}", t.prefix)}
                                    class="rounded-lg px-2 py-1 text-rose-300 ring-1 ring-rose-900 hover:bg-rose-950 focus-visible:outline focus-visible:outline-2 focus-visible:outline-rose-300">{ "Revoke" }</button>
                            } else {
                                <span class="text-slate-500">{ "revoked" }</span>
                            }
                        </td>
                    </tr>
                }
            }) }
        },
    };
    let tenant_field = if props.admin {
        html! {
            <label class="grid gap-1 text-sm text-slate-300">
                { "Tenant" }
                <select ref={tenant} required=true class="rounded-lg bg-slate-800 px-2 py-2 text-slate-100 ring-1 ring-slate-700 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                    { for tenants.iter().map(|t| html! { <option key={t.slug.clone()} value={t.slug.clone()}>{ &t.slug }</option> }) }
                </select>
            </label>
        }
    } else {
        html! {}
    };
    html! {
        <>
            <h1 class="mb-4 text-xl font-semibold tracking-tight">{ "API tokens" }</h1>
            <form {onsubmit} class="mb-6 flex flex-wrap items-end gap-4 rounded-2xl bg-slate-900/70 p-4 ring-1 ring-white/5" aria-label="Create a token">
                <label class="grid gap-1 text-sm text-slate-300">
                    { "Name" }
                    <input ref={name} placeholder="edge-gateway" class="rounded-lg bg-slate-800 px-3 py-2 text-slate-100 ring-1 ring-slate-700 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400" />
                </label>
                { tenant_field }
                <fieldset class="flex gap-4 text-sm text-slate-300">
                    <legend class="mb-1">{ "Scopes" }</legend>
                    <label class="flex items-center gap-2"><input ref={ingest} type="checkbox" checked=true />{ "ingest" }</label>
                    <label class="flex items-center gap-2"><input ref={read} type="checkbox" checked=true />{ "read" }</label>
                </fieldset>
                <button type="submit" class="rounded-lg bg-sky-500 px-4 py-2 font-medium text-slate-950 hover:bg-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-300">{ "Create token" }</button>
            </form>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            if let Some(token) = &*created {
                <div role="status" class="mb-6 rounded-2xl bg-emerald-950/40 p-4 ring-1 ring-emerald-800/60">
                    <p class="mb-2 text-sm text-emerald-200">{ "Copy this token now: it is shown only once." }</p>
                    <code data-testid="new-token" class="block break-all rounded-lg bg-slate-950 p-3 font-mono text-sm text-slate-100">{ &token.token }</code>
                </div>
            }
            <div class="overflow-x-auto">
                <table class="w-full text-left text-sm">
                    <thead class="text-slate-400">
                        <tr><th scope="col" class="py-2 pr-4 font-normal">{ "Token" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Name" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Tenant" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Scopes" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Last used" }</th><th scope="col"><span class="sr-only">{ "Actions" }</span></th></tr>
                    </thead>
                    <tbody>{ rows }</tbody>
                </table>
            </div>
        </>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_hash() {
        assert_eq!(Route::parse(""), Route::Overview);
        assert_eq!(Route::parse("#/"), Route::Overview);
        assert_eq!(Route::parse("#/tokens"), Route::Tokens);
        let live = TimeRange::Live;
        assert_eq!(Route::parse("#/t/acme"), Route::Tenant { slug: "acme".into(), agent: None, range: live });
        assert_eq!(
            Route::parse("#/t/acme/a/web-1"),
            Route::Tenant { slug: "acme".into(), agent: Some("web-1".into()), range: live }
        );
        assert_eq!(Route::parse("#/nowhere/x"), Route::Overview);
        assert_eq!(Route::parse("#/tokens?range=24h"), Route::Tokens);
        let day = TimeRange::Last(Preset::Day);
        assert_eq!(Route::parse("#/t/acme?range=24h"), Route::Tenant { slug: "acme".into(), agent: None, range: day });
        for range in [live, day, TimeRange::Between { start_ms: 1_000_000, end_ms: 2_000_000 }] {
            let route = Route::Tenant { slug: "acme".into(), agent: Some("db:1".into()), range };
            assert_eq!(Route::parse(&tenant_href("acme", Some("db:1"), range)), route);
        }
        assert_eq!(tenant_href("acme", None, live), "#/t/acme");
        assert_eq!(Route::parse("#/t/acme/alerts"), Route::Alerts { slug: "acme".into(), screen: Screen::Inbox });
        assert_eq!(
            Route::parse(&Screen::Rule(Some(4)).href("acme")),
            Route::Alerts { slug: "acme".into(), screen: Screen::Rule(Some(4)) }
        );
        assert_eq!(Route::parse("#/t/acme/alerts/nowhere"), Route::Overview);
        assert_eq!(Route::parse("#/t/acme/alerts/channels").tenant(), Some("acme"));
    }
}
