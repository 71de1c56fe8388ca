//! API tokens: create one (its secret shown once, with a copy button and ready-to-run ways to
//! send the first metric with it), list them, revoke them. Admins manage every tenant's; a
//! tenant's users their tenant's. On phones the list is a card per token.

use microdash_core::api::{CreateToken, CreatedToken, TokenOut};
use microdash_core::token::Scope;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api;
use crate::components::copy::CopyButton;
use crate::components::snippets::Snippets;
use crate::components::style::{CARD, DANGER, H1, INPUT, PRIMARY};
use crate::hooks::{Load, use_load, use_title};

/// Who manages tokens here.
#[derive(Properties, PartialEq)]
pub struct TokensProps {
    /// An admin (chooses the tenant).
    pub admin: bool,
    /// The tenant chosen beforehand (`#/tokens?tenant=acme`).
    #[prop_or_default]
    pub tenant: Option<String>,
}

/// List, create (secret shown once) and revoke tokens.
#[function_component]
pub fn TokensPage(props: &TokensProps) -> Html {
    use_title("API tokens".into());
    let tokens = use_load((), None, |()| api::tokens());
    let tenants =
        use_load(props.admin, None, |admin| async move { if admin { api::tenants().await } else { Ok(Vec::new()) } });
    let created = use_state(|| None::<CreatedToken>);
    let error = use_state(|| None::<String>);
    let status = use_state(String::new);
    let (name, tenant, ingest, read, alerts) =
        (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    let onsubmit = {
        let (name, tenant, ingest, read, alerts) =
            (name.clone(), tenant.clone(), ingest.clone(), read.clone(), alerts.clone());
        let (created, error, reload) = (created.clone(), error.clone(), tokens.reload.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let checked = |node: &NodeRef| node.cast::<HtmlInputElement>().is_some_and(|i| i.checked());
            let scopes: Vec<&str> =
                [("ingest", checked(&ingest)), ("read", checked(&read)), ("alerts", checked(&alerts))]
                    .iter()
                    .filter(|s| s.1)
                    .map(|s| s.0)
                    .collect();
            let body = CreateToken {
                tenant: tenant.cast::<HtmlSelectElement>().map(|s| s.value()).filter(|v| !v.is_empty()),
                scopes: scopes.join(","),
                name: name.cast::<HtmlInputElement>().map(|i| i.value()).filter(|v| !v.is_empty()),
            };
            let (created, error, reload) = (created.clone(), error.clone(), reload.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_token(&body).await {
                    Ok(token) => {
                        created.set(Some(token));
                        error.set(None);
                        reload.emit(());
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let revoke = |token: &TokenOut| {
        let (error, status, reload) = (error.clone(), status.clone(), tokens.reload.clone());
        let (id, prefix) = (token.id, token.prefix.clone());
        Callback::from(move |_| {
            let confirmed = web_sys::window()
                .and_then(|w| w.confirm_with_message("Revoke this token? Programs using it stop working at once.").ok())
                .unwrap_or(false);
            if !confirmed {
                return;
            }
            let (error, status, reload, prefix) = (error.clone(), status.clone(), reload.clone(), prefix.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::revoke_token(id).await {
                    Ok(_) => {
                        status.set(format!("Revoked the token {prefix}…"));
                        reload.emit(());
                    }
                    Err(err) => error.set(Some(err.message)),
                }
            });
        })
    };
    let cell = "py-2 pr-4 max-md:p-0";
    let label = |text: &str| html! { <span class="block text-xs text-slate-300 md:hidden">{ text.to_owned() }</span> };
    let rows = match tokens.get() {
        Load::Loading => html! { <tr><td colspan="6" class="py-3 text-slate-300">{ "Loading…" }</td></tr> },
        Load::Failed(err) => {
            html! { <tr><td colspan="6" role="alert" class="py-3 text-rose-300">{ &err.message }</td></tr> }
        }
        Load::Ready(list) if list.is_empty() => {
            html! { <tr><td colspan="6" class="py-3 text-slate-300">{ "No tokens yet." }</td></tr> }
        }
        Load::Ready(list) => html! {
            { for list.iter().map(|t| {
                let active = t.revoked_at.is_none();
                html! {
                    <tr key={t.id} data-testid="token-row" data-prefix={t.prefix.clone()} data-revoked={(!active).to_string()}
                        class="border-t border-white/5 max-md:grid max-md:grid-cols-2 max-md:gap-x-4 max-md:gap-y-2 max-md:rounded-xl max-md:border-0 max-md:bg-slate-900/70 max-md:p-3 max-md:ring-1 max-md:ring-white/10">
                        <td class={classes!(cell, "font-mono", "max-md:col-span-2")}>{ label("Token") }{ &t.prefix }{ "…" }</td>
                        <td class={cell}>{ label("Name") }{ if t.name.is_empty() { "–" } else { &t.name } }</td>
                        <td class={cell}>{ label("Tenant") }{ t.tenant.as_deref().unwrap_or("(admin)") }</td>
                        <td class={classes!(cell, "font-mono")}>{ label("Scopes") }{ &t.scopes }</td>
                        <td class={classes!(cell, "text-slate-300")}>{ label("Last used") }{ t.last_used_at.as_deref().unwrap_or("never") }</td>
                        <td class="py-2 text-right max-md:col-span-2 max-md:p-0 max-md:text-left">
                            if active {
                                <button type="button" onclick={revoke(t)} aria-label={format!("Revoke token {}", t.prefix)} class={DANGER}>{ "Revoke" }</button>
                            } else {
                                <span class="text-slate-300" data-testid="revoked">{ "revoked" }</span>
                            }
                        </td>
                    </tr>
                }
            }) }
        },
    };
    let tenant_field = props.admin.then(|| {
        let options = tenants.get().ready().cloned().unwrap_or_default();
        html! {
            <label class="grid gap-1 text-sm text-slate-300">
                { "Tenant" }
                <select ref={tenant.clone()} required=true class={INPUT}>
                    { for options.iter().map(|t| {
                        let selected = props.tenant.as_deref() == Some(t.slug.as_str());
                        html! { <option key={t.slug.clone()} value={t.slug.clone()} {selected}>{ &t.slug }</option> }
                    }) }
                </select>
            </label>
        }
    });
    let checkbox = classes!("h-5", "w-5", "accent-sky-400", crate::components::style::FOCUS);
    let new_token = created.as_ref().map(|token| {
        let tenant = token.info.tenant.clone().unwrap_or_default();
        html! {
            <section class="mb-6 grid gap-4 rounded-2xl bg-emerald-950/40 p-4 ring-1 ring-emerald-700/60" aria-labelledby="new-token-title" data-testid="created-token">
                <h2 id="new-token-title" class="text-lg font-medium text-emerald-100">{ "Your new token" }</h2>
                <p class="text-sm text-emerald-100">{ "Copy it now: it is shown only once." }</p>
                <div class="flex flex-wrap items-center gap-3">
                    <code id="new-token" data-testid="new-token" class="block min-w-0 grow break-all rounded-lg bg-slate-950 p-3 font-mono text-sm text-slate-100">{ &token.token }</code>
                    <CopyButton text={token.token.clone()} what="token" target="new-token" />
                </div>
                if !tenant.is_empty() && token.info.scopes.contains(Scope::Ingest) {
                    <h3 class="text-base font-medium text-slate-50">{ "Send your first metric" }</h3>
                    <Snippets tenant={tenant.clone()} token={token.token.clone()} />
                }
            </section>
        }
    });
    html! {
        <>
            <h1 class={classes!(H1, "mb-4")}>{ "API tokens" }</h1>
            <form {onsubmit} class={classes!(CARD, "mb-6", "flex", "flex-wrap", "items-end", "gap-4", "p-4")} aria-label="Create a token">
                <label class="grid gap-1 text-sm text-slate-300">
                    { "Name" }
                    <input ref={name} placeholder="edge-gateway" class={INPUT} />
                </label>
                { tenant_field.unwrap_or_default() }
                <fieldset class="flex flex-wrap gap-4 text-sm text-slate-300">
                    <legend class="mb-1">{ "Scopes" }</legend>
                    <label class="flex min-h-11 items-center gap-2"><input ref={ingest} type="checkbox" checked=true class={checkbox.clone()} />{ "ingest" }</label>
                    <label class="flex min-h-11 items-center gap-2"><input ref={read} type="checkbox" checked=true class={checkbox.clone()} />{ "read" }</label>
                    <label class="flex min-h-11 items-center gap-2"><input ref={alerts} type="checkbox" class={checkbox.clone()} />{ "alerts" }</label>
                </fieldset>
                <button type="submit" class={PRIMARY}>{ "Create token" }</button>
            </form>
            if let Some(message) = &*error {
                <p role="alert" class="mb-4 text-rose-300">{ message }</p>
            }
            <p role="status" class="mb-2 text-sm text-emerald-200">{ (*status).clone() }</p>
            { new_token.unwrap_or_default() }
            <div class="md:overflow-x-auto">
                <table class="w-full text-left text-sm max-md:block">
                    <caption class="sr-only">{ "Tokens" }</caption>
                    <thead class="text-slate-300 max-md:hidden">
                        <tr><th scope="col" class="py-2 pr-4 font-normal">{ "Token" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Name" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Tenant" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Scopes" }</th><th scope="col" class="py-2 pr-4 font-normal">{ "Last used" }</th><th scope="col"><span class="sr-only">{ "Actions" }</span></th></tr>
                    </thead>
                    <tbody class="max-md:grid max-md:gap-3">{ rows }</tbody>
                </table>
            </div>
        </>
    }
}
