//! Training: LSTM forward/backward over ndarray, the composite model, Adam,
//! the training loop and threshold calibration.

pub mod calibrate;
