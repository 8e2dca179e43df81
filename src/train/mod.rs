//! Training: LSTM forward/backward over ndarray, the composite model, Adam,
//! the training loop and threshold calibration.

pub mod adam;
pub mod calibrate;
pub mod composite;
pub mod fit;
pub mod lstm;

pub use fit::{fit, Dataset, Fitted, Progress, Quiet, StopReason, TrainOptions};
