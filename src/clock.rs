//! Time as ssfd stores and shows it: Unix seconds inside, RFC 3339 UTC at the edges.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as stored in the database.
pub type UnixSeconds = i64;

/// Milliseconds since the Unix epoch; used where ordering within one second matters.
pub type UnixMillis = i64;

pub fn now_unix() -> UnixSeconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// About 30 years: "never" for an expiry or a wait, and small enough to add to any `Instant`.
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d` without the panic of `Instant + Duration`: a duration from a transmitter or a
/// config file may be huge, and then the result is [`FAR_FUTURE`] away.
pub fn instant_after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR_FUTURE))
        .or_else(|| at.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(at)
}

/// The last second humantime (and RFC 3339's four-digit year) can show: 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

fn system_time(secs: i64, nanos: u32) -> SystemTime {
    // Clamped: a transmitter's absurd timestamp must never make formatting fail.
    let secs = secs.clamp(0, MAX_SECS) as u64;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-22T07:00:00Z`); out-of-range values are
/// clamped to 1970-01-01 and 9999-12-31.
pub fn rfc3339(secs: UnixSeconds) -> String {
    humantime::format_rfc3339_seconds(system_time(secs, 0)).to_string()
}

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision (clamped like
/// [`rfc3339`]).
pub fn rfc3339_millis(ms: UnixMillis) -> String {
    let nanos = if ms >= 0 && ms / 1000 <= MAX_SECS {
        (ms % 1000) as u32 * 1_000_000
    } else {
        0
    };
    humantime::format_rfc3339_millis(system_time(ms.div_euclid(1000), nanos)).to_string()
}

/// Parses an RFC 3339 timestamp with `Z` or a numeric offset (`+02:00`) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixSeconds> {
    let s = s.trim();
    let (local, offset_secs) =
        if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
            (rest, 0i64)
        } else {
            // The offset is the last `+HH:MM` / `-HH:MM`, after the time part.
            let t = s.find(['T', 't', ' '])?;
            let sign_at = s[t..].rfind(['+', '-']).map(|i| i + t)?;
            let (local, off) = s.split_at(sign_at);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (h, m) = off[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            (local, sign * (h * 3600 + m * 60))
        };
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(secs - offset_secs)
}

/// Parses a duration in humantime form (`"30s"`, `"1h 30m"`, `"90s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

/// Formats a duration the way the admin API shows it (`"30s"`, `"1h"`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let s = rfc3339(1_700_000_000);
        assert_eq!(s, "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339(&s), Some(1_700_000_000));
    }

    #[test]
    fn offsets_and_extremes() {
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T21:13:20.5-01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+2"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.000Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(parse_duration("bogus"), None);
    }
}
