//! The in-process queue: a channel shared by the workers of one process, bounded by the
//! metrics it holds, and optionally a journal on disk that every batch is written to before
//! it is queued (see [`super::journal`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use microdash_core::Batch;
use microdash_store::{JournalMark, Store};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tracing::Instrument;

use super::journal::{Journal, JournalConfig, JournalUsage};
use super::{Delivery, QueueError, Receipt};

/// A queued batch and its journal sequence number, if journalled.
type Entry = (Option<u64>, Batch);

/// In-process queue of batches, bounded by the metrics they hold. Counting metrics rather
/// than requests is what bounds memory: a queued metric costs about 2 KiB of heap (its
/// strings and tag map), and a request may carry one metric or ten thousand.
#[derive(Clone)]
pub struct MemoryQueue {
    sender: mpsc::UnboundedSender<Entry>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Entry>>>,
    /// One permit per metric of room; a batch takes its permits until a worker receives it.
    room: Arc<Semaphore>,
    /// Permits that replayed batches took beyond the room there was: paid back first when
    /// they are received, so the bound holds again once the replay is drained.
    owed: Arc<AtomicUsize>,
    /// Where accepted batches are written before they are queued, if anywhere.
    journal: Option<Arc<Journal>>,
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
            owed: Arc::default(),
            journal: None,
            capacity_metrics,
            depth: Arc::default(),
            enqueue_timeout,
        }
    }

    /// [`MemoryQueue::new`] with a journal in `journal.dir`: every batch is written there
    /// before `enqueue` returns, and what the journal holds that `store` has not stored is
    /// queued again now (even beyond `capacity_metrics`), for the workers to store first.
    pub async fn with_journal(
        capacity_metrics: usize,
        enqueue_timeout: Duration,
        journal: &JournalConfig,
        store: &Store,
    ) -> Result<Self, QueueError> {
        let (journal, replay) = Journal::open(journal, store).await?;
        let mut queue = Self::new(capacity_metrics, enqueue_timeout);
        queue.journal = Some(Arc::new(journal));
        for (seq, batch) in replay {
            let permits = queue.permits(&batch);
            match queue.room.try_acquire_many(permits) {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    queue.owed.fetch_add(permits as usize, Ordering::Relaxed);
                }
            }
            queue.depth.fetch_add(1, Ordering::Relaxed);
            // The receiver is in `queue` itself, so the channel is open.
            let _ = queue.sender.send((Some(seq), batch));
        }
        Ok(queue)
    }

    /// Give back `permits` of room, paying what replayed batches owe first.
    fn give_back(&self, permits: usize) {
        let mut returned = permits;
        let _ = self.owed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
            let paid = owed.min(permits);
            returned = permits - paid;
            Some(owed - paid)
        });
        if returned > 0 {
            self.room.add_permits(returned);
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
        let Some(journal) = self.journal.clone() else {
            return if self.queue_entry(None, batch) { Ok(()) } else { Err(QueueError::Closed) };
        };
        // From here the batch holds room it must either give back or hand to a worker, and
        // once appended it is in the journal whatever the caller does. So the rest runs as a
        // task of its own: a caller that is cancelled (a client gone, a request timeout)
        // stops waiting for it, but cannot leave the room taken and the journal pinned by a
        // batch no worker will ever receive.
        let queue = self.clone();
        tokio::spawn(async move { queue.journal_and_queue(&journal, batch).await }.in_current_span())
            .await
            .unwrap_or_else(|e| Err(QueueError::Journal(std::io::Error::other(e.to_string()))))
    }

    /// Write `batch`, whose room is taken, to the journal (and sync it if so configured),
    /// then queue it.
    async fn journal_and_queue(&self, journal: &Arc<Journal>, batch: Batch) -> Result<(), QueueError> {
        let permits = self.permits(&batch) as usize;
        let (seq, batch) = match self.write_ahead(journal, batch).await {
            Ok(written) => written,
            Err(err) => {
                self.give_back(permits);
                return Err(err);
            }
        };
        if journal.fsyncs()
            && let Err(err) = journal.sync_through(seq).await
        {
            // Written but perhaps not on the disk: refused, yet still queued, for the
            // journal would replay it anyway (a client retry may store it twice, as an
            // answer lost on the way would).
            self.queue_entry(Some(seq), batch);
            return Err(err);
        }
        if self.queue_entry(Some(seq), batch) { Ok(()) } else { Err(QueueError::Closed) }
    }

    /// Append `batch` to the journal on a blocking thread (an encode and a file write).
    async fn write_ahead(&self, journal: &Arc<Journal>, batch: Batch) -> Result<(u64, Batch), QueueError> {
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || journal.append(&batch).map(|seq| (seq, batch)))
            .await
            .map_err(|e| QueueError::Journal(std::io::Error::other(e.to_string())))?
    }

    /// Hand an entry whose room is taken to the workers; false if the queue was closed
    /// meanwhile (its room is given back; a journalled batch is replayed at the next start).
    fn queue_entry(&self, seq: Option<u64>, batch: Batch) -> bool {
        // Counted before the send, so a worker's decrement never comes first.
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.sender.send((seq, batch)) {
            Ok(()) => true,
            Err(refused) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                self.give_back(self.permits(&refused.0.1) as usize);
                false
            }
        }
    }

    pub(super) async fn receive(&self, max_metrics: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        // One worker at a time drains the channel; the others wait on the lock, which is
        // what they would do on an empty channel anyway.
        let mut receiver = self.receiver.lock().await;
        let first = match tokio::time::timeout(wait, receiver.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(None) => return Err(QueueError::Closed),
            Ok(Some(entry)) => entry,
        };
        let mut metrics = first.1.metrics.len();
        let mut out = vec![first];
        while metrics < max_metrics {
            match receiver.try_recv() {
                Ok(entry) => {
                    metrics += entry.1.metrics.len();
                    out.push(entry);
                }
                Err(_) => break,
            }
        }
        let permits: usize = out.iter().map(|(_, b)| self.permits(b) as usize).sum();
        self.give_back(permits);
        self.depth.fetch_sub(out.len() as u64, Ordering::Relaxed);
        Ok(out
            .into_iter()
            .map(|(seq, batch)| Delivery {
                batch,
                receipt: seq.map_or(Receipt::Memory, Receipt::Journal),
                deliveries: 1,
            })
            .collect())
    }

    /// Journalled deliveries are stored (or dead-lettered): the journal forgets them and
    /// deletes segments that hold nothing else.
    pub(super) async fn ack(&self, deliveries: &[Delivery]) {
        let Some(journal) = &self.journal else { return };
        let seqs: Vec<u64> = deliveries
            .iter()
            .filter_map(|d| match d.receipt {
                Receipt::Journal(seq) => Some(seq),
                _ => None,
            })
            .collect();
        if seqs.is_empty() {
            return;
        }
        let journal = journal.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || journal.acknowledge(seqs)).await {
            tracing::error!(error = %err, "acknowledging journal records failed");
        }
    }

    pub(super) fn journal_mark(&self, writer: i32, deliveries: &[Delivery]) -> Option<JournalMark> {
        let journal = self.journal.as_ref()?;
        let seqs = deliveries.iter().filter_map(|d| match d.receipt {
            Receipt::Journal(seq) => i64::try_from(seq).ok(),
            _ => None,
        });
        let low_water = i64::try_from(journal.low_water()).unwrap_or(i64::MAX);
        Some(JournalMark::new(journal.id(), writer, low_water, seqs))
    }

    /// Healthy unless the journal's last append failed (it is retried with every request,
    /// so this clears by itself once the disk has room again).
    pub(super) fn ping(&self) -> Result<(), QueueError> {
        match self.journal.as_ref().and_then(|j| j.failure()) {
            Some(failure) => Err(QueueError::Journal(std::io::Error::other(failure))),
            None => Ok(()),
        }
    }

    pub(super) fn journal_usage(&self) -> Option<JournalUsage> {
        self.journal.as_ref().map(|j| j.usage())
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
        assert!(matches!(queue.enqueue(batch(3)).await, Err(QueueError::Full)), "2 metrics of room left");
        assert_eq!(queue.receive(100, Duration::from_millis(10)).await.unwrap().len(), 1);
        queue.enqueue(batch(10)).await.unwrap();
    }

    /// What a journal holds unstored is queued again at start-up even beyond the bound, and
    /// the room it took is paid back before new requests get any.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_journal_is_replayed_beyond_the_bound_and_the_bound_then_holds() {
        let db = microdash_store::testing::TestDb::new(microdash_store::Backend::Sqlite).await;
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig::new(dir.path());
        let first = MemoryQueue::with_journal(10, Duration::from_millis(10), &config, &store).await.unwrap();
        for _ in 0..3 {
            first.enqueue(batch(8)).await.unwrap();
            first.receive(100, Duration::from_millis(10)).await.unwrap();
        }
        // Three batches received and never stored: the process dies.
        drop(first);
        let queue = MemoryQueue::with_journal(10, Duration::from_millis(10), &config, &store).await.unwrap();
        assert_eq!(queue.depth(), 3, "24 metrics queued in a queue of 10");
        assert!(matches!(queue.enqueue(batch(3)).await, Err(QueueError::Full)), "2 metrics of room left");
        let replayed = queue.receive(8, Duration::from_millis(10)).await.unwrap();
        assert_eq!(replayed.iter().map(|d| d.receipt.clone()).collect::<Vec<_>>(), [Receipt::Journal(1)]);
        let mark = queue.journal_mark(0, &replayed).unwrap();
        assert_eq!((mark.low_water, mark.ranges), (0, vec![(1, 1)]));
        assert!(
            matches!(queue.enqueue(batch(3)).await, Err(QueueError::Full)),
            "the first batch paid back what the others owe"
        );
        let rest = queue.receive(100, Duration::from_millis(10)).await.unwrap();
        assert_eq!(rest.len(), 2);
        queue.enqueue(batch(10)).await.unwrap();
        queue.ack(&replayed).await;
        queue.ack(&rest).await;
        let mark = queue.journal_mark(0, &queue.receive(100, Duration::from_millis(10)).await.unwrap()).unwrap();
        assert_eq!((mark.low_water, mark.ranges), (3, vec![(4, 4)]), "1 to 3 acknowledged, 4 just received");
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

    /// A caller cancelled while its batch is being journalled (a client gone, a request
    /// timeout) still leaves the batch queued, so its room comes back once a worker takes it
    /// and the journal can let go of it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_cancelled_enqueue_still_queues_what_it_journalled() {
        let db = microdash_store::testing::TestDb::new(microdash_store::Backend::Sqlite).await;
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = JournalConfig::new(dir.path());
        config.fsync = true;
        let queue = MemoryQueue::with_journal(150_000, Duration::from_millis(200), &config, &store).await.unwrap();
        // Writing and syncing 100,000 metrics takes far longer than the 1 ms the caller waits.
        let cancelled = tokio::time::timeout(Duration::from_millis(1), queue.enqueue(batch(100_000))).await;
        assert!(cancelled.is_err(), "the enqueue finished before it could be cancelled");
        let mut received = Vec::new();
        for _ in 0..100 {
            received = queue.receive(usize::MAX, Duration::from_millis(100)).await.unwrap();
            if !received.is_empty() {
                break;
            }
        }
        assert_eq!(received.iter().map(|d| d.batch.metrics.len()).collect::<Vec<_>>(), [100_000]);
        queue.ack(&received).await;
        // The room came back: a batch that fits the empty queue is taken.
        queue.enqueue(batch(100_000)).await.unwrap();
    }
}
