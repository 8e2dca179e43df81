//! `lstm-ae`: thin entry point; everything lives in the library.

#![forbid(unsafe_code)]

/// jemalloc serves every allocation of the process, ONNX Runtime's and
/// librdkafka's included (its `malloc` is exported unprefixed): under
/// glibc's per-thread arenas a long-running daemon's resident set never
/// fell below its peak, as the transient memory of a burst (fetched
/// messages, batches) stayed resident; jemalloc returns it, at the same
/// throughput (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    lstm_ae::app::main()
}
