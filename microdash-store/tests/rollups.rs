//! Rollups and retention on every backend, against real databases.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use microdash_core::api::MetricIn;
use microdash_core::metric::Metric;
use microdash_core::rollup::{Aggregate, bucket_start};
use microdash_core::{Batch, Limits};
use microdash_store::testing::TestDb;
use microdash_store::{Backend, DataKind, PointQuery, RollupLevel, Store, StoredBucket};

const NOW: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// A small deterministic generator (xorshift64*), so a failing case can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn metric(name: &str, agent: &str, ts_ms: i64, value: f64, dedupe: Option<String>) -> Metric {
    let mut input = MetricIn::new(name, value).agent(agent).at_millis(ts_ms);
    input.dedupe_id = dedupe;
    microdash_core::metric::validate(input, &Limits::default(), NOW).unwrap()
}

fn all(name: Option<&str>) -> PointQuery {
    PointQuery { metric_name: name.map(str::to_owned), limit: 1_000_000, ..PointQuery::default() }
}

type Buckets = BTreeMap<(String, Option<String>, i64), Aggregate>;

fn keyed(buckets: Vec<StoredBucket>) -> Buckets {
    buckets.into_iter().map(|b| ((b.metric_name, b.agent_id, b.bucket_ms), b.aggregate)).collect()
}

/// The buckets a recomputation from the stored raw points gives.
async fn recomputed(store: &Store, tenant_id: i64, width_ms: i64) -> Buckets {
    let mut buckets = Buckets::new();
    for p in store.query_points(tenant_id, &all(None)).await.unwrap() {
        let key = (p.metric_name, p.agent_id, bucket_start(p.timestamp_ms, width_ms));
        let point = Aggregate::of(p.timestamp_ms, p.value);
        buckets.entry(key).and_modify(|a| a.merge(&point)).or_insert(point);
    }
    buckets
}

/// Random points over three series, with late ones (an agent's outage buffer an hour old),
/// repeated `dedupe_id`s carrying other values (which must not count), and points at equal
/// timestamps, written by four concurrent writers in batches of random sizes: every bucket of
/// every level equals a recomputation from the raw points stored.
async fn rollups_equal_a_recomputation_from_raw(store: Store) {
    let tenant = store.create_tenant("t", "", NOW).await.unwrap();
    let other = store.create_tenant("other", "", NOW).await.unwrap();
    for seed in [7_u64, 1_234_567, 987_654_321] {
        let mut rng = Rng(seed);
        let name = format!("m{seed}");
        let mut metrics = Vec::new();
        for i in 0..1_500 {
            let agent = ["a", "b", "c"][rng.below(3) as usize];
            // Most points in the last 20 minutes; every tenth an hour late; some on the same
            // millisecond as others.
            let age = if i % 10 == 0 {
                60 * MINUTE + rng.below(10 * MINUTE as u64) as i64
            } else {
                rng.below(20 * MINUTE as u64) as i64
            };
            let ts = NOW - (age / 1000) * 1000;
            let value = rng.below(1_000) as f64 - 500.0;
            let dedupe = match rng.below(4) {
                0 => Some(format!("{seed}-{}", rng.below(200))),
                _ => None,
            };
            metrics.push(metric(&name, agent, ts, value, dedupe));
        }
        let mut batches = Vec::new();
        while !metrics.is_empty() {
            let take = (1 + rng.below(200) as usize).min(metrics.len());
            batches.push(Batch { tenant_id: tenant.id, received_at_ms: NOW, metrics: metrics.drain(..take).collect() });
        }
        let queue = std::sync::Arc::new(std::sync::Mutex::new(batches));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (store, queue) = (store.clone(), queue.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(batch) = queue.lock().unwrap().pop() else { break };
                        // As a worker does: a deadlock or lock timeout rolls the whole batch
                        // back and is retried.
                        loop {
                            match store.insert_batches(&[&batch], NOW).await {
                                Ok(_) => break,
                                Err(err) if err.kind() == microdash_core::ErrorKind::Unavailable => continue,
                                Err(err) => panic!("{err}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        // Every stored level, and wider buckets merged from them.
        for (level, width) in [
            (RollupLevel::OneMinute, MINUTE),
            (RollupLevel::FiveMinutes, 5 * MINUTE),
            (RollupLevel::FiveMinutes, 15 * MINUTE),
            (RollupLevel::ThirtyMinutes, 30 * MINUTE),
            (RollupLevel::ThirtyMinutes, 60 * MINUTE),
        ] {
            let stored = keyed(store.query_buckets(tenant.id, level, width, &all(Some(&name))).await.unwrap());
            let want: Buckets = recomputed(&store, tenant.id, width)
                .await
                .into_iter()
                .filter(|((metric, _, _), _)| *metric == name)
                .collect();
            assert!(!want.is_empty());
            assert_eq!(stored, want, "seed {seed}, {level:?} as {width} ms");
            // A bounded range whose buckets all fit the limit is read in key order, unlimited
            // in SQL: the same answer.
            let range = PointQuery { start_ms: Some(NOW - 3 * 60 * MINUTE), end_ms: Some(NOW + 1), ..all(Some(&name)) };
            let bounded = keyed(store.query_buckets(tenant.id, level, width, &range).await.unwrap());
            assert_eq!(bounded, want, "seed {seed}, {level:?} as {width} ms over a range");
        }
        // Every stored point is counted once, duplicates not at all.
        let raw = store.query_points(tenant.id, &all(Some(&name))).await.unwrap().len() as u64;
        let counted: u64 =
            keyed(store.query_rollups(tenant.id, RollupLevel::OneMinute, &all(Some(&name))).await.unwrap())
                .values()
                .map(|a| a.count)
                .sum();
        assert_eq!(counted, raw, "seed {seed}");
        assert!(raw < 1_500, "seed {seed}: some dedupe_ids repeat, so fewer than 1,500 are stored");
    }
    // The other tenant has no buckets of its own.
    assert!(store.query_rollups(other.id, RollupLevel::OneMinute, &all(None)).await.unwrap().is_empty());
}

/// Buckets are selected by overlap with the range, newest kept under a limit, oldest first.
async fn rollup_queries_filter_and_limit(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let base = bucket_start(NOW, 5 * MINUTE) - 60 * MINUTE;
    let metrics: Vec<Metric> =
        (0..60).map(|i| metric("cpu", "h1", base + i * MINUTE + 30_000, i as f64, None)).collect();
    let more = vec![metric("cpu", "h2", base, 100.0, None), metric("mem", "h1", base, 5.0, None)];
    store
        .insert_batches(
            &[
                Batch { tenant_id: t.id, received_at_ms: NOW, metrics },
                Batch { tenant_id: t.id, received_at_ms: NOW, metrics: more },
            ],
            NOW,
        )
        .await
        .unwrap();
    let cpu_h1 = PointQuery { agent_id: Some("h1".into()), ..all(Some("cpu")) };
    let minutes = store.query_rollups(t.id, RollupLevel::OneMinute, &cpu_h1).await.unwrap();
    assert_eq!(minutes.len(), 60);
    assert_eq!(minutes[0].bucket_ms, base);
    assert_eq!((minutes[0].aggregate.count, minutes[0].aggregate.last), (1, 0.0));
    let fives = store.query_rollups(t.id, RollupLevel::FiveMinutes, &cpu_h1).await.unwrap();
    assert_eq!(fives.len(), 12);
    assert_eq!(
        fives[1].aggregate,
        Aggregate { count: 5, sum: 35.0, min: 5.0, max: 9.0, last_ms: base + 9 * MINUTE + 30_000, last: 9.0 }
    );
    // A range starting mid-bucket includes that bucket; the end is exclusive.
    let window =
        PointQuery { start_ms: Some(base + 5 * MINUTE + 1), end_ms: Some(base + 10 * MINUTE), ..cpu_h1.clone() };
    let got = store.query_rollups(t.id, RollupLevel::FiveMinutes, &window).await.unwrap();
    assert_eq!(got.iter().map(|b| b.bucket_ms).collect::<Vec<_>>(), [base + 5 * MINUTE]);
    let latest = PointQuery { limit: 3, ..cpu_h1 };
    let got = store.query_rollups(t.id, RollupLevel::OneMinute, &latest).await.unwrap();
    assert_eq!(got.iter().map(|b| b.aggregate.last).collect::<Vec<_>>(), [57.0, 58.0, 59.0]);
    // Without filters, every series of the tenant: cpu h1, cpu h2 and mem h1 at `base`.
    let first = store
        .query_rollups(t.id, RollupLevel::OneMinute, &PointQuery { end_ms: Some(base + 1), ..all(None) })
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(store.most_points_per_series(t.id, &all(Some("cpu"))).await.unwrap(), 60);
}

/// Retention deletes exactly what is older than the cutoff, per table and per tenant, in
/// chunks smaller than what there is to delete.
async fn retention_deletes_what_it_should_and_nothing_else(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let keep = store.create_tenant("keep", "", NOW).await.unwrap();
    let points = |tenant_id| Batch {
        tenant_id,
        received_at_ms: NOW,
        metrics: (0..120).map(|i| metric("cpu", ["a", "b"][i % 2], NOW - i as i64 * 30_000, i as f64, None)).collect(),
    };
    store.insert_batches(&[points(t.id), points(keep.id)], NOW).await.unwrap();
    let cutoff = NOW - 30 * MINUTE;
    let deleted = store.expire(&t, DataKind::Raw, cutoff, 7).await.unwrap();
    let remaining = store.query_points(t.id, &all(None)).await.unwrap();
    assert!(remaining.iter().all(|p| p.timestamp_ms >= cutoff));
    assert_eq!(remaining.len() as u64 + deleted, 120);
    assert_eq!(remaining.len(), 61, "points from 30 minutes ago to now, every 30 s");
    // Rollups are untouched by raw retention, and the other tenant by all of it.
    let minutes = store.query_rollups(t.id, RollupLevel::OneMinute, &all(None)).await.unwrap();
    assert_eq!(minutes.iter().map(|b| b.aggregate.count).sum::<u64>(), 120);
    assert_eq!(store.query_points(keep.id, &all(None)).await.unwrap().len(), 120);
    let deleted = store.expire(&t, DataKind::Rollup(RollupLevel::OneMinute), cutoff, 5).await.unwrap();
    let minutes = store.query_rollups(t.id, RollupLevel::OneMinute, &all(None)).await.unwrap();
    // Only whole buckets older than the cutoff go: the one that straddles it stays.
    assert!(minutes.iter().all(|b| b.bucket_ms + MINUTE > cutoff));
    assert_eq!(minutes[0].bucket_ms, bucket_start(cutoff, MINUTE), "the straddling bucket is kept");
    assert!(deleted > 0);
    assert!(!store.query_rollups(t.id, RollupLevel::FiveMinutes, &all(None)).await.unwrap().is_empty());
    assert_eq!(store.expire(&t, DataKind::Raw, cutoff, 7).await.unwrap(), 0, "nothing left to expire");
    // The 30-minute level the same way: the half hour that straddles the cutoff stays.
    let halves =
        |store: Store| async move { store.query_rollups(t.id, RollupLevel::ThirtyMinutes, &all(None)).await.unwrap() };
    let before = halves(store.clone()).await;
    let deleted = store.expire(&t, DataKind::Rollup(RollupLevel::ThirtyMinutes), cutoff, 1).await.unwrap();
    let after = halves(store.clone()).await;
    assert_eq!(after.len() as u64 + deleted, before.len() as u64);
    assert!(after.iter().all(|b| b.bucket_ms + 30 * MINUTE > cutoff));
    assert_eq!(after[0].bucket_ms, bucket_start(cutoff, 30 * MINUTE), "the straddling half hour is kept");
    assert_eq!(store.query_rollups(keep.id, RollupLevel::ThirtyMinutes, &all(None)).await.unwrap().len(), before.len());
    // How far each level was deleted is recorded on the tenant (rollup cutoffs at their
    // bucket start), only moves forward, and leaves the other tenant alone.
    let marks = store.tenant(t.id).await.unwrap().unwrap().expired_before;
    // The 30-minute level shares the 5-minute level's mark (here the 5-minute level was not
    // expired first).
    assert_eq!(
        (marks.raw_ms, marks.rollup_1m_ms, marks.rollup_5m_ms),
        (Some(cutoff), Some(bucket_start(cutoff, MINUTE)), Some(bucket_start(cutoff, 30 * MINUTE)))
    );
    let late = metric("cpu", "h1", cutoff - 120 * MINUTE, 1.0, None);
    store.insert_batches(&[Batch { tenant_id: t.id, received_at_ms: NOW, metrics: vec![late] }], NOW).await.unwrap();
    assert_eq!(store.expire(&t, DataKind::Raw, cutoff - 60 * MINUTE, 7).await.unwrap(), 1);
    assert_eq!(store.tenant(t.id).await.unwrap().unwrap().expired_before.raw_ms, Some(cutoff), "never back");
    store.expire(&t, DataKind::Rollup(RollupLevel::FiveMinutes), cutoff, 7).await.unwrap();
    let fives = store.tenant(t.id).await.unwrap().unwrap().expired_before.rollup_5m_ms;
    assert_eq!(fives, Some(bucket_start(cutoff, 5 * MINUTE)));
    assert_eq!(store.tenant(keep.id).await.unwrap().unwrap().expired_before, Default::default());
    // A tenant with nothing to delete gets a first mark (what an older version deleted is
    // unmarked), and no write after that.
    store.expire(&keep, DataKind::Raw, NOW - 10 * 60 * MINUTE, 7).await.unwrap();
    assert_eq!(store.tenant(keep.id).await.unwrap().unwrap().expired_before.raw_ms, Some(NOW - 600 * MINUTE));
    store.expire(&keep, DataKind::Raw, NOW - 9 * 60 * MINUTE, 7).await.unwrap();
    assert_eq!(store.tenant(keep.id).await.unwrap().unwrap().expired_before.raw_ms, Some(NOW - 600 * MINUTE));
}

/// A tenant's own retention is stored, shown, and returned to the default with `null`; bad
/// values change nothing.
async fn tenant_retention_settings(store: Store) {
    use microdash_store::RetentionChange;
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    assert_eq!(t.retention, Default::default());
    let set = RetentionChange { raw_hours: Some(Some(48)), rollup_5m_days: Some(Some(90)), ..Default::default() };
    let t = store.set_tenant_retention(t.id, &set).await.unwrap();
    assert_eq!(
        (t.retention.raw_hours, t.retention.rollup_1m_days, t.retention.rollup_5m_days),
        (Some(48), None, Some(90))
    );
    let bad = RetentionChange { raw_hours: Some(Some(12)), rollup_1m_days: Some(Some(-1)), ..Default::default() };
    let err = store.set_tenant_retention(t.id, &bad).await.unwrap_err();
    assert!(err.to_string().contains("retention_1m_days"), "{err}");
    let reset = RetentionChange { raw_hours: Some(None), ..Default::default() };
    let t = store.set_tenant_retention(t.id, &reset).await.unwrap();
    assert_eq!((t.retention.raw_hours, t.retention.rollup_5m_days), (None, Some(90)));
    assert_eq!(store.list_tenants().await.unwrap()[0].retention, t.retention);
}

/// Imported buckets merge with what points add later, and must start a bucket.
async fn imported_history_merges_with_points(store: Store) {
    use microdash_store::ImportedBucket;
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let bucket = bucket_start(NOW, 5 * MINUTE);
    let series = metric("cpu", "h1", NOW, 0.0, None).series_key(t.id);
    let old = ImportedBucket {
        series: series.clone(),
        bucket_ms: bucket,
        aggregate: Aggregate { count: 30, sum: 300.0, min: 1.0, max: 20.0, last_ms: bucket + 1, last: 7.0 },
    };
    // With a second bucket of the same new series in the same import.
    let earlier = ImportedBucket { bucket_ms: bucket - 5 * MINUTE, ..old.clone() };
    store.import_rollups(RollupLevel::FiveMinutes, &[earlier, old.clone()]).await.unwrap();
    let point = metric("cpu", "h1", bucket + 2, 50.0, None);
    store.insert_batches(&[Batch { tenant_id: t.id, received_at_ms: NOW, metrics: vec![point] }], NOW).await.unwrap();
    let got = store.query_rollups(t.id, RollupLevel::FiveMinutes, &all(Some("cpu"))).await.unwrap();
    assert_eq!(got.len(), 2, "both buckets on the one series: {got:?}");
    assert_eq!((got[0].bucket_ms, got[0].aggregate.count), (bucket - 5 * MINUTE, 30));
    assert_eq!(
        got[1].aggregate,
        Aggregate { count: 31, sum: 350.0, min: 1.0, max: 50.0, last_ms: bucket + 2, last: 50.0 }
    );
    assert_eq!(got[1].agent_id.as_deref(), Some("h1"));
    // The 30-minute level holds the imported 5-minute buckets too, whichever half hour each is in.
    let halves = store.query_rollups(t.id, RollupLevel::ThirtyMinutes, &all(Some("cpu"))).await.unwrap();
    assert_eq!(halves.iter().map(|b| b.aggregate.count).sum::<u64>(), 61);
    assert_eq!(halves.last().unwrap().aggregate.last, 50.0);
    assert!(
        store.import_rollups(RollupLevel::ThirtyMinutes, std::slice::from_ref(&old)).await.is_err(),
        "derived, not imported"
    );
    let misaligned = ImportedBucket { bucket_ms: bucket + 1, ..old };
    assert!(store.import_rollups(RollupLevel::FiveMinutes, &[misaligned]).await.is_err());
}

/// A read wide enough to be split over two connections (MariaDB) answers what reading its
/// series one at a time does.
async fn a_wide_read_equals_its_series_read_one_by_one(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let agents = ["a", "b", "c", "d", "e"];
    let metrics: Vec<Metric> =
        (0..600).map(|i| metric("cpu", agents[i % agents.len()], NOW - (i as i64) * 20_000, i as f64, None)).collect();
    store.insert_batches(&[Batch { tenant_id: t.id, received_at_ms: NOW, metrics }], NOW).await.unwrap();
    // Five series over ten thousand minutes: 50,000 possible buckets, above the split's 8,000.
    let wide = PointQuery { start_ms: Some(NOW - 10_000 * MINUTE), end_ms: Some(NOW + 1), ..all(Some("cpu")) };
    let together = store.query_rollups(t.id, RollupLevel::OneMinute, &wide).await.unwrap();
    let mut one_by_one = Vec::new();
    for agent in agents {
        let single = PointQuery { agent_id: Some(agent.into()), ..wide.clone() };
        one_by_one.extend(store.query_rollups(t.id, RollupLevel::OneMinute, &single).await.unwrap());
    }
    assert_eq!(together.len(), one_by_one.len());
    assert_eq!(together.iter().map(|b| b.aggregate.count).sum::<u64>(), 600);
    // Oldest first, then by series, as every read answers.
    assert!(together.windows(2).all(|w| w[0].bucket_ms <= w[1].bucket_ms));
    assert_eq!(keyed(together), keyed(one_by_one));
}

on_every_backend!(
    a_wide_read_equals_its_series_read_one_by_one,
    imported_history_merges_with_points,
    rollups_equal_a_recomputation_from_raw,
    rollup_queries_filter_and_limit,
    retention_deletes_what_it_should_and_nothing_else,
    tenant_retention_settings,
);
