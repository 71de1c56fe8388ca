//! A tenant's page: a widget per metric (CPU, memory and disk first, then every custom metric,
//! unless the tenant arranged them otherwise), live or over a past range, with alert markers and
//! rule thresholds; an agent filter; a dialog with one metric large. An empty tenant's page says
//! how to send the first metric and turns into widgets the moment it arrives.
//!
//! Everything the page knows is one [`TenantState`], changed only through its reducer: the
//! board, the live link's state, the agents, the widgets paused on their own (snapshots), the
//! expanded one, the reloads asked for and the tenant's layout.
//!
//! Loading: the series list (with the agents and, once, the layout), then each metric's
//! history [`LOADS_AT_ONCE`] at a time in the order the widgets go, so the first chart shows as
//! early as possible; a new range starts a new view and the old data stays on screen until
//! the new arrives.

use std::collections::BTreeMap;
use std::rc::Rc;

use microdash_core::api::alert::{AlertEventOut, AlertRuleOut};
use microdash_core::api::{AgentOut, PointOut, QueryResponse, Resolution};
use microdash_core::layout::WidgetSize;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::api::{self, ApiError};
use crate::app::{navigate, tenant_href, tokens_href};
use crate::components::badges::{link_badge, resolution_note};
use crate::components::chart::{Legend, TimeChart};
use crate::components::dialog::Dialog;
use crate::components::range_picker::RangePicker;
use crate::components::snippets::Snippets;
use crate::components::style::{CARD, CHIP, H1, SECONDARY};
use crate::components::widget::{LiveState, WidgetCard};
use crate::hooks::{now_ms, use_clock, use_live_control, use_live_link, use_title};
use crate::live::LiveUpdate;
use crate::model::layout::{BoardLayout, LayoutChange};
use crate::model::range::{QueryPlan, TimeRange};
use crate::model::snippets::TOKEN_PLACEHOLDER;
use crate::model::{self, Board, Link, PageMode, View, Widget};

/// How often a preset range ("the last 24 h") is loaded again to follow the clock: a minute is
/// the finest rollup.
const PRESET_REFRESH_MS: i64 = 60_000;
/// History loads in flight at once (see the module's doc).
const LOADS_AT_ONCE: usize = 3;
/// How often the live view asks for new alert transitions to mark on its charts.
const MARKER_REFRESH_MS: i64 = 5_000;
/// How often a tenant page reloads the rules whose thresholds its charts draw.
const RULES_REFRESH_MS: i64 = 30_000;

/// Everything the page shows.
#[derive(Clone, Default, PartialEq)]
pub struct TenantState {
    board: Board,
    /// The live link, while one runs.
    link: Option<Link>,
    agents: Vec<AgentOut>,
    error: Option<String>,
    /// Reloads asked for (the live link could not resume, updates resumed after a pause).
    reloads: u32,
    /// The metric shown large.
    expanded: Option<String>,
    /// Widgets paused on their own: what they showed when paused.
    frozen: BTreeMap<String, Rc<Widget>>,
    /// When the live link last delivered points (browser clock).
    last_frame: Option<i64>,
    /// Every load of the current view is in.
    finished: bool,
    layout: BoardLayout,
    /// The layout has been fetched (or changed here), so views need not fetch it again.
    layout_known: bool,
    /// Changes made here, to save (none: the layout is the server's).
    layout_revision: u64,
    layout_error: Option<String>,
    arranging: bool,
}

/// How the page changes.
pub enum TenantAction {
    /// A new view (range, agent, reload) begins.
    Begin(View),
    /// One metric's history for a view.
    Load { view: u64, metric: String, resolution: Resolution, points: Vec<PointOut> },
    /// Every load of a view is in.
    Finish { view: u64, metrics: Vec<String>, failed: Vec<String> },
    /// The tenant's agents.
    Agents(Vec<AgentOut>),
    /// The layout the server holds (ignored once changed here).
    Layout(BoardLayout),
    /// Something failed (or nothing did any more).
    Failed(Option<String>),
    /// Live points, arrived at this time.
    Live(Vec<PointOut>, i64),
    /// The live link's state.
    Link(Option<Link>),
    /// Load everything again.
    Reload,
    /// The clock moved: drop what left the live window.
    Trim(i64),
    /// Show a metric large, or none.
    Expand(Option<String>),
    /// Pause one widget, or resume it.
    TogglePause(String),
    /// Show or leave the arranging controls.
    Arrange(bool),
    /// Rearrange.
    Change(LayoutChange),
    /// Saving the layout failed.
    LayoutFailed(Option<String>),
}

impl Reducible for TenantState {
    type Action = TenantAction;

    fn reduce(self: Rc<Self>, action: TenantAction) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        match action {
            TenantAction::Begin(view) => {
                next.board.begin_view(view);
                next.finished = false;
            }
            TenantAction::Load { view, metric, resolution, points } => {
                next.board.load(view, &metric, resolution, &points);
            }
            TenantAction::Finish { view, metrics, failed } => {
                next.board.finish(view, &metrics, &failed);
                next.finished |= view == next.board.view().id;
            }
            TenantAction::Agents(agents) => next.agents = agents,
            TenantAction::Layout(layout) => {
                if next.layout_revision == 0 {
                    next.layout = layout;
                }
                next.layout_known = true;
            }
            TenantAction::Failed(error) => next.error = error,
            TenantAction::Live(points, at) => {
                next.last_frame = Some(at);
                next.board.apply(&points);
            }
            TenantAction::Link(link) => next.link = link,
            TenantAction::Reload => next.reloads += 1,
            TenantAction::Trim(now) => next.board.trim(now),
            TenantAction::Expand(metric) => next.expanded = metric,
            TenantAction::TogglePause(metric) => {
                if next.frozen.remove(&metric).is_none()
                    && let Some(widget) = next.board.widget(&metric)
                {
                    next.frozen.insert(metric, widget);
                }
            }
            TenantAction::Arrange(on) => next.arranging = on,
            TenantAction::Change(change) => {
                let metrics: Vec<String> = next.board.widgets().iter().map(|w| w.metric.clone()).collect();
                next.layout.apply(&change, metrics.iter().map(String::as_str));
                next.layout_revision += 1;
                next.layout_known = true;
            }
            TenantAction::LayoutFailed(error) => next.layout_error = error,
        }
        Rc::new(next)
    }
}

/// Which tenant, which agent, which range.
#[derive(Properties, PartialEq)]
pub struct TenantProps {
    /// The tenant.
    pub slug: String,
    /// Only this agent's series.
    pub agent: Option<String>,
    /// The range shown.
    pub range: TimeRange,
}

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

/// Load view `view` of `slug` (of `agent`) over `range`: the series, the agents and, when
/// `layout` is `None`, the tenant's layout; then each metric's history, a few at a time, in
/// the order the widgets go.
async fn load_view(
    state: UseReducerHandle<TenantState>,
    slug: String,
    agent: Option<String>,
    view: u64,
    plan: impl Fn(WidgetSize) -> QueryPlan,
    layout: Option<BoardLayout>,
) {
    // Each metric on its own: small answers draw the first chart soonest. State changes
    // re-render the page at once, so the loads go out before anything else is shown.
    let wanted_layout = async {
        match &layout {
            Some(layout) => Ok(layout.clone()),
            None => api::layout(&slug).await.map(|out| BoardLayout::from_out(&out)),
        }
    };
    let (agent_list, series, fetched) = futures_util::join!(api::agents(&slug), api::series(&slug), wanted_layout);
    let series = match series {
        Ok(series) => series,
        Err(err) => return state.dispatch(TenantAction::Failed(Some(err.message))),
    };
    // A server without the layout API (or a failed answer) arranges nothing.
    let order_by = fetched.as_ref().ok().cloned().unwrap_or_default();
    let mut metrics: Vec<String> =
        series.into_iter().filter(|s| agent.is_none() || s.agent_id == agent).map(|s| s.metric_name).collect();
    metrics.sort();
    metrics.dedup();
    // Shown widgets in their order, then the hidden ones.
    let arranged = order_by.arrange(metrics.iter().map(String::as_str));
    // Each with the size it is shown at: a wider chart asks for more buckets.
    let order: Vec<(String, WidgetSize)> = arranged
        .shown
        .into_iter()
        .map(|p| (p.metric, p.size))
        .chain(arranged.hidden.into_iter().map(|metric| (metric, WidgetSize::Small)))
        .collect();
    // A few at a time, in display order: the server answers a long range's queries no faster
    // side by side, so fewer at once bring the first charts on screen sooner.
    let loads = futures_util::StreamExt::map(futures_util::stream::iter(order.iter()), |(metric, size)| {
        let (slug, agent, plan) = (&slug, agent.as_deref(), plan(*size));
        async move { (metric.clone(), load_metric(slug, metric, agent, plan).await) }
    });
    let mut loads = futures_util::StreamExt::buffer_unordered(loads, LOADS_AT_ONCE);
    let mut shown = false;
    let (mut failure, mut failed) = (None, Vec::new());
    let (mut agent_list, mut fetched) = (Some(agent_list), (layout.is_none()).then_some(fetched));
    let mut settle = |failure: &mut Option<String>| {
        match agent_list.take() {
            Some(Ok(list)) => state.dispatch(TenantAction::Agents(list)),
            Some(Err(err)) => *failure = Some(err.message),
            None => {}
        }
        if let Some(Ok(layout)) = fetched.take() {
            state.dispatch(TenantAction::Layout(layout));
        }
    };
    while let Some((metric, answer)) = futures_util::StreamExt::next(&mut loads).await {
        match answer {
            Ok(answer) => {
                state.dispatch(TenantAction::Load { view, metric, resolution: answer.resolution, points: answer.data })
            }
            Err(err) => {
                failure = Some(err.message);
                failed.push(metric);
            }
        }
        if !shown {
            shown = true;
            settle(&mut failure);
        }
    }
    drop(loads);
    settle(&mut failure);
    // Metrics without points in the range still get their (empty) widget.
    state.dispatch(TenantAction::Finish { view, metrics, failed });
    state.dispatch(TenantAction::Failed(failure));
}

/// One tenant's widgets: live, or a past range.
#[function_component]
pub fn TenantPage(props: &TenantProps) -> Html {
    use_title(match &props.agent {
        Some(agent) => format!("{agent} · {}", props.slug),
        None => props.slug.clone(),
    });
    let state = use_reducer(TenantState::default);
    let views = use_mut_ref(|| 0u64);
    let now = use_clock();
    let live = use_live_control();
    let range = props.range;
    let following = range.is_live() && !live.paused;
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
        let state = state.clone();
        use_effect_with(now, move |now| state.dispatch(TenantAction::Trim(*now)));
    }
    // Each metric's data for the range; a preset follows the clock.
    let refresh = match range {
        TimeRange::Last(_) => now / PRESET_REFRESH_MS,
        _ => 0,
    };
    {
        let state = state.clone();
        let layout = state.layout_known.then(|| state.layout.clone());
        use_effect_with(
            (props.slug.clone(), props.agent.clone(), range, state.reloads, refresh),
            move |(slug, agent, range, _, _)| {
                let view = {
                    let mut views = views.borrow_mut();
                    *views += 1;
                    *views
                };
                let started = now_ms();
                state.dispatch(TenantAction::Begin(View { id: view, range: *range, anchor_ms: started }));
                let viewport = web_sys::window()
                    .and_then(|w| w.inner_width().ok())
                    .and_then(|w| w.as_f64())
                    .map_or(1280, |w| w as u32);
                let range = *range;
                let plan = move |size| range.plan(started, model::range::chart_width_px(viewport, size));
                wasm_bindgen_futures::spawn_local(load_view(state, slug.clone(), agent.clone(), view, plan, layout));
            },
        );
    }
    // Updates resumed after a pause: what came meanwhile is loaded again.
    {
        let state = state.clone();
        let was_following = use_mut_ref(|| following);
        use_effect_with(following, move |following| {
            let resumed = *following && !*was_following.borrow();
            *was_following.borrow_mut() = *following;
            if resumed && range.is_live() {
                state.dispatch(TenantAction::Reload);
            }
        });
    }
    // The live link, while the live view is on.
    {
        let state_for_link = state.clone();
        let on_update = Callback::from(move |update: LiveUpdate| match update {
            LiveUpdate::Points(points) => state_for_link.dispatch(TenantAction::Live(points, now_ms())),
            LiveUpdate::Status(link) => state_for_link.dispatch(TenantAction::Link(Some(link))),
            LiveUpdate::Reset => state_for_link.dispatch(TenantAction::Reload),
        });
        let state = state.clone();
        use_effect_with(following, move |following| {
            if !following {
                state.dispatch(TenantAction::Link(None));
            }
        });
        use_live_link(Some(props.slug.clone()), props.agent.clone(), following, on_update);
    }
    // Save what was rearranged here.
    {
        let state = state.clone();
        let slug = props.slug.clone();
        use_effect_with(state.layout_revision, move |revision| {
            if *revision > 0 {
                let body = state.layout.to_in();
                wasm_bindgen_futures::spawn_local(async move {
                    let saved = api::save_layout(&slug, &body).await;
                    state.dispatch(TenantAction::LayoutFailed(
                        saved.err().map(|e| format!("The layout was not saved: {}", e.message)),
                    ));
                });
            }
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
    let mode = match (range.is_live(), live.paused) {
        (false, _) => PageMode::History,
        (true, true) => PageMode::Paused,
        (true, false) => PageMode::Live,
    };
    let board = &state.board;
    let last_data = state.last_frame.max(board.latest_ms());
    let stale_after = model::stale_after_ms(state.agents.iter().map(|a| a.interval_s));
    let status = link_badge(&model::badge(mode, state.link.as_ref(), last_data, now, stale_after));
    // The picker's custom range starts from the axis of the view asked for.
    let view = board.view();
    let window = if range.is_live() { range.window(now) } else { range.window(view.anchor_ms) };
    let metrics: Vec<String> = board.widgets().iter().map(|w| w.metric.clone()).collect();
    let arranged = state.layout.arrange(metrics.iter().map(String::as_str));
    let on_change = {
        let state = state.clone();
        Callback::from(move |change: LayoutChange| state.dispatch(TenantAction::Change(change)))
    };
    let cards = arranged.shown.iter().filter_map(|placed| {
        let widget = board.widget(&placed.metric)?;
        let frozen = state.frozen.get(&placed.metric).cloned().filter(|_| range.is_live());
        let shown = frozen.clone().unwrap_or_else(|| widget.clone());
        let live_state = match (range.is_live(), live.paused, frozen.is_some()) {
            (false, _, _) => LiveState::History,
            (true, true, _) => LiveState::PausedAll,
            (true, false, true) => LiveState::Paused,
            (true, false, false) => LiveState::Live,
        };
        // Each chart's axis goes with its data: until a new view's data arrives, the old
        // data stays on its old axis.
        let chart_window = match &frozen {
            Some(f) => TimeRange::Live.window(f.latest_ms().unwrap_or(now)),
            None => widget.window(now),
        };
        let metric = placed.metric.clone();
        let on_pause = {
            let (state, metric) = (state.clone(), metric.clone());
            Callback::from(move |()| state.dispatch(TenantAction::TogglePause(metric.clone())))
        };
        let on_expand = {
            let (state, metric) = (state.clone(), metric.clone());
            Callback::from(move |()| state.dispatch(TenantAction::Expand(Some(metric.clone()))))
        };
        Some(html! {
            <WidgetCard key={metric.clone()} widget={shown.clone()} placed={placed.clone()} window={chart_window}
                range_text={shown.range().describe()} now_ms={now} overlay={overlay_of(&metric)} live={live_state}
                {on_pause} {on_expand} on_zoom={on_zoom.clone()} arranging={state.arranging} on_change={on_change.clone()} />
        })
    });
    let modal = state.expanded.as_ref().and_then(|metric| board.widget(metric)).map(|widget| {
        let close = {
            let state = state.clone();
            Callback::from(move |()| state.dispatch(TenantAction::Expand(None)))
        };
        let overlay = overlay_of(&widget.metric);
        html! {
            <Expanded window={widget.window(now)} range_text={widget.range().describe()} {widget} now_ms={now} {range}
                on_range={go.clone()} on_zoom={on_zoom.clone()} on_close={close} {overlay} />
        }
    });
    let agent_options = state.agents.iter().map(|a| {
        let selected = props.agent.as_deref() == Some(a.agent_id.as_str());
        html! { <option key={a.agent_id.clone()} value={a.agent_id.clone()} {selected}>{ format!("{} ({})", a.agent_id, a.status) }</option> }
    });
    let toggle_arrange = {
        let (state, on) = (state.clone(), !state.arranging);
        Callback::from(move |_| state.dispatch(TenantAction::Arrange(on)))
    };
    let hidden = (!arranged.hidden.is_empty()).then(|| {
        let items = arranged.hidden.iter().map(|metric| {
            let on_change = on_change.clone();
            let change = LayoutChange::SetHidden(metric.clone(), false);
            html! {
                <li key={metric.clone()} class="inline-flex items-center gap-2">
                    <span class="font-mono text-slate-200">{ metric }</span>
                    <button type="button" class={CHIP} onclick={move |_| on_change.emit(change.clone())}>
                        { "Show" }<span class="sr-only">{ format!(" {metric}") }</span>
                    </button>
                </li>
            }
        });
        html! {
            <div class="mb-4 flex flex-wrap items-center gap-3 text-sm text-slate-300" data-testid="hidden-widgets">
                <span>{ "Hidden:" }</span>
                <ul class="flex flex-wrap gap-3">{ for items }</ul>
            </div>
        }
    });
    let empty = board.widgets().is_empty() && state.finished && state.error.is_none();
    html! {
        <>
            <div class="mb-5 flex flex-wrap items-center gap-x-4 gap-y-3">
                <h1 class={H1}>{ &props.slug }</h1>
                { status }
                <RangePicker id="page" {range} {window} on_change={go.clone()} />
                <div class="flex flex-wrap items-center gap-3 md:ml-auto">
                    <button type="button" onclick={toggle_arrange} aria-pressed={state.arranging.to_string()} class={SECONDARY}>
                        { "Arrange widgets" }
                    </button>
                    <label class="flex items-center gap-2 text-sm text-slate-300">
                        { "Agent" }
                        <select onchange={select_agent} class="min-h-8 rounded-lg bg-slate-800 px-2 py-1 text-slate-100 ring-1 ring-slate-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 max-sm:min-h-11">
                            <option value="" selected={props.agent.is_none()}>{ "All agents" }</option>
                            { for agent_options }
                        </select>
                    </label>
                </div>
            </div>
            if let Some(message) = &state.error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            if let Some(message) = &state.layout_error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            { hidden.unwrap_or_default() }
            if empty && range.is_live() {
                { first_metric(&props.slug) }
            } else if empty {
                <p class="text-slate-300">{ "No data in this range." }</p>
            }
            <ul class="grid grid-cols-1 gap-4 md:grid-cols-2 xl:grid-cols-3 2xl:grid-cols-4" data-testid="widgets">{ for cards }</ul>
            { modal.unwrap_or_default() }
        </>
    }
}

/// An empty tenant: how to send the first metric.
fn first_metric(slug: &str) -> Html {
    html! {
        <section class={classes!(CARD, "mb-6", "max-w-4xl", "p-5")} aria-labelledby="first-metric" data-testid="first-metric">
            <h2 id="first-metric" class="mb-2 text-lg font-medium text-slate-50">{ "Send your first metric" }</h2>
            <p class="mb-4 text-slate-300">
                { "Nothing has arrived for this tenant yet. Create a token with the ingest scope, then run one of these with it; the chart appears here the moment the metric arrives. " }
                <a href={tokens_href(Some(slug))} class="rounded text-sky-300 underline underline-offset-4 hover:text-sky-200">{ "Create a token" }</a>
            </p>
            <Snippets tenant={slug.to_owned()} token={TOKEN_PLACEHOLDER} />
        </section>
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
    overlay: Rc<crate::model::alerts::Overlay>,
}

/// One metric, large, in a dialog, with its own range picker (the page's range: the URL
/// holds one); Escape or the button closes it and the focus goes back to where it was.
#[function_component]
fn Expanded(props: &ExpandedProps) -> Html {
    let on_close = props.on_close.clone();
    let title = props.widget.metric.clone();
    html! {
        <Dialog labelled_by="expanded-title" on_close={props.on_close.clone()} metric={title.clone()}>
            <div class="mb-4 flex flex-wrap items-center gap-3">
                <h2 id="expanded-title" class="font-mono text-lg text-slate-100">{ &title }</h2>
                { resolution_note(&props.widget) }
                <RangePicker id="expanded" range={props.range} window={props.window} on_change={props.on_range.clone()} />
                <button type="button" onclick={move |_| on_close.emit(())} class={classes!(SECONDARY, "ml-auto")}>
                    { "Close" }
                </button>
            </div>
            <TimeChart widget={props.widget.clone()} window={props.window} height={360} range_text={props.range_text.clone()}
                on_zoom={props.on_zoom.clone()} overlay={props.overlay.clone()} />
            <Legend widget={props.widget.clone()} now_ms={props.now_ms} />
        </Dialog>
    }
}
