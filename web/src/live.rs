//! The live link of one tenant view: Server-Sent Events while they work, long-polling the
//! cursor endpoint when they keep failing (a buffering proxy, a browser without EventSource,
//! or `?transport=poll` in the page URL), and a try at the stream again every
//! [`crate::model::STREAM_RETRY_MS`]. Both transports resume from the last cursor, so switching
//! loses nothing the server still holds; when it does not, the view is told to reload.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_net::http::Request;
use microdash_core::api::{LatestResponse, LiveFrame, PointOut, StreamMarker};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};
use yew::Callback;

use crate::model::Link;

/// What the link tells its view.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveUpdate {
    /// Points just persisted.
    Points(Vec<PointOut>),
    /// The link could not resume: reload history.
    Reset,
    /// Transport or connectivity changed.
    Status(Link),
}

/// Long-poll wait; under the server's default limit.
const POLL_WAIT_MS: u32 = 20_000;
/// Pause after a failed poll.
const POLL_RETRY_MS: u32 = 2_000;
/// First stream reconnect delay; doubled after each failure in a row.
const RECONNECT_BASE_MS: u32 = 250;
/// A stream that has not delivered its opening event by then counts as failed.
const OPEN_TIMEOUT_MS: u32 = 5_000;

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Whether the stream may be used at all here.
fn stream_available() -> bool {
    let Some(window) = web_sys::window() else { return false };
    let forced_poll = window.location().search().is_ok_and(|q| q.contains("transport=poll"));
    !forced_poll && js_sys::Reflect::has(&window, &"EventSource".into()).unwrap_or(false)
}

type Listener = Closure<dyn FnMut(web_sys::Event)>;

struct Inner {
    tenant: String,
    agent: Option<String>,
    link: Link,
    source: Option<(EventSource, Vec<(&'static str, Listener)>)>,
    /// Bumped for every stream opened, so a timer can tell whether its stream is still the
    /// current one.
    generation: u64,
    alive: bool,
    on_update: Callback<LiveUpdate>,
}

/// A running live link; dropping it closes the stream and stops polling.
pub struct LiveLink {
    inner: Rc<RefCell<Inner>>,
}

impl LiveLink {
    /// Follow `tenant` (only `agent`'s points when given).
    pub fn start(tenant: &str, agent: Option<&str>, on_update: Callback<LiveUpdate>) -> LiveLink {
        let available = stream_available();
        let inner = Rc::new(RefCell::new(Inner {
            tenant: tenant.to_owned(),
            agent: agent.map(str::to_owned),
            link: Link::new(available, now_ms()),
            source: None,
            generation: 0,
            alive: true,
            on_update,
        }));
        if available {
            open_stream(&inner)
        } else {
            start_polling(&inner)
        }
        LiveLink { inner }
    }
}

impl Drop for LiveLink {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.alive = false;
        close_stream(&mut inner);
    }
}

fn close_stream(inner: &mut Inner) {
    if let Some((source, listeners)) = inner.source.take() {
        source.close();
        for (name, listener) in &listeners {
            let _ = source.remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        }
    }
}

fn query(inner: &Inner) -> String {
    let mut params = Vec::new();
    if let Some(agent) = &inner.agent {
        params.push(format!("agent_id={}", js_sys::encode_uri_component(agent)));
    }
    if let Some(cursor) = &inner.link.cursor {
        params.push(format!("after={}", js_sys::encode_uri_component(cursor)));
    }
    params.join("&")
}

/// Report the link's state to the view.
fn status(inner: &Rc<RefCell<Inner>>) {
    let (callback, link) = {
        let inner = inner.borrow();
        (inner.on_update.clone(), inner.link.clone())
    };
    callback.emit(LiveUpdate::Status(link));
}

fn emit(inner: &Rc<RefCell<Inner>>, update: LiveUpdate) {
    let callback = inner.borrow().on_update.clone();
    callback.emit(update);
}

fn open_stream(inner: &Rc<RefCell<Inner>>) {
    let url = {
        let inner = inner.borrow();
        format!("/api/v1/stream/{}?{}", js_sys::encode_uri_component(&inner.tenant), query(&inner))
    };
    let Ok(source) = EventSource::new(&url) else {
        inner.borrow_mut().link.fall_back(now_ms());
        start_polling(inner);
        return;
    };
    let marker = |reset: bool| {
        let weak = Rc::downgrade(inner);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(inner) = weak.upgrade() else { return };
            let Some(message) = event.dyn_ref::<MessageEvent>() else { return };
            let data = message.data().as_string().unwrap_or_default();
            if let Ok(marker) = serde_json::from_str::<StreamMarker>(&data) {
                let mut state = inner.borrow_mut();
                state.link.cursor = Some(marker.cursor);
                state.link.stream_opened();
            }
            status(&inner);
            if reset {
                emit(&inner, LiveUpdate::Reset);
            }
        })
    };
    let points = {
        let weak = Rc::downgrade(inner);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(inner) = weak.upgrade() else { return };
            let Some(message) = event.dyn_ref::<MessageEvent>() else { return };
            let data = message.data().as_string().unwrap_or_default();
            let Ok(frame) = serde_json::from_str::<LiveFrame>(&data) else { return };
            inner.borrow_mut().link.cursor = Some(message.last_event_id());
            emit(&inner, LiveUpdate::Points(frame.points));
        })
    };
    let error = {
        let weak = Rc::downgrade(inner);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_event: web_sys::Event| {
            let Some(inner) = weak.upgrade() else { return };
            // Reconnecting is ours, not the browser's: its delay is long and unknown, and a
            // stream that keeps failing must hand over to polling promptly.
            let (give_up, failures) = {
                let mut state = inner.borrow_mut();
                close_stream(&mut state);
                (state.link.stream_failed(now_ms()), state.link.failures())
            };
            status(&inner);
            if give_up {
                start_polling(&inner);
                return;
            }
            let weak = Rc::downgrade(&inner);
            wasm_bindgen_futures::spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(RECONNECT_BASE_MS << failures.min(4)).await;
                if let Some(inner) = weak.upgrade().filter(|i| i.borrow().alive) {
                    open_stream(&inner);
                }
            });
        })
    };
    let cursor = {
        let weak = Rc::downgrade(inner);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(inner) = weak.upgrade() else { return };
            let Some(message) = event.dyn_ref::<MessageEvent>() else { return };
            inner.borrow_mut().link.cursor = Some(message.last_event_id());
        })
    };
    let listeners = vec![
        ("ready", marker(false)),
        ("reset", marker(true)),
        ("cursor", cursor),
        ("points", points),
        ("error", error),
    ];
    for (name, listener) in &listeners {
        let _ = source.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
    }
    let generation = {
        let mut state = inner.borrow_mut();
        close_stream(&mut state);
        state.source = Some((source, listeners));
        state.generation += 1;
        state.generation
    };
    // A proxy that buffers the response never errors and never delivers: a stream that has
    // not opened in time counts as failed.
    let weak = Rc::downgrade(inner);
    wasm_bindgen_futures::spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(OPEN_TIMEOUT_MS).await;
        let Some(inner) = weak.upgrade() else { return };
        let stalled = {
            let state = inner.borrow();
            state.alive && state.generation == generation && state.source.is_some() && !state.link.connected
        };
        if stalled {
            let source = inner.borrow().source.as_ref().map(|(s, _)| s.clone());
            if let Some(source) = source {
                // Through the error listener, so the failure is handled in one place.
                if let Ok(event) = web_sys::Event::new("error") {
                    let _ = source.dispatch_event(&event);
                }
            }
        }
    });
}

fn start_polling(inner: &Rc<RefCell<Inner>>) {
    status(inner);
    let weak = Rc::downgrade(inner);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let Some(inner) = weak.upgrade().filter(|i| i.borrow().alive) else { return };
            if inner.borrow().link.should_retry_stream(now_ms(), stream_available()) {
                inner.borrow_mut().link.retry_stream();
                status(&inner);
                open_stream(&inner);
                return;
            }
            let url = {
                let state = inner.borrow();
                // Without a cursor, ask at once for one; with it, wait for what comes next.
                let wait = if state.link.cursor.is_some() { POLL_WAIT_MS } else { 0 };
                format!(
                    "/api/v1/stream/{}/latest?wait_ms={wait}&{}",
                    js_sys::encode_uri_component(&state.tenant),
                    query(&state)
                )
            };
            // Not holding the link while waiting: the view may drop it meanwhile.
            drop(inner);
            let answer = match Request::get(&url).send().await {
                Ok(response) if response.ok() => response.json::<LatestResponse>().await.ok(),
                _ => None,
            };
            let Some(inner) = weak.upgrade().filter(|i| i.borrow().alive) else { return };
            let ok = answer.is_some();
            inner.borrow_mut().link.polled(ok);
            status(&inner);
            match answer {
                Some(answer) => {
                    inner.borrow_mut().link.cursor = Some(answer.cursor);
                    if !answer.points.is_empty() {
                        emit(&inner, LiveUpdate::Points(answer.points));
                    }
                    if answer.reset {
                        emit(&inner, LiveUpdate::Reset);
                        // Resets in a row (say, a balancer alternating between servers)
                        // must not turn into a tight loop of history reloads.
                        drop(inner);
                        gloo_timers::future::TimeoutFuture::new(POLL_RETRY_MS).await;
                    }
                }
                None => {
                    drop(inner);
                    gloo_timers::future::TimeoutFuture::new(POLL_RETRY_MS).await;
                }
            }
        }
    });
}
