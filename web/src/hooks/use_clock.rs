//! The browser's clock.

use gloo_timers::callback::Interval;
use yew::prelude::*;

/// The browser's clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The clock, in whole seconds, ticking once a second (so every age on the page moves
/// together).
#[hook]
pub fn use_clock() -> i64 {
    let now = use_state(|| now_ms() / 1000 * 1000);
    {
        let now = now.clone();
        use_effect_with((), move |_| {
            let interval = Interval::new(1_000, move || now.set(now_ms() / 1000 * 1000));
            move || drop(interval)
        });
    }
    *now
}
