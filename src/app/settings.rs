//! The settings a command runs with: built-in defaults < `--config` file <
//! `LSTM_AE__…` environment < command-line flags. The data flags
//! (`--timestamp-column`, `--features`, `--separator`, `--fill`,
//! `--timestamp-order`) are mapped onto `[data]` here and nowhere else.

use std::path::Path;

use anyhow::Result;

use crate::cli::DataArgs;
use crate::config::{DataSettings, Settings};

/// Loads the settings and puts the data flags over them.
pub fn load(config: Option<&Path>, flags: &DataArgs) -> Result<Settings> {
    let mut s = Settings::load(config)?;
    apply(flags, &mut s.data);
    s.validate()?;
    Ok(s)
}

/// Each data flag given replaces its `[data]` setting.
fn apply(flags: &DataArgs, d: &mut DataSettings) {
    if let Some(v) = &flags.timestamp_column {
        d.timestamp_column = v.clone();
    }
    if let Some(v) = &flags.features {
        d.feature_columns = v.iter().map(|c| c.trim().to_string()).collect();
    }
    if let Some(v) = &flags.separator {
        d.separator = v.clone();
    }
    if let Some(v) = flags.fill {
        d.fill = v;
    }
    if let Some(v) = flags.timestamp_order {
        d.timestamp_order = v;
    }
}
