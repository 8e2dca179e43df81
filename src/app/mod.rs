//! The application layer: every command (`train`, `retrain`,
//! `recalibrate`, `models`, `inspect`, `score`, `serve`, `demo`, `produce`,
//! `healthcheck`, `eval nab`, `eval labelled`, `feedback`), the training pipeline they
//! share, and their presentation. [`main`] runs what [`crate::cli`] parsed.
//!
//! Errors end the process with one readable line (and its causes) and exit
//! code 1; usage errors exit 2; `retrain` exits 3 when the promotion gate
//! rejects the candidate.
//!
//! Layers point one way: this layer calls the libraries (`serve`, `eval`,
//! `kafka`, `infer`, `train`, `score`, `model`, `stream`, `data`), which
//! never import it or `cli`, and import `config` only for the typed
//! settings they take.

pub mod demo;
pub mod eval_labelled;
pub mod eval_nab;
pub mod feedback;
pub mod healthcheck;
pub mod models;
pub mod pipeline;
pub mod process;
pub mod produce;
pub mod progress;
pub mod recalibrate;
pub mod retrain;
pub mod score;
pub mod serve;
pub mod settings;
pub mod source;
pub mod train;
pub mod train_report;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command, EvalCommand};

/// `lstm-ae`: parses the command line and runs the command.
pub fn main() -> ExitCode {
    // Before any thread starts (see the function).
    crate::infer::runtime::keep_telemetry_off();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `serve` and `demo` log as their settings say (`[log]`), so they set
    // up logging once those are loaded; until then an error is one line on
    // stderr (below), readable whatever the format.
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        crate::telemetry::logging::init(crate::telemetry::logging::LogFormat::Text, "info");
    }
    let result = match cli.command {
        Command::Retrain(a) => return exit(retrain::run(a)),
        Command::Recalibrate(a) => recalibrate::run(a),
        Command::Models { command } => models::run(command),
        Command::Train(a) => train::run(a),
        Command::Score(a) => score::run(a),
        Command::Inspect(a) => models::inspect(a),
        Command::Produce(a) => produce::run(a),
        Command::Healthcheck(a) => healthcheck::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Eval {
            bench: EvalCommand::Nab(a),
        } => eval_nab::run(a),
        Command::Eval {
            bench: EvalCommand::Labelled(a),
        } => eval_labelled::run(a),
        Command::Feedback { command } => feedback::run(command),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

/// `n` and the noun that agrees with it: "1 epoch", "2 epochs".
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let word = if n == N::from(1) { one } else { many };
    format!("{n} {word}")
}

fn exit(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already contains (many messages embed their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}
