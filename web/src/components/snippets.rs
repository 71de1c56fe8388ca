//! Ready-to-run ways to send a first metric ([`crate::model::snippets`]), each with a copy
//! button.

use yew::prelude::*;

use crate::api;
use crate::components::copy::CopyButton;
use crate::hooks::use_load;
use crate::model::snippets::{Target, snippets};

/// Whose snippets.
#[derive(Properties, PartialEq)]
pub struct SnippetsProps {
    /// Tenant slug.
    pub tenant: AttrValue,
    /// The token, or [`crate::model::snippets::TOKEN_PLACEHOLDER`].
    pub token: AttrValue,
}

/// The snippets, curl first.
#[function_component]
pub fn Snippets(props: &SnippetsProps) -> Html {
    // Where the server reads MQTT; without an answer the snippets leave MQTT out.
    let connect = use_load((), None, |()| api::connect());
    let location = web_sys::window().map(|w| w.location());
    let origin = location.as_ref().and_then(|l| l.origin().ok()).unwrap_or_default();
    let page_host = location.as_ref().and_then(|l| l.hostname().ok()).unwrap_or_default();
    let target = Target {
        origin,
        page_host,
        tenant: props.tenant.to_string(),
        token: props.token.to_string(),
        mqtt: connect.get().ready().and_then(|c| c.mqtt.clone()),
    };
    let items = snippets(&target).into_iter().map(|snippet| {
        let id = format!("snippet-{}", snippet.id);
        html! {
            <li key={snippet.id} class="grid gap-2" data-testid={id.clone()}>
                <div class="flex flex-wrap items-center justify-between gap-2">
                    <h3 class="text-sm font-medium text-slate-200">{ snippet.title }</h3>
                    <CopyButton text={snippet.text.clone()} what={snippet.title} target={id.clone()} />
                </div>
                <pre class="whitespace-pre-wrap break-all rounded-lg bg-slate-950 p-3 text-xs text-slate-100 ring-1 ring-white/10"><code id={id}>{ snippet.text }</code></pre>
            </li>
        }
    });
    html! { <ul class="grid gap-4">{ for items }</ul> }
}
