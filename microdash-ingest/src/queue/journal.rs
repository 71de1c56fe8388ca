//! The in-process queue's journal: every batch is appended to a file before its request is
//! answered, and what was not stored is replayed at start-up, so a `202` survives `kill -9`.
//!
//! A directory of segments (`{first sequence number:020}.seg`) written one after another.
//! A record is `[payload length: u32 LE][CRC-32 of sequence number and payload: u32 LE]
//! [sequence number: u64 LE][payload]`; the payload is the batch in a compact binary form of
//! our own (a fifth of its JSON, and no parsing at replay). Sequence numbers grow by one per
//! record across segments and restarts.
//!
//! Invariants:
//! - A record is written (and, with `fsync`, synced) before [`Journal::append`] returns,
//!   and so before any answer; the write is one `write` call into the page cache, which a
//!   killed process cannot undo. Only a power loss can, and `fsync` covers that.
//! - A failed write is cut off again (`set_len`), or else the segment is closed at once, so
//!   no record ever follows a torn one. At start-up a torn tail is cut off.
//! - A segment is deleted only when every record in it has been acknowledged, which happens
//!   only after the worker's transaction committed (or the batch was dead-lettered); the
//!   segment being written is never deleted, only closed and then deleted.
//! - Every sequence number appended and not yet acknowledged is in `outstanding`, so
//!   [`Journal::low_water`] (one below the smallest) is true: everything up to it is stored
//!   or was never written. Workers store it beside their rows (`microdash_store::JournalMark`).
//! - At most `max_bytes` of segments exist: an append that would go beyond is refused with
//!   [`QueueError::Full`] and nothing of it is written.
//! - One process at a time: the directory is locked (`flock`) for the journal's life.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use microdash_core::{Batch, Metric};
use microdash_store::{JournalProgress, MAX_JOURNAL_ID_CHARS, Store};

use super::QueueError;

const HEADER_BYTES: usize = 16;
const SEGMENT_SUFFIX: &str = ".seg";
const ID_FILE: &str = "journal-id";
const LOCK_FILE: &str = "lock";

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory of the segments, created when missing. One process at a time.
    pub dir: PathBuf,
    /// Sync every append to the disk before answering (many concurrent appends share one
    /// sync), so accepted batches also survive a power loss or an OS crash; without it they
    /// survive the process being killed, which is what SQLite's `synchronous = NORMAL` gives
    /// the stored points.
    pub fsync: bool,
    /// Most bytes of segments on disk. Beyond it requests are refused (`503`) until workers
    /// have stored enough for whole segments to go.
    pub max_bytes: u64,
    /// Size at which a segment is closed and a new one begun (at most half of `max_bytes`):
    /// space comes back a segment at a time.
    pub segment_bytes: u64,
}

impl JournalConfig {
    /// Defaults for a journal in `dir`: no fsync, 1 GiB, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), fsync: false, max_bytes: 1 << 30, segment_bytes: 64 << 20 }
    }
}

/// An open journal. Appends and acknowledgements come from many tasks at once.
pub(crate) struct Journal {
    /// This journal's name in the database's marks.
    id: String,
    dir: PathBuf,
    fsync: bool,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Held by the task that syncs; the others wait on it and usually find their record
    /// synced by then (group commit).
    sync_leader: tokio::sync::Mutex<()>,
    /// Every record up to this sequence number is synced.
    synced: AtomicU64,
    /// Why the last append failed, until one succeeds: what `/api/v1/health` reports.
    failure: Mutex<Option<String>>,
    /// The directory lock, held until the journal is dropped.
    _lock: File,
}

struct State {
    active: Active,
    /// Closed segments, oldest first.
    closed: VecDeque<Closed>,
    closed_bytes: u64,
    next_seq: u64,
    /// Appended and not yet acknowledged.
    outstanding: BTreeSet<u64>,
}

/// The segment being written.
struct Active {
    file: Arc<File>,
    path: PathBuf,
    first_seq: u64,
    bytes: u64,
    /// A failed write could not be cut off: the next append begins a new segment.
    damaged: bool,
}

struct Closed {
    path: PathBuf,
    /// Its highest sequence number (0 when it holds no record).
    last_seq: u64,
    bytes: u64,
}

/// Size on disk, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalUsage {
    /// Bytes of all segments.
    pub bytes: u64,
    /// Segments, the one being written included.
    pub segments: u64,
}

fn io_error(context: &str, path: &Path, err: io::Error) -> QueueError {
    QueueError::Journal(io::Error::new(err.kind(), format!("{context} {}: {err}", path.display())))
}

impl Journal {
    /// Open (or create) the journal in `config.dir`, and return with it the batches it holds
    /// that `store` has not stored, in sequence order.
    pub(crate) async fn open(
        config: &JournalConfig,
        store: &Store,
    ) -> Result<(Journal, Vec<(u64, Batch)>), QueueError> {
        let dir = config.dir.clone();
        let (lock, id) = tokio::task::spawn_blocking(move || lock_and_identify(&dir)).await.map_err(join_error)??;
        let progress = store.journal_progress(&id).await.map_err(|e| QueueError::Store(e.to_string()))?;
        let dir = config.dir.clone();
        let fsync = config.fsync;
        let (state, replay) =
            tokio::task::spawn_blocking(move || recover(&dir, &progress, fsync)).await.map_err(join_error)??;
        let segment_bytes = config.segment_bytes.clamp(1, (config.max_bytes / 2).max(1));
        let synced = AtomicU64::new(state.next_seq - 1);
        let journal = Journal {
            id,
            dir: config.dir.clone(),
            fsync: config.fsync,
            max_bytes: config.max_bytes,
            segment_bytes,
            state: Mutex::new(state),
            sync_leader: tokio::sync::Mutex::new(()),
            synced,
            failure: Mutex::new(None),
            _lock: lock,
        };
        if !replay.is_empty() {
            let metrics: usize = replay.iter().map(|(_, b)| b.metrics.len()).sum();
            tracing::info!(dir = %config.dir.display(), batches = replay.len(), metrics, "replaying accepted batches not yet stored");
        }
        Ok((journal, replay))
    }

    /// This journal's id, as its marks in the database name it.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step that can panic (none should), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `batch` under the next sequence number and return that number. Blocking (a
    /// file write), so called on a blocking thread. With `fsync`, follow with
    /// [`Journal::sync_through`] before answering.
    pub(crate) fn append(&self, batch: &Batch) -> Result<u64, QueueError> {
        let appended = self.write_record(batch);
        let failed = match &appended {
            Err(QueueError::Journal(err)) => Some(err.to_string()),
            _ => None,
        };
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_some() || appended.is_ok() {
            *failure = failed;
        }
        appended
    }

    /// Why appends fail at the moment (disk full, unwritable directory), if they do.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write_record(&self, batch: &Batch) -> Result<u64, QueueError> {
        let mut record = vec![0u8; HEADER_BYTES];
        encode(batch, &mut record);
        let payload_len = u32::try_from(record.len() - HEADER_BYTES)
            .map_err(|_| QueueError::Journal(io::Error::other("batch too large for one journal record")))?;
        let mut payload_crc = crc32fast::Hasher::new();
        payload_crc.update(&record[HEADER_BYTES..]);
        let len = record.len() as u64;

        let mut state = self.state();
        if state.active.damaged {
            self.roll(&mut state)?;
        }
        if state.closed_bytes + state.active.bytes + len > self.max_bytes {
            // The segment being written may hold only stored records: begin anew and give
            // its space back rather than refusing.
            let active_stored = state.outstanding.range(state.active.first_seq..).next().is_none();
            if active_stored && state.active.bytes > 0 {
                self.roll(&mut state)?;
            }
            // A record larger than the whole journal is let in once the journal is empty.
            let used = state.closed_bytes + state.active.bytes;
            if used > 0 && used + len > self.max_bytes {
                return Err(QueueError::Full);
            }
        }
        if state.active.bytes > 0 && state.active.bytes + len > self.segment_bytes {
            self.roll(&mut state)?;
        }
        let seq = state.next_seq;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_le_bytes());
        crc.combine(&payload_crc);
        record[0..4].copy_from_slice(&payload_len.to_le_bytes());
        record[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        record[8..16].copy_from_slice(&seq.to_le_bytes());
        if let Err(err) = (&*state.active.file).write_all(&record) {
            // Cut off whatever part was written, so nothing follows a torn record.
            if state.active.file.set_len(state.active.bytes).is_err() {
                state.active.damaged = true;
            }
            return Err(io_error("writing", &state.active.path, err));
        }
        state.active.bytes += len;
        state.next_seq += 1;
        state.outstanding.insert(seq);
        Ok(seq)
    }

    /// Close the active segment and begin one named after the next sequence number. The
    /// closed one goes at once if everything in it is stored already.
    fn roll(&self, state: &mut State) -> Result<(), QueueError> {
        let first_seq = state.next_seq;
        let path = self.dir.join(segment_name(first_seq));
        // A damaged segment that holds no record has the new one's name: it goes first.
        let replaces_active = state.active.path == path;
        if replaces_active {
            remove_segment(&path);
        }
        let file = create_segment(&path, self.fsync)?;
        if self.fsync {
            let synced = if replaces_active {
                Ok(())
            } else {
                // Records synced by nobody yet are in the old file: sync them before leaving it.
                state.active.file.sync_data().map_err(|e| io_error("syncing", &state.active.path, e))
            };
            if let Err(err) = synced.and_then(|()| sync_dir(&self.dir).map_err(|e| io_error("syncing", &self.dir, e))) {
                // Not begun after all: the next try creates it again.
                remove_segment(&path);
                return Err(err);
            }
        }
        let old = std::mem::replace(
            &mut state.active,
            Active { file: Arc::new(file), path, first_seq, bytes: 0, damaged: false },
        );
        let last_seq = first_seq - 1;
        if replaces_active {
            return Ok(());
        }
        if old.bytes == 0 || state.outstanding.range(old.first_seq..).next().is_none() {
            remove_segment(&old.path);
        } else {
            state.closed_bytes += old.bytes;
            state.closed.push_back(Closed { path: old.path, last_seq, bytes: old.bytes });
        }
        Ok(())
    }

    /// Wait until the record numbered `seq` is on the disk. One task syncs for everyone who
    /// appended before it began, so under load many requests share one sync.
    pub(crate) async fn sync_through(&self, seq: u64) -> Result<(), QueueError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _leader = self.sync_leader.lock().await;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let (through, file, path) = {
            let state = self.state();
            (state.next_seq - 1, state.active.file.clone(), state.active.path.clone())
        };
        // Records of an older segment were synced when it was closed.
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(join_error)?
            .map_err(|e| io_error("syncing", &path, e))?;
        self.synced.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// Whether appends are synced.
    pub(crate) fn fsyncs(&self) -> bool {
        self.fsync
    }

    /// The batches numbered `seqs` are stored (or dead-lettered): forget them, and delete
    /// the segments that hold nothing else. Blocking (file deletions).
    pub(crate) fn acknowledge(&self, seqs: impl IntoIterator<Item = u64>) {
        let doomed = {
            let mut state = self.state();
            for seq in seqs {
                state.outstanding.remove(&seq);
            }
            let floor = state.outstanding.first().copied().unwrap_or(state.next_seq);
            let mut doomed = Vec::new();
            while state.closed.front().is_some_and(|segment| segment.last_seq < floor) {
                if let Some(segment) = state.closed.pop_front() {
                    state.closed_bytes -= segment.bytes;
                    doomed.push(segment.path);
                }
            }
            doomed
        };
        for path in doomed {
            remove_segment(&path);
        }
    }

    /// Every sequence number up to this one is stored or was never written.
    pub(crate) fn low_water(&self) -> u64 {
        let state = self.state();
        state.outstanding.first().map_or(state.next_seq - 1, |first| first - 1)
    }

    /// Size on disk.
    pub(crate) fn usage(&self) -> JournalUsage {
        let state = self.state();
        JournalUsage { bytes: state.closed_bytes + state.active.bytes, segments: state.closed.len() as u64 + 1 }
    }
}

fn join_error(err: tokio::task::JoinError) -> QueueError {
    QueueError::Journal(io::Error::other(err.to_string()))
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

fn create_segment(path: &Path, fsync: bool) -> Result<File, QueueError> {
    let file =
        OpenOptions::new().create_new(true).append(true).open(path).map_err(|e| io_error("creating", path, e))?;
    if fsync && let Err(err) = file.sync_all() {
        // Left behind, the file's name would refuse every later try to begin this segment.
        remove_segment(path);
        return Err(io_error("syncing", path, err));
    }
    Ok(file)
}

fn remove_segment(path: &Path) {
    if let Err(err) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %err, "could not delete a journal segment");
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create the directory, lock it, and read (or make) the journal's id.
fn lock_and_identify(dir: &Path) -> Result<(File, String), QueueError> {
    fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error("opening", &lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        QueueError::Journal(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another process (each server needs a queue_dir of its own)", dir.display()),
        ))
    })?;
    let id_path = dir.join(ID_FILE);
    let id = match fs::read_to_string(&id_path) {
        Ok(id) => id.trim().to_owned(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let id: String = crate::worker::unique_consumer_prefix().chars().take(MAX_JOURNAL_ID_CHARS).collect();
            let tmp = dir.join(format!("{ID_FILE}.tmp"));
            fs::write(&tmp, &id)
                .and_then(|()| File::open(&tmp)?.sync_all())
                .map_err(|e| io_error("writing", &tmp, e))?;
            fs::rename(&tmp, &id_path).map_err(|e| io_error("writing", &id_path, e))?;
            sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
            id
        }
        Err(err) => return Err(io_error("reading", &id_path, err)),
    };
    if id.is_empty() || id.chars().count() > MAX_JOURNAL_ID_CHARS {
        return Err(QueueError::Journal(io::Error::other(format!("{} holds no valid journal id", id_path.display()))));
    }
    Ok((lock, id))
}

/// Read every segment: what `progress` does not call stored is replayed; segments with
/// nothing left to store are deleted; a torn tail is cut off. Writing goes on in a new
/// segment.
fn recover(dir: &Path, progress: &JournalProgress, fsync: bool) -> Result<(State, Vec<(u64, Batch)>), QueueError> {
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error("listing", dir, e))? {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        names.push((first, entry.path()));
    }
    names.sort();
    let mut closed = VecDeque::new();
    let mut closed_bytes = 0;
    let mut replay = Vec::new();
    let mut outstanding = BTreeSet::new();
    let mut highest = u64::try_from(progress.highest()).unwrap_or(0);
    for (_, path) in names {
        let data = fs::read(&path).map_err(|e| io_error("reading", &path, e))?;
        let (records, valid) = scan(&data);
        if valid < data.len() {
            tracing::warn!(path = %path.display(), cut_bytes = data.len() - valid, "journal segment ends in a torn record; cutting it off");
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(valid as u64))
                .map_err(|e| io_error("truncating", &path, e))?;
        }
        let mut last_seq = 0;
        let mut left = false;
        for (seq, payload) in records {
            last_seq = last_seq.max(seq);
            highest = highest.max(seq);
            if progress.is_stored(i64::try_from(seq).unwrap_or(i64::MAX)) || outstanding.contains(&seq) {
                continue;
            }
            match decode(&data[payload]) {
                Some(batch) => {
                    outstanding.insert(seq);
                    replay.push((seq, batch));
                    left = true;
                }
                None => {
                    tracing::error!(path = %path.display(), seq, "journal record passed its checksum but could not be decoded; skipped");
                }
            }
        }
        if left {
            closed_bytes += valid as u64;
            closed.push_back(Closed { path, last_seq, bytes: valid as u64 });
        } else {
            remove_segment(&path);
        }
    }
    replay.sort_by_key(|(seq, _)| *seq);
    let next_seq = highest + 1;
    let path = dir.join(segment_name(next_seq));
    let file = create_segment(&path, fsync)?;
    if fsync {
        sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
    }
    let active = Active { file: Arc::new(file), path, first_seq: next_seq, bytes: 0, damaged: false };
    Ok((State { active, closed, closed_bytes, next_seq, outstanding }, replay))
}

/// The records of a segment, as (sequence number, payload range), and the length of its
/// valid part: reading stops at the first record that is cut short or fails its checksum.
fn scan(data: &[u8]) -> (Vec<(u64, std::ops::Range<usize>)>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + HEADER_BYTES) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let seq_bytes = &header[8..16];
        let body = at + HEADER_BYTES..at + HEADER_BYTES + len;
        let Some(payload) = data.get(body.clone()) else { break };
        let mut check = crc32fast::Hasher::new();
        check.update(seq_bytes);
        check.update(payload);
        if check.finalize() != crc {
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(seq_bytes);
        records.push((u64::from_le_bytes(seq), body.clone()));
        at = body.end;
    }
    (records, at)
}

/// The batch in the journal's form: integers little-endian, strings as a u32 length and
/// their bytes, optional strings behind a flag byte.
fn encode(batch: &Batch, out: &mut Vec<u8>) {
    fn string(out: &mut Vec<u8>, s: &str) {
        // Validation bounds every string far below 4 GiB.
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.reserve(24 + batch.metrics.len() * 48);
    out.extend_from_slice(&batch.tenant_id.to_le_bytes());
    out.extend_from_slice(&batch.received_at_ms.to_le_bytes());
    out.extend_from_slice(&(batch.metrics.len() as u32).to_le_bytes());
    for metric in &batch.metrics {
        string(out, &metric.name);
        out.push(u8::from(metric.agent_id.is_some()) | (u8::from(metric.dedupe_id.is_some()) << 1));
        if let Some(agent) = &metric.agent_id {
            string(out, agent);
        }
        if let Some(dedupe) = &metric.dedupe_id {
            string(out, dedupe);
        }
        out.extend_from_slice(&(metric.tags.len() as u32).to_le_bytes());
        for (key, value) in &metric.tags {
            string(out, key);
            string(out, value);
        }
        out.extend_from_slice(&metric.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&metric.value.to_bits().to_le_bytes());
    }
}

/// [`encode`] undone; `None` if the bytes are not a batch.
fn decode(data: &[u8]) -> Option<Batch> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_first_chunk::<N>()?;
            self.0 = rest;
            Some(*head)
        }
        fn u32(&mut self) -> Option<usize> {
            self.take::<4>().map(|b| u32::from_le_bytes(b) as usize)
        }
        fn i64(&mut self) -> Option<i64> {
            self.take::<8>().map(i64::from_le_bytes)
        }
        fn string(&mut self) -> Option<String> {
            let len = self.u32()?;
            let bytes = self.0.get(..len)?;
            self.0 = &self.0[len..];
            String::from_utf8(bytes.to_vec()).ok()
        }
    }
    let mut r = Reader(data);
    let tenant_id = r.i64()?;
    let received_at_ms = r.i64()?;
    let count = r.u32()?;
    // Each metric takes at least 25 bytes: a count beyond that is not ours.
    let mut metrics = Vec::with_capacity(count.min(data.len() / 25));
    for _ in 0..count {
        let name = r.string()?;
        let [flags] = r.take::<1>()?;
        let agent_id = if flags & 1 != 0 { Some(r.string()?) } else { None };
        let dedupe_id = if flags & 2 != 0 { Some(r.string()?) } else { None };
        let tags = (0..r.u32()?).map(|_| Some((r.string()?, r.string()?))).collect::<Option<_>>()?;
        let timestamp_ms = r.i64()?;
        let value = f64::from_bits(u64::from_le_bytes(r.take::<8>()?));
        metrics.push(Metric { name, agent_id, tags, timestamp_ms, value, dedupe_id });
    }
    r.0.is_empty().then_some(Batch { tenant_id, received_at_ms, metrics })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly by design.

    use microdash_store::testing::TestDb;
    use microdash_store::{Backend, JournalMark};

    use super::*;

    fn batch(n: usize, tag: &str) -> Batch {
        let metric = |i: usize| Metric {
            name: "m.x".into(),
            agent_id: i.is_multiple_of(2).then(|| format!("agent-{i}")),
            tags: [("k".to_owned(), tag.to_owned()), ("é".to_owned(), String::new())].into(),
            timestamp_ms: -5 + i as i64,
            value: i as f64 * 0.5,
            dedupe_id: i.is_multiple_of(3).then(|| format!("d-{i}")),
        };
        Batch { tenant_id: 7, received_at_ms: 1_700_000_000_000, metrics: (0..n).map(metric).collect() }
    }

    #[test]
    fn a_batch_reads_back_as_it_was_written() {
        for b in [batch(0, ""), batch(1, "a"), batch(50, "tag value")] {
            let mut out = Vec::new();
            encode(&b, &mut out);
            assert_eq!(decode(&out), Some(b.clone()));
            // Cut short or with a byte too many, it is not a batch.
            assert_eq!(decode(&out[..out.len() - 1]), None);
            out.push(0);
            assert_eq!(decode(&out), None);
        }
    }

    fn config(dir: &Path, max_bytes: u64, segment_bytes: u64) -> JournalConfig {
        JournalConfig { dir: dir.to_owned(), fsync: true, max_bytes, segment_bytes }
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(SEGMENT_SUFFIX))
            .collect();
        names.sort();
        names
    }

    /// What was appended and not stored comes back after a restart, in order; what a
    /// worker's mark says is stored does not; a torn tail is cut off; numbering goes on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_restart_replays_exactly_what_was_not_stored() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1 << 20, 4096);
        let (journal, replay) = Journal::open(&config, &store).await.unwrap();
        assert!(replay.is_empty());
        let seqs: Vec<u64> = (0..6).map(|i| journal.append(&batch(10, &i.to_string())).unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        journal.sync_through(6).await.unwrap();
        // Batch 2 is stored with its mark; batch 4 was stored too but the process dies
        // before it is acknowledged.
        let tenant = store.create_tenant("t", "T", 0).await.unwrap().id;
        let with_tenant = |mut b: Batch| {
            b.tenant_id = tenant;
            b
        };
        for seq in [2, 4] {
            let mark = JournalMark::new(journal.id(), 0, journal.low_water() as i64, [seq]);
            store.insert_batches_marked(&[with_tenant(batch(10, "x"))], 0, Some(&mark)).await.unwrap();
        }
        journal.acknowledge([2]);
        let id = journal.id().to_owned();
        drop(journal);
        // A torn record at the end of the newest segment, as a power loss may leave.
        let newest = dir.path().join(segments(dir.path()).last().unwrap());
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);

        let (journal, replay) = Journal::open(&config, &store).await.unwrap();
        assert_eq!(journal.id(), id, "the id survives restarts");
        let replayed: Vec<(u64, String)> = replay.iter().map(|(s, b)| (*s, b.metrics[0].tags["k"].clone())).collect();
        assert_eq!(replayed, [(1, "0".into()), (3, "2".into()), (5, "4".into()), (6, "5".into())]);
        assert_eq!(replay[0].1, batch(10, "0"));
        assert_eq!(journal.append(&batch(1, "new")).unwrap(), 7);
        assert_eq!(journal.low_water(), 0);
        journal.acknowledge([1, 3, 5, 6]);
        assert_eq!(journal.low_water(), 7 - 1, "7 is still outstanding");
        // Every old segment held only stored records: they are gone; the new one remains.
        assert_eq!(segments(dir.path()), [segment_name(7)]);
        // A second process cannot open the same directory.
        assert!(matches!(Journal::open(&config, &store).await, Err(QueueError::Journal(_))));
    }

    /// A failed write is reported (and named for the health check) until an append
    /// succeeds; the next append begins a new segment, and nothing torn is replayed.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_write_is_reported_and_writing_resumes_in_a_new_segment() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1 << 20, 1 << 16);
        let (journal, _) = Journal::open(&config, &store).await.unwrap();
        let break_active = |journal: &Journal| {
            let mut state = journal.state();
            // A read-only handle: writing and cutting off both fail, as on a failing disk.
            state.active.file = Arc::new(File::open(&state.active.path).unwrap());
        };
        for expected in [1, 2] {
            break_active(&journal);
            assert!(matches!(journal.append(&batch(3, "lost")), Err(QueueError::Journal(_))));
            assert!(journal.failure().is_some_and(|f| f.contains("writing")), "{:?}", journal.failure());
            assert_eq!(journal.append(&batch(3, "kept")).unwrap(), expected, "the failed append took no number");
            assert_eq!(journal.failure(), None);
        }
        drop(journal);
        let (_, replay) = Journal::open(&config, &store).await.unwrap();
        assert_eq!(
            replay.iter().map(|(seq, b)| (*seq, b.metrics[0].tags["k"].as_str())).collect::<Vec<_>>(),
            [(1, "kept"), (2, "kept")]
        );
    }

    /// The journal refuses what would take it over its bound, gives space back as segments
    /// are acknowledged, and restarts numbering above what the database knows.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_journal_is_bounded_on_disk() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let record = {
            let mut out = Vec::new();
            encode(&batch(10, "b"), &mut out);
            (out.len() + HEADER_BYTES) as u64
        };
        // Room for four records, two per segment.
        let config = config(dir.path(), 4 * record, 2 * record);
        let (journal, _) = Journal::open(&config, &store).await.unwrap();
        for _ in 0..4 {
            journal.append(&batch(10, "b")).unwrap();
        }
        assert_eq!(journal.usage(), JournalUsage { bytes: 4 * record, segments: 2 });
        assert!(matches!(journal.append(&batch(10, "b")), Err(QueueError::Full)));
        journal.acknowledge([2, 1]);
        assert_eq!(journal.usage(), JournalUsage { bytes: 2 * record, segments: 1 }, "the first segment went");
        assert_eq!(journal.append(&batch(10, "b")).unwrap(), 5);
        assert_eq!(journal.append(&batch(10, "b")).unwrap(), 6);
        assert!(matches!(journal.append(&batch(10, "b")), Err(QueueError::Full)), "3 to 6 are not stored");
        journal.acknowledge([3, 4, 5]);
        assert_eq!(journal.usage(), JournalUsage { bytes: 2 * record, segments: 1 }, "6 holds its segment");
        journal.acknowledge([6]);
        // A full segment of stored records is deleted as soon as it is closed.
        assert_eq!(journal.append(&batch(10, "b")).unwrap(), 7);
        assert_eq!(journal.usage(), JournalUsage { bytes: record, segments: 1 });
        journal.acknowledge([7]);
        drop(journal);
        // Every file gone but the database's marks say 7 was stored: numbering goes on above.
        let mark = JournalMark::new(&fs::read_to_string(dir.path().join(ID_FILE)).unwrap(), 0, 7, []);
        store.insert_batches_marked::<Batch>(&[], 0, Some(&mark)).await.unwrap();
        for name in segments(dir.path()) {
            fs::remove_file(dir.path().join(name)).unwrap();
        }
        let (journal, replay) = Journal::open(&config, &store).await.unwrap();
        assert!(replay.is_empty());
        assert_eq!(journal.append(&batch(1, "b")).unwrap(), 8);
    }
}
