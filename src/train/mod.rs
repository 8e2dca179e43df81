//! Training: LSTM forward/backward over ndarray, the composite model, Adam,
//! the training loop and threshold calibration.

pub mod composite;
pub mod lstm;
pub mod real;
