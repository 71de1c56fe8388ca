//! 1-minute, 5-minute and 30-minute rollups: maintained as points are written, queried by
//! bucket.
//!
//! Every point insert folds the points it actually stored (not those dropped as `dedupe_id`
//! duplicates) into per-bucket [`Aggregate`]s and upserts them into `rollups_1m`,
//! `rollups_5m` and `rollups_30m` in the same transaction. The upsert merges with what the bucket already
//! holds using [`Aggregate::merge`]'s rules (add counts and sums, keep the smaller minimum,
//! the larger maximum, the later "last"), which do not depend on the order batches commit in,
//! so buckets stay exact under late points and concurrent workers.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::Double;
use diesel::upsert::excluded;
use microdash_core::api::Resolution;
use microdash_core::rollup::{Aggregate, bucket_start};

use crate::data::SeriesFilter;
use crate::schema::{rollups_1m, rollups_5m, rollups_30m};
use crate::{Store, StoreError, load_rows};

diesel::define_sql_function! {
    /// SQLite's two-argument scalar `min`.
    #[sql_name = "min"]
    fn scalar_min(a: Double, b: Double) -> Double;
}

diesel::define_sql_function! {
    /// SQLite's two-argument scalar `max`.
    #[sql_name = "max"]
    fn scalar_max(a: Double, b: Double) -> Double;
}

/// Buckets per SQLite upsert statement: 9 bind parameters each, under SQLite's limit.
const UPSERT_ROWS_PER_STATEMENT: usize = 2_000;

/// A stored rollup level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollupLevel {
    /// `rollups_1m`.
    OneMinute,
    /// `rollups_5m`.
    FiveMinutes,
    /// `rollups_30m`: the 5-minute level merged six at a time, kept as long as it. Not a
    /// resolution of its own for retention; it is there so that long ranges (a month is
    /// 1,440 buckets a series) read a sixth of the rows.
    ThirtyMinutes,
}

impl RollupLevel {
    /// Every level, finest first.
    pub const ALL: [RollupLevel; 3] = [RollupLevel::OneMinute, RollupLevel::FiveMinutes, RollupLevel::ThirtyMinutes];

    /// Bucket width in milliseconds.
    pub fn bucket_ms(self) -> i64 {
        match self {
            RollupLevel::OneMinute => 60_000,
            RollupLevel::FiveMinutes => 300_000,
            RollupLevel::ThirtyMinutes => 1_800_000,
        }
    }

    /// The API's name for it.
    pub fn resolution(self) -> Resolution {
        match self {
            RollupLevel::OneMinute => Resolution::ONE_MINUTE,
            RollupLevel::FiveMinutes => Resolution::FIVE_MINUTES,
            RollupLevel::ThirtyMinutes => Resolution::Minutes(30),
        }
    }

    /// The stored level of a resolution: `1m`, `5m` and `30m` only.
    pub fn of(resolution: Resolution) -> Option<RollupLevel> {
        RollupLevel::ALL.into_iter().find(|level| level.resolution() == resolution)
    }

    /// The coarsest level whose buckets tile buckets of `width_ms`, of those `usable`
    /// allows (retained for the range asked): reading it merges the fewest rows.
    pub fn coarsest_tiling(width_ms: i64, usable: impl Fn(RollupLevel) -> bool) -> Option<RollupLevel> {
        RollupLevel::ALL.into_iter().rev().find(|level| width_ms % level.bucket_ms() == 0 && usable(*level))
    }

    fn index(self) -> usize {
        match self {
            RollupLevel::OneMinute => 0,
            RollupLevel::FiveMinutes => 1,
            RollupLevel::ThirtyMinutes => 2,
        }
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            RollupLevel::OneMinute => "rollups_1m",
            RollupLevel::FiveMinutes => "rollups_5m",
            RollupLevel::ThirtyMinutes => "rollups_30m",
        }
    }
}

/// A bucket to import ([`Store::import_rollups`]): history from elsewhere, already aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedBucket {
    /// The series (created if missing).
    pub series: microdash_core::SeriesKey,
    /// Bucket start, Unix milliseconds; must be a multiple of the level's width.
    pub bucket_ms: i64,
    /// What the bucket holds.
    pub aggregate: Aggregate,
}

/// One rollup bucket with its series description.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBucket {
    /// Metric name.
    pub metric_name: String,
    /// Agent id, if the series has one.
    pub agent_id: Option<String>,
    /// Series tags.
    pub tags: BTreeMap<String, String>,
    /// Bucket start, Unix milliseconds.
    pub bucket_ms: i64,
    /// The bucket's aggregates.
    pub aggregate: Aggregate,
}

/// Aggregates of the points one transaction stored, per level and `(series, bucket)`. Sorted
/// keys make concurrent transactions lock rollup rows in the same order, which keeps deadlocks
/// rare (a deadlock still rolls the batch back, and the worker retries it).
#[derive(Default)]
pub(crate) struct Pending {
    levels: [BTreeMap<(i64, i64), (i64, Aggregate)>; 3],
}

impl Pending {
    /// Fold in one stored point.
    pub(crate) fn add(&mut self, tenant_id: i64, series_id: i64, ts_ms: i64, value: f64) {
        let point = Aggregate::of(ts_ms, value);
        for level in RollupLevel::ALL {
            self.add_aggregate(level, tenant_id, series_id, bucket_start(ts_ms, level.bucket_ms()), &point);
        }
    }

    /// Fold an aggregate into one bucket of one level.
    fn add_aggregate(&mut self, level: RollupLevel, tenant_id: i64, series_id: i64, bucket_ms: i64, agg: &Aggregate) {
        self.levels[level.index()]
            .entry((series_id, bucket_ms))
            .and_modify(|(_, mine)| mine.merge(agg))
            .or_insert((tenant_id, *agg));
    }

    /// `(series_id, bucket_ms, tenant_id, aggregate)` of one level, in key order.
    fn rows(&self, level: RollupLevel) -> impl Iterator<Item = (i64, i64, i64, &Aggregate)> + '_ {
        self.levels[level.index()]
            .iter()
            .map(|((series_id, bucket_ms), (tenant_id, agg))| (*series_id, *bucket_ms, *tenant_id, agg))
    }

    /// Upsert into SQLite, many buckets per statement: diesel never caches a prepared
    /// `ON CONFLICT DO UPDATE`, and preparing one per bucket cost ~30 us each.
    pub(crate) fn write_sqlite(&self, c: &mut diesel::SqliteConnection) -> QueryResult<()> {
        macro_rules! upsert {
            ($t:ident, $level:expr) => {{
                let rows: Vec<_> = self
                    .rows($level)
                    .map(|(series_id, bucket_ms, tenant_id, agg)| {
                        (
                            $t::series_id.eq(series_id),
                            $t::bucket_ms.eq(bucket_ms),
                            $t::tenant_id.eq(tenant_id),
                            $t::value_count.eq(agg.count as i64),
                            $t::value_sum.eq(agg.sum),
                            $t::value_min.eq(agg.min),
                            $t::value_max.eq(agg.max),
                            $t::last_ms.eq(agg.last_ms),
                            $t::last_value.eq(agg.last),
                        )
                    })
                    .collect();
                for chunk in rows.chunks(UPSERT_ROWS_PER_STATEMENT) {
                    let later = excluded($t::last_ms)
                        .gt($t::last_ms)
                        .or(excluded($t::last_ms).eq($t::last_ms).and(excluded($t::last_value).gt($t::last_value)));
                    let merge = (
                        $t::value_count.eq($t::value_count + excluded($t::value_count)),
                        // SQLite adds to infinity; saturate as `Aggregate::merge` does.
                        $t::value_sum
                            .eq(scalar_max(scalar_min($t::value_sum + excluded($t::value_sum), f64::MAX), -f64::MAX)),
                        $t::value_min.eq(scalar_min($t::value_min, excluded($t::value_min))),
                        $t::value_max.eq(scalar_max($t::value_max, excluded($t::value_max))),
                        // SQLite evaluates every right-hand side on the old row, so the order
                        // of these two does not matter here (it does on MariaDB).
                        $t::last_value
                            .eq(diesel::dsl::case_when(later, excluded($t::last_value)).otherwise($t::last_value)),
                        $t::last_ms.eq(scalar_max_ms($t::last_ms, excluded($t::last_ms))),
                    );
                    let upsert = diesel::insert_into($t::table)
                        .values(chunk)
                        .on_conflict(($t::series_id, $t::bucket_ms))
                        .do_update()
                        .set(merge);
                    diesel::RunQueryDsl::execute(upsert, c)?;
                }
            }};
        }
        upsert!(rollups_1m, RollupLevel::OneMinute);
        upsert!(rollups_5m, RollupLevel::FiveMinutes);
        upsert!(rollups_30m, RollupLevel::ThirtyMinutes);
        Ok(())
    }

    /// Upsert into MariaDB: multi-row text-protocol statements of numbers only, like the
    /// plain point inserts. MariaDB fails a DOUBLE addition that overflows instead of giving
    /// infinity, so a sum near the limit is added in halves and saturates. MariaDB assigns `ON DUPLICATE KEY UPDATE` columns left to right,
    /// each seeing the ones before, so `last_value` is decided before `last_ms` moves.
    pub(crate) fn mysql_statements(&self) -> Vec<String> {
        use std::fmt::Write;
        let mut statements = Vec::new();
        for level in RollupLevel::ALL {
            let rows: Vec<_> = self.rows(level).collect();
            for chunk in rows.chunks(crate::data::ROWS_PER_STATEMENT) {
                let mut sql = format!(
                    "INSERT INTO {} (series_id, bucket_ms, tenant_id, value_count, value_sum, value_min, value_max, last_ms, last_value) VALUES ",
                    level.table()
                );
                for (i, (series_id, bucket_ms, tenant_id, a)) in chunk.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    // Writing into a String cannot fail.
                    let _ = write!(
                        sql,
                        "{sep}({series_id},{bucket_ms},{tenant_id},{},{:e},{:e},{:e},{},{:e})",
                        a.count, a.sum, a.min, a.max, a.last_ms, a.last
                    );
                }
                sql.push_str(
                    " ON DUPLICATE KEY UPDATE value_count = value_count + VALUES(value_count), \
                     value_sum = IF(ABS(value_sum) < 8e307 AND ABS(VALUES(value_sum)) < 8e307, value_sum + VALUES(value_sum), \
                       IF(value_sum / 2 + VALUES(value_sum) / 2 >= 8.98846567431157e307, 1.7976931348623157e308, \
                       IF(value_sum / 2 + VALUES(value_sum) / 2 <= -8.98846567431157e307, -1.7976931348623157e308, value_sum + VALUES(value_sum)))), \
                     value_min = LEAST(value_min, VALUES(value_min)), \
                     value_max = GREATEST(value_max, VALUES(value_max)), \
                     last_value = IF(VALUES(last_ms) > last_ms OR (VALUES(last_ms) = last_ms AND VALUES(last_value) > last_value), VALUES(last_value), last_value), \
                     last_ms = GREATEST(last_ms, VALUES(last_ms))",
                );
                statements.push(sql);
            }
        }
        statements
    }
}

diesel::define_sql_function! {
    /// SQLite's two-argument scalar `max`, on integers.
    #[sql_name = "max"]
    fn scalar_max_ms(a: diesel::sql_types::BigInt, b: diesel::sql_types::BigInt) -> diesel::sql_types::BigInt;
}

/// A wide bucket as SQLite merges it (see `query_buckets`).
#[derive(QueryableByName)]
struct MergedRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    series_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bucket_ms: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    value_count: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    value_sum: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    value_min: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    value_max: f64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_ms: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    last_value: f64,
}

/// Buckets a read is expected to return above which MariaDB reads it in two halves.
const PARALLEL_READ_BUCKETS: i64 = 8_000;

/// The numeric columns of a bucket as loaded.
type BucketRow = (i64, i64, i64, f64, f64, f64, i64, f64);

impl Store {
    /// Merge already-aggregated buckets into `level`, as if their points had been written
    /// (a bucket that exists is merged with, not replaced): for importing history that has
    /// no raw points any more, such as another system's, or a benchmark's seed. Raw points
    /// written later are counted on top.
    ///
    /// Buckets imported at five minutes are also merged into the 30-minute level, which
    /// holds the 5-minute one merged six at a time; that level takes no imports of its own.
    pub async fn import_rollups(&self, level: RollupLevel, buckets: &[ImportedBucket]) -> Result<(), StoreError> {
        if level == RollupLevel::ThirtyMinutes {
            return Err(StoreError::invalid("30-minute buckets come from the 5-minute ones: import those".into()));
        }
        if let Some(bad) = buckets.iter().find(|b| b.bucket_ms != bucket_start(b.bucket_ms, level.bucket_ms())) {
            return Err(StoreError::invalid(format!("bucket {} does not start a {:?} bucket", bad.bucket_ms, level)));
        }
        // Series resolve once each (`resolve_series` takes distinct keys).
        let mut slots: HashMap<&microdash_core::SeriesKey, usize> = HashMap::new();
        let mut keys: Vec<microdash_core::SeriesKey> = Vec::new();
        for bucket in buckets {
            slots.entry(&bucket.series).or_insert_with(|| {
                keys.push(bucket.series.clone());
                keys.len() - 1
            });
        }
        let ids = self.resolve_series(&keys).await?;
        let mut pending = Pending::default();
        for bucket in buckets {
            let series_id = ids[slots[&bucket.series]];
            pending.add_aggregate(level, bucket.series.tenant_id, series_id, bucket.bucket_ms, &bucket.aggregate);
            if level == RollupLevel::FiveMinutes {
                let wide = bucket_start(bucket.bucket_ms, RollupLevel::ThirtyMinutes.bucket_ms());
                pending.add_aggregate(
                    RollupLevel::ThirtyMinutes,
                    bucket.series.tenant_id,
                    series_id,
                    wide,
                    &bucket.aggregate,
                );
            }
        }
        match &self.inner.pool {
            crate::Pool::Sqlite(_) => {
                let rows = buckets.len();
                self.write_sqlite(rows, move |c| pending.write_sqlite(c).map(|()| rows)).await?;
            }
            crate::Pool::Mysql(pool) => {
                let mut conn = pool.get().await.map_err(StoreError::pool)?;
                let statements = pending.mysql_statements();
                diesel_async::AsyncConnection::transaction::<_, diesel::result::Error, _>(&mut *conn, async |conn| {
                    for statement in &statements {
                        diesel_async::SimpleAsyncConnection::batch_execute(conn, statement).await?;
                    }
                    Ok(())
                })
                .await
                .map_err(StoreError::query)?;
            }
        }
        Ok(())
    }

    /// Rollup buckets of one tenant at `level`, oldest first (by bucket start, then series).
    /// A bucket is included when it overlaps `[start_ms, end_ms)`. When more than
    /// `query.limit` match, the most recent ones are returned.
    pub async fn query_rollups(
        &self,
        tenant_id: i64,
        level: RollupLevel,
        query: &crate::PointQuery,
    ) -> Result<Vec<StoredBucket>, StoreError> {
        self.query_buckets(tenant_id, level, level.bucket_ms(), query).await
    }

    /// Buckets of `width_ms` (a multiple of `level`'s) merged exactly from `level`'s, oldest
    /// first: every wide bucket that overlaps `[start_ms, end_ms)` is read whole. When more
    /// than `query.limit` result, the most recent ones are returned.
    pub async fn query_buckets(
        &self,
        tenant_id: i64,
        level: RollupLevel,
        width_ms: i64,
        query: &crate::PointQuery,
    ) -> Result<Vec<StoredBucket>, StoreError> {
        if width_ms <= 0 || width_ms % level.bucket_ms() != 0 {
            return Err(StoreError::invalid(format!("{width_ms} ms is not a multiple of {level:?} buckets")));
        }
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let series = self.matching_series(tenant_id, &SeriesFilter::of(query)).await?;
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let merging = width_ms != level.bucket_ms();
        let start = query.start_ms.map(|s| bucket_start(s, width_ms)).unwrap_or(i64::MIN);
        let end = query.end_ms.map(|e| bucket_start(e - 1, width_ms).saturating_add(width_ms)).unwrap_or(i64::MAX);
        // Read in primary-key order (series, then time), which needs no sort in the database,
        // unless the limit can cut the answer: then the newest first, limited. Stored buckets
        // are merged whole, so a merging read is never limited in SQL (that would cut a wide
        // bucket). `auto` asks for ranges whose buckets always fit its limit.
        let most =
            (end.saturating_sub(start) / width_ms).saturating_mul(i64::try_from(series.len()).unwrap_or(i64::MAX));
        let limited = !merging && most > i64::try_from(query.limit).unwrap_or(i64::MAX);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let ids: Vec<i64> = series.keys().copied().collect();
        let mut rows: Vec<BucketRow> = Vec::new();
        // Only numbers cross the wire here; the series' names and tags are joined in memory,
        // once per answered bucket. Merging reads in primary-key order (series, bucket), which
        // needs no sort in the database.
        // A large unlimited read on MariaDB is split by series over two connections: decoding
        // rows in the driver is most of its time, and two halves decode on two threads.
        // (Up to two statements' worth of series: more are read chunk by chunk, as below.)
        let split = !limited
            && (2..=2 * crate::data::ROWS_PER_STATEMENT).contains(&ids.len())
            && most >= PARALLEL_READ_BUCKETS
            && self.backend() == crate::Backend::Mysql;
        macro_rules! load {
            ($table:ident) => {{
                let read = |store: Store, chunk: Vec<i64>| async move {
                    let q = $table::table
                        .filter($table::tenant_id.eq(tenant_id))
                        .filter($table::series_id.eq_any(chunk))
                        .filter($table::bucket_ms.ge(start))
                        .filter($table::bucket_ms.lt(end))
                        .select((
                            $table::series_id,
                            $table::bucket_ms,
                            $table::value_count,
                            $table::value_sum,
                            $table::value_min,
                            $table::value_max,
                            $table::last_ms,
                            $table::last_value,
                        ));
                    let loaded: Vec<BucketRow> = if limited {
                        load_rows!(store, q.order(($table::bucket_ms.desc(), $table::series_id.desc())).limit(limit))
                    } else {
                        load_rows!(store, q.order(($table::series_id, $table::bucket_ms)))
                    };
                    Ok::<_, StoreError>(loaded)
                };
                if split {
                    let (first, second) = ids.split_at(ids.len() / 2);
                    // In a set, so the other half is aborted with this read (a request gone,
                    // or the first half failed) rather than left running on its own.
                    let mut other = tokio::task::JoinSet::new();
                    other.spawn(read(self.clone(), second.to_vec()));
                    rows = read(self.clone(), first.to_vec()).await?;
                    let other = match other.join_next().await {
                        Some(Ok(loaded)) => loaded?,
                        Some(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                        Some(Err(err)) => return Err(StoreError::unavailable(err.to_string())),
                        None => unreachable!("one task was spawned"),
                    };
                    rows.extend(other);
                } else {
                    for chunk in ids.chunks(crate::data::ROWS_PER_STATEMENT) {
                        rows.extend(read(self.clone(), chunk.to_vec()).await?);
                    }
                }
            }};
        }
        match (&self.inner.pool, level) {
            (crate::Pool::Sqlite(_), _) if merging => {
                // SQLite merges in the database, in C, and returns only the wide buckets: a
                // week of one agent's 20 series at 10 minutes reads 40,320 stored 5-minute
                // buckets and returns 20,160. `last_value` is a bare column: SQLite documents
                // that it comes from the row holding the maximum only for a query with a single
                // min/max aggregate; with several, as here, the bundled SQLite takes it from the
                // row chosen by the last one in the select list, so `MAX(last_ms)` must stay
                // last. The stored buckets of one wide bucket never share a `last_ms`, so it is
                // exact. `tests/rollups.rs` (merged widths over random values) fails if a
                // SQLite upgrade or a reordered list changes which row that is.
                for chunk in ids.chunks(crate::data::ROWS_PER_STATEMENT) {
                    let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let sql = format!(
                        "SELECT series_id, bucket_ms - ((bucket_ms % ?1) + ?1) % ?1 AS bucket_ms, \
                         SUM(value_count) AS value_count, SUM(value_sum) AS value_sum, MIN(value_min) AS value_min, \
                         MAX(value_max) AS value_max, MAX(last_ms) AS last_ms, last_value \
                         FROM {} WHERE tenant_id = ?2 AND series_id IN ({list}) AND bucket_ms >= ?3 AND bucket_ms < ?4 \
                         GROUP BY series_id, 2",
                        level.table()
                    );
                    let q = diesel::sql_query(sql)
                        .bind::<diesel::sql_types::BigInt, _>(width_ms)
                        .bind::<diesel::sql_types::BigInt, _>(tenant_id)
                        .bind::<diesel::sql_types::BigInt, _>(start)
                        .bind::<diesel::sql_types::BigInt, _>(end);
                    let loaded: Vec<MergedRow> = load_rows!(self, q);
                    rows.extend(loaded.into_iter().map(|r| {
                        (
                            r.series_id,
                            r.bucket_ms,
                            r.value_count,
                            r.value_sum.clamp(-f64::MAX, f64::MAX),
                            r.value_min,
                            r.value_max,
                            r.last_ms,
                            r.last_value,
                        )
                    }));
                }
            }
            (_, RollupLevel::OneMinute) => load!(rollups_1m),
            (_, RollupLevel::FiveMinutes) => load!(rollups_5m),
            (_, RollupLevel::ThirtyMinutes) => load!(rollups_30m),
        }
        let aggregate = |(_, _, count, sum, min, max, last_ms, last): BucketRow| Aggregate {
            count: u64::try_from(count).unwrap_or(0),
            sum,
            min,
            max,
            last_ms,
            last,
        };
        let mut buckets: Vec<(i64, i64, Aggregate)> = Vec::with_capacity(rows.len());
        for row in rows {
            let (series_id, bucket) = (row.0, bucket_start(row.1, width_ms));
            match buckets.last_mut() {
                // Rows of one wide bucket are adjacent when merging (series, then time order).
                Some((s, b, agg)) if merging && *s == series_id && *b == bucket => agg.merge(&aggregate(row)),
                _ => buckets.push((series_id, bucket, aggregate(row))),
            }
        }
        // Keep the most recent `limit` of all, then oldest first.
        buckets.sort_unstable_by_key(|(series_id, bucket, _)| std::cmp::Reverse((*bucket, *series_id)));
        buckets.truncate(query.limit);
        buckets.reverse();
        Ok(buckets
            .into_iter()
            .filter_map(|(series_id, bucket_ms, aggregate)| {
                let info = series.get(&series_id)?;
                Some(StoredBucket {
                    metric_name: info.metric_name.clone(),
                    agent_id: info.agent_id.clone(),
                    tags: info.tags.clone(),
                    bucket_ms,
                    aggregate,
                })
            })
            .collect())
    }
}

/// Rows of `series` grouped by series id, for joining buckets or points in memory.
pub(crate) type SeriesById = HashMap<i64, crate::SeriesInfo>;
