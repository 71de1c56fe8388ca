//! The document's title.

use yew::prelude::*;

/// Title the document `{page} · microdash` while the page is shown, so tabs, history and
/// screen readers tell pages apart.
#[hook]
pub fn use_title(page: String) {
    use_effect_with(page, |page| {
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            document.set_title(&format!("{page} · microdash"));
        }
    });
}
