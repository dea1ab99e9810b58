//! The webhook sink: one signed HTTP POST of the action document per attempt (docs/actions.md,
//! "Webhook sink"); its `[[sink]]` settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{printable, Outcome, SinkSettings, DETAIL_LIMIT};
use crate::act::attempt::{ActionDocument, ActionRow};
use crate::clock::now_unix;
use crate::config::secret::read_secret;
use crate::config::values;
use crate::outbound::{describe, HttpClient};

/// `type = "webhook"`: where to POST, and the file of the HMAC key that signs each request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// An http:// or https:// URL.
    #[serde(with = "values::http_url")]
    pub url: String,
    /// May be `credential:NAME` (see [`crate::config::resolve_secret_path`]); read on every
    /// attempt, so that a rotated key takes effect without a restart.
    #[serde(with = "values::secret_path")]
    pub secret_file: PathBuf,
}

impl SinkSettings for WebhookSettings {
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

impl WebhookSettings {
    pub async fn attempt(
        &self,
        client: &HttpClient,
        timeout: Duration,
        row: &ActionRow,
        doc: &ActionDocument,
    ) -> Outcome {
        deliver(client, &self.url, &self.secret_file, timeout, row, doc).await
    }
}

/// `sha256=<lower-case hex of HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn deliver(
    client: &HttpClient,
    url: &str,
    secret_file: &Path,
    timeout: Duration,
    row: &ActionRow,
    doc: &ActionDocument,
) -> Outcome {
    // Read on every attempt so that a rotated key takes effect without a restart.
    let secret = match read_secret(secret_file) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(format!("webhook secret_file: {e}")),
    };
    let timestamp = now_unix().to_string();
    let sig = signature(secret.as_bytes(), &timestamp, &doc.body);
    let req = match client.post(url) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(format!("request refused: {e}")),
    };
    let sent = req
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "Idempotency-Key",
            crate::sanitize::header_value(&row.idempotency_key),
        )
        .header("X-Ssfd-Timestamp", &timestamp)
        .header("X-Ssfd-Signature", sig)
        .body(doc.body.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        // The URL may carry a token in its query; errors are reported without it.
        Err(e) if e.is_timeout() => {
            return Outcome::failed(format!("no answer within {}s", timeout.as_secs_f64()))
        }
        Err(e) => return Outcome::failed(format!("request failed: {}", describe(&e))),
    };
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < DETAIL_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(DETAIL_LIMIT);
    let text = printable(&body);
    let detail = if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {text}", status.as_u16())
    };
    if status.is_success() {
        Outcome::ok(detail)
    } else {
        Outcome::failed(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently: HMAC-SHA256("secret", "1700000000.{\"a\":1}").
        assert_eq!(
            signature(b"secret", "1700000000", br#"{"a":1}"#),
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
