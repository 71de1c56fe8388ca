//! The queue between the HTTP/MQTT handlers and the workers.
//!
//! Two backends behind one type: [`MemoryQueue`] (in-process, the embedded default; bounded,
//! so a slow database turns into `503 Retry-After` instead of unbounded memory; with a
//! journal on disk, see [`JournalConfig`], what it accepted survives a crash) and
//! [`RedisQueue`] (Redis Streams with a consumer group: a batch stays pending until a worker
//! acknowledges it, and a batch left pending by a dead worker is claimed by another).

mod journal;
mod memory;
mod redis;

use std::time::Duration;

use microdash_core::{Batch, ErrorKind};
use microdash_store::JournalMark;

pub use self::journal::{JournalConfig, JournalUsage};
pub use self::memory::MemoryQueue;
pub use self::redis::{RedisQueue, RedisQueueConfig};

/// A received batch and what is needed to acknowledge it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The batch as enqueued.
    pub batch: Batch,
    /// Backend-specific handle for [`Queue::ack`].
    pub receipt: Receipt,
    /// How many times this batch has been handed to a worker, this time included.
    pub deliveries: u32,
}

/// Identifies a delivery to its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// In-process deliveries without a journal need no acknowledgement.
    Memory,
    /// The sequence number of a journalled in-process delivery.
    Journal(u64),
    /// A Redis stream entry id.
    Redis(String),
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The in-process queue stayed full for the whole enqueue timeout.
    #[error("queue is full")]
    Full,
    /// The queue was closed for shutdown.
    #[error("queue is closed")]
    Closed,
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// No pooled Redis connection could be had.
    #[error("redis pool: {0}")]
    Pool(String),
    /// A queued payload could not be encoded or decoded.
    #[error("queue payload: {0}")]
    Payload(#[from] serde_json::Error),
    /// The in-process queue's journal could not be read or written (disk full, unwritable
    /// directory, or in use by another process).
    #[error("queue journal: {0}")]
    Journal(std::io::Error),
    /// The database could not say how far the journal was stored.
    #[error("queue journal progress: {0}")]
    Store(String),
}

impl QueueError {
    /// The shared error classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueueError::Payload(_) => ErrorKind::Internal,
            // Disk full or unwritable: the client retries later, as with a full queue.
            _ => ErrorKind::Unavailable,
        }
    }
}

/// The queue, whichever backend carries it. Cheap to clone.
#[derive(Clone)]
pub enum Queue {
    /// In-process.
    Memory(MemoryQueue),
    /// Redis Streams.
    Redis(RedisQueue),
}

impl Queue {
    /// Hand a batch over; when this returns `Ok` the batch will be persisted (in-process:
    /// unless the process dies first; Redis: unless Redis loses it).
    pub async fn enqueue(&self, batch: Batch) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => q.enqueue(batch).await,
            Queue::Redis(q) => q.enqueue(&batch).await,
        }
    }

    /// Wait up to `wait` for batches, returning at most about `max_metrics` metrics (always
    /// at least one batch when any is available). `Err(Closed)` once a closed in-process
    /// queue is drained.
    pub async fn receive(
        &self,
        consumer: &mut Consumer,
        max_metrics: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        match (self, consumer) {
            (Queue::Memory(q), _) => q.receive(max_metrics, wait).await,
            (Queue::Redis(q), Consumer::Redis(c)) => q.receive(c, max_metrics, wait).await,
            (Queue::Redis(_), Consumer::Memory) => Err(QueueError::Pool("consumer does not match the queue".into())),
        }
    }

    /// Acknowledge persisted (or dead-lettered) deliveries so they are not delivered again.
    pub async fn ack(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => {
                q.ack(deliveries).await;
                Ok(())
            }
            Queue::Redis(q) => q.ack(deliveries).await,
        }
    }

    /// Tell the queue that `consumer` is still working on `deliveries` (retrying them), so
    /// they are not taken over as a dead worker's. In-process: nothing to do.
    pub async fn keep(&self, consumer: &Consumer, deliveries: &[Delivery]) -> Result<(), QueueError> {
        match (self, consumer) {
            (Queue::Redis(q), Consumer::Redis(c)) => q.keep(c, deliveries).await,
            _ => Ok(()),
        }
    }

    /// What `writer` (a worker) records in the transaction that stores journalled
    /// `deliveries`, so that replaying the journal after a crash stores none of them twice;
    /// `None` for a queue without a journal.
    pub fn journal_mark(&self, writer: i32, deliveries: &[Delivery]) -> Option<JournalMark> {
        match self {
            Queue::Memory(q) => q.journal_mark(writer, deliveries),
            Queue::Redis(_) => None,
        }
    }

    /// The journal's size on disk, for a queue with one.
    pub fn journal_usage(&self) -> Option<JournalUsage> {
        match self {
            Queue::Memory(q) => q.journal_usage(),
            Queue::Redis(_) => None,
        }
    }

    /// A consumer identity for one worker.
    pub async fn consumer(&self, name: &str) -> Result<Consumer, QueueError> {
        match self {
            Queue::Memory(_) => Ok(Consumer::Memory),
            Queue::Redis(q) => Ok(Consumer::Redis(q.consumer(name).await?)),
        }
    }

    /// Batches waiting (in Redis: waiting or being processed).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match self {
            Queue::Memory(q) => Ok(q.depth()),
            Queue::Redis(q) => q.depth().await,
        }
    }

    /// Whether the queue is reachable (in-process: whether its journal can be written).
    pub async fn ping(&self) -> Result<(), QueueError> {
        match self {
            Queue::Memory(q) => q.ping(),
            Queue::Redis(q) => q.ping().await,
        }
    }

    /// Stop accepting batches; in-process workers then drain what is left and stop.
    pub fn close(&self) {
        if let Queue::Memory(q) = self {
            q.close();
        }
    }

    /// Whether batches outlive this process (and so may be redelivered after a crash).
    pub fn is_durable(&self) -> bool {
        matches!(self, Queue::Redis(_))
    }

    /// Short backend name for health output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Queue::Memory(_) => "in-process",
            Queue::Redis(_) => "redis",
        }
    }
}

/// A worker's handle on the queue: in Redis, its consumer name and a dedicated blocking
/// connection.
pub enum Consumer {
    /// In-process queue consumer (stateless).
    Memory,
    /// Redis consumer.
    Redis(self::redis::RedisConsumer),
}
