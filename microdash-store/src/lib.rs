//! microdash storage on diesel + diesel-async: SQLite (the embedded default) and MariaDB
//! behind one API.
//!
//! - [`Store`]: the handle everything else uses; cheap to clone.
//! - `admin`: tenants and API tokens ([`Tenant`], [`TokenInfo`], [`Principal`]).
//! - `users`: dashboard users (Argon2id password hashes) and sessions ([`User`]).
//! - `sign_in`: sign-in attempts counted per username and client address before the password
//!   is checked ([`Store::count_sign_in_attempt`], [`Admission`]).
//! - `data`: series, raw points, agents, the latest value per series and the dead-letter
//!   store ([`InsertStats`], [`PointQuery`], [`StoredPoint`], [`LatestValue`], [`DeadLetter`]).
//! - `layouts`: each tenant's dashboard layout ([`StoredLayout`]).
//! - `journal`: how far the embedded queue's journal is stored ([`JournalMark`],
//!   [`JournalProgress`]), recorded in the transaction that stores its batches.
//! - `alerts`: alert rules and channels ([`StoredRule`], [`StoredChannel`]), instance states
//!   and their history ([`InstanceRow`], [`EventRow`]), each evaluation step stored in one
//!   transaction ([`AlertStep`]), the notification queue and log ([`NotificationRow`]), and
//!   named leases ([`Store::try_lease`]).
//! - `testing` (cargo feature `testing`, off by default): per-test databases, for this crate's
//!   tests and its dependents' (their dev-dependencies enable it).
//!
//! API boundary: no diesel type appears in a public signature, and no error of diesel's (or
//! serde_json's, or the pool's) converts into [`StoreError`], so the backends can change
//! without touching callers. Each query is written once and compiled per backend by the
//! `with_conn!` macro, which matches on the pool enum.
//!
//! Architecture invariant: `(tenant_id, dedupe_id)` is a unique index on points, so a
//! metric retried or delivered twice is stored once even when two workers race.

mod admin;
mod alerts;
mod data;
mod error;
mod journal;
mod layouts;
mod retention;
mod rollups;
mod schema;
mod sign_in;
#[cfg(feature = "testing")]
pub mod testing;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::AsyncConnection;
use diesel_async::AsyncMysqlConnection;
use diesel_async::SimpleAsyncConnection;
use diesel_async::pooled_connection::bb8::Pool as Bb8Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use microdash_core::SeriesKey;

pub use admin::{
    Credential, MAX_LABEL_BYTES, MqttAccount, Principal, QuotaChange, Reach, RetentionChange, Tenant, TokenInfo,
};
pub use alerts::{
    AlertStep, AttemptOutcome, EventFilter, EventRow, Fence, InstanceRef, InstanceRow, MAX_LEASE_HOLDER_CHARS,
    MAX_LEASE_NAME_CHARS, MAX_NOTIFICATION_ERROR_CHARS, NewEvent, NewNotification, NotificationRow, StoredChannel,
    StoredRule,
};
pub use data::{Agent, DeadLetter, InsertStats, LatestValue, PointQuery, SeriesInfo, StoredPoint};
pub use error::StoreError;
pub use journal::{JournalMark, JournalProgress, MAX_JOURNAL_ID_CHARS};
pub use layouts::StoredLayout;
pub use retention::DataKind;
pub use rollups::{ImportedBucket, RollupLevel, StoredBucket};
pub use sign_in::{Admission, AttemptKey, AttemptLimit, CountedAttempt, MAX_ATTEMPT_SUBJECT_BYTES};
pub use users::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, User, check_password, check_username, generate_password};

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Widest values the schema stores (MariaDB column widths; SQLite follows the same rule so
/// both backends accept the same data).
const STORED_WIDTHS: [(&str, usize); 3] =
    [("max_name_bytes", 200), ("max_agent_id_bytes", 128), ("max_dedupe_id_bytes", 128)];

/// Check that validation limits fit the schema: a limit above a column's width would let a
/// value through validation only to be truncated (or rejected) by the database.
pub fn check_limits(limits: &microdash_core::Limits) -> Result<(), StoreError> {
    let configured = [limits.max_name_bytes, limits.max_agent_id_bytes, limits.max_dedupe_id_bytes];
    for ((key, width), value) in STORED_WIDTHS.iter().zip(configured) {
        if value > *width {
            return Err(StoreError::invalid(format!("{key} = {value} exceeds what storage holds ({width})")));
        }
    }
    Ok(())
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (WAL mode).
    Sqlite,
    /// MariaDB / MySQL.
    Mysql,
}

impl Backend {
    /// Short name for health output and logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }
}

/// Pool tuning.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most open connections. SQLite has one writer at a time, so more mainly helps reads.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the store reports unavailable.
    pub connect_timeout: Duration,
    /// SQLite: rows written between checkpoints that restart the WAL from its beginning,
    /// which bounds its size under sustained load (about 120 bytes a row).
    pub sqlite_wal_restart_rows: usize,
    /// SQLite: least time between background checkpoints, which copy committed pages from the
    /// WAL into the database file on a connection of their own, so that no writer waits for
    /// that copy and its fsync. `None` leaves it all to the restarts above.
    pub sqlite_checkpoint_interval: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            sqlite_wal_restart_rows: 1_000_000,
            sqlite_checkpoint_interval: Some(Duration::from_millis(200)),
        }
    }
}

enum Pool {
    Sqlite(Bb8Pool<SqliteConn>),
    Mysql(Bb8Pool<AsyncMysqlConnection>),
}

/// Handle to the database: pooled connections plus a cache of series ids.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    backend: Backend,
    pool: Pool,
    /// Series key -> series id. Series are never renamed or deleted while the process
    /// runs, so entries cannot go stale; the map is cleared if it grows past
    /// [`SERIES_CACHE_MAX`] to bound memory.
    series_cache: Mutex<HashMap<SeriesKey, i64>>,
    /// `StoreOptions::sqlite_wal_restart_rows`.
    wal_restart_rows: usize,
    /// SQLite has one writer at a time, so point inserts share one connection of their own:
    /// workers queue here instead of in SQLite's busy handler (which polls with sleeps of up
    /// to 100 ms), and the writer's page cache stays warm (a pooled connection's would be
    /// cold half the time).
    sqlite_writer: tokio::sync::Mutex<SqliteWriter>,
    /// Wakes the background checkpointer after a commit (SQLite with checkpoints on). Full
    /// means a wake-up is already pending, which covers this commit too; dropping it (with
    /// the store) stops the checkpointer.
    checkpoint_wanted: Option<tokio::sync::mpsc::Sender<()>>,
    /// Held by whoever checkpoints the SQLite WAL: SQLite answers a second checkpoint
    /// "busy" at once, without its busy handler, so without this the writer's restarting
    /// checkpoint could keep colliding with the background one and the WAL keep growing.
    checkpointing: Arc<tokio::sync::Mutex<()>>,
}

/// The SQLite point writer's connection and WAL bookkeeping (see `Store::insert_batches`).
#[derive(Default)]
pub(crate) struct SqliteWriter {
    /// Opened on first use; dropped after an error, to be opened afresh.
    pub(crate) conn: Option<SqliteConn>,
    /// Rows written since the WAL was last restarted.
    pub(crate) rows_since_wal_restart: usize,
}

impl SqliteWriter {
    /// The writer's connection, opened if there is none.
    pub(crate) async fn open(&mut self, url: &str) -> Result<&mut SqliteConn, StoreError> {
        match &mut self.conn {
            Some(conn) => Ok(conn),
            empty => Ok(empty.insert(
                establish_sqlite(sqlite_path(url).to_owned())
                    .await
                    .map_err(|e| StoreError::unavailable(e.to_string()))?,
            )),
        }
    }
}

const SERIES_CACHE_MAX: usize = 1_000_000;

/// The SQLite writer's connection, lent out for one transaction of `write_with!`.
pub(crate) struct LentWriter<'a> {
    /// Held until the connection is back, so the writer has one user at a time.
    writer: tokio::sync::MutexGuard<'a, SqliteWriter>,
    /// The connection, out of the writer while lent: if the future using it is dropped
    /// halfway, the connection goes with it, and closing it rolls its transaction back.
    pub(crate) conn: SqliteConn,
    /// `Inner::checkpoint_wanted`.
    checkpoint_wanted: Option<&'a tokio::sync::mpsc::Sender<()>>,
}

impl LentWriter<'_> {
    /// Give the connection back after a commit; after a failure it is dropped instead, as
    /// it may be broken, and the next write opens a fresh one.
    pub(crate) fn finish(mut self, committed: bool) {
        if committed {
            self.writer.conn = Some(self.conn);
            if let Some(wanted) = self.checkpoint_wanted {
                // Full: a checkpoint is already due, and will cover this commit.
                let _ = wanted.try_send(());
            }
        }
    }
}

impl Store {
    /// Lend out the SQLite writer's connection (opened if there is none) for one transaction.
    pub(crate) async fn sqlite_writer_conn(&self) -> Result<LentWriter<'_>, StoreError> {
        let mut writer = self.inner.sqlite_writer.lock().await;
        let conn = match writer.conn.take() {
            Some(conn) => conn,
            None => establish_sqlite(sqlite_path(&self.inner.url).to_owned())
                .await
                .map_err(|e| StoreError::unavailable(e.to_string()))?,
        };
        Ok(LentWriter { writer, conn, checkpoint_wanted: self.inner.checkpoint_wanted.as_ref() })
    }
}

/// Run `$body` with `$conn` bound to a pooled connection of whichever backend is in use.
/// The body is compiled once per backend, so it must type-check against both. Its `?` turns
/// diesel's and serde_json's errors into a [`StoreError`] (through the crate-private
/// `error::Failure`), and the macro's own `?` hands that to the calling function. The body
/// runs in an async block of its own: a `return` in it would not leave the function.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {
        async {
            match &$store.inner.pool {
                $crate::Pool::Sqlite(pool) => {
                    #[allow(unused_mut)]
                    let mut $conn = pool.get().await?;
                    Ok::<_, $crate::error::Failure>($body)
                }
                $crate::Pool::Mysql(pool) => {
                    #[allow(unused_mut)]
                    let mut $conn = pool.get().await?;
                    Ok::<_, $crate::error::Failure>($body)
                }
            }
        }
        .await
        .map_err($crate::error::Failure::into_store)?
    };
}
pub(crate) use with_conn;

/// Load the rows of `$query` (owned, so it can move to a blocking thread) on a reader,
/// compiled once per backend like `with_conn!`. On SQLite it runs on the pool's blocking
/// thread with the plain connection, which decodes each row straight from the statement:
/// diesel-async's wrapper first copies every value of every row (`sqlite3_value_dup`), which
/// cost more than the query itself on answers of tens of thousands of rows.
macro_rules! load_rows {
    ($store:expr, $query:expr) => {{
        let query = $query;
        match &$store.inner.pool {
            $crate::Pool::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err($crate::StoreError::pool)?;
                conn.spawn_blocking(move |c| diesel::RunQueryDsl::load(query, c))
                    .await
                    .map_err($crate::StoreError::query)?
            }
            $crate::Pool::Mysql(pool) => {
                let mut conn = pool.get().await.map_err($crate::StoreError::pool)?;
                diesel_async::RunQueryDsl::load(query, &mut conn).await.map_err($crate::StoreError::query)?
            }
        }
    }};
}
pub(crate) use load_rows;

/// Run `$body` (a `Result<_, Failure>` that uses `$conn`) where writes go, compiled once per
/// backend like `with_conn!`. On SQLite that is the single writer's connection
/// (`Store::sqlite_writer_conn`) in one `BEGIN IMMEDIATE` transaction, whichever the mode:
/// writers queue on the writer's mutex rather than in SQLite's busy handler, and what the body
/// reads cannot change before it commits. On MariaDB, `transaction` runs the body in one
/// transaction on a pooled connection; `autocommit` runs it without one, each statement
/// committing by itself, for single statements that must not hold locks between them.
///
/// The body's error is the crate-private `error::Failure`, which `?` builds from diesel's
/// errors and which diesel's transactions accept; the macro's value is a
/// `Result<_, StoreError>`.
macro_rules! write_with {
    ($store:expr, $mode:ident, |$conn:ident| $body:expr) => {
        match &$store.inner.pool {
            $crate::Pool::Sqlite(_) => {
                let mut writer = $store.sqlite_writer_conn().await?;
                let done = writer
                    .conn
                    .immediate_transaction(async |$conn| -> Result<_, $crate::error::Failure> { $body })
                    .await;
                writer.finish(done.is_ok());
                done.map_err($crate::error::Failure::into_store)
            }
            $crate::Pool::Mysql(pool) => {
                let mut pooled = pool.get().await.map_err($crate::StoreError::pool)?;
                $crate::write_with!(@mysql $mode, &mut *pooled, |$conn| $body)
                    .map_err($crate::error::Failure::into_store)
            }
        }
    };
    (@mysql transaction, $c:expr, |$conn:ident| $body:expr) => {
        diesel_async::AsyncConnection::transaction($c, async |$conn| -> Result<_, $crate::error::Failure> { $body })
            .await
    };
    (@mysql autocommit, $c:expr, |$conn:ident| $body:expr) => {
        (async |$conn: &mut diesel_async::AsyncMysqlConnection| -> Result<_, $crate::error::Failure> { $body })($c)
            .await
    };
}
pub(crate) use write_with;

impl Store {
    /// Open a store. `url` is `mysql://user:pass@host/db`, `sqlite://PATH` or a plain file
    /// path (SQLite). A SQLite file and its directory are created when missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let mut checkpoint_wanted = None;
        let checkpointing = Arc::new(tokio::sync::Mutex::new(()));
        let (backend, pool) = if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let manager =
                AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, mysql_manager_config());
            (Backend::Mysql, Pool::Mysql(build_pool(manager, options).await?))
        } else {
            let path = sqlite_path(url);
            if path.is_empty() || path.contains("://") {
                return Err(StoreError::unsupported_url(microdash_core::text::redact_url_password(url)));
            }
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::unavailable(format!("creating {}: {e}", dir.display())))?;
            }
            let mut config = fast_recycling::<SqliteConn>();
            config.custom_setup = Box::new(|url| Box::pin(establish_sqlite(url.to_owned())));
            let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
            if let Some(interval) = options.sqlite_checkpoint_interval {
                let (wanted, wakes) = tokio::sync::mpsc::channel(1);
                tokio::spawn(checkpoint_in_background(path.to_owned(), interval, wakes, checkpointing.clone()));
                checkpoint_wanted = Some(wanted);
            }
            (Backend::Sqlite, Pool::Sqlite(build_pool(manager, options).await?))
        };
        Ok(Store {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                backend,
                pool,
                series_cache: Mutex::new(HashMap::new()),
                wal_restart_rows: options.sqlite_wal_restart_rows,
                sqlite_writer: tokio::sync::Mutex::default(),
                checkpoint_wanted,
                checkpointing,
            }),
        })
    }

    /// Apply pending migrations. Safe to call on every start and from several processes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let url = self.inner.url.clone();
        let applied = match self.inner.backend {
            Backend::Sqlite => {
                let conn = establish_sqlite(sqlite_path(&url).to_owned())
                    .await
                    .map_err(|e| StoreError::unavailable(e.to_string()))?;
                run_migrations(conn, SQLITE_MIGRATIONS).await?
            }
            Backend::Mysql => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let mut conn =
                    AsyncMysqlConnection::establish(&url).await.map_err(|e| StoreError::unavailable(e.to_string()))?;
                lock_mysql_migrations(&mut conn).await?;
                // The lock belongs to this session: it ends with the connection, after the
                // migrations, or with the process if it dies halfway.
                run_migrations(conn, MYSQL_MIGRATIONS).await?
            }
        };
        if applied > 0 {
            tracing::info!(backend = self.backend().name(), applied, "database migrated");
        }
        Ok(())
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Check that a connection can be had and answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_conn!(self, |conn| conn.batch_execute("SELECT 1").await?);
        Ok(())
    }
}

fn fast_recycling<C: AsyncConnection + 'static>() -> ManagerConfig<C> {
    // Checking each connection with a query on every checkout would double the round trips
    // of the small auth lookups; a broken connection is detected on use and dropped instead
    // (for MariaDB see `mysql_manager_config`).
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    config
}

/// Watches one MariaDB connection's queries for a failure that ends the connection (the
/// server restarted or the network cut it). diesel-async's pool only drops a MySQL
/// connection whose transaction broke; without this watch, after a database restart the
/// pool kept handing out dead connections and every query failed until the process was
/// restarted.
#[derive(Default)]
struct ConnectionWatch {
    lost: bool,
}

impl diesel::connection::Instrumentation for ConnectionWatch {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::FinishQuery { error: Some(err), .. } = event
            && error::ends_connection(err)
        {
            self.lost = true;
        }
    }
}

/// Pooled MariaDB connections carry a [`ConnectionWatch`], and one whose connection was lost
/// is not handed out again: the query that hit the loss fails, the next gets a new
/// connection. The check is a flag, not a round trip.
fn mysql_manager_config() -> ManagerConfig<AsyncMysqlConnection> {
    let mut config = fast_recycling::<AsyncMysqlConnection>();
    config.custom_setup = Box::new(|url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn = AsyncMysqlConnection::establish(&url).await?;
            conn.set_instrumentation(ConnectionWatch::default());
            Ok(conn)
        })
    });
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        let lost = conn.instrumentation().downcast_ref::<ConnectionWatch>().is_some_and(|watch| watch.lost);
        Box::pin(async move {
            match lost {
                true => Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new("the connection was lost".to_owned()),
                )),
                false => Ok(()),
            }
        })
    }));
    config
}

async fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    options: &StoreOptions,
) -> Result<Bb8Pool<C>, StoreError>
where
    C: Send + 'static,
    AsyncDieselConnectionManager<C>:
        bb8::ManageConnection<Connection = C, Error = diesel_async::pooled_connection::PoolError>,
{
    let pool = bb8::Pool::builder()
        .max_size(options.max_connections)
        .connection_timeout(options.connect_timeout)
        .build(manager)
        .await
        .map_err(|e| StoreError::unavailable(e.to_string()))?;
    // bb8 connects lazily; fail at start-up rather than on the first request.
    drop(pool.get().await.map_err(StoreError::pool)?);
    Ok(pool)
}

/// The file of a SQLite URL (`sqlite://PATH` or a plain path).
pub(crate) fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Open one SQLite connection with the pragmas every connection needs.
pub(crate) async fn establish_sqlite(path: String) -> diesel::ConnectionResult<SqliteConn> {
    let mut conn = SqliteConn::establish(&path).await?;
    // WAL lets readers run beside the single writer; NORMAL sync is durable across process
    // crashes (only an OS crash can lose the last commits); busy_timeout makes concurrent
    // writers wait instead of failing; a 32 MiB page cache keeps the hot leaves of the
    // (series, time) index in memory, which is what bounds insert speed. No commit runs a
    // checkpoint itself: that would stall the committing request or worker for the copy and
    // its fsync (100 ms at 64 MiB). The store checkpoints in the background instead, and the
    // point writer restarts the WAL periodically (`StoreOptions`).
    conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 0;")
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

/// What `PRAGMA wal_checkpoint` answers: whether it was blocked, the WAL's frames, and how
/// many of them are in the database file.
#[derive(diesel::QueryableByName)]
pub(crate) struct Checkpoint {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub(crate) busy: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub(crate) log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub(crate) checkpointed: i32,
}

/// Run `PRAGMA wal_checkpoint(MODE)` on `conn`.
pub(crate) fn wal_checkpoint(conn: &mut SqliteConnection, mode: &str) -> diesel::QueryResult<Option<Checkpoint>> {
    let answer: Vec<Checkpoint> =
        diesel::RunQueryDsl::load(diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")), conn)?;
    Ok(answer.into_iter().next())
}

/// The background checkpointer of a SQLite store: after commits, at most once per
/// `interval`, a passive checkpoint copies what the WAL holds into the database file. Passive
/// means it never blocks a commit nor waits for readers; pages a reader still needs are left
/// for the next round. The writer's restarting checkpoint waits for it (`checkpointing`).
/// Ends when the store is dropped.
async fn checkpoint_in_background(
    path: String,
    interval: Duration,
    mut wanted: tokio::sync::mpsc::Receiver<()>,
    checkpointing: Arc<tokio::sync::Mutex<()>>,
) {
    let mut conn: Option<SqliteConn> = None;
    // A wake-up still buffered when the store is dropped is not worth a checkpoint: the
    // store's last connection to close checkpoints anyway.
    while wanted.recv().await.is_some() && !wanted.is_closed() {
        let started = tokio::time::Instant::now();
        let _checkpointing = checkpointing.lock().await;
        let ready = match &mut conn {
            Some(ready) => Ok(ready),
            empty => establish_sqlite(path.clone()).await.map(|opened| empty.insert(opened)).map_err(|e| e.to_string()),
        };
        let done = match ready {
            Ok(ready) => ready.spawn_blocking(|c| wal_checkpoint(c, "PASSIVE")).await.map_err(|e| e.to_string()),
            Err(err) => Err(err),
        };
        match done {
            Ok(Some(Checkpoint { log, checkpointed, .. })) => tracing::trace!(log, checkpointed, "WAL checkpoint"),
            Ok(None) => {}
            Err(err) => {
                // Harmless for now: the writer's periodic restart checkpoints too. Retried
                // on a fresh connection after the next commit.
                tracing::warn!(error = %err, "background WAL checkpoint failed");
                conn = None;
            }
        }
        tokio::time::sleep_until(started + interval).await;
    }
}

/// Take this database's migration lock (a MariaDB named lock, waiting up to a minute).
/// Processes started together (a compose file's server, workers and bridges) would otherwise
/// race through the same migrations, and since MariaDB's DDL is not transactional, all but
/// one would fail on a table that already exists.
async fn lock_mysql_migrations(conn: &mut AsyncMysqlConnection) -> Result<(), StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        locked: Option<i64>,
    }
    // Named locks are server-wide, so the name carries the database (64 characters at most;
    // two long names cut to the same prefix only wait for each other).
    let query = "SELECT CAST(GET_LOCK(LEFT(CONCAT('microdash.migrate.', DATABASE()), 64), 60) AS SIGNED) AS locked";
    let answer: Locked =
        diesel_async::RunQueryDsl::get_result(diesel::sql_query(query), conn).await.map_err(StoreError::query)?;
    match answer.locked {
        Some(1) => Ok(()),
        Some(_) => Err(StoreError::migration("another process held the migration lock for a minute".into())),
        None => Err(StoreError::migration("the database URL names no database".into())),
    }
}

async fn run_migrations<C>(conn: C, migrations: EmbeddedMigrations) -> Result<usize, StoreError>
where
    C: AsyncConnection + Send + 'static,
    diesel_async::AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
{
    // The harness blocks on the runtime internally, so it runs on a blocking thread; that
    // also makes migration work on a current-thread runtime.
    tokio::task::spawn_blocking(move || {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(migrations)
            .map(|done| done.len())
            .map_err(|e| StoreError::migration(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::migration(e.to_string()))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly by design.

    use diesel_migrations::MigrationHarness;
    use microdash_core::rollup::Aggregate;

    use super::*;
    use crate::testing::TestDb;

    /// A database migrated up to just before the rollups, holding raw points (among them
    /// points before 1970 and two at one latest time), gets them rolled up by the upgrade, at
    /// every level (the 30-minute one by a later migration, from the 5-minute one).
    async fn upgrade_rolls_up_existing_points(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url, &StoreOptions::default()).await.unwrap();
        let before_rollups = 3;
        macro_rules! first_migrations {
            ($conn:expr, $migrations:expr) => {{
                let conn = $conn;
                // The harness blocks on this runtime, so it runs on a blocking thread of it.
                tokio::task::spawn_blocking(move || {
                    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                    for _ in 0..before_rollups {
                        harness.run_next_migration($migrations).unwrap();
                    }
                })
                .await
                .unwrap()
            }};
        }
        match backend {
            Backend::Sqlite => {
                first_migrations!(establish_sqlite(sqlite_path(&db.url).to_owned()).await.unwrap(), SQLITE_MIGRATIONS)
            }
            Backend::Mysql => {
                first_migrations!(AsyncMysqlConnection::establish(&db.url).await.unwrap(), MYSQL_MIGRATIONS)
            }
        }
        let rows = [
            (-90_000, 4.0),
            (-30_000, 2.0),
            (10_000, 1.0),
            (50_000, 3.0),
            (50_000, 7.0),
            (70_000, 5.0),
            (300_000, -1.0),
        ];
        let values: Vec<String> = rows.iter().map(|(ts, v)| format!("(1, 1, {ts}, {v})")).collect();
        let seed = async {
            with_conn!(store, |conn| {
                conn.batch_execute(&format!(
                "INSERT INTO tenants (id, slug, name, created_at_ms) VALUES (1, 't', 't', 0), (2, 'u', 'u', 0);
                 INSERT INTO series (id, tenant_id, metric_name, agent_id, tags, series_hash) VALUES (1, 1, 'm', '', '{{}}', 'h'), (2, 2, 'm', '', '{{}}', 'h');
                 INSERT INTO points (tenant_id, series_id, ts_ms, value) VALUES {};
                 INSERT INTO points (tenant_id, series_id, ts_ms, value) VALUES {huge};",
                values.join(","),
                huge = (0..10).map(|i| format!("(2, 2, {}, {:e})", i * 1000, f64::MAX)).collect::<Vec<_>>().join(",")
            ))
            .await?
            });
            Ok::<_, StoreError>(())
        };
        seed.await.unwrap();
        store.migrate().await.unwrap();
        let all = PointQuery { limit: 100, ..PointQuery::default() };
        let minutes = store.query_rollups(1, RollupLevel::OneMinute, &all).await.unwrap();
        let got: Vec<_> =
            minutes.iter().map(|b| (b.bucket_ms, b.aggregate.count, b.aggregate.sum, b.aggregate.last)).collect();
        assert_eq!(
            got,
            [
                (-120_000, 1, 4.0, 4.0),
                (-60_000, 1, 2.0, 2.0),
                (0, 3, 11.0, 7.0),
                (60_000, 1, 5.0, 5.0),
                (300_000, 1, -1.0, -1.0)
            ]
        );
        let fives = store.query_rollups(1, RollupLevel::FiveMinutes, &all).await.unwrap();
        let got: Vec<_> =
            fives.iter().map(|b| (b.bucket_ms, b.aggregate.count, b.aggregate.min, b.aggregate.max)).collect();
        assert_eq!(got, [(-300_000, 2, 2.0, 4.0), (0, 4, 1.0, 7.0), (300_000, 1, -1.0, -1.0)]);
        assert_eq!(fives[1].aggregate.last_ms, 70_000);
        let halves = store.query_rollups(1, RollupLevel::ThirtyMinutes, &all).await.unwrap();
        let got: Vec<_> = halves.iter().map(|b| (b.bucket_ms, b.aggregate)).collect();
        let agg = |count, sum, min, max, last_ms, last| Aggregate { count, sum, min, max, last_ms, last };
        assert_eq!(
            got,
            [(-1_800_000, agg(2, 6.0, 2.0, 4.0, -30_000, 2.0)), (0, agg(5, 15.0, -1.0, 7.0, 300_000, -1.0)),]
        );
        // Sums are clamped to the largest double, also of more than eight such points.
        for level in RollupLevel::ALL {
            let huge = store.query_rollups(2, level, &all).await.unwrap();
            assert_eq!(huge.iter().map(|b| (b.aggregate.count, b.aggregate.sum)).collect::<Vec<_>>(), [(10, f64::MAX)]);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sqlite_upgrade_rolls_up_existing_points() {
        upgrade_rolls_up_existing_points(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn mysql_upgrade_rolls_up_existing_points() {
        upgrade_rolls_up_existing_points(Backend::Mysql).await;
    }
}

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
