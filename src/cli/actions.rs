//! `ssfd actions ...`: the planned actions (the outbox) and their state, and retrying a dead one.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::client::AdminClient;
use super::table::{or_dash, short_event_type, text, time, truncate, write_fields, Table};
use super::{fetch_pages, Out};

#[derive(Subcommand, Debug)]
pub enum ActionsCommand {
    #[command(
        about = "List planned actions and their state",
        long_about = "List the actions planned for received events, newest first: one line per \
action and sink (the built-in ledger or log step shows as `ledger` or `log`), with its state \
(pending, running, done, dead), the attempts made so far and the last error.

Examples:
  ssfd actions list
  ssfd actions list --status dead
  ssfd actions list --stream 3f9c2a... --limit 200 --json"
    )]
    List(ListArgs),

    #[command(
        about = "Retry an action",
        long_about = "Put an action back in the queue so that the worker runs it again now, typically \
a `dead` one after the sink it failed on has been fixed. The sink receives the same \
idempotency key as before.

Example:
  ssfd actions list --status dead
  ssfd actions retry 42"
    )]
    Retry {
        /// The action's ID (the ID column of `ssfd actions list`).
        id: u64,
    },
}

/// The states of an action.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its (next) attempt.
    Pending,
    /// Being carried out now.
    Running,
    /// Finished successfully.
    Done,
    /// Gave up after its last attempt; see the last error.
    Dead,
}

impl Status {
    fn as_api(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Dead => "dead",
        }
    }
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only actions in this state.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<Status>,
    /// Only actions of this stream.
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
    /// At most this many actions.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

pub async fn run(cmd: ActionsCommand, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    match cmd {
        ActionsCommand::List(a) => {
            let mut query = Vec::new();
            if let Some(s) = a.status {
                query.push(("status", s.as_api().to_string()));
            }
            if let Some(s) = &a.stream {
                query.push(("streamId", s.clone()));
            }
            let (actions, next) =
                fetch_pages(api, &["api", "v1", "actions"], query, a.limit as usize).await?;
            if out.json {
                return out.print_json(&json!({ "list": actions, "nextPageToken": next }));
            }
            write_actions(out, &actions)?;
            if !next.is_empty() {
                eprintln!(
                    "There may be more actions: raise --limit or filter with --status/--stream."
                );
            }
            Ok(())
        }
        ActionsCommand::Retry { id } => {
            let id = id.to_string();
            let answer = api
                .post(&["api", "v1", "actions", &id, "retry"], &json!({}))
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            let a = answer.get("action").unwrap_or(&Value::Null);
            writeln!(out.w, "Action {id} is queued again.")?;
            write_fields(
                out.w,
                &[
                    ("Status", or_dash(text(a, "status"))),
                    ("Attempts so far", or_dash(text(a, "attempts"))),
                    ("Sink", sink(a)),
                    ("Idempotency key", or_dash(text(a, "idempotencyKey"))),
                ],
            )?;
            Ok(())
        }
    }
}

/// The sink column: an empty sink is the built-in step of the action.
fn sink(a: &Value) -> String {
    let s = text(a, "sink");
    if !s.is_empty() {
        return s;
    }
    if text(a, "action") == "LOG_ONLY" {
        "log".into()
    } else {
        "ledger".into()
    }
}

fn write_actions(out: &mut Out<'_>, actions: &[Value]) -> anyhow::Result<()> {
    if actions.is_empty() {
        writeln!(out.w, "No actions.")?;
        return Ok(());
    }
    let mut t = Table::new(&[
        "ID",
        "CREATED",
        "STREAM",
        "JTI",
        "EVENT",
        "ACTION",
        "SINK",
        "STATUS",
        "ATTEMPTS",
        "LAST ERROR",
    ]);
    for a in actions {
        t.row(vec![
            text(a, "id"),
            time(a, "createdAt"),
            text(a, "streamId"),
            text(a, "jti"),
            short_event_type(&text(a, "eventType")).to_string(),
            text(a, "action"),
            sink(a),
            text(a, "status"),
            text(a, "attempts"),
            or_dash(truncate(&text(a, "lastError"), 60)),
        ]);
    }
    t.write(out.w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_actions() {
        let mut buf = Vec::new();
        let mut out = Out {
            json: false,
            w: &mut buf,
        };
        write_actions(
            &mut out,
            &[json!({"id": 7, "streamId": "s", "jti": "j",
                     "eventType": "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
                     "action": "REVOKE_ALL", "sink": "", "idempotencyKey": "s:j:x",
                     "status": "dead", "attempts": 8, "lastError": "HTTP 500",
                     "createdAt": "2026-01-02T03:04:05Z"})],
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let row = text.lines().nth(1).unwrap();
        for part in ["7", "session-revoked", "ledger", "dead", "8", "HTTP 500"] {
            assert!(row.contains(part), "{row}");
        }
    }
}
