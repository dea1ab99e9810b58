//! Text that came from outside (a SET's claims, a transmitter's answer) made safe to put in a
//! log line, an HTTP header value or a command's environment: no control characters, no line
//! breaks, bounded length.

/// Longest text kept; longer text is cut and marked.
pub const MAX_CHARS: usize = 256;

/// `text` without control characters (each becomes `?`, so a forged line break cannot start a
/// log line of its own), at most [`MAX_CHARS`] characters.
pub fn log_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_CHARS)
        .map(|c| if is_unsafe(c) { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Whether a character must not reach a log line, a header or an environment variable: C0 and
/// C1 controls, DEL, and the Unicode line and paragraph separators and bidirectional overrides
/// that can make a line read differently from what it holds.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` for a command's environment: every unsafe character and `%` percent-encoded (its
/// UTF-8 bytes), so the value is one clean line and distinct values stay distinct.
pub fn env_value(text: &str) -> String {
    encode(text, |c| is_unsafe(c) || c == '%')
}

/// `text` for an HTTP header value: everything but visible ASCII and space, and `%`,
/// percent-encoded; distinct values stay distinct.
pub fn header_value(text: &str) -> String {
    encode(text, |c| !(c == ' ' || c.is_ascii_graphic()) || c == '%')
}

fn encode(text: &str, escape: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `text` can go into a header value or an environment variable as it is.
pub fn is_clean(text: &str) -> bool {
    !text.chars().any(is_unsafe)
}

/// A URL fit for a log line, an error or `check-config`: user name, password and query replaced
/// by `***`, fragment dropped, and control characters gone.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<not a valid URL>".to_string();
    };
    let secretless = u.username().is_empty()
        && u.password().is_none()
        && u.query().is_none()
        && u.fragment().is_none();
    if secretless && !url.chars().any(char::is_control) {
        // Shown as written (the parser would add a trailing `/` to a bare host).
        return url.to_string();
    }
    if !u.username().is_empty() {
        let _ = u.set_username("***");
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        u.set_query(Some("***"));
    }
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_line_breaks_are_replaced() {
        assert_eq!(
            log_text("alice\n2026 INFO forged"),
            "alice?2026 INFO forged"
        );
        assert_eq!(log_text("a\r\u{1b}[31mb\u{2028}c\u{202e}"), "a??[31mb?c?");
        assert_eq!(log_text("plain é"), "plain é");
        let long = "x".repeat(MAX_CHARS + 5);
        assert_eq!(log_text(&long).chars().count(), MAX_CHARS + 1);
        assert_eq!(env_value("a\nb%c é"), "a%0Ab%25c é");
        assert_eq!(header_value("s:j\r\nX: y:é"), "s:j%0D%0AX: y:%C3%A9");
        assert_ne!(header_value("a%0Ab"), header_value("a\nb"));
        assert!(is_clean("ok value"));
        assert!(!is_clean("bad\nvalue"));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com/x?token=abc#frag"),
            "https://***:***@hooks.example.com/x?***"
        );
        assert_eq!(
            redact_url("https://tr.example.com/jwks"),
            "https://tr.example.com/jwks"
        );
        assert_eq!(redact_url("not a url\n"), "<not a valid URL>");
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
