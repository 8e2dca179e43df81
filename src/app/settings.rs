//! The settings a command runs with: built-in defaults < `--config` file <
//! `LSTM_AE__…` environment < command-line flags. The data flags
//! (`--timestamp-column`, `--features`, `--separator`, `--fill`,
//! `--timestamp-order`) are mapped onto `[data]` here and nowhere else.

use std::path::Path;

use anyhow::Result;

use crate::cli::DataArgs;
use crate::config::{DataSettings, Settings};
use crate::model::manifest::Manifest;

/// Loads the settings and puts the data flags over them.
pub fn load(config: Option<&Path>, flags: &DataArgs) -> Result<Settings> {
    let mut s = Settings::load(config)?;
    apply(flags, &mut s.data);
    s.validate()?;
    Ok(s)
}

/// [`load`] for reading data with a bundle: the data settings it was
/// trained with take the place of the built-in `[data]` defaults (a bundle
/// without them gets the defaults), under the file, environment and flags.
/// Logs which settings read the file and where they came from.
pub fn load_for_bundle(config: Option<&Path>, flags: &DataArgs, m: &Manifest) -> Result<Settings> {
    let Some(r) = &m.data else {
        tracing::info!(
            "model {} records no data settings (an older bundle): reading the file with the \
             [data] defaults, --config, LSTM_AE__DATA__… and the data flags",
            m.model_id
        );
        return load(config, flags);
    };
    let recorded = DataSettings {
        timestamp_column: r.timestamp_column.clone(),
        feature_columns: r.feature_columns.clone(),
        separator: r.separator.clone(),
        fill: r.fill,
        timestamp_order: r.timestamp_order,
        ..DataSettings::default()
    };
    let mut s = Settings::load_with_data_defaults(config, &recorded)?;
    apply(flags, &mut s.data);
    s.validate()?;
    let d = &s.data;
    let origin = |same: bool| if same { "bundle" } else { "overridden" };
    tracing::info!(
        "reading the file as model {} was trained: timestamp_column = {:?} ({}), \
         feature_columns = {:?} ({}), separator = {:?} ({}), fill = {} ({}), \
         timestamp_order = {} ({}); the data flags, --config and LSTM_AE__DATA__… override these",
        m.model_id,
        d.timestamp_column,
        origin(d.timestamp_column == recorded.timestamp_column),
        d.feature_columns,
        origin(d.feature_columns == recorded.feature_columns),
        d.separator,
        origin(d.separator == recorded.separator),
        name(&d.fill),
        origin(d.fill == recorded.fill),
        name(&d.timestamp_order),
        origin(d.timestamp_order == recorded.timestamp_order),
    );
    Ok(s)
}

/// A setting's value as written in settings (`file`, `linear`).
pub fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
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
