//! The sign-in form.

use microdash_core::api::SessionOut;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::components::style::{INPUT, PRIMARY};
use crate::hooks::use_title;

/// What the sign-in page reports.
#[derive(Properties, PartialEq)]
pub struct SignInProps {
    /// Signed in.
    pub on_signed_in: Callback<SessionOut>,
}

/// The sign-in page.
#[function_component]
pub fn SignInPage(props: &SignInProps) -> Html {
    use_title("Sign in".into());
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
                <p class="mb-6 text-sm text-slate-300">{ "Sign in to your dashboard" }</p>
                <label for="username" class="block text-sm text-slate-300">{ "Username" }</label>
                <input id="username" ref={username} autocomplete="username" required=true class={classes!(INPUT, "mt-1", "mb-4")} />
                <label for="password" class="block text-sm text-slate-300">{ "Password" }</label>
                <input id="password" ref={password} type="password" autocomplete="current-password" required=true class={classes!(INPUT, "mt-1", "mb-6")} />
                if let Some(message) = &*error {
                    <p role="alert" class="mb-4 rounded-lg bg-rose-950/60 px-3 py-2 text-sm text-rose-200">{ message }</p>
                }
                <button type="submit" disabled={*busy} class={classes!(PRIMARY, "w-full")}>
                    { if *busy { "Signing in…" } else { "Sign in" } }
                </button>
            </form>
        </main>
    }
}
