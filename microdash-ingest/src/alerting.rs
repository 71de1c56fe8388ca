//! Alert evaluation and notification delivery: the IO around `microdash-alert`'s pure state
//! machine.
//!
//! Exactly one process evaluates at a time: the holder of the `alerts` lease in the store.
//! Every process that runs workers competes for it; the holder renews it every tick, and when
//! it dies another takes over once the lease expires (`lease_ttl`, 10 s by default, plus at
//! most a third of that until the next try). The new holder resumes from the stored
//! instance states and re-reads recent points into its windows, so a firing alert stays
//! firing without a second notification.
//!
//! The leader evaluates as data is persisted (the live hub's persisted feed: the hub of this
//! process, fed from Redis when workers run elsewhere) and on a tick for what time alone
//! changes (`for_s` elapsing, no data). A step that changes anything is written with its
//! history entry and its notifications in one transaction ([`Store::record_alert_steps`]);
//! only then does the in-memory state move on, so a failed write is simply redone at the
//! next evaluation. Notifications are a queue in the store: the leader's sender delivers
//! due ones concurrently, retrying with backoff, and never blocks evaluation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdash_alert::deliver::{Deliverer, MAX_ATTEMPTS, Message, Outcome, retry_delay};
use microdash_alert::matcher::{InstanceKey, SeriesRef, matches};
use microdash_alert::payload::Alert;
use microdash_alert::state::{InstanceState, Observation, Step, step};
use microdash_alert::window::{Origin, SeriesWindow};
use microdash_core::alert::{AlertRule, NamedChannel};
use microdash_core::api::alert::AlertStreamEvent;
use microdash_store::{
    AlertStep, AttemptOutcome, Fence, InstanceRef, NewEvent, NewNotification, NotificationRow, PointQuery, Store,
    StoreError,
};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::live::{AlertNotice, LiveHub, LivePublisher, Persisted};
use crate::telemetry::Telemetry;

/// The lease that makes one process the evaluator.
const LEASE: &str = "alerts";
/// Points stamped further ahead of this process's clock are not evaluated: one point from a
/// badly set clock would otherwise hide every real one behind it. Points ahead by less are
/// evaluated as of now.
const MAX_FUTURE_MS: i64 = 60_000;
/// Most points read back per rule (for a rule of one agent, or the series without an agent)
/// when a process starts evaluating.
const PRELOAD_POINTS: usize = 100_000;
/// Most points read back per agent of a fleet rule.
const PRELOAD_POINTS_PER_AGENT: usize = 10_000;
/// How far back windows are refilled at least, so `last` over a window of 0 has its point.
const PRELOAD_MIN_MS: i64 = 15 * 60_000;
/// Persisted batches handled before the instances they touched are evaluated.
const BURST: usize = 256;
/// Instances whose latest value (and nothing else) changed that one tick writes; the rest
/// follow on later ticks. The value shown in `GET /api/v1/alerts` lags by up to
/// `instances / VALUE_SAVES_PER_TICK` ticks; transitions are written at once.
const VALUE_SAVES_PER_TICK: usize = 100;
/// Idle instances forgotten per tick at most, so one tick's write stays small.
const FORGETS_PER_TICK: usize = 1_000;
/// How much longer than one delivery attempt can take a sender claims a notification for:
/// if the attempt goes unrecorded (the sender died or lost its lease), it is sent again after.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// Alerting settings.
#[derive(Clone)]
pub struct AlertingConfig {
    /// Sends webhooks and email.
    pub deliverer: Deliverer,
    /// How often time-driven changes are evaluated and the lease renewed.
    pub tick: Duration,
    /// How long the lease lasts without renewal: a dead evaluator is replaced after this.
    pub lease_ttl: Duration,
    /// Who this process is, in the lease; unique per process.
    pub holder: String,
    /// The dashboard's public URL, for links in notifications; empty for none.
    pub external_url: String,
    /// Deliveries in flight at once.
    pub max_in_flight: usize,
    /// How long an ok instance whose series sent nothing is kept beyond what its rule looks
    /// back over (window, no-data time, keep-firing time); then it is forgotten, in memory
    /// and in the store, so a fleet that replaces its hosts does not grow the evaluator
    /// without bound. It comes back with the series' next point. One hour by default.
    pub forget_idle_after: Duration,
}

impl AlertingConfig {
    /// Defaults around `deliverer`: a 1 s tick, a 10 s lease, 16 deliveries at once.
    pub fn new(deliverer: Deliverer) -> Self {
        Self {
            deliverer,
            tick: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(10),
            holder: crate::worker::unique_consumer_prefix(),
            external_url: String::new(),
            max_in_flight: 16,
            forget_idle_after: Duration::from_secs(3600),
        }
    }
}

/// Compete for the lease until `shutdown`; evaluate and deliver while holding it.
pub(crate) async fn run_alerting(
    store: Store,
    live: Arc<LiveHub>,
    publisher: LivePublisher,
    telemetry: Arc<Telemetry>,
    config: AlertingConfig,
    shutdown: CancellationToken,
) {
    let mut feed = live.subscribe_persisted();
    let lease_ms = config.lease_ttl.as_millis() as i64;
    loop {
        match take_lease(&store, &config.holder, lease_ms).await {
            Ok(true) => {
                tracing::info!(holder = %config.holder, "evaluating alerts");
                telemetry.record_alert_leader(true);
                lead(&store, &mut feed, &publisher, &telemetry, &config, &shutdown).await;
                telemetry.record_alert_leader(false);
                if shutdown.is_cancelled() {
                    if let Err(err) = store.release_lease(LEASE, &config.holder).await {
                        tracing::warn!(error = %err, "releasing the alert lease failed");
                    }
                    return;
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "trying the alert lease failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.lease_ttl / 3) => {}
        }
        // Another process evaluates: what was persisted meanwhile is its business.
        while !matches!(feed.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
    }
}

/// Take (or renew) the lease for `ttl_ms` by the database's clock, so hosts whose clocks
/// disagree still agree on who holds it.
async fn take_lease(store: &Store, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
    let now = store.clock_ms().await?;
    store.try_lease(LEASE, holder, ttl_ms, now).await
}

/// Evaluate until the lease is lost or `shutdown`.
async fn lead(
    store: &Store,
    feed: &mut broadcast::Receiver<Persisted>,
    publisher: &LivePublisher,
    telemetry: &Arc<Telemetry>,
    config: &AlertingConfig,
    shutdown: &CancellationToken,
) {
    let stop = shutdown.child_token();
    let lease = Lease::new(config.holder.clone(), config.lease_ttl, stop.clone());
    let renewal = tokio::spawn(renew(store.clone(), lease.clone()));
    let wake = Arc::new(Notify::new());
    let sender = tokio::spawn(run_sender(
        store.clone(),
        config.deliverer.clone(),
        telemetry.clone(),
        wake.clone(),
        config.max_in_flight,
        lease.clone(),
    ));
    let mut engine = Engine::new(config.external_url.clone(), config.forget_idle_after, lease);
    let mut ticks = tokio::time::interval(config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {
                let now = now_ms();
                if let Err(err) = engine.refresh(store, now).await {
                    tracing::warn!(error = %err, "reading alert rules failed");
                    continue;
                }
                engine.mark_all();
                engine.evaluate(store, publisher, telemetry, &wake, now, true).await;
                engine.forget_idle(store, now).await;
            }
            received = feed.recv() => {
                if !engine.loaded() {
                    continue;
                }
                match received {
                    Ok(persisted) => engine.observe(&persisted),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the alert evaluator fell behind the persisted feed");
                    }
                    Err(RecvError::Closed) => break,
                }
                for _ in 0..BURST {
                    match feed.try_recv() {
                        Ok(persisted) => engine.observe(&persisted),
                        Err(TryRecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "the alert evaluator fell behind the persisted feed");
                        }
                        Err(_) => break,
                    }
                }
                engine.evaluate(store, publisher, telemetry, &wake, now_ms(), false).await;
            }
        }
    }
    stop.cancel();
    for (task, what) in [(sender, "the notification sender"), (renewal, "the lease renewal")] {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "{what} failed");
        }
    }
}

/// This process's hold on the lease, shared by the tasks that act on it.
#[derive(Clone)]
struct Lease {
    holder: Arc<str>,
    /// When it was last renewed, in milliseconds after `base` (a monotonic clock: a wall
    /// clock stepping back must not make an old renewal look fresh).
    renewed_ms: Arc<std::sync::atomic::AtomicU64>,
    base: Instant,
    ttl_ms: i64,
    /// Cancelled when the lease is lost: everything leading stops.
    lost: CancellationToken,
}

impl Lease {
    fn new(holder: String, ttl: Duration, lost: CancellationToken) -> Self {
        Self {
            holder: holder.into(),
            renewed_ms: Arc::new(0.into()),
            base: Instant::now(),
            ttl_ms: ttl.as_millis() as i64,
            lost,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Whether it is surely still ours: renewed within half its length. Writes and sends
    /// check this first, so a leader that stalled (a slow write, a hung publish) does not
    /// even try to act after another may have taken over; the store's fence
    /// ([`Lease::fence`]) refuses what slips past this check.
    fn held(&self) -> bool {
        let since = self.elapsed_ms().saturating_sub(self.renewed_ms.load(std::sync::atomic::Ordering::Relaxed));
        !self.lost.is_cancelled() && (since as i64) < self.ttl_ms / 2
    }

    /// What the store checks, in the same transaction, before a write or a claim.
    fn fence(&self) -> Fence<'_> {
        Fence { lease: LEASE, holder: &self.holder }
    }

    /// After a store error: a refused fence means another process leads now.
    fn check(&self, err: &StoreError) {
        if err.is_lease_lost() {
            tracing::warn!("the alert lease was taken over; no longer evaluating");
            self.lost.cancel();
        }
    }
}

/// Renew the lease every quarter of its length, on a task of its own so no evaluation work
/// can delay it; stop leading (cancel `lease.lost`) when it is lost or cannot be renewed in
/// time.
async fn renew(store: Store, lease: Lease) {
    let period = Duration::from_millis((lease.ttl_ms / 4).max(10) as u64);
    loop {
        tokio::select! {
            () = lease.lost.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let attempt = lease.elapsed_ms();
        match take_lease(&store, &lease.holder, lease.ttl_ms).await {
            Ok(true) => lease.renewed_ms.store(attempt, std::sync::atomic::Ordering::Relaxed),
            Ok(false) => {
                tracing::warn!("the alert lease was taken over; no longer evaluating");
                lease.lost.cancel();
                return;
            }
            Err(err) if lease.held() => {
                tracing::warn!(error = %err, "renewing the alert lease failed; trying again");
            }
            Err(err) => {
                tracing::warn!(error = %err, "the alert lease could not be renewed; no longer evaluating");
                lease.lost.cancel();
                return;
            }
        }
    }
}

/// A rule as the evaluator holds it.
struct RuleEntry {
    tenant_id: i64,
    rule: AlertRule,
}

/// One alert instance: a rule and one series it matches.
struct Instance {
    tenant_id: i64,
    window: SeriesWindow,
    state: InstanceState,
    /// `state.value` changed since the state was last written.
    value_unsaved: bool,
    /// The latest of the series' latest point and when the instance was made, Unix ms: what
    /// forgetting an idle instance goes by.
    active_ms: i64,
}

impl Instance {
    fn new(tenant_id: i64, rule: &AlertRule, state: InstanceState, now: i64) -> Self {
        Self { tenant_id, window: SeriesWindow::new(rule.window_s), state, value_unsaved: false, active_ms: now }
    }

    fn push(&mut self, timestamp_ms: i64, value: f64, origin: Origin) {
        self.window.push(timestamp_ms, value, origin);
        self.active_ms = self.active_ms.max(timestamp_ms);
    }

    /// Whether it can be forgotten at `now`: ok or without data (not alerting), and its
    /// series silent for longer than the rule looks back over plus `grace_ms`.
    fn idle(&self, rule: &AlertRule, now: i64, grace_ms: i64) -> bool {
        use microdash_core::api::alert::AlertState;
        let lookback_s = rule.window_s.max(rule.no_data_s).max(rule.keep_firing_for_s);
        matches!(self.state.state, AlertState::Ok | AlertState::NoData)
            && now - self.active_ms > i64::from(lookback_s) * 1000 + grace_ms
    }
}

type InstanceId = (i64, InstanceKey);

/// Rules, instances and their windows, in memory while this process leads.
struct Engine {
    external_url: String,
    /// [`AlertingConfig::forget_idle_after`], in ms.
    forget_idle_ms: i64,
    lease: Lease,
    revision: Option<i64>,
    rules: HashMap<i64, RuleEntry>,
    by_metric: HashMap<(i64, String), Vec<i64>>,
    tenants: HashMap<i64, String>,
    instances: HashMap<InstanceId, Instance>,
    dirty: HashSet<InstanceId>,
    /// Instances of rules that changed what they watch, with the rule as it was: resolved (if
    /// alerting) at the next evaluation, then forgotten.
    retired: Vec<(InstanceId, Instance, AlertRule)>,
}

impl Engine {
    fn new(external_url: String, forget_idle_after: Duration, lease: Lease) -> Self {
        Self {
            external_url,
            forget_idle_ms: forget_idle_after.as_millis() as i64,
            lease,
            revision: None,
            rules: HashMap::new(),
            by_metric: HashMap::new(),
            tenants: HashMap::new(),
            instances: HashMap::new(),
            dirty: HashSet::new(),
            retired: Vec::new(),
        }
    }

    fn loaded(&self) -> bool {
        self.revision.is_some()
    }

    /// Load the rules when they changed (or first). Everything is read before anything
    /// changes, so a store error leaves the engine as it was and the next tick tries again.
    /// Then: instances of removed rules go; instances of a rule whose watch changed (metric,
    /// agent, tags, window, aggregate) are retired, resolved first if they were alerting, and
    /// the rule starts afresh; stored states are resumed on the first load; the windows of
    /// new and restarted rules are refilled from recent points.
    async fn refresh(&mut self, store: &Store, now: i64) -> Result<(), StoreError> {
        let revision = store.alert_rules_revision().await?;
        if self.revision == Some(revision) {
            return Ok(());
        }
        let stored = store.all_alert_rules().await?;
        let tenants: HashMap<i64, String> = store.list_tenants().await?.into_iter().map(|t| (t.id, t.slug)).collect();
        let resumed = match self.revision {
            None => store.all_alert_instances().await?,
            Some(_) => Vec::new(),
        };
        let fresh: Vec<i64> = stored
            .iter()
            .filter(|s| self.rules.get(&s.id).is_none_or(|old| !same_watch(&old.rule, &s.rule)))
            .map(|s| s.id)
            .collect();
        let mut preloaded = Vec::new();
        for rule in stored.iter().filter(|s| fresh.contains(&s.id)) {
            preloaded.push((rule.id, rule.tenant_id, preload_points(store, rule.tenant_id, &rule.rule, now).await?));
        }

        // Everything is read: apply.
        let old_rules = std::mem::take(&mut self.rules);
        self.tenants = tenants;
        self.by_metric.clear();
        for rule in stored {
            self.by_metric.entry((rule.tenant_id, rule.rule.metric_name.clone())).or_default().push(rule.id);
            self.rules.insert(rule.id, RuleEntry { tenant_id: rule.tenant_id, rule: rule.rule });
        }
        let instances = std::mem::take(&mut self.instances);
        for (id, instance) in instances {
            match (self.rules.get(&id.0), old_rules.get(&id.0)) {
                (Some(_), _) if !fresh.contains(&id.0) => {
                    self.instances.insert(id, instance);
                }
                // Its rule changed what it watches: resolve what it reported under the old one.
                (Some(_), Some(old)) => self.retired.push((id, instance, old.rule.clone())),
                // Its rule is gone, and the store removed its state with it.
                _ => {}
            }
        }
        for row in resumed {
            let Some(entry) = self.rules.get(&row.rule_id) else { continue };
            let state = match serde_json::from_str::<InstanceState>(&row.state_json) {
                Ok(state) => state,
                Err(err) => {
                    tracing::warn!(rule_id = row.rule_id, error = %err, "unreadable alert state; starting from ok");
                    InstanceState::new(now)
                }
            };
            let key = InstanceKey { agent_id: row.agent_id, tags: row.tags };
            let series =
                SeriesRef { metric_name: &entry.rule.metric_name, agent_id: key.agent_id.as_deref(), tags: &key.tags };
            let instance = Instance::new(row.tenant_id, &entry.rule, state, now);
            if matches(&entry.rule, series) {
                self.instances.insert((row.rule_id, key), instance);
            } else {
                // Stored under a rule since changed to watch other series.
                let rule = entry.rule.clone();
                self.retired.push(((row.rule_id, key), instance, rule));
            }
        }
        for (rule_id, tenant_id, points) in preloaded {
            let Some(rule) = self.rules.get(&rule_id).map(|e| e.rule.clone()) else { continue };
            for point in points {
                let series = SeriesRef {
                    metric_name: &point.metric_name,
                    agent_id: point.agent_id.as_deref(),
                    tags: &point.tags,
                };
                if !matches(&rule, series) || point.timestamp_ms > now + MAX_FUTURE_MS {
                    continue;
                }
                // A clock a little ahead counts as now, so the point is evaluated at once.
                let timestamp_ms = point.timestamp_ms.min(now);
                let instance = self
                    .instances
                    .entry((rule_id, InstanceKey::from(series)))
                    .or_insert_with(|| Instance::new(tenant_id, &rule, InstanceState::new(now), now));
                instance.push(timestamp_ms, point.value, Origin::ReadBack);
            }
        }
        self.revision = Some(revision);
        self.mark_all();
        Ok(())
    }

    /// Feed just-persisted metrics into the windows of the instances they belong to.
    fn observe(&mut self, persisted: &Persisted) {
        let now = now_ms();
        for metric in persisted.metrics() {
            if metric.timestamp_ms > now + MAX_FUTURE_MS {
                continue;
            }
            // A clock a little ahead counts as now: otherwise a `last` over no window would
            // hold only that future point and see nothing until the clock caught up.
            let timestamp_ms = metric.timestamp_ms.min(now);
            let origin = if metric.dedupe_id.is_some() { Origin::Identified } else { Origin::Anonymous };
            let Some(rule_ids) = self.by_metric.get(&(persisted.tenant_id, metric.name.clone())) else { continue };
            for rule_id in rule_ids {
                let Some(entry) = self.rules.get(rule_id) else { continue };
                let series = SeriesRef::from(metric);
                if !matches(&entry.rule, series) {
                    continue;
                }
                let id = (*rule_id, InstanceKey::from(series));
                let instance = self
                    .instances
                    .entry(id.clone())
                    .or_insert_with(|| Instance::new(persisted.tenant_id, &entry.rule, InstanceState::new(now), now));
                instance.push(timestamp_ms, metric.value, origin);
                self.dirty.insert(id);
            }
        }
    }

    fn mark_all(&mut self) {
        self.dirty.extend(self.instances.keys().cloned());
    }

    /// Step every dirty instance; write the steps that change something (and, on a tick,
    /// the latest values) in one transaction, then move the in-memory states on.
    async fn evaluate(
        &mut self,
        store: &Store,
        publisher: &LivePublisher,
        telemetry: &Telemetry,
        wake: &Notify,
        now: i64,
        tick: bool,
    ) {
        let retired = std::mem::take(&mut self.retired);
        let mut changed: Vec<Change> = Vec::new();
        // Retired instances first, so that a new instance of the same series, written later in
        // the same transaction, has the last word. They resolve under the rule as it was (its
        // name, metric and channels), which is what they reported under.
        for (id, instance, old) in &retired {
            if !self.rules.contains_key(&id.0) {
                continue;
            }
            let disabled = AlertRule { enabled: false, ..old.clone() };
            let next = step(&disabled, &instance.state, Observation::default(), now);
            if next.transition.is_some() || next.notify.is_some() {
                changed.push(Change { id: id.clone(), step: next, retired: Some(old.clone()) });
            }
        }
        let mut value_saves = 0;
        for id in self.dirty.drain() {
            let (Some(entry), Some(instance)) = (self.rules.get(&id.0), self.instances.get_mut(&id)) else { continue };
            let observation = instance.window.observe(&entry.rule, now);
            let next = step(&entry.rule, &instance.state, observation, now);
            let moved =
                next.transition.is_some() || next.notify.is_some() || !same_but_value(&next.next, &instance.state);
            let value_changed = next.next.value != instance.state.value;
            // Latest values are saved a few at a time on ticks, so that a big fleet's values
            // never hold a breach's evaluation up behind one large write.
            let save_value = tick && (instance.value_unsaved || value_changed) && value_saves < VALUE_SAVES_PER_TICK;
            if moved || save_value {
                value_saves += usize::from(!moved);
                changed.push(Change { id, step: next, retired: None });
            } else {
                instance.value_unsaved |= value_changed;
                instance.state = next.next;
            }
        }
        if changed.is_empty() {
            self.forget_retired(store, &retired).await;
            return;
        }
        let mut steps = Vec::with_capacity(changed.len());
        // Many instances of one rule often fire together: read each channel once per evaluation.
        let mut channels = HashMap::new();
        for change in &changed {
            match self.record(store, &mut channels, change).await {
                Ok(record) => steps.push(record),
                Err(err) => {
                    tracing::warn!(error = %err, "preparing alert notifications failed; evaluating again");
                    self.retry_later(changed, retired);
                    return;
                }
            }
        }
        if !self.lease.held() {
            // Possibly no longer ours: write nothing; the next leader evaluates these again.
            self.retry_later(changed, retired);
            return;
        }
        let borrowed: Vec<AlertStep<'_>> = steps.iter().map(StepRecord::borrow).collect();
        match store.record_alert_steps(self.lease.fence(), &borrowed).await {
            Ok(recorded) => {
                // A step of a rule deleted meanwhile stored nothing: it is neither announced
                // nor applied (the next refresh drops its instance).
                let changed: Vec<Change> =
                    changed.into_iter().zip(recorded).filter_map(|(change, queued)| queued.map(|_| change)).collect();
                let transitions = changed.iter().filter(|c| c.step.transition.is_some()).count();
                let notified = changed.iter().any(|c| c.step.notify.is_some());
                telemetry.record_alert_transitions(transitions as u64);
                for notice in self.notices(&changed) {
                    publisher.publish_alerts(notice).await;
                }
                for change in changed {
                    // A retired step's state is the old rule's: never a live instance's.
                    if change.retired.is_none()
                        && let Some(instance) = self.instances.get_mut(&change.id)
                    {
                        instance.state = change.step.next;
                        instance.value_unsaved = false;
                    }
                }
                if notified {
                    wake.notify_one();
                }
                self.forget_retired(store, &retired).await;
            }
            Err(err) => {
                // Nothing moved on: the same steps are taken again at the next evaluation.
                tracing::warn!(error = %err, "recording alert steps failed; evaluating again");
                self.lease.check(&err);
                self.retry_later(changed, retired);
            }
        }
    }

    /// After a failed evaluation: evaluate the same instances again next time, and keep the
    /// retired ones until their resolve is written.
    fn retry_later(&mut self, changed: Vec<Change>, retired: Vec<(InstanceId, Instance, AlertRule)>) {
        self.dirty.extend(changed.into_iter().filter(|c| c.retired.is_none()).map(|c| c.id));
        let mut retired = retired;
        retired.append(&mut self.retired);
        self.retired = retired;
    }

    /// Delete the stored rows of retired instances that no live instance took over (their
    /// series no longer matches the rule): resolved, they would only linger as `ok`.
    async fn forget_retired(&self, store: &Store, retired: &[(InstanceId, Instance, AlertRule)]) {
        let refs: Vec<InstanceRef<'_>> = retired
            .iter()
            .filter(|(id, _, _)| !self.instances.contains_key(id))
            .map(|((rule_id, key), _, _)| InstanceRef {
                rule_id: *rule_id,
                agent_id: key.agent_id.as_deref(),
                tags: &key.tags,
            })
            .collect();
        if refs.is_empty() {
            return;
        }
        if let Err(err) = store.forget_alert_instances(self.lease.fence(), &refs).await {
            tracing::warn!(error = %err, "deleting retired alert instances failed");
            self.lease.check(&err);
        }
    }

    /// Forget instances that have been ok (or without data) and silent for long (at most [`FORGETS_PER_TICK`]
    /// at a time): their stored state first, then their memory.
    async fn forget_idle(&mut self, store: &Store, now: i64) {
        let idle: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(id, instance)| {
                self.rules.get(&id.0).is_some_and(|e| instance.idle(&e.rule, now, self.forget_idle_ms))
            })
            .map(|(id, _)| id.clone())
            .take(FORGETS_PER_TICK)
            .collect();
        if idle.is_empty() || !self.lease.held() {
            return;
        }
        let refs: Vec<InstanceRef<'_>> = idle
            .iter()
            .map(|(rule_id, key)| InstanceRef { rule_id: *rule_id, agent_id: key.agent_id.as_deref(), tags: &key.tags })
            .collect();
        match store.forget_alert_instances(self.lease.fence(), &refs).await {
            Ok(_) => {
                tracing::debug!(forgotten = idle.len(), "forgot idle alert instances");
                for id in &idle {
                    self.instances.remove(id);
                    self.dirty.remove(id);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "forgetting idle alert instances failed; trying again");
                self.lease.check(&err);
            }
        }
    }

    /// The transitions among `changed`, per tenant, as the live streams announce them.
    fn notices(&self, changed: &[Change]) -> Vec<AlertNotice> {
        let mut by_tenant: HashMap<i64, Vec<AlertStreamEvent>> = HashMap::new();
        for change in changed {
            let (rule_id, key) = &change.id;
            let (Some(transition), Some(entry)) = (change.step.transition, self.rules.get(rule_id)) else { continue };
            let name = change.retired.as_ref().map_or(&entry.rule.name, |old| &old.name);
            let alert = change.step.next.to_out(*rule_id, name, key);
            by_tenant.entry(entry.tenant_id).or_default().push(AlertStreamEvent { alert, from: transition.from });
        }
        by_tenant.into_iter().map(|(tenant_id, events)| AlertNotice { tenant_id, events }).collect()
    }

    /// The row-to-be of one step, with its notifications rendered for each channel.
    async fn record(
        &self,
        store: &Store,
        channels: &mut HashMap<(i64, i64), Option<NamedChannel>>,
        change: &Change,
    ) -> Result<StepRecord, StoreError> {
        let (id, step) = (&change.id, &change.step);
        let (rule_id, key) = id;
        let entry = &self.rules[rule_id];
        // A retired instance reports under the rule as it was.
        let rule = change.retired.as_ref().unwrap_or(&entry.rule);
        let tenant_id = self.instances.get(id).map_or(entry.tenant_id, |i| i.tenant_id);
        let tenant = self.tenants.get(&tenant_id).cloned().unwrap_or_default();
        let mut notifications = Vec::new();
        if let Some(notify) = &step.notify {
            let alert = Alert {
                tenant: &tenant,
                rule_id: *rule_id,
                rule,
                instance: key,
                notify,
                external_url: &self.external_url,
            };
            for channel_id in &rule.channels {
                let channel = match channels.get(&(tenant_id, *channel_id)) {
                    Some(channel) => channel.clone(),
                    None => {
                        let channel = store.channel(tenant_id, *channel_id).await?.map(|c| c.channel);
                        channels.insert((tenant_id, *channel_id), channel.clone());
                        channel
                    }
                };
                // A channel deleted since the rule was written is skipped.
                let Some(channel) = channel else { continue };
                let message = Message::for_channel(&channel, &alert);
                notifications.push(NewNotification {
                    channel_id: *channel_id,
                    rule_id: Some(*rule_id),
                    agent_id: key.agent_id.clone(),
                    kind: notify.kind,
                    payload: serde_json::to_string(&message).unwrap_or_default(),
                });
            }
        }
        Ok(StepRecord {
            tenant_id,
            rule_id: *rule_id,
            rule_name: rule.name.clone(),
            key: key.clone(),
            state: step.next.clone(),
            state_json: serde_json::to_string(&step.next).unwrap_or_default(),
            event: step.transition.map(|t| NewEvent {
                from: t.from,
                to: t.to,
                severity: t.severity,
                value: t.value,
                at_ms: t.at_ms,
            }),
            notifications,
        })
    }
}

/// One instance's step to write.
struct Change {
    id: InstanceId,
    step: Step,
    /// For a retired instance, the rule as it was when the instance reported under it.
    retired: Option<AlertRule>,
}

/// Whether `a` and `b` watch the same series the same way: if not, instances start afresh.
fn same_watch(a: &AlertRule, b: &AlertRule) -> bool {
    (&a.metric_name, &a.agent_id, &a.tags, a.window_s, a.aggregate)
        == (&b.metric_name, &b.agent_id, &b.tags, b.window_s, b.aggregate)
}

/// The recent points a rule's windows are refilled from when it starts being evaluated:
/// read agent by agent, so that a busy agent cannot crowd the others out of the bound (and
/// leave them looking silent), plus the series without an agent in one query.
async fn preload_points(
    store: &Store,
    tenant_id: i64,
    rule: &AlertRule,
    now: i64,
) -> Result<Vec<microdash_store::StoredPoint>, StoreError> {
    let span_ms = i64::from(rule.window_s.max(rule.no_data_s)) * 1000;
    let query = |agent_id: Option<String>, limit: usize| PointQuery {
        metric_name: Some(rule.metric_name.clone()),
        agent_id,
        start_ms: Some(now - span_ms.max(PRELOAD_MIN_MS)),
        end_ms: Some(now + MAX_FUTURE_MS),
        limit,
    };
    if rule.agent_id.is_some() {
        return store.query_points(tenant_id, &query(rule.agent_id.clone(), PRELOAD_POINTS)).await;
    }
    let series = store.list_series(tenant_id).await?;
    let watched: Vec<_> = series
        .iter()
        .filter(|s| {
            matches(rule, SeriesRef { metric_name: &s.metric_name, agent_id: s.agent_id.as_deref(), tags: &s.tags })
        })
        .collect();
    let mut agents: Vec<&str> = watched.iter().filter_map(|s| s.agent_id.as_deref()).collect();
    agents.sort_unstable();
    agents.dedup();
    let mut points = Vec::new();
    for agent in agents {
        points.extend(store.query_points(tenant_id, &query(Some(agent.to_owned()), PRELOAD_POINTS_PER_AGENT)).await?);
    }
    if watched.iter().any(|s| s.agent_id.is_none()) {
        // Every agent's points come along too; windows ignore the ones they already hold.
        points.extend(store.query_points(tenant_id, &query(None, PRELOAD_POINTS)).await?);
    }
    Ok(points)
}

/// Whether two states differ only in the latest value (which is saved on ticks, not on
/// every point).
fn same_but_value(a: &InstanceState, b: &InstanceState) -> bool {
    InstanceState { value: None, ..a.clone() } == InstanceState { value: None, ..b.clone() }
}

/// An owned [`AlertStep`].
struct StepRecord {
    tenant_id: i64,
    rule_id: i64,
    rule_name: String,
    key: InstanceKey,
    state: InstanceState,
    state_json: String,
    event: Option<NewEvent>,
    notifications: Vec<NewNotification>,
}

impl StepRecord {
    fn borrow(&self) -> AlertStep<'_> {
        AlertStep {
            tenant_id: self.tenant_id,
            rule_id: self.rule_id,
            rule_name: &self.rule_name,
            agent_id: self.key.agent_id.as_deref(),
            tags: &self.key.tags,
            state: self.state.state,
            severity: self.state.severity,
            since_ms: self.state.since_ms,
            value: self.state.value,
            state_json: &self.state_json,
            event: self.event,
            notifications: self.notifications.clone(),
            now_ms: now_ms(),
        }
    }
}

/// Deliver due notifications until the lease is lost or given up, at most `max_in_flight`
/// at once; woken early when the evaluator queued some. Each is claimed in the store first
/// (fenced by the lease), so it is never taken twice while being sent, and one whose attempt
/// went unrecorded is sent again once its claim runs out.
async fn run_sender(
    store: Store,
    deliverer: Deliverer,
    telemetry: Arc<Telemetry>,
    wake: Arc<Notify>,
    max_in_flight: usize,
    lease: Lease,
) {
    let max_in_flight = max_in_flight.max(1);
    let claim_ms = (deliverer.timeout() + CLAIM_MARGIN).as_millis() as i64;
    let mut tasks = tokio::task::JoinSet::new();
    // What is being sent, by task: never claimed again while its send is under way, even if
    // its claim ran out (a slow store), so this sender never sends one notification twice.
    let mut sending: HashMap<tokio::task::Id, i64> = HashMap::new();
    loop {
        let free = max_in_flight - tasks.len();
        if free > 0 && lease.held() {
            let busy: Vec<i64> = sending.values().copied().collect();
            match store.claim_due_notifications(lease.fence(), now_ms(), free, claim_ms, &busy).await {
                Ok(rows) => {
                    for row in rows {
                        let id = row.id;
                        let task = tasks.spawn(deliver(store.clone(), deliverer.clone(), telemetry.clone(), row));
                        sending.insert(task.id(), id);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "claiming due notifications failed");
                    lease.check(&err);
                }
            }
        }
        tokio::select! {
            () = lease.lost.cancelled() => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match done {
                    Ok((task, ())) => task,
                    Err(err) => {
                        tracing::error!(error = %err, "a notification delivery failed");
                        err.id()
                    }
                };
                sending.remove(&task);
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    // Deliveries under way finish (each is bounded by the delivery timeout).
    while tasks.join_next().await.is_some() {}
}

/// One attempt at one notification, recorded in the delivery log. If it cannot be recorded,
/// the notification is sent again when its claim runs out.
async fn deliver(store: Store, deliverer: Deliverer, telemetry: Arc<Telemetry>, row: NotificationRow) {
    let channel = match store.channel(row.tenant_id, row.channel_id).await {
        Ok(channel) => channel,
        Err(err) => {
            tracing::warn!(error = %err, notification = row.id, "reading a notification's channel failed");
            return;
        }
    };
    let (kind, outcome) = match (channel, serde_json::from_str::<Message>(&row.payload)) {
        (None, _) => ("unknown", AttemptOutcome::Failed { error: "the channel was deleted".into(), http_status: None }),
        (Some(_), Err(err)) => {
            ("unknown", AttemptOutcome::Failed { error: format!("unreadable notification: {err}"), http_status: None })
        }
        (Some(channel), Ok(message)) => {
            let channel = channel.channel.channel;
            let attempt = deliverer.send(&channel, &message).await;
            let attempts = row.attempts + 1;
            let outcome = match attempt.outcome {
                Outcome::Sent => AttemptOutcome::Sent { http_status: attempt.http_status },
                Outcome::Retry if attempts < MAX_ATTEMPTS => {
                    // At least the backoff, longer when the receiver asked for it.
                    let delay = attempt.retry_in(attempts).unwrap_or_else(|| retry_delay(attempts));
                    AttemptOutcome::Retry {
                        error: attempt.error.unwrap_or_default(),
                        http_status: attempt.http_status,
                        next_attempt_ms: now_ms() + delay.as_millis() as i64,
                    }
                }
                Outcome::Retry | Outcome::Failed => AttemptOutcome::Failed {
                    error: attempt.error.unwrap_or_else(|| "delivery failed".into()),
                    http_status: attempt.http_status,
                },
            };
            (channel_kind(&channel), outcome)
        }
    };
    let word = match &outcome {
        AttemptOutcome::Sent { .. } => "sent",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::Failed { .. } => "failed",
    };
    telemetry.record_notification_attempt(kind, word);
    match &outcome {
        AttemptOutcome::Sent { .. } => {
            tracing::info!(notification = row.id, channel = row.channel_id, kind = ?row.kind, "notification sent");
        }
        AttemptOutcome::Retry { error, http_status, .. } | AttemptOutcome::Failed { error, http_status } => {
            tracing::warn!(notification = row.id, channel = row.channel_id, status = ?http_status, %error, outcome = word, "notification not delivered");
        }
    }
    match store.record_attempt(row.id, row.next_attempt_ms, &outcome, now_ms()).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            notification = row.id,
            "the claim on a notification ran out while it was sent; the attempt was not recorded"
        ),
        Err(err) => {
            tracing::warn!(error = %err, notification = row.id, "recording a delivery attempt failed; it will be sent again");
        }
    }
}

/// The label of a channel's kind in `/metrics`.
fn channel_kind(channel: &microdash_core::alert::Channel) -> &'static str {
    match channel {
        microdash_core::alert::Channel::Webhook { .. } => "webhook",
        microdash_core::alert::Channel::Email { .. } => "email",
    }
}
