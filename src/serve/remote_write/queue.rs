//! The bounded queue between the callers that offer series and the task
//! that sends them: counted in samples, all of an offer or none of it.

use std::collections::VecDeque;

use super::proto::TimeSeries;

/// Series waiting to be sent, at most `capacity` samples together.
#[derive(Debug)]
pub(super) struct Queue {
    series: VecDeque<TimeSeries>,
    samples: usize,
    capacity: usize,
}

/// Samples in `series`.
pub(super) fn samples(series: &[TimeSeries]) -> usize {
    series.iter().map(|s| s.samples.len()).sum()
}

impl Queue {
    pub(super) fn new(capacity: usize) -> Queue {
        Queue {
            series: VecDeque::new(),
            samples: 0,
            capacity,
        }
    }

    /// Queues every series of `offer`, or none when they do not all fit:
    /// `Err` with the samples refused.
    pub(super) fn push(&mut self, offer: Vec<TimeSeries>) -> Result<(), usize> {
        let n = samples(&offer);
        if self.samples + n > self.capacity {
            return Err(n);
        }
        self.samples += n;
        self.series.extend(offer);
        Ok(())
    }

    /// The oldest series, whole, up to `max_samples` samples (at least one
    /// series even if it alone has more), with their sample count.
    pub(super) fn take(&mut self, max_samples: usize) -> (Vec<TimeSeries>, usize) {
        let mut out = vec![];
        let mut n = 0;
        while let Some(front) = self.series.front() {
            let k = front.samples.len();
            if !out.is_empty() && n + k > max_samples {
                break;
            }
            n += k;
            out.extend(self.series.pop_front());
        }
        self.samples -= n;
        (out, n)
    }

    /// Empties the queue; the samples it held.
    pub(super) fn clear(&mut self) -> usize {
        self.series.clear();
        std::mem::take(&mut self.samples)
    }

    /// Samples queued.
    pub(super) fn len(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::Sample;
    use super::*;

    fn series(n: usize) -> TimeSeries {
        TimeSeries {
            labels: vec![],
            samples: (0..n)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp: i as i64,
                })
                .collect(),
        }
    }

    #[test]
    fn an_offer_that_does_not_fit_whole_is_refused_whole() {
        let mut q = Queue::new(10);
        assert_eq!(q.push(vec![series(3), series(3)]), Ok(()));
        assert_eq!(q.push(vec![series(2), series(3)]), Err(5));
        assert_eq!(q.len(), 6, "nothing of the refused offer");
        assert_eq!(q.push(vec![series(4)]), Ok(()));
        assert_eq!(q.len(), 10);
        assert_eq!(q.push(vec![series(1)]), Err(1));
        assert_eq!(q.push(vec![]), Ok(()));
    }

    #[test]
    fn take_returns_whole_series_oldest_first_up_to_the_batch() {
        let mut q = Queue::new(100);
        for n in [2, 3, 4, 20] {
            q.push(vec![series(n)]).unwrap();
        }
        let (batch, n) = q.take(6);
        assert_eq!(
            batch.iter().map(|s| s.samples.len()).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!((n, q.len()), (5, 24));
        // A series larger than the batch still goes, alone.
        let (batch, n) = q.take(6);
        assert_eq!((batch.len(), n), (1, 4));
        let (batch, n) = q.take(6);
        assert_eq!((batch.len(), n), (1, 20));
        assert_eq!(q.take(6).1, 0);
        q.push(vec![series(7)]).unwrap();
        assert_eq!((q.clear(), q.len()), (7, 0));
    }
}
