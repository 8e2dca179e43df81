//! The properties of every Kafka client the project builds. One function
//! ([`config()`]) for all of them, so that `[kafka.common]` (TLS, SASL,
//! `client.id`…) and the SASL password reach each one: a client built
//! elsewhere would connect in plaintext, without the password, to a cluster
//! secured as docs/configuration.md says.
//!
//! The order is the same for every client: our defaults, then the user's
//! `common` table, then the client's own table (`consumer` or `producer`),
//! which may override anything, then the secret; last, what a client must
//! keep whatever the tables say (the history reader and the printer stay
//! out of the daemon's group).

use rdkafka::config::ClientConfig;

use crate::config::KafkaSettings;

/// Every Kafka client the project builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The daemon's consumer: a member of `kafka.group_id`, offsets
    /// committed by the daemon only, a bounded prefetch.
    DaemonConsumer,
    /// The daemon's producer of output records and dead letters.
    DaemonProducer,
    /// `retrain` / `recalibrate --from-kafka`, `feedback list` and the
    /// daemon's follower of the feedback topic: assigns partitions itself and
    /// never joins the daemon's group or commits, so the daemon's committed
    /// offsets cannot move.
    HistoryReader,
    /// `produce` and the demo, replaying a CSV into an input topic;
    /// `feedback`, writing an operator's mark.
    Replay,
    /// The demo's printer of published anomalies: a group of its own, read
    /// from the start.
    Printer,
}

impl Client {
    /// Every kind, for the tests that must cover each one.
    pub const ALL: [Client; 5] = [
        Client::DaemonConsumer,
        Client::DaemonProducer,
        Client::HistoryReader,
        Client::Replay,
        Client::Printer,
    ];

    fn is_producer(self) -> bool {
        matches!(self, Client::DaemonProducer | Client::Replay)
    }
}

/// The group id of the demo's printer.
pub const PRINTER_GROUP: &str = "lstm-ae-demo-printer";

/// `client`'s properties under `k` (see the module docs for the order).
pub fn config(k: &KafkaSettings, client: Client) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    match client {
        Client::DaemonConsumer => daemon_consumer_defaults(&mut c, k),
        // Idempotent: a retry never writes a message twice.
        Client::DaemonProducer | Client::Replay => {
            c.set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .set("compression.type", "none");
        }
        Client::HistoryReader | Client::Printer => {}
    }
    let own = if client.is_producer() {
        &k.producer
    } else {
        &k.consumer
    };
    for (key, v) in k.common.iter().chain(own) {
        c.set(key, v);
    }
    // The password never sits in a table (see `KafkaSettings`).
    if let Some(p) = &k.sasl_password {
        c.set("sasl.password", p.expose());
    }
    match client {
        Client::HistoryReader => {
            // librdkafka's assign needs *a* group id; a private one that
            // never subscribes and never commits leaves the daemon's group
            // alone.
            outside_the_group(&mut c, &format!("lstm-ae-retrain-{}", std::process::id()));
            // End-of-partition reports tell `read_to_end` that offsets
            // below the end that never come hold no message.
            c.set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "true");
        }
        Client::Printer => {
            outside_the_group(&mut c, PRINTER_GROUP);
            c.set("auto.offset.reset", "earliest");
        }
        Client::DaemonConsumer | Client::DaemonProducer | Client::Replay => {}
    }
    c
}

/// A group of its own and no static membership: the daemon's
/// `group.instance.id` (from the `consumer` table) on a second client would
/// fence the daemon.
fn outside_the_group(c: &mut ClientConfig, group: &str) {
    c.remove("group.instance.id");
    c.set("group.id", group);
}

/// The daemon consumer's own settings: manual commits, the earliest offset
/// for a new group, group membership, and a bounded prefetch.
///
/// The prefetch: librdkafka fetches ahead until the consumer queue (which
/// every partition's fetch queue feeds) has `queued.min.messages` (default
/// 100,000) or holds `queued.max.messages.kbytes` (64 MB) of payload, and
/// each message carries bookkeeping beyond its payload that the cap does not
/// count, allocated on librdkafka's broker thread: with small points and a
/// backlog, those defaults made fetched messages a large part of the
/// daemon's memory. 10,000 messages a partition and 8 MB still keep about a
/// second of work queued at the daemon's rate (docs/performance.md).
///
/// Once a partition's queue is over those bounds librdkafka postpones its
/// next fetch by `fetch.queue.backoff.ms`, 1 s by default: with bounds a
/// user lowers to save memory the queue then runs dry long before the
/// fetch, and the daemon idles. 10 ms costs nothing at our bounds.
fn daemon_consumer_defaults(c: &mut ClientConfig, k: &KafkaSettings) {
    c.set("group.id", &k.group_id)
        // Offsets are committed by the daemon only once outputs are acknowledged.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set(
            "statistics.interval.ms",
            k.statistics_interval_ms.to_string(),
        )
        .set("queued.min.messages", "10000")
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.max.bytes", "4194304")
        .set("fetch.queue.backoff.ms", "10");
    if !k.instance_id.is_empty() {
        c.set("group.instance.id", &k.instance_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn consumer_config(k: &KafkaSettings) -> ClientConfig {
        config(k, Client::DaemonConsumer)
    }

    fn producer_config(k: &KafkaSettings) -> ClientConfig {
        config(k, Client::DaemonProducer)
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Settings loaded from a file holding `text`, with no environment.
    fn from_toml(text: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        Settings::load_with_env(Some(&f), vec![]).unwrap()
    }

    fn both(k: &KafkaSettings) -> [ClientConfig; 2] {
        [consumer_config(k), producer_config(k)]
    }

    #[test]
    fn the_common_table_reaches_both_clients_and_each_table_overrides_it() {
        let s = from_toml(
            "[kafka.common]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\"client.id\" = \"both\"\n[kafka.producer]\n\"client.id\" = \"producer\"\n",
        );
        for c in both(&s.kafka) {
            assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        }
        assert_eq!(consumer_config(&s.kafka).get("client.id"), Some("both"));
        assert_eq!(producer_config(&s.kafka).get("client.id"), Some("producer"));
    }

    #[test]
    fn the_prefetch_is_bounded_and_the_consumer_table_may_raise_it() {
        // librdkafka's own defaults (100,000 messages a partition, 64 MB)
        // let fetched messages take much of the daemon's memory.
        let c = consumer_config(&Settings::default().kafka);
        assert_eq!(c.get("queued.min.messages"), Some("10000"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("8192"));
        // librdkafka's 1 s would stall a consumer whose bounds are lowered.
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        let s = from_toml("[kafka.consumer]\n\"queued.min.messages\" = \"100000\"\n");
        let c = consumer_config(&s.kafka);
        assert_eq!(c.get("queued.min.messages"), Some("100000"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("8192"));
    }

    #[test]
    fn the_sasl_password_from_the_environment_reaches_both_clients_and_no_log() {
        let s =
            Settings::load_with_env(None, env(&[("LSTM_AE_KAFKA_SASL_PASSWORD", "s3cr3t-env")]))
                .unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("s3cr3t-env"));
        }
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-env"), "{shown}");
    }

    #[test]
    fn the_sasl_password_from_a_file_reaches_both_clients_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cr3t-file\n").unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            format!(
                "[kafka]\nsasl_password_file = {:?}\n",
                secret.display().to_string()
            ),
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&f), vec![]).unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("s3cr3t-file"));
        }
        let s = Settings::load_with_env(
            Some(&f),
            env(&[("LSTM_AE_KAFKA_SASL_PASSWORD", "from-env")]),
        )
        .unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("from-env"));
        }
        std::fs::remove_file(&secret).unwrap();
        let e = Settings::load_with_env(Some(&f), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.sasl_password_file"), "{e}");
    }

    #[test]
    fn static_membership_defaults_from_the_pod_then_the_host_name() {
        let id = |pairs: &[(&str, &str)]| {
            let s = Settings::load_with_env(None, env(pairs)).unwrap();
            consumer_config(&s.kafka)
                .get("group.instance.id")
                .map(str::to_string)
        };
        assert_eq!(id(&[]), None, "no name: dynamic membership");
        assert_eq!(id(&[("HOSTNAME", "host-1")]).as_deref(), Some("host-1"));
        assert_eq!(
            id(&[("HOSTNAME", "host-1"), ("POD_NAME", "lstm-ae-0")]).as_deref(),
            Some("lstm-ae-0")
        );
        assert_eq!(
            id(&[
                ("HOSTNAME", "host-1"),
                ("LSTM_AE__KAFKA__INSTANCE_ID", "daemon-a")
            ])
            .as_deref(),
            Some("daemon-a")
        );
        assert_eq!(
            id(&[
                ("HOSTNAME", "host-1"),
                ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false")
            ]),
            None
        );
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(
            consumer_config(&s.kafka).get("session.timeout.ms"),
            Some("30000")
        );
    }

    /// Settings whose `[kafka.common]` secures the cluster (SASL over TLS),
    /// with the password from the environment, as deploy/ documents it.
    fn secured(extra: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            format!(
                "[kafka.common]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"lstm-ae\"\n{extra}"
            ),
        )
        .unwrap();
        Settings::load_with_env(
            Some(&f),
            env(&[("LSTM_AE_KAFKA_SASL_PASSWORD", "s3cr3t-all")]),
        )
        .unwrap()
    }

    #[test]
    fn every_client_carries_the_common_security_settings_and_the_password() {
        let s = secured("");
        // Produce and the demo replay with `Replay`; the demo prints with `Printer`.
        for client in Client::ALL {
            let c = config(&s.kafka, client);
            assert_eq!(c.get("security.protocol"), Some("SASL_SSL"), "{client:?}");
            assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"), "{client:?}");
            assert_eq!(c.get("sasl.username"), Some("lstm-ae"), "{client:?}");
            assert_eq!(c.get("sasl.password"), Some("s3cr3t-all"), "{client:?}");
            assert_eq!(
                c.get("bootstrap.servers"),
                Some("127.0.0.1:9092"),
                "{client:?}"
            );
        }
    }

    #[test]
    fn the_history_reader_is_secured_like_the_daemon_and_stays_out_of_its_group() {
        let s = secured(
            "[kafka.consumer]\n\"group.instance.id\" = \"daemon-0\"\n\"ssl.ca.location\" = \"/etc/kafka/ca.pem\"\n",
        );
        let c = config(&s.kafka, Client::HistoryReader);
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.username"), Some("lstm-ae"));
        assert_eq!(c.get("sasl.password"), Some("s3cr3t-all"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        let group = c.get("group.id").unwrap();
        assert!(group.starts_with("lstm-ae-retrain-"), "{group}");
        assert_ne!(group, s.kafka.group_id);
        assert_eq!(c.get("group.instance.id"), None);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
    }

    #[test]
    fn the_printer_reads_from_the_start_in_a_group_of_its_own() {
        let s = secured("[kafka.consumer]\n\"group.instance.id\" = \"daemon-0\"\n");
        let c = config(&s.kafka, Client::Printer);
        assert_eq!(c.get("group.id"), Some(PRINTER_GROUP));
        assert_eq!(c.get("group.instance.id"), None);
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(
            consumer_config(&s.kafka).get("group.instance.id"),
            Some("daemon-0")
        );
    }

    #[test]
    fn producers_take_the_producer_table_and_consumers_the_consumer_table() {
        let s = from_toml(
            "[kafka.consumer]\n\"client.id\" = \"c\"\n[kafka.producer]\n\"client.id\" = \"p\"\n",
        );
        for client in Client::ALL {
            let want = match client {
                Client::DaemonProducer | Client::Replay => "p",
                _ => "c",
            };
            assert_eq!(
                config(&s.kafka, client).get("client.id"),
                Some(want),
                "{client:?}"
            );
        }
        assert_eq!(
            config(&s.kafka, Client::Replay).get("enable.idempotence"),
            Some("true")
        );
    }
}
