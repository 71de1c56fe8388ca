//! Alert rules: the list, and the form that creates or edits one, with what the rule would
//! say about each of its series right now.

use std::collections::BTreeMap;
use std::rc::Rc;

use microdash_core::api::alert::{AlertRuleOut, ChannelOut};
use microdash_core::api::{PointOut, SeriesOut};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{DANGER, INPUT, PRIMARY, SECONDARY, Screen, confirm, focus, load_failure, tabs};
use crate::api::{self, ApiError};
use crate::app::navigate;
use crate::hooks::{now_ms, use_clock};
use crate::model::alerts::{
    self, AGGREGATES, FieldErrors, NO_DATA_STATES, OPERATORS, RuleField, RuleForm, Verdict, describe_duration_s,
    no_data_key,
};
use crate::model::range::{Fetch, QueryPlan};
use crate::model::units::Unit;
use crate::model::{self, parse_millis};

/// How often the preview reloads its series' latest points.
const PREVIEW_REFRESH_MS: i64 = 5_000;
/// Most points a preview load returns.
const PREVIEW_LIMIT: u32 = 20_000;

/// Which tenant's rules.
#[derive(Properties, PartialEq)]
pub struct RuleListProps {
    /// The tenant.
    pub slug: String,
}

/// The tenant's rules, each with a way to edit or delete it.
#[function_component]
pub fn RuleList(props: &RuleListProps) -> Html {
    let rules = use_state(|| None::<Result<Vec<AlertRuleOut>, ApiError>>);
    let channels = use_state(Vec::<ChannelOut>::new);
    let error = use_state(|| None::<String>);
    let notice = use_state(String::new);
    let refresh = use_state(|| 0u32);
    {
        let (rules, channels) = (rules.clone(), channels.clone());
        use_effect_with((props.slug.clone(), *refresh), move |(slug, _)| {
            let slug = slug.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let (rule_list, channel_list) = futures_util::join!(api::alert_rules(&slug), api::channels(&slug));
                if let Ok(list) = channel_list {
                    channels.set(list);
                }
                rules.set(Some(rule_list));
            });
        });
    }
    let remove = |rule: &AlertRuleOut| {
        let (slug, id, name) = (props.slug.clone(), rule.id, rule.name.clone());
        let (error, notice, refresh) = (error.clone(), notice.clone(), refresh.clone());
        Callback::from(move |_| {
            if !confirm(&format!("Delete the rule {name:?}? Its alerts and their history go with it.")) {
                return;
            }
            let (slug, name, error, notice, refresh) =
                (slug.clone(), name.clone(), error.clone(), notice.clone(), refresh.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::delete_rule(&slug, id).await {
                    Ok(()) => {
                        error.set(None);
                        notice.set(format!("Deleted the rule {name}."));
                        refresh.set(*refresh + 1);
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let channel_names: BTreeMap<i64, &str> = channels.iter().map(|c| (c.id, c.name.as_str())).collect();
    let body = match &*rules {
        None => html! { <p class="text-slate-400">{ "Loading rules…" }</p> },
        Some(Err(err)) => load_failure(err),
        Some(Ok(list)) if list.is_empty() => html! {
            <p class="text-slate-400">{ "No rules yet. Create one to be told when a metric crosses a threshold." }</p>
        },
        Some(Ok(list)) => html! {
            <div class="overflow-x-auto">
                <table class="md-stack w-full text-left text-sm">
                    <thead class="text-slate-400">
                        <tr>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Rule" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Metric" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Condition" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Pending for" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Channels" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "State" }</th>
                            <th scope="col"><span class="sr-only">{ "Actions" }</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        { for list.iter().map(|rule| {
                            let names: Vec<&str> = rule.channels.iter().filter_map(|id| channel_names.get(id).copied()).collect();
                            let agent = rule.agent_id.as_deref().map(|a| format!(" on {a}")).unwrap_or_default();
                            html! {
                                <tr key={rule.id} class="border-t border-white/5" data-testid="rule-row" data-rule={rule.name.clone()}>
                                    <td data-label="Rule" class="py-2 pr-4 font-medium text-slate-100">{ &rule.name }</td>
                                    <td data-label="Metric" class="py-2 pr-4 font-mono">{ format!("{}{agent}", rule.metric_name) }</td>
                                    <td data-label="Condition" class="py-2 pr-4 font-mono">{ alerts::describe_condition(rule) }</td>
                                    <td data-label="Pending for" class="py-2 pr-4">{ describe_duration_s(rule.for_s) }</td>
                                    <td data-label="Channels" class="py-2 pr-4">{ if names.is_empty() { "none".to_owned() } else { names.join(", ") } }</td>
                                    <td data-label="State" class="py-2 pr-4">{ if rule.enabled { "enabled" } else { "disabled" } }</td>
                                    <td class="py-2 text-right whitespace-nowrap">
                                        <a href={Screen::Rule(Some(rule.id)).href(&props.slug)} aria-label={format!("Edit rule {}", rule.name)} class={SECONDARY}>{ "Edit" }</a>
                                        { " " }
                                        <button type="button" onclick={remove(rule)} aria-label={format!("Delete rule {}", rule.name)} class={DANGER}>{ "Delete" }</button>
                                    </td>
                                </tr>
                            }
                        }) }
                    </tbody>
                </table>
            </div>
        },
    };
    html! {
        <>
            <div class="mb-4 flex flex-wrap items-center gap-4">
                <h1 class="text-xl font-semibold tracking-tight">{ "Alert rules" }</h1>
                <a href={Screen::Rule(None).href(&props.slug)} class={classes!(PRIMARY, "ml-auto", "text-sm")}>{ "New rule" }</a>
            </div>
            { tabs(&props.slug, Screen::Rules) }
            <p role="status" class="mb-2 text-sm text-emerald-300">{ (*notice).clone() }</p>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            { body }
        </>
    }
}

/// Which rule the form edits.
#[derive(Properties, PartialEq)]
pub struct RuleEditProps {
    /// The tenant.
    pub slug: String,
    /// The rule; `None` for a new one.
    pub id: Option<i64>,
}

/// The form's state and how it changes.
#[derive(Clone, Default, PartialEq)]
struct FormState {
    form: RuleForm,
}

enum FormAction {
    Set(RuleField, String),
    ToggleChannel(i64),
    Enabled(bool),
    Load(RuleForm),
}

impl Reducible for FormState {
    type Action = FormAction;

    fn reduce(self: Rc<Self>, action: FormAction) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        match action {
            FormAction::Set(field, value) => next.form.set(field, &value),
            FormAction::ToggleChannel(id) => next.form.toggle_channel(id),
            FormAction::Enabled(on) => next.form.enabled = on,
            FormAction::Load(form) => next.form = form,
        }
        Rc::new(next)
    }
}

/// Element id of a field's input.
fn input_id(field: RuleField) -> String {
    format!("rule-{}", field.key())
}

/// The hints under inputs that need one.
fn hint(field: RuleField) -> Option<&'static str> {
    Some(match field {
        RuleField::Tags => "Only series with these tags, as key=value, comma-separated.",
        RuleField::Window => "Durations read as 90s, 5m, 1h or 2d. Empty: the latest point only.",
        RuleField::Warning => "Optional, on the less severe side of the critical threshold.",
        RuleField::Recovery => "Optional: a firing alert ends only once this is no longer breached.",
        RuleField::For => "How long the condition must hold before the alert fires. Empty: at once.",
        RuleField::KeepFiring => "How long a firing alert stays firing after the condition stops. Empty: not at all.",
        RuleField::NoData => "Silence after which “No data means” applies. Empty: never.",
        RuleField::Repeat => "Remind the channels while firing. Empty: notify on changes only.",
        RuleField::Summary => "Placeholders such as {{agent_id}} and {{value}}.",
        RuleField::Labels => "Extra labels for notifications, as key=value, comma-separated.",
        _ => return None,
    })
}

/// A labelled control with its hint and its error, wired together for assistive technology.
fn field_row(field: RuleField, errors: &FieldErrors, control: Html) -> Html {
    let id = input_id(field);
    html! {
        <div class="grid content-start gap-1 text-sm" data-field={field.key()}>
            <label for={id.clone()} class="text-slate-300">
                { field.label() }
                if matches!(field, RuleField::Name | RuleField::Metric | RuleField::Operator | RuleField::Critical) {
                    <span class="text-slate-400">{ " (required)" }</span>
                }
            </label>
            { control }
            if let Some(text) = hint(field) {
                <p id={format!("{id}-hint")} class="text-xs text-slate-400">{ text }</p>
            }
            if let Some(message) = errors.of(field.key()) {
                <p id={format!("{id}-error")} class="text-xs text-rose-300" data-testid="field-error" data-field={field.key()}>
                    { format!("{} {message}", field.label()) }
                </p>
            }
        </div>
    }
}

/// `aria-describedby` of a field's input: its hint and its error, where it has them.
fn described_by(field: RuleField, errors: &FieldErrors) -> Option<String> {
    let id = input_id(field);
    let mut parts = Vec::new();
    if hint(field).is_some() {
        parts.push(format!("{id}-hint"));
    }
    if errors.of(field.key()).is_some() {
        parts.push(format!("{id}-error"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Create or edit one rule, with a live preview.
#[function_component]
pub fn RuleEdit(props: &RuleEditProps) -> Html {
    let now = use_clock();
    let state = use_reducer(FormState::default);
    let errors = use_state(FieldErrors::default);
    let failure = use_state(|| None::<String>);
    let saving = use_state(|| false);
    let load_error = use_state(|| None::<ApiError>);
    let series = use_state(Vec::<SeriesOut>::new);
    let channels = use_state(|| None::<Result<Vec<ChannelOut>, ApiError>>);
    let points = use_state(|| None::<Vec<PointOut>>);
    // Bumped to move the focus to the first field with a problem, once it is rendered.
    let focus_errors = use_state(|| 0u32);
    let form = &state.form;

    {
        let (state, series, channels, load_error) =
            (state.clone(), series.clone(), channels.clone(), load_error.clone());
        use_effect_with((props.slug.clone(), props.id), move |(slug, id)| {
            let (slug, id) = (slug.clone(), *id);
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(id) = id {
                    match api::alert_rule(&slug, id).await {
                        Ok(rule) => state.dispatch(FormAction::Load(RuleForm::from_out(&rule))),
                        Err(err) => load_error.set(Some(err)),
                    }
                }
                let (series_list, channel_list) = futures_util::join!(api::series(&slug), api::channels(&slug));
                if let Ok(list) = series_list {
                    series.set(list);
                }
                channels.set(Some(channel_list));
            });
            // The form starts at its first field.
            focus(&input_id(RuleField::Name));
        });
    }
    {
        let errors = errors.clone();
        use_effect_with(*focus_errors, move |count| {
            if *count > 0 {
                let first = RuleField::ALL.into_iter().find(|f| errors.of(f.key()).is_some());
                match first {
                    Some(RuleField::Channels) => focus("rule-channels"),
                    Some(field) => focus(&input_id(field)),
                    None => focus("rule-failure"),
                }
            }
        });
    }
    // The preview's points: the metric's (and agent's) recent points, reloaded every few
    // seconds while the form is open.
    let rule = form.rule();
    let metric = form.get(RuleField::Metric).trim().to_owned();
    let agent = form.get(RuleField::Agent).trim().to_owned();
    let span_ms = alerts::preview_span_ms(rule.as_ref().map_or(0, |r| r.window_s));
    {
        let points = points.clone();
        use_effect_with(
            (props.slug.clone(), metric.clone(), agent.clone(), span_ms, now / PREVIEW_REFRESH_MS),
            move |(slug, metric, agent, span_ms, _)| {
                let (slug, metric, agent, span_ms) = (slug.clone(), metric.clone(), agent.clone(), *span_ms);
                wasm_bindgen_futures::spawn_local(async move {
                    if metric.is_empty() {
                        return points.set(Some(Vec::new()));
                    }
                    let plan = QueryPlan {
                        start_ms: now_ms() - span_ms,
                        end_ms: None,
                        fetch: Fetch::Raw,
                        max_points: 0,
                        limit: PREVIEW_LIMIT,
                    };
                    let agent = (!agent.is_empty()).then_some(agent.as_str());
                    if let Ok(answer) = api::history(&slug, &metric, agent, &plan).await {
                        points.set(Some(answer.data));
                    }
                });
            },
        );
    }

    let set = |field: RuleField| {
        let (state, errors) = (state.clone(), errors.clone());
        move |value: String| {
            if errors.of(field.key()).is_some() {
                let mut cleared = (*errors).clone();
                cleared.clear(field.key());
                errors.set(cleared);
            }
            state.dispatch(FormAction::Set(field, value));
        }
    };
    let text = |field: RuleField, placeholder: &'static str, mode: &'static str| {
        let set = set(field);
        let oninput = Callback::from(move |e: InputEvent| set(e.target_unchecked_into::<HtmlInputElement>().value()));
        let invalid = errors.of(field.key()).is_some();
        let control = html! {
            <input id={input_id(field)} type="text" value={form.get(field).to_owned()} {oninput} {placeholder}
                inputmode={(!mode.is_empty()).then_some(mode)} autocomplete="off"
                aria-invalid={invalid.then_some("true")} aria-describedby={described_by(field, &errors)}
                required={matches!(field, RuleField::Name | RuleField::Critical)} class={INPUT} />
        };
        field_row(field, &errors, control)
    };
    let select = |field: RuleField, options: Vec<(String, String)>| {
        let set = set(field);
        let onchange = Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()));
        let current = form.get(field).to_owned();
        let invalid = errors.of(field.key()).is_some();
        let control = html! {
            <select id={input_id(field)} {onchange} aria-invalid={invalid.then_some("true")}
                aria-describedby={described_by(field, &errors)} required={field == RuleField::Metric} class={INPUT}>
                { for options.into_iter().map(|(value, label)| {
                    let selected = value == current;
                    html! { <option key={value.clone()} {value} {selected}>{ label }</option> }
                }) }
            </select>
        };
        field_row(field, &errors, control)
    };

    // The tenant's metrics, and the agents that report the chosen one.
    let mut metrics: Vec<String> = series.iter().map(|s| s.metric_name.clone()).collect();
    if !metric.is_empty() {
        metrics.push(metric.clone());
    }
    metrics.sort_by_key(|m| model::display_key(m));
    metrics.dedup();
    let mut agents: Vec<String> =
        series.iter().filter(|s| s.metric_name == metric).filter_map(|s| s.agent_id.clone()).collect();
    if !agent.is_empty() {
        agents.push(agent.clone());
    }
    agents.sort();
    agents.dedup();
    let metric_options: Vec<(String, String)> = std::iter::once((String::new(), "Choose a metric".to_owned()))
        .chain(metrics.into_iter().map(|m| (m.clone(), m)))
        .collect();
    let agent_options: Vec<(String, String)> = std::iter::once((String::new(), "Every agent".to_owned()))
        .chain(agents.into_iter().map(|a| (a.clone(), a)))
        .collect();
    let pairs = |items: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        items.iter().map(|(v, l)| ((*v).to_owned(), (*l).to_owned())).collect()
    };
    let aggregate_options: Vec<(String, String)> = AGGREGATES
        .iter()
        .map(|a| {
            let label = match a.as_str() {
                "last" => "latest value",
                "avg" => "average",
                "min" => "minimum",
                "max" => "maximum",
                "sum" => "sum",
                _ => "count of points",
            };
            (a.as_str().to_owned(), label.to_owned())
        })
        .collect();
    let operator_options: Vec<(String, String)> = OPERATORS
        .iter()
        .map(|o| {
            let words = match o.as_str() {
                ">" => "above",
                ">=" => "at or above",
                "<" => "below",
                _ => "at or below",
            };
            (o.as_str().to_owned(), format!("{o} ({words})"))
        })
        .collect();
    let no_data_options = pairs(&[
        (no_data_key(NO_DATA_STATES[0]), "keep the last state"),
        (no_data_key(NO_DATA_STATES[1]), "ok (ends a firing alert)"),
        (no_data_key(NO_DATA_STATES[2]), "alerting (fire as critical)"),
    ]);

    let channel_box = {
        let invalid = errors.of(RuleField::Channels.key()).is_some();
        let boxes = match &*channels {
            None => html! { <p class="text-slate-400">{ "Loading channels…" }</p> },
            Some(Err(err)) if err.is_not_found() => {
                html! { <p class="text-slate-400">{ "Channels are not available on this server yet." }</p> }
            }
            Some(Err(err)) => html! { <p class="text-rose-300">{ &err.message }</p> },
            Some(Ok(list)) if list.is_empty() => html! {
                <p class="text-slate-400">
                    { "No channels yet: " }
                    <a href={Screen::Channel(None).href(&props.slug)} class="text-sky-300 underline underline-offset-4 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">{ "create one" }</a>
                    { " to be notified." }
                </p>
            },
            Some(Ok(list)) => html! {
                <div class="flex flex-wrap gap-x-5 gap-y-2">
                    { for list.iter().map(|channel| {
                        let id = channel.id;
                        let state = state.clone();
                        let onchange = Callback::from(move |_: Event| state.dispatch(FormAction::ToggleChannel(id)));
                        html! {
                            <label key={id} class="flex items-center gap-2 text-slate-200 max-sm:min-h-11">
                                <input type="checkbox" checked={form.channels.contains(&id)} {onchange}
                                    class="h-4 w-4 accent-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-400" />
                                { format!("{} ({})", channel.name, alerts::kind_key(channel.kind)) }
                            </label>
                        }
                    }) }
                </div>
            },
        };
        html! {
            <fieldset id="rule-channels" tabindex="-1" aria-invalid={invalid.then_some("true")}
                aria-describedby={invalid.then_some("rule-channels-error")} class="grid gap-2 text-sm sm:col-span-2 lg:col-span-3 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400">
                <legend class="mb-1 text-slate-300">{ RuleField::Channels.label() }</legend>
                { boxes }
                if let Some(message) = errors.of(RuleField::Channels.key()) {
                    <p id="rule-channels-error" class="text-xs text-rose-300" data-testid="field-error" data-field="channels">
                        { format!("Channels: {message}") }
                    </p>
                }
            </fieldset>
        }
    };
    let enabled = {
        let state = state.clone();
        let onchange = Callback::from(move |e: Event| {
            state.dispatch(FormAction::Enabled(e.target_unchecked_into::<HtmlInputElement>().checked()))
        });
        html! {
            <label for={input_id(RuleField::Enabled)} class="flex items-center gap-2 self-end text-sm text-slate-200 max-sm:min-h-11">
                <input id={input_id(RuleField::Enabled)} type="checkbox" checked={form.enabled} {onchange}
                    class="h-4 w-4 accent-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-400" />
                { "Enabled: evaluate this rule" }
            </label>
        }
    };

    let onsubmit = {
        let (state, errors, failure, saving, focus_errors) =
            (state.clone(), errors.clone(), failure.clone(), saving.clone(), focus_errors.clone());
        let (slug, id) = (props.slug.clone(), props.id);
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let body = match state.form.input() {
                Ok(body) => body,
                Err(problems) => {
                    errors.set(problems);
                    failure.set(Some("Some fields need attention: see the messages below them.".into()));
                    focus_errors.set(*focus_errors + 1);
                    return;
                }
            };
            let (slug, errors, failure, saving, focus_errors) =
                (slug.clone(), errors.clone(), failure.clone(), saving.clone(), focus_errors.clone());
            saving.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let answer = match id {
                    Some(id) => api::update_rule(&slug, id, &body).await,
                    None => api::create_rule(&slug, &body).await,
                };
                saving.set(false);
                match answer {
                    Ok(_) => navigate(&Screen::Rules.href(&slug)),
                    Err(err) if !err.details.is_empty() => {
                        let problems = FieldErrors::from_details(&err.details);
                        let whole = problems.of("").map(|m| format!(": {m}")).unwrap_or_default();
                        failure.set(Some(format!(
                            "The server did not accept the rule{whole}. See the messages below the fields."
                        )));
                        errors.set(problems);
                        focus_errors.set(*focus_errors + 1);
                    }
                    Err(err) => {
                        failure.set(Some(err.message));
                        focus_errors.set(*focus_errors + 1);
                    }
                }
            });
        })
    };
    let delete = props.id.map(|id| {
        let (slug, failure) = (props.slug.clone(), failure.clone());
        let name = form.get(RuleField::Name).to_owned();
        let onclick = Callback::from(move |_| {
            if !confirm(&format!("Delete the rule {name:?}? Its alerts and their history go with it.")) {
                return;
            }
            let (slug, failure) = (slug.clone(), failure.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::delete_rule(&slug, id).await {
                    Ok(()) => navigate(&Screen::Rules.href(&slug)),
                    Err(err) => failure.set(Some(err.message)),
                }
            });
        });
        html! { <button type="button" {onclick} class={DANGER}>{ "Delete rule" }</button> }
    });

    let title = if props.id.is_some() { "Edit alert rule" } else { "New alert rule" };
    if let Some(err) = &*load_error {
        return html! {
            <>
                <h1 class="mb-4 text-xl font-semibold tracking-tight">{ title }</h1>
                { tabs(&props.slug, Screen::Rule(props.id)) }
                { load_failure(err) }
            </>
        };
    }
    let preview = preview_panel(&rule, &series, points.as_deref(), now, &metric);
    html! {
        <>
            <h1 class="mb-4 text-xl font-semibold tracking-tight">{ title }</h1>
            { tabs(&props.slug, Screen::Rule(props.id)) }
            <div class="grid gap-6 lg:grid-cols-[minmax(0,1fr)_20rem]">
                <form {onsubmit} novalidate=true aria-label={title} class="grid gap-5 rounded-2xl bg-slate-900/70 p-5 ring-1 ring-white/5">
                    if let Some(message) = &*failure {
                        <p id="rule-failure" tabindex="-1" role="alert" class="rounded-lg bg-rose-950/60 px-3 py-2 text-sm text-rose-200">{ message }</p>
                    }
                    <fieldset class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                        <legend class="mb-2 text-sm font-semibold text-slate-200">{ "What to watch" }</legend>
                        { text(RuleField::Name, "cpu high", "") }
                        { select(RuleField::Metric, metric_options) }
                        { select(RuleField::Agent, agent_options) }
                        { text(RuleField::Tags, "mount=/", "") }
                        { select(RuleField::Aggregate, aggregate_options) }
                        { text(RuleField::Window, "5m", "") }
                    </fieldset>
                    <fieldset class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                        <legend class="mb-2 text-sm font-semibold text-slate-200">{ "When it breaches" }</legend>
                        { select(RuleField::Operator, operator_options) }
                        { text(RuleField::Critical, "90", "decimal") }
                        { text(RuleField::Warning, "80", "decimal") }
                        { text(RuleField::Recovery, "75", "decimal") }
                        { text(RuleField::For, "1m", "") }
                        { text(RuleField::KeepFiring, "2m", "") }
                    </fieldset>
                    <fieldset class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                        <legend class="mb-2 text-sm font-semibold text-slate-200">{ "No data and reminders" }</legend>
                        { text(RuleField::NoData, "10m", "") }
                        { select(RuleField::NoDataState, no_data_options) }
                        { text(RuleField::Repeat, "1h", "") }
                    </fieldset>
                    <fieldset class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                        <legend class="mb-2 text-sm font-semibold text-slate-200">{ "Notifications" }</legend>
                        { channel_box }
                        { text(RuleField::Summary, "{{agent_id}} cpu at {{value}}", "") }
                        { text(RuleField::Labels, "team=ops", "") }
                        { enabled }
                    </fieldset>
                    <div class="flex flex-wrap items-center gap-3">
                        <button type="submit" disabled={*saving} class={PRIMARY}>
                            { if *saving { "Saving…" } else if props.id.is_some() { "Save rule" } else { "Create rule" } }
                        </button>
                        <a href={Screen::Rules.href(&props.slug)} class={SECONDARY}>{ "Cancel" }</a>
                        <span class="ml-auto"></span>
                        { for delete }
                    </div>
                </form>
                { preview }
            </div>
        </>
    }
}

/// What the rule would say about each series it watches, now.
fn preview_panel(
    rule: &Result<microdash_core::alert::AlertRule, FieldErrors>,
    series: &[SeriesOut],
    points: Option<&[PointOut]>,
    now: i64,
    metric: &str,
) -> Html {
    let body = match (rule, points) {
        (Err(problems), _) => {
            let fields: Vec<&str> = problems.fields().filter_map(RuleField::of_key).map(RuleField::label).collect();
            html! {
                <p class="text-sm text-slate-400">
                    { "Complete the rule to see what it would say now" }
                    { if fields.is_empty() { ".".to_owned() } else { format!(" (check: {}).", fields.join(", ")) } }
                </p>
            }
        }
        (Ok(_), None) => html! { <p class="text-sm text-slate-400">{ "Loading the latest points…" }</p> },
        (Ok(rule), Some(points)) => {
            let rows = alerts::preview(rule, series, points, now);
            let unit = Unit::of(metric);
            if rows.is_empty() {
                html! { <p class="text-sm text-slate-400">{ format!("No series of {metric} match the rule.") }</p> }
            } else {
                html! {
                    <ul class="grid gap-2 text-sm">
                        { for rows.iter().map(|row| {
                            let color = match row.verdict {
                                Verdict::Critical => "text-red-300",
                                Verdict::Warning => "text-amber-300",
                                Verdict::Ok => "text-emerald-300",
                                Verdict::NoData => "text-slate-400",
                            };
                            html! {
                                <li key={row.series.clone()} data-testid="preview-row" data-verdict={row.verdict.as_str()}
                                    class={classes!("font-mono", color)}>
                                    { row.sentence(unit) }
                                </li>
                            }
                        }) }
                    </ul>
                }
            }
        }
    };
    let latest = points.and_then(|p| p.iter().filter_map(|p| parse_millis(&p.timestamp)).max());
    html! {
        <aside aria-labelledby="preview-title" class="h-fit rounded-2xl bg-slate-900/70 p-5 ring-1 ring-white/5">
            <h2 id="preview-title" class="mb-1 text-base font-semibold">{ "Right now" }</h2>
            <p class="mb-3 text-xs text-slate-400">
                { "What this rule would say about each series it watches, from the latest points (the thresholds only; pending and keep-firing times apply on top)." }
                { for latest.map(|ms| format!(" Newest point {} ago.", model::format_age(now - ms))) }
            </p>
            { body }
        </aside>
    }
}
