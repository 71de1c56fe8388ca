//! Series, raw points, agents and dead letters.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use microdash_core::{Batch, SeriesKey};

use crate::journal::{self, JournalMark};
use crate::rollups::Pending;
use crate::schema::{agents, dead_letters, points, series};
use crate::{Checkpoint, Pool, SERIES_CACHE_MAX, Store, StoreError, with_conn};

/// Rows per INSERT statement: 5 bind parameters a row stays well under SQLite's and
/// MariaDB's limits on parameters per statement.
pub(crate) const ROWS_PER_STATEMENT: usize = 5_000;

/// A series identified by borrowed parts of a metric: tenant, name, agent, tags.
type SeriesRef<'a> = (i64, &'a str, &'a str, &'a BTreeMap<String, String>);

/// `INSERT INTO points ... VALUES (...)` for rows without a dedupe id, all values numeric.
/// Floats use Rust's shortest round-trip exponent form (`1.5e0`), which MySQL reads back
/// exactly.
fn numeric_insert_sql(rows: &[NewPoint]) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(48 + rows.len() * 48);
    sql.push_str("INSERT INTO points (tenant_id, series_id, ts_ms, value) VALUES ");
    for (i, r) in rows.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        // Writing into a String cannot fail.
        let _ = write!(sql, "{sep}({},{},{},{:e})", r.tenant_id, r.series_id, r.ts_ms, r.value);
    }
    sql
}

/// What [`Store::insert_batches`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertStats {
    /// Metrics handed in.
    pub metrics: usize,
    /// Rows actually written; the rest were duplicates by `dedupe_id`.
    pub inserted: usize,
}

/// Filter for [`Store::query_points`]; the tenant is always a separate, mandatory argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PointQuery {
    /// Only this metric.
    pub metric_name: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// Inclusive lower bound, Unix milliseconds.
    pub start_ms: Option<i64>,
    /// Exclusive upper bound, Unix milliseconds.
    pub end_ms: Option<i64>,
    /// Most points to return; when more match, the most recent ones are kept.
    pub limit: usize,
}

/// The series part of a [`PointQuery`]: which metric and agent.
pub(crate) struct SeriesFilter<'a> {
    pub(crate) metric_name: Option<&'a str>,
    pub(crate) agent_id: Option<&'a str>,
}

impl<'a> SeriesFilter<'a> {
    pub(crate) fn of(query: &'a PointQuery) -> Self {
        SeriesFilter { metric_name: query.metric_name.as_deref(), agent_id: query.agent_id.as_deref() }
    }
}

/// One raw point with its series description.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    /// Metric name.
    pub metric_name: String,
    /// Agent id, if the metric had one.
    pub agent_id: Option<String>,
    /// Series tags.
    pub tags: BTreeMap<String, String>,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

/// An agent and the time of its latest metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent id.
    pub agent_id: String,
    /// When its latest metric was stored, Unix milliseconds (receipt, not metric time).
    pub last_seen_ms: i64,
}

/// One stored series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    /// Metric name.
    pub metric_name: String,
    /// Agent, if any.
    pub agent_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl SeriesInfo {
    /// A `series` row's columns as the API describes them: an empty agent is none, tags are
    /// stored as JSON.
    fn from_row(metric_name: String, agent: String, tags: &str) -> SeriesInfo {
        SeriesInfo {
            metric_name,
            agent_id: (!agent.is_empty()).then_some(agent),
            tags: serde_json::from_str(tags).unwrap_or_default(),
        }
    }
}

/// Series per statement of [`Store::latest_values`].
const LATEST_SERIES_PER_QUERY: usize = 500;

#[derive(diesel::QueryableByName)]
struct LatestRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    series_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    last_ms: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    last_value: Option<f64>,
}

/// The latest point of one series ([`Store::latest_values`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    /// Metric name.
    pub metric_name: String,
    /// Agent, if any.
    pub agent_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// When the point was measured, Unix milliseconds.
    pub ts_ms: i64,
    /// Its value.
    pub value: f64,
}

/// A batch that kept failing to persist, kept for an operator to inspect and replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Database id.
    pub id: i64,
    /// The batch as it was queued.
    pub batch: Batch,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: i32,
    /// When it was dead-lettered, Unix milliseconds.
    pub created_at_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = series)]
struct NewSeries {
    tenant_id: i64,
    metric_name: String,
    agent_id: String,
    tags: String,
    series_hash: String,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = points)]
#[diesel(treat_none_as_default_value = false)]
struct NewPoint {
    tenant_id: i64,
    series_id: i64,
    ts_ms: i64,
    value: f64,
    dedupe_id: Option<String>,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = agents)]
struct AgentSeen {
    tenant_id: i64,
    agent_id: String,
    last_seen_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = dead_letters)]
struct NewDeadLetter {
    tenant_id: i64,
    payload: String,
    error: String,
    attempts: i32,
    created_at_ms: i64,
}

impl Store {
    /// Persist batches: create missing series, record agents as seen at `now_ms`, and insert
    /// the points in multi-row statements. Metrics whose `(tenant, dedupe_id)` is already
    /// stored are skipped, which makes redelivery harmless.
    pub async fn insert_batches<B: Borrow<Batch>>(
        &self,
        batches: &[B],
        now_ms: i64,
    ) -> Result<InsertStats, StoreError> {
        self.insert_batches_marked(batches, now_ms, None).await
    }

    /// [`Store::insert_batches`] for batches of the embedded queue's journal: `mark` (their
    /// sequence numbers) is recorded in the same transaction as their rows, and if it is
    /// recorded already (a retry of a commit whose answer was lost) nothing is written and
    /// `inserted` is 0. See [`JournalMark`].
    pub async fn insert_batches_marked<B: Borrow<Batch>>(
        &self,
        batches: &[B],
        now_ms: i64,
        mark: Option<&JournalMark>,
    ) -> Result<InsertStats, StoreError> {
        let mark = mark.cloned();
        let batches: Vec<&Batch> = batches.iter().map(Borrow::borrow).collect();
        let metrics: usize = batches.iter().map(|b| b.metrics.len()).sum();
        // Group metrics by series without allocating per metric: a bulk request has far
        // fewer series than metrics, and only distinct series are keyed and hashed.
        let mut slots: HashMap<SeriesRef<'_>, usize> = HashMap::new();
        let mut distinct: Vec<SeriesKey> = Vec::new();
        let mut slot_of_metric = Vec::with_capacity(metrics);
        // Sorted, so concurrent transactions lock agent rows in the same order (no deadlock).
        let mut seen_agents = BTreeSet::new();
        for batch in &batches {
            for metric in &batch.metrics {
                let agent = metric.agent_id.as_deref().unwrap_or("");
                let slot = *slots.entry((batch.tenant_id, &metric.name, agent, &metric.tags)).or_insert_with(|| {
                    distinct.push(metric.series_key(batch.tenant_id));
                    distinct.len() - 1
                });
                slot_of_metric.push(slot);
                if !agent.is_empty() {
                    seen_agents.insert((batch.tenant_id, agent));
                }
            }
        }
        let series_ids = self.resolve_series(&distinct).await?;
        let mut slot_iter = slot_of_metric.into_iter();
        let mut rows = Vec::with_capacity(metrics);
        for batch in &batches {
            for (metric, slot) in batch.metrics.iter().zip(slot_iter.by_ref()) {
                rows.push(NewPoint {
                    tenant_id: batch.tenant_id,
                    series_id: series_ids[slot],
                    ts_ms: metric.timestamp_ms,
                    value: metric.value,
                    dedupe_id: metric.dedupe_id.clone(),
                });
            }
        }
        // In index order: consecutive rows land on the same leaf pages of the (series, time)
        // index, which is most of an insert's cost.
        rows.sort_unstable_by_key(|r| (r.series_id, r.ts_ms));
        let agents: Vec<AgentSeen> = seen_agents
            .into_iter()
            .map(|(tenant_id, agent_id)| AgentSeen { tenant_id, agent_id: agent_id.to_owned(), last_seen_ms: now_ms })
            .collect();
        let inserted = match &self.inner.pool {
            Pool::Sqlite(_) => {
                self.write_sqlite(rows.len(), move |c| write_points_sqlite(c, &agents, &rows, mark.as_ref())).await?
            }
            Pool::Mysql(pool) => {
                let mut conn = pool.get().await.map_err(StoreError::pool)?;
                // Read committed: the rollup upserts and unique checks then lock only the rows
                // they touch, not the gaps around them, which under repeatable read made
                // concurrent workers deadlock on neighbouring buckets.
                conn.batch_execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map_err(StoreError::query)?;
                // One transaction, so a failure halfway leaves nothing behind to duplicate
                // on retry, and the rollups always match the points.
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    if let Some(mark) = &mark
                        && journal::already_stored_mysql(conn, mark).await?
                    {
                        return Ok(0);
                    }
                    // Rows without a dedupe_id cannot conflict: they go in as plain text-protocol
                    // statements, which MariaDB parses far faster than a prepared statement
                    // with tens of thousands of parameters. Only finite numbers are written
                    // into the SQL text, so nothing a client sent can change its meaning.
                    let (keyed, plain): (Vec<_>, Vec<_>) =
                        rows.into_iter().partition(|r| r.dedupe_id.is_some() || !r.value.is_finite());
                    let mut rollups = Pending::default();
                    for chunk in plain.chunks(ROWS_PER_STATEMENT) {
                        conn.batch_execute(&numeric_insert_sql(chunk)).await?;
                    }
                    for r in &plain {
                        rollups.add(r.tenant_id, r.series_id, r.ts_ms, r.value);
                    }
                    let mut inserted = plain.len();
                    for r in insert_keyed_mysql(conn, keyed).await? {
                        rollups.add(r.tenant_id, r.series_id, r.ts_ms, r.value);
                        inserted += 1;
                    }
                    for statement in rollups.mysql_statements() {
                        conn.batch_execute(&statement).await?;
                    }
                    // Agent rows last: their locks are then held only until the commit.
                    if !agents.is_empty() {
                        diesel::replace_into(agents::table).values(&agents).execute(conn).await?;
                    }
                    if let Some(mark) = &mark {
                        journal::record_mysql(conn, mark).await?;
                    }
                    Ok(inserted)
                })
                .await
                .map_err(StoreError::query)?
            }
        };
        Ok(InsertStats { metrics, inserted })
    }

    /// The id of each series in `keys` (same order, no key twice), creating the missing ones.
    pub(crate) async fn resolve_series(&self, keys: &[SeriesKey]) -> Result<Vec<i64>, StoreError> {
        let mut ids = vec![0; keys.len()];
        let mut missing = Vec::new();
        {
            let cache = self.inner.series_cache.lock().unwrap_or_else(|p| p.into_inner());
            for (slot, key) in keys.iter().enumerate() {
                match cache.get(key) {
                    Some(id) => ids[slot] = *id,
                    None => missing.push(slot),
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        // The hash leaves the tenant out (it is a column of its own), so key by both.
        let hashes: HashMap<(i64, String), usize> =
            missing.iter().map(|slot| ((keys[*slot].tenant_id, keys[*slot].identity_hash()), *slot)).collect();
        for ((_, hash), slot) in &hashes {
            let key = &keys[*slot];
            let row = NewSeries {
                tenant_id: key.tenant_id,
                metric_name: key.name.clone(),
                agent_id: key.agent_id.clone(),
                tags: key.tags.clone(),
                series_hash: hash.clone(),
            };
            // One row at a time: new series are rare after warm-up, and "ignore" makes a
            // concurrent creation by another worker harmless.
            with_conn!(self, |conn| diesel::insert_or_ignore_into(series::table)
                .values(&row)
                .execute(&mut conn)
                .await?);
        }
        let mut by_tenant: HashMap<i64, Vec<String>> = HashMap::new();
        for (tenant_id, hash) in hashes.keys() {
            by_tenant.entry(*tenant_id).or_default().push(hash.clone());
        }
        let mut found = 0;
        {
            let mut cache = self.inner.series_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() + hashes.len() > SERIES_CACHE_MAX {
                cache.clear();
            }
        }
        for (tenant_id, tenant_hashes) in by_tenant {
            for chunk in tenant_hashes.chunks(ROWS_PER_STATEMENT) {
                let query = series::table
                    .filter(series::tenant_id.eq(tenant_id))
                    .filter(series::series_hash.eq_any(chunk.to_vec()))
                    .select((series::series_hash, series::id));
                let rows: Vec<(String, i64)> = with_conn!(self, |conn| query.load(&mut conn).await?);
                let mut cache = self.inner.series_cache.lock().unwrap_or_else(|p| p.into_inner());
                for (hash, id) in rows {
                    if let Some(slot) = hashes.get(&(tenant_id, hash)) {
                        ids[*slot] = id;
                        cache.insert(keys[*slot].clone(), id);
                        found += 1;
                    }
                }
            }
        }
        if found < hashes.len() {
            return Err(StoreError::not_found(format!("{} series after creating them", hashes.len() - found)));
        }
        Ok(ids)
    }

    /// Raw points of one tenant, oldest first. When more than `query.limit` match, the most
    /// recent ones are returned.
    pub async fn query_points(&self, tenant_id: i64, query: &PointQuery) -> Result<Vec<StoredPoint>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        // One join, filtered on the tenant of both tables: the series index narrows by
        // tenant, name and agent, the points index by series and time.
        let mut rows: Vec<(i64, String, String, String, i64, f64)> = with_conn!(self, |conn| {
            let mut q = points::table
                .inner_join(series::table)
                .filter(series::tenant_id.eq(tenant_id))
                .filter(points::tenant_id.eq(tenant_id))
                .select((
                    points::series_id,
                    series::metric_name,
                    series::agent_id,
                    series::tags,
                    points::ts_ms,
                    points::value,
                ))
                .order((points::ts_ms.desc(), points::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some(name) = &query.metric_name {
                q = q.filter(series::metric_name.eq(name.clone()));
            }
            if let Some(agent) = &query.agent_id {
                q = q.filter(series::agent_id.eq(agent.clone()));
            }
            if let Some(start) = query.start_ms {
                q = q.filter(points::ts_ms.ge(start));
            }
            if let Some(end) = query.end_ms {
                q = q.filter(points::ts_ms.lt(end));
            }
            q.load(&mut conn).await?
        });
        rows.reverse();
        // Tags are parsed once per series, not once per point.
        let mut tags_of: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        Ok(rows
            .into_iter()
            .map(|(series_id, metric_name, agent, tags, timestamp_ms, value)| StoredPoint {
                metric_name,
                agent_id: (!agent.is_empty()).then_some(agent),
                tags: tags_of
                    .entry(series_id)
                    .or_insert_with(|| serde_json::from_str(&tags).unwrap_or_default())
                    .clone(),
                timestamp_ms,
                value,
            })
            .collect())
    }

    /// The series of a tenant that `filter` selects, by id.
    pub(crate) async fn matching_series(
        &self,
        tenant_id: i64,
        filter: &SeriesFilter<'_>,
    ) -> Result<crate::rollups::SeriesById, StoreError> {
        let rows: Vec<(i64, String, String, String)> = with_conn!(self, |conn| {
            let mut q = series::table
                .filter(series::tenant_id.eq(tenant_id))
                .select((series::id, series::metric_name, series::agent_id, series::tags))
                .into_boxed();
            if let Some(name) = filter.metric_name {
                q = q.filter(series::metric_name.eq(name.to_owned()));
            }
            if let Some(agent) = filter.agent_id {
                q = q.filter(series::agent_id.eq(agent.to_owned()));
            }
            q.load(&mut conn).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, metric_name, agent, tags)| (id, SeriesInfo::from_row(metric_name, agent, &tags)))
            .collect())
    }

    /// About the most raw points any one series matching `query` has in its time range
    /// (`limit` is ignored): what `resolution=auto` weighs against `max_points`. Counted
    /// from the 1-minute rollups, a row a minute instead of a row a point, so it may count
    /// up to a minute's points too many at each end of the range.
    pub async fn most_points_per_series(&self, tenant_id: i64, query: &PointQuery) -> Result<usize, StoreError> {
        use crate::schema::rollups_1m;
        let series = self.matching_series(tenant_id, &SeriesFilter::of(query)).await?;
        let ids: Vec<i64> = series.into_keys().collect();
        let start = query.start_ms.map_or(i64::MIN, |s| microdash_core::rollup::bucket_start(s, 60_000));
        let end = query.end_ms.unwrap_or(i64::MAX);
        let mut per_series: HashMap<i64, i64> = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(i64, i64)> = with_conn!(self, |conn| rollups_1m::table
                .filter(rollups_1m::tenant_id.eq(tenant_id))
                .filter(rollups_1m::series_id.eq_any(chunk.to_vec()))
                .filter(rollups_1m::bucket_ms.ge(start))
                .filter(rollups_1m::bucket_ms.lt(end))
                .select((rollups_1m::series_id, rollups_1m::value_count))
                .load(&mut conn)
                .await?);
            for (series_id, count) in rows {
                *per_series.entry(series_id).or_default() += count;
            }
        }
        Ok(usize::try_from(per_series.into_values().max().unwrap_or(0)).unwrap_or(usize::MAX))
    }

    /// The agents of a tenant and when each last reported, by agent id.
    pub async fn list_agents(&self, tenant_id: i64) -> Result<Vec<Agent>, StoreError> {
        let rows: Vec<(String, i64)> = with_conn!(self, |conn| agents::table
            .filter(agents::tenant_id.eq(tenant_id))
            .select((agents::agent_id, agents::last_seen_ms))
            .order(agents::agent_id)
            .load(&mut conn)
            .await?);
        Ok(rows.into_iter().map(|(agent_id, last_seen_ms)| Agent { agent_id, last_seen_ms }).collect())
    }

    /// The latest value of `metric_name` per agent of a tenant (for example the interval each
    /// agent announces).
    pub async fn latest_per_agent(
        &self,
        tenant_id: i64,
        metric_name: &str,
    ) -> Result<BTreeMap<String, f64>, StoreError> {
        let series_ids: Vec<(i64, String)> = with_conn!(self, |conn| series::table
            .filter(series::tenant_id.eq(tenant_id))
            .filter(series::metric_name.eq(metric_name))
            .select((series::id, series::agent_id))
            .load(&mut conn)
            .await?);
        let mut latest = BTreeMap::new();
        for (series_id, agent) in series_ids {
            let value: Option<f64> = with_conn!(self, |conn| points::table
                .filter(points::tenant_id.eq(tenant_id))
                .filter(points::series_id.eq(series_id))
                .order(points::ts_ms.desc())
                .select(points::value)
                .first(&mut conn)
                .await
                .optional()?);
            if let Some(value) = value {
                latest.insert(agent, value);
            }
        }
        Ok(latest)
    }

    /// The latest point of every series of the tenant whose metric is one of `metric_names`
    /// (the fleet overview's per-host values), from the 1-minute rollups (the latest bucket's
    /// latest point), so it outlives the raw points' retention. A series whose rollups have all
    /// expired is left out. One index seek per series, a few statements in all.
    pub async fn latest_values(&self, tenant_id: i64, metric_names: &[&str]) -> Result<Vec<LatestValue>, StoreError> {
        let names: Vec<String> = metric_names.iter().map(|n| (*n).to_owned()).collect();
        let rows: Vec<(i64, String, String, String)> = with_conn!(self, |conn| series::table
            .filter(series::tenant_id.eq(tenant_id))
            .filter(series::metric_name.eq_any(names.clone()))
            .select((series::id, series::metric_name, series::agent_id, series::tags))
            .order(series::id)
            .load(&mut conn)
            .await?);
        let mut latest: HashMap<i64, (i64, f64)> = HashMap::with_capacity(rows.len());
        for chunk in rows.chunks(LATEST_SERIES_PER_QUERY) {
            // The ids are integers read from the database a moment ago, written into the
            // statement (a list of bind parameters cannot vary in length per call).
            let ids: Vec<String> = chunk.iter().map(|(id, ..)| id.to_string()).collect();
            let sql = format!(
                "SELECT s.id AS series_id, \
                 (SELECT r.last_ms FROM rollups_1m r WHERE r.series_id = s.id ORDER BY r.bucket_ms DESC LIMIT 1) AS last_ms, \
                 (SELECT r.last_value FROM rollups_1m r WHERE r.series_id = s.id ORDER BY r.bucket_ms DESC LIMIT 1) AS last_value \
                 FROM series s WHERE s.tenant_id = ? AND s.id IN ({})",
                ids.join(",")
            );
            let found: Vec<LatestRow> = with_conn!(self, |conn| diesel::sql_query(sql.clone())
                .bind::<diesel::sql_types::BigInt, _>(tenant_id)
                .load(&mut conn)
                .await?);
            for row in found {
                if let (Some(ts_ms), Some(value)) = (row.last_ms, row.last_value) {
                    latest.insert(row.series_id, (ts_ms, value));
                }
            }
        }
        Ok(rows
            .into_iter()
            .filter_map(|(id, metric_name, agent, tags)| {
                let (ts_ms, value) = latest.get(&id).copied()?;
                let info = SeriesInfo::from_row(metric_name, agent, &tags);
                Some(LatestValue {
                    metric_name: info.metric_name,
                    agent_id: info.agent_id,
                    tags: info.tags,
                    ts_ms,
                    value,
                })
            })
            .collect())
    }

    /// The series of a tenant: which metrics exist, from which agents, with which tags.
    pub async fn list_series(&self, tenant_id: i64) -> Result<Vec<SeriesInfo>, StoreError> {
        let rows: Vec<(String, String, String)> = with_conn!(self, |conn| series::table
            .filter(series::tenant_id.eq(tenant_id))
            .select((series::metric_name, series::agent_id, series::tags))
            .order((series::metric_name, series::agent_id, series::id))
            .load(&mut conn)
            .await?);
        Ok(rows.into_iter().map(|(metric_name, agent, tags)| SeriesInfo::from_row(metric_name, agent, &tags)).collect())
    }

    /// Up to `limit` series of a tenant with an id above `after_id`, by id: read page by page
    /// (and later only what is new), it tells the ingest processes which series exist.
    pub async fn series_after(
        &self,
        tenant_id: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SeriesInfo)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String, String)> = with_conn!(self, |conn| series::table
            .filter(series::tenant_id.eq(tenant_id))
            .filter(series::id.gt(after_id))
            .select((series::id, series::metric_name, series::agent_id, series::tags))
            .order(series::id)
            .limit(limit)
            .load(&mut conn)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(id, metric_name, agent, tags)| (id, SeriesInfo::from_row(metric_name, agent, &tags)))
            .collect())
    }

    /// Keep a batch that could not be persisted. For a batch of the embedded queue's journal,
    /// `mark` is recorded in the same transaction, as [`Store::insert_batches_marked`] does
    /// for stored rows: a crash before the queue hears of it then neither dead-letters the
    /// batch a second time at the replay nor stores it after all. Returns whether the dead
    /// letter was written (`false`: the mark was recorded already).
    pub async fn add_dead_letter(
        &self,
        batch: &Batch,
        error: &str,
        attempts: i32,
        now_ms: i64,
        mark: Option<&JournalMark>,
    ) -> Result<bool, StoreError> {
        let row = NewDeadLetter {
            tenant_id: batch.tenant_id,
            payload: serde_json::to_string(batch).map_err(StoreError::corrupt)?,
            error: error.to_owned(),
            attempts,
            created_at_ms: now_ms,
        };
        let mark = mark.cloned();
        let written = match &self.inner.pool {
            Pool::Sqlite(_) => {
                self.write_sqlite(1, move |c| {
                    if let Some(mark) = &mark
                        && journal::already_stored_sqlite(c, mark)?
                    {
                        return Ok(0);
                    }
                    let written =
                        diesel::RunQueryDsl::execute(diesel::insert_into(dead_letters::table).values(&row), c)?;
                    if let Some(mark) = &mark {
                        journal::record_sqlite(c, mark)?;
                    }
                    Ok(written)
                })
                .await?
            }
            Pool::Mysql(pool) => {
                let mut conn = pool.get().await.map_err(StoreError::pool)?;
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    if let Some(mark) = &mark
                        && journal::already_stored_mysql(conn, mark).await?
                    {
                        return Ok(0);
                    }
                    let written = diesel::insert_into(dead_letters::table).values(&row).execute(conn).await?;
                    if let Some(mark) = &mark {
                        journal::record_mysql(conn, mark).await?;
                    }
                    Ok(written)
                })
                .await
                .map_err(StoreError::query)?
            }
        };
        Ok(written > 0)
    }

    /// All dead letters, oldest first.
    pub async fn list_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let query = dead_letters::table
            .select((
                dead_letters::id,
                dead_letters::payload,
                dead_letters::error,
                dead_letters::attempts,
                dead_letters::created_at_ms,
            ))
            .order(dead_letters::id);
        let rows: Vec<(i64, String, String, i32, i64)> = with_conn!(self, |conn| query.load(&mut conn).await?);
        rows.into_iter()
            .map(|(id, payload, error, attempts, created_at_ms)| {
                Ok(DeadLetter {
                    id,
                    batch: serde_json::from_str(&payload).map_err(StoreError::corrupt)?,
                    error,
                    attempts,
                    created_at_ms,
                })
            })
            .collect()
    }

    /// Delete a dead letter (after a successful replay). Returns whether it existed.
    pub async fn delete_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        let target = dead_letters::table.filter(dead_letters::id.eq(id));
        let deleted = with_conn!(self, |conn| diesel::delete(target).execute(&mut conn).await?);
        Ok(deleted > 0)
    }
}

/// Insert rows that carry a `dedupe_id` into MariaDB and return exactly those stored (not
/// ignored as duplicates), for the rollups. Ids already stored are looked up and left out
/// first, which makes a redelivered batch cheap; the rest go in as one multi-row `INSERT
/// IGNORE` inside a savepoint. If it stored fewer rows than it was given (a concurrent
/// transaction stored one of the ids meanwhile), the savepoint is rolled back and the rows
/// go in one at a time, so it is known which were stored. Runs inside the caller's
/// transaction.
async fn insert_keyed_mysql(
    conn: &mut diesel_async::AsyncMysqlConnection,
    keyed: Vec<NewPoint>,
) -> QueryResult<Vec<NewPoint>> {
    if keyed.is_empty() {
        return Ok(keyed);
    }
    let mut by_tenant: HashMap<i64, Vec<String>> = HashMap::new();
    for r in &keyed {
        if let Some(id) = &r.dedupe_id {
            by_tenant.entry(r.tenant_id).or_default().push(id.clone());
        }
    }
    let mut stored_ids: std::collections::HashSet<(i64, String)> = std::collections::HashSet::new();
    for (tenant_id, ids) in by_tenant {
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let found: Vec<Option<String>> = points::table
                .filter(points::tenant_id.eq(tenant_id))
                .filter(points::dedupe_id.eq_any(chunk.to_vec()))
                .select(points::dedupe_id)
                .load(conn)
                .await?;
            stored_ids.extend(found.into_iter().flatten().map(|id| (tenant_id, id)));
        }
    }
    // Also the first of two rows with the same id in this batch wins, as with SQLite.
    let mut fresh: Vec<NewPoint> = keyed
        .into_iter()
        .filter(|r| match &r.dedupe_id {
            Some(id) => stored_ids.insert((r.tenant_id, id.clone())),
            None => true,
        })
        .collect();
    // In the unique index's order, so two transactions storing some of the same ids lock
    // them in the same order instead of deadlocking.
    fresh.sort_unstable_by(|a, b| (a.tenant_id, &a.dedupe_id).cmp(&(b.tenant_id, &b.dedupe_id)));
    // A savepoint by hand rather than a nested diesel transaction: when the server aborts
    // the whole transaction (a deadlock), that error must reach the caller as it is, not as
    // a failure to roll back to a savepoint that no longer exists.
    conn.batch_execute("SAVEPOINT keyed_points").await?;
    let mut inserted = 0;
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        inserted += diesel::insert_or_ignore_into(points::table).values(chunk).execute(conn).await?;
    }
    if inserted == fresh.len() {
        return Ok(fresh);
    }
    conn.batch_execute("ROLLBACK TO SAVEPOINT keyed_points").await?;
    let mut stored = Vec::with_capacity(fresh.len());
    for row in fresh {
        if diesel::insert_or_ignore_into(points::table).values(&row).execute(conn).await? > 0 {
            stored.push(row);
        }
    }
    Ok(stored)
}

/// Insert one batch's agents and points, the points' rollups and the journal mark, if any,
/// into SQLite (inside the writer's transaction). Returns the points inserted: none if the
/// mark says they are stored already.
fn write_points_sqlite(
    c: &mut diesel::sqlite::SqliteConnection,
    agents: &[AgentSeen],
    rows: &[NewPoint],
    mark: Option<&JournalMark>,
) -> QueryResult<usize> {
    if let Some(mark) = mark
        && journal::already_stored_sqlite(c, mark)?
    {
        return Ok(0);
    }
    for agent in agents {
        diesel::RunQueryDsl::execute(diesel::replace_into(agents::table).values(agent), c)?;
    }
    // One single-row statement, prepared once and cached by diesel, run per row: SQLite
    // neither parses a statement of thousands of values per chunk nor keeps a statement
    // journal for a multi-row insert. Each answer says whether the row was stored or
    // ignored as a duplicate, so only stored points reach the rollups.
    let mut inserted = 0;
    let mut rollups = Pending::default();
    for row in rows {
        let stored = diesel::RunQueryDsl::execute(diesel::insert_or_ignore_into(points::table).values(row), c)?;
        if stored > 0 {
            rollups.add(row.tenant_id, row.series_id, row.ts_ms, row.value);
        }
        inserted += stored;
    }
    rollups.write_sqlite(c)?;
    if let Some(mark) = mark {
        journal::record_sqlite(c, mark)?;
    }
    Ok(inserted)
}

impl Store {
    /// Run `write` in one immediate transaction on the SQLite writer's connection, then keep
    /// the WAL bounded. `write` returns the rows it wrote; `rows` is what it may write, which
    /// decides beforehand whether this write may restart the WAL.
    ///
    /// Passive checkpoints (the background ones) copy pages but only restart the WAL if they
    /// catch up at the very moment a write begins, which under bulk load with requests reading
    /// is almost never: the WAL grew without bound (2 GB in 20 s, each new page of it costing
    /// the kernel a zeroed block). So once the rows written since the last restart reach
    /// `sqlite_wal_restart_rows`, a restarting checkpoint waits for the readers, and the WAL is
    /// written from its start again.
    pub(crate) async fn write_sqlite<F>(&self, rows: usize, write: F) -> Result<usize, StoreError>
    where
        F: FnOnce(&mut diesel::sqlite::SqliteConnection) -> QueryResult<usize> + Send + 'static,
    {
        let mut guard = self.inner.sqlite_writer.lock().await;
        let writer = &mut *guard;
        let (since, limit) = (writer.rows_since_wal_restart, self.inner.wal_restart_rows);
        let conn = writer.open(&self.inner.url).await?;
        // This write may restart the WAL: wait for a background checkpoint to finish first,
        // or SQLite would refuse the restart as busy.
        let checkpointing = match since.saturating_add(rows) >= limit {
            true => Some(self.inner.checkpointing.clone().lock_owned().await),
            false => None,
        };
        // On the blocking thread with the plain diesel connection: one transaction per write
        // is what makes SQLite fast, and its statements run without an await each.
        let written = conn
            .spawn_blocking(move |c| {
                // A panic in `write` (a bug) must reach the caller as the panic it is: the
                // blocking thread would otherwise report it as a lost connection, which
                // callers retry for as long as the database seems down.
                let written = match std::panic::catch_unwind(AssertUnwindSafe(|| c.immediate_transaction(write))) {
                    Ok(written) => written?,
                    Err(panic) => return QueryResult::Ok(Err(panic)),
                };
                let restarted = since + written >= limit && restart_wal(c);
                drop(checkpointing);
                QueryResult::Ok(Ok((written, restarted)))
            })
            .await;
        match written {
            Ok(Err(panic)) => {
                // Its transaction is still open (diesel rolls back only on an error): the
                // connection goes, and SQLite rolls the transaction back as it closes.
                writer.conn = None;
                drop(guard);
                std::panic::resume_unwind(panic)
            }
            Ok(Ok((written, restarted))) => {
                writer.rows_since_wal_restart = if restarted { 0 } else { since + written };
                if let Some(wanted) = &self.inner.checkpoint_wanted {
                    // Full: a checkpoint is already due, and will cover this commit.
                    let _ = wanted.try_send(());
                }
                Ok(written)
            }
            Err(err) => {
                // It may be broken; the next write opens a fresh one.
                writer.conn = None;
                Err(StoreError::query(err))
            }
        }
    }
}

/// A restarting checkpoint after a commit; whether the WAL now starts over. The data is
/// committed: whatever happens to the checkpoint, the write must not be reported as failed,
/// or its retry would store it twice.
///
/// A restarting checkpoint waits (in SQLite's busy handler) until no reader uses the WAL, and
/// holds the writer meanwhile: under a steady stream of queries that wait ran to seconds (a
/// 2.3 s ingest-to-queryable stall while retention deleted millions of rows). So it waits at
/// most `RESTART_WAIT_MS`, and otherwise is tried again after the next write.
fn restart_wal(c: &mut diesel::sqlite::SqliteConnection) -> bool {
    const RESTART_WAIT_MS: u32 = 20;
    let short = format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}");
    if let Err(err) = diesel::connection::SimpleConnection::batch_execute(c, &short) {
        tracing::warn!(error = %err, "cannot shorten the busy timeout for a WAL restart");
        return false;
    }
    let restarted = wal_restart(c);
    if let Err(err) = diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA busy_timeout = 10000") {
        tracing::warn!(error = %err, "cannot restore the writer's busy timeout");
    }
    restarted
}

fn wal_restart(c: &mut diesel::sqlite::SqliteConnection) -> bool {
    match crate::wal_checkpoint(c, "RESTART") {
        Ok(Some(Checkpoint { busy: 0, .. })) => true,
        Ok(Some(Checkpoint { log, checkpointed, .. })) => {
            tracing::debug!(log, checkpointed, "WAL checkpoint could not restart the log");
            false
        }
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(error = %err, "restarting WAL checkpoint failed; retried after the next write");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly by design.

    use super::*;
    use crate::Backend;
    use crate::testing::TestDb;

    /// A panic inside a SQLite write reaches the caller as a panic (not as a lost connection,
    /// which workers would retry forever), nothing of the write stays, and the writer works on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_panic_while_writing_is_the_callers_and_leaves_nothing_behind() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let panicking = store.clone();
        let write = tokio::spawn(async move {
            panicking
                .write_sqlite(1, |c| {
                    diesel::RunQueryDsl::execute(
                        diesel::sql_query(
                            "INSERT INTO tenants (slug, name, created_at_ms) VALUES ('half', 'written', 0)",
                        ),
                        c,
                    )?;
                    panic!("injected")
                })
                .await
        });
        let err = write.await.unwrap_err();
        assert!(err.is_panic(), "{err}");
        // The transaction went with its connection: the row is gone and the database is free
        // for writes on other connections and on the writer.
        assert!(store.tenant_by_slug("half").await.unwrap().is_none());
        let tenant = store.create_tenant("after", "", 0).await.unwrap();
        let json = br#"{"metric_name":"m","value":1}"#;
        let metrics = microdash_core::metric::parse_metrics(json, &microdash_core::Limits::default(), 0).unwrap();
        let batch = Batch { tenant_id: tenant.id, received_at_ms: 0, metrics };
        assert_eq!(store.insert_batches(&[&batch], 0).await.unwrap().inserted, 1);
    }
}
