//! Human-readable output: aligned tables, "Label: value" blocks, and the small conversions from
//! API JSON to the text shown in them. Everything that reaches the terminal from the API goes
//! through [`clean`], since stream names, error messages and subjects come from other parties.

use std::io::{self, Write};

use serde_json::Value;

/// Makes text safe for one terminal line: line breaks and tabs become spaces, other control
/// characters (escape sequences included) become `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// Cuts text to `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A table with a header row; columns are as wide as their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0);
                let len = cell.chars().count();
                if len < pad {
                    line.extend(std::iter::repeat_n(' ', pad - len));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Writes `Label:  value` lines with the values aligned.
pub fn write_fields(out: &mut dyn Write, fields: &[(&str, String)]) -> io::Result<()> {
    let width = fields
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    for (k, v) in fields {
        let label = format!("{k}:");
        writeln!(out, "{label:<width$}  {}", clean(v))?;
    }
    Ok(())
}

/// A member of a JSON object as text: strings as they are, numbers and booleans written out,
/// absent or null as "".
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `s`, or `-` when it is empty, so that a table cell is never blank.
pub fn or_dash(s: String) -> String {
    if s.trim().is_empty() {
        "-".to_string()
    } else {
        s
    }
}

/// A timestamp member shortened to whole seconds (`2026-01-02T03:04:05Z`), or `-`.
pub fn time(v: &Value, key: &str) -> String {
    let raw = text(v, key);
    match humantime::parse_rfc3339(raw.trim()) {
        Ok(t) => humantime::format_rfc3339_seconds(t).to_string(),
        Err(_) => or_dash(raw),
    }
}

/// A boolean member as `yes`/`no`.
pub fn yes_no(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_bool) {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

/// The last path segment of an event-type URI (`session-revoked`).
pub fn short_event_type(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

/// The string members of an array member.
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `list` member of a page answer.
pub fn list(v: &Value) -> Vec<Value> {
    v.get("list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Writes a JSON value the way `--json` prints it.
pub fn write_json(out: &mut dyn Write, v: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_lines_do_not_trail() {
        let mut t = Table::new(&["ID", "NAME"]);
        t.row(vec!["a".into(), "first".into()]);
        t.row(vec!["longer-id".into(), "".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID         NAME\na          first\nlonger-id\n"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(clean("a\nb\u{1b}[31m"), "a b?[31m");
        let mut t = Table::new(&["X"]);
        t.row(vec!["\u{7}bell".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "X\n?bell\n");
    }

    #[test]
    fn fields_align() {
        let mut out = Vec::new();
        write_fields(&mut out, &[("ID", "x".into()), ("Long label", "y".into())]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID:          x\nLong label:  y\n"
        );
    }

    #[test]
    fn conversions() {
        let v = json!({"t": "2026-01-02T03:04:05.678Z", "n": 3, "b": false, "e": ""});
        assert_eq!(time(&v, "t"), "2026-01-02T03:04:05Z");
        assert_eq!(time(&v, "missing"), "-");
        assert_eq!(text(&v, "n"), "3");
        assert_eq!(yes_no(&v, "b"), "no");
        assert_eq!(or_dash(text(&v, "e")), "-");
        assert_eq!(
            short_event_type("https://schemas.openid.net/secevent/caep/event-type/session-revoked"),
            "session-revoked"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
