//! The live bus: what the workers persist, fanned out to each tenant's stream subscribers.
//!
//! Every API process keeps one [`LiveHub`]. Per tenant it numbers the persisted batches it
//! hears of, keeps the latest of them as a bounded replay window, and broadcasts each one to
//! the tenant's open streams. Workers reach the hub directly in the all-in-one process, and
//! through Redis Pub/Sub (relayed by [`crate::Runtime::serve`]) when they run elsewhere; the
//! runtime picks the way from the queue.
//!
//! A [`Cursor`] names a position in one hub's feed of one tenant: the SSE event ids and the
//! polling endpoint's `after` are cursors, so either can resume where the other stopped. A
//! cursor carries the hub's epoch: after a restart (or on another server) it cannot be
//! resumed, and the subscriber is told to reload history instead of silently missing data.
//!
//! The bus is best effort by design: storage is the record. A batch persisted while a
//! server's Redis subscription is down never reaches that server's streams; the dashboard's
//! history queries still show it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use microdash_core::api::PointOut;
use microdash_core::api::alert::AlertStreamEvent;
use microdash_core::metric::format_millis;
use microdash_core::{Batch, Metric};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::queue::RedisQueue;

/// Live bus settings.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Points kept per tenant for resuming streams and for polling clients.
    pub replay_points: usize,
    /// Persisted batches a subscriber may fall behind by before it is dropped as too slow.
    pub subscriber_backlog_batches: usize,
    /// Most points coalesced into one stream event or one poll answer.
    pub max_frame_points: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self { replay_points: 20_000, subscriber_backlog_batches: 1_024, max_frame_points: 5_000 }
    }
}

/// A position in one tenant's live feed: the hub's epoch and the last batch seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    epoch: u64,
    seq: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.epoch, self.seq)
    }
}

impl Cursor {
    /// A cursor no hub resumes (epoch 0 is never a hub's): for ids that do not parse.
    pub fn unresumable() -> Cursor {
        Cursor { epoch: 0, seq: 0 }
    }
}

/// A cursor that is not `<hex epoch>-<decimal sequence>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream cursor; pass the cursor or event id the server sent")]
pub struct InvalidCursor;

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, seq) = s.trim().split_once('-').ok_or(InvalidCursor)?;
        Ok(Cursor {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| InvalidCursor)?,
            seq: seq.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

/// Which points a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveFilter {
    /// Only this agent's points.
    pub agent_id: Option<String>,
    /// Only this metric's points.
    pub metric_name: Option<String>,
}

impl LiveFilter {
    fn matches(&self, metric: &Metric) -> bool {
        self.agent_id.as_ref().is_none_or(|a| metric.agent_id.as_ref() == Some(a))
            && self.metric_name.as_ref().is_none_or(|n| &metric.name == n)
    }
}

/// One persisted batch (or several merged) of one tenant.
struct LiveEvent {
    seq: u64,
    metrics: Vec<Metric>,
    /// Each metric as [`PointOut`] JSON, made on first use: once for all subscribers, and
    /// never when nobody watches.
    json: OnceLock<Vec<Box<str>>>,
}

impl LiveEvent {
    fn json(&self) -> &[Box<str>] {
        self.json.get_or_init(|| self.metrics.iter().map(point_json).collect())
    }
}

fn point_json(metric: &Metric) -> Box<str> {
    let point = PointOut {
        metric_name: metric.name.clone(),
        agent_id: metric.agent_id.clone(),
        tags: metric.tags.clone(),
        timestamp: format_millis(metric.timestamp_ms),
        value: metric.value,
        ..PointOut::default()
    };
    // A PointOut of a validated metric (finite value, string maps) always serialises.
    serde_json::to_string(&point).unwrap_or_default().into_boxed_str()
}

struct Feed {
    state: Mutex<FeedState>,
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

struct FeedState {
    /// Sequence number of the next batch; the first is 1, so cursor 0 means "from the start".
    next_seq: u64,
    replay: VecDeque<Arc<LiveEvent>>,
    replay_points: usize,
}

/// The live feeds of every tenant in this process. Share it behind an `Arc`.
pub struct LiveHub {
    epoch: u64,
    config: LiveConfig,
    feeds: RwLock<HashMap<i64, Arc<Feed>>>,
    persisted: broadcast::Sender<Persisted>,
    alerts: broadcast::Sender<Arc<AlertNotice>>,
}

/// Alert transitions of one tenant, as the evaluator announces them to the live streams.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AlertNotice {
    /// The tenant.
    pub tenant_id: i64,
    /// What changed.
    pub events: Vec<AlertStreamEvent>,
}

/// One tenant's metrics that were just persisted, as [`LiveHub::subscribe_persisted`]
/// delivers them. Cheap to clone: the metrics are shared with the tenant's streams.
#[derive(Clone)]
pub struct Persisted {
    /// The tenant.
    pub tenant_id: i64,
    event: Arc<LiveEvent>,
}

impl Persisted {
    /// The metrics, in the order they were stored.
    pub fn metrics(&self) -> &[Metric] {
        &self.event.metrics
    }
}

/// Persisted batches an in-process consumer may fall behind by before it misses some.
const PERSISTED_BACKLOG: usize = 4_096;
/// Alert notices a stream may fall behind by before it misses some.
const ALERT_BACKLOG: usize = 1_024;

impl LiveHub {
    /// An empty hub whose cursors are valid until the process stops.
    pub fn new(config: LiveConfig) -> Self {
        // Milliseconds at start: distinct across restarts, short in a cursor.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        Self {
            epoch,
            config,
            feeds: RwLock::default(),
            persisted: broadcast::channel(PERSISTED_BACKLOG).0,
            alerts: broadcast::channel(ALERT_BACKLOG).0,
        }
    }

    fn feed(&self, tenant_id: i64) -> Arc<Feed> {
        if let Some(feed) = self.feeds.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id) {
            return feed.clone();
        }
        let mut feeds = self.feeds.write().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(tenant_id)
            .or_insert_with(|| {
                Arc::new(Feed {
                    state: Mutex::new(FeedState { next_seq: 1, replay: VecDeque::new(), replay_points: 0 }),
                    sender: broadcast::channel(self.config.subscriber_backlog_batches.max(1)).0,
                })
            })
            .clone()
    }

    /// Announce metrics of `tenant_id` that were just persisted.
    pub fn publish(&self, tenant_id: i64, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let feed = self.feed(tenant_id);
        let mut state = feed.state.lock().unwrap_or_else(|p| p.into_inner());
        let event = Arc::new(LiveEvent { seq: state.next_seq, metrics, json: OnceLock::new() });
        state.next_seq += 1;
        state.replay_points += event.metrics.len();
        state.replay.push_back(event.clone());
        while state.replay_points > self.config.replay_points {
            let Some(old) = state.replay.pop_front() else { break };
            state.replay_points -= old.metrics.len();
        }
        // Sent under the lock, so subscribers see batches in sequence order and a new
        // subscriber cannot fall between the replay window and the channel.
        let _no_subscribers_is_fine = feed.sender.send(event.clone());
        let _no_consumers_is_fine = self.persisted.send(Persisted { tenant_id, event });
    }

    /// Announce alert transitions to the tenant's open streams.
    pub fn publish_alerts(&self, notice: AlertNotice) {
        if !notice.events.is_empty() {
            let _no_streams_is_fine = self.alerts.send(Arc::new(notice));
        }
    }

    /// Alert transitions of every tenant from now on (streams keep their tenant's).
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<Arc<AlertNotice>> {
        self.alerts.subscribe()
    }

    /// Every tenant's persisted metrics from now on, for consumers inside the process (the
    /// alert evaluator). A consumer that falls more than a few thousand batches behind gets
    /// `Lagged` and continues with the newest.
    pub fn subscribe_persisted(&self) -> broadcast::Receiver<Persisted> {
        self.persisted.subscribe()
    }

    /// Announce persisted batches, one event per tenant.
    pub fn publish_batches(&self, batches: impl IntoIterator<Item = Batch>) {
        let mut by_tenant: BTreeMap<i64, Vec<Metric>> = BTreeMap::new();
        for batch in batches {
            by_tenant.entry(batch.tenant_id).or_default().extend(batch.metrics);
        }
        for (tenant_id, metrics) in by_tenant {
            self.publish(tenant_id, metrics);
        }
    }

    /// Follow `tenant_id`'s feed after `after` (`None`: from now on).
    pub fn subscribe(&self, tenant_id: i64, after: Option<Cursor>, filter: LiveFilter) -> Subscription {
        let feed = self.feed(tenant_id);
        let state = feed.state.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = feed.sender.subscribe();
        let tail = state.next_seq - 1;
        let oldest_kept = state.next_seq - state.replay.len() as u64;
        let (last_seq, pending, reset) = match after {
            None => (tail, VecDeque::new(), false),
            // Resumable: same process, not from the future, and nothing evicted after it.
            Some(c) if c.epoch == self.epoch && c.seq <= tail && c.seq + 1 >= oldest_kept => {
                let pending = state.replay.iter().filter(|e| e.seq > c.seq).cloned().collect();
                (c.seq, pending, false)
            }
            Some(_) => (tail, VecDeque::new(), true),
        };
        Subscription {
            epoch: self.epoch,
            filter,
            last_seq,
            pending,
            receiver,
            reset,
            max_frame_points: self.config.max_frame_points.max(1),
        }
    }
}

/// One client's view of a tenant's feed.
pub struct Subscription {
    epoch: u64,
    filter: LiveFilter,
    last_seq: u64,
    pending: VecDeque<Arc<LiveEvent>>,
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
    reset: bool,
    max_frame_points: usize,
}

/// Points ready to send: the JSON of a [`microdash_core::api::LiveFrame`].
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Position after the last batch the frame covers.
    pub cursor: Cursor,
    /// Number of points.
    pub count: usize,
    /// `{"points":[...]}`.
    pub json: String,
}

/// The subscriber fell further behind than the hub keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber fell behind the live feed and was dropped")]
pub struct Lagged;

impl Subscription {
    /// Where the subscriber stands.
    pub fn cursor(&self) -> Cursor {
        Cursor { epoch: self.epoch, seq: self.last_seq }
    }

    /// The requested cursor could not be resumed; the subscription starts from now.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// What has arrived and matches the filter, coalesced into one frame, without waiting;
    /// `None` when nothing new matches (the cursor may still have moved on).
    pub fn try_frame(&mut self) -> Result<Option<Frame>, Lagged> {
        let mut parts: Vec<&str> = Vec::new();
        let mut events = Vec::new();
        let mut count = 0;
        let mut last_seq = self.last_seq;
        while count < self.max_frame_points {
            let event = match self.pending.pop_front() {
                Some(event) => event,
                None => match self.receiver.try_recv() {
                    Ok(event) => event,
                    // Nothing taken so far counts: the subscriber is done for.
                    Err(TryRecvError::Lagged(_)) => return Err(Lagged),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                },
            };
            if event.seq <= last_seq {
                continue;
            }
            last_seq = event.seq;
            count += event.metrics.iter().filter(|m| self.filter.matches(m)).count();
            events.push(event);
        }
        self.last_seq = last_seq;
        if count == 0 {
            return Ok(None);
        }
        for event in &events {
            for (metric, json) in event.metrics.iter().zip(event.json()) {
                if self.filter.matches(metric) {
                    parts.push(json);
                }
            }
        }
        let mut json = String::with_capacity(13 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
        json.push_str(r#"{"points":["#);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(part);
        }
        json.push_str("]}");
        Ok(Some(Frame { cursor: self.cursor(), count, json }))
    }

    /// The next frame, waiting for one as long as it takes.
    pub async fn next_frame(&mut self) -> Result<Frame, Lagged> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(frame);
            }
            match self.receiver.recv().await {
                Ok(event) => self.pending.push_back(event),
                Err(RecvError::Lagged(_)) => return Err(Lagged),
                // The hub outlives every subscription; if it is gone, nothing more will come.
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// Where workers announce what they persisted.
#[derive(Clone, Default)]
pub(crate) enum LivePublisher {
    /// Nobody listens (a worker-only process without Redis, or live streaming disabled).
    #[default]
    Off,
    /// The hub in this process.
    Local(Arc<LiveHub>),
    /// Redis Pub/Sub, relayed to the hub of every API process by [`relay_from_redis`].
    Redis(Box<RedisQueue>),
}

impl LivePublisher {
    /// Announce persisted batches. Failures are logged, not returned: the batches are
    /// stored, and the live view is best effort.
    pub(crate) async fn publish(&self, batches: Vec<Batch>) {
        match self {
            LivePublisher::Off => {}
            LivePublisher::Local(hub) => hub.publish_batches(batches),
            LivePublisher::Redis(queue) => {
                if let Err(err) = queue.publish_live(&batches).await {
                    tracing::warn!(error = %err, "publishing persisted batches to the live bus failed");
                }
            }
        }
    }

    /// Announce alert transitions; best effort, like points.
    pub(crate) async fn publish_alerts(&self, notice: AlertNotice) {
        match self {
            LivePublisher::Off => {}
            LivePublisher::Local(hub) => hub.publish_alerts(notice),
            LivePublisher::Redis(queue) => {
                if let Err(err) = queue.publish_alerts(&notice).await {
                    tracing::warn!(error = %err, "publishing alert transitions to the live bus failed");
                }
            }
        }
    }
}

/// Feed `hub` from the Redis live channel until `shutdown`, reconnecting after failures.
pub(crate) async fn relay_from_redis(queue: RedisQueue, hub: Arc<LiveHub>, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    loop {
        let relay = async {
            let mut messages = queue.subscribe_live().await?;
            tracing::info!("relaying the live bus from Redis");
            delay = Duration::from_millis(100);
            while let Some(message) = messages.next().await {
                let payload: Vec<u8> = match message.get_payload() {
                    Ok(payload) => payload,
                    Err(err) => {
                        tracing::warn!(error = %err, "unreadable live bus message");
                        continue;
                    }
                };
                if queue.is_alerts_message(&message) {
                    match serde_json::from_slice::<AlertNotice>(&payload) {
                        Ok(notice) => hub.publish_alerts(notice),
                        Err(err) => tracing::warn!(error = %err, "undecodable alert bus message"),
                    }
                    continue;
                }
                match serde_json::from_slice::<Vec<Batch>>(&payload) {
                    Ok(batches) => hub.publish_batches(batches),
                    Err(err) => tracing::warn!(error = %err, "undecodable live bus message"),
                }
            }
            Ok::<(), crate::queue::QueueError>(())
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = relay => outcome,
        };
        match outcome {
            Ok(()) => tracing::warn!("live bus subscription closed; resubscribing"),
            Err(err) => tracing::warn!(error = %err, "live bus subscription failed; resubscribing"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, agent: Option<&str>, value: f64) -> Metric {
        Metric {
            name: name.into(),
            agent_id: agent.map(Into::into),
            tags: BTreeMap::new(),
            timestamp_ms: 1_700_000_000_000,
            value,
            dedupe_id: None,
        }
    }

    fn values(frame: &Frame) -> Vec<f64> {
        let parsed: microdash_core::api::LiveFrame = serde_json::from_str(&frame.json).unwrap();
        parsed.points.iter().map(|p| p.value).collect()
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor { epoch: 0x18f_abc, seq: 42 };
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in ["", "42", "x-1", "1-", "1-x", "1-2-3"] {
            assert_eq!(bad.parse::<Cursor>(), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn subscribers_see_only_their_tenant_and_filter() {
        let hub = LiveHub::new(LiveConfig::default());
        let mut all = hub.subscribe(1, None, LiveFilter::default());
        let mut web = hub.subscribe(1, None, LiveFilter { agent_id: Some("web".into()), ..LiveFilter::default() });
        let mut other = hub.subscribe(2, None, LiveFilter::default());
        hub.publish(1, vec![metric("cpu", Some("web"), 1.0), metric("cpu", Some("db"), 2.0)]);
        assert_eq!(values(&all.try_frame().unwrap().unwrap()), [1.0, 2.0]);
        assert_eq!(values(&web.try_frame().unwrap().unwrap()), [1.0]);
        assert_eq!(other.try_frame().unwrap(), None);
    }

    #[test]
    fn coalesces_waiting_batches_into_one_frame() {
        let hub = LiveHub::new(LiveConfig::default());
        let mut sub = hub.subscribe(1, None, LiveFilter::default());
        for v in 0..5 {
            hub.publish(1, vec![metric("m", None, f64::from(v))]);
        }
        let frame = sub.try_frame().unwrap().unwrap();
        assert_eq!(values(&frame), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(frame.cursor.seq, 5);
        assert_eq!(sub.try_frame().unwrap(), None);
    }

    #[test]
    fn resumes_from_a_cursor_within_the_window() {
        let hub = LiveHub::new(LiveConfig { replay_points: 3, ..LiveConfig::default() });
        let start = hub.subscribe(1, None, LiveFilter::default()).cursor();
        hub.publish(1, vec![metric("m", None, 1.0)]);
        let after_first = hub.subscribe(1, None, LiveFilter::default()).cursor();
        hub.publish(1, vec![metric("m", None, 2.0)]);
        hub.publish(1, vec![metric("m", None, 3.0)]);

        let mut resumed = hub.subscribe(1, Some(after_first), LiveFilter::default());
        assert!(!resumed.was_reset());
        assert_eq!(values(&resumed.try_frame().unwrap().unwrap()), [2.0, 3.0]);

        let mut from_start = hub.subscribe(1, Some(start), LiveFilter::default());
        assert_eq!(values(&from_start.try_frame().unwrap().unwrap()), [1.0, 2.0, 3.0]);

        // The fourth point evicts the first: a cursor before it can no longer be resumed.
        hub.publish(1, vec![metric("m", None, 4.0)]);
        let mut too_old = hub.subscribe(1, Some(start), LiveFilter::default());
        assert!(too_old.was_reset());
        assert_eq!(too_old.try_frame().unwrap(), None);
        assert!(!hub.subscribe(1, Some(after_first), LiveFilter::default()).was_reset());
    }

    #[test]
    fn cursors_of_another_process_or_the_future_reset() {
        let hub = LiveHub::new(LiveConfig::default());
        let foreign = Cursor { epoch: hub.epoch + 1, seq: 0 };
        assert!(hub.subscribe(1, Some(foreign), LiveFilter::default()).was_reset());
        let future = Cursor { epoch: hub.epoch, seq: 7 };
        assert!(hub.subscribe(1, Some(future), LiveFilter::default()).was_reset());
    }

    #[test]
    fn a_subscriber_that_falls_too_far_behind_is_dropped() {
        let hub = LiveHub::new(LiveConfig { subscriber_backlog_batches: 2, ..LiveConfig::default() });
        let mut slow = hub.subscribe(1, None, LiveFilter::default());
        for v in 0..4 {
            hub.publish(1, vec![metric("m", None, f64::from(v))]);
        }
        assert_eq!(slow.try_frame(), Err(Lagged));
        // Publishing never waited for it, and a fresh subscriber is unaffected.
        let mut fresh = hub.subscribe(1, None, LiveFilter::default());
        hub.publish(1, vec![metric("m", None, 9.0)]);
        assert_eq!(values(&fresh.try_frame().unwrap().unwrap()), [9.0]);
    }

    #[test]
    fn frames_are_capped_and_the_rest_follows() {
        let hub = LiveHub::new(LiveConfig { max_frame_points: 2, ..LiveConfig::default() });
        let mut sub = hub.subscribe(1, None, LiveFilter::default());
        for v in 0..3 {
            hub.publish(1, vec![metric("m", None, f64::from(v))]);
        }
        assert_eq!(values(&sub.try_frame().unwrap().unwrap()), [0.0, 1.0]);
        assert_eq!(values(&sub.try_frame().unwrap().unwrap()), [2.0]);
    }

    #[tokio::test]
    async fn next_frame_waits_for_a_matching_point() {
        let hub = Arc::new(LiveHub::new(LiveConfig::default()));
        let filter = LiveFilter { metric_name: Some("mem".into()), ..LiveFilter::default() };
        let mut sub = hub.subscribe(1, None, filter);
        let publisher = hub.clone();
        tokio::spawn(async move {
            publisher.publish(1, vec![metric("cpu", None, 1.0)]);
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(1, vec![metric("mem", None, 2.0)]);
        });
        let frame = tokio::time::timeout(Duration::from_secs(5), sub.next_frame()).await.unwrap().unwrap();
        assert_eq!(values(&frame), [2.0]);
        assert_eq!(frame.cursor.seq, 2);
    }
}
