//! `lstm-ae`: thin entry point; everything lives in the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lstm_ae::cli::main()
}
