//! `ssfd events ...`: the SETs the daemon stored (newest first), and replaying a stream's events
//! through the policy again.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use super::table::{or_dash, short_event_type, strings, text, time, Table};
use super::{fetch_pages, parse_since_arg, Out};

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    #[command(
        about = "List received events (SETs), newest first",
        long_about = "List the Security Event Tokens the daemon stored, newest first: when each was \
received, on which stream, its jti, its event types, its subject and what became of it \
(planned: actions were planned; log_only; stored: kept without action, as on a disabled \
stream; control: stream bookkeeping; discarded).

Examples:
  ssfd events list
  ssfd events list --stream 3f9c2a... --since 1h
  ssfd events list --since 2026-01-31T00:00:00Z --limit 500 --json"
    )]
    List(ListArgs),

    #[command(
        about = "Run a stream's stored events through the policy again",
        long_about = "Run the events a stream stored through the policy again and plan their actions, \
for instance after enabling a stream that was disabled, or after changing its knobs. Every \
action carries the idempotency key of its event (streamId:jti:eventType), so a sink can tell \
an action it already carried out.

Examples:
  ssfd events replay --stream 3f9c2a... --since 24h
  ssfd events replay --stream 3f9c2a... --since 2026-01-31T00:00:00Z"
    )]
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only events of this stream.
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
    /// Only events received since then: a duration back from now (1h, 30m, 7d) or an RFC 3339
    /// time.
    #[arg(long, value_name = "WHEN", value_parser = parse_since_arg)]
    pub since: Option<String>,
    /// At most this many events.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The stream whose events are replayed.
    #[arg(long, value_name = "ID")]
    pub stream: String,
    /// Only events received since then: a duration back from now (24h) or an RFC 3339 time.
    /// Without it, every event the stream stored.
    #[arg(long, value_name = "WHEN", value_parser = parse_since_arg)]
    pub since: Option<String>,
}

pub async fn run(cmd: EventsCommand, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List(a) => {
            let mut query = Vec::new();
            if let Some(s) = &a.stream {
                query.push(("streamId", s.clone()));
            }
            if let Some(s) = &a.since {
                query.push(("since", s.clone()));
            }
            let (events, next) =
                fetch_pages(api, &["api", "v1", "events"], query, a.limit as usize).await?;
            if out.json {
                return out.print_json(&json!({ "list": events, "nextPageToken": next }));
            }
            write_events(out, &events)?;
            if !next.is_empty() {
                eprintln!("There may be more events: raise --limit or narrow --since to see them.");
            }
            Ok(())
        }
        EventsCommand::Replay(a) => {
            let mut body = Map::new();
            body.insert("streamId".into(), json!(a.stream));
            if let Some(s) = &a.since {
                body.insert("since".into(), json!(s));
            }
            let answer = api
                .post(&["api", "v1", "events", "replay"], &Value::Object(body))
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            writeln!(
                out.w,
                "Replayed {} event(s) of stream {}; planned {} action(s).",
                or_dash(text(&answer, "replayedCount")),
                a.stream,
                or_dash(text(&answer, "plannedActionCount")),
            )?;
            Ok(())
        }
    }
}

/// The subject column: the first canonical key, and how many more there are.
fn subject(e: &Value) -> String {
    let keys = strings(e, "subjectKeys");
    match keys.as_slice() {
        [] => "-".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{})", rest.len()),
    }
}

fn write_events(out: &mut Out<'_>, events: &[Value]) -> anyhow::Result<()> {
    if events.is_empty() {
        writeln!(out.w, "No events.")?;
        return Ok(());
    }
    let mut t = Table::new(&["RECEIVED", "STREAM", "JTI", "EVENT", "SUBJECT", "OUTCOME"]);
    for e in events {
        let types: Vec<String> = strings(e, "eventTypes")
            .iter()
            .map(|t| short_event_type(t).to_string())
            .collect();
        t.row(vec![
            time(e, "receivedAt"),
            text(e, "streamId"),
            text(e, "jti"),
            or_dash(types.join(",")),
            subject(e),
            or_dash(text(e, "outcome")),
        ]);
    }
    t.write(out.w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_column() {
        assert_eq!(subject(&json!({"subjectKeys": []})), "-");
        assert_eq!(
            subject(&json!({"subjectKeys": ["email:a@x", "opaque:1", "opaque:2"]})),
            "email:a@x (+2)"
        );
    }

    #[test]
    fn table_of_events() {
        let mut buf = Vec::new();
        let mut out = Out {
            json: false,
            w: &mut buf,
        };
        write_events(
            &mut out,
            &[json!({
                "receivedAt": "2026-01-02T03:04:05.678Z", "streamId": "s1", "jti": "j1",
                "eventTypes": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"],
                "subjectKeys": ["email:alice@example.com"], "outcome": "planned"
            })],
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("RECEIVED"));
        assert!(lines[1].contains("2026-01-02T03:04:05Z"));
        assert!(lines[1].contains("session-revoked"));
        assert!(lines[1].contains("email:alice@example.com"));
        assert!(lines[1].ends_with("planned"));
    }
}
