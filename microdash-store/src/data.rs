//! Series, raw points, agents and dead letters.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use microdash_core::{Batch, SeriesKey};

use crate::schema::{agents, dead_letters, points, series};
use crate::{Pool, SERIES_CACHE_MAX, Store, StoreError, with_conn};

/// Rows per INSERT statement: 5 bind parameters a row stays well under SQLite's and
/// MariaDB's limits on parameters per statement.
const ROWS_PER_STATEMENT: usize = 5_000;

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
    pub async fn insert_batches(
        &self,
        batches: &[Batch],
        now_ms: i64,
    ) -> Result<InsertStats, StoreError> {
        let metrics: usize = batches.iter().map(|b| b.metrics.len()).sum();
        let ids = self.resolve_series(batches).await?;
        let mut rows = Vec::with_capacity(metrics);
        let mut seen = HashSet::new();
        for batch in batches {
            for metric in &batch.metrics {
                let hash = metric.series_key(batch.tenant_id).identity_hash();
                rows.push(NewPoint {
                    tenant_id: batch.tenant_id,
                    series_id: ids[&(batch.tenant_id, hash)],
                    ts_ms: metric.timestamp_ms,
                    value: metric.value,
                    dedupe_id: metric.dedupe_id.clone(),
                });
                if let Some(agent) = &metric.agent_id {
                    seen.insert((batch.tenant_id, agent.clone()));
                }
            }
        }
        let agents: Vec<AgentSeen> = seen
            .into_iter()
            .map(|(tenant_id, agent_id)| AgentSeen {
                tenant_id,
                agent_id,
                last_seen_ms: now_ms,
            })
            .collect();
        let inserted = match &self.inner.pool {
            Pool::Sqlite(pool) => {
                let mut conn = pool.get().await?;
                // Batch inserts do not compile through the async SQLite wrapper (diesel_async
                // #277), and one transaction per batch is what makes SQLite fast anyway.
                conn.spawn_blocking(move |c| {
                    c.immediate_transaction(|c| {
                        for agent in &agents {
                            diesel::RunQueryDsl::execute(
                                diesel::replace_into(agents::table).values(agent),
                                c,
                            )?;
                        }
                        let mut inserted = 0;
                        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                            inserted += diesel::RunQueryDsl::execute(
                                diesel::insert_or_ignore_into(points::table).values(chunk),
                                c,
                            )?;
                        }
                        Ok(inserted)
                    })
                })
                .await?
            }
            Pool::Mysql(pool) => {
                let mut conn = pool.get().await?;
                if !agents.is_empty() {
                    diesel::replace_into(agents::table)
                        .values(&agents)
                        .execute(&mut conn)
                        .await?;
                }
                let mut inserted = 0;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    inserted += diesel::insert_or_ignore_into(points::table)
                        .values(chunk)
                        .execute(&mut conn)
                        .await?;
                }
                inserted
            }
        };
        Ok(InsertStats { metrics, inserted })
    }

    /// Series ids for every metric in `batches`, creating the missing series.
    async fn resolve_series(
        &self,
        batches: &[Batch],
    ) -> Result<HashMap<(i64, String), i64>, StoreError> {
        let mut wanted: HashMap<(i64, String), SeriesKey> = HashMap::new();
        for batch in batches {
            for metric in &batch.metrics {
                let key = metric.series_key(batch.tenant_id);
                wanted
                    .entry((batch.tenant_id, key.identity_hash()))
                    .or_insert(key);
            }
        }
        let mut ids = HashMap::with_capacity(wanted.len());
        let mut missing = Vec::new();
        {
            let cache = self
                .inner
                .series_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (id_key, key) in wanted {
                match cache.get(&id_key) {
                    Some(id) => {
                        ids.insert(id_key, *id);
                    }
                    None => missing.push((id_key, key)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        for ((_, hash), key) in &missing {
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
        for ((tenant_id, hash), _) in &missing {
            by_tenant.entry(*tenant_id).or_default().push(hash.clone());
        }
        let mut found = Vec::new();
        for (tenant_id, hashes) in by_tenant {
            for chunk in hashes.chunks(ROWS_PER_STATEMENT) {
                let query = series::table
                    .filter(series::tenant_id.eq(tenant_id))
                    .filter(series::series_hash.eq_any(chunk.to_vec()))
                    .select((series::series_hash, series::id));
                let rows: Vec<(String, i64)> =
                    with_conn!(self, |conn| query.load(&mut conn).await?);
                found.extend(rows.into_iter().map(|(hash, id)| ((tenant_id, hash), id)));
            }
        }
        let mut cache = self
            .inner
            .series_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() + found.len() > SERIES_CACHE_MAX {
            cache.clear();
        }
        for (key, id) in found {
            cache.insert(key.clone(), id);
            ids.insert(key, id);
        }
        if let Some(((tenant_id, _), key)) = missing.iter().find(|(k, _)| !ids.contains_key(k)) {
            return Err(StoreError::NotFound(format!(
                "series {} of tenant {tenant_id} after creating it",
                key.name
            )));
        }
        Ok(ids)
    }

    /// Raw points of one tenant, oldest first. When more than `query.limit` match, the most
    /// recent ones are returned.
    pub async fn query_points(
        &self,
        tenant_id: i64,
        query: &PointQuery,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let series_rows: Vec<(i64, String, String, String)> = with_conn!(self, |conn| {
            let mut q = series::table
                .filter(series::tenant_id.eq(tenant_id))
                .select((
                    series::id,
                    series::metric_name,
                    series::agent_id,
                    series::tags,
                ))
                .into_boxed();
            if let Some(name) = &query.metric_name {
                q = q.filter(series::metric_name.eq(name.clone()));
            }
            if let Some(agent) = &query.agent_id {
                q = q.filter(series::agent_id.eq(agent.clone()));
            }
            q.load(&mut conn).await?
        });
        if series_rows.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let series_ids: Vec<i64> = series_rows.iter().map(|s| s.0).collect();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, i64, f64)> = with_conn!(self, |conn| {
            let mut q = points::table
                .filter(points::series_id.eq_any(series_ids.clone()))
                .select((points::series_id, points::ts_ms, points::value))
                .order((points::ts_ms.desc(), points::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some(start) = query.start_ms {
                q = q.filter(points::ts_ms.ge(start));
            }
            if let Some(end) = query.end_ms {
                q = q.filter(points::ts_ms.lt(end));
            }
            q.load(&mut conn).await?
        });
        rows.reverse();
        // Each series described once; points copy the description.
        let described: HashMap<i64, StoredPoint> = series_rows
            .into_iter()
            .map(|(id, metric_name, agent, tags)| {
                let point = StoredPoint {
                    metric_name,
                    agent_id: (!agent.is_empty()).then_some(agent),
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    timestamp_ms: 0,
                    value: 0.0,
                };
                (id, point)
            })
            .collect();
        Ok(rows
            .into_iter()
            .map(|(series_id, timestamp_ms, value)| StoredPoint {
                timestamp_ms,
                value,
                ..described[&series_id].clone()
            })
            .collect())
    }

    /// Keep a batch that could not be persisted.
    pub async fn add_dead_letter(
        &self,
        batch: &Batch,
        error: &str,
        attempts: i32,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = NewDeadLetter {
            tenant_id: batch.tenant_id,
            payload: serde_json::to_string(batch)?,
            error: error.to_owned(),
            attempts,
            created_at_ms: now_ms,
        };
        with_conn!(self, |conn| diesel::insert_into(dead_letters::table)
            .values(&row)
            .execute(&mut conn)
            .await?);
        Ok(())
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
        let rows: Vec<(i64, String, String, i32, i64)> =
            with_conn!(self, |conn| query.load(&mut conn).await?);
        rows.into_iter()
            .map(|(id, payload, error, attempts, created_at_ms)| {
                Ok(DeadLetter {
                    id,
                    batch: serde_json::from_str(&payload)?,
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
        let deleted = with_conn!(self, |conn| diesel::delete(target)
            .execute(&mut conn)
            .await?);
        Ok(deleted > 0)
    }
}
