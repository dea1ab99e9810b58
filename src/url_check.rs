//! The rule every URL ssfd is given must pass, whoever gives it (an operator through the admin
//! API, or a transmitter's discovery or registration answer).

use crate::verify::jwks::check_scheme;

/// An absolute http(s) URL with a host, no fragment; https unless `allow_http`. The error is
/// the problem, for the caller to attach to the field it checked.
pub fn check_url(s: &str, allow_http: bool) -> Result<(), String> {
    let Some((_, rest)) = s.split_once("://") else {
        return Err("must be an absolute https URL".into());
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || s.contains('#') || s.chars().any(char::is_whitespace) {
        return Err("must be an absolute https URL".into());
    }
    check_scheme(s, allow_http)
}
