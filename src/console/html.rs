//! HTML building blocks of the console: escaping, the page frame, times and the sparkline.
//!
//! Every string that comes from a SET, a transmitter or an operator goes through [`esc`] before
//! it reaches a page; the page builders take already-escaped fragments only where their names
//! say so (`_html`).

use std::fmt::Write;

use serde_json::Value;

/// Escapes text for an HTML text node or a double- or single-quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a URL query component (and, being ASCII-safe, for an attribute).
pub fn query_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A string member of a JSON object, or "" when it is missing or not a string.
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An RFC 3339 time the browser rewrites into its own zone (the script keeps the original on
/// hover); "never" for an empty one.
pub fn time(rfc3339: &str) -> String {
    if rfc3339.is_empty() {
        return "<span class=\"muted\">never</span>".into();
    }
    let t = esc(rfc3339);
    format!("<time datetime=\"{t}\" title=\"{t}\">{t}</time>")
}

/// Which top-level page a view belongs to, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Streams,
    Actions,
    Subjects,
    Daemon,
    SignIn,
}

const NAV: [(Section, &str, &str); 4] = [
    (Section::Streams, "/ui/streams", "Streams"),
    (Section::Actions, "/ui/actions", "Actions"),
    (Section::Subjects, "/ui/subjects", "Subjects"),
    (Section::Daemon, "/ui/daemon", "Daemon"),
];

/// A whole page. `csrf` is the session's form token (`None` on the sign-in page, which has no
/// navigation); `body_html` is already-escaped markup.
pub fn page(title: &str, section: Section, csrf: Option<&str>, body_html: &str) -> String {
    let mut nav = String::new();
    if let Some(csrf) = csrf {
        nav.push_str("<nav>");
        for (s, href, label) in NAV {
            let current = if s == section {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
        }
        let _ = write!(
            nav,
            "</nav><div class=\"session\"><label class=\"refresh\" hidden>\
             <input type=\"checkbox\" id=\"auto-refresh\"> refresh every 10 s</label>\
             <form method=\"post\" action=\"/ui/sign-out\">{}\
             <button type=\"submit\" id=\"sign-out\">Sign out</button></form></div>",
            csrf_field(csrf)
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · ssfd</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/console.css\">\
         <script src=\"/ui/assets/console.js\" defer></script></head>\
         <body data-section=\"{section:?}\"><header><a class=\"brand\" href=\"/ui/streams\">ssfd</a>{nav}</header>\
         <main><h1>{title}</h1>{body_html}</main></body></html>\n",
        title = esc(title),
    )
}

/// The hidden form field carrying the session's CSRF token.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A notice box; `kind` is `error` or `info`.
pub fn notice(kind: &str, message: &str) -> String {
    format!(
        "<p class=\"notice notice-{kind}\" role=\"status\">{}</p>",
        esc(message)
    )
}

/// Events per hour as an inline SVG bar chart, oldest hour on the left.
pub fn sparkline(buckets: &[u64]) -> String {
    const BAR: usize = 4;
    const HEIGHT: u64 = 20;
    let width = buckets.len() * BAR;
    let max = buckets.iter().copied().max().unwrap_or(0);
    let total: u64 = buckets.iter().sum();
    let mut svg = format!(
        "<svg class=\"sparkline\" width=\"{width}\" height=\"{HEIGHT}\" viewBox=\"0 0 {width} {HEIGHT}\" \
         role=\"img\" aria-label=\"{total} events in the last {} hours\" data-total=\"{total}\">\
         <title>{total} events in the last {} hours (one bar per hour)</title>\
         <line x1=\"0\" y1=\"{y}\" x2=\"{width}\" y2=\"{y}\" class=\"baseline\"/>",
        buckets.len(),
        buckets.len(),
        y = HEIGHT - 1,
    );
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 || max == 0 {
            continue;
        }
        // At least 2 px, so a single event in an hour still shows.
        let h = (n * (HEIGHT - 1)).div_ceil(max).max(2);
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{n}</title></rect>",
            i * BAR,
            HEIGHT - 1 - h.min(HEIGHT - 1),
            BAR - 1,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A JSON value as compact text for a settings table (strings without quotes).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("plain é"), "plain é");
        assert_eq!(esc(""), "");
    }

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(
            query_component("email:a+b@x.org &\"<"),
            "email%3Aa%2Bb%40x.org%20%26%22%3C"
        );
    }

    #[test]
    fn times_are_escaped_and_carry_the_original() {
        assert_eq!(
            time("2026-01-01T00:00:00Z"),
            "<time datetime=\"2026-01-01T00:00:00Z\" title=\"2026-01-01T00:00:00Z\">2026-01-01T00:00:00Z</time>"
        );
        assert!(time("\"><x").contains("&quot;&gt;&lt;x"));
        assert!(time("").contains("never"));
    }

    #[test]
    fn sparkline_draws_one_bar_per_busy_hour() {
        let mut b = vec![0u64; 24];
        b[3] = 1;
        b[23] = 10;
        let svg = sparkline(&b);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("data-total=\"11\""));
        assert!(svg.contains("height=\"19\""), "{svg}");
        assert_eq!(sparkline(&[0; 24]).matches("<rect").count(), 0);
    }

    #[test]
    fn page_title_is_escaped() {
        let p = page("<b>", Section::Streams, Some("t\""), "");
        assert!(p.contains("<title>&lt;b&gt; · ssfd</title>"));
        assert!(p.contains("value=\"t&quot;\""));
        assert!(!page("x", Section::SignIn, None, "").contains("sign-out"));
    }
}
