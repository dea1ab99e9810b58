//! Tolerances: the named, counted departures from strict SSF 1.0 that ssfd accepts, and the
//! ledger that makes each one visible (metric, stream stats, a warning once per stream and kind).
//!
//! Which profile allows which kind is documented in docs/push.md#tolerances.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::metrics::Metrics;

/// One kind of tolerance. The names are stable: they appear in metrics, stats, stored events
/// and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tolerance {
    /// Every profile: `txn` was a JSON number; stored as its decimal string.
    NumericTxn,
    /// Every profile: `event_timestamp` in milliseconds.
    MillisecondTimestamp,
    /// Every profile: a complex subject's `session` was `"ALL"` (all sessions of the user).
    SessionAll,
    /// Every profile: an `initiating_entity` outside CAEP 1.0, kept as received.
    UnknownInitiatingEntity,
    /// Every profile: `reason_admin` / `reason_user` not a map of language tags to text.
    NonstandardReason,
    /// Every profile: the subject inside the event, no top-level `sub_id`.
    SubjectInEvent,
    /// LEGACY_SSE: `iss` (or the metadata `issuer`) differs from issuerUrl by one trailing `/`.
    IssuerTrailingSlash,
    /// LEGACY_SSE: metadata found at `/.well-known/sse-configuration`.
    SseMetadataPath,
    /// LEGACY_SSE: RISC-era delivery method URIs at registration.
    LegacyDeliveryMethod,
    /// LEGACY_SSE: a stream configuration without `stream_id`.
    ConfigWithoutStreamId,
    /// LEGACY_SSE: a verification event under the SSE draft URI, matched on `state`.
    LegacyVerification,
    /// LEGACY_SSE: a push `Authorization` header holding the token without `Bearer `.
    BarePushToken,
    /// LEGACY_SSE: poll acknowledgements sent as `acks` beside `ack`.
    PollAcks,
}

impl Tolerance {
    pub const ALL: [Tolerance; 13] = [
        Tolerance::NumericTxn,
        Tolerance::MillisecondTimestamp,
        Tolerance::SessionAll,
        Tolerance::UnknownInitiatingEntity,
        Tolerance::NonstandardReason,
        Tolerance::SubjectInEvent,
        Tolerance::IssuerTrailingSlash,
        Tolerance::SseMetadataPath,
        Tolerance::LegacyDeliveryMethod,
        Tolerance::ConfigWithoutStreamId,
        Tolerance::LegacyVerification,
        Tolerance::BarePushToken,
        Tolerance::PollAcks,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Tolerance::NumericTxn => "numeric_txn",
            Tolerance::MillisecondTimestamp => "millisecond_timestamp",
            Tolerance::SessionAll => "session_all",
            Tolerance::UnknownInitiatingEntity => "unknown_initiating_entity",
            Tolerance::NonstandardReason => "nonstandard_reason",
            Tolerance::SubjectInEvent => "subject_in_event",
            Tolerance::IssuerTrailingSlash => "issuer_trailing_slash",
            Tolerance::SseMetadataPath => "sse_metadata_path",
            Tolerance::LegacyDeliveryMethod => "legacy_delivery_method",
            Tolerance::ConfigWithoutStreamId => "config_without_stream_id",
            Tolerance::LegacyVerification => "legacy_verification",
            Tolerance::BarePushToken => "bare_push_token",
            Tolerance::PollAcks => "poll_acks",
        }
    }

    /// What the warning says the first time a stream needs this tolerance.
    fn meaning(&self) -> &'static str {
        match self {
            Tolerance::NumericTxn => "txn was a number; stored as its decimal string",
            Tolerance::MillisecondTimestamp => {
                "event_timestamp was in milliseconds; read as milliseconds"
            }
            Tolerance::SessionAll => "session \"ALL\" read as every session of the user",
            Tolerance::UnknownInitiatingEntity => {
                "initiating_entity outside CAEP 1.0; kept as received"
            }
            Tolerance::NonstandardReason => {
                "reason_admin/reason_user not a language map; kept as received"
            }
            Tolerance::SubjectInEvent => "subject inside the event instead of sub_id",
            Tolerance::IssuerTrailingSlash => "issuer differs from issuerUrl by a trailing /",
            Tolerance::SseMetadataPath => "metadata found at the SSE draft path",
            Tolerance::LegacyDeliveryMethod => "RISC-era delivery method URI used",
            Tolerance::ConfigWithoutStreamId => "stream configuration without stream_id",
            Tolerance::LegacyVerification => "verification event under the SSE draft URI",
            Tolerance::BarePushToken => "push Authorization header without the Bearer scheme",
            Tolerance::PollAcks => "poll acknowledgements sent as acks beside ack",
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds, as stored and logged: names joined by `,`.
pub fn joined(kinds: &[Tolerance]) -> String {
    kinds
        .iter()
        .map(Tolerance::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Counts of tolerances applied since start, per stream and kind.
#[derive(Debug, Default)]
pub struct ToleranceLedger {
    counts: Mutex<HashMap<String, BTreeMap<Tolerance, u64>>>,
}

impl ToleranceLedger {
    /// Counts each kind once for `stream` (in the metric too); the first time a stream needs a
    /// kind, says so in a warning.
    pub fn note(&self, metrics: &Metrics, stream: &str, kinds: &[Tolerance]) {
        if kinds.is_empty() {
            return;
        }
        let mut first = Vec::new();
        {
            let mut counts = match self.counts.lock() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            let per_stream = counts.entry(stream.to_string()).or_default();
            for kind in kinds {
                let n = per_stream.entry(*kind).or_insert(0);
                if *n == 0 {
                    first.push(*kind);
                }
                *n += 1;
            }
        }
        for kind in kinds {
            metrics.tolerance(stream, kind.as_str());
        }
        for kind in first {
            tracing::warn!(
                stream = %stream, tolerance = kind.as_str(),
                "transmitter departs from SSF 1.0: {}; accepted and counted (logged once per stream and kind)",
                kind.meaning()
            );
        }
    }

    /// The counts of one stream, by kind name.
    pub fn of(&self, stream: &str) -> BTreeMap<&'static str, u64> {
        let counts = match self.counts.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        counts
            .get(stream)
            .map(|m| m.iter().map(|(k, n)| (k.as_str(), *n)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<&str> = Tolerance::ALL.iter().map(Tolerance::as_str).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Tolerance::ALL.len());
    }

    #[test]
    fn ledger_counts_per_stream_and_kind() {
        let metrics = Metrics::new();
        let ledger = ToleranceLedger::default();
        ledger.note(&metrics, "s1", &[Tolerance::NumericTxn]);
        ledger.note(
            &metrics,
            "s1",
            &[Tolerance::NumericTxn, Tolerance::SessionAll],
        );
        ledger.note(&metrics, "s2", &[Tolerance::PollAcks]);
        let s1 = ledger.of("s1");
        assert_eq!(s1.get("numeric_txn"), Some(&2));
        assert_eq!(s1.get("session_all"), Some(&1));
        assert_eq!(ledger.of("s2").len(), 1);
        assert!(ledger.of("nope").is_empty());
        assert_eq!(
            joined(&[Tolerance::NumericTxn, Tolerance::PollAcks]),
            "numeric_txn,poll_acks"
        );
    }
}
