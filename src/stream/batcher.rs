//! The batching policy in front of the inference backend: when a batch of
//! windows is ready to go.
//!
//! Larger batches use ONNX Runtime better; waiting for them adds latency.
//! [`Batcher`] owns that trade-off as a pure state machine over a caller
//! supplied clock (`now_ms`), so the async loop only sleeps until
//! [`Batcher::deadline`] and tests need no timers:
//!
//! - a batch is released as soon as it holds `max_batch` items
//!   ([`Batcher::push`]);
//! - otherwise when its oldest item has waited `max_wait_ms`
//!   ([`Batcher::poll`]); `max_wait_ms = 0` releases every item at once
//!   (at the next poll);
//! - [`Batcher::flush`] releases whatever is pending, for shutdown.
//!
//! Items keep their arrival order within and across batches.

use super::ParamError;

/// Collects items into batches of at most `max_batch`, released when full
/// or when the oldest has waited `max_wait_ms`.
#[derive(Debug)]
pub struct Batcher<T> {
    max_batch: usize,
    max_wait_ms: u64,
    pending: Vec<T>,
    /// Arrival time of the oldest pending item.
    oldest_ms: Option<i64>,
}

impl<T> Batcher<T> {
    /// A batcher; `max_batch` must be at least 1 (a batch of zero windows
    /// is never useful).
    pub fn new(max_batch: usize, max_wait_ms: u64) -> Result<Self, ParamError> {
        if max_batch == 0 {
            return Err(ParamError::new("max_batch", "must be at least 1"));
        }
        if i64::try_from(max_wait_ms).is_err() {
            return Err(ParamError::new("max_wait_ms", "must fit in i64"));
        }
        Ok(Self {
            max_batch,
            max_wait_ms,
            pending: Vec::with_capacity(max_batch),
            oldest_ms: None,
        })
    }

    /// Adds an item arriving at `now_ms`; returns the batch if this item
    /// filled it.
    pub fn push(&mut self, item: T, now_ms: i64) -> Option<Vec<T>> {
        if self.pending.is_empty() {
            self.oldest_ms = Some(now_ms);
        }
        self.pending.push(item);
        if self.pending.len() >= self.max_batch {
            self.take()
        } else {
            None
        }
    }

    /// Returns the pending items if the oldest has waited `max_wait_ms`
    /// by `now_ms`.
    pub fn poll(&mut self, now_ms: i64) -> Option<Vec<T>> {
        match self.deadline() {
            Some(d) if now_ms >= d => self.take(),
            _ => None,
        }
    }

    /// When the pending items are due (the oldest's arrival plus
    /// `max_wait_ms`); `None` when nothing is pending, so the loop can wait
    /// on input alone.
    pub fn deadline(&self) -> Option<i64> {
        // max_wait_ms fits in i64: checked in `new`.
        let wait = i64::try_from(self.max_wait_ms).unwrap_or(i64::MAX);
        self.oldest_ms.map(|t| t.saturating_add(wait))
    }

    /// Releases everything pending regardless of the deadline (shutdown).
    pub fn flush(&mut self) -> Option<Vec<T>> {
        self.take()
    }

    /// Number of pending items.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn take(&mut self) -> Option<Vec<T>> {
        self.oldest_ms = None;
        if self.pending.is_empty() {
            return None;
        }
        let fresh = Vec::with_capacity(self.max_batch);
        Some(std::mem::replace(&mut self.pending, fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batch_is_released_on_push() {
        let mut b = Batcher::new(3, 1_000).unwrap();
        assert_eq!(b.push('a', 0), None);
        assert_eq!(b.push('b', 1), None);
        assert_eq!(b.push('c', 2), Some(vec!['a', 'b', 'c']));
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
        assert_eq!(b.push('d', 3), None);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn deadline_follows_the_oldest_item() {
        let mut b = Batcher::new(10, 50).unwrap();
        assert_eq!(b.deadline(), None);
        assert_eq!(b.poll(1_000), None);
        b.push(1, 100);
        b.push(2, 140);
        assert_eq!(b.deadline(), Some(150));
        assert_eq!(b.poll(149), None);
        assert_eq!(b.poll(150), Some(vec![1, 2]));
        assert_eq!(b.deadline(), None);
        // The next batch's clock starts at its own first item.
        b.push(3, 160);
        assert_eq!(b.deadline(), Some(210));
        assert_eq!(b.poll(200), None);
        assert_eq!(b.flush(), Some(vec![3]));
        assert_eq!(b.flush(), None);
    }

    #[test]
    fn zero_wait_and_single_item_batches() {
        let mut b = Batcher::new(5, 0).unwrap();
        assert_eq!(b.push("x", 7), None);
        assert_eq!(b.deadline(), Some(7));
        assert_eq!(b.poll(7), Some(vec!["x"]));
        let mut one = Batcher::new(1, 1_000).unwrap();
        assert_eq!(one.push(9, 0), Some(vec![9]));
        assert_eq!(one.deadline(), None);
    }

    #[test]
    fn rejects_empty_batches_and_saturates_far_deadlines() {
        assert_eq!(Batcher::<u8>::new(0, 10).unwrap_err().field, "max_batch");
        assert!(Batcher::<u8>::new(1, u64::MAX).is_err());
        let mut b = Batcher::new(2, i64::MAX as u64).unwrap();
        b.push(1u8, 5);
        assert_eq!(b.deadline(), Some(i64::MAX));
        assert_eq!(b.poll(i64::MAX - 1), None);
    }
}
