//! Sinks: the places a REVOKE_ALL is carried beyond the ledger (docs/actions.md). One call
//! is one attempt; the worker decides about retries.
//!
//! Each kind lives in its own file: its settings (the keys of its `[[sink]]` table beyond the
//! shared ones of `settings`) and its attempt. [`sink_kinds!`] below is where kinds are listed.

pub mod command;
mod settings;
pub mod webhook;

use std::time::Duration;

use crate::outbound::{ClientLimits, HttpClient, Outbound, OutboundError, Redirects};

use serde::de::{self, MapAccess};
use serde::{Deserialize, Serialize};

pub use self::command::CommandSettings;
use self::settings::KindKeys;
pub(crate) use self::settings::{deserialize_sinks, with_sink_types};
pub use self::settings::{
    SinkConfig, SinkSettings, DEFAULT_SINK_MAX_ATTEMPTS, DEFAULT_SINK_RETRY_BASE, SINK_RETRY_CAP,
};
pub use self::webhook::WebhookSettings;
use super::attempt::{ActionDocument, ActionRow};

/// Declares the sink kinds: for each, the `type` value in receiver.toml, the variant of
/// [`SinkKind`], and the settings type its file owns (which implements [`SinkSettings`] and
/// has an `attempt` method).
macro_rules! sink_kinds {
    ($($type_name:literal => $variant:ident($settings:ty),)+) => {
        /// A sink's kind with its own settings.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(tag = "type")]
        pub enum SinkKind {
            $(#[serde(rename = $type_name)] $variant($settings),)+
        }

        impl SinkKind {
            /// Every `type` value receiver.toml accepts.
            pub const TYPES: &'static [&'static str] = &[$($type_name),+];

            /// The `type` value in receiver.toml.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(SinkKind::$variant(_) => $type_name,)+
                }
            }

            /// The timeout of an attempt when the sink does not set one.
            pub fn default_timeout(&self) -> Duration {
                match self {
                    $(SinkKind::$variant(_) => <$settings as SinkSettings>::DEFAULT_TIMEOUT,)+
                }
            }

            async fn attempt(
                &self,
                client: &HttpClient,
                timeout: Duration,
                row: &ActionRow,
                doc: &ActionDocument,
            ) -> Outcome {
                match self {
                    $(SinkKind::$variant(s) => s.attempt(client, timeout, row, doc).await,)+
                }
            }

            /// Reads the settings of the kind `type_name` from a sink table.
            fn read<'de, A: MapAccess<'de>>(
                type_name: &str,
                keys: KindKeys<'_, A>,
            ) -> Result<SinkKind, A::Error> {
                let keys = de::value::MapAccessDeserializer::new(keys);
                match type_name {
                    $($type_name => <$settings>::deserialize(keys).map(SinkKind::$variant),)+
                    other => Err(de::Error::custom(format!("no sink type {other:?}"))),
                }
            }
        }
    };
}

sink_kinds! {
    "webhook" => Webhook(WebhookSettings),
    "command" => Command(CommandSettings),
}

/// Timeout of a webhook sink that does not set `timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = WebhookSettings::DEFAULT_TIMEOUT;
/// Timeout of a command sink that does not set `timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = CommandSettings::DEFAULT_TIMEOUT;

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
    sink.kind.attempt(client, sink.timeout, row, doc).await
}

/// The HTTP client every webhook attempt shares, so connections to a sink are reused. A signed
/// POST must not be replayed to wherever a redirect points, so redirects are not followed; each
/// attempt sets its own timeout.
pub fn http_client(outbound: &Outbound) -> Result<HttpClient, OutboundError> {
    outbound.client(
        &ClientLimits {
            connect_timeout: std::time::Duration::from_secs(10),
            timeout: SINK_RETRY_CAP,
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
