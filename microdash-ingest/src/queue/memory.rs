//! The in-process queue: a bounded channel shared by the workers of one process.

use std::sync::Arc;
use std::time::Duration;

use microdash_core::Batch;
use tokio::sync::{Mutex, mpsc};

use super::{Delivery, QueueError, Receipt};

/// Bounded in-process queue of batches.
#[derive(Clone)]
pub struct MemoryQueue {
    sender: mpsc::Sender<Batch>,
    receiver: Arc<Mutex<mpsc::Receiver<Batch>>>,
    enqueue_timeout: Duration,
}

impl MemoryQueue {
    /// A queue holding at most `capacity_batches`; an enqueue waits up to `enqueue_timeout`
    /// for room before failing with [`QueueError::Full`].
    pub fn new(capacity_batches: usize, enqueue_timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(capacity_batches.max(1));
        Self { sender, receiver: Arc::new(Mutex::new(receiver)), enqueue_timeout }
    }

    pub(super) async fn enqueue(&self, batch: Batch) -> Result<(), QueueError> {
        match self.sender.send_timeout(batch, self.enqueue_timeout).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(QueueError::Full),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(QueueError::Closed),
        }
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
        let mut out = vec![delivery(first)];
        while metrics < max_metrics {
            match receiver.try_recv() {
                Ok(batch) => {
                    metrics += batch.metrics.len();
                    out.push(delivery(batch));
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    pub(super) fn depth(&self) -> u64 {
        (self.sender.max_capacity() - self.sender.capacity()) as u64
    }

    pub(super) fn close(&self) {
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

fn delivery(batch: Batch) -> Delivery {
    Delivery { batch, receipt: Receipt::Memory, deliveries: 1 }
}
