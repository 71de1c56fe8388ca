//! A modal dialog that behaves as WAI-ARIA's dialog pattern asks: the focus moves into it,
//! Tab and Shift+Tab stay inside it, Escape closes it wherever the focus is, and on closing
//! the focus goes back to the control that opened it.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, HtmlElement, KeyboardEvent};
use yew::prelude::*;

/// What a dialog holds.
#[derive(Properties, PartialEq)]
pub struct DialogProps {
    /// Id of the element that names the dialog (its heading).
    pub labelled_by: AttrValue,
    /// Escape, or a close button inside, asks for this.
    pub on_close: Callback<()>,
    /// `data-metric` (and the like) for tests and styling.
    #[prop_or_default]
    pub metric: Option<AttrValue>,
    /// The content.
    pub children: Html,
}

/// What Tab may land on.
const FOCUSABLE: &str = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), \
    textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

fn focusable_in(root: &Element) -> Vec<HtmlElement> {
    let Ok(list) = root.query_selector_all(FOCUSABLE) else { return Vec::new() };
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<HtmlElement>().ok())
        // Hidden controls (display: none) have no layout box and cannot take the focus.
        .filter(|e| e.offset_parent().is_some() || e.get_client_rects().length() > 0)
        .collect()
}

fn active_element() -> Option<Element> {
    web_sys::window()?.document()?.active_element()
}

/// A modal dialog over the page.
#[function_component]
pub fn Dialog(props: &DialogProps) -> Html {
    let panel = use_node_ref();
    // Into the dialog on opening; back to the opener on closing (if it is still there).
    {
        let panel = panel.clone();
        use_effect_with((), move |_| {
            let opener = active_element().and_then(|e| e.dyn_into::<HtmlElement>().ok());
            if let Some(root) = panel.cast::<Element>() {
                let first = focusable_in(&root).into_iter().next();
                match first {
                    Some(first) => {
                        let _ = first.focus();
                    }
                    None => {
                        if let Ok(root) = root.dyn_into::<HtmlElement>() {
                            let _ = root.focus();
                        }
                    }
                }
            }
            move || {
                if let Some(opener) = opener.filter(|o| o.is_connected()) {
                    let _ = opener.focus();
                }
            }
        });
    }
    // Escape anywhere closes it; the focus never stays outside it.
    {
        let (panel, on_close) = (panel.clone(), props.on_close.clone());
        use_effect_with((), move |_| {
            let document = web_sys::window().and_then(|w| w.document());
            let keydown = {
                let panel = panel.clone();
                Closure::<dyn FnMut(KeyboardEvent)>::new(move |event: KeyboardEvent| {
                    let Some(root) = panel.cast::<Element>() else { return };
                    match event.key().as_str() {
                        "Escape" => {
                            event.prevent_default();
                            on_close.emit(());
                        }
                        "Tab" => {
                            let items = focusable_in(&root);
                            let (Some(first), Some(last)) = (items.first(), items.last()) else {
                                event.prevent_default();
                                return;
                            };
                            let active = active_element();
                            let inside = active.as_ref().is_some_and(|a| root.contains(Some(a)));
                            let at =
                                |e: &HtmlElement| active.as_ref().is_some_and(|a| a == e.unchecked_ref::<Element>());
                            if event.shift_key() && (!inside || at(first)) {
                                event.prevent_default();
                                let _ = last.focus();
                            } else if !event.shift_key() && (!inside || at(last)) {
                                event.prevent_default();
                                let _ = first.focus();
                            }
                        }
                        _ => {}
                    }
                })
            };
            if let Some(document) = &document {
                let _ = document.add_event_listener_with_callback("keydown", keydown.as_ref().unchecked_ref());
            }
            move || {
                if let Some(document) = document {
                    let _ = document.remove_event_listener_with_callback("keydown", keydown.as_ref().unchecked_ref());
                }
            }
        });
    }
    let on_backdrop = {
        let on_close = props.on_close.clone();
        Callback::from(move |event: MouseEvent| {
            // Only a click on the backdrop itself, not one that bubbled up from the panel.
            if event.target() == event.current_target() {
                on_close.emit(());
            }
        })
    };
    html! {
        <div class="fixed inset-0 z-20 grid place-items-center overflow-y-auto bg-slate-950/85 p-2 sm:p-4" onclick={on_backdrop}>
            <section ref={panel} role="dialog" aria-modal="true" aria-labelledby={props.labelled_by.clone()} tabindex="-1"
                data-metric={props.metric.clone()}
                class="w-full max-w-6xl rounded-2xl bg-slate-900 p-4 shadow-2xl ring-1 ring-white/10 outline-none sm:p-6">
                { props.children.clone() }
            </section>
        </div>
    }
}
