//! A `[[sink]]` table: the options every sink shares (type, name, streams, events, timeout,
//! max_attempts, retry_base) are read here; the rest of the table belongs to the sink's kind,
//! whose settings type (in the kind's own file) reads it with its own derive, keys and checks.
//!
//! The table is read in one pass through the TOML reader, so that every error keeps its key and
//! line. serde's internally tagged enums would buffer the table and lose both, so the kind is
//! looked up first (from an untyped read of the file, [`with_sink_types`]) and the kind's
//! settings are then read straight from the table, the shared keys taken out on the way.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::SinkKind;
use crate::config::values::{self, format_duration};

/// Attempts before a sink action is `dead`, when a sink does not set `max_attempts`.
pub const DEFAULT_SINK_MAX_ATTEMPTS: u32 = 8;
/// First retry delay of a sink action, when a sink does not set `retry_base`; it doubles per
/// attempt up to [`SINK_RETRY_CAP`].
pub const DEFAULT_SINK_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between two attempts of a sink action.
pub const SINK_RETRY_CAP: Duration = Duration::from_secs(300);

/// The keys every sink table shares, in the order an unknown-key error lists them.
const SHARED_KEYS: &[&str] = &[
    "type",
    "name",
    "timeout",
    "streams",
    "events",
    "max_attempts",
    "retry_base",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkConfig {
    pub name: String,
    /// The kind and its own settings; printed as `type = "..."` and the kind's keys.
    #[serde(flatten)]
    pub kind: SinkKind,
    /// Default: the kind's own ([`SinkKind::default_timeout`]).
    #[serde(with = "values::duration")]
    pub timeout: Duration,
    /// Limit to these stream ids (empty = all streams).
    pub streams: Vec<String>,
    /// Limit to these event types, URIs or short names (empty = all); see
    /// [`crate::event_type::event_type_matches`].
    pub events: Vec<String>,
    /// Attempts before an action is `dead` (default 8).
    pub max_attempts: u32,
    /// Delay before the first retry (default 1s); doubles per attempt, capped at 5 minutes.
    #[serde(with = "values::duration")]
    pub retry_base: Duration,
}

/// Settings of one sink kind: the keys of a `[[sink]]` table beyond the shared ones.
pub trait SinkSettings {
    /// The timeout of an attempt when the sink does not set `timeout`.
    const DEFAULT_TIMEOUT: Duration;
}

thread_local! {
    /// The `type` of each `[[sink]]`, for the typed read in progress on this thread.
    static SINK_TYPES: RefCell<Vec<Option<&'static str>>> = const { RefCell::new(Vec::new()) };
}

/// Runs a typed read of `doc`'s text with each sink's type known ahead.
pub fn with_sink_types<R>(doc: &toml::Table, read: impl FnOnce() -> R) -> R {
    let types = doc
        .get("sink")
        .and_then(toml::Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let written = item.get("type").and_then(toml::Value::as_str)?;
                    SinkKind::TYPES.iter().copied().find(|t| *t == written)
                })
                .collect()
        })
        .unwrap_or_default();
    SINK_TYPES.with(|t| *t.borrow_mut() = types);
    let out = read();
    SINK_TYPES.with(|t| t.borrow_mut().clear());
    out
}

/// Reads the `[[sink]]` array (the `deserialize_with` of `Config::sinks`).
pub fn deserialize_sinks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SinkConfig>, D::Error> {
    d.deserialize_seq(Sinks)
}

struct Sinks;

impl<'de> de::Visitor<'de> for Sinks {
    type Value = Vec<SinkConfig>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tables (write each sink as [[sink]])")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let types = SINK_TYPES.with(|t| t.borrow().clone());
        let mut sinks: Vec<SinkConfig> = Vec::new();
        loop {
            let i = sinks.len();
            let seed = OneSink {
                kind: types.get(i).copied().flatten(),
            };
            let Some((sink, name_span)) = seq.next_element_seed(seed)? else {
                return Ok(sinks);
            };
            if let Some(j) = sinks.iter().position(|o| o.name == sink.name) {
                return Err(de::Error::custom(crate::config::error::at(
                    &format!("sink[{i}].name"),
                    name_span,
                    format!(
                        "duplicate sink name \"{}\" (also used by sink[{j}])",
                        sink.name
                    ),
                )));
            }
            sinks.push(sink);
        }
    }
}

/// One `[[sink]]` table, read as the kind its `type` names; also yields where its name is.
struct OneSink {
    kind: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for OneSink {
    type Value = (SinkConfig, Range<usize>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for OneSink {
    type Value = (SinkConfig, Range<usize>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut shared = Shared::default();
        let kind = match self.kind {
            Some(type_name) => {
                let settings = KindKeys {
                    map: &mut map,
                    shared: &mut shared,
                };
                Some(SinkKind::read(type_name, settings).map_err(|e| {
                    // serde's "missing field `url`" says which key; say whose.
                    let m = e.to_string();
                    match m
                        .trim_end()
                        .strip_prefix("missing field `")
                        .and_then(|r| r.strip_suffix('`'))
                    {
                        Some(field) => de::Error::custom(format!(
                            "missing field `{field}`: a {type_name} sink needs {field}"
                        )),
                        None => e,
                    }
                })?)
            }
            None => {
                // An unknown or absent type: read the shared keys for their errors (the type's
                // among them) and leave the rest, whose meaning depends on the type.
                while let Some(key) =
                    map.next_key_seed(KeySeed::<PhantomData<IgnoredAny>> { kind: &mut None })?
                {
                    match key {
                        Key::Shared(name) => shared.read(name, &mut map)?,
                        Key::Kind(_) | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                None
            }
        };
        let Some(kind) = kind else {
            let types: Vec<String> = SinkKind::TYPES.iter().map(|t| format!("\"{t}\"")).collect();
            return Err(de::Error::custom(format!(
                "missing field `type`: set type = {}",
                types.join(" or ")
            )));
        };
        let Some(name) = shared.name else {
            return Err(de::Error::custom(
                "missing field `name`: every sink needs a unique name",
            ));
        };
        let name_span = name.span();
        let sink = SinkConfig {
            name: name.into_inner().0,
            timeout: shared.timeout.unwrap_or_else(|| kind.default_timeout()),
            kind,
            streams: shared.streams.unwrap_or_default(),
            events: shared.events.unwrap_or_default(),
            max_attempts: shared.max_attempts.unwrap_or(DEFAULT_SINK_MAX_ATTEMPTS),
            retry_base: shared.retry_base.unwrap_or(DEFAULT_SINK_RETRY_BASE),
        };
        Ok((sink, name_span))
    }
}

/// The shared keys of one sink table, as read so far.
#[derive(Default)]
struct Shared {
    name: Option<Spanned<SinkName>>,
    timeout: Option<Duration>,
    streams: Option<Vec<String>>,
    events: Option<Vec<String>>,
    max_attempts: Option<u32>,
    retry_base: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(transparent)]
struct SinkType(#[serde(deserialize_with = "read_type")] ());

#[derive(Deserialize)]
#[serde(transparent)]
struct SinkName(#[serde(deserialize_with = "read_name")] String);

#[derive(Deserialize)]
#[serde(transparent)]
struct Timeout(#[serde(with = "values::duration")] Duration);

#[derive(Deserialize)]
#[serde(transparent)]
struct Entries(#[serde(with = "values::nonempty_entries")] Vec<String>);

#[derive(Deserialize)]
#[serde(transparent)]
struct MaxAttempts(#[serde(with = "values::sink_max_attempts")] u32);

#[derive(Deserialize)]
#[serde(transparent)]
struct RetryBase(#[serde(deserialize_with = "read_retry_base")] Duration);

/// Checks `type`; which kind it names is known ahead (see [`with_sink_types`]).
fn read_type<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    values::one_of(d, SinkKind::TYPES).map(|_| ())
}

fn read_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let n = String::deserialize(d)?;
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    // Names end up in metrics labels, audit rows and log lines.
    if !ok {
        return Err(de::Error::custom(
            "1 to 64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(n)
}

fn read_retry_base<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let base = values::duration::deserialize(d)?;
    if base > SINK_RETRY_CAP {
        return Err(de::Error::custom(format!(
            "must not exceed {} (the longest delay between attempts)",
            format_duration(SINK_RETRY_CAP)
        )));
    }
    Ok(base)
}

impl Shared {
    /// Reads the value of the shared key `name`.
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "type" => {
                map.next_value::<SinkType>()?;
            }
            "name" => self.name = Some(map.next_value()?),
            "timeout" => self.timeout = Some(map.next_value::<Timeout>()?.0),
            "streams" => self.streams = Some(map.next_value::<Entries>()?.0),
            "events" => self.events = Some(map.next_value::<Entries>()?.0),
            "max_attempts" => self.max_attempts = Some(map.next_value::<MaxAttempts>()?.0),
            "retry_base" => self.retry_base = Some(map.next_value::<RetryBase>()?.0),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The sink table as the kind's settings see it: its keys minus the shared ones, which are
/// read into [`Shared`] on the way.
pub(super) struct KindKeys<'a, A> {
    map: &'a mut A,
    shared: &'a mut Shared,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for KindKeys<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(KeySeed { kind: &mut seed })? {
                None => return Ok(None),
                Some(Key::Kind(k)) => return Ok(Some(k)),
                Some(Key::Shared(name)) => self.shared.read(name, self.map)?,
                Some(Key::Other) => {
                    self.map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A key of a sink table: shared, the kind's (as the kind's own field seed read it), or, while
/// the kind is unknown, any other.
enum Key<K> {
    Shared(&'static str),
    Kind(K),
    Other,
}

/// Reads one key. The kind's field seed sees only keys that are not shared, so that its
/// derive rejects an unknown key while the TOML reader still knows where that key is.
struct KeySeed<'s, K> {
    kind: &'s mut Option<K>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let name = String::deserialize(d)?;
        if let Some(shared) = SHARED_KEYS.iter().find(|k| **k == name) {
            return Ok(Key::Shared(shared));
        }
        let Some(seed) = self.kind.take() else {
            return Ok(Key::Other);
        };
        let field: de::value::StrDeserializer<'_, D::Error> = name.as_str().into_deserializer();
        seed.deserialize(field).map(Key::Kind).map_err(
            |e| match crate::config::error::unknown_field(&e.to_string()) {
                Some((_, kind_keys)) => {
                    let mut expected: Vec<String> =
                        SHARED_KEYS.iter().map(|k| k.to_string()).collect();
                    expected.extend(kind_keys);
                    de::Error::custom(crate::config::error::unknown_key_message(&expected))
                }
                None => e,
            },
        )
    }
}
