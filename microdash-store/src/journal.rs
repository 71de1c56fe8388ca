//! Where the embedded queue's journal stands, recorded in the same transaction as the rows.
//!
//! The in-process queue writes every accepted batch to a journal on disk under a sequence
//! number, and replays the journal at start-up. Replaying stores nothing twice because each
//! insert of journalled batches also records their sequence numbers here
//! ([`Store::insert_batches_marked`]): the batch's rows and its mark commit together or not
//! at all, so a replay skips exactly what was stored, points without a `dedupe_id` included.
//!
//! Workers commit out of order, so the position is not one number: `journal_marks` holds a
//! low-water mark (everything up to it is stored) per writer, and `journal_ranges` the ranges
//! above it that are stored. Each worker writes only its own rows, so concurrent workers never
//! wait on each other's locks; the journal's low-water mark is the largest of them, because
//! each was true when it was written.

use diesel::QueryResult;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;

use crate::{Store, StoreError, with_conn};

/// Longest journal id the tables hold.
pub const MAX_JOURNAL_ID_CHARS: usize = 64;

/// What one insert of journalled batches records beside its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalMark {
    /// Which journal (a queue directory has an id of its own, so two servers sharing a
    /// database keep apart).
    pub journal_id: String,
    /// The worker, so that each worker updates only rows of its own.
    pub writer: i32,
    /// Every sequence number up to this one is stored or was never written.
    pub low_water: i64,
    /// The sequence numbers this insert stores, as inclusive ranges.
    pub ranges: Vec<(i64, i64)>,
}

impl JournalMark {
    /// A mark for the batches numbered `seqs` (in any order).
    pub fn new(journal_id: &str, writer: i32, low_water: i64, seqs: impl IntoIterator<Item = i64>) -> Self {
        let mut seqs: Vec<i64> = seqs.into_iter().collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for seq in seqs {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == seq => *last = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        Self { journal_id: journal_id.to_owned(), writer, low_water, ranges }
    }
}

/// What a journal's marks say is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalProgress {
    /// Every sequence number up to this one is stored (0: nothing recorded yet).
    pub low_water: i64,
    /// Stored ranges above the low-water mark, inclusive, in order.
    pub ranges: Vec<(i64, i64)>,
}

impl JournalProgress {
    /// Whether the batch numbered `seq` is stored.
    pub fn is_stored(&self, seq: i64) -> bool {
        seq <= self.low_water || self.ranges.iter().any(|(first, last)| (*first..=*last).contains(&seq))
    }

    /// The highest sequence number recorded, so a journal whose files are gone never reuses one.
    pub fn highest(&self) -> i64 {
        self.ranges.iter().map(|(_, last)| *last).max().unwrap_or(0).max(self.low_water)
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Range {
    #[diesel(sql_type = BigInt)]
    first_seq: i64,
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

const ALREADY_STORED: &str = "SELECT (SELECT COUNT(*) FROM journal_ranges WHERE journal_id = ? AND first_seq <= ? AND last_seq >= ?) \
     + (SELECT COUNT(*) FROM journal_marks WHERE journal_id = ? AND low_water >= ?) AS n";
const DELETE_COVERED: &str = "DELETE FROM journal_ranges WHERE journal_id = ? AND writer = ? AND last_seq <= ?";
const INSERT_RANGE: &str = "INSERT INTO journal_ranges (journal_id, writer, first_seq, last_seq) VALUES (?, ?, ?, ?)";
const UPSERT_MARK_SQLITE: &str = "INSERT INTO journal_marks (journal_id, writer, low_water) VALUES (?, ?, ?) \
     ON CONFLICT (journal_id, writer) DO UPDATE SET low_water = MAX(low_water, excluded.low_water)";
const UPSERT_MARK_MYSQL: &str = "INSERT INTO journal_marks (journal_id, writer, low_water) VALUES (?, ?, ?) \
     ON DUPLICATE KEY UPDATE low_water = GREATEST(low_water, VALUES(low_water))";

/// The first sequence number of a mark: a mark's batches are stored all together or not at
/// all, and a retry carries the same batches or some of them, so it stands for the rest.
fn first_seq(mark: &JournalMark) -> i64 {
    <[(i64, i64)]>::first(&mark.ranges).map_or(i64::MIN, |(first, _)| *first)
}

/// The statements of a mark, as expressions, so each backend's function compiles its own.
macro_rules! already_stored {
    ($mark:expr) => {{
        let seq = first_seq($mark);
        diesel::sql_query(ALREADY_STORED)
            .bind::<Text, _>($mark.journal_id.clone())
            .bind::<BigInt, _>(seq)
            .bind::<BigInt, _>(seq)
            .bind::<Text, _>($mark.journal_id.clone())
            .bind::<BigInt, _>(seq)
    }};
}
macro_rules! delete_covered {
    ($mark:expr) => {
        diesel::sql_query(DELETE_COVERED)
            .bind::<Text, _>($mark.journal_id.clone())
            .bind::<Integer, _>($mark.writer)
            .bind::<BigInt, _>($mark.low_water)
    };
}
macro_rules! insert_range {
    ($mark:expr, $range:expr) => {
        diesel::sql_query(INSERT_RANGE)
            .bind::<Text, _>($mark.journal_id.clone())
            .bind::<Integer, _>($mark.writer)
            .bind::<BigInt, _>($range.0)
            .bind::<BigInt, _>($range.1)
    };
}
macro_rules! upsert_mark {
    ($sql:expr, $mark:expr) => {
        diesel::sql_query($sql)
            .bind::<Text, _>($mark.journal_id.clone())
            .bind::<Integer, _>($mark.writer)
            .bind::<BigInt, _>($mark.low_water)
    };
}

/// On SQLite, inside the writer's transaction: whether the mark's batches are stored already
/// (a retry after a commit whose answer was lost).
pub(crate) fn already_stored_sqlite(c: &mut diesel::SqliteConnection, mark: &JournalMark) -> QueryResult<bool> {
    if mark.ranges.is_empty() {
        return Ok(false);
    }
    let found: Count = diesel::RunQueryDsl::get_result(already_stored!(mark), c)?;
    Ok(found.n > 0)
}

/// On SQLite, inside the writer's transaction: record the mark.
pub(crate) fn record_sqlite(c: &mut diesel::SqliteConnection, mark: &JournalMark) -> QueryResult<()> {
    diesel::RunQueryDsl::execute(delete_covered!(mark), c)?;
    for range in &mark.ranges {
        diesel::RunQueryDsl::execute(insert_range!(mark, range), c)?;
    }
    diesel::RunQueryDsl::execute(upsert_mark!(UPSERT_MARK_SQLITE, mark), c)?;
    Ok(())
}

/// On MariaDB, inside the insert's transaction: whether the mark's batches are stored already.
pub(crate) async fn already_stored_mysql(
    c: &mut diesel_async::AsyncMysqlConnection,
    mark: &JournalMark,
) -> QueryResult<bool> {
    if mark.ranges.is_empty() {
        return Ok(false);
    }
    let found: Count = already_stored!(mark).get_result(c).await?;
    Ok(found.n > 0)
}

/// On MariaDB, inside the insert's transaction: record the mark. The rows are this writer's
/// own, so no other worker's transaction waits for their locks.
pub(crate) async fn record_mysql(c: &mut diesel_async::AsyncMysqlConnection, mark: &JournalMark) -> QueryResult<()> {
    delete_covered!(mark).execute(c).await?;
    for range in &mark.ranges {
        insert_range!(mark, range).execute(c).await?;
    }
    upsert_mark!(UPSERT_MARK_MYSQL, mark).execute(c).await?;
    Ok(())
}

impl Store {
    /// What the marks of `journal_id` say is stored. Ranges the low-water mark covers are
    /// deleted on the way (those of workers that no longer exist would otherwise stay), so
    /// call it before the journal's workers start.
    pub async fn journal_progress(&self, journal_id: &str) -> Result<JournalProgress, StoreError> {
        if journal_id.is_empty() || journal_id.chars().count() > MAX_JOURNAL_ID_CHARS {
            return Err(StoreError::invalid(format!("a journal id has 1 to {MAX_JOURNAL_ID_CHARS} characters")));
        }
        let id = journal_id.to_owned();
        let low: Count = with_conn!(self, |conn| diesel::sql_query(
            "SELECT COALESCE(MAX(low_water), 0) AS n FROM journal_marks WHERE journal_id = ?"
        )
        .bind::<Text, _>(id.clone())
        .get_result(&mut conn)
        .await?);
        let low_water = low.n;
        with_conn!(self, |conn| diesel::sql_query("DELETE FROM journal_ranges WHERE journal_id = ? AND last_seq <= ?")
            .bind::<Text, _>(id.clone())
            .bind::<BigInt, _>(low_water)
            .execute(&mut conn)
            .await?);
        let rows: Vec<Range> = with_conn!(self, |conn| diesel::sql_query(
            "SELECT first_seq, last_seq FROM journal_ranges WHERE journal_id = ? ORDER BY first_seq"
        )
        .bind::<Text, _>(id.clone())
        .load(&mut conn)
        .await?);
        Ok(JournalProgress { low_water, ranges: rows.into_iter().map(|r| (r.first_seq, r.last_seq)).collect() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly by design.

    use microdash_core::{Batch, Metric};

    use super::*;
    use crate::testing::TestDb;
    use crate::{Backend, PointQuery};

    fn batch(tenant_id: i64, first_ms: i64) -> Batch {
        let metric = |i: i64| Metric {
            name: "m".into(),
            agent_id: None,
            tags: Default::default(),
            timestamp_ms: first_ms + i,
            value: i as f64,
            dedupe_id: None,
        };
        Batch { tenant_id, received_at_ms: 0, metrics: (0..3).map(metric).collect() }
    }

    /// Two workers commit out of order; a retry of a committed mark stores nothing; the
    /// progress read back is what a replay skips.
    async fn marks_make_a_replay_store_nothing_twice(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let tenant = store.create_tenant("j", "J", 0).await.unwrap().id;
        let (b1, b2, b3) = (batch(tenant, 1_000), batch(tenant, 2_000), batch(tenant, 3_000));
        // Worker 1 stores batch 2 before worker 0 stores batch 1.
        let late = JournalMark::new("jid", 1, 0, [2]);
        assert_eq!(store.insert_batches_marked(&[&b2], 0, Some(&late)).await.unwrap().inserted, 3);
        let early = JournalMark::new("jid", 0, 0, [1]);
        assert_eq!(store.insert_batches_marked(&[&b1], 0, Some(&early)).await.unwrap().inserted, 3);
        assert_eq!(
            store.journal_progress("jid").await.unwrap(),
            JournalProgress { low_water: 0, ranges: vec![(1, 1), (2, 2)] }
        );
        // The same batches again (an answer lost after the commit): nothing is written.
        let again = store.insert_batches_marked(&[&b2], 0, Some(&late)).await.unwrap();
        assert_eq!((again.metrics, again.inserted), (3, 0));
        // Worker 0 now knows 1 and 2 are stored: its mark moves up and its range goes.
        let next = JournalMark::new("jid", 0, 2, [3]);
        assert_eq!(store.insert_batches_marked(&[&b3], 0, Some(&next)).await.unwrap().inserted, 3);
        let progress = store.journal_progress("jid").await.unwrap();
        assert_eq!(progress, JournalProgress { low_water: 2, ranges: vec![(3, 3)] }, "worker 1's range is covered");
        assert!([1, 2, 3].iter().all(|s| progress.is_stored(*s)) && !progress.is_stored(4));
        // Another journal in the same database knows nothing of these.
        assert_eq!(store.journal_progress("other").await.unwrap(), JournalProgress::default());
        let all = PointQuery { limit: 100, ..PointQuery::default() };
        assert_eq!(store.query_points(tenant, &all).await.unwrap().len(), 9, "no point stored twice");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sqlite_marks_make_a_replay_store_nothing_twice() {
        marks_make_a_replay_store_nothing_twice(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn mysql_marks_make_a_replay_store_nothing_twice() {
        marks_make_a_replay_store_nothing_twice(Backend::Mysql).await;
    }

    #[test]
    fn a_mark_holds_its_sequence_numbers_as_ranges() {
        let check = |seqs: &[i64], expected: &[(i64, i64)]| {
            assert_eq!(JournalMark::new("j", 0, 0, seqs.iter().copied()).ranges, expected, "{seqs:?}");
        };
        check(&[], &[]);
        check(&[4], &[(4, 4)]);
        check(&[7, 5, 6, 6, 9, 1], &[(1, 1), (5, 7), (9, 9)]);
    }

    #[test]
    fn progress_says_what_is_stored() {
        let progress = JournalProgress { low_water: 10, ranges: vec![(12, 14), (20, 20)] };
        let stored: Vec<i64> = (0..=22).filter(|s| progress.is_stored(*s)).collect();
        assert_eq!(stored, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 20]);
        assert_eq!(progress.highest(), 20);
        assert_eq!(JournalProgress::default().highest(), 0);
    }
}
