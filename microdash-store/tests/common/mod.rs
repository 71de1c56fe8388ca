//! What the storage test files share.

/// Run each named `async fn(Store)` as a test on every backend, each on a database of its own.
/// The test file must have `TestDb` and `Backend` in scope.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let db = super::TestDb::new(super::Backend::Sqlite).await;
                    super::$test(db.store().await).await;
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let db = super::TestDb::new(super::Backend::Mysql).await;
                    super::$test(db.store().await).await;
                }
            )*
        }
    };
}
