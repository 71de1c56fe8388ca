//! A button that copies a text to the clipboard and says so (in a live region). Where the
//! clipboard is not available (a page served over plain HTTP from another host), it selects
//! the text instead, for Ctrl+C.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use yew::prelude::*;

use crate::components::style::SECONDARY;

/// What to copy.
#[derive(Properties, PartialEq)]
pub struct CopyProps {
    /// The text.
    pub text: AttrValue,
    /// What it is, for the button's name: "Copy {what}".
    pub what: AttrValue,
    /// Id of the element showing the text, to select when the clipboard is unavailable.
    pub target: AttrValue,
}

/// Select the contents of the element with `id`.
fn select(id: &str) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let (Some(document), Ok(Some(selection))) = (window.document(), window.get_selection()) else { return false };
    let Some(element) = document.get_element_by_id(id) else { return false };
    selection.select_all_children(&element).is_ok()
}

/// The copy button.
#[function_component]
pub fn CopyButton(props: &CopyProps) -> Html {
    let status = use_state(String::new);
    let onclick = {
        let (status, text, target) = (status.clone(), props.text.clone(), props.target.clone());
        Callback::from(move |_| {
            let (status, text, target) = (status.clone(), text.clone(), target.clone());
            // Undefined outside secure contexts: the method is not called then.
            let clipboard = web_sys::window()
                .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"clipboard".into()).ok())
                .filter(|c| !c.is_undefined() && !c.is_null())
                .map(|c| c.unchecked_into::<web_sys::Clipboard>());
            wasm_bindgen_futures::spawn_local(async move {
                let copied = match clipboard {
                    Some(clipboard) => JsFuture::from(clipboard.write_text(&text)).await.is_ok(),
                    None => false,
                };
                status.set(if copied {
                    "Copied".into()
                } else if select(&target) {
                    "Selected: press Ctrl+C to copy".into()
                } else {
                    "Copying failed: select the text by hand".into()
                });
            });
        })
    };
    html! {
        <span class="inline-flex items-center gap-2">
            <button type="button" {onclick} class={SECONDARY}>{ format!("Copy {}", props.what) }</button>
            <span role="status" class="text-xs text-emerald-200">{ (*status).clone() }</span>
        </span>
    }
}
