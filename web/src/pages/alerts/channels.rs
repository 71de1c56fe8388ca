//! Notification channels: the list (edit, delete, send a test message), the delivery log, and
//! the form that creates or edits a channel.

use std::collections::BTreeMap;

use microdash_core::api::alert::{ChannelKind, ChannelOut, NotificationOut, NotificationStatus, WebhookFormat};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{DANGER, INPUT, PRIMARY, SECONDARY, Screen, confirm, focus, load_failure, server_time, tabs};
use crate::api::{self, ApiError};
use crate::app::navigate;
use crate::hooks::use_clock;
use crate::model::alerts::{self, ChannelForm, FieldErrors, delivery_done, format_key, kind_key, status_key};

/// How often the delivery log reloads while a test message is on its way...
const LOG_FAST_MS: i64 = 1_000;
/// ...and otherwise.
const LOG_SLOW_MS: i64 = 10_000;

/// Which tenant's channels.
#[derive(Properties, PartialEq)]
pub struct ChannelListProps {
    /// The tenant.
    pub slug: String,
}

/// A test message on its way: which channel, and its delivery log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Awaiting {
    channel: i64,
    notification: i64,
}

/// The tenant's channels and the delivery log.
#[function_component]
pub fn ChannelList(props: &ChannelListProps) -> Html {
    let now = use_clock();
    let channels = use_state(|| None::<Result<Vec<ChannelOut>, ApiError>>);
    let log = use_state(|| None::<Result<Vec<NotificationOut>, ApiError>>);
    let log_channel = use_state(|| None::<i64>);
    let awaiting = use_state(|| None::<Awaiting>);
    let error = use_state(|| None::<String>);
    let notice = use_state(String::new);
    let refresh = use_state(|| 0u32);
    {
        let channels = channels.clone();
        use_effect_with((props.slug.clone(), *refresh), move |(slug, _)| {
            let slug = slug.clone();
            wasm_bindgen_futures::spawn_local(async move { channels.set(Some(api::channels(&slug).await)) });
        });
    }
    // Quickly while a test message is on its way, until it is sent or failed.
    let log_entries: &[NotificationOut] = match &*log {
        Some(Ok(list)) => list,
        _ => &[],
    };
    let waiting = awaiting.is_some_and(|a| !delivery_done(log_entries, a.notification));
    let tick = if waiting { now / LOG_FAST_MS } else { now / LOG_SLOW_MS };
    {
        let log = log.clone();
        use_effect_with((props.slug.clone(), *log_channel, tick, *refresh), move |(slug, channel, _, _)| {
            let (slug, channel) = (slug.clone(), *channel);
            wasm_bindgen_futures::spawn_local(async move { log.set(Some(api::notifications(&slug, channel).await)) });
        });
    }
    let names: BTreeMap<i64, String> = match &*channels {
        Some(Ok(list)) => list.iter().map(|c| (c.id, c.name.clone())).collect(),
        _ => BTreeMap::new(),
    };
    // What became of the test message, in words (announced: the paragraph is a live region).
    let test_status = awaiting.map(|a| {
        let name = names.get(&a.channel).cloned().unwrap_or_else(|| format!("channel {}", a.channel));
        match log_entries.iter().find(|n| n.id == a.notification) {
            Some(n) if n.status == NotificationStatus::Sent => {
                let http = n.http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
                format!("The test message to {name} was sent{http}.")
            }
            Some(n) if n.status == NotificationStatus::Failed => {
                format!("The test message to {name} failed: {}.", n.last_error.as_deref().unwrap_or("no reason given"))
            }
            _ => format!("Sending a test message to {name}…"),
        }
    });

    let send_test = |channel: &ChannelOut| {
        let (slug, id) = (props.slug.clone(), channel.id);
        let (awaiting, log_channel, error, notice) =
            (awaiting.clone(), log_channel.clone(), error.clone(), notice.clone());
        Callback::from(move |_| {
            let (slug, awaiting, log_channel, error, notice) =
                (slug.clone(), awaiting.clone(), log_channel.clone(), error.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::test_channel(&slug, id).await {
                    Ok(queued) => {
                        error.set(None);
                        notice.set(String::new());
                        log_channel.set(Some(id));
                        awaiting.set(Some(Awaiting { channel: id, notification: queued.notification_id }));
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let remove = |channel: &ChannelOut| {
        let (slug, id, name) = (props.slug.clone(), channel.id, channel.name.clone());
        let (error, notice, refresh, log_channel) =
            (error.clone(), notice.clone(), refresh.clone(), log_channel.clone());
        Callback::from(move |_| {
            if !confirm(&format!("Delete the channel {name:?}? Rules stop notifying it.")) {
                return;
            }
            let (slug, name, error, notice, refresh, log_channel) =
                (slug.clone(), name.clone(), error.clone(), notice.clone(), refresh.clone(), log_channel.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::delete_channel(&slug, id).await {
                    Ok(()) => {
                        error.set(None);
                        notice.set(format!("Deleted the channel {name}."));
                        if *log_channel == Some(id) {
                            log_channel.set(None);
                        }
                        refresh.set(*refresh + 1);
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let body = match &*channels {
        None => html! { <p class="text-slate-400">{ "Loading channels…" }</p> },
        Some(Err(err)) => load_failure(err),
        Some(Ok(list)) if list.is_empty() => html! {
            <p class="text-slate-400">{ "No channels yet. A channel is where alerts go: a webhook or email." }</p>
        },
        Some(Ok(list)) => html! {
            <div class="overflow-x-auto">
                <table class="md-stack w-full text-left text-sm">
                    <thead class="text-slate-400">
                        <tr>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Channel" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Kind" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Delivers to" }</th>
                            <th scope="col" class="py-2 pr-4 font-normal">{ "Secret" }</th>
                            <th scope="col"><span class="sr-only">{ "Actions" }</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        { for list.iter().map(|channel| html! {
                            <tr key={channel.id} class="border-t border-white/5" data-testid="channel-row" data-channel={channel.name.clone()}>
                                <td data-label="Channel" class="py-2 pr-4 font-medium text-slate-100">{ &channel.name }</td>
                                <td data-label="Kind" class="py-2 pr-4">{ kind_key(channel.kind) }</td>
                                <td data-label="Delivers to" class="py-2 pr-4 break-all font-mono">{ alerts::channel_target(channel) }</td>
                                <td data-label="Secret" class="py-2 pr-4">{ match channel.kind {
                                    ChannelKind::Webhook if channel.has_secret => "set",
                                    ChannelKind::Webhook => "none",
                                    ChannelKind::Email => "–",
                                } }</td>
                                <td class="py-2 text-right whitespace-nowrap">
                                    <button type="button" onclick={send_test(channel)} aria-label={format!("Send test to {}", channel.name)} class={SECONDARY}>{ "Send test" }</button>
                                    { " " }
                                    <a href={Screen::Channel(Some(channel.id)).href(&props.slug)} aria-label={format!("Edit channel {}", channel.name)} class={SECONDARY}>{ "Edit" }</a>
                                    { " " }
                                    <button type="button" onclick={remove(channel)} aria-label={format!("Delete channel {}", channel.name)} class={DANGER}>{ "Delete" }</button>
                                </td>
                            </tr>
                        }) }
                    </tbody>
                </table>
            </div>
        },
    };
    let on_log_channel = {
        let log_channel = log_channel.clone();
        Callback::from(move |e: Event| {
            log_channel.set(e.target_unchecked_into::<HtmlSelectElement>().value().parse().ok())
        })
    };
    let rows = match &*log {
        None => html! { <tr><td colspan="7" class="py-3 text-slate-400">{ "Loading the delivery log…" }</td></tr> },
        Some(Err(err)) if err.is_not_found() => html! {
            <tr><td colspan="7" class="py-3 text-slate-400">{ "No delivery log: alerting is not available on this server yet." }</td></tr>
        },
        Some(Err(err)) => {
            html! { <tr><td colspan="7" role="alert" class="py-3 text-rose-300">{ &err.message }</td></tr> }
        }
        Some(Ok(list)) if list.is_empty() => html! {
            <tr><td colspan="7" class="py-3 text-slate-400">{ "Nothing sent yet." }</td></tr>
        },
        Some(Ok(list)) => html! {
            { for list.iter().map(|n| {
                let status = match n.status {
                    NotificationStatus::Sent => "text-emerald-300",
                    NotificationStatus::Failed => "text-rose-300",
                    NotificationStatus::Pending => "text-slate-300",
                };
                let channel = names.get(&n.channel_id).cloned().unwrap_or_else(|| n.channel_id.to_string());
                html! {
                    <tr key={n.id} class="border-t border-white/5" data-testid="delivery-row" data-kind={n.kind.as_str()} data-status={status_key(n.status)}>
                        <td data-label="Queued" class="py-2 pr-4 font-mono tabular-nums text-slate-300">{ server_time(&n.created_at) }</td>
                        <td data-label="Channel" class="py-2 pr-4">{ channel }</td>
                        <td data-label="Why" class="py-2 pr-4">{ n.kind.as_str() }{ n.agent_id.as_deref().map(|a| format!(" · {a}")).unwrap_or_default() }</td>
                        <td data-label="Status" class={classes!("py-2", "pr-4", "font-medium", status)}>{ status_key(n.status) }</td>
                        <td data-label="Attempts" class="py-2 pr-4 tabular-nums">{ n.attempts }</td>
                        <td data-label="HTTP" class="py-2 pr-4 tabular-nums">{ n.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into()) }</td>
                        <td data-label="Error" class="py-2 break-all text-slate-300">{ n.last_error.clone().unwrap_or_default() }</td>
                    </tr>
                }
            }) }
        },
    };
    let channel_options: Vec<(i64, String)> = names.iter().map(|(id, name)| (*id, name.clone())).collect();
    html! {
        <>
            <div class="mb-4 flex flex-wrap items-center gap-4">
                <h1 class="text-xl font-semibold tracking-tight">{ "Notification channels" }</h1>
                <a href={Screen::Channel(None).href(&props.slug)} class={classes!(PRIMARY, "ml-auto", "text-sm")}>{ "New channel" }</a>
            </div>
            { tabs(&props.slug, Screen::Channels) }
            <p role="status" data-testid="channel-status" class="mb-2 min-h-5 text-sm text-slate-200">
                { test_status.unwrap_or_else(|| (*notice).clone()) }
            </p>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            { body }
            <section aria-labelledby="log-title" class="mt-8">
                <div class="mb-3 flex flex-wrap items-end gap-4">
                    <h2 id="log-title" class="text-lg font-semibold tracking-tight">{ "Delivery log" }</h2>
                    <div class="ml-auto grid gap-1 text-sm">
                        <label for="log-channel" class="text-slate-300">{ "Channel" }</label>
                        <select id="log-channel" onchange={on_log_channel} class={classes!(INPUT, "w-auto")}>
                            <option value="" selected={log_channel.is_none()}>{ "All channels" }</option>
                            { for channel_options.into_iter().map(|(id, name)| html! {
                                <option key={id} value={id.to_string()} selected={*log_channel == Some(id)}>{ name }</option>
                            }) }
                        </select>
                    </div>
                </div>
                <div class="overflow-x-auto">
                    <table class="md-stack w-full text-left text-sm">
                        <thead class="text-slate-400">
                            <tr>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Queued" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Channel" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Why" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Status" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "Attempts" }</th>
                                <th scope="col" class="py-2 pr-4 font-normal">{ "HTTP" }</th>
                                <th scope="col" class="py-2 font-normal">{ "Error" }</th>
                            </tr>
                        </thead>
                        <tbody>{ rows }</tbody>
                    </table>
                </div>
            </section>
        </>
    }
}

/// Which channel the form edits.
#[derive(Properties, PartialEq)]
pub struct ChannelEditProps {
    /// The tenant.
    pub slug: String,
    /// The channel; `None` for a new one.
    pub id: Option<i64>,
}

/// The inputs of the channel form: `(API field, label)`.
const CHANNEL_FIELDS: [(&str, &str); 6] = [
    ("name", "Name"),
    ("kind", "Kind"),
    ("url", "URL"),
    ("secret", "Secret"),
    ("format", "Body format"),
    ("to", "Recipients"),
];

fn channel_label(field: &str) -> &'static str {
    CHANNEL_FIELDS.iter().find(|(key, _)| *key == field).map_or("", |(_, label)| label)
}

/// Create or edit one channel.
#[function_component]
pub fn ChannelEdit(props: &ChannelEditProps) -> Html {
    let form = use_state(ChannelForm::default);
    let has_secret = use_state(|| false);
    let errors = use_state(FieldErrors::default);
    let failure = use_state(|| None::<String>);
    let load_error = use_state(|| None::<ApiError>);
    let saving = use_state(|| false);
    let focus_errors = use_state(|| 0u32);
    {
        let (form, has_secret, load_error) = (form.clone(), has_secret.clone(), load_error.clone());
        use_effect_with((props.slug.clone(), props.id), move |(slug, id)| {
            if let Some(id) = *id {
                let slug = slug.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    // There is no GET of one channel: it is found in the list.
                    match api::channels(&slug).await {
                        Ok(list) => match list.into_iter().find(|c| c.id == id) {
                            Some(channel) => {
                                has_secret.set(channel.has_secret);
                                form.set(ChannelForm::from_out(&channel));
                            }
                            None => load_error.set(Some(ApiError {
                                status: 404,
                                message: format!("There is no channel {id} in this tenant."),
                                details: Vec::new(),
                            })),
                        },
                        Err(err) => load_error.set(Some(err)),
                    }
                });
            }
            focus("channel-name");
        });
    }
    {
        let errors = errors.clone();
        use_effect_with(*focus_errors, move |count| {
            if *count > 0 {
                match CHANNEL_FIELDS.iter().find(|(key, _)| errors.of(key).is_some()) {
                    Some((key, _)) => focus(&format!("channel-{key}")),
                    None => focus("channel-failure"),
                }
            }
        });
    }
    let update = |change: fn(&mut ChannelForm, String), field: &'static str| {
        let (form, errors) = (form.clone(), errors.clone());
        move |value: String| {
            let mut next = (*form).clone();
            change(&mut next, value);
            form.set(next);
            if errors.of(field).is_some() {
                let mut cleared = (*errors).clone();
                cleared.clear(field);
                errors.set(cleared);
            }
        }
    };
    let row = |field: &'static str, hint: Option<String>, control: Html| {
        let id = format!("channel-{field}");
        html! {
            <div class="grid content-start gap-1 text-sm">
                <label for={id.clone()} class="text-slate-300">
                    { channel_label(field) }
                    if matches!(field, "name" | "url" | "to") {
                        <span class="text-slate-400">{ " (required)" }</span>
                    }
                </label>
                { control }
                if let Some(text) = hint {
                    <p id={format!("{id}-hint")} class="text-xs text-slate-400">{ text }</p>
                }
                if let Some(message) = errors.of(field) {
                    <p id={format!("{id}-error")} class="text-xs text-rose-300" data-testid="field-error" data-field={field}>
                        { format!("{} {message}", channel_label(field)) }
                    </p>
                }
            </div>
        }
    };
    let describe = |field: &str, hint: bool| {
        let mut parts = Vec::new();
        if hint {
            parts.push(format!("channel-{field}-hint"));
        }
        if errors.of(field).is_some() {
            parts.push(format!("channel-{field}-error"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    let text = |field: &'static str,
                value: &str,
                kind: &'static str,
                change: fn(&mut ChannelForm, String),
                hint: Option<String>| {
        let set = update(change, field);
        let oninput = Callback::from(move |e: InputEvent| set(e.target_unchecked_into::<HtmlInputElement>().value()));
        let control = html! {
            <input id={format!("channel-{field}")} type={kind} value={value.to_owned()} {oninput} autocomplete="off"
                aria-invalid={errors.of(field).is_some().then_some("true")} aria-describedby={describe(field, hint.is_some())}
                class={INPUT} />
        };
        row(field, hint, control)
    };
    let kind = {
        let set = update(|f, v| f.kind = if v == "email" { ChannelKind::Email } else { ChannelKind::Webhook }, "kind");
        let onchange = Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()));
        let control = html! {
            <select id="channel-kind" {onchange} aria-describedby={describe("kind", false)} class={INPUT}>
                <option value="webhook" selected={form.kind == ChannelKind::Webhook}>{ "webhook (HTTP POST)" }</option>
                <option value="email" selected={form.kind == ChannelKind::Email}>{ "email" }</option>
            </select>
        };
        row("kind", None, control)
    };
    let format = {
        let set = update(
            |f, v| f.format = if v == "alertmanager" { WebhookFormat::Alertmanager } else { WebhookFormat::Microdash },
            "format",
        );
        let onchange = Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()));
        let control = html! {
            <select id="channel-format" {onchange} aria-describedby={describe("format", false)} class={INPUT}>
                { for [WebhookFormat::Microdash, WebhookFormat::Alertmanager].into_iter().map(|f| html! {
                    <option value={format_key(f)} selected={form.format == f}>
                        { if f == WebhookFormat::Microdash { "microdash (one alert, flat fields)" } else { "alertmanager (Prometheus webhook v4)" } }
                    </option>
                }) }
            </select>
        };
        row("format", None, control)
    };
    let fields = match form.kind {
        ChannelKind::Webhook => {
            let secret_hint = if *has_secret {
                "A secret is set. Leave this empty to keep it, or type a new one."
            } else {
                "Optional: the receiver can check deliveries with it. It is never shown again."
            };
            html! {
                <>
                    { text("url", &form.url, "url", |f, v| f.url = v, Some("http:// or https://, where microdash POSTs each notification.".into())) }
                    { text("secret", &form.secret, "password", |f, v| f.secret = v, Some(secret_hint.into())) }
                    { format }
                </>
            }
        }
        ChannelKind::Email => html! {
            { text("to", &form.to, "text", |f, v| f.to = v, Some("Addresses, separated by commas.".into())) }
        },
    };
    let onsubmit = {
        let (form, errors, failure, saving, focus_errors) =
            (form.clone(), errors.clone(), failure.clone(), saving.clone(), focus_errors.clone());
        let (slug, id) = (props.slug.clone(), props.id);
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let body = match form.input() {
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
                    Some(id) => api::update_channel(&slug, id, &body).await,
                    None => api::create_channel(&slug, &body).await,
                };
                saving.set(false);
                match answer {
                    Ok(_) => navigate(&Screen::Channels.href(&slug)),
                    Err(err) if !err.details.is_empty() => {
                        let problems = FieldErrors::from_details(&err.details);
                        let whole = problems.of("").map(|m| format!(": {m}")).unwrap_or_default();
                        failure.set(Some(format!(
                            "The server did not accept the channel{whole}. See the messages below the fields."
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
    let title = if props.id.is_some() { "Edit channel" } else { "New channel" };
    if let Some(err) = &*load_error {
        return html! {
            <>
                <h1 class="mb-4 text-xl font-semibold tracking-tight">{ title }</h1>
                { tabs(&props.slug, Screen::Channel(props.id)) }
                { load_failure(err) }
            </>
        };
    }
    html! {
        <>
            <h1 class="mb-4 text-xl font-semibold tracking-tight">{ title }</h1>
            { tabs(&props.slug, Screen::Channel(props.id)) }
            <form {onsubmit} novalidate=true aria-label={title} class="grid max-w-2xl gap-4 rounded-2xl bg-slate-900/70 p-5 ring-1 ring-white/5">
                if let Some(message) = &*failure {
                    <p id="channel-failure" tabindex="-1" role="alert" class="rounded-lg bg-rose-950/60 px-3 py-2 text-sm text-rose-200">{ message }</p>
                }
                { text("name", &form.name, "text", |f, v| f.name = v, None) }
                { kind }
                { fields }
                <div class="flex flex-wrap items-center gap-3">
                    <button type="submit" disabled={*saving} class={PRIMARY}>
                        { if *saving { "Saving…" } else if props.id.is_some() { "Save channel" } else { "Create channel" } }
                    </button>
                    <a href={Screen::Channels.href(&props.slug)} class={SECONDARY}>{ "Cancel" }</a>
                </div>
            </form>
        </>
    }
}
