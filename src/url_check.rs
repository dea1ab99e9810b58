//! The rule every URL ssfd is given must pass, whoever gives it (an operator through the admin
//! API, or a transmitter's discovery or registration answer).

use crate::verify::jwks::check_scheme;

/// An absolute http(s) URL with a host, no fragment, no user name or password (they would be
/// sent to the host and shown by every log that shows the URL); https unless `allow_http`. The
/// error is the problem, for the caller to attach to the field it checked.
pub fn check_url(s: &str, allow_http: bool) -> Result<(), String> {
    let bad = || "must be an absolute https URL".to_string();
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let url = url::Url::parse(s).map_err(|_| bad())?;
    if url.host_str().is_none_or(str::is_empty) || url.fragment().is_some() {
        return Err(bad());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry a user name or password; use outboundAuthBearer or outboundAuthOauth2"
                .into(),
        );
    }
    check_scheme(s, allow_http)
}
