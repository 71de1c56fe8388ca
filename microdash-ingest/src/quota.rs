//! Per-tenant quotas, enforced in the [`crate::Ingestor`] where every source's metrics meet
//! (HTTP, the MQTT bridge, the embedded MQTT endpoint, an embedder's own): an ingest rate
//! (`max_ingest_metrics_per_s`, a token bucket per tenant) and a number of distinct series
//! (`max_series`).
//!
//! Both are decided before a metric is accepted, so nothing refused is ever queued and
//! nothing accepted is taken back:
//!
//! - Rate: a GCRA bucket (`governor`) per tenant that refills at the tenant's rate and holds
//!   one second of it, but never less than one request's worth (`max_metrics_per_request`),
//!   so every request the server takes at all can pass once the bucket is full. A batch takes
//!   as many tokens as it has metrics, all or none.
//! - Series: the workers create series only after the `202`, so each process keeps the set of
//!   the tenant's series it knows of (64-bit keyed hashes of name, agent and tags): read from
//!   the store on first use, topped up every [`QuotaConfig::refresh`] with the series created
//!   since (by any process), and added to as this process accepts new ones. A series counts
//!   from the moment a batch naming it is admitted (reserved), and stops counting again if
//!   that batch is not queued after all, unless another accepted batch named it too.
//!
//! Precision: in one process (the all-in-one server) the series limit is exact, short of a
//! collision of two 64-bit hashes (which would let one series in uncounted). With several
//! processes taking metrics for one tenant (API servers, bridges), each also knows the series
//! the others created up to its last refresh, so the tenant can exceed its limit by the new
//! series the other processes accepted within one refresh interval. The rate is per process.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as Gcra, RateLimiter};
use microdash_core::Metric;
use microdash_core::quota::{MAX_INGEST_METRICS_PER_S, MAX_SERIES, Quota};
use microdash_store::Store;

/// Series a tenant may have unless it has a setting of its own (see README, "Quotas").
pub const DEFAULT_MAX_SERIES: u64 = 100_000;
/// Series read from the store per query.
const SERIES_PAGE: usize = 10_000;
/// Series ids re-read at every refresh below the highest one read: on MariaDB a series with
/// a lower id can commit after one with a higher id, and would otherwise never be read.
const REREAD_IDS: i64 = 1_000;

/// Quota settings of a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// What a tenant gets unless it has its own settings; `0` is unlimited.
    pub defaults: Quota,
    /// How often a tenant's settings, and the series other processes created, are read
    /// again from the store. Also the `Retry-After` of a refusal for the series limit: the
    /// soonest a raised limit is seen everywhere.
    pub refresh: Duration,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            defaults: Quota { max_ingest_metrics_per_s: 0, max_series: DEFAULT_MAX_SERIES },
            refresh: Duration::from_secs(10),
        }
    }
}

/// Why a tenant's metrics were refused for its quota. Nothing of the refused batch is queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The batch does not fit in the tenant's rate now.
    #[error(
        "tenant {tenant} is over its max_ingest_metrics_per_s ({limit} metrics/s, bursts of up to {burst}): \
         {wanted} metrics fit in {:.1} s",
        retry_after.as_secs_f64()
    )]
    Rate {
        /// The tenant's slug.
        tenant: String,
        /// Its rate, metrics a second.
        limit: u64,
        /// The most metrics its bucket holds.
        burst: u32,
        /// Metrics in the refused batch.
        wanted: usize,
        /// When they would fit.
        retry_after: Duration,
    },
    /// The batch names new series beyond the tenant's series limit.
    #[error(
        "tenant {tenant} is at its max_series ({limit}): this would add {new} new series to the {known} it has; \
         metrics of existing series are still accepted"
    )]
    Series {
        /// The tenant's slug.
        tenant: String,
        /// Its series limit.
        limit: u64,
        /// Series it has (or has batches accepted for).
        known: u64,
        /// New series the refused batch names.
        new: usize,
        /// When a raised limit would be seen.
        retry_after: Duration,
    },
}

impl QuotaError {
    /// The limit's name, as configuration and the API spell it.
    pub fn limit(&self) -> &'static str {
        match self {
            QuotaError::Rate { .. } => MAX_INGEST_METRICS_PER_S,
            QuotaError::Series { .. } => MAX_SERIES,
        }
    }

    /// How long the client should wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            QuotaError::Rate { retry_after, .. } | QuotaError::Series { retry_after, .. } => *retry_after,
        }
    }

    /// The tenant's slug.
    pub fn tenant(&self) -> &str {
        match self {
            QuotaError::Rate { tenant, .. } | QuotaError::Series { tenant, .. } => tenant,
        }
    }
}

/// How a batch is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    /// Refuse only the metrics of new series beyond the limit, rather than the whole batch
    /// (MQTT answers each publish on its own).
    pub(crate) each: bool,
    /// Take tokens from the rate bucket. Off only for what a source already took from a
    /// broker and can no longer give back (the bridge, at shutdown).
    pub(crate) metered: bool,
}

/// What [`Quotas::admit`] let through: hold it until the batch is queued, then
/// [`Admission::confirm`]; dropping it instead takes its new series back.
pub(crate) struct Admission {
    reservation: Option<Reservation>,
    /// Indices of the metrics refused for the series limit (only in `each` mode).
    pub(crate) refused: Vec<usize>,
}

impl Admission {
    /// The batch was queued: its new series now count for good.
    pub(crate) fn confirm(mut self) {
        if let Some(mut reservation) = self.reservation.take() {
            reservation.confirm();
        }
    }
}

/// governor's clock on tokio's, so tests pause and advance it like every other timer.
#[derive(Debug, Clone)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A tenant's token bucket.
struct Bucket {
    per_s: u64,
    burst: u32,
    clock: TokioClock,
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>,
}

impl Bucket {
    /// A full bucket refilling `per_s` tokens a second, holding a second's worth but at
    /// least `min_burst`.
    fn new(per_s: u64, min_burst: u32, clock: TokioClock) -> Bucket {
        // Settings are at most `MAX_QUOTA`, which fits.
        let rate = NonZeroU32::new(u32::try_from(per_s).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.max(NonZeroU32::new(min_burst).unwrap_or(NonZeroU32::MIN));
        let quota = Gcra::per_second(rate).allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        Bucket { per_s, burst: burst.get(), clock, limiter }
    }

    /// Take `wanted` tokens, all or none; when they do not fit, how long until they would.
    fn take(&self, wanted: usize) -> Result<(), Duration> {
        let n = NonZeroU32::new(u32::try_from(wanted).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // More than the bucket holds: it never fits. (Sources split their batches to a
            // request's worth, which always does.) Come back when a full bucket's worth has
            // refilled, by which time the caller may have split it.
            Err(_) => Err(Duration::from_secs_f64(f64::from(self.burst) / self.per_s as f64)),
        }
    }
}

/// A tenant's settings as last read.
struct Limits {
    slug: String,
    quota: Quota,
    bucket: Option<Arc<Bucket>>,
}

/// One tenant's quota state in this process.
struct TenantQuota {
    limits: RwLock<Arc<Limits>>,
    /// Clock time (ns) the settings were last read.
    read_at: AtomicU64,
    /// A refresh is under way.
    refreshing: AtomicBool,
    series: Arc<SeriesSet>,
}

/// The series of one tenant this process knows of.
#[derive(Default)]
struct SeriesSet {
    state: Mutex<SeriesState>,
    /// Held while reading from the store: one read at a time.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SeriesState {
    /// Series that exist (stored, or in a batch that was queued).
    known: HashSet<u64>,
    /// Series of batches admitted but not yet queued, with how many such batches name each.
    /// Never also in `known`.
    pending: HashMap<u64, u32>,
    /// The first read from the store was made (whether or not it succeeded).
    first_read: bool,
    /// Highest series id read from the store.
    read_up_to: i64,
}

impl SeriesState {
    fn count(&self) -> u64 {
        (self.known.len() + self.pending.len()) as u64
    }
}

impl SeriesSet {
    /// Count the series `hashes` name (one per metric) against `limit`, reserving the new
    /// ones that fit. Whole (`each` false): all or, with `(known, new)` for the message,
    /// nothing. Each: also the positions of the metrics whose series do not fit.
    fn reserve(
        self: &Arc<Self>,
        hashes: &[u64],
        limit: u64,
        each: bool,
    ) -> Result<(Reservation, Vec<usize>), (u64, usize)> {
        // Each series once, in the order of its first metric, found before taking the lock:
        // a request's metrics mostly share a few series.
        let mut seen: HashSet<u64> = HashSet::with_capacity(16);
        let distinct: Vec<u64> = hashes.iter().copied().filter(|h| seen.insert(*h)).collect();
        let mut reservation = Reservation { set: self.clone(), hashes: Vec::new(), confirmed: false };
        let mut over: HashSet<u64> = HashSet::new();
        // Series this batch is the first to bring.
        let mut fresh = 0;
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for hash in &distinct {
                if state.known.contains(hash) {
                    continue;
                }
                if let Some(holders) = state.pending.get_mut(hash) {
                    // Another batch is bringing it: it counts once, and stays while either
                    // batch may still be queued.
                    *holders += 1;
                    reservation.hashes.push(*hash);
                } else if state.count() < limit {
                    state.pending.insert(*hash, 1);
                    reservation.hashes.push(*hash);
                    fresh += 1;
                } else {
                    over.insert(*hash);
                }
            }
            if !over.is_empty() && !each {
                let known = state.count() - fresh as u64;
                drop(state);
                // Dropping the reservation takes back what this batch reserved.
                drop(reservation);
                return Err((known, fresh + over.len()));
            }
        }
        let refused = hashes.iter().enumerate().filter(|(_, h)| over.contains(h)).map(|(i, _)| i).collect();
        Ok((reservation, refused))
    }
}

/// New series one admitted batch counts, until it is queued or dropped.
struct Reservation {
    set: Arc<SeriesSet>,
    hashes: Vec<u64>,
    confirmed: bool,
}

impl Reservation {
    fn confirm(&mut self) {
        let mut state = self.set.state.lock().unwrap_or_else(|p| p.into_inner());
        for hash in &self.hashes {
            if state.pending.remove(hash).is_some() {
                state.known.insert(*hash);
            }
        }
        self.confirmed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.confirmed {
            return;
        }
        let mut state = self.set.state.lock().unwrap_or_else(|p| p.into_inner());
        for hash in &self.hashes {
            if let Some(holders) = state.pending.get_mut(hash) {
                *holders -= 1;
                if *holders == 0 {
                    state.pending.remove(hash);
                }
            }
        }
    }
}

/// Every tenant's quotas in this process. Cheap to share.
pub(crate) struct Quotas {
    store: Store,
    config: QuotaConfig,
    /// The smallest bucket: one request's worth of metrics.
    min_burst: u32,
    tenants: RwLock<HashMap<i64, Arc<TenantQuota>>>,
    /// Keys the series hashes; random per process, so nobody can aim collisions at it.
    hasher: RandomState,
    clock: TokioClock,
}

impl TokioClock {
    fn new() -> TokioClock {
        TokioClock { start: tokio::time::Instant::now() }
    }
}

impl Quotas {
    /// Quotas read from `store` over `config`'s defaults; buckets hold at least
    /// `max_metrics_per_request` tokens.
    pub(crate) fn new(store: Store, config: QuotaConfig, max_metrics_per_request: usize) -> Self {
        Self {
            store,
            config,
            min_burst: u32::try_from(max_metrics_per_request.max(1)).unwrap_or(u32::MAX),
            tenants: RwLock::default(),
            hasher: RandomState::new(),
            clock: TokioClock::new(),
        }
    }

    /// The server's defaults.
    pub(crate) fn defaults(&self) -> Quota {
        self.config.defaults
    }

    /// Decide whether `metrics` of `tenant_id` may be accepted now. On success the caller
    /// queues them (less `refused`) and confirms; on a refusal nothing is reserved.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        tenant_id: i64,
        metrics: &[Metric],
        mode: Mode,
    ) -> Result<Admission, QuotaError> {
        let tenant = self.tenant(tenant_id).await;
        let limits = tenant.limits.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (reservation, refused) = match limits.quota.max_series {
            0 => (None, Vec::new()),
            limit => {
                self.read_series_first(tenant_id, &tenant.series).await;
                let (reservation, refused) = self.reserve(&tenant.series, metrics, limit, mode.each, &limits.slug)?;
                (Some(reservation), refused)
            }
        };
        let wanted = metrics.len() - refused.len();
        if let (Some(bucket), true, true) = (&limits.bucket, mode.metered, wanted > 0) {
            // A refusal drops the reservation, which takes its new series back.
            bucket.take(wanted).map_err(|retry_after| QuotaError::Rate {
                tenant: limits.slug.clone(),
                limit: bucket.per_s,
                burst: bucket.burst,
                wanted,
                retry_after,
            })?;
        }
        Ok(Admission { reservation, refused })
    }

    /// Count the new series `metrics` name against `limit`, reserving those that fit.
    fn reserve(
        &self,
        set: &Arc<SeriesSet>,
        metrics: &[Metric],
        limit: u64,
        each: bool,
        slug: &str,
    ) -> Result<(Reservation, Vec<usize>), QuotaError> {
        let hashes: Vec<u64> =
            metrics.iter().map(|m| self.series_hash(&m.name, m.agent_id.as_deref(), &m.tags)).collect();
        set.reserve(&hashes, limit, each).map_err(|(known, new)| QuotaError::Series {
            tenant: slug.to_owned(),
            limit,
            known,
            new,
            retry_after: self.config.refresh,
        })
    }

    /// The series' key in this process's sets.
    fn series_hash(&self, name: &str, agent: Option<&str>, tags: &std::collections::BTreeMap<String, String>) -> u64 {
        // An empty agent is no agent, as in the store.
        self.hasher.hash_one((name, agent.unwrap_or(""), tags))
    }

    /// The tenant's quota state, read from the store the first time.
    async fn tenant(self: &Arc<Self>, tenant_id: i64) -> Arc<TenantQuota> {
        let found = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id).cloned();
        let tenant = match found {
            Some(tenant) => tenant,
            None => {
                let limits = self.read_limits(tenant_id, None).await;
                let fresh = Arc::new(TenantQuota {
                    limits: RwLock::new(Arc::new(limits)),
                    read_at: AtomicU64::new(self.now_ns()),
                    refreshing: AtomicBool::new(false),
                    series: Arc::default(),
                });
                // Another request may have made it meanwhile: keep the first.
                return self
                    .tenants
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(tenant_id)
                    .or_insert(fresh)
                    .clone();
            }
        };
        let stale = self.now_ns().saturating_sub(tenant.read_at.load(Ordering::Relaxed))
            >= self.config.refresh.as_nanos() as u64;
        if stale && !tenant.refreshing.swap(true, Ordering::AcqRel) {
            // Off the request path: a slow database must not hold up ingestion.
            let (quotas, tenant) = (self.clone(), tenant.clone());
            tokio::spawn(async move {
                quotas.refresh(tenant_id, &tenant).await;
                tenant.refreshing.store(false, Ordering::Release);
            });
        }
        tenant
    }

    /// Read the tenant's settings (and the series created since the last read) again now,
    /// as after an admin changed them.
    pub(crate) async fn reload(&self, tenant_id: i64) {
        let found = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id).cloned();
        if let Some(tenant) = found {
            self.refresh(tenant_id, &tenant).await;
        }
    }

    async fn refresh(&self, tenant_id: i64, tenant: &TenantQuota) {
        let previous = tenant.limits.read().unwrap_or_else(|p| p.into_inner()).clone();
        let limits = self.read_limits(tenant_id, Some(&previous)).await;
        let series_limited = limits.quota.max_series > 0;
        *tenant.limits.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(limits);
        tenant.read_at.store(self.now_ns(), Ordering::Relaxed);
        if series_limited {
            let first_read = tenant.series.state.lock().unwrap_or_else(|p| p.into_inner()).first_read;
            if first_read {
                self.read_series(tenant_id, &tenant.series).await;
            }
        } else {
            // Unlimited again: nothing to count, so nothing to keep.
            let _reading = tenant.series.reading.lock().await;
            *tenant.series.state.lock().unwrap_or_else(|p| p.into_inner()) = SeriesState::default();
        }
    }

    /// The tenant's settings over the defaults; on a store failure the previous ones (or
    /// the defaults), to be read again at the next refresh.
    async fn read_limits(&self, tenant_id: i64, previous: Option<&Limits>) -> Limits {
        let (slug, quota) = match self.store.tenant(tenant_id).await {
            Ok(Some(t)) => (t.slug, t.quota.over(self.config.defaults)),
            Ok(None) => (tenant_id.to_string(), self.config.defaults),
            Err(err) => {
                tracing::warn!(tenant_id, error = %err, "reading a tenant's quotas failed; keeping the ones in force");
                match previous {
                    Some(p) => (p.slug.clone(), p.quota),
                    None => (tenant_id.to_string(), self.config.defaults),
                }
            }
        };
        // A bucket in use keeps its level while its rate stays, or every refresh would
        // hand out a fresh burst.
        let bucket = match (quota.max_ingest_metrics_per_s, previous.and_then(|p| p.bucket.clone())) {
            (0, _) => None,
            (rate, Some(bucket)) if bucket.per_s == rate => Some(bucket),
            (rate, _) => Some(Arc::new(Bucket::new(rate, self.min_burst, self.clock.clone()))),
        };
        Limits { slug, quota, bucket }
    }

    /// Before the first admission under a series limit: read every series of the tenant
    /// (other requests of the tenant wait for it). A failure is logged and the limit applies
    /// to what this process accepts until a refresh reads the store.
    async fn read_series_first(&self, tenant_id: i64, set: &SeriesSet) {
        if set.state.lock().unwrap_or_else(|p| p.into_inner()).first_read {
            return;
        }
        let _reading = set.reading.lock().await;
        if set.state.lock().unwrap_or_else(|p| p.into_inner()).first_read {
            return;
        }
        self.read_series_locked(tenant_id, set).await;
        set.state.lock().unwrap_or_else(|p| p.into_inner()).first_read = true;
    }

    /// Read the series created since the last read.
    async fn read_series(&self, tenant_id: i64, set: &SeriesSet) {
        let _reading = set.reading.lock().await;
        self.read_series_locked(tenant_id, set).await;
    }

    async fn read_series_locked(&self, tenant_id: i64, set: &SeriesSet) {
        let mut after = {
            let state = set.state.lock().unwrap_or_else(|p| p.into_inner());
            (state.read_up_to - REREAD_IDS).max(0)
        };
        loop {
            let page = match self.store.series_after(tenant_id, after, SERIES_PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(tenant_id, error = %err, "reading a tenant's series for its quota failed");
                    return;
                }
            };
            let full = page.len() == SERIES_PAGE;
            let hashes: Vec<u64> =
                page.iter().map(|(_, s)| self.series_hash(&s.metric_name, s.agent_id.as_deref(), &s.tags)).collect();
            {
                let mut state = set.state.lock().unwrap_or_else(|p| p.into_inner());
                for hash in hashes {
                    state.pending.remove(&hash);
                    state.known.insert(hash);
                }
                if let Some((last, _)) = page.last() {
                    after = *last;
                    state.read_up_to = state.read_up_to.max(*last);
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Series this process counts for the tenant (`None` when it has no series limit).
    pub(crate) fn series_known(&self, tenant_id: i64) -> Option<u64> {
        let tenant = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(&tenant_id).cloned()?;
        let limited = tenant.limits.read().unwrap_or_else(|p| p.into_inner()).quota.max_series > 0;
        limited.then(|| tenant.series.state.lock().unwrap_or_else(|p| p.into_inner()).count())
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `a` is within a millisecond of `b`.
    fn about(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) <= Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_takes_a_batch_whole_and_says_when_it_fits() {
        let bucket = Bucket::new(100, 10, TokioClock::new());
        assert_eq!(bucket.burst, 100, "a second's worth");
        assert_eq!(bucket.take(100), Ok(()));
        let wait = bucket.take(1).unwrap_err();
        assert!(about(wait, Duration::from_millis(10)), "{wait:?}");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(bucket.take(50), Ok(()));
        let wait = bucket.take(20).unwrap_err();
        assert!(about(wait, Duration::from_millis(200)), "{wait:?}");
        // A refused batch took nothing: the same wait, and then it fits.
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(bucket.take(20), Ok(()));
        // More than the bucket ever holds.
        let wait = bucket.take(101).unwrap_err();
        assert!(about(wait, Duration::from_secs(1)), "{wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_bucket_still_holds_one_request() {
        let bucket = Bucket::new(5, 20, TokioClock::new());
        assert_eq!(bucket.burst, 20);
        assert_eq!(bucket.take(20), Ok(()));
        let wait = bucket.take(20).unwrap_err();
        assert!(about(wait, Duration::from_secs(4)), "{wait:?}");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(bucket.take(20), Ok(()));
    }

    fn count(set: &SeriesSet) -> (usize, usize) {
        let state = set.state.lock().unwrap();
        (state.known.len(), state.pending.len())
    }

    #[test]
    fn a_batch_over_the_series_limit_is_refused_whole_and_reserves_nothing() {
        let set = Arc::new(SeriesSet::default());
        let (first, refused) = set.reserve(&[1, 2, 2, 1], 3, false).unwrap();
        assert!(refused.is_empty());
        assert_eq!(count(&set), (0, 2));
        // 3 fits, 4 does not: nothing of it is kept.
        assert_eq!(set.reserve(&[1, 3, 4], 3, false).err(), Some((2, 2)));
        assert_eq!(count(&set), (0, 2));
        let mut first = first;
        first.confirm();
        drop(first);
        assert_eq!(count(&set), (2, 0), "confirmed series stay");
        // Known series always pass, also at the limit.
        let (full, _) = set.reserve(&[3], 3, false).unwrap();
        let (known, refused) = set.reserve(&[1, 2, 3], 3, false).unwrap();
        assert!(refused.is_empty() && known.hashes == [3], "3 is pending, so shared");
        drop(full);
        assert_eq!(count(&set), (2, 1), "still reserved by the second batch");
        drop(known);
        assert_eq!(count(&set), (2, 0), "a batch that was never queued takes its series back");
    }

    #[test]
    fn each_metric_of_a_new_series_beyond_the_limit_is_refused_alone() {
        let set = Arc::new(SeriesSet::default());
        let (mut first, _) = set.reserve(&[1], 2, true).unwrap();
        first.confirm();
        let (reserved, refused) = set.reserve(&[1, 2, 3, 2, 3, 4], 2, true).unwrap();
        assert_eq!(refused, [2, 4, 5], "series 3 and 4 do not fit");
        assert_eq!(reserved.hashes, [2]);
        assert_eq!(count(&set), (1, 1));
    }
}
