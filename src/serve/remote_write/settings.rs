//! `[remote_write]`: where to send, how much at once, how long to retry,
//! and the credentials and TLS of the connection.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use http::{HeaderValue, Uri};
use serde::{Deserialize, Serialize};

/// `[remote_write]`: the Prometheus remote-write sink of the per-series
/// samples (`serve::series`). Off while `url` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteSettings {
    /// The receiver's write endpoint, `http://` or `https://`: e.g.
    /// Prometheus (started with `--web.enable-remote-write-receiver`)
    /// `http://prometheus:9090/api/v1/write`, VictoriaMetrics
    /// `http://victoria-metrics:8428/api/v1/write`, Mimir
    /// `http://mimir:8080/api/v1/push`. Empty = off.
    pub url: String,
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// Longest a queued sample waits for its request to fill.
    pub flush_interval_ms: u64,
    /// Most samples queued for sending. When the queue is full (the
    /// receiver is slow or down) new samples are dropped and counted; the
    /// scoring that offers them never waits.
    pub queue_capacity_samples: usize,
    /// Deadline of one request: connecting, sending and the answer.
    pub timeout_ms: u64,
    /// Wait before the first retry of a request that failed with a
    /// connection error, a timeout, a 5xx or a 429; it doubles with each
    /// retry of the same request, up to `max_backoff_ms`. Other statuses are
    /// not retried (the samples are counted as failed).
    pub min_backoff_ms: u64,
    /// Longest wait between retries.
    pub max_backoff_ms: u64,
    /// File holding a bearer token (`Authorization: Bearer …`), e.g. a
    /// mounted secret; trailing line breaks are ignored. Empty = none.
    pub bearer_token_file: String,
    /// Name of an environment variable holding the bearer token; when it is
    /// set, it wins over `bearer_token_file`. Empty = none.
    pub bearer_token_env: String,
    /// Basic-auth user name; empty = no basic auth. Its password comes from
    /// `basic_auth_password_env` or `basic_auth_password_file`.
    pub basic_auth_username: String,
    /// File holding the basic-auth password.
    pub basic_auth_password_file: String,
    /// Name of an environment variable holding the basic-auth password;
    /// when it is set, it wins over `basic_auth_password_file`.
    pub basic_auth_password_env: String,
    /// PEM file of certificate authorities trusted for an `https://` URL,
    /// besides the system's. Empty = the system's only.
    pub tls_ca_file: String,
    /// Accept any server certificate (no verification): for tests only.
    pub tls_insecure_skip_verify: bool,
    /// Labels added to every series written, e.g. `{ job = "lstm-ae",
    /// cluster = "eu-1" }`; a series' own label of the same name wins.
    pub extra_labels: BTreeMap<String, String>,
}

impl Default for RemoteWriteSettings {
    fn default() -> Self {
        RemoteWriteSettings {
            url: String::new(),
            max_samples_per_send: 2_000,
            flush_interval_ms: 1_000,
            queue_capacity_samples: 50_000,
            timeout_ms: 30_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            bearer_token_file: String::new(),
            bearer_token_env: String::new(),
            basic_auth_username: String::new(),
            basic_auth_password_file: String::new(),
            basic_auth_password_env: String::new(),
            tls_ca_file: String::new(),
            tls_insecure_skip_verify: false,
            extra_labels: BTreeMap::new(),
        }
    }
}

/// A `[remote_write]` value that cannot work, or a credential that cannot
/// be read, naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid remote_write.{field}: {reason}")]
pub struct SettingError {
    /// The key inside `[remote_write]`.
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SettingError {
    SettingError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl RemoteWriteSettings {
    /// Whether remote write is on (`url` is set).
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Checks what types alone cannot (when off, only that the numbers
    /// would work, so turning it on by `url` alone cannot fail later).
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.enabled() {
            self.uri()?;
        }
        for (field, v) in [
            ("max_samples_per_send", self.max_samples_per_send as u64),
            ("flush_interval_ms", self.flush_interval_ms),
            ("queue_capacity_samples", self.queue_capacity_samples as u64),
            ("timeout_ms", self.timeout_ms),
            ("min_backoff_ms", self.min_backoff_ms),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.max_backoff_ms < self.min_backoff_ms {
            return Err(invalid("max_backoff_ms", "must be at least min_backoff_ms"));
        }
        if self.queue_capacity_samples < self.max_samples_per_send {
            return Err(invalid(
                "queue_capacity_samples",
                "must be at least max_samples_per_send",
            ));
        }
        let bearer = !self.bearer_token_file.is_empty() || !self.bearer_token_env.is_empty();
        let password =
            !self.basic_auth_password_file.is_empty() || !self.basic_auth_password_env.is_empty();
        let basic = !self.basic_auth_username.is_empty();
        if bearer && basic {
            return Err(invalid(
                "basic_auth_username",
                "set either a bearer token or basic auth, not both",
            ));
        }
        if basic != password {
            return Err(invalid(
                "basic_auth_username",
                "basic auth needs a user name and basic_auth_password_file or basic_auth_password_env",
            ));
        }
        for name in self.extra_labels.keys() {
            if !valid_label_name(name) {
                return Err(invalid(
                    format!("extra_labels.{name}"),
                    "a label name is [a-zA-Z_][a-zA-Z0-9_]* and does not start with __",
                ));
            }
        }
        for (name, value) in &self.extra_labels {
            if value.is_empty() {
                return Err(invalid(
                    format!("extra_labels.{name}"),
                    "an empty value is no label in Prometheus",
                ));
            }
        }
        Ok(())
    }

    /// The URL, parsed and checked.
    pub(super) fn uri(&self) -> Result<Uri, SettingError> {
        let uri: Uri = self
            .url
            .trim()
            .parse()
            .map_err(|e| invalid("url", format!("{:?} is not a URL: {e}", self.url)))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => Ok(uri),
            _ => Err(invalid(
                "url",
                format!("{:?} must be an http:// or https:// URL", self.url),
            )),
        }
    }

    /// The `Authorization` header the settings ask for, its secret read
    /// from `env` (a lookup by variable name, `std::env::var` in the daemon)
    /// or a file; marked sensitive, so it is never logged.
    pub fn authorization(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<HeaderValue>, SettingError> {
        let value = if let Some(token) = secret(
            &env,
            ("bearer_token_env", &self.bearer_token_env),
            ("bearer_token_file", &self.bearer_token_file),
        )? {
            format!("Bearer {token}")
        } else if !self.basic_auth_username.is_empty() {
            let password = secret(
                &env,
                ("basic_auth_password_env", &self.basic_auth_password_env),
                ("basic_auth_password_file", &self.basic_auth_password_file),
            )?
            .ok_or_else(|| {
                invalid(
                    "basic_auth_password_file",
                    "basic auth needs a password (file or environment variable)",
                )
            })?;
            let pair = format!("{}:{password}", self.basic_auth_username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        } else {
            return Ok(None);
        };
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            invalid(
                "bearer_token_file",
                "the credentials hold characters an HTTP header cannot carry",
            )
        })?;
        header.set_sensitive(true);
        Ok(Some(header))
    }
}

/// A secret from the environment variable named by `env_field` if that is
/// set, else from the file named by `file_field`; `None` when neither is
/// configured. Trailing line breaks of a file are not part of the secret.
fn secret(
    env: &impl Fn(&str) -> Option<String>,
    (env_field, var): (&str, &str),
    (file_field, file): (&str, &str),
) -> Result<Option<String>, SettingError> {
    if !var.is_empty() {
        if let Some(v) = env(var) {
            return Ok(Some(v));
        }
        if file.is_empty() {
            return Err(invalid(
                env_field,
                format!("the environment variable {var} is not set"),
            ));
        }
    }
    if file.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(Path::new(file))
        .map_err(|e| invalid(file_field, format!("cannot read {file}: {e}")))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(invalid(file_field, format!("{file} is empty")));
    }
    Ok(Some(text.to_string()))
}

/// A Prometheus label name a user may set: `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__` (reserved for the receiver).
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> RemoteWriteSettings {
        RemoteWriteSettings {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            ..Default::default()
        }
    }

    fn field(s: &RemoteWriteSettings) -> String {
        match s.validate() {
            Err(e) => e.field,
            Ok(()) => panic!("{s:?} passed"),
        }
    }

    #[test]
    fn defaults_are_off_and_valid_and_a_url_turns_it_on() {
        let d = RemoteWriteSettings::default();
        assert!(!d.enabled());
        d.validate().unwrap();
        assert!(on().enabled());
        on().validate().unwrap();
    }

    #[test]
    fn invalid_values_name_their_field() {
        let with = |f: &dyn Fn(&mut RemoteWriteSettings)| {
            let mut s = on();
            f(&mut s);
            field(&s)
        };
        assert_eq!(with(&|s| s.url = "prometheus:9090/write".into()), "url");
        assert_eq!(with(&|s| s.url = "ftp://h/x".into()), "url");
        assert_eq!(
            with(&|s| s.max_samples_per_send = 0),
            "max_samples_per_send"
        );
        assert_eq!(with(&|s| s.timeout_ms = 0), "timeout_ms");
        assert_eq!(
            with(&|s| s.queue_capacity_samples = 10),
            "queue_capacity_samples"
        );
        assert_eq!(
            with(&|s| {
                s.min_backoff_ms = 100;
                s.max_backoff_ms = 10;
            }),
            "max_backoff_ms"
        );
        assert_eq!(
            with(&|s| {
                s.bearer_token_env = "T".into();
                s.basic_auth_username = "u".into();
                s.basic_auth_password_env = "P".into();
            }),
            "basic_auth_username"
        );
        assert_eq!(
            with(&|s| s.basic_auth_username = "u".into()),
            "basic_auth_username"
        );
        assert_eq!(
            with(&|s| {
                s.extra_labels.insert("__name__".into(), "x".into());
            }),
            "extra_labels.__name__"
        );
        assert_eq!(
            with(&|s| {
                s.extra_labels.insert("1abc".into(), "x".into());
            }),
            "extra_labels.1abc"
        );
        assert_eq!(
            with(&|s| {
                s.extra_labels.insert("job".into(), String::new());
            }),
            "extra_labels.job"
        );
    }

    #[test]
    fn the_table_loads_from_file_and_environment_and_is_checked_at_load() {
        use crate::config::Settings;
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/serve.example.toml");
        let s = Settings::load_with_env(Some(&example), vec![]).unwrap();
        assert_eq!(
            s.remote_write,
            RemoteWriteSettings::default(),
            "the example shows the defaults"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[remote_write]\nurl = \"https://vm:8428/api/v1/write\"\nmax_samples_per_send = 500\n[remote_write.extra_labels]\ncluster = \"eu-1\"\n",
        )
        .unwrap();
        let env = vec![(
            "LSTM_AE__REMOTE_WRITE__TIMEOUT_MS".to_string(),
            "5000".to_string(),
        )];
        let s = Settings::load_with_env(Some(&f), env).unwrap();
        let rw = &s.remote_write;
        assert!(rw.enabled());
        assert_eq!((rw.max_samples_per_send, rw.timeout_ms), (500, 5000));
        assert_eq!(
            rw.extra_labels.get("cluster").map(String::as_str),
            Some("eu-1")
        );
        for (toml, words) in [
            ("[remote_write]\nurll = \"x\"\n", &["urll"][..]),
            (
                "[remote_write]\nurl = \"vm:8428\"\n",
                &["remote_write.url", "vm:8428"][..],
            ),
        ] {
            std::fs::write(&f, toml).unwrap();
            let e = Settings::load_with_env(Some(&f), vec![])
                .unwrap_err()
                .to_string();
            for w in words {
                assert!(e.contains(w), "{w} in {e}");
            }
        }
    }

    #[test]
    fn credentials_come_from_the_environment_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = |name: &str| (name == "RW_TOKEN").then(|| "from-env".to_string());
        let no_env = |_: &str| None;
        let mut s = on();
        s.bearer_token_file = file.display().to_string();
        s.bearer_token_env = "RW_TOKEN".into();
        let h = s.authorization(env).unwrap().unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer from-env");
        assert!(h.is_sensitive());
        let h = s.authorization(no_env).unwrap().unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer from-file");
        s.bearer_token_file.clear();
        let e = s.authorization(no_env).unwrap_err();
        assert_eq!(e.field, "bearer_token_env");
        assert!(e.reason.contains("RW_TOKEN"), "{e}");

        let mut s = on();
        s.basic_auth_username = "writer".into();
        s.basic_auth_password_file = file.display().to_string();
        // "writer:from-file" in base64.
        assert_eq!(
            s.authorization(no_env).unwrap().unwrap().to_str().unwrap(),
            "Basic d3JpdGVyOmZyb20tZmlsZQ=="
        );
        s.basic_auth_password_file = dir.path().join("missing").display().to_string();
        let e = s.authorization(no_env).unwrap_err();
        assert_eq!(e.field, "basic_auth_password_file");
        assert!(e.reason.contains("missing"), "{e}");
        assert_eq!(on().authorization(no_env).unwrap(), None);
    }
}
