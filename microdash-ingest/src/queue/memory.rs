//! The in-process queue: a channel shared by the workers of one process, bounded by the
//! metrics it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use microdash_core::Batch;
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::{Delivery, QueueError, Receipt};

/// In-process queue of batches, bounded by the metrics they hold. Counting metrics rather
/// than requests is what bounds memory: a queued metric costs about 2 KiB of heap (its
/// strings and tag map), and a request may carry one metric or ten thousand.
#[derive(Clone)]
pub struct MemoryQueue {
    sender: mpsc::UnboundedSender<Batch>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Batch>>>,
    /// One permit per metric of room; a batch takes its permits until a worker receives it.
    room: Arc<Semaphore>,
    capacity_metrics: usize,
    /// Batches waiting.
    depth: Arc<AtomicU64>,
    enqueue_timeout: Duration,
}

impl MemoryQueue {
    /// A queue holding at most `capacity_metrics` metrics; an enqueue waits up to
    /// `enqueue_timeout` for room before failing with [`QueueError::Full`]. A batch larger
    /// than the whole queue waits for it to be empty.
    pub fn new(capacity_metrics: usize, enqueue_timeout: Duration) -> Self {
        // The semaphore's own ceiling is far above any sensible capacity.
        let capacity_metrics = capacity_metrics.clamp(1, u32::MAX as usize);
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            sender,
            receiver: Arc::new(Mutex::new(receiver)),
            room: Arc::new(Semaphore::new(capacity_metrics)),
            capacity_metrics,
            depth: Arc::default(),
            enqueue_timeout,
        }
    }

    /// The room a batch takes.
    fn permits(&self, batch: &Batch) -> u32 {
        batch.metrics.len().clamp(1, self.capacity_metrics) as u32
    }

    pub(super) async fn enqueue(&self, batch: Batch) -> Result<(), QueueError> {
        match tokio::time::timeout(self.enqueue_timeout, self.room.acquire_many(self.permits(&batch))).await {
            Err(_elapsed) => return Err(QueueError::Full),
            Ok(Err(_closed)) => return Err(QueueError::Closed),
            // Handed back by the worker that receives the batch.
            Ok(Ok(permit)) => permit.forget(),
        }
        // Counted before the send, so a worker's decrement never comes first.
        self.depth.fetch_add(1, Ordering::Relaxed);
        self.sender.send(batch).map_err(|refused| {
            // Closed between the permits and the send: the batch is not queued after all.
            self.depth.fetch_sub(1, Ordering::Relaxed);
            self.room.add_permits(self.permits(&refused.0) as usize);
            QueueError::Closed
        })
    }

    pub(super) async fn receive(&self, max_metrics: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        // One worker at a time drains the channel; the others wait on the lock, which is
        // what they would do on an empty channel anyway.
        let mut receiver = self.receiver.lock().await;
        let first = match tokio::time::timeout(wait, receiver.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(None) => return Err(QueueError::Closed),
            Ok(Some(batch)) => batch,
        };
        let mut metrics = first.metrics.len();
        let mut out = vec![first];
        while metrics < max_metrics {
            match receiver.try_recv() {
                Ok(batch) => {
                    metrics += batch.metrics.len();
                    out.push(batch);
                }
                Err(_) => break,
            }
        }
        let permits: usize = out.iter().map(|b| self.permits(b) as usize).sum();
        self.room.add_permits(permits);
        self.depth.fetch_sub(out.len() as u64, Ordering::Relaxed);
        Ok(out.into_iter().map(|batch| Delivery { batch, receipt: Receipt::Memory, deliveries: 1 }).collect())
    }

    pub(super) fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub(super) fn close(&self) {
        // Requests waiting for room get `Closed` at once; what is queued is still drained.
        self.room.close();
        if let Ok(mut receiver) = self.receiver.try_lock() {
            receiver.close();
        } else {
            // A worker holds the lock while waiting; closing through a spawned task avoids
            // blocking the caller on it.
            let receiver = self.receiver.clone();
            tokio::spawn(async move { receiver.lock().await.close() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(metrics: usize) -> Batch {
        let metric = microdash_core::Metric {
            name: "m".into(),
            agent_id: None,
            tags: Default::default(),
            timestamp_ms: 0,
            value: 1.0,
            dedupe_id: None,
        };
        Batch { tenant_id: 1, received_at_ms: 0, metrics: vec![metric; metrics] }
    }

    #[tokio::test]
    async fn room_is_counted_in_metrics_and_given_back_on_receive() {
        let queue = MemoryQueue::new(10, Duration::from_millis(10));
        queue.enqueue(batch(6)).await.unwrap();
        queue.enqueue(batch(4)).await.unwrap();
        assert_eq!(queue.depth(), 2);
        assert!(matches!(queue.enqueue(batch(1)).await, Err(QueueError::Full)), "10 of 10 metrics queued");
        let received = queue.receive(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(received.iter().map(|d| d.batch.metrics.len()).collect::<Vec<_>>(), [6, 4]);
        assert_eq!(queue.depth(), 0);
        // Larger than the whole queue: it takes all the room, once the queue is empty.
        queue.enqueue(batch(25)).await.unwrap();
        assert!(matches!(queue.enqueue(batch(1)).await, Err(QueueError::Full)));
        assert_eq!(queue.receive(100, Duration::from_millis(10)).await.unwrap().len(), 1);
        queue.enqueue(batch(10)).await.unwrap();
    }

    #[tokio::test]
    async fn closing_refuses_new_batches_and_drains_queued_ones() {
        let queue = MemoryQueue::new(10, Duration::from_secs(5));
        queue.enqueue(batch(10)).await.unwrap();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.enqueue(batch(1)).await }
        });
        tokio::task::yield_now().await;
        queue.close();
        assert!(matches!(waiting.await.unwrap(), Err(QueueError::Closed)), "a waiting enqueue ends at close");
        assert_eq!(queue.receive(100, Duration::from_millis(10)).await.unwrap().len(), 1);
        assert!(matches!(queue.receive(100, Duration::from_millis(10)).await, Err(QueueError::Closed)));
    }
}
