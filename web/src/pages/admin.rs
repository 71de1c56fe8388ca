//! Onboarding in the browser (admins): create tenants and their users, and delete users. Each
//! form shows the server's `422` under the fields it names; a new tenant links to creating its
//! first token.

use microdash_core::api::{CreateTenant, CreateUser, FieldError};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api::{self, ApiError};
use crate::app::tokens_href;
use crate::components::style::{CARD, DANGER, H1, INPUT, PRIMARY, SECONDARY};
use crate::hooks::{Load, use_load, use_title};

/// Who is looking.
#[derive(Properties, PartialEq)]
pub struct AdminProps {
    /// Only admins manage tenants and users.
    pub admin: bool,
}

/// The message of `field` among a 422's details.
fn field_error(details: &[FieldError], field: &str) -> Option<String> {
    details.iter().find(|d| d.field.as_deref() == Some(field)).map(|d| d.message.clone())
}

/// A text field with its label and, under it, what the server said is wrong with it.
fn field(id: &str, label: &str, node: &NodeRef, kind: &str, autocomplete: &str, error: Option<String>) -> Html {
    let error_id = format!("{id}-error");
    html! {
        <div class="grid gap-1 text-sm text-slate-300">
            <label for={id.to_owned()}>{ label.to_owned() }</label>
            <input id={id.to_owned()} ref={node.clone()} type={kind.to_owned()} autocomplete={autocomplete.to_owned()} class={INPUT}
                aria-invalid={error.is_some().then_some("true")} aria-describedby={error.is_some().then(|| error_id.clone())} />
            if let Some(message) = error {
                <p id={error_id} class="text-rose-300">{ message }</p>
            }
        </div>
    }
}

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default()
}

/// Tenants and users.
#[function_component]
pub fn AdminPage(props: &AdminProps) -> Html {
    use_title("Tenants and users".into());
    let tenants = use_load((), None, |()| api::tenants());
    let users =
        use_load(props.admin, None, |admin| async move { if admin { api::users().await } else { Ok(Vec::new()) } });
    let tenant_error = use_state(|| None::<ApiError>);
    let user_error = use_state(|| None::<ApiError>);
    let status = use_state(String::new);
    let created_tenant = use_state(|| None::<String>);
    let (slug, name) = (use_node_ref(), use_node_ref());
    let (username, password, user_tenant) = (use_node_ref(), use_node_ref(), use_node_ref());
    if !props.admin {
        return html! {
            <>
                <h1 class={classes!(H1, "mb-4")}>{ "Tenants and users" }</h1>
                <p class="text-slate-300">{ "Only admins manage tenants and users." }</p>
            </>
        };
    }
    let create_tenant = {
        let (slug, name, tenant_error, status, created_tenant, reload) = (
            slug.clone(),
            name.clone(),
            tenant_error.clone(),
            status.clone(),
            created_tenant.clone(),
            tenants.reload.clone(),
        );
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let body = CreateTenant { slug: value(&slug), name: Some(value(&name)).filter(|n| !n.is_empty()) };
            let (tenant_error, status, created_tenant, reload, slug) =
                (tenant_error.clone(), status.clone(), created_tenant.clone(), reload.clone(), slug.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_tenant(&body).await {
                    Ok(tenant) => {
                        tenant_error.set(None);
                        status.set(format!("Created the tenant {}.", tenant.slug));
                        created_tenant.set(Some(tenant.slug));
                        if let Some(input) = slug.cast::<HtmlInputElement>() {
                            input.set_value("");
                        }
                        reload.emit(());
                    }
                    Err(err) => tenant_error.set(Some(err)),
                }
            });
        })
    };
    let create_user = {
        let (username, password, user_tenant, user_error, status, reload) = (
            username.clone(),
            password.clone(),
            user_tenant.clone(),
            user_error.clone(),
            status.clone(),
            users.reload.clone(),
        );
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let tenant = user_tenant.cast::<HtmlSelectElement>().map(|s| s.value()).filter(|v| !v.is_empty());
            let body = CreateUser { username: Some(value(&username)), password: Some(value(&password)), tenant };
            let (user_error, status, reload, password) =
                (user_error.clone(), status.clone(), reload.clone(), password.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_user(&body).await {
                    Ok(user) => {
                        user_error.set(None);
                        status.set(format!("Created the user {}.", user.username));
                        if let Some(input) = password.cast::<HtmlInputElement>() {
                            input.set_value("");
                        }
                        reload.emit(());
                    }
                    Err(err) => user_error.set(Some(err)),
                }
            });
        })
    };
    let delete_user = |username: String| {
        let (user_error, status, reload) = (user_error.clone(), status.clone(), users.reload.clone());
        Callback::from(move |_| {
            let question = format!("Delete the user {username}? They are signed out at once.");
            if !web_sys::window().and_then(|w| w.confirm_with_message(&question).ok()).unwrap_or(false) {
                return;
            }
            let (user_error, status, reload, username) =
                (user_error.clone(), status.clone(), reload.clone(), username.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::delete_user(&username).await {
                    Ok(()) => {
                        status.set(format!("Deleted the user {username}."));
                        reload.emit(());
                    }
                    Err(err) => user_error.set(Some(err)),
                }
            });
        })
    };
    let details = |error: &Option<ApiError>| error.as_ref().map(|e| e.details.clone()).unwrap_or_default();
    let (tenant_details, user_details) = (details(&tenant_error), details(&user_error));
    let general = |error: &Option<ApiError>| {
        error
            .as_ref()
            .filter(|e| e.details.is_empty())
            .map(|e| html! { <p role="alert" class="text-rose-300">{ &e.message }</p> })
    };
    let tenant_list = tenants.get().ready().cloned().unwrap_or_default();
    let tenant_rows = tenant_list.iter().map(|t| {
        html! {
            <li key={t.slug.clone()} class="flex flex-wrap items-center gap-x-4 gap-y-1 border-t border-white/5 py-2" data-testid="tenant-row" data-tenant={t.slug.clone()}>
                <span class="font-mono text-slate-100">{ &t.slug }</span>
                <span class="text-slate-300">{ &t.name }</span>
                <a href={tokens_href(Some(&t.slug))} class={classes!(SECONDARY, "ml-auto")}>{ format!("Tokens of {}", t.slug) }</a>
            </li>
        }
    });
    let user_rows = match users.get() {
        Load::Loading => html! { <li class="py-2 text-slate-300">{ "Loading…" }</li> },
        Load::Failed(err) => html! { <li role="alert" class="py-2 text-rose-300">{ &err.message }</li> },
        Load::Ready(list) => html! {
            { for list.iter().map(|u| html! {
                <li key={u.username.clone()} class="flex flex-wrap items-center gap-x-4 gap-y-1 border-t border-white/5 py-2" data-testid="user-row" data-user={u.username.clone()}>
                    <span class="font-mono text-slate-100">{ &u.username }</span>
                    <span class="text-slate-300">{ u.tenant.clone().unwrap_or_else(|| "admin (every tenant)".into()) }</span>
                    <button type="button" class={classes!(DANGER, "ml-auto")} aria-label={format!("Delete user {}", u.username)} onclick={delete_user(u.username.clone())}>{ "Delete" }</button>
                </li>
            }) }
        },
    };
    html! {
        <>
            <h1 class={classes!(H1, "mb-4")}>{ "Tenants and users" }</h1>
            <p role="status" class="mb-4 text-sm text-emerald-200">{ (*status).clone() }</p>
            <div class="grid gap-6 xl:grid-cols-2">
                <section class={classes!(CARD, "p-4")} aria-labelledby="tenants-title">
                    <h2 id="tenants-title" class="mb-3 text-lg font-medium text-slate-50">{ "Tenants" }</h2>
                    <form onsubmit={create_tenant} aria-label="Create a tenant" class="mb-4 grid gap-3 sm:grid-cols-[1fr_1fr_auto] sm:items-start">
                        { field("tenant-slug", "Slug (a-z, 0-9, -)", &slug, "text", "off", field_error(&tenant_details, "slug")) }
                        { field("tenant-name", "Display name", &name, "text", "off", field_error(&tenant_details, "name")) }
                        <button type="submit" class={classes!(PRIMARY, "sm:mt-6")}>{ "Create tenant" }</button>
                    </form>
                    { general(&tenant_error).unwrap_or_default() }
                    if let Some(slug) = &*created_tenant {
                        <p class="mb-3 text-sm text-slate-200">
                            { "Next: " }
                            <a href={tokens_href(Some(slug))} class="rounded text-sky-300 underline underline-offset-4">{ format!("create a token for {slug}") }</a>
                            { " to send its first metric." }
                        </p>
                    }
                    <ul class="text-sm">{ for tenant_rows }</ul>
                </section>
                <section class={classes!(CARD, "p-4")} aria-labelledby="users-title">
                    <h2 id="users-title" class="mb-3 text-lg font-medium text-slate-50">{ "Users" }</h2>
                    <form onsubmit={create_user} aria-label="Create a user" class="mb-4 grid gap-3 sm:grid-cols-2">
                        { field("user-name", "Username", &username, "text", "off", field_error(&user_details, "username")) }
                        { field("user-password", "Password (at least 10 characters)", &password, "password", "new-password", field_error(&user_details, "password")) }
                        <div class="grid gap-1 text-sm text-slate-300">
                            <label for="user-tenant">{ "Tenant" }</label>
                            <select id="user-tenant" ref={user_tenant} class={INPUT}
                                aria-invalid={field_error(&user_details, "tenant").is_some().then_some("true")}
                                aria-describedby={field_error(&user_details, "tenant").is_some().then_some("user-tenant-error")}>
                                <option value="">{ "none: an admin of every tenant" }</option>
                                { for tenant_list.iter().map(|t| html! { <option key={t.slug.clone()} value={t.slug.clone()}>{ &t.slug }</option> }) }
                            </select>
                            if let Some(message) = field_error(&user_details, "tenant") {
                                <p id="user-tenant-error" class="text-rose-300">{ message }</p>
                            }
                        </div>
                        <button type="submit" class={classes!(PRIMARY, "sm:self-end")}>{ "Create user" }</button>
                    </form>
                    { general(&user_error).unwrap_or_default() }
                    <ul class="text-sm">{ user_rows }</ul>
                </section>
            </div>
        </>
    }
}
