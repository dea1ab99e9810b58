//! Configuration errors, and how a serde error from reading receiver.toml becomes one that names
//! the dotted key (`server.push_listen`, `sink[0].url`, `policy."session-revoked"`) and the
//! 1-based line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded. The message always names the key, and the line when
/// the problem is in a file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Value { key: String, message: String },
}

/// Marks a message that names its own key and place, for checks that span several keys (a
/// duplicate sink name, `token` beside `token_file`): serde places an error where it arises,
/// and such a check arises at the enclosing table.
const AT: char = '\u{1}';

/// An error message for `key` (a full dotted path) at the byte range `span` of the file.
pub fn at(key: &str, span: Range<usize>, message: impl std::fmt::Display) -> String {
    format!("{AT}{}{AT}{}{AT}{key}{AT}{message}", span.start, span.end)
}

fn parse_at(message: &str) -> Option<(usize, String, String)> {
    let mut parts = message.strip_prefix(AT)?.splitn(4, AT);
    let start = parts.next()?.parse().ok()?;
    let _end = parts.next()?;
    let key = parts.next()?.to_string();
    Some((start, key, parts.next()?.to_string()))
}

/// Formats a key for a dotted path, quoting it unless it is a TOML bare key.
pub fn display_key(name: &str, always_quote: bool) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare && !always_quote {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The keys of a serde "unknown field" message (`unknown field `x`, expected one of `a`, `b``):
/// the unknown one and those expected.
pub fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// The message for an unknown key.
pub fn unknown_key_message(expected: &[String]) -> String {
    format!("unknown key (expected one of: {})", expected.join(", "))
}

/// Words serde uses for a found value, as the file's readers know them.
fn kind_of(unexpected: &str) -> String {
    let word = unexpected.split([' ', '`']).next().unwrap_or_default();
    match word {
        "string" => "a string",
        "integer" => "an integer",
        "floating" => "a float",
        "boolean" => "a boolean",
        "sequence" => "an array",
        "map" => "a table",
        _ => return unexpected.to_string(),
    }
    .to_string()
}

/// Rewrites serde's own wording into the file's words.
fn reword(message: &str) -> String {
    if let Some((_, expected)) = unknown_field(message) {
        return unknown_key_message(&expected);
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            let expected = if expected.starts_with("struct ") || expected == "a map" {
                "a table"
            } else {
                expected
            };
            return format!("expected {expected}, found {}", kind_of(found));
        }
    }
    message.to_string()
}

/// Parsing context: where the text came from and where its lines start.
pub struct Cx<'a> {
    pub path: &'a Path,
    line_starts: Vec<usize>,
    pub text: &'a str,
}

impl<'a> Cx<'a> {
    pub fn new(text: &'a str, path: &'a Path) -> Cx<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Cx {
            path,
            line_starts,
            text,
        }
    }

    /// The 1-based line holding a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub fn invalid(
        &self,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A syntax error from the TOML parser.
    pub fn syntax(&self, e: &toml::de::Error) -> ConfigError {
        let line = e.span().map(|s| self.line(s.start)).unwrap_or(1);
        self.invalid(line, self.key_at_line(line), e.message().trim())
    }

    /// An error from reading the typed configuration, with the path serde was at.
    pub fn typed(&self, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let mut key = String::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                // Spanned values and date-times are read through private keys of the TOML
                // reader; they are no part of the file's paths.
                serde_path_to_error::Segment::Map { key: k } if !k.starts_with("$__") => {
                    let quote = key == "policy";
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(&display_key(k, quote));
                }
                _ => {}
            }
        }
        let e = e.into_inner();
        let span = e.span().unwrap_or(0..0);
        let message = e.message();
        if let Some((start, key, message)) = parse_at(message) {
            return self.invalid(self.line(start), key, message);
        }
        // "missing field `x`", or with a hint: "missing field `x`: every sink needs x".
        if let Some((field, hint)) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
        {
            key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            let hint = hint.strip_prefix(": ").unwrap_or(field);
            return self.invalid(self.line(span.start), key, format!("missing: {hint}"));
        }
        let written = self.text.get(span.clone()).unwrap_or_default().trim();
        let message = if written.parse::<toml::value::Datetime>().is_ok() {
            "dates and times are not valid values in this file".to_string()
        } else {
            reword(message)
        };
        self.invalid(self.line(span.start), key, message)
    }

    /// A best-effort dotted key for a line the parser rejected: the last table header above it
    /// and the key written on it.
    fn key_at_line(&self, line: usize) -> String {
        // Headers are read line by line, so that `[[sink]]` blocks get the same `sink[N]`
        // names the validation errors use.
        let header = |l: &str| -> Option<(String, bool)> {
            let l = l.trim();
            if let Some(r) = l.strip_prefix("[[") {
                return Some((r.split("]]").next()?.trim().to_string(), true));
            }
            let r = l.strip_prefix('[')?;
            Some((r.split(']').next()?.trim().to_string(), false))
        };
        let mut table = String::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut here = "";
        for (i, l) in self.text.lines().enumerate() {
            if let Some((name, is_array)) = header(l) {
                table = if is_array {
                    let n = counts.entry(name.clone()).or_insert(0);
                    *n += 1;
                    format!("{name}[{}]", *n - 1)
                } else {
                    name
                };
            }
            if i + 1 == line {
                here = l.trim();
                break;
            }
        }
        if header(here).is_some() {
            return table;
        }
        let key = here
            .split_once('=')
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .unwrap_or_else(|| "(syntax)".to_string());
        if table.is_empty() {
            key
        } else {
            format!("{table}.{key}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_offset() {
        let cx = Cx::new("a\nbc\n\nd", Path::new("x"));
        assert_eq!(cx.line(0), 1);
        assert_eq!(cx.line(1), 1);
        assert_eq!(cx.line(2), 2);
        assert_eq!(cx.line(4), 2);
        assert_eq!(cx.line(5), 3);
        assert_eq!(cx.line(6), 4);
        assert_eq!(cx.line(7), 4);
    }

    #[test]
    fn serde_words_become_the_files_words() {
        assert_eq!(
            reword("invalid type: integer `8080`, expected a string"),
            "expected a string, found an integer"
        );
        assert_eq!(
            reword("invalid type: integer `1`, expected struct ServerConfig"),
            "expected a table, found an integer"
        );
        assert_eq!(
            reword("unknown field `x`, expected `a` or `b`"),
            "unknown key (expected one of: a, b)"
        );
        let (start, key, m) = parse_at(&at("sink[1].name", 7..9, "duplicate")).unwrap();
        assert_eq!(
            (start, key.as_str(), m.as_str()),
            (7, "sink[1].name", "duplicate")
        );
    }
}
