//! Error answers of transmitters, fit to show an operator: the start of the body, scrubbed of
//! anything that looks like a credential (docs/poll.md#errors-from-transmitters).

use super::read_limited;

/// Longest excerpt of a transmitter's error body shown in an error message.
pub const EXCERPT_CHARS: usize = 200;
/// Runs of token-like characters at least this long are taken for credentials and hidden.
const TOKEN_LIKE_CHARS: usize = 16;

/// The start of an error body fit to show an operator: printable text of at most
/// [`EXCERPT_CHARS`] characters, with every `secret` and every run of token-like characters
/// (letters, digits, `-._~+/=`) of 16 or more replaced by `<redacted>`. A transmitter's error
/// may echo the credentials it was sent; none of them survives this.
pub fn scrubbed_excerpt(body: &[u8], secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    let token_like = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= TOKEN_LIKE_CHARS {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if token_like(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = collapsed.chars().take(EXCERPT_CHARS).collect();
    if collapsed.chars().count() > EXCERPT_CHARS {
        excerpt.push('…');
    }
    excerpt
}

/// The secrets ssfd itself sends a transmitter for this stream, to keep out of any message.
pub(crate) fn outbound_secrets(stream: &crate::stream::Stream) -> Vec<&str> {
    match &stream.outbound_auth {
        Some(crate::stream::OutboundAuth::Bearer { token }) => vec![token.as_str()],
        Some(crate::stream::OutboundAuth::Oauth2 { client_secret, .. }) => {
            vec![client_secret.as_str()]
        }
        None => Vec::new(),
    }
}

/// Reads at most a few KiB of an error answer and returns its scrubbed excerpt ("" when the
/// body cannot be read).
pub(crate) async fn error_excerpt(resp: reqwest::Response, secrets: &[&str]) -> String {
    match read_limited(resp, "error", 4096).await {
        Ok(body) => scrubbed_excerpt(&body, secrets),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_never_show_a_credential() {
        let token = "Zx8_kq-3LmN0pQrStUvWxYz0123456789abcdefghi";
        let body = format!(
            r#"{{"error":"invalid authorization_header \"Bearer {token}\"","hint":"short ok"}}"#
        );
        let e = scrubbed_excerpt(body.as_bytes(), &[]);
        assert!(!e.contains(token) && !e.contains(&token[..16]), "{e}");
        assert!(e.contains("<redacted>") && e.contains("short ok"), "{e}");
        // Known secrets go even when short.
        let e = scrubbed_excerpt(b"bad token abc123 here", &["abc123"]);
        assert_eq!(e, "bad token <redacted> here");
        // Bounded, one line.
        let long = "no such stream\n".repeat(100);
        let e = scrubbed_excerpt(long.as_bytes(), &[]);
        assert!(
            e.chars().count() <= EXCERPT_CHARS + 1 && !e.contains('\n'),
            "{e}"
        );
        assert_eq!(
            scrubbed_excerpt(b"does not support long polling", &[]),
            "does not support long polling"
        );
    }
}
