//! The header's count of firing alerts.

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use microdash_core::api::alert::AlertState;
use yew::prelude::*;

use crate::api;

/// How often the header's count of firing alerts is asked for.
pub const FIRING_POLL_MS: u32 = 5_000;

/// The header's count of firing alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Not asked yet, or no tenant to ask about.
    Unknown,
    /// The server has no alerting API, or refused.
    Unavailable,
    /// This many instances fire.
    Count(usize),
}

/// The number of `tenant`'s firing alerts, asked for every [`FIRING_POLL_MS`] and whenever
/// `page` changes (so opening the inbox does not show a count older than its list).
#[hook]
pub fn use_firing(tenant: Option<String>, page: String) -> Firing {
    let firing = use_state_eq(|| Firing::Unknown);
    let asked_about = use_mut_ref(|| None::<String>);
    {
        let firing = firing.clone();
        use_effect_with((tenant, page), move |(tenant, _)| {
            // Another tenant's count is not this one's; another page of the same tenant keeps
            // showing the count until the new answer.
            if *asked_about.borrow() != *tenant {
                firing.set(Firing::Unknown);
                *asked_about.borrow_mut() = tenant.clone();
            }
            // Answers that arrive after the tenant changed are dropped.
            let current = Rc::new(Cell::new(true));
            let interval = tenant.clone().map(|tenant| {
                let (firing, current) = (firing.clone(), current.clone());
                let poll = move || {
                    let (tenant, firing, current) = (tenant.clone(), firing.clone(), current.clone());
                    wasm_bindgen_futures::spawn_local(async move {
                        let answer = api::alerts(&tenant, Some(AlertState::Firing)).await;
                        if current.get() {
                            firing.set(match answer {
                                Ok(list) => Firing::Count(list.len()),
                                Err(_) => Firing::Unavailable,
                            });
                        }
                    });
                };
                poll();
                Interval::new(FIRING_POLL_MS, poll)
            });
            move || {
                current.set(false);
                drop(interval);
            }
        });
    }
    *firing
}
