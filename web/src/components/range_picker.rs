//! The time range picker: live, the presets, a custom range, and the way back to live.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::components::style::FOCUS;
use crate::model::range::{Preset, TimeRange};

/// What the picker shows.
#[derive(Properties, PartialEq)]
pub struct RangePickerProps {
    /// Prefix of the element ids, unique on the page.
    pub id: AttrValue,
    /// The range chosen.
    pub range: TimeRange,
    /// The time axis shown, to start a custom range from.
    pub window: (i64, i64),
    /// A range was chosen.
    pub on_change: Callback<TimeRange>,
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
pub fn RangePicker(props: &RangePickerProps) -> Html {
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
            "min-h-8",
            "px-3",
            "py-1",
            "text-sm",
            "max-sm:min-h-11",
            "max-sm:grow",
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
    let input_class = "min-h-11 rounded-lg bg-slate-800 px-2 py-1 text-slate-100 ring-1 ring-slate-500 [color-scheme:dark] focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 sm:min-h-8";
    html! {
        <div class="flex flex-wrap items-center gap-2">
            <div role="group" aria-label="Time range" class="inline-flex divide-x divide-slate-600 overflow-hidden rounded-lg ring-1 ring-slate-500 max-sm:w-full">
                { choice("Live", TimeRange::Live) }
                { for Preset::ALL.iter().map(|p| choice(p.label(), TimeRange::Last(*p))) }
                <button type="button" onclick={toggle_custom} aria-expanded={custom_open.to_string()} aria-controls={custom_id.clone()}
                    aria-pressed={is_custom.to_string()} class={class(is_custom)}>{ "Custom" }</button>
            </div>
            if !props.range.is_live() {
                <button type="button" onclick={back}
                    class={classes!("min-h-8", "rounded-lg", "bg-emerald-400", "px-3", "py-1", "text-sm", "font-medium", "text-slate-950", "hover:bg-emerald-300", "max-sm:min-h-11", FOCUS)}>
                    { "Back to live" }
                </button>
            }
            if *custom_open {
                <form id={custom_id.clone()} {onsubmit} aria-label="Custom range" class="flex flex-wrap items-center gap-2 text-sm text-slate-300">
                    <label for={format!("{custom_id}-from")}>{ "From" }</label>
                    <input id={format!("{custom_id}-from")} ref={from} type="datetime-local" required=true class={input_class} />
                    <label for={format!("{custom_id}-to")}>{ "To" }</label>
                    <input id={format!("{custom_id}-to")} ref={to} type="datetime-local" required=true class={input_class} />
                    <button type="submit" class={classes!("min-h-11", "rounded-lg", "bg-sky-500", "px-3", "py-1", "font-medium", "text-slate-950", "hover:bg-sky-400", "sm:min-h-8", FOCUS)}>{ "Apply" }</button>
                    if let Some(message) = &*custom_error {
                        <p role="alert" class="text-rose-300">{ message }</p>
                    }
                </form>
            }
        </div>
    }
}
