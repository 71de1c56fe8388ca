//! The alert inbox: what fires now (critical before warning, with its value, host and since
//! when), what is pending, and the history of transitions with filters.

use std::collections::BTreeMap;

use microdash_core::api::AgentOut;
use microdash_core::api::alert::{AlertEventOut, AlertOut, AlertRuleOut, AlertState};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use super::{INBOX_REFRESH_MS, INPUT, Screen, load_failure, server_time, tabs, tone_badge};
use crate::api::{self, ApiError};
use crate::app::tenant_href;
use crate::hooks::use_clock;
use crate::model::alerts::{self, HistoryFilter, Tone};
use crate::model::range::{Preset, TimeRange};
use crate::model::units::Unit;
use crate::model::{format_age, parse_millis};

/// How often the history reloads by itself (a filter change reloads it at once).
const HISTORY_REFRESH_MS: i64 = 15_000;

/// What the inbox shows.
#[derive(Properties, PartialEq)]
pub struct InboxProps {
    /// The tenant.
    pub slug: String,
}

/// A value in its metric's unit, `–` for none.
fn value_text(value: Option<f64>, metric: Option<&str>) -> String {
    match value {
        Some(v) => Unit::of(metric.unwrap_or_default()).format(v),
        None => "–".into(),
    }
}

/// The inbox.
#[function_component]
pub fn Inbox(props: &InboxProps) -> Html {
    let now = use_clock();
    let current = use_state(|| None::<Result<Vec<AlertOut>, ApiError>>);
    let rules = use_state(Vec::<AlertRuleOut>::new);
    let agents = use_state(Vec::<AgentOut>::new);
    let filter = use_state(HistoryFilter::default);
    let history = use_state(|| None::<Result<Vec<AlertEventOut>, ApiError>>);
    {
        let (current, rules) = (current.clone(), rules.clone());
        use_effect_with((props.slug.clone(), now / INBOX_REFRESH_MS), move |(slug, _)| {
            let slug = slug.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let (answer, rule_list) = futures_util::join!(api::alerts(&slug, None), api::alert_rules(&slug));
                if let Ok(list) = rule_list {
                    rules.set(list);
                }
                current.set(Some(answer.map(|mut list| {
                    list.retain(|a| matches!(a.state, AlertState::Firing | AlertState::Pending));
                    alerts::sort_alerts(&mut list);
                    list
                })));
            });
        });
    }
    {
        let agents = agents.clone();
        use_effect_with(props.slug.clone(), move |slug| {
            let slug = slug.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(list) = api::agents(&slug).await {
                    agents.set(list);
                }
            });
        });
    }
    {
        let history = history.clone();
        use_effect_with((props.slug.clone(), (*filter).clone(), now / HISTORY_REFRESH_MS), move |(slug, filter, _)| {
            let (slug, params) = (slug.clone(), filter.params(crate::hooks::now_ms()));
            wasm_bindgen_futures::spawn_local(async move {
                history.set(Some(api::alert_history(&slug, &params).await));
            });
        });
    }
    let metric_of: BTreeMap<i64, String> = rules.iter().map(|r| (r.id, r.metric_name.clone())).collect();
    let metric = |rule_id: i64| metric_of.get(&rule_id).map(String::as_str);
    let slug = props.slug.clone();
    let alert_item = |alert: &AlertOut| {
        let tone = Tone::of(alert.state, alert.severity);
        let series = alerts::series_label(alert.agent_id.as_deref(), &alert.tags);
        let since = parse_millis(&alert.since);
        let border = match tone {
            Tone::Critical => "border-red-500",
            Tone::Warning => "border-amber-400",
            _ => "border-slate-500",
        };
        let chart = alert.agent_id.as_deref().map(|agent| {
            html! {
                <a href={tenant_href(&slug, Some(agent), TimeRange::Live)} aria-label={format!("Charts of {agent}")}
                    class="inline-flex items-center rounded text-sm text-sky-300 underline-offset-4 hover:underline max-sm:min-h-11 max-sm:min-w-11 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                    { "Charts" }
                </a>
            }
        });
        html! {
            <li key={format!("{}-{series}", alert.rule_id)} data-testid="alert" data-state={alert.state.as_str()}
                data-severity={alert.severity.map(|s| s.as_str()).unwrap_or_default()} data-rule={alert.rule_name.clone()}
                class={classes!("flex", "flex-wrap", "items-center", "gap-x-4", "gap-y-1", "rounded-xl", "border-l-4", "bg-slate-900/70", "px-4", "py-3", "ring-1", "ring-white/5", border)}>
                { tone_badge(tone) }
                <span class="font-medium text-slate-50">{ &alert.rule_name }</span>
                <span class="font-mono text-sm text-slate-300">{ series }</span>
                <span class="font-mono text-sm tabular-nums text-slate-100" data-testid="alert-value">{ value_text(alert.value, metric(alert.rule_id)) }</span>
                <span class="ml-auto text-sm text-slate-400">
                    { match since {
                        Some(ms) => format!("since {} ({} ago)", server_time(&alert.since), format_age(now - ms)),
                        None => format!("since {}", alert.since),
                    } }
                </span>
                { for chart }
            </li>
        }
    };
    let section = |title: &str, id: &str, list: Vec<&AlertOut>, empty: &str| {
        html! {
            <section aria-labelledby={id.to_owned()} class="mb-8">
                <h2 id={id.to_owned()} class="mb-3 text-lg font-semibold tracking-tight">{ format!("{title} ({})", list.len()) }</h2>
                if list.is_empty() {
                    <p class="text-sm text-slate-400">{ empty }</p>
                } else {
                    <ul class="grid gap-2">{ for list.into_iter().map(&alert_item) }</ul>
                }
            </section>
        }
    };
    let now_part = match &*current {
        None => html! { <p class="mb-8 text-slate-400">{ "Loading alerts…" }</p> },
        Some(Err(err)) => html! { <div class="mb-8">{ load_failure(err) }</div> },
        Some(Ok(list)) => {
            let firing: Vec<&AlertOut> = list.iter().filter(|a| a.state == AlertState::Firing).collect();
            let pending: Vec<&AlertOut> = list.iter().filter(|a| a.state == AlertState::Pending).collect();
            html! {
                <>
                    { section("Firing now", "firing-title", firing, "Nothing is firing.") }
                    { section("Pending", "pending-title", pending, "Nothing is pending.") }
                </>
            }
        }
    };
    let on_rule = {
        let filter = filter.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(HistoryFilter { rule_id: value.parse().ok(), ..(*filter).clone() });
        })
    };
    let on_agent = {
        let filter = filter.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(HistoryFilter { agent: (!value.is_empty()).then_some(value), ..(*filter).clone() });
        })
    };
    let on_range = {
        let filter = filter.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            let range = Preset::ALL.into_iter().find(|p| p.key() == value).unwrap_or(Preset::Day);
            filter.set(HistoryFilter { range, ..(*filter).clone() });
        })
    };
    let rows = match &*history {
        None => html! { <tr><td colspan="5" class="py-3 text-slate-400">{ "Loading history…" }</td></tr> },
        Some(Err(err)) if err.is_not_found() => html! {
            <tr><td colspan="5" class="py-3 text-slate-400">{ "No history: alerting is not available on this server yet." }</td></tr>
        },
        Some(Err(err)) => {
            html! { <tr><td colspan="5" role="alert" class="py-3 text-rose-300">{ &err.message }</td></tr> }
        }
        Some(Ok(list)) if list.is_empty() => html! {
            <tr><td colspan="5" class="py-3 text-slate-400">{ "No changes in this range." }</td></tr>
        },
        Some(Ok(list)) => html! {
            { for list.iter().map(|event| {
                let tone = alerts::transition_tone(event);
                html! {
                    <tr key={event.id} class="border-t border-white/5" data-testid="history-row" data-to={event.to.as_str()}>
                        <td data-label="When" class="py-2 pr-4 font-mono tabular-nums text-slate-300">{ server_time(&event.at) }</td>
                        <td data-label="Rule" class="py-2 pr-4">{ &event.rule_name }</td>
                        <td data-label="Series" class="py-2 pr-4 font-mono">{ alerts::series_label(event.agent_id.as_deref(), &event.tags) }</td>
                        <td data-label="Change" class="py-2 pr-4">
                            <span class="inline-flex items-center gap-2">
                                { for tone.map(tone_badge) }
                                { alerts::transition_text(event) }
                            </span>
                        </td>
                        <td data-label="Value" class="py-2 font-mono tabular-nums">{ value_text(event.value, metric(event.rule_id)) }</td>
                    </tr>
                }
            }) }
        },
    };
    let select_class = classes!(INPUT, "w-auto");
    html! {
        <>
            <h1 class="mb-4 text-xl font-semibold tracking-tight">{ "Alerts" }</h1>
            { tabs(&props.slug, Screen::Inbox) }
            { now_part }
            <section aria-labelledby="history-title">
                <h2 id="history-title" class="mb-3 text-lg font-semibold tracking-tight">{ "History" }</h2>
                <form aria-label="History filters" class="mb-4 flex flex-wrap items-end gap-4" onsubmit={Callback::from(|e: SubmitEvent| e.prevent_default())}>
                    <div class="grid gap-1 text-sm">
                        <label for="history-rule" class="text-slate-300">{ "Rule" }</label>
                        <select id="history-rule" onchange={on_rule} class={select_class.clone()}>
                            <option value="" selected={filter.rule_id.is_none()}>{ "All rules" }</option>
                            { for rules.iter().map(|r| html! {
                                <option key={r.id} value={r.id.to_string()} selected={filter.rule_id == Some(r.id)}>{ &r.name }</option>
                            }) }
                        </select>
                    </div>
                    <div class="grid gap-1 text-sm">
                        <label for="history-agent" class="text-slate-300">{ "Agent" }</label>
                        <select id="history-agent" onchange={on_agent} class={select_class.clone()}>
                            <option value="" selected={filter.agent.is_none()}>{ "All agents" }</option>
                            { for agents.iter().map(|a| html! {
                                <option key={a.agent_id.clone()} value={a.agent_id.clone()} selected={filter.agent.as_deref() == Some(a.agent_id.as_str())}>{ &a.agent_id }</option>
                            }) }
                        </select>
                    </div>
                    <div class="grid gap-1 text-sm">
                        <label for="history-range" class="text-slate-300">{ "Time range" }</label>
                        <select id="history-range" onchange={on_range} class={select_class}>
                            { for Preset::ALL.iter().map(|p| html! {
                                <option key={p.key()} value={p.key()} selected={filter.range == *p}>{ format!("Last {}", p.label()) }</option>
                            }) }
                        </select>
                    </div>
                </form>
                <div class="overflow-x-auto">
                    <table class="md-stack w-full text-left text-sm">
                        <thead class="text-slate-400">
                            <tr>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "When" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Rule" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Series" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Change" }</th>
                                <th scope="col" class="py-2 font-normal">{ "Value" }</th>
                            </tr>
                        </thead>
                        <tbody>{ rows }</tbody>
                    </table>
                </div>
            </section>
        </>
    }
}
