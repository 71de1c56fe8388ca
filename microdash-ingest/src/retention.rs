//! The retention task: every `interval`, delete what each tenant no longer keeps.
//!
//! Deletion goes a small chunk at a time ([`microdash_store::Store::expire`]), so it never
//! holds the database away from ingestion for more than a few milliseconds. Several
//! processes may run it at once (every worker of a split deployment does): deleting rows
//! that another process already deleted finds nothing, so no lease is needed.

use std::sync::Arc;
use std::time::Duration;

use microdash_core::rollup::{DAY_MS, Retention};
use microdash_store::{DataKind, RollupLevel, Store, StoreError, Tenant};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::telemetry::Telemetry;

/// Retention settings.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// What tenants keep unless they set their own.
    pub defaults: Retention,
    /// Time between passes.
    pub interval: Duration,
    /// Most rows one delete statement removes.
    pub chunk_rows: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { defaults: Retention::default(), interval: Duration::from_secs(60), chunk_rows: 2_000 }
    }
}

/// What one pass deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Raw points.
    pub points: u64,
    /// 1-minute buckets.
    pub rollups_1m: u64,
    /// 5-minute buckets.
    pub rollups_5m: u64,
    /// 30-minute buckets.
    pub rollups_30m: u64,
    /// Alert history entries and finished notifications.
    pub alert_history: u64,
}

/// Days alert history and the delivery log are kept.
pub const ALERT_HISTORY_DAYS: i64 = 30;

/// One pass over every tenant at `now_ms`; counted in `telemetry`.
///
/// A delete that fails does not hold up the rest: the pass goes on with the other tables and
/// tenants and the alert history, and returns the first error at its end, without recording
/// a completed run.
pub async fn expire_once(
    store: &Store,
    config: &RetentionConfig,
    telemetry: &Telemetry,
    now_ms: i64,
) -> Result<Expired, StoreError> {
    let mut expired = Expired::default();
    let mut failed = None;
    for tenant in store.list_tenants().await? {
        expire_tenant(store, config, telemetry, &tenant, now_ms, &mut expired, &mut failed).await;
        // The database gone: every further delete would wait for it too, the next pass retries.
        if let Some(err) = failed.take_if(|err| unavailable(err)) {
            return Err(err);
        }
    }
    match store.expire_alert_history(now_ms - ALERT_HISTORY_DAYS * DAY_MS, config.chunk_rows).await {
        Ok(history) => {
            telemetry.record_retention_deleted("alert_history", history);
            expired.alert_history = history;
        }
        Err(err) => {
            failed.get_or_insert(err);
        }
    }
    if let Some(err) = failed {
        return Err(err);
    }
    telemetry.record_retention_run(now_ms);
    Ok(expired)
}

/// Whether `err` says the database cannot be reached (rather than that one delete failed).
fn unavailable(err: &StoreError) -> bool {
    err.kind() == microdash_core::ErrorKind::Unavailable
}

/// Delete what `tenant` no longer keeps, adding the counts to `expired` and the first
/// failure to `failed`.
async fn expire_tenant(
    store: &Store,
    config: &RetentionConfig,
    telemetry: &Telemetry,
    tenant: &Tenant,
    now_ms: i64,
    expired: &mut Expired,
    failed: &mut Option<StoreError>,
) {
    let retention = tenant.retention.over(config.defaults);
    for kind in DataKind::ALL {
        let before = retention.horizon_ms(kind.resolution(), now_ms);
        let deleted = match store.expire(tenant, kind, before, config.chunk_rows).await {
            Ok(deleted) => deleted,
            Err(err) => {
                tracing::warn!(tenant = %tenant.slug, table = kind.table(), error = %err, "retention of a table failed");
                let gone = unavailable(&err);
                failed.get_or_insert(err);
                if gone {
                    return;
                }
                continue;
            }
        };
        telemetry.record_retention_deleted(kind.table(), deleted);
        match kind {
            DataKind::Raw => expired.points += deleted,
            DataKind::Rollup(RollupLevel::OneMinute) => expired.rollups_1m += deleted,
            DataKind::Rollup(RollupLevel::FiveMinutes) => expired.rollups_5m += deleted,
            DataKind::Rollup(RollupLevel::ThirtyMinutes) => expired.rollups_30m += deleted,
        }
    }
}

/// Run passes every `config.interval` until `shutdown`. A failed pass is logged and tried
/// again at the next interval.
pub async fn run_retention(
    store: Store,
    config: RetentionConfig,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let pass = tokio::select! {
            () = shutdown.cancelled() => return,
            pass = expire_once(&store, &config, &telemetry, now_ms()) => pass,
        };
        match pass {
            Ok(expired) if expired != Expired::default() => tracing::info!(
                points = expired.points,
                rollups_1m = expired.rollups_1m,
                rollups_5m = expired.rollups_5m,
                rollups_30m = expired.rollups_30m,
                alert_history = expired.alert_history,
                "retention deleted expired rows"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention pass failed; retrying at the next interval"),
        }
    }
}
