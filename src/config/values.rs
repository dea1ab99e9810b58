//! The value kinds of receiver.toml (durations, sizes, addresses, URLs, paths, bounded integers)
//! as serde `with` modules: each reads and checks its value, so that an error arises while the
//! value is being read and names its key and line, and each prints the value back the way the
//! file writes it (for `ssfd check-config`).

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

use super::secret::{check_credential_name, CREDENTIAL_PREFIX};

/// Largest accepted `server.max_body`. A push body is one compact JWS; a larger limit would only
/// let a client make the daemon buffer more.
pub const MAX_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Reads a value through `check`, which gets the string or integer written in the file.
struct Checked<T, F> {
    expecting: &'static str,
    check: F,
    out: PhantomData<T>,
}

/// What a key was given: the two scalar kinds the checks look at.
enum Raw<'a> {
    Str(&'a str),
    Int(i64),
}

impl<'de, T, F: FnOnce(Raw<'_>) -> Result<T, String>> Visitor<'de> for Checked<T, F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.check)(Raw::Str(v)).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.check)(Raw::Int(v)).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("integer out of range"))?;
        self.visit_i64(v)
    }
}

/// Reads a value that must be a string, then checks it.
fn string<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let visitor = Checked {
        expecting,
        check: |raw: Raw<'_>| match raw {
            Raw::Str(s) => check(s),
            Raw::Int(_) => Err(format!("expected {expecting}, found an integer")),
        },
        out: PhantomData,
    };
    d.deserialize_any(visitor)
}

fn integer<'de, D: Deserializer<'de>>(d: D, range: RangeInclusive<u32>) -> Result<u32, D::Error> {
    let visitor = Checked {
        expecting: "an integer",
        check: |raw: Raw<'_>| match raw {
            Raw::Int(n) => u32::try_from(n)
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| format!("must be between {} and {}", range.start(), range.end())),
            Raw::Str(_) => Err("expected an integer, found a string".to_string()),
        },
        out: PhantomData,
    };
    d.deserialize_any(visitor)
}

pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn read_duration(s: &str, allow_zero: bool) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h\""))?;
    if d.is_zero() && !allow_zero {
        return Err("must be longer than zero".to_string());
    }
    // Every duration is added to a clock somewhere; beyond this it means nothing and only
    // risks an overflow.
    if d > MAX_DURATION {
        return Err("must be at most 10 years (\"3650d\")".to_string());
    }
    Ok(d)
}

/// Longest duration any key accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

const DURATION: &str = "a duration such as \"30s\" or \"1h\"";

/// A duration longer than zero (`"30s"`, `"1h"`, `"1m 30s"`).
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        string(d, DURATION, |s| read_duration(s, false))
    }
}

/// A duration where zero is meaningful.
pub mod duration_or_zero {
    use super::*;

    pub use super::duration::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        string(d, DURATION, |s| read_duration(s, true))
    }
}

/// An optional period: `"off"` or `"0s"` mean none, as when the key is absent.
pub mod period_or_off {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        string(d, DURATION, |s| {
            if s.trim().eq_ignore_ascii_case("off") {
                return Ok(None);
            }
            Ok(Some(read_duration(s, true)?).filter(|d| !d.is_zero()))
        })
    }
}

/// Parses a size: an integer with an optional unit (B, KiB, MiB, kB, MB).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

pub fn format_size(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n != 0 && n % MIB == 0 {
        format!("{}MiB", n / MIB)
    } else if n != 0 && n % 1024 == 0 {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n}B")
    }
}

/// A body size between 1 byte and [`MAX_BODY_LIMIT`]: bytes as an integer, or `"64KiB"`.
pub mod body_size {
    use super::*;

    pub fn serialize<S: Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let visitor = Checked {
            expecting: "a size such as \"64KiB\" or an integer of bytes",
            check: |raw: Raw<'_>| {
                let n = match raw {
                    Raw::Int(n) => u64::try_from(n).ok(),
                    Raw::Str(s) => Some(parse_size(s).ok_or(
                        "not a size; write bytes as an integer or e.g. \"64KiB\", \"1MiB\"",
                    )?),
                };
                n.and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=MAX_BODY_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!("must be between 1 byte and {}", format_size(MAX_BODY_LIMIT))
                    })
            },
            out: PhantomData,
        };
        d.deserialize_any(visitor)
    }
}

/// A listen address (`"127.0.0.1:8080"`, `"[::1]:8080"`).
pub mod socket_addr {
    use super::*;

    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        string(d, "a string", |s| {
            s.trim().parse().map_err(|_| {
                "not a socket address; write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"".to_string()
            })
        })
    }
}

/// Checks an http:// or https:// URL with a host.
pub fn check_http_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_string());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_string());
    }
    Ok(url)
}

/// An http:// or https:// URL with a host, kept as written.
pub mod http_url {
    use super::*;

    /// Printed (`check-config`) with user name, password and query redacted.
    pub fn serialize<S: Serializer>(u: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::sanitize::redact_url(u))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        string(d, "a string", |s| check_http_url(s).map(|_| s.to_string()))
    }
}

/// `server.public_base_url`: an http(s) URL without query or fragment, since the push URL is
/// this plus a path and a query or fragment would end up in the middle.
pub mod base_url {
    use super::*;

    pub use super::http_url::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        string(d, "a string", |s| {
            let url = check_http_url(s)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err("must not have a query or fragment".to_string());
            }
            Ok(s.to_string())
        })
    }
}

fn read_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(PathBuf::from(s))
}

/// A file path, not empty.
pub mod path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&p.display())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        string(d, "a string", read_path)
    }
}

/// An optional file path, not empty when given.
pub mod opt_path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.collect_str(&p.display()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        super::path::deserialize(d).map(Some)
    }
}

/// The path of a secret file, which may also be `credential:NAME` (see
/// [`super::resolve_secret_path`]); the name is checked here so that a typo shows at check
/// time, not when the service first reads it.
pub mod secret_path {
    use super::*;

    pub use super::path::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        string(d, "a string", |s| {
            let p = read_path(s)?;
            if let Some(name) = s.strip_prefix(CREDENTIAL_PREFIX) {
                check_credential_name(name)?;
            }
            Ok(p)
        })
    }
}

/// A boolean, named the way the file writes it.
pub mod boolean {
    use super::*;

    pub fn serialize<S: Serializer>(b: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct B;
        impl Visitor<'_> for B {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
        }
        d.deserialize_any(B)
    }
}

/// Bounds of `poll.max_events`.
pub const POLL_MAX_EVENTS_RANGE: RangeInclusive<u32> = 1..=10_000;
/// Bounds of `server.max_connections_per_address` and `server.max_failed_auth_per_minute`.
pub const PER_ADDRESS_LIMIT_RANGE: RangeInclusive<u32> = 1..=100_000;
/// Bounds of a sink's `max_attempts`.
pub const SINK_MAX_ATTEMPTS_RANGE: RangeInclusive<u32> = 1..=1000;

/// `poll.max_events`, within [`POLL_MAX_EVENTS_RANGE`].
pub mod poll_max_events {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(*n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        integer(d, POLL_MAX_EVENTS_RANGE)
    }
}

/// A per-client-address limit, within [`PER_ADDRESS_LIMIT_RANGE`].
pub mod per_address_limit {
    use super::*;

    pub use super::poll_max_events::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        integer(d, PER_ADDRESS_LIMIT_RANGE)
    }
}

/// A sink's `max_attempts`, within [`SINK_MAX_ATTEMPTS_RANGE`].
pub mod sink_max_attempts {
    use super::*;

    pub use super::poll_max_events::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        integer(d, SINK_MAX_ATTEMPTS_RANGE)
    }
}

/// Reads a string chosen from a fixed list.
pub fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    allowed: &'static [&'static str],
) -> Result<&'static str, D::Error> {
    string(d, "a string", |s| {
        allowed.iter().copied().find(|a| *a == s).ok_or_else(|| {
            let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            match quoted.as_slice() {
                [a, b] => format!("expected {a} or {b}"),
                _ => format!("expected one of: {}", allowed.join(", ")),
            }
        })
    })
}

/// Prints a secret as a placeholder: `ssfd check-config` output never holds one.
pub fn redacted<T, S: Serializer>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(REDACTED)
}

/// What a secret prints as.
pub const REDACTED: &str = "<redacted>";

/// Reads an array of strings, then checks the whole list; an element of another kind is named
/// by its index and line.
pub fn string_list<'de, D: Deserializer<'de>>(
    d: D,
    check: impl FnOnce(&[String]) -> Result<(), String>,
) -> Result<Vec<String>, D::Error> {
    struct L<F>(F);
    impl<'de, F: FnOnce(&[String]) -> Result<(), String>> Visitor<'de> for L<F> {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            (self.0)(&out).map_err(de::Error::custom)?;
            Ok(out)
        }
    }
    d.deserialize_any(L(check))
}

/// A list of stream ids or event types, none of them empty.
pub mod nonempty_entries {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        string_list(d, |list| {
            if list.iter().any(|e| e.trim().is_empty()) {
                return Err("entries must not be empty".to_string());
            }
            Ok(())
        })
    }
}
