//! microdash alerting: what an alert rule decides, what its notifications say, and (with the
//! `delivery` feature, on by default) sending them.
//!
//! The pure part does no IO, reads no clock and never awaits: every function takes the
//! current time as an argument, so an evaluator around it can be driven (and tested) by
//! hand, and the dashboard can reuse it for previews with `default-features = false` (which
//! leaves out tokio, reqwest and lettre). The evaluator task (feeding points and ticks in,
//! persisting [`state::InstanceState`] and transitions) is not here; the pure modules never
//! depend on `deliver`.
//!
//! - [`matcher`]: which series a rule watches ([`matcher::matches`]); each series is one
//!   alert instance ([`matcher::InstanceKey`]: its agent and tags).
//! - [`window`]: [`window::SeriesWindow`], a series' recent points, bounded, and the rule's
//!   aggregate over its window ([`window::SeriesWindow::observe`]).
//! - [`state`]: the state machine, [`state::step`]`(rule, prev, observation, now) -> Step`
//!   (the next state to persist, the transition to record, the notification to send).
//! - [`template`]: summary templates (`{{agent_id}} cpu {{value}} %`) and value formatting.
//! - [`payload`]: the webhook bodies (`microdash`, Alertmanager v4) and the email text, and
//!   the [`Message`] one channel sends ([`Message::for_channel`]), as the store keeps it.
//! - `deliver` (feature `delivery`): a `Deliverer` makes one attempt at sending a message
//!   (webhook `POST`, signed with the channel's secret; email over SMTP) and classifies it as
//!   sent, retry or failed; `retry_delay` and `MAX_ATTEMPTS` are the retry schedule the
//!   caller keeps (the store persists it, so a restart loses no retry).
//!
//! # How an instance moves
//!
//! The rules are [`microdash_core::alert::AlertRule`]'s settings; times are absolute Unix ms
//! in the persisted [`state::InstanceState`], so a restarted evaluator resumes timers and
//! sends no second notification for what it already notified.
//!
//! - **Breach.** `value OP critical` is critical; otherwise `value OP warning` is a warning;
//!   otherwise none.
//! - **ok → pending → firing.** A breach fires at once when `for_s` is 0, else the instance
//!   goes pending; it fires (one `Firing` notification, at the current severity) once the
//!   breach has lasted `for_s` without a break. A pending instance whose breach clears goes
//!   back to ok without a notification; while pending, its severity follows the breach.
//! - **Firing.** The level held is the breached severity, or, while `value OP recovery`
//!   still holds (hysteresis; `recovery` defaults to the least severe threshold), the least
//!   severe level. A higher level escalates at once; a lower level, or none, takes effect
//!   only after the current one has not held for `keep_firing_for_s` (reset whenever it holds
//!   again). A severity change is one `Firing` notification with the new severity and a
//!   history entry `firing -> firing`; no level left resolves (`Resolved`, `firing -> ok`).
//! - **Reminders.** With `repeat_interval_s`, a firing instance sends `Repeat` once that long
//!   has passed since its last notification (any kind).
//! - **Nothing to judge.** An empty window that is not (yet) no data changes nothing (a firing
//!   alert still gets its reminders).
//! - **No data.** With `no_data_s` > 0, a series whose latest point is more than `no_data_s`
//!   old (or that never sent one) gets `no_data_state`, whatever the window holds: `ok` goes
//!   to the `no_data` state (resolving a firing alert), `alerting` fires critical with no
//!   value (at once: `no_data_s` is the delay; not subject to `for_s`), `keep` changes nothing
//!   (timers are absolute, so they keep running: a pending instance whose breach is seen
//!   again after the gap fires if `for_s` has passed since it began). When data returns,
//!   normal evaluation takes the instance out of `no_data`.
//! - **Disabled rules.** Their instances go to ok; a firing one is resolved with a
//!   notification, so no receiver is left with an alert that never ends.
//! - At most one notification per step; every state change is a transition to record.

#[cfg(feature = "delivery")]
pub mod deliver;
#[cfg(feature = "delivery")]
mod error;
pub mod matcher;
pub mod payload;
pub mod state;
pub mod template;
pub mod window;

pub use matcher::{InstanceKey, SeriesRef, matches};
pub use payload::Message;
pub use state::{InstanceState, Notify, Observation, Step, Transition, step};
pub use window::SeriesWindow;

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
