//! The frame of every signed-in page: a skip link, the header (navigation, the firing count,
//! the live switch where it acts, the user, sign-out) on one line even on a phone (the
//! navigation folds into a menu there), and the routed page. The keyboard focus moves to a
//! new page's heading, and the live switch is the one truth of "live or paused" for every
//! page ([`LiveControl`]).

use microdash_core::api::SessionOut;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::api;
use crate::app::{Route, switch};
use crate::components::style::FOCUS;
use crate::hooks::{Firing, LiveControl, use_firing, use_route};
use crate::pages::alerts::Screen;

/// What the shell shows.
#[derive(Properties, PartialEq)]
pub struct ShellProps {
    /// The signed-in user; `None` while the session is being checked.
    pub user: Option<SessionOut>,
    /// After signing out.
    pub on_signed_out: Callback<()>,
}

/// Move the keyboard focus to the page's heading (made focusable for it, not tabbable).
pub fn focus_heading() {
    let heading = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("main h1").ok().flatten())
        .and_then(|h| h.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(heading) = heading {
        let _ = heading.set_attribute("tabindex", "-1");
        let _ = heading.focus();
    }
}

/// Whether the keyboard focus is inside the page (not the header, not nowhere).
fn focus_in_main() -> bool {
    let document = web_sys::window().and_then(|w| w.document());
    let (Some(active), Some(main)) = (
        document.as_ref().and_then(|d| d.active_element()),
        document.as_ref().and_then(|d| d.get_element_by_id("main")),
    ) else {
        return false;
    };
    main.contains(Some(&active))
}

/// Header, navigation and the routed page.
#[function_component]
pub fn Shell(props: &ShellProps) -> Html {
    let route = use_route();
    let paused = use_state(|| false);
    let menu_open = use_state(|| false);
    let live = LiveControl {
        paused: *paused,
        toggle: {
            let paused = paused.clone();
            Callback::from(move |()| paused.set(!*paused))
        },
    };
    // A new page: focus its heading (not on the first page: the browser starts at the top;
    // nor when the page put the focus somewhere itself, as a form does on its first field)
    // and fold the phone menu.
    {
        let shown = use_mut_ref(|| None::<String>);
        let menu_open = menu_open.clone();
        use_effect_with(route.page_key(), move |page| {
            let first = shown.borrow().is_none();
            *shown.borrow_mut() = Some(page.clone());
            if !first {
                if !focus_in_main() {
                    focus_heading();
                }
                menu_open.set(false);
            }
        });
    }
    let sign_out = {
        let on_signed_out = props.on_signed_out.clone();
        Callback::from(move |_| {
            let on_signed_out = on_signed_out.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = api::sign_out().await;
                on_signed_out.emit(());
            });
        })
    };
    let skip = Callback::from(|event: MouseEvent| {
        event.prevent_default();
        focus_heading();
    });
    let nav = |href: String, label: &str, current: bool| {
        let class = if current {
            "text-slate-50 underline decoration-sky-400 decoration-2 underline-offset-8"
        } else {
            "text-slate-300 hover:text-slate-50"
        };
        html! {
            <a {href} class={classes!("inline-flex", "min-h-11", "items-center", "rounded", "md:min-h-0", FOCUS, class)} aria-current={current.then_some("page")}>{ label }</a>
        }
    };
    let admin = props.user.as_ref().is_some_and(|u| u.admin);
    let who = match &props.user {
        Some(SessionOut { username, tenant: Some(tenant), .. }) => format!("{username} · {tenant}"),
        Some(SessionOut { username, tenant: None, .. }) => format!("{username} · admin"),
        None => String::new(),
    };
    // The tenant whose alerts the header counts: the page's, else the user's own, else the
    // last one visited (an admin on the overview).
    let last_tenant = use_mut_ref(|| None::<String>);
    if let Some(slug) = route.tenant() {
        *last_tenant.borrow_mut() = Some(slug.to_owned());
    }
    let alert_tenant = route
        .tenant()
        .map(str::to_owned)
        .or_else(|| props.user.as_ref().and_then(|u| u.tenant.clone()))
        .or_else(|| last_tenant.borrow().clone());
    let firing = use_firing(alert_tenant.clone(), format!("{route:?}"));
    let alerts_nav = alert_tenant
        .as_deref()
        .map(|slug| nav(Screen::Inbox.href(slug), "Alerts", matches!(route, Route::Alerts { .. })));
    // A live region from the start, so a change of the count is announced.
    let (count_text, count_class) = match firing {
        Firing::Count(0) => ("none firing".to_owned(), "text-slate-300"),
        Firing::Count(n) => (format!("{n} firing"), "rounded-full bg-red-700 px-2 py-0.5 font-medium text-white"),
        Firing::Unknown | Firing::Unavailable => (String::new(), ""),
    };
    let firing_count = match firing {
        Firing::Count(n) => n.to_string(),
        Firing::Unknown | Firing::Unavailable => String::new(),
    };
    let toggle_menu = {
        let menu_open = menu_open.clone();
        Callback::from(move |_| menu_open.set(!*menu_open))
    };
    let live_switch = route.is_live().then(|| {
        let toggle = live.toggle.clone();
        let (text, dot) = if live.paused { ("Live: paused", "bg-amber-300") } else { ("Live: on", "bg-emerald-400") };
        html! {
            <button type="button" data-testid="live-switch" data-paused={live.paused.to_string()} onclick={move |_| toggle.emit(())}
                class={classes!("inline-flex", "min-h-11", "shrink-0", "items-center", "gap-2", "rounded-full", "px-3", "text-sm", "ring-1", "ring-slate-500", "hover:bg-slate-800", "md:min-h-8", FOCUS)}>
                <span aria-hidden="true" class={classes!("h-2", "w-2", "rounded-full", dot)}></span>
                { text }
            </button>
        }
    });
    let menu_class = if *menu_open {
        "max-md:absolute max-md:inset-x-0 max-md:top-full max-md:flex max-md:flex-col max-md:items-stretch max-md:gap-1 max-md:border-b max-md:border-white/10 max-md:bg-slate-900 max-md:px-4 max-md:py-3"
    } else {
        "max-md:hidden"
    };
    html! {
        <ContextProvider<LiveControl> context={live}>
            <div class="min-h-screen bg-slate-950 text-slate-100">
                <a href="#main" onclick={skip}
                    class={classes!("sr-only", "focus:not-sr-only", "focus:absolute", "focus:left-2", "focus:top-2", "focus:z-50", "focus:rounded-lg", "focus:bg-sky-400", "focus:px-4", "focus:py-3", "focus:text-slate-950", FOCUS)}>
                    { "Skip to content" }
                </a>
                <header class="sticky top-0 z-10 border-b border-white/10 bg-slate-900/95 backdrop-blur">
                    <div class="relative flex flex-nowrap items-center gap-3 px-4 py-1.5 md:gap-6 md:py-2 2xl:px-8">
                        <a href="#/" class={classes!("inline-flex", "min-h-11", "shrink-0", "items-center", "rounded", "font-semibold", "tracking-tight", "text-slate-50", "md:min-h-0", FOCUS)}>{ "microdash" }</a>
                        <div id="site-menu" class={classes!("md:flex", "md:items-center", "md:gap-6", menu_class)}>
                            <nav aria-label="Main" class="flex gap-5 text-sm max-md:flex-col max-md:gap-0">
                                { nav("#/".into(), "Overview", matches!(route, Route::Overview | Route::Tenant { .. })) }
                                { alerts_nav.unwrap_or_default() }
                                { nav("#/tokens".into(), "Tokens", matches!(route, Route::Tokens { .. })) }
                                if admin {
                                    { nav("#/admin".into(), "Admin", route == Route::Admin) }
                                }
                            </nav>
                            <span class="text-sm text-slate-300 md:hidden">{ who.clone() }</span>
                            <button type="button" onclick={sign_out.clone()} class={classes!("inline-flex", "min-h-11", "items-center", "rounded", "text-left", "text-sm", "text-slate-300", "hover:text-slate-50", "md:hidden", FOCUS)}>{ "Sign out" }</button>
                        </div>
                        <span data-testid="firing-count" data-count={firing_count} aria-live="polite" aria-atomic="true"
                            class={classes!("shrink-0", "text-xs", count_class)}>
                            if !count_text.is_empty() {
                                <span class="sr-only">{ "Alerts: " }</span>
                            }
                            { count_text }
                        </span>
                        <div class="ml-auto flex shrink-0 items-center gap-3 text-sm md:gap-4">
                            { live_switch.unwrap_or_default() }
                            <span class="hidden text-slate-300 lg:inline">{ who }</span>
                            <button type="button" onclick={sign_out} class={classes!("hidden", "rounded", "text-slate-300", "hover:text-slate-50", "md:inline", FOCUS)}>{ "Sign out" }</button>
                            <button type="button" onclick={toggle_menu} aria-expanded={menu_open.to_string()} aria-controls="site-menu"
                                class={classes!("inline-flex", "min-h-11", "min-w-11", "items-center", "justify-center", "rounded-lg", "ring-1", "ring-slate-500", "md:hidden", FOCUS)}>
                                <span aria-hidden="true">{ "☰" }</span>
                                <span class="sr-only">{ "Menu" }</span>
                            </button>
                        </div>
                    </div>
                </header>
                <main id="main" class="w-full px-4 py-6 2xl:px-8">{ switch(&route, props.user.as_ref()) }</main>
            </div>
        </ContextProvider<LiveControl>>
    }
}
