//! Loading what a page shows: one hook for every screen, so each handles in-flight answers,
//! failures and reloads the same way.

use std::future::Future;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use yew::prelude::*;

use crate::api::ApiError;

/// What a load has brought so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    /// The first answer for these inputs has not come yet.
    Loading,
    /// The latest answer.
    Ready(T),
    /// The latest call failed.
    Failed(ApiError),
}

impl<T> Load<T> {
    /// The data, once there is some.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(value) => Some(value),
            Load::Loading | Load::Failed(_) => None,
        }
    }
}

/// A load's state and the way to ask again.
pub struct LoadHandle<T> {
    state: Rc<Load<T>>,
    /// Load again with the same inputs; what is shown stays until the answer arrives.
    pub reload: Callback<()>,
}

impl<T> Clone for LoadHandle<T> {
    fn clone(&self) -> Self {
        Self { state: self.state.clone(), reload: self.reload.clone() }
    }
}

impl<T> LoadHandle<T> {
    /// What has been loaded.
    pub fn get(&self) -> &Load<T> {
        &self.state
    }
}

/// Call `load(deps)` now and whenever `deps` change (what was shown for other inputs goes at
/// once), and again on [`LoadHandle::reload`] and, with `every_ms`, periodically (keeping what
/// is shown until the answer). An answer that arrives after newer inputs, a newer reload or
/// the page going away is dropped.
#[hook]
pub fn use_load<D, T, F, Fut>(deps: D, every_ms: Option<u32>, load: F) -> LoadHandle<T>
where
    D: PartialEq + Clone + 'static,
    T: 'static,
    F: FnOnce(D) -> Fut + 'static,
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let state = use_state(|| Rc::new(Load::Loading));
    let reloads = use_mut_ref(|| 0u64);
    let trigger = use_state(|| 0u64);
    let generation = use_mut_ref(|| 0u64);
    let shown_for = use_mut_ref(|| None::<D>);
    {
        let (state, generation) = (state.clone(), generation.clone());
        use_effect_with((deps, *trigger), move |(deps, _)| {
            if shown_for.borrow().as_ref() != Some(deps) {
                state.set(Rc::new(Load::Loading));
                *shown_for.borrow_mut() = Some(deps.clone());
            }
            let mine = {
                let mut current = generation.borrow_mut();
                *current += 1;
                *current
            };
            let answer = load(deps.clone());
            let pending = generation.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let answer = answer.await;
                if *pending.borrow() == mine {
                    state.set(Rc::new(match answer {
                        Ok(value) => Load::Ready(value),
                        Err(err) => Load::Failed(err),
                    }));
                }
            });
            // Gone or superseded: its answer is not wanted any more.
            move || *generation.borrow_mut() += 1
        });
    }
    let reload = {
        let trigger = trigger.clone();
        Callback::from(move |()| {
            let next = {
                let mut count = reloads.borrow_mut();
                *count += 1;
                *count
            };
            trigger.set(next);
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(every_ms, move |every| {
            let interval = every.map(|ms| Interval::new(ms, move || reload.emit(())));
            move || drop(interval)
        });
    }
    LoadHandle { state: (*state).clone(), reload }
}
