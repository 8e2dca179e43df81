//! The application layer: the commands (`train`, `score`, `retrain`,
//! `models`, `produce`, `demo`, `eval` drivers) and their presentation.
//!
//! Layers point one way: `cli` parses arguments and calls into here; this
//! layer calls the libraries (`serve`, `eval`, `infer`, `train`, `score`,
//! `model`, `stream`, `data`), which never import it, `cli` or `config`
//! beyond what their own settings need.

pub mod demo;
pub mod eval_labelled;
pub mod healthcheck;
pub mod models;
pub mod pipeline;
pub mod produce;
pub mod progress;
pub mod recalibrate;
pub mod retrain;
pub mod serve;
pub mod source;
pub mod train;
pub mod train_report;
