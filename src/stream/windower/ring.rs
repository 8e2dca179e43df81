//! One key's buffered points in a ring of T slots, with event times and
//! offsets delta-coded so that a regularly spaced series costs a few bytes
//! a point beyond its values. The windower decides what goes in and out; the
//! ring only stores, and never stores an offset above the true one.

/// Bytes of a buffered point's offset code (see [`Points`]).
const OFFSET_CODE: usize = 1;

/// Bytes of a buffered value: a little-endian `f32` (see [`Points`]).
const VALUE_BYTES: usize = std::mem::size_of::<f32>();

/// The fewest bytes (1, 2 or 4) that hold `code`.
fn width_for(code: u32) -> u8 {
    match code {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 4,
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One key's buffered points, oldest first, in a ring of T slots allocated
/// on the first point. Per slot: the F values, and the event time and
/// offset as codes of the step from the point before it, anchored at the
/// oldest point (`first_ts`, `first_offset`):
///
/// - **event time**: step = code × `ts_unit`, the code in `ts_width` bytes
///   (1, 2 or 4). `ts_unit` is the greatest common divisor of the steps
///   seen, so a regular series (every 5 minutes, say) stores 1 in one byte
///   per point, and times stay exact: a step that is not a multiple of the
///   unit, or a code that does not fit, recodes the ring once (a key's
///   unit only shrinks and its width only grows). Steps are below 2³² ms
///   (`super::apply` starts a key over beyond that).
/// - **offset**: step = code << `offset_shift`, the code in 1 byte.
///   Offsets of one key less than 256 messages apart keep the shift at 0
///   and every offset exact; a larger step raises the shift (8 bits of
///   precision: a key whose points are 25,000 messages apart, 100,000 keys
///   on 4 partitions, has shift 7) and rounds the ring's steps *down* to
///   it. Each new point's code is taken from the distance to the previous
///   point's stored offset, so the stored offsets are never above the true
///   ones and at most 2^shift − 1 below a new point's, less than 1/128 of
///   the widest kept step (the rounding of a raise can add up to T such
///   errors until those points leave the ring): a hold made from them may
///   replay a little more after a restart, never less. One byte, not two,
///   is 64 bytes a key at T = 64, 6.4 MB at 100,000 keys.
///
/// All of it is one allocation, `buf`: T offset codes, T event-time codes
/// (`ts_width` bytes each, little endian), then T × F values (4-byte
/// little-endian `f32`). At T = 64, F = 1 a regular series costs
/// 64 × (1 + 1 + 4) = 384 bytes of ring (448 with 2-byte offset codes,
/// 768 with 4-byte steps, 1,536 with 8-byte times and offsets).
#[derive(Debug, Default)]
pub(super) struct Points {
    buf: Box<[u8]>,
    /// T (the ring's slots; 0 until the first point).
    cap: u32,
    head: u32,
    len: u32,
    /// Milliseconds per event-time code; 0 until the first step.
    ts_unit: u32,
    ts_width: u8,
    offset_shift: u8,
    /// Event time and stored offset of the oldest point.
    first_ts: i64,
    first_offset: i64,
    /// Stored offset of the newest point.
    last_offset: i64,
}

impl Points {
    pub(super) fn len(&self) -> usize {
        self.len as usize
    }

    /// Event time of the oldest point.
    pub(super) fn first_ts(&self) -> i64 {
        self.first_ts
    }

    /// Stored offset of the oldest point: the lowest stored one, never above
    /// its true offset.
    pub(super) fn first_offset(&self) -> i64 {
        self.first_offset
    }

    fn slot(&self, i: usize) -> usize {
        (self.head as usize + i) % self.cap as usize
    }

    /// Where the event-time codes start in `buf`: after the offset codes.
    fn ts_codes_at(&self) -> usize {
        OFFSET_CODE * self.cap as usize
    }

    /// Where the values start in `buf`: after the offset and time codes.
    fn values_at(&self) -> usize {
        self.ts_codes_at() + self.cap as usize * usize::from(self.ts_width)
    }

    fn offset_step(&self, slot: usize) -> i64 {
        i64::from(self.buf[slot]) << self.offset_shift
    }

    fn set_offset_code(&mut self, slot: usize, code: u8) {
        self.buf[slot] = code;
    }

    fn ts_code(&self, slot: usize) -> u32 {
        let w = usize::from(self.ts_width);
        let at = self.ts_codes_at() + slot * w;
        let mut b = [0u8; 4];
        b[..w].copy_from_slice(&self.buf[at..at + w]);
        u32::from_le_bytes(b)
    }

    fn set_ts_code(&mut self, slot: usize, code: u32) {
        let w = usize::from(self.ts_width);
        let at = self.ts_codes_at() + slot * w;
        self.buf[at..at + w].copy_from_slice(&code.to_le_bytes()[..w]);
    }

    fn ts_step(&self, slot: usize) -> i64 {
        i64::from(self.ts_code(slot)) * i64::from(self.ts_unit)
    }

    /// Every step is a multiple of this (0 before the first step), so no
    /// median step is below it: a cheap test before [`Points::median_step`].
    pub(super) fn ts_unit(&self) -> i64 {
        i64::from(self.ts_unit)
    }

    /// The median (lower, with an even count) of the event-time steps
    /// between the buffered points; `None` with fewer than two points.
    pub(super) fn median_step(&self) -> Option<i64> {
        let mut steps: Vec<i64> = (1..self.len())
            .map(|i| self.ts_step(self.slot(i)))
            .collect();
        crate::data::window::lower_median(&mut steps)
    }

    /// The code of event-time step `step` (≥ 1 after the first point),
    /// recoding the ring when the unit shrinks or the code needs more bytes.
    fn ts_code_for(&mut self, step: u32) -> u32 {
        if step == 0 {
            return 0;
        }
        let unit = match self.ts_unit {
            0 => step,
            u => gcd(u, step),
        };
        let code = step / unit;
        if unit != self.ts_unit || width_for(code) > self.ts_width {
            // Every kept step is a multiple of the old unit, hence of the new one.
            let steps: Vec<u32> = (0..self.len())
                .map(|i| self.ts_code(self.slot(i)) * self.ts_unit)
                .collect();
            let width = steps
                .iter()
                .map(|s| width_for(s / unit))
                .fold(width_for(code).max(self.ts_width), u8::max);
            if width != self.ts_width {
                // Wider time codes move the values: copy the offset codes
                // and the values into a new buffer around wider time codes.
                let offsets = self.ts_codes_at();
                let values = &self.buf[self.values_at()..];
                let at = offsets + self.cap as usize * usize::from(width);
                let mut buf = vec![0u8; at + values.len()];
                buf[..offsets].copy_from_slice(&self.buf[..offsets]);
                buf[at..].copy_from_slice(values);
                self.buf = buf.into_boxed_slice();
                self.ts_width = width;
            }
            self.ts_unit = unit;
            for (i, s) in steps.into_iter().enumerate() {
                let slot = self.slot(i);
                self.set_ts_code(slot, s / unit);
            }
        }
        code
    }

    /// The code of an offset step of `up` messages from the newest stored
    /// offset. The shift is the smallest that fits `up` and the kept steps
    /// in one byte: raising it rounds the kept steps down (stored offsets
    /// only fall); lowering it, once the far steps have left the ring, is
    /// exact (the kept steps are multiples of the old 2^shift). The oldest
    /// point's own step is never read again and is not kept exact.
    fn offset_code_for(&mut self, up: u64) -> u8 {
        let max = u64::from(u8::MAX);
        if self.offset_shift == 0 && up <= max {
            return u8::try_from(up).unwrap_or(0);
        }
        let widest = (1..self.len())
            .map(|i| self.offset_step(self.slot(i)).unsigned_abs())
            .fold(up, u64::max);
        let mut shift = 0;
        while widest >> shift > max {
            shift += 1;
        }
        if shift != self.offset_shift {
            let mut stored = self.first_offset;
            for i in 0..self.len() {
                let slot = self.slot(i);
                let step = self.offset_step(slot) >> shift;
                // Fits for every point but the oldest, whose step is unused.
                let code = u8::try_from(step).unwrap_or(0);
                self.set_offset_code(slot, code);
                if i > 0 {
                    stored += i64::from(code) << shift;
                }
            }
            self.offset_shift = shift;
            self.last_offset = stored;
        }
        // Fits by the loop above; 0 (never above the truth) otherwise.
        u8::try_from(up >> shift).unwrap_or(0)
    }

    /// Appends a point; `ts_step` is its event time minus the newest
    /// point's (unused when empty). The caller keeps `len` below T.
    pub(super) fn push(&mut self, t: usize, values: &[f32], ts_ms: i64, ts_step: u32, offset: i64) {
        if self.cap == 0 {
            self.buf =
                vec![0u8; t * (OFFSET_CODE + 1 + VALUE_BYTES * values.len())].into_boxed_slice();
            self.cap = u32::try_from(t).unwrap_or(u32::MAX);
            self.ts_width = 1;
        }
        let (ts_code, offset_code) = if self.len == 0 {
            self.head = 0;
            self.first_ts = ts_ms;
            self.first_offset = offset;
            self.last_offset = offset;
            (0, 0)
        } else if offset < self.last_offset {
            // Offsets rise within a partition; should one not, every kept
            // point is stored at this lower offset (replay more, never less).
            for i in 0..self.len() {
                let s = self.slot(i);
                self.set_offset_code(s, 0);
            }
            self.first_offset = offset;
            self.last_offset = offset;
            (self.ts_code_for(ts_step), 0)
        } else {
            let up = u64::try_from(offset - self.last_offset).unwrap_or(0);
            let code = self.offset_code_for(up);
            self.last_offset += i64::from(code) << self.offset_shift;
            (self.ts_code_for(ts_step), code)
        };
        let s = self.slot(self.len());
        let f = values.len();
        let at = self.values_at() + VALUE_BYTES * s * f;
        let row = &mut self.buf[at..at + VALUE_BYTES * f];
        for (dst, v) in row.chunks_exact_mut(VALUE_BYTES).zip(values) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        self.set_ts_code(s, ts_code);
        self.set_offset_code(s, offset_code);
        self.len += 1;
    }

    /// The event times, oldest first.
    pub(super) fn timestamps(&self) -> Vec<i64> {
        let mut ts = self.first_ts;
        (0..self.len())
            .map(|i| {
                if i > 0 {
                    ts += self.ts_step(self.slot(i));
                }
                ts
            })
            .collect()
    }

    /// The values, oldest point first (`f` per point).
    pub(super) fn values(&self, f: usize) -> Vec<f32> {
        let values = &self.buf[self.values_at()..];
        let mut out = Vec::with_capacity(self.len() * f);
        for i in 0..self.len() {
            let at = VALUE_BYTES * self.slot(i) * f;
            out.extend(
                values[at..at + VALUE_BYTES * f]
                    .chunks_exact(VALUE_BYTES)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        out
    }

    /// Forgets the `n` oldest points (at most `len`).
    pub(super) fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.len());
        for _ in 0..n {
            self.head = u32::try_from(self.slot(1)).unwrap_or(0);
            self.len -= 1;
            if self.len > 0 {
                let head = self.head as usize;
                self.first_ts += self.ts_step(head);
                self.first_offset += self.offset_step(head);
            }
        }
    }

    /// Forgets every point (the allocation is kept for the key's next ones).
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, cfg, lcg};
    use super::super::Windower;

    #[test]
    fn a_regular_series_stores_one_byte_per_time_step() {
        // Every 5 minutes: the unit is 300,000 ms and each code is 1. The
        // ring is T × (4 + 1 + 1) bytes; a 7 ms step later recodes it to
        // 1 ms units (300,000 needs 4 bytes) with exact times and values.
        let mut w = Windower::new(cfg(4, 1, 1)).unwrap();
        let five = 300_000;
        for i in 0..4 {
            w.push("k", i * five, &[0.0], at(0, i), 0);
        }
        assert_eq!(w.keys["k"].points.heap_bytes(), 4 * 6);
        let win = w
            .push("k", 4 * five + 7, &[1.0], at(0, 4), 0)
            .window
            .unwrap();
        assert_eq!(win.timestamps, vec![five, 2 * five, 3 * five, 4 * five + 7]);
        assert_eq!(w.keys["k"].points.heap_bytes(), 4 * (4 + 4 + 1));
        let win = w.push("k", 5 * five, &[2.0], at(0, 5), 0).window.unwrap();
        assert_eq!(
            win.timestamps,
            vec![2 * five, 3 * five, 4 * five + 7, 5 * five]
        );
        assert_eq!(win.holds, vec![at(0, 2)]);
    }

    #[test]
    fn far_offset_steps_hold_no_later_than_the_truth() {
        // 5·10^9 messages between two points of a key: the stored offset is
        // below the true one (a restart replays more, never less), and the
        // offsets are exact again once the far step has left the ring.
        let mut w = Windower::new(cfg(2, 1, 1)).unwrap();
        let far = 5_000_000_000_i64;
        w.push("k", 1, &[0.0], at(0, 0), 0);
        let win = w.push("k", 2, &[0.0], at(0, far), 0).window.unwrap();
        assert_eq!(win.holds, vec![at(0, 0)]);
        let held = w.min_held_offset(0).unwrap();
        assert!((0..=far).contains(&held), "{held}");
        assert!(far - held < 1 << 25, "{held}: 1-byte codes, shift 25");
        let win = w.push("k", 3, &[0.0], at(0, far + 7), 0).window.unwrap();
        assert_eq!(win.holds, vec![at(0, held)]);
        // Measured from the stored offset, the next steps still need a
        // shift, but each point's error is under 1/128 of the step it was
        // coded from (the true step plus the previous error): once the far
        // step has left the ring, the error falls below 2^18, 2^11, 2^4
        // and then 0 — offsets are exact again.
        let mut errors = Vec::new();
        for (i, off) in [7, 9, 11, 13, 15].into_iter().enumerate() {
            if i > 0 {
                w.push("k", 3 + i as i64, &[0.0], at(0, far + off), 0);
            }
            let held = w.min_held_offset(0).unwrap();
            assert!(held <= far + off, "{held} above {}", far + off);
            errors.push(far + off - held);
        }
        assert!(errors[0] < 1 << 25, "{errors:?}");
        assert!(errors[1] < 1 << 18, "{errors:?}");
        assert!(errors[2] < 1 << 11, "{errors:?}");
        assert_eq!(errors[4], 0, "{errors:?}");
    }

    #[test]
    fn interleaved_keys_hold_within_a_128th_of_a_step() {
        // 100,000 keys on 4 partitions: a key's points are about 25,000
        // messages apart. One-byte codes round each stored offset down by
        // less than 2^7 = 128 messages (shift 7): the hold is never above
        // the oldest point's offset and at most T·128 below it. Steps under
        // 256 messages stay exact.
        let t = 64;
        let mut w = Windower::new(cfg(t, 1, 1)).unwrap();
        let mut rng = 11;
        let mut offsets = Vec::new();
        let mut off = 1_000_000_i64;
        for i in 0..500 {
            off += 24_000 + (lcg(&mut rng) % 2_000) as i64;
            offsets.push(off);
            if let Some(win) = w.push("k", i, &[0.0], at(1, off), 0).window {
                let lowest = offsets[offsets.len() - t];
                let held = win.holds[0].offset;
                assert!(held <= lowest, "{held} above {lowest}");
                assert!(lowest - held < (t as i64) * 128, "{} below", lowest - held);
            }
        }
        let mut w = Windower::new(cfg(t, 1, 1)).unwrap();
        for i in 0..200 {
            let win = w.push("k", i, &[0.0], at(1, 255 * i), 0).window;
            if let Some(win) = win {
                assert_eq!(win.holds, vec![at(1, 255 * (i + 1 - t as i64))]);
            }
        }
    }
}
