//! Throwaway databases for tests: one per test, so tests run in parallel on shared services.
//!
//! SQLite databases are files in a fresh temporary directory; MariaDB databases are created
//! with a unique name on the server at `MICRODASH_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). Both are removed when the [`TestDb`] is dropped.
//! An unreachable server is a test failure, never a skip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

use crate::{Backend, Store, StoreOptions};

/// Default server for MariaDB tests.
pub const DEFAULT_TEST_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A database that exists for the lifetime of this value.
pub struct TestDb {
    /// URL to pass to [`Store::connect`].
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    MysqlDatabase { admin_url: String, name: String },
}

/// A name no other test process or test in this process uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl TestDb {
    /// Create an empty database on `backend`. Panics (failing the test) if the server is
    /// unreachable.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique_name("microdash_test"));
                std::fs::create_dir_all(&dir).expect("creating a temporary directory");
                TestDb { url: format!("sqlite://{}", dir.join("microdash.db").display()), cleanup: Cleanup::Dir(dir) }
            }
            Backend::Mysql => {
                let admin_url =
                    std::env::var("MICRODASH_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_TEST_MYSQL_URL.to_owned());
                let name = unique_name("md_test");
                let mut conn = AsyncMysqlConnection::establish(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("MariaDB at {admin_url} is unreachable ({e}); start it, tests need it"));
                conn.batch_execute(&format!("CREATE DATABASE `{name}`")).await.expect("creating a test database");
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
                TestDb { url: format!("{base}/{name}"), cleanup: Cleanup::MysqlDatabase { admin_url, name } }
            }
        }
    }

    /// A connected, migrated store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, &StoreOptions::default()).await.expect("connecting to the test database");
        store.migrate().await.expect("migrating the test database");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::MysqlDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop cannot await, and may run inside a runtime: use a private one on a
                // thread of its own. A failed cleanup only leaves an empty database behind.
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    runtime.block_on(async {
                        if let Ok(mut conn) = AsyncMysqlConnection::establish(&admin_url).await {
                            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`")).await;
                        }
                    });
                })
                .join();
            }
        }
    }
}
