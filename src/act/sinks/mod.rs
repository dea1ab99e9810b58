//! Sinks: the places a REVOKE_ALL is carried beyond the ledger (DESIGN §5, §8 "Sinks"). One call
//! is one attempt; the worker decides about retries.

pub mod command;
pub mod webhook;

use crate::config::{SinkConfig, SinkKind};
use crate::outbound::{ClientLimits, HttpClient, Outbound, OutboundError, Redirects};

use super::document::{ActionDocument, ActionRow};

/// The most an attempt's detail (status, exit code, captured output) may hold.
pub const DETAIL_LIMIT: usize = 4096;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// Human-readable, at most [`DETAIL_LIMIT`] bytes, never a secret.
    pub detail: String,
}

impl Outcome {
    pub fn ok(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            detail: bounded(detail.into()),
        }
    }

    pub fn failed(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            detail: bounded(detail.into()),
        }
    }
}

/// Runs one attempt of an action on a sink.
pub async fn run(
    client: &HttpClient,
    sink: &SinkConfig,
    row: &ActionRow,
    doc: &ActionDocument,
) -> Outcome {
    match &sink.kind {
        SinkKind::Webhook { url, secret_file } => {
            webhook::deliver(client, url, secret_file, sink.timeout, row, doc).await
        }
        SinkKind::Command { argv } => command::run(argv, sink.timeout, row, doc).await,
    }
}

/// The HTTP client every webhook attempt shares, so connections to a sink are reused. A signed
/// POST must not be replayed to wherever a redirect points, so redirects are not followed; each
/// attempt sets its own timeout.
pub fn http_client(outbound: &Outbound) -> Result<HttpClient, OutboundError> {
    outbound.client(
        &ClientLimits {
            connect_timeout: std::time::Duration::from_secs(10),
            timeout: crate::config::SINK_RETRY_CAP,
        },
        Redirects::None,
    )
}

/// Cuts `text` to [`DETAIL_LIMIT`] bytes on a character boundary, saying so when it cuts.
pub fn bounded(mut text: String) -> String {
    const MARK: &str = " [truncated]";
    if text.len() <= DETAIL_LIMIT {
        return text;
    }
    let mut end = DETAIL_LIMIT - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

/// Bytes a sink produced (a response body, a command's output), as text fit for a detail.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(DETAIL_LIMIT);
        let cut = bounded(long);
        assert!(cut.len() <= DETAIL_LIMIT);
        assert!(cut.ends_with(" [truncated]"));
        assert_eq!(bounded("short".into()), "short");
    }
}
