//! The app: the session check, the routes and which page each one shows. Routing is by URL
//! hash (`#/`, `#/t/{tenant}`, `#/t/{tenant}/a/{agent}`, `#/t/{tenant}/alerts/...`, `#/tokens`,
//! `#/admin`; a tenant page's range in the hash's query, `?range=24h` or `?from=..&to=..`), so
//! the server serves one `index.html` and deep links survive a reload.

use microdash_core::api::SessionOut;
use yew::prelude::*;

use crate::api;
use crate::components::shell::Shell;
use crate::model::range::TimeRange;
use crate::pages::alerts::{self, Screen};
use crate::pages::{AdminPage, Overview, SignInPage, TenantPage, TokensPage};

/// Where the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Every tenant's hosts.
    Overview,
    /// A tenant's charts (of one agent), over a range.
    Tenant {
        /// The tenant.
        slug: String,
        /// Only this agent's series.
        agent: Option<String>,
        /// The range shown.
        range: TimeRange,
    },
    /// A tenant's alerting screens.
    Alerts {
        /// The tenant.
        slug: String,
        /// Which one.
        screen: Screen,
    },
    /// API tokens.
    Tokens {
        /// The tenant a new token is for (`#/tokens?tenant=acme`), from a tenant's page.
        tenant: Option<String>,
    },
    /// Tenants and users (admins).
    Admin,
}

impl Route {
    /// Tenant slugs and agent ids are limited to URL-safe characters, so the hash needs no
    /// decoding. The tenant page's range rides in the hash's query (`#/t/acme?range=24h`), so
    /// a link opens the same view.
    pub fn parse(hash: &str) -> Route {
        let hash = hash.trim_start_matches('#');
        let (path, query) = hash.split_once('?').unwrap_or((hash, ""));
        let range = TimeRange::parse_query(query);
        match path.trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
            ["t", slug] => Route::Tenant { slug: (*slug).to_owned(), agent: None, range },
            ["t", slug, "a", agent] => {
                Route::Tenant { slug: (*slug).to_owned(), agent: Some((*agent).to_owned()), range }
            }
            ["t", slug, "alerts", rest @ ..] => match Screen::parse(rest) {
                Some(screen) => Route::Alerts { slug: (*slug).to_owned(), screen },
                None => Route::Overview,
            },
            ["tokens"] => {
                let tenant = query.split('&').find_map(|pair| pair.strip_prefix("tenant=")).filter(|t| !t.is_empty());
                Route::Tokens { tenant: tenant.map(str::to_owned) }
            }
            ["admin"] => Route::Admin,
            _ => Route::Overview,
        }
    }

    /// The tenant the page is about, if any.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Route::Tenant { slug, .. } | Route::Alerts { slug, .. } => Some(slug),
            Route::Overview | Route::Tokens { .. } | Route::Admin => None,
        }
    }

    /// Which page this is, without what only changes the view of it (the range, the agent
    /// filter): the keyboard focus moves to a page's heading when this changes, and stays on
    /// the control the user is working when only the view does.
    pub fn page_key(&self) -> String {
        match self {
            Route::Overview => "overview".into(),
            Route::Tenant { slug, .. } => format!("tenant/{slug}"),
            Route::Alerts { slug, screen } => format!("alerts/{slug}/{}", screen.href(slug)),
            Route::Tokens { .. } => "tokens".into(),
            Route::Admin => "admin".into(),
        }
    }

    /// Whether the page follows live data, so the header's live switch acts on it.
    pub fn is_live(&self) -> bool {
        match self {
            Route::Overview => true,
            Route::Tenant { range, .. } => range.is_live(),
            Route::Alerts { .. } | Route::Tokens { .. } | Route::Admin => false,
        }
    }
}

/// The hash of a tenant's charts (of one agent), over `range`.
pub fn tenant_href(slug: &str, agent: Option<&str>, range: TimeRange) -> String {
    let path = match agent {
        Some(agent) => format!("#/t/{slug}/a/{agent}"),
        None => format!("#/t/{slug}"),
    };
    match range.to_query() {
        query if query.is_empty() => path,
        query => format!("{path}?{query}"),
    }
}

/// The hash of the tokens page, ready to create one for `tenant`.
pub fn tokens_href(tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("#/tokens?tenant={tenant}"),
        None => "#/tokens".into(),
    }
}

/// Go to another hash; the route follows through `hashchange`.
pub fn navigate(href: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_hash(href);
    }
}

#[derive(Debug, Clone, PartialEq)]
enum SessionState {
    Checking,
    SignedOut,
    SignedIn(SessionOut),
}

/// The whole app.
#[function_component]
pub fn App() -> Html {
    let session = use_state(|| SessionState::Checking);
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                session.set(match api::session().await {
                    Ok(user) => SessionState::SignedIn(user),
                    Err(_) => SessionState::SignedOut,
                });
            });
        });
    }
    let on_signed_in = {
        let session = session.clone();
        Callback::from(move |user: SessionOut| session.set(SessionState::SignedIn(user)))
    };
    let on_signed_out = {
        let session = session.clone();
        Callback::from(move |()| session.set(SessionState::SignedOut))
    };
    // While the session is being checked the page already renders and loads its data: a
    // signed-in user (the usual case) sees charts one round trip sooner, and a signed-out one
    // is sent to sign in as soon as the check answers.
    match &*session {
        SessionState::Checking => html! { <Shell user={None::<SessionOut>} {on_signed_out} /> },
        SessionState::SignedOut => html! { <SignInPage {on_signed_in} /> },
        SessionState::SignedIn(user) => html! { <Shell user={Some(user.clone())} {on_signed_out} /> },
    }
}

/// The page `route` shows to `user` (`None` while the session is being checked).
pub fn switch(route: &Route, user: Option<&SessionOut>) -> Html {
    let admin = user.is_some_and(|u| u.admin);
    match route {
        Route::Overview => html! { <Overview {admin} /> },
        Route::Tenant { slug, agent, range } => {
            html! { <TenantPage key={slug.clone()} slug={slug.clone()} agent={agent.clone()} range={*range} /> }
        }
        Route::Alerts { slug, screen } => alerts::page(slug, *screen),
        Route::Tokens { tenant } => html! { <TokensPage {admin} tenant={tenant.clone()} /> },
        Route::Admin => html! { <AdminPage {admin} /> },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::range::Preset;

    #[test]
    fn routes_parse_from_the_hash() {
        assert_eq!(Route::parse(""), Route::Overview);
        assert_eq!(Route::parse("#/"), Route::Overview);
        assert_eq!(Route::parse("#/tokens"), Route::Tokens { tenant: None });
        assert_eq!(Route::parse(&tokens_href(Some("acme"))), Route::Tokens { tenant: Some("acme".into()) });
        assert_eq!(Route::parse("#/admin"), Route::Admin);
        let live = TimeRange::Live;
        assert_eq!(Route::parse("#/t/acme"), Route::Tenant { slug: "acme".into(), agent: None, range: live });
        assert_eq!(
            Route::parse("#/t/acme/a/web-1"),
            Route::Tenant { slug: "acme".into(), agent: Some("web-1".into()), range: live }
        );
        assert_eq!(Route::parse("#/nowhere/x"), Route::Overview);
        assert_eq!(Route::parse("#/tokens?range=24h"), Route::Tokens { tenant: None });
        let day = TimeRange::Last(Preset::Day);
        assert_eq!(Route::parse("#/t/acme?range=24h"), Route::Tenant { slug: "acme".into(), agent: None, range: day });
        for range in [live, day, TimeRange::Between { start_ms: 1_000_000, end_ms: 2_000_000 }] {
            let route = Route::Tenant { slug: "acme".into(), agent: Some("db:1".into()), range };
            assert_eq!(Route::parse(&tenant_href("acme", Some("db:1"), range)), route);
        }
        assert_eq!(tenant_href("acme", None, live), "#/t/acme");
        assert_eq!(Route::parse("#/t/acme/alerts"), Route::Alerts { slug: "acme".into(), screen: Screen::Inbox });
        assert_eq!(
            Route::parse(&Screen::Rule(Some(4)).href("acme")),
            Route::Alerts { slug: "acme".into(), screen: Screen::Rule(Some(4)) }
        );
        assert_eq!(Route::parse("#/t/acme/alerts/nowhere"), Route::Overview);
        assert_eq!(Route::parse("#/t/acme/alerts/channels").tenant(), Some("acme"));
    }

    #[test]
    fn the_focus_moves_on_a_new_page_not_on_a_new_view_of_it() {
        let page = |hash: &str| Route::parse(hash).page_key();
        assert_eq!(page("#/t/acme"), page("#/t/acme?range=24h"));
        assert_eq!(page("#/t/acme"), page("#/t/acme/a/web-1"));
        assert_ne!(page("#/t/acme"), page("#/t/other"));
        assert_ne!(page("#/t/acme/alerts"), page("#/t/acme/alerts/rules"));
        assert_ne!(page("#/"), page("#/tokens"));
        // The live switch shows where it acts.
        assert!(Route::parse("#/").is_live() && Route::parse("#/t/acme").is_live());
        assert!(!Route::parse("#/t/acme?range=24h").is_live() && !Route::parse("#/tokens").is_live());
    }
}
