//! Retention: deleting what is older than a tenant keeps, in small chunks.
//!
//! Each chunk is one short statement (at most `chunk_rows` rows of one series), so a delete
//! never holds the database, or the SQLite writer that ingestion shares, for more than a few
//! milliseconds. Rollups are written in the same transaction as their points, so a bucket is
//! always complete before its raw points can expire.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use microdash_core::api::Resolution;

use crate::{Pool, RollupLevel, Store, StoreError, Tenant, with_conn};

/// What retention deletes from: raw points or one rollup level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// The `points` table.
    Raw,
    /// A rollup table.
    Rollup(RollupLevel),
}

impl DataKind {
    /// Every kind, raw first.
    pub const ALL: [DataKind; 4] = [
        DataKind::Raw,
        DataKind::Rollup(RollupLevel::OneMinute),
        DataKind::Rollup(RollupLevel::FiveMinutes),
        DataKind::Rollup(RollupLevel::ThirtyMinutes),
    ];

    /// The table's name, as `/metrics` labels it.
    pub fn table(self) -> &'static str {
        match self {
            DataKind::Raw => "points",
            DataKind::Rollup(level) => level.table(),
        }
    }

    /// The column holding a row's time.
    fn time_column(self) -> &'static str {
        if self == DataKind::Raw { "ts_ms" } else { "bucket_ms" }
    }

    /// The `tenants` column recording how far this kind was deleted
    /// ([`microdash_core::rollup::ExpiredBefore`]); the 30-minute level shares the 5-minute
    /// one's (its cutoff, rounded to half hours, never passes the 5-minute one's, so the mark
    /// only moves when the 5-minute level's delete did not run first).
    fn expired_before_column(self) -> &'static str {
        match self {
            DataKind::Raw => "raw_expired_before_ms",
            DataKind::Rollup(RollupLevel::OneMinute) => "rollup_1m_expired_before_ms",
            DataKind::Rollup(_) => "rollup_5m_expired_before_ms",
        }
    }

    /// The resolution this kind stores, which its retention is set by.
    pub fn resolution(self) -> Resolution {
        match self {
            DataKind::Raw => Resolution::Raw,
            DataKind::Rollup(level) => level.resolution(),
        }
    }

    /// The tenant `?1`'s series with a row older than `?2`: one index seek per series, on a
    /// reader, so a pass sends deletes only where there is something to delete.
    fn expiring_series_sql(self) -> String {
        let (table, time) = (self.table(), self.time_column());
        format!(
            "SELECT s.id FROM series s WHERE s.tenant_id = ? AND EXISTS \
             (SELECT 1 FROM {table} t WHERE t.series_id = s.id AND t.{time} < ?) ORDER BY s.id"
        )
    }

    /// `DELETE` of at most `?4` rows of series `?2` of tenant `?1` older than `?3`.
    fn delete_sql(self, backend: crate::Backend) -> String {
        let (table, time) = (self.table(), self.time_column());
        match (backend, self) {
            // SQLite's DELETE has no LIMIT in the bundled build.
            (crate::Backend::Sqlite, DataKind::Raw) => format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE tenant_id = ?1 AND series_id = ?2 AND {time} < ?3 LIMIT ?4)"
            ),
            (crate::Backend::Sqlite, DataKind::Rollup(_)) => format!(
                "DELETE FROM {table} WHERE series_id = ?2 AND {time} IN (SELECT {time} FROM {table} WHERE tenant_id = ?1 AND series_id = ?2 AND {time} < ?3 ORDER BY {time} LIMIT ?4)"
            ),
            (crate::Backend::Mysql, _) => format!(
                "DELETE FROM {table} WHERE tenant_id = ? AND series_id = ? AND {time} < ? ORDER BY {time} LIMIT ?"
            ),
        }
    }
}

/// Execute `$query`, a statement writing about `$rows` rows, where writes go: on SQLite
/// through the point writer (in turn with the workers, and counted towards its WAL restarts;
/// SQLite has one writer, and waiting here beats waiting in its busy handler), on MariaDB on a
/// pooled connection. Its value is the rows changed.
macro_rules! execute_written {
    ($store:expr, $rows:expr, $query:expr) => {{
        let query = $query;
        match &$store.inner.pool {
            Pool::Sqlite(_) => $store.write_sqlite($rows, move |c| diesel::RunQueryDsl::execute(query, c)).await?,
            Pool::Mysql(pool) => {
                let mut conn = pool.get().await.map_err(StoreError::pool)?;
                query.execute(&mut conn).await.map_err(StoreError::query)?
            }
        }
    }};
}

impl Store {
    /// Delete every row of `kind` of `tenant` older than `before_ms`, a chunk of at most
    /// `chunk_rows` rows at a time, yielding between chunks, after recording the cutoff on the
    /// tenant where it moves ([`microdash_core::rollup::ExpiredBefore`]). Returns the rows
    /// deleted.
    ///
    /// `tenant` as read at the start of a pass: its marks decide whether one is written, and
    /// one that moved since costs at most a statement that changes nothing (the database
    /// only ever moves a mark forward).
    pub async fn expire(
        &self,
        tenant: &Tenant,
        kind: DataKind,
        before_ms: i64,
        chunk_rows: usize,
    ) -> Result<u64, StoreError> {
        let tenant_id = tenant.id;
        // A bucket is deleted only when all of it is older than the cutoff: one that
        // straddles it still holds data that is kept.
        let before_ms = match kind {
            DataKind::Raw => before_ms,
            DataKind::Rollup(level) => microdash_core::rollup::bucket_start(before_ms, level.bucket_ms()),
        };
        let expiring =
            diesel::sql_query(kind.expiring_series_sql()).bind::<BigInt, _>(tenant_id).bind::<BigInt, _>(before_ms);
        let series_ids: Vec<SeriesId> = with_conn!(self, |conn| expiring.clone().load(&mut conn).await?);
        // Recorded before the first row goes, and only ever moved forward: from now on a query
        // treats this kind as incomplete before the cutoff (it soon is), even if the retention
        // is raised again later. With nothing to delete, only where there is no mark yet (what
        // an older version deleted is unmarked); otherwise the older mark still describes what
        // is stored, and the pass writes nothing.
        let column = kind.expired_before_column();
        let moves = match tenant.expired_before.of(kind.resolution()) {
            None => true,
            Some(mark) => !series_ids.is_empty() && mark < before_ms,
        };
        if moves {
            // With nothing to delete, only a missing mark is written (`< i64::MIN` never holds).
            let past = if series_ids.is_empty() { i64::MIN } else { before_ms };
            let mark = diesel::sql_query(format!(
                "UPDATE tenants SET {column} = ? WHERE id = ? AND ({column} IS NULL OR {column} < ?)"
            ))
            .bind::<BigInt, _>(before_ms)
            .bind::<BigInt, _>(tenant_id)
            .bind::<BigInt, _>(past);
            execute_written!(self, 1, mark);
        }
        let sql = kind.delete_sql(self.backend());
        let chunk = i64::try_from(chunk_rows.max(1)).unwrap_or(i64::MAX);
        let mut deleted = 0u64;
        for SeriesId { id: series_id } in series_ids {
            loop {
                let query = diesel::sql_query(sql.clone())
                    .bind::<BigInt, _>(tenant_id)
                    .bind::<BigInt, _>(series_id)
                    .bind::<BigInt, _>(before_ms)
                    .bind::<BigInt, _>(chunk);
                let done = execute_written!(self, chunk_rows, query);
                deleted += done as u64;
                tokio::task::yield_now().await;
                if (done as i64) < chunk {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// A series id as [`DataKind::expiring_series_sql`] returns it.
#[derive(QueryableByName)]
struct SeriesId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}
