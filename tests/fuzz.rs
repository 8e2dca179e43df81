//! Fuzzing the input decoders (`stream::codec::decode`) on the stable
//! toolchain: a mutation fuzzer with no extra dependency. Valid messages of
//! every format (points, windows, binary windows) are mutated — bit flips,
//! byte insertions and deletions, splices of JSON tokens and of other
//! seeds, interesting integers and floats written into binary fields,
//! truncation — and decoded with arbitrary Kafka keys (absent, empty,
//! non-UTF-8, oversized) under several (T, F) shapes and size limits.
//!
//! Every input must return (never panic), and every accepted input must
//! satisfy the decoder's documented contract (finite values of the right
//! count, a key of 1..=MAX_KEY_BYTES bytes, timestamps in range, start not
//! after end). A panic is caught and reported with the input in hex.
//!
//! CI runs `LSTM_AE_FUZZ_CASES` (default 300,000) inputs; the longer run
//! docs/testing.md reports comes from
//! `LSTM_AE_FUZZ_CASES=10000000 cargo test --test fuzz -- --nocapture`.
//! `LSTM_AE_FUZZ_SEED` picks another random stream.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use lstm_ae::stream::codec::{
    decode, encode_binary_window, CodecError, Decoded, Format, MAX_KEY_BYTES, MAX_TS_MS,
};

/// xorshift64*: deterministic, fast, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const SHAPES: &[(usize, usize)] = &[(1, 1), (4, 1), (3, 2), (8, 3), (64, 1)];

/// JSON fragments that steer mutations towards the parser's edges.
const TOKENS: &[&str] = &[
    "\"key\":",
    "\"ts\":",
    "\"value\":",
    "\"values\":",
    "\"end_ts\":",
    "\"start_ts\":",
    "null",
    "true",
    "1e400",
    "-1e400",
    "3.4e38",
    "3.5e38",
    "-0",
    "1e-400",
    "NaN",
    "\"NaN\"",
    "\"Infinity\"",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "253402300800000",
    "253402300799999",
    "1.5",
    "\"2026-01-01T00:00:00Z\"",
    "\"2026-13-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59.999Z\"",
    "\"+275760-09-13T00:00:00Z\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\uDFFF\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[]",
    "{}",
    "\"\"",
];

/// Integers worth writing into the binary layout's fields.
const INTS: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    253_402_300_799_999,
    253_402_300_800_000,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
];

const FLOATS: &[f32] = &[
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -0.0,
    1e-45,
];

fn seed_key(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => String::new(),
        1 => "pump-7".into(),
        2 => "ключ-ü".into(),
        _ => "k".repeat(1 + rng.below(MAX_KEY_BYTES + 2)),
    }
}

fn numbers(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32) * 0.5 - rng.below(7) as f32)
        .collect()
}

/// A valid (or nearly valid) message of `format` for shape (T, F).
fn seed(rng: &mut Rng, format: Format, t: usize, f: usize) -> Vec<u8> {
    let key = seed_key(rng);
    let ts = 1_767_225_600_000i64 + rng.below(1 << 20) as i64;
    match format {
        Format::Points => {
            let v = numbers(rng, f);
            let ts_json = if rng.below(2) == 0 {
                serde_json::json!(ts)
            } else {
                serde_json::json!(lstm_ae::stream::records::format_ts_ms(ts))
            };
            let body = if f == 1 && rng.below(2) == 0 {
                serde_json::json!({"key": key, "ts": ts_json, "value": v[0]})
            } else {
                serde_json::json!({"key": key, "ts": ts_json, "values": v})
            };
            body.to_string().into_bytes()
        }
        Format::Windows => {
            let v = numbers(rng, t * f);
            let rows: Vec<&[f32]> = v.chunks(f).collect();
            let mut body = serde_json::json!({"key": key, "end_ts": ts, "values": rows});
            if rng.below(2) == 0 {
                body["start_ts"] = serde_json::json!(ts - 1000);
            }
            body.to_string().into_bytes()
        }
        Format::BinaryWindows => {
            let key = if key.len() > MAX_KEY_BYTES {
                String::new()
            } else {
                key
            };
            encode_binary_window(&key, ts, t, f, &numbers(rng, t * f))
                .expect("a valid shape encodes")
        }
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                data.drain(i..i + n);
            }
            4 => {
                let i = rng.below(len + 1);
                let tok = rng.pick(TOKENS).as_bytes();
                data.splice(i..i, tok.iter().copied());
            }
            5 if len > 0 => {
                // Replace a run with a token: keeps the JSON nearly valid.
                let i = rng.below(len);
                let n = rng.below((len - i).min(12));
                let tok = rng.pick(TOKENS).as_bytes();
                data.splice(i..i + n, tok.iter().copied());
            }
            6 if len >= 2 => {
                // An interesting integer over a binary field.
                let v = rng.pick(INTS).to_le_bytes();
                let w = *rng.pick(&[2usize, 4, 8]);
                let i = rng.below(len.saturating_sub(w) + 1);
                let n = w.min(len - i);
                data[i..i + n].copy_from_slice(&v[..n]);
            }
            7 if len >= 4 => {
                let v = rng.pick(FLOATS).to_le_bytes();
                let i = rng.below(len - 3);
                data[i..i + 4].copy_from_slice(&v);
            }
            8 if !other.is_empty() => {
                // Splice a piece of another seed.
                let a = rng.below(other.len());
                let b = a + rng.below(other.len() - a + 1);
                let i = rng.below(len + 1);
                data.splice(i..i, other[a..b].iter().copied());
            }
            _ => {
                let n = rng.below(len + 1);
                data.truncate(n);
            }
        }
    }
}

fn kafka_key(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(6) {
        0 => None,
        1 => Some(vec![]),
        2 => Some(b"kafka-key".to_vec()),
        3 => Some(vec![0xff, 0xfe, b'k']),
        4 => Some(vec![b'x'; MAX_KEY_BYTES + 1]),
        _ => Some((0..rng.below(8)).map(|_| rng.next() as u8).collect()),
    }
}

/// The decoder's contract for an accepted message.
fn check_accepted(d: &Decoded, t: usize, f: usize) -> Result<(), String> {
    let key_ok = |k: &str| !k.is_empty() && k.len() <= MAX_KEY_BYTES;
    let ts_ok = |ts: i64| (0..=MAX_TS_MS).contains(&ts);
    match d {
        Decoded::Point { key, ts_ms, values } => {
            if !key_ok(key) || !ts_ok(*ts_ms) || values.len() != f {
                return Err(format!("accepted a bad point: {d:?}"));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("accepted a non-finite point: {d:?}"));
            }
        }
        Decoded::Window {
            key,
            end_ts_ms,
            start_ts_ms,
            values,
        } => {
            if !key_ok(key) || !ts_ok(*end_ts_ms) || values.len() != t * f {
                return Err(format!("accepted a bad window: {key:?} {end_ts_ms}"));
            }
            if start_ts_ms.is_some_and(|s| !ts_ok(s) || s > *end_ts_ms) {
                return Err(format!(
                    "accepted a bad start: {start_ts_ms:?} > {end_ts_ms}"
                ));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err("accepted a non-finite window".into());
            }
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `cases` inputs from `seed`; returns (inputs, accepted) or the first
/// failure with its input.
fn fuzz(stream: u64, cases: u64) -> Result<(u64, u64), String> {
    let mut rng = Rng(stream | 1);
    let formats = [Format::Points, Format::Windows, Format::BinaryWindows];
    let mut accepted = 0u64;
    let mut other = vec![];
    for i in 0..cases {
        let format = *rng.pick(&formats);
        let &(t, f) = rng.pick(SHAPES);
        let mut data = seed(&mut rng, format, t, f);
        // One in eight is decoded unmutated; the rest are mutated.
        if i % 8 != 0 {
            mutate(&mut rng, &mut data, &other);
        }
        let key = kafka_key(&mut rng);
        // Mostly the shape the seed was made for, sometimes another.
        let (dt, df) = if rng.below(8) == 0 {
            *rng.pick(SHAPES)
        } else {
            (t, f)
        };
        let max_bytes = if rng.below(16) == 0 {
            rng.below(64)
        } else {
            1 << 20
        };
        let payload = (rng.below(64) != 0).then_some(data.as_slice());
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
            decode(format, key.as_deref(), payload, df, dt, max_bytes)
        }));
        match out {
            Err(_) => {
                return Err(format!(
                    "decode panicked: format {format:?}, T {dt}, F {df}, max {max_bytes}, key {:?}, payload {}",
                    key.as_deref().map(hex),
                    payload.map(hex).unwrap_or_else(|| "none".into())
                ))
            }
            Ok(Ok(d)) => {
                accepted += 1;
                check_accepted(&d, dt, df)
                    .map_err(|e| format!("{e}; payload {}", hex(&data)))?;
            }
            Ok(Err(e)) => {
                // Kinds are a closed set: a metrics label and a header.
                if !CodecError::KINDS.contains(&e.kind()) {
                    return Err(format!("unknown error kind {}", e.kind()));
                }
            }
        }
        if rng.below(4) == 0 {
            other = data;
        }
    }
    Ok((cases, accepted))
}

#[test]
fn the_decoders_never_panic_and_accept_only_what_they_promise() {
    let cases: u64 = std::env::var("LSTM_AE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let seed: u64 = std::env::var("LSTM_AE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x1157_AE00);
    // A panic is reported with its input; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let threads = lstm_ae::threads_or_cores(0) as u64;
    let start = Instant::now();
    let results: Vec<Result<(u64, u64), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let n = cases / threads + u64::from(i < cases % threads);
                s.spawn(move || fuzz(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9)), n))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a fuzz thread died".into()))
            })
            .collect()
    });
    let _ = std::panic::take_hook();
    let mut total = 0;
    let mut accepted = 0;
    for r in results {
        let (n, a) = r.unwrap_or_else(|e| panic!("{e}"));
        total += n;
        accepted += a;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz: {total} inputs, {accepted} accepted, {secs:.1} s on {threads} threads ({:.0} inputs/s), seed {seed}",
        total as f64 / secs
    );
    assert_eq!(total, cases);
    // The mutator must not only produce garbage: some inputs pass, and
    // most do not.
    assert!(accepted > cases / 50, "only {accepted} of {cases} accepted");
    assert!(accepted < cases / 2, "{accepted} of {cases} accepted");
}
