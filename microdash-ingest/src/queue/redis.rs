//! The Redis Streams queue.
//!
//! One stream (`{prefix}:ingest`) and one consumer group (`workers`). A worker reads new
//! entries with `XREADGROUP`; an entry stays in the group's pending list until the worker
//! `XACK`s it after the batch is stored. Entries pending longer than `claim_idle` belonged to
//! a worker that died or hung, and are claimed by another worker with `XCLAIM`. Acknowledged
//! entries are deleted, so the stream's length is the backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use microdash_core::Batch;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};

use super::{Delivery, QueueError, Receipt};

const GROUP: &str = "workers";
/// Longest `XREADGROUP BLOCK`; the consumer connection's response timeout is above it.
const MAX_BLOCK: Duration = Duration::from_secs(5);

/// Entries to read at once: a queued batch usually holds up to a thousand metrics.
fn entries_per_read(max_metrics: usize) -> usize {
    (max_metrics / 1000).clamp(1, 16)
}
const FIELD: &str = "b";
/// Most entries one consumer is looked up with when renewing its hold: it holds one read's
/// worth (at most 16), plus any a previous process of the same name left behind.
const MAX_HELD_ENTRIES: usize = 1_000;

/// Redis queue settings.
#[derive(Debug, Clone)]
pub struct RedisQueueConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key, so several deployments (or tests) can share one server.
    pub key_prefix: String,
    /// A pending entry idle for this long is taken over by another worker.
    pub claim_idle: Duration,
    /// Pooled connections for enqueueing.
    pub max_connections: u32,
    /// Batches waiting in the stream beyond which enqueueing answers "full" (HTTP `503`),
    /// so a stalled database turns into backpressure instead of unbounded Redis memory.
    pub max_backlog_batches: u64,
}

impl RedisQueueConfig {
    /// Defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "microdash".into(),
            claim_idle: Duration::from_secs(30),
            max_connections: 16,
            max_backlog_batches: 4_096,
        }
    }
}

/// Redis Streams queue. Cheap to clone.
#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    pool: bb8::Pool<RedisConnectionManager>,
    stream: Arc<str>,
    live_channel: Arc<str>,
    alerts_channel: Arc<str>,
    revocations_channel: Arc<str>,
    claim_idle: Duration,
    max_backlog: u64,
    backlog: Arc<Backlog>,
}

/// The stream's length as last sampled. Sampling costs a round trip, so it happens at most
/// every [`BACKLOG_SAMPLE_MS`], by whichever enqueue wins the race to do it; between samples
/// the bound can be overshot by what arrives in that interval.
struct Backlog {
    length: AtomicU64,
    /// Milliseconds since `clock_base` at the last sample, plus one (0: never sampled).
    sampled_at: AtomicU64,
    /// Monotonic, so a wall-clock step cannot freeze the sample.
    clock_base: std::time::Instant,
}

const BACKLOG_SAMPLE_MS: u64 = 100;

/// One worker's consumer: its name in the group and a connection of its own, because a
/// blocking `XREADGROUP` would hold up every other command on a shared connection.
pub struct RedisConsumer {
    name: String,
    conn: MultiplexedConnection,
}

impl RedisQueue {
    /// Connect, and create the stream and consumer group if they do not exist.
    pub async fn connect(config: &RedisQueueConfig) -> Result<Self, QueueError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager = RedisConnectionManager::new(config.url.as_str())?;
        let pool = bb8::Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .await?;
        let queue = Self {
            client,
            pool,
            stream: format!("{}:ingest", config.key_prefix).into(),
            live_channel: format!("{}:live", config.key_prefix).into(),
            alerts_channel: format!("{}:alerts", config.key_prefix).into(),
            revocations_channel: format!("{}:revocations", config.key_prefix).into(),
            claim_idle: config.claim_idle,
            max_backlog: config.max_backlog_batches,
            backlog: Arc::new(Backlog {
                length: AtomicU64::new(0),
                sampled_at: AtomicU64::new(0),
                clock_base: std::time::Instant::now(),
            }),
        };
        queue.create_group(&mut *queue.conn().await?).await?;
        Ok(queue)
    }

    /// Create the stream and its consumer group unless they exist.
    async fn create_group(&self, conn: &mut impl redis::aio::ConnectionLike) -> Result<(), QueueError> {
        // Start at 0 so entries added before the group existed are still processed.
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn conn(&self) -> Result<bb8::PooledConnection<'_, RedisConnectionManager>, QueueError> {
        self.pool.get().await.map_err(|e| QueueError::Pool(e.to_string()))
    }

    pub(super) async fn enqueue(&self, batch: &Batch) -> Result<(), QueueError> {
        let backlog = &*self.backlog;
        let now = backlog.clock_base.elapsed().as_millis() as u64 + 1;
        let last = backlog.sampled_at.load(Ordering::Relaxed);
        let stale = last == 0 || now.saturating_sub(last) >= BACKLOG_SAMPLE_MS;
        if stale && backlog.sampled_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            backlog.length.store(self.depth().await?, Ordering::Relaxed);
        }
        if backlog.length.load(Ordering::Relaxed) >= self.max_backlog {
            return Err(QueueError::Full);
        }
        let payload = serde_json::to_vec(batch)?;
        let _id: String = self.conn().await?.xadd(&*self.stream, "*", &[(FIELD, payload)]).await?;
        Ok(())
    }

    /// Announce persisted batches on the live channel (see [`crate::live`]).
    pub(crate) async fn publish_live(&self, batches: &[microdash_core::Batch]) -> Result<(), QueueError> {
        self.publish(&self.live_channel, batches).await
    }

    /// Announce alert transitions on the alerts channel (see [`crate::live`]).
    pub(crate) async fn publish_alerts(&self, notice: &crate::live::AlertNotice) -> Result<(), QueueError> {
        self.publish(&self.alerts_channel, notice).await
    }

    /// Announce a revoked credential on the revocations channel (see [`crate::revocation`]).
    pub(crate) async fn publish_revocation(&self, revoked: &crate::revocation::Revoked) -> Result<(), QueueError> {
        self.publish(&self.revocations_channel, revoked).await
    }

    /// `message` as JSON on Pub/Sub `channel`; nobody listening is no error.
    async fn publish(&self, channel: &str, message: &(impl serde::Serialize + ?Sized)) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(message)?;
        let _receivers: u64 = self.conn().await?.publish(channel, payload).await?;
        Ok(())
    }

    /// Messages of the live and the alerts channels, on a connection of their own (a
    /// subscribed connection can do nothing else).
    pub(crate) async fn subscribe_live(
        &self,
    ) -> Result<impl futures_util::Stream<Item = redis::Msg> + Send + use<>, QueueError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&*self.live_channel).await?;
        pubsub.subscribe(&*self.alerts_channel).await?;
        Ok(pubsub.into_on_message())
    }

    /// Whether a message of [`RedisQueue::subscribe_live`] came on the alerts channel.
    pub(crate) fn is_alerts_message(&self, message: &redis::Msg) -> bool {
        message.get_channel_name() == &*self.alerts_channel
    }

    /// Messages of the revocations channel, on a connection of their own.
    pub(crate) async fn subscribe_revocations(
        &self,
    ) -> Result<impl futures_util::Stream<Item = redis::Msg> + Send + Unpin + use<>, QueueError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&*self.revocations_channel).await?;
        Ok(pubsub.into_on_message())
    }

    pub(super) async fn consumer(&self, name: &str) -> Result<RedisConsumer, QueueError> {
        // Long enough for the longest BLOCK, short enough that a half-open connection is
        // noticed and replaced instead of hanging the worker.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(MAX_BLOCK + Duration::from_secs(10)));
        let conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        Ok(RedisConsumer { name: name.to_owned(), conn })
    }

    pub(super) async fn receive(
        &self,
        consumer: &mut RedisConsumer,
        max_metrics: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        match self.receive_from_group(consumer, max_metrics, wait).await {
            // Redis restarted without its data (no persistence): the stream came back with
            // the next enqueue, the group did not. Without it no worker would read again.
            Err(QueueError::Redis(err)) if err.code() == Some("NOGROUP") => {
                tracing::error!(stream = %self.stream, "the queue's consumer group is gone: Redis lost its data (run it with appendonly, see README); creating the group again");
                self.create_group(&mut consumer.conn).await?;
                Ok(Vec::new())
            }
            received => received,
        }
    }

    async fn receive_from_group(
        &self,
        consumer: &mut RedisConsumer,
        max_metrics: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        // Orphans first: a batch a dead worker left behind is older than anything new.
        let claimed = self.claim_orphans(consumer, max_metrics).await?;
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        let count = entries_per_read(max_metrics);
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer.name)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(wait.min(MAX_BLOCK).as_millis() as u64)
            .arg("STREAMS")
            .arg(&*self.stream)
            .arg(">")
            .query_async(&mut consumer.conn)
            .await?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        self.decode_all(entries.map(|entry| (entry, 1))).await
    }

    /// Decode entries; one that cannot be decoded is logged and removed so it does not block
    /// the others forever (it was written by something other than microdash).
    async fn decode_all(&self, entries: impl Iterator<Item = (StreamId, u32)>) -> Result<Vec<Delivery>, QueueError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (entry, deliveries) in entries {
            let payload: Vec<u8> = entry.get(FIELD).unwrap_or_default();
            match serde_json::from_slice(&payload) {
                Ok(batch) => good.push(Delivery { batch, receipt: Receipt::Redis(entry.id), deliveries }),
                Err(err) => {
                    tracing::error!(id = %entry.id, error = %err, "dropping an undecodable queue entry");
                    bad.push(entry.id);
                }
            }
        }
        let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
        if let Err(err) = self.remove(&bad).await {
            // They stay pending and come back later; the good entries go on now.
            tracing::warn!(error = %err, "removing undecodable entries failed");
        }
        Ok(good)
    }

    async fn claim_orphans(
        &self,
        consumer: &mut RedisConsumer,
        max_metrics: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let idle_ms = self.claim_idle.as_millis() as u64;
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg("IDLE")
            .arg(idle_ms)
            .arg("-")
            .arg("+")
            .arg(entries_per_read(max_metrics))
            .query_async(&mut consumer.conn)
            .await?;
        // A consumer asking for work holds nothing in flight, so even entries under its own
        // name (a previous process with the same name) are orphans.
        let orphans = pending.ids;
        if orphans.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = orphans.iter().map(|p| p.id.as_str()).collect();
        // XCLAIM re-checks the idle time, so two workers cannot both take the same entry.
        let claimed: StreamClaimReply = redis::cmd("XCLAIM")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg(&consumer.name)
            .arg(idle_ms)
            .arg(&ids)
            .query_async(&mut consumer.conn)
            .await?;
        if !claimed.ids.is_empty() {
            tracing::warn!(count = claimed.ids.len(), consumer = %consumer.name, "claimed batches left pending by another worker");
        }
        let entries = claimed.ids.into_iter().map(|entry| {
            let before = orphans.iter().find(|p| p.id == entry.id).map_or(1, |p| p.times_delivered);
            (entry, u32::try_from(before + 1).unwrap_or(u32::MAX))
        });
        self.decode_all(entries).await
    }

    pub(super) async fn ack(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        self.remove(&entry_ids(deliveries)).await
    }

    /// Reset the idle time of the entries `consumer` still holds. A worker retrying a batch
    /// through a database outage calls this between attempts; without it, after `claim_idle`
    /// another worker would claim the batch too and both would store it.
    pub(super) async fn keep(&self, consumer: &RedisConsumer, deliveries: &[Delivery]) -> Result<(), QueueError> {
        let ids = entry_ids(deliveries);
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        // Only entries still pending under this consumer's name: one that another worker has
        // claimed already (this one was too slow to keep it) stays theirs. The whole range:
        // ids do not order as strings ("5-10" < "5-9"), and a consumer holds one merged
        // delivery at a time, a few entries.
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(ids.len().max(MAX_HELD_ENTRIES))
            .arg(&consumer.name)
            .query_async(&mut *conn)
            .await?;
        let held: Vec<&str> = pending.ids.iter().map(|p| p.id.as_str()).filter(|id| ids.contains(id)).collect();
        if held.is_empty() {
            return Ok(());
        }
        // JUSTID: the delivery count is left alone, so keeping a batch does not bring it
        // closer to being dead-lettered as poison.
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg(&consumer.name)
            .arg(0)
            .arg(&held)
            .arg("JUSTID")
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }

    /// Acknowledge and delete entries, so the stream holds only the backlog.
    async fn remove(&self, ids: &[&str]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .cmd("XACK")
            .arg(&*self.stream)
            .arg(GROUP)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(&*self.stream)
            .arg(ids)
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self.conn().await?.xlen(&*self.stream).await?)
    }

    pub(super) async fn ping(&self) -> Result<(), QueueError> {
        let _: String = redis::cmd("PING").query_async(&mut *self.conn().await?).await?;
        Ok(())
    }
}

/// The stream entry ids of Redis deliveries.
fn entry_ids(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries
        .iter()
        .filter_map(|d| match &d.receipt {
            Receipt::Redis(id) => Some(id.as_str()),
            Receipt::Memory | Receipt::Journal(_) => None,
        })
        .collect()
}
