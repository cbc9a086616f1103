//! What a partition's worker and the poll loop share: its state (the
//! backlog waiting for the worker, paused or not, stopping), and the
//! paused gauge.

use super::*;

#[derive(Default)]
pub(super) struct PartitionState {
    pub(super) in_flight: Mutex<bool>,
    pub(super) idle: Condvar,
    /// Set when the partition is revoked; its worker stops at once (see
    /// [`super::worker::wait_for_stop`]).
    pub(super) revoked: watch::Sender<bool>,
    /// Records the poll loop handed to this worker or its backlog, and
    /// records the worker has finished (offset stored): when they are
    /// equal nothing of the partition is pending, and the poll loop may
    /// store a filtered record's offset itself.
    pub(super) accepted: AtomicU64,
    pub(super) finished: AtomicU64,
    /// Records of the partition waiting in `backlog` (read without its lock).
    pub(super) waiting: AtomicUsize,
    /// Records polled while the worker's queue was full, in order. Only the
    /// poll thread (and the rebalance callback, which runs on it) touches
    /// it, so its lock is never contended.
    pub(super) backlog: Mutex<Waiting>,
    /// Whether fetching is paused for the backlog.
    pub(super) paused: AtomicBool,
}

impl PartitionState {
    /// Marks the partition revoked: whatever its worker waits on ends.
    pub(super) fn revoke(&self) {
        self.revoked.send_replace(true);
    }

    pub(super) fn is_revoked(&self) -> bool {
        *self.revoked.borrow()
    }

    /// Nothing the poll loop handed over is still pending.
    pub(super) fn caught_up(&self) -> bool {
        self.finished.load(Ordering::Acquire) == self.accepted.load(Ordering::Relaxed)
    }
}

pub(super) struct Worker {
    pub(super) sender: mpsc::Sender<Item>,
    pub(super) state: Arc<PartitionState>,
}

pub(super) type Workers = Arc<Mutex<HashMap<(String, i32), Worker>>>;

/// Messages polled for a partition whose worker is full, in order. A
/// partition is paused only once its waiting messages pass
/// `max_buffered_messages` (or [`MAX_BUFFERED_BYTES`]), and resumed when
/// half of that is free. Pausing is kept for a handler that is really
/// behind: it drops what librdkafka prefetched for the partition, and with
/// tansu every pause stalled the whole consumer for about 600 ms, so
/// pausing at every full worker queue (as this host first did) cut
/// throughput tenfold.
#[derive(Default)]
pub(super) struct Waiting {
    pub(super) queue: VecDeque<Item>,
    pub(super) bytes: usize,
}

impl Waiting {
    pub(super) fn push(&mut self, item: Item) {
        self.bytes += item.size();
        self.queue.push_back(item);
    }

    pub(super) fn pop(&mut self) -> Option<Item> {
        let item = self.queue.pop_front()?;
        self.bytes -= item.size();
        Some(item)
    }

    pub(super) fn unpop(&mut self, item: Item) {
        self.bytes += item.size();
        self.queue.push_front(item);
    }
}

pub(super) fn set_paused(
    metrics: &Metrics,
    group: &Label,
    topic: &str,
    partition: i32,
    paused: bool,
) {
    metrics
        .partition_paused
        .get_or_create(&PartitionLabels {
            group: group.clone(),
            topic: topic.into(),
            partition,
        })
        .set(i64::from(paused));
}
