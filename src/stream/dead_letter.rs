//! The headers of a dead letter: why an input message was rejected and
//! where it came from.

use super::codec::CodecError;

/// Headers of a dead letter: why the message was rejected and where it came
/// from. The dead letter's payload and key are the original bytes; the
/// headers make it possible to triage (by kind) and replay (by source)
/// without parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterHeaders {
    kind: &'static str,
    message: String,
    topic: String,
    partition: i32,
    offset: i64,
}

impl DeadLetterHeaders {
    /// Header carrying [`CodecError::kind`].
    pub const KIND: &'static str = "lstm_ae.error.kind";
    /// Header carrying the human-readable reason.
    pub const MESSAGE: &'static str = "lstm_ae.error.message";
    /// Header carrying the input topic.
    pub const SOURCE_TOPIC: &'static str = "lstm_ae.source.topic";
    /// Header carrying the input partition (decimal).
    pub const SOURCE_PARTITION: &'static str = "lstm_ae.source.partition";
    /// Header carrying the input offset (decimal).
    pub const SOURCE_OFFSET: &'static str = "lstm_ae.source.offset";
    /// Longest message kept, in bytes; headers are not the place for essays.
    pub const MAX_MESSAGE_BYTES: usize = 512;

    /// Headers for a message rejected by the codec.
    pub fn for_codec_error(error: &CodecError, topic: &str, partition: i32, offset: i64) -> Self {
        Self::new(error.kind(), &error.to_string(), topic, partition, offset)
    }

    /// Headers for a rejection with any other low-cardinality `kind`
    /// (a static string, so a data-dependent kind cannot slip in).
    pub fn new(
        kind: &'static str,
        message: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Self {
        let mut end = message.len().min(Self::MAX_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            kind,
            message: message[..end].to_owned(),
            topic: topic.to_owned(),
            partition,
            offset,
        }
    }

    /// The headers as (name, value) pairs, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            (Self::KIND, self.kind.to_owned()),
            (Self::MESSAGE, self.message.clone()),
            (Self::SOURCE_TOPIC, self.topic.clone()),
            (Self::SOURCE_PARTITION, self.partition.to_string()),
            (Self::SOURCE_OFFSET, self.offset.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers() {
        let err = CodecError::MissingField("ts");
        let h = DeadLetterHeaders::for_codec_error(&err, "points-in", 3, 42);
        assert_eq!(
            h.pairs(),
            vec![
                ("lstm_ae.error.kind", "missing_field".to_string()),
                ("lstm_ae.error.message", "missing field `ts`".to_string()),
                ("lstm_ae.source.topic", "points-in".to_string()),
                ("lstm_ae.source.partition", "3".to_string()),
                ("lstm_ae.source.offset", "42".to_string()),
            ]
        );
        // Long messages are cut at a character boundary (é is 2 bytes).
        let long = "é".repeat(400);
        let h = DeadLetterHeaders::new("invalid_json", &long, "t", 0, 0);
        let msg = &h.pairs()[1].1;
        assert_eq!(msg.len(), 512);
        assert!(msg.chars().all(|c| c == 'é'));
    }
}
