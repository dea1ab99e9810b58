//! Refused push requests (a missing or wrong push token) per stream, counted so that they are
//! logged and recorded on the stream at most once a minute: a misconfigured transmitter retrying
//! in a loop must not flood the log, yet an operator must see that it is being refused.

/// How often a stream's refused push requests are logged and recorded on the stream.
const AUTH_FAILURE_NOTE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Refused push requests per stream, noted at most once per [`AUTH_FAILURE_NOTE_EVERY`].
#[derive(Default)]
pub struct AuthFailures {
    /// Stream id -> (when last noted, refusals since then).
    by_stream:
        std::sync::Mutex<std::collections::HashMap<String, (Option<std::time::Instant>, u64)>>,
}

impl AuthFailures {
    /// Counts a refusal; returns the count to report when it is time to note it.
    pub fn due(&self, stream_id: &str) -> Option<u64> {
        let mut map = match self.by_stream.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let entry = map.entry(stream_id.to_string()).or_insert((None, 0));
        entry.1 += 1;
        if entry
            .0
            .is_some_and(|t| t.elapsed() < AUTH_FAILURE_NOTE_EVERY)
        {
            return None;
        }
        let refused = entry.1;
        *entry = (Some(std::time::Instant::now()), 0);
        Some(refused)
    }
}
